"""A put cut off by SIGKILL, then the invoice rejected: the row stays
`delivering`, and the restarted daemon never claims it again (a person holds
the document). `reconcile` settles it once its lease has ended (the restart
ends a dead process's leases): found at the destination, the row is
`delivered` and named until a person removed it there and `reconcile` found
it gone; never there, it is no longer named. While its lease is live,
`reconcile` leaves it as it is. The real daemon, a real HTTP destination."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys

from tests.e2e.daemon_harness import DaemonUnderTest
from tests.e2e.test_reject_in_flight import refused_by_a_while_b_in_flight
from tests.support.audit import assert_ledger_sound, audit_ledger
from tests.support.http_destination import FaultyFinanceServer

SAMPLE = "renoyuan__easyofd/original_invoice.xml"   # passes validation


def destination(name: str, server: FaultyFinanceServer) -> str:
    return f'[[destination]]\nname = "{name}"\nurl = "{server.url}"\nconcurrency = 1\ntimeout_s = 20\n\n'


def cli(daemon: DaemonUnderTest, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "service", "--config", str(daemon.config), *args],
                          capture_output=True, text=True, timeout=120, cwd=daemon.root)


def reconciled(daemon: DaemonUnderTest) -> dict:
    out = cli(daemon, "reconcile", "--destination", "b", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout)


def b_row(daemon: DaemonUnderTest, doc_id: int) -> dict:
    with daemon.ledger() as led:
        return {r["destination"]: r for r in led.deliveries_of(doc_id)}["b"]


def killed_mid_put(daemon: DaemonUnderTest, a: FaultyFinanceServer, b: FaultyFinanceServer, samples_dir):
    """The invoice refused by a (quarantined) while b's put is held open,
    then the daemon SIGKILLed, then the invoice rejected, knowingly."""
    # a's first answer is "later" (503), so b's put is under way before a refuses.
    a.inject("503", times=1, retry_after=1)
    a.inject("400", times=5, message="buyer unknown")
    b.inject("hold", times=1)
    daemon.start()
    shutil.copy(samples_dir / SAMPLE, daemon.root / "scan" / "invoice.xml")

    doc = daemon.wait_until(lambda: refused_by_a_while_b_in_flight(daemon, b), 60,
                            "a's refusal while b's put is held")
    daemon.signal(signal.SIGKILL)
    daemon.proc.wait(timeout=30)
    done = cli(daemon, "reject", str(doc.id), "--reason", "a says buyer unknown; not ours", "--yes",
               "--acknowledge-delivered")
    assert done.returncode == 0, done.stderr
    assert "stays at b (a put in flight" in done.stderr
    return doc


def named(daemon: DaemonUnderTest, doc_id: int) -> str | None:
    out = cli(daemon, "status").stdout
    return next((ln for ln in out.splitlines() if ln.strip().startswith("REJECTED") and f"document {doc_id} at"
                 in ln), None)


def test_a_cut_off_put_that_landed_is_named_until_removed(tmp_path, samples_dir):
    with FaultyFinanceServer() as a, FaultyFinanceServer() as b:
        daemon = DaemonUnderTest(tmp_path, extra="[delivery]\nreconcile_interval_s = 0\n\n"
                                 + destination("a", a) + destination("b", b))
        try:
            doc = killed_mid_put(daemon, a, b, samples_dir)
            b.release()     # the put that was under way lands at b after all
            daemon.wait_until(lambda: b.stats()["held"] == [doc.invoice_key], 30, "b to store the held put")

            # Its lease is live (the dead daemon took it for lease_s): left alone.
            left = reconciled(daemon)
            assert [c["result"] for c in left["checks"]] == ["in-flight"], left
            assert b_row(daemon, doc.id)["state"] == "delivering"
            assert "a put in flight" in named(daemon, doc.id)

            daemon.start()   # ends the dead daemon's leases; it claims nothing of a rejected invoice
            found = reconciled(daemon)
            assert [c["result"] for c in found["checks"]] == ["landed"], found
            row = b_row(daemon, doc.id)
            assert (row["state"], row["delivered_key"]) == ("delivered", doc.invoice_key)
            assert f"document {doc.id} at b (delivered under key {doc.invoice_key})" in named(daemon, doc.id)
            code, report, _ = audit_ledger(daemon.config)
            assert code == 1 and [v["code"] for v in report["violations"]] == ["rejected-at-destination"]

            b._forget(doc.invoice_key)   # a person removes it at b, by hand
            gone = reconciled(daemon)
            assert gone["summary"]["missing"] == 1, gone
            assert named(daemon, doc.id) is None
            assert b.stats()["posts"] == 1    # never sent again
            assert daemon.stop() == 0
            assert not any("Traceback" in line for line in daemon.lines)
            assert_ledger_sound(daemon.config)
        finally:
            daemon.ensure_gone()


def test_a_cut_off_put_that_never_landed_is_settled_by_the_daemons_reconcile(tmp_path, samples_dir):
    with FaultyFinanceServer() as a, FaultyFinanceServer() as b:
        daemon = DaemonUnderTest(tmp_path, extra="[delivery]\nreconcile_interval_s = 0\n\n"
                                 + destination("a", a) + destination("b", b))
        try:
            doc = killed_mid_put(daemon, a, b, samples_dir)
            # b never completes the request its client died on (held until the server stops).
            assert b.stats()["held"] == []
            check = json.loads(cli(daemon, "status", "--json").stdout)
            assert check["rejected_there"]["count"] == 1

            daemon.write_config(extra="[delivery]\nreconcile_interval_s = 1\n\n"
                                + destination("a", a) + destination("b", b))
            daemon.start()
            daemon.wait_until(lambda: b_row(daemon, doc.id)["state"] == "queued", 30,
                              "the daemon's reconcile to settle b's row")
            row = b_row(daemon, doc.id)
            assert (row["delivered_key"], row["lease_until"]) == (None, None)
            assert named(daemon, doc.id) is None
            assert json.loads(cli(daemon, "status", "--json").stdout)["rejected_there"]["count"] == 0
            assert daemon.stop() == 0
            assert b.stats()["posts"] == 1 and b.stats()["held"] == []
            assert not any("Traceback" in line for line in daemon.lines)
            assert_ledger_sound(daemon.config)
        finally:
            daemon.ensure_gone()
