"""A real daemon delivering real samples to a real loopback finance server.

The daemon is killed with SIGKILL while a put hangs at the server (which has
already stored the invoice); the restarted daemon must look it up, not put
it again. Bad credentials must pause the destination with one error line and
quarantine nothing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import pytest

from tests.e2e.daemon_harness import DaemonUnderTest
from tests.support.audit import assert_ledger_sound
from tests.support.http_destination import FaultyFinanceServer

# Real samples that pass validation (their seller ids check out).
SAMPLES = ("renoyuan__easyofd/original_invoice.xml", "ofdrw__ofdrw/20240531141733.ofd", "ofdrw__ofdrw/1.ofd")


def destination(server: FaultyFinanceServer, **settings) -> str:
    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items())
    return ("[delivery]\nreconcile_interval_s = 0\n\n"
            f'[[destination]]\nname = "erp"\nurl = "{server.url}"\nconcurrency = 1\n{extra}')


def drop_samples(daemon: DaemonUnderTest, samples_dir) -> None:
    for rel in SAMPLES:
        shutil.copy(samples_dir / rel, daemon.root / "scan" / rel.replace("/", "__"))


@pytest.fixture
def server():
    with FaultyFinanceServer() as srv:
        yield srv


def test_sigkill_while_delivering_then_restart_delivers_each_invoice_once(tmp_path, server, samples_dir):
    daemon = DaemonUnderTest(tmp_path, extra=destination(server, timeout_s=30))
    server.inject("slow", delay=8)  # stores the invoice, then keeps the answer back
    try:
        daemon.start()
        drop_samples(daemon, samples_dir)
        daemon.wait_until(lambda: server.posts >= 1 and server.held, 30, "the first put to reach the server")
        with daemon.ledger() as led:
            assert led.counts()["delivering"] == 1
        daemon.kill()
        mark = len(daemon.lines)
        daemon.start(wait_ready=False)
        daemon.wait_for_line("msg=started", timeout=60, start=mark)  # this run's, not the killed one's
        def three_delivered():
            delivered = [d for d in daemon.documents() if d.state == "delivered"]
            return delivered if len(delivered) == 3 else None

        docs = daemon.wait_until(three_delivered, 60, "three delivered documents")
        with daemon.ledger() as led:
            log = [(d.id, a["outcome"], a["error"]) for d in docs for r in led.deliveries_of(d.id)
                   for a in r["attempts_log"]]
        why = f"server {server.stats()}\nattempts {log}\n" + "\n".join(daemon.lines[-20:])
        assert sorted(server.accepted.values()) == [1, 1, 1], why
        assert sorted(server.accepted) == sorted(d.invoice_key for d in docs), why
        # The interrupted one was looked up, not posted again.
        assert sorted(o for _, o, _ in log) == ["delivered", "delivered", "found"], why
        assert server.posts == 3, why
        assert not any("Traceback" in line for line in daemon.lines)
        assert daemon.stop() == 0
        assert_ledger_sound(daemon.config)
    finally:
        daemon.ensure_gone()


def test_bad_credentials_pause_with_one_error_line_and_quarantine_nothing(tmp_path, samples_dir):
    with FaultyFinanceServer(token="right") as server:
        daemon = DaemonUnderTest(tmp_path, extra=destination(server, token="wrong", probe_interval_s=0.3))
        daemon.config.chmod(0o600)  # a config holding a token must not be world-readable
        try:
            daemon.start()
            drop_samples(daemon, samples_dir)
            daemon.wait_for_line("destination erp paused", timeout=30)
            time.sleep(1.0)  # several probes fail meanwhile; none may add an error line
            paused = [line for line in daemon.lines if "paused" in line and "level=error" in line]
            assert len(paused) == 1 and "check token" in paused[0] and "wrong" not in paused[0]
            status = subprocess.run([sys.executable, "-m", "service", "--config", str(daemon.config), "status",
                                     "--json"], capture_output=True, text=True, timeout=30, cwd=tmp_path)
            [erp] = json.loads(status.stdout)["delivery"]["destinations"]
            assert erp["health"] == "paused" and "401" in erp["paused_error"]
            docs = daemon.documents()
            assert all(d.state in ("queued", "captured", "extracted", "valid") for d in docs)
            assert server.posts == 1 and not server.accepted
            assert daemon.stop() == 0
            assert_ledger_sound(daemon.config)
        finally:
            daemon.ensure_gone()
