"""Delivery throughput: 5,000 invoices through the real ledger and delivery
threads to the loopback HTTP finance server, with and without faults.

    .venv/bin/python bench/deliver.py [--invoices 5000] [--concurrency 4]

Each run is its own process (so peak RSS is that run's), with the server in
another process (so its work is not counted against ours). The files are put
in the vault first (capture's cost, measured by other benches); then the
main thread queues the invoices, one ledger transaction each as the
pipeline does, while the delivery threads run.
Prints invoices/s (first queued to last delivered), p50/p95 queue-to-delivered
latency, peak RSS, and what the server counted: every key accepted exactly once.
Unpaced runs queue as fast as the ledger takes them (capacity; latency is
then mostly waiting in the backlog); paced runs feed an even arrival rate
below capacity, so their latency is delivery's own.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.config import parse_config  # noqa: E402
from agent.ledger import Ledger, utc  # noqa: E402
from agent.ledger.rows import parse_utc  # noqa: E402
from agent.vault import Vault  # noqa: E402
from service.delivery import DeliveryService  # noqa: E402
from tests.support.queued import number_of, queue_invoice, store_file  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def start_server(fail_rate: float, seed: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.http_destination", "--fail-rate", str(fail_rate),
                             "--seed", str(seed)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    return proc, proc.stdout.readline().strip()


def server_stats(url: str) -> dict:
    root = url.rsplit("/api", 1)[0]
    with urllib.request.urlopen(root + "/_admin/stats", timeout=30) as resp:
        return json.load(resp)


def one_run(n: int, fail_rate: float, concurrency: int, seed: int, rate: float | None) -> dict:
    """Deliver `n` invoices in this process; returns the figures as a dict."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    proc, url = start_server(fail_rate, seed)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = parse_config({"agent": {"state_dir": "state"}, "delivery": {"reconcile_interval_s": 0},
                                "destination": [{"name": "erp", "url": url, "timeout_s": 10.0,
                                                 "concurrency": concurrency, "base_delay_s": 0.05,
                                                 "max_delay_s": 2.0, "probe_interval_s": 0.5,
                                                 "max_attempts": 50}]}, base_dir=Path(tmp))
            ledger, vault = Ledger(cfg.ledger_path), Vault(cfg.vault_dir)
            files = [store_file(vault, i) for i in range(n)]  # capture's cost, not delivery's
            service = DeliveryService(cfg).start()
            t0 = time.perf_counter()
            for i in range(n):
                if rate:  # an even arrival rate, as scanners and mailboxes feed the daemon
                    ahead = t0 + i / rate - time.perf_counter()
                    if ahead > 0:
                        time.sleep(ahead)
                queue_invoice(ledger, vault, i, destinations=["erp"], now=utc(dt.datetime.now(dt.timezone.utc)),
                              actor="bench", stored=files[i])
                service.kick()  # as the daemon does after each document it queues
            queued_s = time.perf_counter() - t0
            while ledger.counts()["delivered"] < n:
                time.sleep(0.02)
            elapsed = time.perf_counter() - t0
            service.stop()
            service.join(10)
            rows = ledger.conn.execute("SELECT queued_at, delivered_at, attempts FROM deliveries").fetchall()
            lat = sorted((parse_utc(r[1]) - parse_utc(r[0])).total_seconds() for r in rows)
            attempts = ledger.conn.execute("SELECT count(*) FROM attempts").fetchone()[0]
            ledger.close()
        stats = server_stats(url)
    finally:
        proc.terminate()
        proc.wait(10)
    keys = {number_of(i) for i in range(n)}
    return {
        "fail_rate": fail_rate, "rate": rate, "invoices": n, "elapsed_s": elapsed, "queueing_s": queued_s,
        "per_s": n / elapsed, "p50_s": statistics.median(lat), "p95_s": lat[int(0.95 * (len(lat) - 1))],
        "attempts": attempts, "posts": stats["posts"], "faults": sum(stats["faults_served"].values()),
        "exactly_once": set(stats["accepted"]) == keys and set(stats["accepted"].values()) == {1},
        "duplicates": len(stats["duplicates"]), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--invoices", type=int, default=5000)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--paced", type=float, default=150.0, metavar="PER_S",
                    help="arrival rate of the paced runs (below capacity, so latency is delivery's own)")
    ap.add_argument("--one", type=float, metavar="FAIL_RATE", help=argparse.SUPPRESS)
    ap.add_argument("--rate", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one is not None:
        print(json.dumps(one_run(args.invoices, args.one, args.concurrency, args.seed, args.rate)))
        return 0
    print(f"{args.invoices} invoices -> loopback HTTP destination, concurrency {args.concurrency}, "
          f"synchronous=FULL ledger (claims and outcomes committed per batch of up to 8 rows)")
    ok = True
    for fail, paced in ((0.0, None), (0.3, None), (0.0, args.paced), (0.3, args.paced)):
        cmd = [sys.executable, __file__, "--invoices", str(args.invoices), "--concurrency", str(args.concurrency),
               "--seed", str(args.seed), "--one", str(fail)] + (["--rate", str(paced)] if paced else [])
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        ok &= r["exactly_once"]
        achieved = r["invoices"] / r["queueing_s"]
        arrival = (f"arrivals paced at {paced:g}/s (achieved {achieved:.0f}/s beside delivery's own commits)"
                   if paced else f"unpaced arrivals ({achieved:.0f}/s: latency is mostly waiting in the backlog)")
        print(f"fail rate {fail:>4.0%}, {arrival}")
        print(f"    {r['per_s']:7.1f} invoices/s ({r['elapsed_s']:.1f} s first queued -> last delivered)  "
              f"queue->delivered p50 {r['p50_s']:.2f} s  p95 {r['p95_s']:.2f} s  peak RSS {r['peak_rss_mb']:.0f} MB")
        print(f"    server: {r['posts']} POSTs, {r['faults']} faults served, {r['attempts']} attempts "
              f"in the ledger; every invoice accepted exactly once: {r['exactly_once']} "
              f"(duplicates {r['duplicates']})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
