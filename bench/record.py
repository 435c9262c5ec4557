"""Recording readings as the daemon does, beside capturing the same files.

    .venv/bin/python bench/record.py [--documents 2000] [--rounds 3]

The daemon's main thread does two things to every file of a burst: it
captures it (vault object, document row, source row, event; group
committed) and later records its reading (fields, judgement, queue row,
three events; RECORD_CHUNK a transaction, `Reading.record_all`). Both run
on that one thread, so a burst reaches `queued` at most at
1 / (capture + recording) files a second, whatever the workers do. This
times both over the same documents (数电 XML copies of a real sample with
new numbers, readings made beforehand, as the workers would) in fresh
ledgers, rounds one after the other, wall and CPU time each (capture's
wall time includes waiting for the disk), and prints them per document,
recording's share, and that bound. No target of its own: the daemon's
figures are bench/watch.py's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.capture import GROUP_MAX, record_file, store_file  # noqa: E402
from agent.ledger import Ledger  # noqa: E402
from agent.pipeline import analyse  # noqa: E402
from agent.validate import ValidationSettings  # noqa: E402
from agent.vault import Vault  # noqa: E402
from service.reading import RECORD_CHUNK, Reading  # noqa: E402

INVOICE = Path(__file__).resolve().parent.parent.parent / "shared" / "samples" / "renoyuan__easyofd" / \
    "original_invoice.xml"


def stamp() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def capture_round(root: Path, files: list[Path]) -> tuple[tuple[float, float], Ledger, list[int]]:
    """Capture `files` as intake does (staged, then GROUP_MAX to a group:
    one syncfs and one commit); (wall, CPU) seconds, the ledger and the ids."""
    ledger, vault = Ledger(root / "ledger.sqlite3"), Vault(root / "vault")
    ids: list[int] = []
    start, cpu = time.perf_counter(), time.process_time()
    for at in range(0, len(files), GROUP_MAX):
        group = [store_file(vault, f, max_bytes=1 << 20, root=f.parent, stage=True) for f in files[at:at + GROUP_MAX]]
        vault.commit_staged([g.staged for g in group])
        with ledger.transaction(memory_journals=True):  # as Intake.group does
            for f, stored in zip(files[at:at + GROUP_MAX], group):
                got = record_file(ledger, stored, source_kind="scanner", source=str(f.parent), now=stamp(),
                                  actor="bench")
                ids.append(got.document_id)
    return (time.perf_counter() - start, time.process_time() - cpu), ledger, ids


def record_round(ledger: Ledger, ids: list[int], readings: list) -> tuple[float, float]:
    """Record one reading per document, RECORD_CHUNK to a transaction; (wall, CPU) seconds."""
    reading = Reading(ledger, pool=None, actor="bench", on_read=lambda ids: None)
    reading.configure(ValidationSettings(max_age_days=100_000), ["erp"])
    results = list(zip(ids, readings))
    start, cpu = time.perf_counter(), time.process_time()
    for at in range(0, len(results), RECORD_CHUNK):
        reading.record_all(results[at:at + RECORD_CHUNK])
    took = (time.perf_counter() - start, time.process_time() - cpu)
    states = dict(ledger.conn.execute("SELECT state, count(*) FROM documents GROUP BY state").fetchall())
    if states != {"queued": len(ids)}:
        raise SystemExit(f"not every document was queued: {states}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--documents", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    template = INVOICE.read_bytes()
    datas = [template.replace(b"00008006", b"%08d" % (20_000_000 + i)) for i in range(args.documents)]
    readings = [analyse(d) for d in datas]
    captures, records = [], []   # (wall, CPU) ms a document
    for r in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="bench-record-") as tmp:
            root = Path(tmp)
            (root / "in").mkdir()
            files = []
            for i, data in enumerate(datas):
                files.append(root / "in" / f"x{i:05d}.xml")
                files[-1].write_bytes(data)
            took_capture, ledger, ids = capture_round(root, files)
            took_record = record_round(ledger, ids, readings)
            ledger.close()
        captures.append(tuple(t / args.documents * 1000 for t in took_capture))
        records.append(tuple(t / args.documents * 1000 for t in took_record))
        print(f"round {r + 1}: capture {captures[-1][0]:.2f} ms a document ({captures[-1][1]:.2f} CPU), "
              f"recording {records[-1][0]:.2f} ms ({records[-1][1]:.2f} CPU)")
    cap = [statistics.median(c[k] for c in captures) for k in (0, 1)]
    rec = [statistics.median(c[k] for c in records) for k in (0, 1)]
    print(f"{args.documents} documents, median of {args.rounds} rounds: capture {cap[0]:.2f} ms "
          f"({cap[1]:.2f} CPU), recording {rec[0]:.2f} ms ({rec[1]:.2f} CPU) a document; recording is "
          f"{rec[0] / (cap[0] + rec[0]):.0%} of the main thread's wall time for a burst, which bounds "
          f"`queued` at {1000 / (cap[0] + rec[0]):.0f} files/s")


if __name__ == "__main__":
    main()
