"""Pending 补录 applications are seen by every monitoring channel: the
metrics, `status` / `status --check` / `status --json`, the notify faults
and the weekly report. Real ledger (applications filed and decided through
agent/applications.py), the real CLI through click's CliRunner, the notify
loop's own check, the report as the daemon builds it.

The case the gap was found by: an application saying a misread duplicate
is really another invoice holds its document in `duplicate`, a state that
counts as finished (never late, never quarantined). It must still show as
waiting for a person."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import threading

import pytest
from click.testing import CliRunner
from prometheus_client import generate_latest

from agent import applications as apps
from agent.config import load_config, parse_config
from agent.errors import ConfigError
from agent.ledger import Ledger, utc
from service.cli import main
from service.metrics import registry_for
from service.notify import NotifyRunner
from service.report import build_report
from tests.integration.test_metrics import samples, value
from tests.unit.test_amend import SETTINGS, TODAY, add_doc, invoice

NOW = dt.datetime.now(dt.timezone.utc)
DESTS = ("erp",)
ALICE = apps.Operator("cli:alice (sudo → fapiao)", "alice")
BOB = apps.Operator("cli:bob (sudo → fapiao)", "bob")
# The filer's words reach HTML, markdown robots and terminals: never as markup.
REASON = "<b>纸质发票</b> @all `x` 是另一张"


def _config_file(tmp_path, health: str = "") -> str:
    (tmp_path / "out").mkdir(exist_ok=True)
    path = tmp_path / "agent.toml"
    path.write_text('[agent]\nstate_dir = "state"\n[[destination]]\nname = "erp"\nurl = "folder://out"\n'
                    + (f"[health]\n{health}\n" if health else ""))
    return str(path)


def _file(ledger, doc_id, values, *, hours_ago: float, reason: str = REASON) -> str:
    out = apps.file_amend(ledger, doc_id, values, reason=reason, settings=SETTINGS, destinations=DESTS,
                          today=TODAY, now=utc(NOW - dt.timedelta(hours=hours_ago)), filer=ALICE,
                          self_approve_empty=True)
    assert out.state == "pending"
    return out.number


def _decide(ledger, number, how=apps.decline):
    kwargs = {"reason": "checked the paper"}
    how(ledger, number, settings=SETTINGS, destinations=DESTS, today=TODAY, now=utc(NOW), decider=BOB, **kwargs)


@pytest.fixture(autouse=True)
def _now_is_this_tests(monkeypatch):
    # "Filed 30 h ago" is measured from the test's start, not the module's
    # import: on a loaded machine a run reached these tests minutes later,
    # and the age (30.2 h) no longer read as 30 h.
    monkeypatch.setitem(globals(), "NOW", dt.datetime.now(dt.timezone.utc))


@pytest.fixture
def site(tmp_path):
    """A config, and a ledger holding: a live invoice; its duplicate with an
    application filed 30 h ago saying it is another invoice (held as a
    DUPLICATE); another invoice with an application filed 1 h ago (held
    QUARANTINED)."""
    path = _config_file(tmp_path)
    cfg = load_config(path)
    ledger = Ledger(cfg.ledger_path)
    live = add_doc(ledger, invoice(), "a", destinations=DESTS)
    dup = add_doc(ledger, invoice(), "b", destinations=DESTS)
    assert ledger.get(dup).state == "duplicate" and ledger.get(dup).duplicate_of == live
    old = _file(ledger, dup, {"buyer_name": "另一家公司"}, hours_ago=30)
    other = add_doc(ledger, invoice(number="24110000000087654321"), "c", destinations=DESTS)
    new = _file(ledger, other, {"date": "2024-05-20"}, hours_ago=1, reason="date from the paper copy")
    assert (ledger.get(dup).state, ledger.get(other).state) == ("duplicate", "quarantined")
    yield {"path": path, "cfg": cfg, "ledger": ledger, "dup": dup, "other": other, "old": old, "new": new}
    ledger.close()


def test_metrics_count_pending_applications_and_the_oldest_ones_wait(site):
    ledger, cfg = site["ledger"], site["cfg"]
    registry = registry_for(cfg)
    found = samples(generate_latest(registry).decode())
    assert value(found, "fapiao_applications_pending") == 2
    assert 30 * 3600 - 120 < value(found, "fapiao_applications_pending_oldest_age_seconds") < 30 * 3600 + 120
    _decide(ledger, site["old"])
    found = samples(generate_latest(registry).decode())
    assert value(found, "fapiao_applications_pending") == 1
    assert 3600 - 120 < value(found, "fapiao_applications_pending_oldest_age_seconds") < 3600 + 120
    _decide(ledger, site["new"])
    found = samples(generate_latest(registry).decode())
    assert value(found, "fapiao_applications_pending") == 0
    assert value(found, "fapiao_applications_pending_oldest_age_seconds") == 0


def test_status_check_warns_of_an_application_pending_past_the_threshold(site):
    run = CliRunner().invoke
    check = run(main, ["--config", site["path"], "status", "--check"])
    assert check.exit_code == 2, check.output            # the daemon never ran here: CRITICAL anyway
    line = (f"WARNING: 1 补录 application pending over 24 h (the oldest {site['old']}, document {site['dup']} "
            "(duplicate), filed by alice 30 h ago): `fapiao-agent requests --state pending`, then approve or decline")
    assert line in check.output, check.output
    assert site["new"] not in check.output               # filed an hour ago: not overdue

    report = json.loads(run(main, ["--config", site["path"], "status", "--json"]).output)
    a = report["applications"]
    assert (a["pending"], a["overdue"], a["overdue_hours"], a["held"]) == (2, 1, 24.0, {"duplicate": 1,
                                                                                         "quarantined": 1})
    assert [x["number"] for x in a["overdue_applications"]] == [site["old"]]
    assert 30 * 3600 - 120 < a["oldest_age_s"] < 30 * 3600 + 120
    assert {"level": "WARNING", "text": line.removeprefix("WARNING: ")} in report["health"]["reasons"]

    # The threshold is [health] application_pending_hours; 0 turns it off; below 0 is refused.
    for setting in ("application_pending_hours = 48", "application_pending_hours = 0"):
        quiet = run(main, ["--config", _config_file(site["cfg"].base_dir, setting), "status", "--check"])
        assert "补录 application pending" not in quiet.output, (setting, quiet.output)
    with pytest.raises(ConfigError, match="health.application_pending_hours: must not be negative"):
        parse_config({"health": {"application_pending_hours": -1}}, base_dir=site["cfg"].base_dir)

    _decide(ledger := site["ledger"], site["old"], apps.approve)
    assert ledger.application(site["old"])["state"] == "approved"
    after = run(main, ["--config", _config_file(site["cfg"].base_dir), "status", "--check"])
    assert "补录 application pending" not in after.output


def test_a_held_duplicate_is_counted_as_waiting_for_a_person(site):
    run = CliRunner().invoke
    check = run(main, ["--config", site["path"], "status", "--check"])
    assert ("WARNING: 2 invoices waiting for a person (1 quarantined; held by a pending 补录 application: "
            "1 duplicate)") in check.output, check.output
    plain = run(main, ["--config", site["path"], "status"])
    assert plain.exit_code == 0, plain.output
    assert "applications  2 pending  (补录 waiting for an approver, holding 1 duplicate;" in plain.output

    # Once no application holds it, a duplicate is finished again, as before.
    _decide(site["ledger"], site["old"])
    assert site["ledger"].get(site["dup"]).state == "duplicate"
    check = run(main, ["--config", site["path"], "status", "--check"])
    assert "WARNING: 1 invoice quarantined (waiting for a person)" in check.output, check.output


def _notify_cfg(site, **extra):
    return parse_config({"agent": {"state_dir": "state"}, "destination": [{"name": "erp", "url": "folder://out"}],
                         "notify": [{"name": "wx", "url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k",
                                     "events": ["application-pending"], "resolve_after_minutes": 0.0, **extra}]},
                        base_dir=site["cfg"].base_dir)


def test_an_overdue_application_is_told_once_and_resolved_once_decided(site):
    ledger = site["ledger"]
    runner = NotifyRunner(_notify_cfg(site), threading.Event())
    assert runner.check(ledger, "daemon:test") == 1
    for _ in range(3):                                    # the loop goes on: nothing told twice
        assert runner.check(ledger, "daemon:test") == 0
    [told] = ledger.notifications(entry="wx")
    assert (told["event"], told["key"], told["kind"]) == ("application-pending", f"application-pending:{site['old']}",
                                                          "opened")
    assert site["old"] in told["subject"] and site["new"] not in told["body"]
    assert f"#{site['dup']} (duplicate)" in told["body"] and "filed by `alice`" in told["body"]
    assert f"`fapiao-agent approve {site['old']}`" in told["body"]
    # The reason as one code span: no markup, no @all mention, its backticks disarmed.
    assert "`<b>纸质发票</b> @all 'x' 是另一张`" in told["body"]

    _decide(ledger, site["old"])
    assert runner.check(ledger, "daemon:test") == 1
    resolved = ledger.notifications(entry="wx")[0]
    assert (resolved["key"], resolved["kind"]) == (f"application-pending:{site['old']}", "resolved")
    assert runner.check(ledger, "daemon:test") == 0


def test_the_weekly_report_lists_pending_applications_escaped(site):
    ledger, cfg = site["ledger"], site["cfg"]
    report = build_report(ledger, cfg, since=NOW - dt.timedelta(days=7), until=NOW, now=NOW, drills={})
    page = report.html
    section = page[page.index('<section id="applications">'):]
    section = section[:section.index("</section>")]
    for text in (site["old"], site["new"], "alice", "amend", "1.2 d", "1.0 h", "duplicate", "quarantined",
                 "&lt;b&gt;纸质发票&lt;/b&gt; @all `x` 是另一张", "date from the paper copy"):
        assert text in section, text
    assert "<b>纸质发票" not in page
    assert section.index(site["old"]) < section.index(site["new"])     # the longest wait first
    tiles = dict((label, n) for n, label in __import__("re").findall(
        r'<div class="n">([^<]*)</div><div class="l">([^<]*)</div>', page))
    # What needs a person: the quarantined one AND the held duplicate.
    assert tiles["待人工处理（当前）waiting for a person"] == "2"
    assert tiles["待审批补录 applications pending"] == "2"
    assert "**1** quarantined now (待人工处理), **1** more held by a pending 补录 application, " \
           "**2** 补录 applications pending (待审批)" in report.summary
    assert REASON not in report.summary and "\n" not in report.summary

    rows = list(csv.DictReader(io.StringIO(report.csv.decode("utf-8-sig"), newline="")))
    by = {(r["section"], r["key"]): r for r in rows}
    assert by[("applications", "pending")]["value"] == "2"
    assert by[("applications", "waiting_for_a_person")]["value"] == "2"
    assert by[("applications_held", "duplicate")]["value"] == "1"
    assert by[("application", site["old"])]["item"] == str(site["dup"])
    assert REASON in by[("application", site["old"])]["detail"]

    _decide(ledger, site["old"])
    _decide(ledger, site["new"])
    empty = build_report(ledger, cfg, since=NOW - dt.timedelta(days=7), until=NOW, now=NOW, drills={}).html
    assert "没有待审批的补录申请 no application is pending" in empty
