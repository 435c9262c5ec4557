"""The daemon's backup round during an intake burst, on a ledger that already holds a lot.

    .venv/bin/python bench/backup_rounds.py [--held 100000] [--rounds 20] [--per 10]

A ledger whose file:// target already holds `--held` objects, all backed up
today (rows filled straight through SQL: the point is the round's cost).
Then `--rounds` times: `--per` new files are captured and the daemon's own
backup thread code (service.backup.TargetRunner._once: queue, mirror,
sidecar batch, ledger, manifests, the snapshot/verify/drill checks) runs
one round. Prints the median wall and CPU time of a round: it should not
grow with `--held` (issue 17: each round used to rebuild the day's
manifest and count every held row, quadratic in a burst).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.capture import capture_bytes  # noqa: E402
from agent.config import load_config  # noqa: E402
from agent.ledger import Ledger  # noqa: E402
from agent.vault import Vault  # noqa: E402
from service.backup import BackupService, PutPool  # noqa: E402


def fill(ledger: Ledger, held: int, stamp: str) -> None:
    """`held` documents, each with its event and a `done` backup row on "nas"."""
    with ledger.transaction() as c:
        for start in range(0, held, 50_000):
            ids = range(start, min(held, start + 50_000))
            c.executemany("INSERT INTO documents (id, sha256, size, media_type, source_kind, received_at, "
                          "updated_at, state) VALUES (?, ?, 1000, 'pdf', 'scanner', ?, ?, 'delivered')",
                          [(i + 1, f"{i:064x}", stamp, stamp) for i in ids])
            c.executemany("INSERT INTO events (document_id, at, actor, to_state) VALUES (?, ?, 'daemon:intake', "
                          "'delivered')", [(i + 1, stamp) for i in ids])
            c.executemany("INSERT INTO backups (sha256, target, state, attempts, updated_at, done_at, size, "
                          "queued_at, sidecar_batch) VALUES (?, 'nas', 'done', 1, ?, ?, 1000, ?, 'sidecars/x.json')",
                          [(f"{i:064x}", stamp, stamp, stamp) for i in ids])
        c.execute("INSERT INTO backup_targets (name, updated_at, enqueued_doc_id, enqueued_event_id, "
                  "snapshot_event_id, last_snapshot_at, last_verify_at) VALUES ('nas', ?, ?, ?, ?, ?, ?)",
                  (stamp, held, held, held, stamp, stamp))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--held", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--per", type=int, default=10, help="new files before each round")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-rounds-") as tmp:
        root = Path(tmp)
        (root / "nas").mkdir()
        (root / "agent.toml").write_text('[agent]\nstate_dir = "state"\n[backup_policy]\ndrill_weekday = "off"\n'
                                         '[[backup]]\nname = "nas"\nurl = "file://nas"\n', encoding="utf-8")
        cfg = load_config(root / "agent.toml")
        vault = Vault(cfg.vault_dir)
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
        t0 = time.perf_counter()
        with Ledger(cfg.ledger_path) as ledger:
            fill(ledger, args.held, stamp)
        print(f"held: {args.held} (filled in {time.perf_counter() - t0:.1f} s)  rounds: {args.rounds}  "
              f"new files a round: {args.per}  cpus: {os.cpu_count()}", flush=True)
        runner = BackupService(cfg).runners[0]
        pool = PutPool(4, "bench")
        rng, times, n = random.Random(1), [], 0
        try:
            with Ledger(cfg.ledger_path) as ledger:
                for _ in range(args.rounds):
                    for _ in range(args.per):
                        n += 1
                        capture_bytes(ledger, vault, os.urandom(2000), name=f"b{n}.pdf", source_kind="email",
                                      source="mail", now=stamp, actor="daemon:intake", details={"subject": f"{n}"})
                    wall, cpu = time.perf_counter(), time.process_time()
                    runner._once(ledger, vault, rng, pool, [0])
                    times.append((time.perf_counter() - wall, time.process_time() - cpu))
                left = ledger.backup_target("nas")["backlog"]
        finally:
            pool.close()
        print(f"a round: median {statistics.median(t[0] for t in times) * 1000:.1f} ms wall, "
              f"{statistics.median(t[1] for t in times) * 1000:.1f} ms CPU  (left behind: {left})")


if __name__ == "__main__":
    main()
