"""The weekly check (`fapiao-agent report`, issue 15): every number from a real ledger.

A realistic week (tests/support/report_week.py: documents in every outcome,
each taken through the ledger's own transitions at fixed moments) is read
into the HTML page, the CSV and the chat summary, and the figures are
checked against the ones worked out by hand. Strangers' text is escaped in
the page and disarmed in the CSV. The schedule's time-zone conversion, the
atomic writing, pruning and the daemon-side run are checked with a fixed
clock.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from zoneinfo import ZoneInfo

import pytest
import schedule

from agent.errors import ConfigError
from agent.ledger import Ledger
from agent.model import State
from agent.report.figures import OUTCOMES, outcome_of, percentile
from service.report import (WeeklyReport, build_report, last_slot, next_slot, on_local_clock, parse_moment,
                            prune, report_dir, week_before, write_report)
from tests.support.report_week import (DRILLS, EXPECTED, FORMULA_NAME, NOW, SCRIPT_SELLER, SINCE, UNTIL,
                                       build_week, week_config)


@pytest.fixture(scope="module")
def week(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("week")
    cfg = week_config(tmp)
    ledger = Ledger(cfg.ledger_path)
    build_week(ledger)
    report = build_report(ledger, cfg, since=SINCE, until=UNTIL, now=NOW, drills=DRILLS)
    yield cfg, ledger, report
    ledger.close()


def _csv(report) -> list[dict]:
    assert report.csv.startswith(b"\xef\xbb\xbf"), "Excel needs the UTF-8 BOM to read Chinese"
    return list(csv.DictReader(io.StringIO(report.csv.decode("utf-8-sig"), newline="")))


def _cell(rows, section, key, item=""):
    found = [r["value"] for r in rows if r["section"] == section and r["key"] == key and r["item"] == item]
    assert len(found) == 1, (section, key, item, found)
    return found[0]


def test_every_document_state_has_one_outcome():
    for state in State:
        assert outcome_of(state.value) in {o.key for o in OUTCOMES}
    with pytest.raises(ValueError):
        outcome_of("teleported")


def test_percentile_is_nearest_rank():
    assert percentile([], 0.5) is None
    assert percentile([3600, 7200, 10800, 36000], 0.5) == 7200
    assert percentile([3600, 7200, 10800, 36000], 0.95) == 36000
    assert percentile([5], 0.95) == 5


def test_csv_holds_the_weeks_figures(week):
    _, _, report = week
    rows = _csv(report)
    assert list(rows[0]) == ["section", "key", "item", "value", "detail"]
    for day, counts in EXPECTED["days"].items():
        for o in [*(o.key for o in OUTCOMES), "total"]:
            assert int(_cell(rows, "arrivals", day, o)) == counts.get(o, 0), (day, o)
    assert {r["key"] for r in rows if r["section"] == "arrivals"} == set(EXPECTED["days"])
    for key, n in EXPECTED["totals"].items():
        assert int(_cell(rows, "arrivals_total", key)) == n, key
    assert int(_cell(rows, "arrivals_total", "same_file_again")) == EXPECTED["repeat_arrivals"]
    for what in ("delivered", "confirmed"):
        exp = EXPECTED[what]
        assert int(_cell(rows, "timing", f"to_{what}", "count")) == exp["count"]
        assert float(_cell(rows, "timing", f"to_{what}", "p50_s")) == exp["p50_s"]
        assert float(_cell(rows, "timing", f"to_{what}", "p95_s")) == exp["p95_s"]
    assert int(_cell(rows, "quarantine", "open_total")) == EXPECTED["quarantine_total"]
    assert {r["key"]: int(r["value"]) for r in rows if r["section"] == "quarantine_code"} \
        == EXPECTED["quarantine_by_code"]
    assert int(_cell(rows, "duplicates", "count")) == EXPECTED["duplicates"]
    assert int(_cell(rows, "missing", "count")) == EXPECTED["missing"]
    assert int(_cell(rows, "missing", "resent")) == EXPECTED["resent"]
    assert int(_cell(rows, "expiry", "count")) == EXPECTED["expiry"]
    assert sorted(int(r["value"]) for r in rows if r["section"] == "expiry_row") == [-10, 20]
    assert _cell(rows, "backup", "nas", "state") == "ok"
    assert _cell(rows, "backup", "offsite", "state") == "unreachable"
    assert _cell(rows, "backup", "nas", "restore_drill") == "ok"
    assert _cell(rows, "backup", "offsite", "restore_drill") == "none yet"
    assert int(_cell(rows, "backup", "nas", "objects")) == 16


def test_csv_cells_from_strangers_cannot_run(week):
    _, _, report = week
    rows = _csv(report)
    names = [r["item"] for r in rows if r["section"] == "quarantine_oldest"]
    assert "'" + FORMULA_NAME in names, names      # shown as text, never run
    assert FORMULA_NAME not in names
    for r in rows:
        for v in r.values():
            # Only the inert text constant ="digits" (a long number kept as text) starts with "=".
            assert not re.match(r"[\s]*[=+@]", v or "") or re.fullmatch(r'="\d+"', v), r


def test_html_shows_the_figures_and_escapes_strangers(week):
    _, _, report = week
    page = report.html
    assert SCRIPT_SELLER not in page and "<script" not in page.lower()
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;恶意公司" in page
    assert not re.search(r"https?://", page), "the page must name no network address"
    assert "<link" not in page and "<img" not in page and " src=" not in page
    tiles = dict((label, n) for n, label in re.findall(
        r'<div class="n">([^<]*)</div><div class="l">([^<]*)</div>', page))
    assert tiles["到达 arrivals"] == str(EXPECTED["totals"]["total"])
    assert tiles["已送达 delivered"] == str(EXPECTED["totals"]["delivered"])
    assert tiles["待人工处理（当前）waiting for a person"] == str(EXPECTED["quarantine_total"])   # no application holds one
    assert tiles["待审批补录 applications pending"] == "0"
    assert tiles["拦截重复 duplicates caught"] == str(EXPECTED["duplicates"])
    assert tiles["对账缺失 missing at reconciliation"] == str(EXPECTED["missing"])
    assert tiles["临近过期未送达 near expiry"] == str(EXPECTED["expiry"])
    assert tiles["到确认 p50 / p95 to confirmed"] == "3.0 h / 4.0 d"
    assert tiles["备份目标正常 backup targets ok"] == "1/2"
    # One stacked bar segment per (day, outcome) present, titled with its count.
    segments = re.findall(r"<title>(\d{4}-\d{2}-\d{2}) \S+ [^:<]+: (\d+)</title>", page)
    per_day: dict[str, int] = {}
    for day, n in segments:
        per_day[day] = per_day.get(day, 0) + int(n)
    assert per_day == {d: c["total"] for d, c in EXPECTED["days"].items()}
    assert "尚未演练 no drill yet" in page and "通过 passed" in page
    assert "UNREACHABLE since 2026-11-28 03:00 +08:00" in page       # the report's zone, with its offset


def test_summary_has_the_key_numbers(week):
    _, _, report = week
    s = report.summary
    for phrase in ("**16** arrived", "**6** delivered", "**4** quarantined now", "**1** duplicates caught",
                   "**2** missing at reconciliation, **1** re-sent", "**2** undelivered within 30 days",
                   "p50 3.0 h", "p95 4.0 d", "1/2 targets ok, FAILING: `offsite`", "no restore drill yet: `offsite`"):
        assert phrase in s, phrase
    assert SCRIPT_SELLER not in s and FORMULA_NAME not in s
    assert "\n" not in s


def test_written_atomically_and_pruned(week, tmp_path):
    _, _, report = week
    old = tmp_path / "fapiao-report-2025-01-06.html"
    old.write_text("old")
    keep = tmp_path / "notes.html"
    keep.write_text("mine")
    write_report(report, tmp_path, "fapiao-report-2026-11-30")
    assert report.html_path.read_text(encoding="utf-8") == report.html
    assert report.csv_path.read_bytes() == report.csv
    assert oct(report.html_path.stat().st_mode & 0o777) == "0o640"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporary file left"
    gone = prune(tmp_path, keep_weeks=52, today=dt.date(2026, 11, 30))
    assert gone == [old] and keep.exists() and report.html_path.exists()


# -- the schedule: Monday 08:00 in Asia/Shanghai on the daemon's own clock ---------------------------

def test_slot_is_found_in_the_report_time_zone():
    utc = dt.timezone.utc
    # Sunday 2026-11-29 23:59 UTC is Monday 07:59 in Shanghai: the slot is one minute away.
    now = dt.datetime(2026, 11, 29, 23, 59, tzinfo=utc)
    slot = next_slot(now, "monday", "08:00", "Asia/Shanghai")
    assert slot == dt.datetime(2026, 11, 30, 0, 0, tzinfo=utc)
    assert last_slot(now, "monday", "08:00", "Asia/Shanghai") == dt.datetime(2026, 11, 23, 0, 0, tzinfo=utc)
    # At the slot itself the next one is a week on, and the last one is it.
    assert next_slot(slot, "monday", "08:00", "Asia/Shanghai") == slot + dt.timedelta(days=7)
    assert last_slot(slot, "monday", "08:00", "Asia/Shanghai") == slot
    assert week_before(slot.astimezone(ZoneInfo("Asia/Shanghai"))) == (SINCE, UNTIL)


def test_slot_on_the_daemons_clock_keeps_the_instant():
    utc = dt.timezone.utc
    slot = next_slot(dt.datetime(2026, 11, 25, tzinfo=utc), "monday", "08:00", "Asia/Shanghai")
    # A daemon in UTC runs it Monday 00:00; one in New York (EST, UTC-5) Sunday 19:00;
    # one in Berlin (CET) Monday 01:00; one in Shanghai Monday 08:00.
    assert on_local_clock(slot, dt.timezone.utc) == ("monday", "00:00:00")
    assert on_local_clock(slot, ZoneInfo("America/New_York")) == ("sunday", "19:00:00")
    assert on_local_clock(slot, ZoneInfo("Europe/Berlin")) == ("monday", "01:00:00")
    assert on_local_clock(slot, ZoneInfo("Asia/Shanghai")) == ("monday", "08:00:00")
    # In summer New York is UTC-4: the same Shanghai moment is 20:00 there.
    summer = next_slot(dt.datetime(2026, 7, 1, tzinfo=utc), "monday", "08:00", "Asia/Shanghai")
    assert on_local_clock(summer, ZoneInfo("America/New_York")) == ("sunday", "20:00:00")


def test_report_time_zone_slot_across_its_own_dst():
    # A report zone with DST: 08:00 Berlin is 06:00 UTC in summer (CEST), 07:00 in winter (CET).
    utc = dt.timezone.utc
    before = next_slot(dt.datetime(2026, 10, 13, tzinfo=utc), "monday", "08:00", "Europe/Berlin")
    after = next_slot(before, "monday", "08:00", "Europe/Berlin")
    assert before.date() == dt.date(2026, 10, 19) and after.date() == dt.date(2026, 10, 26)
    assert before.astimezone(utc).hour == 6 and after.astimezone(utc).hour == 7   # DST ended 10-25
    assert after.astimezone(ZoneInfo("Europe/Berlin")).hour == 8


def test_a_host_without_the_zone_database_keeps_the_default_zone(tmp_path):
    import importlib.util
    import zoneinfo

    from agent.config import parse_config
    from agent.report.figures import CHINA, zone_of

    if importlib.util.find_spec("tzdata"):
        pytest.skip("the tzdata package supplies the zones here")
    zoneinfo.reset_tzpath(to=[])
    zoneinfo.ZoneInfo.clear_cache()
    try:
        assert zone_of("Asia/Shanghai") is CHINA
        with pytest.raises(zoneinfo.ZoneInfoNotFoundError):
            zone_of("Europe/Berlin")
        assert parse_config({}, base_dir=tmp_path).report["time_zone"] == "Asia/Shanghai"
        with pytest.raises(ConfigError, match="report.time_zone"):
            parse_config({"report": {"time_zone": "Europe/Berlin"}}, base_dir=tmp_path)
    finally:
        zoneinfo.reset_tzpath()
        zoneinfo.ZoneInfo.clear_cache()
    assert zone_of("Asia/Shanghai") == ZoneInfo("Asia/Shanghai")


def test_parse_moment():
    now = dt.datetime(2026, 11, 30, 0, 0, tzinfo=dt.timezone.utc)
    assert parse_moment("7d", now=now, tz="Asia/Shanghai") == now - dt.timedelta(days=7)
    assert parse_moment("36h", now=now, tz="Asia/Shanghai") == now - dt.timedelta(hours=36)
    assert parse_moment("2026-11-23", now=now, tz="Asia/Shanghai") == SINCE
    assert parse_moment("2026-11-23T08:00", now=now, tz="Asia/Shanghai") == SINCE + dt.timedelta(hours=8)
    with pytest.raises(ValueError, match="not a moment"):
        parse_moment("last tuesday", now=now, tz="Asia/Shanghai")


def test_config_refuses_a_report_that_could_not_run(tmp_path):
    from agent.config import parse_config

    for bad, why in (({"time": "8 am"}, "report.time"), ({"time_zone": "Mars/Olympus"}, "report.time_zone"),
                     ({"weekday": "mon"}, "report.weekday"), ({"keep_weeks": 0}, "report.keep_weeks")):
        with pytest.raises(ConfigError, match=why):
            parse_config({"report": bad}, base_dir=tmp_path)


def test_a_watched_folder_may_not_hold_the_reports(tmp_path):
    from agent.config import load_config
    from agent.config_paths import check_paths

    (tmp_path / "scans" / "reports").mkdir(parents=True)
    path = tmp_path / "c.toml"
    path.write_text('[report]\ndir = "scans/reports"\n[[watch]]\npath = "scans"\n')
    problems = check_paths(load_config(path, env={}))
    assert any(p.startswith("watch[0].path:") and "report.dir" in p for p in problems), problems


def test_daemon_side_writes_once_and_hands_the_report_on(tmp_path):
    cfg = week_config(tmp_path)
    ledger = Ledger(cfg.ledger_path)
    try:
        build_week(ledger)
        handed = []
        clock = [NOW + dt.timedelta(minutes=1)]
        schedule.clear("report")
        weekly = WeeklyReport(cfg, ledger, on_report=handed.append, drills=lambda led: DRILLS,
                              clock=lambda: clock[0])
        weekly.configure(cfg)
        job = weekly.job
        assert job is not None and "daemon" in job.tags
        assert job.start_day == on_local_clock(NOW + dt.timedelta(days=7))[0]
        assert job.at_time == dt.time.fromisoformat(on_local_clock(NOW + dt.timedelta(days=7))[1])
        assert weekly.run_due() is True
        assert len(handed) == 1
        report = handed[0]
        assert report.html_path == report_dir(cfg) / "fapiao-report-2026-11-30.html"
        assert report.csv_path.read_bytes().startswith(b"\xef\xbb\xbf")
        assert report.figures.totals == EXPECTED["totals"]
        assert weekly.run_due() is True and len(handed) == 1, "a week's report is written once"
        # A hand-over that fails leaves the report written, and the daemon goes on.
        clock[0] = NOW + dt.timedelta(days=7, minutes=1)
        weekly.on_report = lambda r: 1 / 0
        assert weekly.run_due() is True
        assert (report_dir(cfg) / "fapiao-report-2026-12-07.html").exists()
        # A folder that cannot be written: False, logged, nothing raised.
        clock[0] = NOW + dt.timedelta(days=14, minutes=1)
        blocker = tmp_path / "blocked"
        blocker.write_text("a file, not a folder")
        weekly.cfg.report["dir"] = str(blocker)
        assert weekly.run_due() is False
        assert weekly._fire() is schedule.CancelJob and weekly.job.interval == 900   # retried later
    finally:
        schedule.clear("report")
        ledger.close()


def test_a_week_missed_while_down_is_written_at_start_but_a_first_start_invents_none(tmp_path):
    cfg = week_config(tmp_path)
    ledger = Ledger(cfg.ledger_path)
    try:
        build_week(ledger)
        folder = report_dir(cfg)
        clock = lambda: NOW + dt.timedelta(hours=5)   # noqa: E731
        WeeklyReport.start(cfg, ledger, clock=clock)
        assert not folder.exists()
        folder.mkdir(parents=True)
        (folder / "fapiao-report-2026-11-23.html").write_text("last week's")
        WeeklyReport.start(cfg, ledger, clock=clock)
        assert (folder / "fapiao-report-2026-11-30.html").exists()
    finally:
        schedule.clear("report")
        ledger.close()


def test_cli_report_writes_the_pair_and_json(tmp_path):
    from click.testing import CliRunner

    from service.cli import main

    cfg = week_config(tmp_path)
    with Ledger(cfg.ledger_path) as ledger:
        build_week(ledger)
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["--config", str(cfg.path), "report", "--since", "2026-11-23", "--until",
                                  "2026-11-30", "--out", str(out), "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["figures"]["totals"] == EXPECTED["totals"]
    assert doc["html_path"].endswith(".html") and (out / doc["html_path"].split("/")[-1]).exists()
    assert doc["csv_path"].endswith(".csv")
    bad = CliRunner().invoke(main, ["--config", str(cfg.path), "report", "--since", "whenever", "--out", str(out)])
    assert bad.exit_code == 2 and "not a moment" in bad.output


def test_the_report_shows_the_restore_drills_the_ledger_recorded(tmp_path):
    # Without drills= the report reads each target's latest drill from the
    # ledger (agent/backup/drill.py records them): a failed one with its reason.
    cfg = week_config(tmp_path)
    ledger = Ledger(cfg.ledger_path)
    try:
        build_week(ledger)
        for finished, ok, reason in (("2026-11-29T01:00:00+00:00", True, None),
                                     ("2026-11-30T01:00:00+00:00", False, "object ab12… differs from its hash")):
            ledger.record_restore_drill({"target": "nas", "started_at": finished, "finished_at": finished,
                                         "ok": ok, "sampled": 20, "failed": 0 if ok else 1, "mismatch": not ok,
                                         "seed": 7, "snapshot": "s.db.gz", "snapshot_ok": True,
                                         "reason": reason, "detail": {}}, actor="test")
        report = build_report(ledger, cfg, since=SINCE, until=UNTIL, now=NOW)
    finally:
        ledger.close()
    rows = _csv(report)
    assert _cell(rows, "backup", "nas", "restore_drill") == "FAILED"
    assert _cell(rows, "backup", "offsite", "restore_drill") == "none yet"
    assert "object ab12… differs from its hash" in report.html


def test_cli_report_refuses_an_overflowing_or_century_long_window_clearly(tmp_path):
    # 99999999999d overflowed into a traceback; 1900-01-01 wrote a 16 MB page
    # and a 12 MB CSV of empty days.
    from click.testing import CliRunner

    from service.cli import main

    cfg = week_config(tmp_path)
    Ledger(cfg.ledger_path).close()
    out = tmp_path / "out"
    for since, said in (("99999999999d", "not a moment"), ("9999999w", "not a moment"),
                        ("0001-01-01", "not a moment"), ("1900-01-01", "a report covers at most")):
        r = CliRunner().invoke(main, ["--config", str(cfg.path), "report", "--since", since, "--out", str(out)])
        assert r.exit_code == 2 and said in r.output, (since, r.exit_code, r.output, r.exception)
    assert not out.exists()


def test_report_html_and_csv_show_control_bidi_and_format_characters_escaped():
    # A mail client showed `q-<RLO>gnp.xml` as `q-lmx.png`; `cat` of the CSV
    # or page ran the ESC and C1 CSI of a file name or seller.
    from agent.report.html import e
    from service.csv_safe import csv_text

    hostile = "q-\u202egnp.xml \x1b[31mred \x9b2J \u200b\x07"
    page = e(hostile)
    assert page == "q-\\u202egnp.xml \\x1b[31mred \\x9b2J \\u200b\\x07"
    text = csv_text([{"item": hostile, "value": "a\nb\tc"}], ["item", "value"])
    assert not any(ch in text for ch in "\u202e\x1b\x9b\u200b\x07")
    [row] = list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"), newline="")))
    assert row == {"item": "q-\\u202egnp.xml \\x1b[31mred \\x9b2J \\u200b\\x07", "value": "a\nb\tc"}
