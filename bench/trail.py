"""The audit trail at scale: a schema-15 ledger of N events (raw SQL, as an
older agent left it) is upgraded (migration 17 chains them), then the real
CLI runs `audit verify` and `audit export --csv` over it; times and each
command's peak memory are printed (export streams: memory must not grow
with N). Also the cost of one chained event write.

    .venv/bin/python bench/trail.py [--events 1000000]
"""

from __future__ import annotations

import argparse
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.ledger import Ledger  # noqa: E402
from agent.ledger.schema import MIGRATIONS  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    n = ap.parse_args().events
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "agent.toml").write_text('[agent]\nstate_dir = "state"\n[[watch]]\npath = "scan"\n')
        (root / "state").mkdir()
        path = root / "state" / "ledger.sqlite3"
        conn = sqlite3.connect(path)
        for script in MIGRATIONS[:15]:
            conn.executescript(script)
        conn.execute("PRAGMA user_version = 15")
        conn.executemany("INSERT INTO events (document_id, at, actor, from_state, to_state, reason, details) "
                         "VALUES (NULL, ?, 'daemon:fapiao', 'queued', 'delivered', '已送达 erp', ?)",
                         ((f"2026-{1 + i * 12 // n:02d}-01T00:00:00.{i % 1000000:06d}Z", '{"receipt": "r"}')
                          for i in range(n)))
        conn.commit()
        conn.close()
        t = time.perf_counter()
        with Ledger(path) as ledger:
            print(f"migration 17 chained {n} events in {time.perf_counter() - t:.1f}s")
            t = time.perf_counter()
            for i in range(1000):
                ledger.note(None, now="2026-12-31T00:00:00.000000Z", actor="cli:bench", reason=f"note {i}")
            print(f"1000 chained event writes (one transaction each): {time.perf_counter() - t:.2f}s")
        for args in (["audit", "verify"], ["audit", "export", "--since", "2026-01-01", "--csv"],
                     ["audit", "export", "--since", "2026-12-01", "--json"]):
            t = time.perf_counter()
            out = root / "out"
            with open(out, "wb") as sink:
                r = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, "-m", "service", "--config",
                                    str(root / "agent.toml"), *args], stdout=sink, stderr=subprocess.PIPE, cwd=root)
            rss = int(r.stderr.strip().splitlines()[-1]) // 1024
            print(f"{' '.join(args)}: exit {r.returncode}, {out.stat().st_size / 1e6:.0f} MB out, "
                  f"{time.perf_counter() - t:.1f}s, peak RSS {rss} MB")


if __name__ == "__main__":
    main()
