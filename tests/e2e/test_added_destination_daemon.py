"""A destination added by a reload gets the documents still on their way.

Two invoices wait for `erp` (down) when `archive` is added and the daemon
reloaded: each gets a row for `archive` at once, `archive` receives both,
and once `erp` answers they end delivered at both. Before, they ended
`delivered` ("every destination accepted it") with no row for `archive`
and nothing said so."""

from __future__ import annotations

import shutil
import signal

from tests.e2e.daemon_harness import DaemonUnderTest
from tests.support.audit import assert_ledger_sound
from tests.support.http_destination import FaultyFinanceServer

# Real samples that pass validation (their seller ids check out).
SAMPLES = ("renoyuan__easyofd/original_invoice.xml", "ofdrw__ofdrw/20240531141733.ofd")


def erp(server: FaultyFinanceServer) -> str:
    return ("[delivery]\nreconcile_interval_s = 0\n\n"
            f'[[destination]]\nname = "erp"\nurl = "{server.url}"\nconcurrency = 1\nbase_delay_s = 0.2\n'
            "max_delay_s = 0.5\nprobe_interval_s = 0.5\nbreaker_threshold = 100\nmax_attempts = 100000\n")


ARCHIVE = '\n[[destination]]\nname = "archive"\nurl = "folder://archive"\n'


def test_documents_waiting_for_a_down_destination_reach_one_added_by_reload(tmp_path, samples_dir):
    (tmp_path / "archive").mkdir()
    with FaultyFinanceServer() as server:
        server.inject("reset", times=100000, on="any")   # erp down
        d = DaemonUnderTest(tmp_path, extra=erp(server))
        d.start()
        try:
            for rel in SAMPLES:
                shutil.copy(samples_dir / rel, tmp_path / "scan" / rel.replace("/", "__"))
            d.wait_until(lambda: [x.state for x in d.documents()] == ["queued", "queued"], 60, "two queued for erp")

            d.config.write_text(d.config.read_text() + ARCHIVE)
            mark = len(d.lines)
            d.signal(signal.SIGHUP)
            line = d.wait_for_line("destination added", start=mark)
            assert "destination=archive" in line and "documents_queued=2" in line, line
            d.wait_for_line("config reloaded", start=mark)

            def rows():
                with d.ledger() as led:
                    return {doc.id: {r["destination"]: r["state"] for r in led.deliveries_of(doc.id)}
                            for doc in d.documents()}
            d.wait_until(lambda: all(r.get("archive") == "delivered" for r in rows().values()), 30,
                         "both delivered to archive while erp is down")
            assert all(r["erp"] in ("queued", "delivering") for r in rows().values())

            server.clear()   # erp back
            d.wait_until(lambda: all(x.state == "delivered" for x in d.documents()), 60, "both delivered")
            assert all(r == {"erp": "delivered", "archive": "delivered"} for r in rows().values()), rows()
            assert sorted(server.accepted.values()) == [1, 1]
            assert d.stop() == 0
        finally:
            d.stop()
    assert_ledger_sound(d.config)
