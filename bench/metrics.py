"""One metrics collection (a scrape, or a textfile write) over a ledger of N
invoices: each queued, attempted once (a third failing and retried), with one
backup target. A scrape reads everything `status` reads, every 15 s or so.

    .venv/bin/python bench/metrics.py [--invoices 20000]

Prints the time to build the ledger (not the point), then the first
collection (which reads every attempt line once) and the median of ten later
ones (which read only new attempt lines), and the exposition's size.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prometheus_client import generate_latest  # noqa: E402

from agent.config import parse_config  # noqa: E402
from agent.ledger import Ledger, utc  # noqa: E402
from agent.vault import Vault  # noqa: E402
from service.metrics import registry_for  # noqa: E402
from tests.support.queued import queue_invoice  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--invoices", type=int, default=20000)
    n = parser.parse_args().invoices
    with tempfile.TemporaryDirectory() as tmp:
        cfg = parse_config({"agent": {"state_dir": "state"}, "destination": [{"name": "erp", "url": "folder://out"}],
                            "backup": [{"name": "nas", "url": "file://nas"}]}, base_dir=Path(tmp))
        now = dt.datetime.now(dt.timezone.utc)
        started = time.perf_counter()
        ledger = Ledger(cfg.ledger_path)
        ledger.conn.execute("PRAGMA synchronous = OFF")   # building the fixture only
        vault = Vault(cfg.vault_dir)
        for i in range(n):
            queue_invoice(ledger, vault, i, destinations=["erp"], now=utc(now))
        lease = utc(now + dt.timedelta(minutes=5))
        while claimed := ledger.claim_deliveries("erp", now=utc(now), lease_until=lease, token="t", actor="b",
                                                 limit=500):
            for c in claimed:
                failed = c["document_id"] % 3 == 0
                ledger.finish_delivery(c["delivery_id"], "t", state="failed" if failed else "delivered",
                                       now=utc(now), actor="b", outcome="transient" if failed else "delivered",
                                       error="HTTP 503" if failed else None)
        print(f"ledger of {n} invoices built in {time.perf_counter() - started:.1f} s")
        registry = registry_for(cfg)
        t = time.perf_counter()
        text = generate_latest(registry)
        first = time.perf_counter() - t
        later = []
        for _ in range(10):
            t = time.perf_counter()
            generate_latest(registry)
            later.append(time.perf_counter() - t)
        print(f"first collection {first * 1000:.0f} ms, later ones median {statistics.median(later) * 1000:.0f} ms, "
              f"{len(text)} bytes")
        ledger.close()


if __name__ == "__main__":
    main()
