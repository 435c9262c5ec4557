"""A put in flight when a person rejects the invoice (attack M, case c04), with
the real daemon: destination a refuses the invoice (400: quarantined) while
b's put is held open. `reject` names b's put in flight and is refused until
acknowledged; once the put lands, the daemon logs a warning, and `status`
and `audit ledger` name the rejected invoice b holds until a person removed
it there and `reconcile` found it gone."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from tests.e2e.daemon_harness import DaemonUnderTest
from tests.support.audit import assert_ledger_sound, audit_ledger
from tests.support.http_destination import FaultyFinanceServer

SAMPLE = "renoyuan__easyofd/original_invoice.xml"   # passes validation


def destination(name: str, server: FaultyFinanceServer) -> str:
    return f'[[destination]]\nname = "{name}"\nurl = "{server.url}"\nconcurrency = 1\ntimeout_s = 60\n\n'


def cli(daemon: DaemonUnderTest, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "service", "--config", str(daemon.config), *args],
                          capture_output=True, text=True, timeout=120, cwd=daemon.root)



def refused_by_a_while_b_in_flight(daemon, b):
    """The one document when destination a has refused it (quarantined)
    while b's put of it is under way (`delivering`, b saw the POST), else None."""
    docs = daemon.documents()
    if len(docs) != 1 or docs[0].state != "quarantined":
        return None
    with daemon.ledger() as led:
        rows = {r["destination"]: r["state"] for r in led.deliveries_of(docs[0].id)}
    return docs[0] if rows == {"a": "quarantined", "b": "delivering"} and b.posts else None

def test_a_put_landing_after_the_rejection_is_told_and_named_until_removed(tmp_path, samples_dir):
    with FaultyFinanceServer() as a, FaultyFinanceServer() as b:
        a.inject("400", times=5, message="buyer unknown")
        b.inject("hold", times=1)
        daemon = DaemonUnderTest(tmp_path, extra="[delivery]\nreconcile_interval_s = 0\n\n"
                                 + destination("a", a) + destination("b", b))
        try:
            daemon.start()
            shutil.copy(samples_dir / SAMPLE, daemon.root / "scan" / "invoice.xml")

            doc = daemon.wait_until(lambda: refused_by_a_while_b_in_flight(daemon, b), 60,
                                    "a's refusal while b's put is held")
            refused = cli(daemon, "reject", str(doc.id), "--reason", "a says buyer unknown; not ours", "--yes")
            assert refused.returncode == 1, refused.stdout
            assert "b (a put in flight: it may hold it under key" in refused.stderr
            done = cli(daemon, "reject", str(doc.id), "--reason", "a says buyer unknown; not ours", "--yes",
                       "--acknowledge-delivered")
            assert done.returncode == 0, done.stderr
            assert "stays at b (a put in flight" in done.stderr

            b.release()
            warned = daemon.wait_for_line(f"document {doc.id} was rejected while its put to b was in flight",
                                          timeout=60)
            assert "<4>" in warned or "WARNING" in warned.upper(), warned
            assert b.stats()["held"] == [doc.invoice_key]
            with daemon.ledger() as led:
                assert led.get(doc.id).state == "rejected"
                assert {r["destination"]: r["state"] for r in led.deliveries_of(doc.id)}["b"] == "delivered"
            status = cli(daemon, "status")
            assert f"document {doc.id} at b (delivered under key {doc.invoice_key})" in status.stdout, status.stdout
            check = json.loads(cli(daemon, "status", "--json").stdout)
            assert check["rejected_there"]["count"] == 1
            code, report, _ = audit_ledger(daemon.config)
            assert code == 1 and [v["code"] for v in report["violations"]] == ["rejected-at-destination"]

            b._forget(doc.invoice_key)   # a person removes it at b, by hand
            reconciled = cli(daemon, "reconcile", "--destination", "b")
            assert reconciled.returncode == 0 and "missing 1" in reconciled.stdout, reconciled.stdout
            with daemon.ledger() as led:
                assert led.get(doc.id).state == "rejected" and led.rejected_there()["count"] == 0
            assert b.stats()["posts"] == 1    # never sent again
            assert daemon.stop() == 0
            assert not any("Traceback" in line for line in daemon.lines)
            assert_ledger_sound(daemon.config)
        finally:
            daemon.ensure_gone()
