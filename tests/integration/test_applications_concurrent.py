"""Application numbers under contention: two real processes file 补录
applications into one ledger file at the same time; every number is
unique and the day's sequence has no gap and no repeat."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from agent.ledger import Ledger
from tests.unit.test_amend import add_doc, invoice

REPO = Path(__file__).resolve().parents[2]
PER_PROCESS = 15

FILER = """
import sys
from agent import applications as apps
from agent.ledger import Ledger
from tests.unit.test_amend import SETTINGS, DESTS, TODAY
path, who, first, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
sys.stdin.readline()   # start together
with Ledger(path) as ledger:
    for doc_id in range(first, first + count):
        out = apps.file_amend(ledger, doc_id, {"buyer_name": f"{who} {doc_id}"}, reason="race",
                              settings=SETTINGS, destinations=DESTS, today=TODAY,
                              now="2024-06-01T01:00:00.000000Z", filer=apps.Operator(f"cli:{who}", who),
                              self_approve_empty=True)
        print(out.number, flush=True)
"""


def test_two_processes_filing_at_once_get_unique_gapless_numbers(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    with Ledger(path) as ledger:
        ids = [add_doc(ledger, invoice(number=f"241100000000123{i:05d}"), f"{i:x}") for i in range(2 * PER_PROCESS)]
    assert ids == list(range(1, 2 * PER_PROCESS + 1))
    procs = [subprocess.Popen([sys.executable, "-c", FILER, str(path), who, str(first), str(PER_PROCESS)],
                              cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for who, first in (("alice", 1), ("bob", 1 + PER_PROCESS))]
    try:
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        outs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    numbers = [n for out, _ in outs for n in out.split()]
    assert sorted(numbers) == [f"BL-20240601-{i:04d}" for i in range(1, 2 * PER_PROCESS + 1)]
    with Ledger(path) as ledger:
        rows = ledger.list_applications(limit=None)
    assert sorted(r["number"] for r in rows) == sorted(numbers)
    # Each process's own numbers rise: the sequence follows the commit order.
    for out, _ in outs:
        mine = out.split()
        assert mine == sorted(mine)
