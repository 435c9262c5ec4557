"""Cost of the duplicate rule when one invoice arrives many times.

    .venv/bin/python bench/duplicates.py [--copies 2000]

Judges `--copies` documents of one invoice key in a real ledger (the first is
queued, the rest become its duplicates), then rejects the first, which judges
every duplicate again (one becomes the copy, the others point at it).
Prints ms per arrival for the first and last 100 arrivals (the rule must not
grow with the number of copies) and the seconds the reject took.
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

from agent.amend import reject  # noqa: E402
from agent.ledger import Ledger, utc  # noqa: E402
from agent.vault import Vault  # noqa: E402
from tests.support.judged import SETTINGS, add_judged, invoice  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=2000)
    args = parser.parse_args()
    today = dt.date.today()
    now = utc(dt.datetime.now(dt.timezone.utc))
    with tempfile.TemporaryDirectory() as tmp:
        ledger, vault = Ledger(Path(tmp) / "ledger.sqlite3"), Vault(Path(tmp) / "vault")
        times = []
        for i in range(args.copies):
            start = time.perf_counter()
            add_judged(ledger, vault, invoice(today), f"copy-{i}", destinations=["erp"], today=today, now=now)
            times.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        reject(ledger, 1, reason="bench", settings=SETTINGS, destinations=["erp"], today=today, now=now,
               actor="bench")
        rejected_s = time.perf_counter() - start
        counts = {k: v for k, v in ledger.counts().items() if v}
        ledger.close()
    print(f"copies {args.copies}: ms per arrival, first 100 median {statistics.median(times[:100]):.2f}, "
          f"last 100 median {statistics.median(times[-100:]):.2f}; reject of the live copy re-judged "
          f"{args.copies - 1} duplicates in {rejected_s:.2f} s; states {counts}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
