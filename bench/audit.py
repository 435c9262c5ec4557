"""`audit ledger` at scale: a sound ledger of 100,000 documents (states,
events, arrivals, delivery rows, attempts, seen files, duplicates) and a vault
holding each one's object, then the whole CLI timed with and without
re-hashing the vault. The audit must find nothing on it.

    .venv/bin/python bench/audit.py [--documents 100000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.config import load_config  # noqa: E402
from agent.ledger import Ledger  # noqa: E402
from agent.vault import Vault  # noqa: E402

CONFIG = """[agent]
state_dir = "state"
[[watch]]
path = "scan"
[[destination]]
name = "erp"
url = "http://127.0.0.1:9/"
"""
STATES = ["confirmed"] * 70 + ["delivered"] * 10 + ["quarantined"] * 10 + ["duplicate"] * 5 + \
         ["rejected"] * 2 + ["queued"] * 3


def fill(ledger: Ledger, vault: Vault, n: int, scan: Path) -> None:
    """Rows straight through SQL, as the pipeline would have left them."""
    rng = random.Random(1)
    docs, events, sources, rows, attempts, seen = [], [], [], [], [], []
    recent = "2026-12-01T00:00:00.000000Z"
    for i in range(1, n + 1):
        data = f"invoice {i}\n".encode() * 8
        sha = hashlib.sha256(data).hexdigest()
        path = vault.path(sha)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        state = rng.choice(STATES) if i > 10 else "confirmed"
        dup_of = rng.randrange(1, 11) if state == "duplicate" else None
        key = f"24442{(dup_of or i):015d}"
        ts = f"2026-{1 + i * 10 // n:02d}-{1 + i % 28:02d}T00:00:00.{i % 1000000:06d}Z"
        problems = json.dumps([{"code": "amount-range", "severity": "error", "field": None, "message": "x"}]) \
            if state == "quarantined" else "[]"
        docs.append((i, sha, len(data), ts, recent if state == "queued" else ts, state, problems, key, dup_of))
        events.append((i, ts, "captured", "captured"))
        events.append((i, ts, state, f"moved to {state}"))
        src = str(scan / f"f{i}.pdf")
        sources.append((i, ts, src))
        if i % 2:
            seen.append((src, ts))
        if state in ("confirmed", "delivered", "queued"):
            row_state = state
            receipt = json.dumps({"destination": "erp", "key": key}) if state != "queued" else None
            rows.append((i, i, row_state, receipt, recent if state == "queued" else ts,
                         None if state == "queued" else ts, ts if state == "confirmed" else None))
            if state != "queued":
                attempts.append((i, ts, "delivered"))
            if state == "confirmed":
                attempts.append((i, ts, "found"))
    with ledger.transaction() as c:
        c.executemany("INSERT INTO documents (id, sha256, size, media_type, source_kind, received_at, updated_at, "
                      "state, problems, invoice_key, duplicate_of) VALUES (?, ?, ?, 'pdf', 'scanner', ?, ?, ?, ?, ?, ?)",
                      docs)
        c.executemany("INSERT INTO events (document_id, at, actor, to_state, reason) VALUES (?, ?, 'bench', ?, ?)",
                      events)
        c.executemany("INSERT INTO sources (document_id, at, source_kind, original_path) "
                      "VALUES (?, ?, 'scanner', ?)", sources)
        c.executemany("INSERT INTO deliveries (id, document_id, destination, state, receipt, queued_at, "
                      "updated_at, delivered_at, confirmed_at) VALUES (?, ?, 'erp', ?, ?, ?, ?, ?, ?)",
                      [(r[0], r[1], r[2], r[3], r[4], r[4], r[5], r[6]) for r in rows])
        c.executemany("INSERT INTO attempts (delivery_id, at, outcome) VALUES (?, ?, ?)", attempts)
        c.executemany("INSERT INTO seen_files (path, size, mtime_ns, outcome, at) VALUES (?, 1, 1, 'captured', ?)",
                      seen)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--documents", type=int, default=100_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "c.toml").write_text(CONFIG, encoding="utf-8")
        cfg = load_config(root / "c.toml", env={})
        t = time.perf_counter()
        with Ledger(cfg.ledger_path) as ledger:
            fill(ledger, Vault(cfg.vault_dir), args.documents, cfg.watches[0].path)
        print(f"fill: {args.documents:,} documents and vault objects in {time.perf_counter() - t:.1f} s")
        cli = [sys.executable, "-m", "service", "--config", str(root / "c.toml"), "audit", "ledger", "--json"]
        failed = False
        for extra, what in (([], "with every object re-hashed"), (["--no-hash"], "without re-hashing")):
            t = time.perf_counter()
            r = subprocess.run(cli + extra, capture_output=True, text=True)
            took = time.perf_counter() - t
            report = json.loads(r.stdout)
            print(f"audit ledger {what}: {took:.1f} s for {args.documents:,} documents, exit {r.returncode}, "
                  f"{len(report['violations'])} violations")
            if r.returncode != 0:
                print("  " + "\n  ".join(f"{v['code']}: {v['message']}" for v in report["violations"][:10]))
                failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
