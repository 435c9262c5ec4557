"""An operator who changes their mind about a 补录 application, with a real
daemon, a real HTTP destination and the real CLI.

- A better copy of the invoice lands while an application holds the first
  one: it cannot take the held one's place then (the application decides
  first), so it waits as its duplicate. Once the application is decided
  and the held copy is still quarantined, the copy that passes takes its
  place and is delivered, as it would have been had it landed a moment
  later; before, it stayed a duplicate of a quarantined document for good.
- Two destinations, one refusing the invoice: the other's row waits "on
  hold" for the person who decides the quarantined document; `status`
  said it was held for 补录 though no application was filed."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from tests.e2e.daemon_harness import DaemonUnderTest
from tests.support.audit import assert_ledger_sound
from tests.support.http_destination import FaultyFinanceServer

SAMPLE = "renoyuan__easyofd/original_invoice.xml"   # a 数电 XML that passes validation
GOOD_TAX_ID, BAD_TAX_ID = b"91522701709696623X", b"91522701709696623Y"   # the buyer's; Y fails its check digit
APPROVER = {"SUDO_UID": "4242"}   # root names the person behind it: someone other than the filer (root)


def destination(name: str, server: FaultyFinanceServer, extra: str = "") -> str:
    return f'[[destination]]\nname = "{name}"\nurl = "{server.url}"\nconcurrency = 1\ntimeout_s = 60\n{extra}\n'


def cli(daemon: DaemonUnderTest, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "service", "--config", str(daemon.config), *args],
                          capture_output=True, text=True, timeout=120, cwd=daemon.root,
                          env={**os.environ, **(env or {})})


def number_of(filed: subprocess.CompletedProcess) -> str:
    found = re.match(r"(BL-\d{8}-\d{4}) filed", filed.stdout)
    assert found, (filed.stdout, filed.stderr)
    return found[1]


def states(daemon: DaemonUnderTest) -> dict[int, tuple[str, int | None]]:
    return {d.id: (d.state, d.duplicate_of) for d in daemon.documents()}


@pytest.mark.parametrize("decision", ["decline", "approve"])
def test_a_passing_copy_that_landed_while_held_takes_over_once_the_application_is_decided(
        tmp_path, samples_dir, decision):
    good = (samples_dir / SAMPLE).read_bytes()
    with FaultyFinanceServer() as erp:
        daemon = DaemonUnderTest(tmp_path, extra=destination("erp", erp))
        try:
            daemon.start()
            # The scan's tax id fails its check digit: quarantined.
            (daemon.root / "scan" / "first.xml").write_bytes(good.replace(GOOD_TAX_ID, BAD_TAX_ID))
            daemon.wait_until(lambda: states(daemon) == {1: ("quarantined", None)}, 60, "the first copy quarantined")
            # An application to change the buyer's name: it holds document 1 for a second person.
            filed = cli(daemon, "amend", "1", "--set", "buyer_name=中国移动黔南分公司", "--reason", "纸质发票")
            assert filed.returncode == 0 and "waiting for an approver" in filed.stdout, filed.stdout + filed.stderr
            number = number_of(filed)
            # Meanwhile the issuer's own file lands: it passes, but the held copy keeps the key.
            (daemon.root / "scan" / "second.xml").write_bytes(good)
            daemon.wait_until(lambda: states(daemon).get(2) == ("duplicate", 1), 60, "the second copy a duplicate")
            assert erp.stats()["posts"] == 0

            decided = cli(daemon, decision, number, "--reason", "changed my mind",
                          env=APPROVER if decision == "approve" else None)
            # Document 1 still fails (its tax id) and steps aside: the invoice goes on, so exit 0.
            assert decided.returncode == 0, decided.stdout + decided.stderr
            assert "document 1: quarantined -> quarantined -> duplicate (same invoice as document 2)" in decided.stdout
            assert re.search(r"document 2 \(a copy of invoice \S+\): duplicate -> (queued|delivering|delivered)",
                             decided.stdout), decided.stdout

            daemon.wait_until(lambda: states(daemon) == {1: ("duplicate", 2), 2: ("delivered", None)}, 60,
                              "the passing copy delivered in the held one's place")
            assert erp.stats()["accepted"] == {"052002100113-00008006": 1}
            assert erp.fields["052002100113-00008006"]["buyer_tax_id"] == GOOD_TAX_ID.decode()
            story = json.loads(cli(daemon, "requests", "show", number, "--json").stdout)
            assert (story["state"], story["outcome"]) == ("declined" if decision == "decline" else "approved",
                                                         "duplicate")
            assert daemon.stop() == 0
            assert not any("Traceback" in line for line in daemon.lines)
            assert_ledger_sound(daemon.config)
        finally:
            daemon.ensure_gone()


def test_status_says_a_row_waits_for_a_person_not_for_an_application_no_one_filed(tmp_path, samples_dir):
    with FaultyFinanceServer() as erp, FaultyFinanceServer() as archive:
        erp.inject("400", times=5, message="buyer unknown")
        archive.inject("503", times=1000)
        daemon = DaemonUnderTest(tmp_path, extra=destination("erp", erp) + destination("archive", archive))
        try:
            daemon.start()
            (daemon.root / "scan" / "invoice.xml").write_bytes((samples_dir / SAMPLE).read_bytes())

            def refused_by_erp():
                docs = daemon.documents()
                if len(docs) != 1 or docs[0].state != "quarantined":
                    return None
                with daemon.ledger() as led:
                    rows = {r["destination"]: r["state"] for r in led.deliveries_of(docs[0].id)}
                return rows == {"erp": "quarantined", "archive": "queued"}
            daemon.wait_until(refused_by_erp, 60, "erp's refusal while archive waits")

            report = json.loads(cli(daemon, "status", "--json").stdout)
            assert report["applications"]["pending"] == 0
            archive_counts = next(d for d in report["delivery"]["destinations"] if d["name"] == "archive")["counts"]
            assert archive_counts["on_hold"] == 1
            shown = cli(daemon, "status")
            line = next(l for l in shown.stdout.splitlines() if l.strip().startswith("archive"))
            assert "on hold 1" in line and "补录" not in line, line
            assert "waits for a person" in line, line
            assert daemon.stop() == 0
            assert_ledger_sound(daemon.config)
        finally:
            daemon.ensure_gone()


def test_an_application_on_a_partial_capture_is_declined_when_the_whole_file_supersedes_it(tmp_path, samples_dir):
    # A slow writer's first half settles and is quarantined (unreadable); a
    # clerk files a 补录 application on it; then the writer finishes, the whole
    # file is read and delivered, and the partial capture is superseded. The
    # application can never be carried out: it is declined with the reason,
    # in the same transaction, instead of staying pending on a document that
    # no longer waits for anyone (audit: application-not-held).
    whole = (samples_dir / SAMPLE).read_bytes()
    with FaultyFinanceServer() as erp:
        daemon = DaemonUnderTest(tmp_path, extra=destination("erp", erp))
        try:
            daemon.start()
            path = daemon.root / "scan" / "slow.xml"
            with open(path, "wb") as f:
                f.write(whole[:len(whole) // 2])
                f.flush()
                daemon.wait_until(lambda: states(daemon) == {1: ("quarantined", None)}, 60,
                                  "the first half quarantined")
                filed = cli(daemon, "amend", "1", "--set", "number=00008006", "--set", "date=2022-05-05",
                            "--reason", "纸质发票")
                assert filed.returncode == 0 and "waiting for an approver" in filed.stdout, filed.stdout + filed.stderr
                number = number_of(filed)
                f.write(whole[len(whole) // 2:])
            daemon.wait_until(lambda: states(daemon).get(1, ("",))[0] == "superseded"
                              and states(daemon).get(2, ("",))[0] == "delivered", 60, "the whole file delivered")
            [app] = [json.loads(line) for line in cli(daemon, "requests", "--json").stdout.splitlines()
                     if json.loads(line)["number"] == number] or [None]
            assert app is not None and app["state"] == "declined", app
            assert "superseded by document 2" in (app.get("decision_reason") or ""), app
            shown = cli(daemon, "show", "1").stdout
            assert f"{number} declined by the agent" in shown, shown
            # An approver who comes to it later is told it was decided, and nothing changes.
            late = cli(daemon, "approve", number, env=APPROVER)
            assert late.returncode == 1 and f"{number} was already declined" in late.stderr, late.stderr
            assert json.loads(cli(daemon, "status", "--json").stdout)["applications"]["pending"] == 0
            assert erp.stats()["posts"] == 1
            assert daemon.stop() == 0
            assert_ledger_sound(daemon.config)
        finally:
            daemon.ensure_gone()


def test_an_amend_approved_while_a_put_is_in_flight_leaves_that_put_to_finish(tmp_path, samples_dir):
    # Two destinations: `a` refuses for now (the document ends failed there,
    # so it can be amended), `b` holds its POST open. An amend of the buyer's
    # name approved meanwhile queued the document again and reset b's row
    # although its put was in flight: the put's answer then found its lease
    # gone (never recorded), b was sent again, answered "already there", and
    # its receipt said b held the amended values while it holds the first.
    # Now b's row is left to its put: delivered with what it carried, and
    # the amend says b keeps the earlier values.
    from agent.ledger.held_values import values_digest

    good = (samples_dir / SAMPLE).read_bytes()
    with FaultyFinanceServer() as a, FaultyFinanceServer() as b:
        a.inject("503", times=3)
        b.inject("hold", times=1)
        daemon = DaemonUnderTest(tmp_path, extra="[delivery]\nreconcile_interval_s = 0\n\n"
                                 + destination("a", a, "max_attempts = 1") + destination("b", b))
        try:
            daemon.start()
            (daemon.root / "scan" / "inv.xml").write_bytes(good)

            def rows() -> dict[str, str]:
                with daemon.ledger() as led:
                    return {r["destination"]: r["state"] for r in led.deliveries_of(1)}

            daemon.wait_until(lambda: rows() == {"a": "failed", "b": "delivering"} and b.stats()["posts"] == 1,
                              60, "a failed, b's put in flight")
            filed = cli(daemon, "amend", "1", "--set", "buyer_name=改名公司", "--reason", "纸质发票")
            number = number_of(filed)
            approved = cli(daemon, "approve", number, "--reason", "ok", env=APPROVER)
            assert approved.returncode in (0, 2), approved.stdout + approved.stderr
            assert rows()["b"] == "delivering", "the put in flight was left to finish"
            b.release()
            daemon.wait_until(lambda: rows()["b"] == "delivered", 60, "b's put recorded")
            [key] = b.stats()["accepted"]
            assert b.stats()["posts"] == 1, "b was not sent the invoice a second time"
            with daemon.ledger() as led:
                [row_b] = [r for r in led.deliveries_of(1) if r["destination"] == "b"]
                events = [e.reason or "" for e in led.events(1)]
            assert json.loads(row_b["receipt"])["held_values_sha256"] == values_digest(b.fields[key])
            assert any("b holds invoice" in e and "correct buyer_name there by hand" in e for e in events), events
            assert daemon.stop() == 0
            assert_ledger_sound(daemon.config)
        finally:
            daemon.ensure_gone()
