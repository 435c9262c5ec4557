"""Attack 18 through a real daemon: one HTTP destination whose finance system
refuses one invoice with 403 (a business permission), asks another to come
back in 1e12 seconds and trickles its answer to a third, while it accepts
the rest. The daemon must deliver the rest, record every one of them (no row
left `delivering`, no worker step failing), and fail the refused invoice in
the end with the system's own words, never pausing the destination for it
for good."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from agent.ledger import Ledger, utc
from agent.vault import Vault
from service.context import now_dt
from tests.e2e.daemon_harness import DaemonUnderTest
from tests.integration.test_attack18_http import TOKEN, EvilServer, trickle
from tests.support.queued import number_of, queue_invoice

REFUSED, BUSY, TRICKLED, HEALTHY = 1, 2, 3, (4, 5, 6, 7)


def _answer(server):
    def answer(key, h):
        if key == number_of(REFUSED):
            return h.send(403, json.dumps({"message": "无此发票的入账权限"}, ensure_ascii=False).encode()) or True
        if key == number_of(BUSY):
            return h.send(503, b'{"message": "busy"}', [("Retry-After", "1e12")]) or True
        if key == number_of(TRICKLED):
            return trickle(server, h, b"HTTP/1.1 201 Created\r\nContent-Length: 1000\r\n\r\n", b" " * 1000, 0.2)
        return None
    return answer


def test_one_refused_busy_or_trickled_invoice_holds_up_nothing(tmp_path):
    with EvilServer() as server:
        server.answer = _answer(server)
        d = DaemonUnderTest(tmp_path, extra=(
            "[delivery]\nreconcile_interval_s = 0\n\n"
            f'[[destination]]\nname = "fin"\nurl = "{server.url}"\ntimeout_s = 1\nconcurrency = 2\n'
            "max_attempts = 3\nbase_delay_s = 0.1\nmax_delay_s = 0.3\nprobe_interval_s = 0.5\n"))
        with Ledger(tmp_path / "state" / "ledger.sqlite3") as ledger:
            vault = Vault(tmp_path / "state" / "vault")
            docs = {i: queue_invoice(ledger, vault, i, destinations=["fin"], now=utc(now_dt()))
                    for i in (REFUSED, BUSY, TRICKLED, *HEALTHY)}
        os.environ["FAPIAO_AGENT__DESTINATION__FIN__TOKEN"] = TOKEN
        try:
            d.start()

            def rows():
                with d.ledger() as led:
                    return {i: led.deliveries_of(doc)[0] for i, doc in docs.items()}

            def settled():
                r = rows()
                return r if (r[REFUSED]["state"] == "failed" and "timed out" in (r[TRICKLED]["last_error"] or "")
                             and r[BUSY]["state"] == "queued" and r[BUSY]["attempts"] >= 1
                             and all(r[i]["state"] == "delivered" for i in HEALTHY)) else None
            final = d.wait_until(settled, 60, "the healthy invoices delivered and the refused one failed")
        finally:
            os.environ.pop("FAPIAO_AGENT__DESTINATION__FIN__TOKEN", None)
            d.stop()
    log = "\n".join(d.lines)
    refused = final[REFUSED]
    assert "gave up (3 attempts)" in refused["last_error"] and "无此发票的入账权限" in refused["last_error"]
    assert "refused for this invoice only" in log and "failed for good" in log
    assert "worker step failed" not in log and "OverflowError" not in log
    assert final[BUSY]["last_error"] and final[BUSY]["next_attempt_at"]
    assert "timed out" in (final[TRICKLED]["last_error"] or "")
    assert TOKEN not in log
    shown = subprocess.run([sys.executable, "-m", "service", "--config", str(d.config), "show", str(docs[HEALTHY[0]])],
                           capture_output=True, text=True, timeout=60, cwd=tmp_path).stdout
    assert f"fin: delivered under key {number_of(HEALTHY[0])}, receipt OK-{number_of(HEALTHY[0])}," in shown
