"""Ledger at scale: fill 1,000,000 documents, then time `status` and
`list --state failed --limit 50` (target: both under 50 ms), and the ingest
rate of 10,000 small files.

    .venv/bin/python bench/ledger.py [--documents 1000000] [--files 10000]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.defaults import DEFAULT_CONFIG  # noqa: E402
from agent.ledger import Ledger  # noqa: E402
from agent.model import State  # noqa: E402
from service.commands.status import status_report  # noqa: E402
from agent.config import load_config  # noqa: E402

STATES = [s.value for s in State]


def fill(ledger: Ledger, n: int) -> None:
    """Bulk rows straight through SQL: the point is the read path at scale."""
    rng = random.Random(1)
    batch = []
    with ledger.transaction() as c:
        for i in range(n):
            state = rng.choices(STATES, weights=[1, 1, 1, 3, 2, 1, 5, 80, 1, 2, 2, 1, 1, 1])[0]
            ts = f"2026-{1 + i * 11 // n:02d}-{1 + i % 28:02d}T00:00:00.{i % 1000000:06d}Z"
            batch.append((f"{i:064x}", 1000, "pdf", "scanner", ts, ts, state, f"{i:020d}", i % 100000))
            if len(batch) == 20000:
                c.executemany("INSERT INTO documents (sha256, size, media_type, source_kind, received_at, "
                              "updated_at, state, invoice_number, total_cents) VALUES (?,?,?,?,?,?,?,?,?)", batch)
                batch.clear()
        if batch:
            c.executemany("INSERT INTO documents (sha256, size, media_type, source_kind, received_at, "
                          "updated_at, state, invoice_number, total_cents) VALUES (?,?,?,?,?,?,?,?,?)", batch)


def timed(fn, repeat: int = 20) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), max(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--documents", type=int, default=1_000_000)
    ap.add_argument("--files", type=int, default=10_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "c.toml").write_text(DEFAULT_CONFIG, encoding="utf-8")
        cfg = load_config(tmp / "c.toml", env={})
        ledger = Ledger(cfg.ledger_path)
        t = time.perf_counter()
        fill(ledger, args.documents)
        print(f"fill: {args.documents:,} documents in {time.perf_counter() - t:.1f} s")
        med, worst = timed(lambda: status_report(ledger, cfg))
        print(f"status:                         median {med:.2f} ms, max {worst:.2f} ms (target < 50 ms)")
        med, worst = timed(lambda: ledger.list_documents(state="failed", limit=50))
        print(f"list --state failed --limit 50: median {med:.2f} ms, max {worst:.2f} ms (target < 50 ms)")
        cli = [sys.executable, "-m", "service", "--config", str(tmp / "c.toml")]
        for args_ in (["status", "--json"], ["list", "--state", "failed", "--limit", "50", "--json"]):
            t = time.perf_counter()
            subprocess.run(cli + args_, check=True, capture_output=True)
            print(f"whole CLI process `{' '.join(args_)}`: {(time.perf_counter() - t) * 1000:.0f} ms "
                  "(includes interpreter start-up and imports)")
        ledger.close()

        src = tmp / "files"
        src.mkdir()
        for i in range(args.files):
            (src / f"f{i:05d}.pdf").write_bytes(b"%PDF-1.4\n" + os.urandom(64) + b"\n%%EOF\n")
        fresh = tmp / "fresh"
        fresh.mkdir()
        (fresh / "c.toml").write_text(DEFAULT_CONFIG, encoding="utf-8")
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "service", "--config", str(fresh / "c.toml"), "ingest",
                            "--no-process", "--quiet", str(src)], capture_output=True, text=True)
        took = time.perf_counter() - t
        print(f"ingest --no-process of {args.files:,} small files: {took:.1f} s, "
              f"{args.files / took:.0f} files/s ({r.stdout.strip()})")


if __name__ == "__main__":
    main()
