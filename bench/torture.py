"""Crash torture, long version: 1,000 invoices, 50 SIGKILLs of the real daemon
while it delivers to a fault-injecting loopback server and backs up to
SeaweedFS and a folder. Prints the counts; exits non-zero on any loss or
duplicate.

    .venv/bin/python bench/torture.py [--invoices 1000] [--kills 50] [--seed 1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.e2e import torture  # noqa: E402
from tests.support.seaweed import SeaweedServer  # noqa: E402

SAMPLES = Path(__file__).resolve().parent.parent.parent / "shared" / "samples"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--invoices", type=int, default=1000)
    ap.add_argument("--kills", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--fail-rate", type=float, default=0.1)
    args = ap.parse_args()
    t = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, SeaweedServer() as seaweed:
        try:
            result = torture.run(Path(tmp), SAMPLES, seaweed, invoices=args.invoices, kills=args.kills,
                                 seed=args.seed, fail_rate=args.fail_rate, settle_timeout=1800)
        except AssertionError as e:
            print(f"FAILED: {e}")
            return 1
    print(f"torture: {args.kills} SIGKILLs, {args.invoices} invoices, server fail rate {args.fail_rate:.0%}, "
          f"{time.monotonic() - t:.0f} s")
    for k, v in result.items():
        print(f"  {k}: {v}")
    print("lost: 0, delivered twice: 0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
