"""Output people can act on (issue 17): `list`'s header, columns, cut line,
--since and --json problems; times in local time with their offset; tables
aligned by display width; CSV with a BOM; `show`'s e-mail, label and
bilingual problems. The real CLI against a real ledger: a subprocess where
the zone (TZ=Asia/Shanghai) or the bytes matter, click's runner elsewhere."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from wcwidth import wcswidth

from agent.ledger import utc
from agent.model import State
from agent.pipeline import invoice_columns
from tests.support.judged import BAD_SELLER, Site, invoice, number

REPO = Path(__file__).resolve().parents[2]
SHANGHAI = {"TZ": "Asia/Shanghai"}
# 2026-11-30 17:30 UTC is 1 December, 01:30 in Shanghai.
LATE_NOV_UTC = "2026-11-30T17:30:00.000000Z"
MAIL = {"from": "张三 <zhang@example.cn>", "subject": "十一月报销 差旅", "message_id": "<m1@x>",
        "label": "财务部"}


@pytest.fixture
def site(tmp_path):
    (tmp_path / "out").mkdir()
    s = Site(tmp_path, [{"name": "erp", "url": f"folder://{tmp_path / 'out'}"}])
    yield s
    s.close()


def _add(site: Site, name: str, inv, *, at: str, details: dict | None = None, source_kind: str = "email") -> int:
    """A document that arrived at `at` (with these arrival details), read as
    `inv` and judged by the real rules."""
    from agent.judgement import judge
    from tests.support.judged import SETTINGS

    stored = site.vault.put_bytes(f"%PDF-1.4\n% {name}\n".encode() + b"0" * 500)
    with site.ledger.transaction():
        doc, _ = site.ledger.add_document(sha256=stored.sha256, size=stored.size, media_type="application/pdf",
                                          source_kind=source_kind, source="/in", original_name=name,
                                          original_path=None, now=at, actor="test", details=details)
        site.ledger.transition(doc, State.EXTRACTED, now=at, actor="test", expect=State.CAPTURED,
                               **invoice_columns(inv))
        judge(site.ledger, doc, inv, settings=SETTINGS, destinations=site.names, today=dt.date.today(),
              now=at, actor="test")
    return doc


def _three(site: Site) -> dict[str, int]:
    today = dt.date.today()
    return {
        "mail": _add(site, "附件1.pdf", invoice(today, number=number("11"), seller_name="广州测试餐饮有限公司"),
                     at="2026-11-20T02:00:00.000000Z", details=MAIL),
        "bad": _add(site, "scan.pdf", invoice(today, number=number("22"), seller_tax_id=BAD_SELLER),
                    at="2026-11-25T02:00:00.000000Z", source_kind="scanner", details={"label": "行政"}),
        "late": _add(site, "late-nov.pdf", invoice(today, number=number("33"), seller_name="ACME Ltd"),
                     at=LATE_NOV_UTC, source_kind="scanner"),
    }


def _run(site: Site, *args: str, env: dict | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "service", "--config", str(site.config_path), *args],
                          capture_output=True, timeout=60, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


def _shanghai(stamp: str) -> str:
    moment = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc)
    return (moment + dt.timedelta(hours=8)).strftime("%Y-%m-%d %H:%M:%S") + " +08:00"


def test_list_has_a_header_names_labels_local_times_and_says_when_it_is_cut(site):
    ids = _three(site)
    r = _run(site, "list", "--limit", "2", env=SHANGHAI)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().splitlines()
    header = lines[0]
    assert re.match(r"\s*id\s+state\s+received \(local\)\s+number\s+date\s+total\s+buyer\s+seller\s+label\s+"
                    r"problems\s+file$", header), header
    assert len(lines) == 3                                      # the header and two rows, newest first
    assert lines[1].split()[0] == str(ids["late"]) and lines[2].split()[0] == str(ids["bad"])
    assert _shanghai(LATE_NOV_UTC) in lines[1]                   # 2026-12-01 01:30:00 +08:00
    assert "上海某某有限公司" in lines[1] and "ACME Ltd" in lines[1]  # buyer and seller
    assert "行政" in lines[2] and "tax-id-check-digit" in lines[2]  # the label, the error's code
    # Cut: a closing line says so, on stderr (stdout stays the table).
    assert r.stderr.decode().strip() == "2 of 3 shown; --limit 0 for all"
    # Every column starts at the same display column in every row, Chinese or not.
    starts = [_column_starts(line) for line in lines]
    for name in ("state", "received", "number", "seller", "label", "file"):
        i = header.index(name)
        width_before = wcswidth(header[:i])
        for line in lines[1:]:
            assert width_before in starts[lines.index(line)], (name, line)
    everything = _run(site, "list", "--limit", "0", env=SHANGHAI)
    assert everything.returncode == 0 and everything.stderr == b""           # nothing cut, nothing said
    assert len(everything.stdout.decode().splitlines()) == 4
    mail_line = next(line for line in everything.stdout.decode().splitlines()
                     if line.split()[0] == str(ids["mail"]))
    assert "财务部" in mail_line and "广州测试餐饮有限公司" in mail_line


def _column_starts(line: str) -> set[int]:
    """Display columns where a cell begins (after two spaces, or at 0)."""
    out = {0}
    for m in re.finditer(r"  (?=\S)", line):
        out.add(wcswidth(line[:m.end()]))
    return out


def test_list_since_refuses_what_is_not_a_date_and_counts_from_local_midnight(site):
    ids = _three(site)
    for bad in ("yesterday", "2026-13-01", "01/12/2026",
                # fromisoformat took these (a week, the compact form); `search --date` refuses them
                "2026-W49", "20261205", "2026-12-01T00:00"):
        r = site.cli("list", "--since", bad)
        assert r.exit_code == 2 and "--since" in r.output and bad in r.output, (bad, r.output)
        # reconcile's --since reads a day the same way
        r = site.cli("reconcile", "--since", bad)
        assert r.exit_code == 2 and "--since" in r.output and bad in r.output, (bad, r.output)
    # An empty value was taken as no filter at all: every document listed.
    for empty in ("", " "):
        r = site.cli("list", "--since", empty)
        assert r.exit_code == 2 and "--since: empty" in r.output and r.stdout == "", r.output
        r = site.cli("reconcile", "--since", empty)
        assert r.exit_code == 2 and "--since" in r.output, r.output
    # As `search --date` reads a day: full-width digits of an input method too.
    r = _run(site, "list", "--since", "２０２６－１２－０１", "--json", env=SHANGHAI)
    assert [json.loads(line)["id"] for line in r.stdout.decode().splitlines()] == [ids["late"]], r.stderr
    # 1 December in Shanghai begins at 2026-11-30 16:00 UTC: the late-November arrival is in it.
    r = _run(site, "list", "--since", "2026-12-01", "--json", env=SHANGHAI)
    assert r.returncode == 0, r.stderr
    assert [json.loads(line)["id"] for line in r.stdout.decode().splitlines()] == [ids["late"]]
    # A span before now, as `report --since` takes it.
    assert site.cli("list", "--since", "1h", "--json").stdout == ""
    every = site.cli("list", "--since", "5200w", "--json").stdout.splitlines()
    assert sorted(json.loads(line)["id"] for line in every) == sorted(ids.values())
    r = site.cli("list", "--since", "99999999999w")
    assert r.exit_code == 2 and "span like 7d" in r.output


def test_json_and_csv_together_are_refused_as_search_refuses_them(site):
    # list and reconcile printed JSON and dropped --csv without a word.
    _three(site)
    for command in (("list",), ("reconcile",), ("search", "公司")):
        r = site.cli(*command, "--json", "--csv")
        assert r.exit_code == 2 and r.stdout == "", (command, r.output)
        assert "choose one of --json and --csv" in r.stderr, (command, r.output)


def test_a_total_past_a_floats_precision_reads_the_same_everywhere_and_each_code_once(site):
    # 9007199254740993 cents is 2**53 + 1: `cents / 100` as a float printed
    # ...409.94 in list (table, --json, --csv), quarantine and reconcile while
    # show and search said .93. amount-range on 金额 and 价税合计 was listed twice.
    from decimal import Decimal

    huge = Decimal("90071992547409.93")
    doc = _add(site, "huge.pdf", invoice(dt.date.today(), number=number("44"), amount=huge, tax=Decimal("0.00"),
                                         total=huge, total_in_words=None), at="2026-11-20T02:00:00.000000Z")
    assert site.ledger.get(doc).total_cents == 9007199254740993
    assert [p["code"] for p in site.ledger.get(doc).problems] == ["amount-range", "amount-range"]
    table = site.cli("list").stdout.splitlines()[1]
    assert "90071992547409.93" in table and "409.94" not in table, table
    assert re.search(r"\samount-range\s", table) and "amount-range;amount-range" not in table, table
    assert json.loads(site.cli("list", "--json").stdout)["total"] == "90071992547409.93"
    listed = site.cli("list", "--csv").stdout.splitlines()
    assert "90071992547409.93" in listed[1] and listed[1].endswith(",huge.pdf,amount-range"), listed
    assert json.loads(site.cli("quarantine", "--json").stdout.splitlines()[0])["total"] == "90071992547409.93"
    assert json.loads(site.cli("search", "--amount", "1..", "--json").stdout)["total"] == "90071992547409.93"


def test_list_json_problems_are_an_array_as_in_quarantine(site):
    ids = _three(site)
    r = site.cli("list", "--json", "--limit", "0")
    assert r.exit_code == 0, r.output
    rows = {row["id"]: row for row in map(json.loads, r.stdout.splitlines())}
    bad = rows[ids["bad"]]
    assert isinstance(bad["problems"], list) and bad["problems"]
    quarantine = {row["id"]: row for row in map(json.loads, site.cli("quarantine", "--json").stdout.splitlines())}
    assert bad["problems"] == quarantine[ids["bad"]]["problems"]
    assert {"code", "severity", "message", "message_zh"} <= set(bad["problems"][0])
    assert rows[ids["mail"]]["problems"] == [] or all(isinstance(p, dict) for p in rows[ids["mail"]]["problems"])
    assert (bad["buyer"], bad["label"], rows[ids["mail"]]["label"]) == ("上海某某有限公司", "行政", "财务部")
    assert bad["received_at"] == "2026-11-25T02:00:00.000000Z"             # --json keeps the stored UTC


def test_every_csv_starts_with_a_bom_whatever_the_locale(site):
    _three(site)
    for args in (("list", "--csv"), ("search", "公司", "--csv"), ("reconcile", "--csv")):
        r = _run(site, *args, env={"LC_ALL": "C", "LANG": "C", "PYTHONIOENCODING": "latin-1"})
        assert r.returncode == 0, (args, r.stderr)
        assert r.stdout.startswith("\ufeff".encode("utf-8")), (args, r.stdout[:20])
        text = r.stdout.decode("utf-8-sig")
        assert not text.startswith("\ufeff")                               # one BOM, not two
        if args[0] != "reconcile":
            assert "上海某某有限公司" in text


def test_show_names_the_mail_the_label_and_each_problem_in_both_languages(site):
    ids = _three(site)
    r = _run(site, "show", str(ids["mail"]), env=SHANGHAI)
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert "e-mail from 张三 <zhang@example.cn>, subject: 十一月报销 差旅" in out
    assert "label: 财务部" in out
    assert _shanghai("2026-11-20T02:00:00.000000Z") in out                  # the arrival, local
    assert "2026-11-20T02:00:00" not in out                                 # no raw UTC left in the text
    bad = site.ledger.get(ids["bad"])
    out = _run(site, "show", str(ids["bad"]), env=SHANGHAI).stdout.decode()
    assert "label: 行政" in out
    for p in bad.problems:
        assert f"{p['code']} ({p['field']}): {p['message']}" in out if p.get("field") else p["message"] in out
        if p.get("message_zh"):
            assert p["message_zh"] in out
    assert any(p.get("message_zh") for p in bad.problems)


def test_times_are_local_with_their_offset_in_status_quarantine_and_requests(site):
    ids = _three(site)
    status = _run(site, "status", env=SHANGHAI).stdout.decode()
    last = re.search(r"last activity:\s+(.*)", status)[1]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+08:00", last), last
    quarantine = _run(site, "quarantine", env=SHANGHAI).stdout.decode()
    assert f"(received {_shanghai('2026-11-25T02:00:00.000000Z')})" in quarantine
    assert site.amend_approved(str(ids["bad"]), "--set", f"seller_tax_id={BAD_SELLER[:-1]}H").exit_code in (0, 1)
    requests = _run(site, "requests", "show", site.ledger.applications_of(ids["bad"])[0]["number"],
                    env=SHANGHAI).stdout.decode()
    assert re.search(r"filed\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+08:00 by", requests), requests
    assert not re.search(r"\d\d:\d\d:\d\d\.\d{6}Z", status + quarantine + requests)


def test_log_lines_carry_local_time_with_its_offset():
    code = ("import logging; from service.log import setup; setup(); "
            "logging.getLogger('fapiao.daemon').warning('hello')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO,
                       env={**os.environ, "PYTHONPATH": str(REPO), **SHANGHAI})
    stamp = re.match(r"ts=(\S+) level=warning", r.stderr)[1]
    moment = dt.datetime.fromisoformat(stamp)
    assert stamp.endswith("+08:00") and abs((moment - dt.datetime.now(dt.timezone.utc)).total_seconds()) < 60
    r = subprocess.run([sys.executable, "-c", code.replace("setup()", "setup('json')")], capture_output=True,
                       text=True, timeout=60, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), **SHANGHAI})
    assert json.loads(r.stderr)["ts"].endswith("+08:00")


def test_fleet_status_is_a_table_with_each_site_written_in_local_time(tmp_path):
    from agent.fleet.status import publish_status
    from agent.fleet.store import open_store

    shared = tmp_path / "shared"
    shared.mkdir()
    config = tmp_path / "agent.toml"
    config.write_text(f'[agent]\nstate_dir = "state"\n[fleet]\nsite = "beijing"\nurl = "file://{shared}"\n',
                      encoding="utf-8")
    store = open_store({"url": f"file://{shared}"})
    written = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    for site, quarantined in (("beijing", 3), ("shanghai-pudong", 12345)):
        publish_status(store, site, site, {"states": {"quarantined": quarantined, "queued": 1},
                                           "health": {"summary": "OK: fine"}}, now=written, interval_s=60)
    r = subprocess.run([sys.executable, "-m", "service", "--config", str(config), "fleet", "status"],
                       capture_output=True, text=True, timeout=60, cwd=REPO,
                       env={**os.environ, "PYTHONPATH": str(REPO), **SHANGHAI})
    assert r.returncode == 0, r.stderr
    header, *rows = r.stdout.splitlines()
    assert header.split()[:4] == ["site", "seen", "written", "(local)"] and len(rows) == 2, r.stdout
    local = (written + dt.timedelta(hours=8)).strftime("%Y-%m-%d %H:%M") + " +08:00"
    assert all(local in row for row in rows) and rows[0].startswith("beijing (here)")
    # quarant. is right-aligned: its numbers end where its header ends.
    end = header.index("quarant.") + len("quarant.")
    assert [row[:end].split()[-1] for row in rows] == ["3", "12345"]


# -- stored times inside operator-facing text: local with their offset -------------------------

_RAW_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


@pytest.fixture
def shanghai_here(monkeypatch):
    """This process in Asia/Shanghai (as TZ=Asia/Shanghai gives a subprocess)."""
    import time

    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_approving_a_decided_application_says_when_in_local_time(site):
    # "already approved by ... at 2026-12-05T17:57:26.661669Z" under TZ=Asia/Shanghai.
    ids = _three(site)
    site.amend_approved(str(ids["bad"]), "--set", f"seller_tax_id={BAD_SELLER[:-1]}H")
    app = site.ledger.applications_of(ids["bad"])[0]
    assert app["state"] == "approved", app
    again = _run(site, "approve", app["number"], env=SHANGHAI)
    said = again.stderr.decode()
    assert again.returncode == 1 and f"already approved by {app['decided_by']} at " in said, said
    assert f"at {_shanghai(app['decided_at'])}; nothing was changed" in said and not _RAW_UTC.search(said), said


def test_audit_ledger_says_stored_times_in_local_time_and_its_json_keeps_utc(site):
    at = "2026-11-20T02:00:00.000000Z"
    stored = site.vault.put_bytes(b"%PDF-1.4\n% stranded\n" + b"0" * 500)
    doc, _ = site.ledger.add_document(sha256=stored.sha256, size=stored.size, media_type="application/pdf",
                                      source_kind="scanner", source="/in", original_name="stranded.pdf",
                                      original_path=None, now=at, actor="test")
    site.ledger.transition(doc, State.EXTRACTED, now=at, actor="test", expect=State.CAPTURED,
                           **invoice_columns(invoice(dt.date.today(), number=number("55"))))
    site.ledger.transition(doc, State.VALID, now=at, actor="test", expect=State.EXTRACTED, reason="valid")
    lines = _run(site, "audit", "ledger", "--no-hash", env=SHANGHAI).stdout.decode().splitlines()
    line = next(x for x in lines if x.startswith("valid-not-queued"))
    assert f"valid since {_shanghai(at)}, not queued for erp" in line and not _RAW_UTC.search(line), line
    report = json.loads(_run(site, "audit", "ledger", "--no-hash", "--json", env=SHANGHAI).stdout)
    (found,) = [v for v in report["violations"] if v["code"] == "valid-not-queued"]
    assert f"valid since {at}, not queued for erp" in found["message"]           # --json: the ledger's UTC


def test_status_check_says_since_when_deliveries_are_held_in_local_time(tmp_path):
    from agent.config import load_config
    from agent.ledger import Ledger

    (tmp_path / "shared").mkdir()
    config = tmp_path / "agent.toml"
    config.write_text(f'[agent]\nstate_dir = "state"\n[fleet]\nsite = "beijing"\nurl = "file://{tmp_path / "shared"}"\n',
                      encoding="utf-8")
    at = "2026-12-05T17:57:26.661669Z"
    with Ledger(load_config(config, env={}).ledger_path) as ledger:
        doc, _ = ledger.add_document(sha256="7" * 64, size=100, media_type="pdf", source_kind="scanner",
                                     source="/in", original_name="held.pdf", original_path=None, now=at, actor="t")
        ledger.set_fleet_claim(doc, invoice_key="k1", state="held", now=at, actor="t",
                               reason="fleet store unreachable")
    env = {**os.environ, "PYTHONPATH": str(REPO), **SHANGHAI}
    check = subprocess.run([sys.executable, "-m", "service", "--config", str(config), "status", "--check"],
                           capture_output=True, text=True, timeout=60, cwd=REPO, env=env)
    assert "1 invoice held since 2026-12-06 01:57:26 +08:00: fleet store unreachable" in check.stdout, check.stdout
    assert not _RAW_UTC.search(check.stdout), check.stdout
    as_json = subprocess.run([sys.executable, "-m", "service", "--config", str(config), "status", "--json"],
                             capture_output=True, text=True, timeout=60, cwd=REPO, env=env)
    reasons = [r["text"] for r in json.loads(as_json.stdout)["health"]["reasons"]]
    assert f"1 invoice held since {at}: fleet store unreachable" in reasons, reasons   # --json: UTC


def test_a_replaced_watched_folder_is_refused_naming_when_it_was_pinned_in_local_time(tmp_path, shanghai_here):
    from agent.config import load_config
    from agent.ledger import Ledger
    from service.roots import usable_watches

    (tmp_path / "scan").mkdir()
    config = tmp_path / "agent.toml"
    config.write_text('[agent]\nstate_dir = "state"\n[[watch]]\npath = "scan"\nkind = "scanner"\n', encoding="utf-8")
    cfg = load_config(config, env={})
    at = "2026-12-05T17:57:26.661669Z"
    with Ledger(cfg.ledger_path) as ledger:
        assert usable_watches(cfg, ledger, now=at)[1] == []              # first watched: pinned at `at`
        (tmp_path / "scan").rename(tmp_path / "scan.old")
        (tmp_path / "scan").mkdir()                                      # replaced by another folder
        usable, [refused] = usable_watches(cfg, ledger, now=at)
    assert usable == [] and "is not the folder it was when first watched" in refused.reason
    assert "2026-12-06 01:57:26 +08:00" in refused.reason and not _RAW_UTC.search(refused.reason), refused.reason


def test_fleet_repair_names_a_live_leases_end_in_local_time(tmp_path, shanghai_here):
    from click.testing import CliRunner

    from agent.fleet.claims import acquire
    from agent.fleet.store import open_store
    from service.cli import main

    shared = tmp_path / "shared"
    shared.mkdir()
    config = tmp_path / "agent.toml"
    config.write_text(f'[agent]\nstate_dir = "state"\n[fleet]\nsite = "beijing"\nurl = "file://{shared}"\n',
                      encoding="utf-8")
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    live = acquire(open_store({"url": f"file://{shared}"}), "k-live", site="ghost", sha256="a" * 64, document_id=1,
                   now=now, lease_s=300)
    r = CliRunner().invoke(main, ["--config", str(config), "fleet", "repair", "k-live", "--force"])
    assert r.exit_code == 1 and "never forced while it lives" in r.stdout, r.output
    ends = (dt.datetime.fromisoformat(live.record.lease_until) + dt.timedelta(hours=8)).strftime("%Y-%m-%d %H:%M:%S")
    assert f"lease until {ends} +08:00" in r.stdout and not _RAW_UTC.search(r.stdout), r.stdout
    r = CliRunner().invoke(main, ["--config", str(config), "fleet", "repair", "k-live", "--force", "--json"])
    assert f"lease until {live.record.lease_until}:" in json.loads(r.stdout)["why"]      # --json: as stored
