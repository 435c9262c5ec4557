"""A worker holds several documents at once (service/workers.py,
PIPELINE_DEPTH, fewer at a slow pace): it reads the next the moment it sent
a result, so reading goes on while the main thread is busy capturing a burst
and does not collect. What a crashed or stopped worker held and never
started is read by its replacement, never failed. A likely invoice is handed
out ahead of what waits for a worker."""

from __future__ import annotations

import os
import time

from agent.pipeline import Analysis
from agent.vault import Vault
from service.worker_handle import Job
from service.workers import ExtractionPool
from tests.integration.test_worker_crash import collect_all

# The pools here hold at most this many documents a worker (the daemon's
# PIPELINE_DEPTH is larger; the pace rule caps it at ~50 for 5 ms documents).
PIPELINE_DEPTH = 8
# Where a test pins down the order documents are read in, no take-back:
# on a loaded machine a niced worker may well be 0.5 s at a 5 ms document.
NO_STALL = 600.0


def slow_reader(vault_root: str, sha256: str) -> Analysis:
    data = Vault(vault_root).read(sha256)
    if data.startswith(b"HANG"):
        time.sleep(600)
    if data.startswith(b"CRASH"):
        os._exit(139)
    time.sleep(0.3 if data.startswith(b"SLOW") else 0.005)
    return Analysis(invoices=[{"is_invoice": True, "number": data.decode()}])


def marking_reader(vault_root: str, sha256: str) -> Analysis:
    # slow_reader, leaving a line in read-marks (beside the vault) for each
    # document read: a test sees how far a worker got without collecting.
    result = slow_reader(vault_root, sha256)
    with open(os.path.join(vault_root, os.pardir, "read-marks"), "a") as marks:
        marks.write(sha256 + "\n")
    return result


def marks(vault: Vault) -> int:
    """Documents marking_reader read so far."""
    try:
        return len((vault.root.parent / "read-marks").read_text().splitlines())
    except FileNotFoundError:
        return 0


def warmed_up(pool: ExtractionPool, vault: Vault, data: bytes = b"warm-up") -> None:
    # One document read and collected: the worker's pace is known.
    assert pool.submit(10_000, vault.put_bytes(data).sha256)
    assert set(collect_all(pool, 1)) == {10_000}


def both_warmed_up(pool: ExtractionPool, vault: Vault) -> None:
    # One document each, read and collected: both workers' pace is known
    # (5 ms: they hold PIPELINE_DEPTH).
    for i in (10_000, 10_001):
        assert pool.submit(i, vault.put_bytes(b"warm %d" % i).sha256)
    assert set(collect_all(pool, 2)) == {10_000, 10_001}


def collect_each_once(pool: ExtractionPool, n: int, within_s: float) -> dict:
    """Up to `n` answers within `within_s`, by document; none may come twice."""
    got: dict = {}
    deadline = time.monotonic() + within_s
    while len(got) < n and time.monotonic() < deadline:
        for doc_id, analysis in pool.collect(0.2):
            assert doc_id not in got, f"document {doc_id} answered twice"
            got[doc_id] = analysis
    return got


def test_a_worker_reads_on_while_nobody_collects(tmp_path):
    vault = Vault(tmp_path / "vault")
    shas = [vault.put_bytes(f"{i:08d}".encode()).sha256 for i in range(PIPELINE_DEPTH)]
    pool = ExtractionPool(str(vault.root), workers=1, reader=marking_reader, depth=PIPELINE_DEPTH,
                          stall_s=NO_STALL)
    try:
        warmed_up(pool, vault)
        for i, sha in enumerate(shas):
            assert pool.submit(i, sha), "one worker takes PIPELINE_DEPTH documents"
        assert not pool.has_room()
        # The main thread capturing a burst: nobody collects. The worker's
        # own marks say how far it read (a niced worker on a loaded machine
        # may take seconds for what takes 40 ms idle: a fixed wait flaked).
        deadline = time.monotonic() + 30
        while marks(vault) < 1 + PIPELINE_DEPTH and time.monotonic() < deadline:
            time.sleep(0.05)
        # One document at a time would have stopped at the first: one mark.
        assert marks(vault) == 1 + PIPELINE_DEPTH, f"only {marks(vault) - 1} read while nobody collected"
        got = dict(pool.collect(0))
        got.update(collect_all(pool, PIPELINE_DEPTH - len(got)))
        assert {i: a.invoices[0]["number"] for i, a in got.items()} == {i: f"{i:08d}" for i in range(len(shas))}
    finally:
        pool.shutdown(1)


def test_what_a_hung_worker_held_is_read_by_its_replacement(tmp_path):
    vault = Vault(tmp_path / "vault")
    first = vault.put_bytes(b"00000001").sha256
    hang = vault.put_bytes(b"HANG here").sha256
    behind = [vault.put_bytes(f"{i:08d}".encode()).sha256 for i in (2, 3, 4)]
    pool = ExtractionPool(str(vault.root), workers=1, reader=slow_reader, timeout_s=2, depth=PIPELINE_DEPTH)
    try:
        for doc_id, sha in [(1, first), (99, hang), (2, behind[0]), (3, behind[1]), (4, behind[2])]:
            assert pool.submit(doc_id, sha)
        got = collect_all(pool, 5)
        assert set(got) == {1, 2, 3, 4, 99}
        assert got[99].error_reason == "timeout"
        for i in (1, 2, 3, 4):
            assert got[i].error_reason is None and got[i].invoices[0]["number"] == f"{i:08d}"
    finally:
        pool.shutdown(1)


def test_what_a_crashed_worker_held_is_read_by_its_replacement(tmp_path):
    vault = Vault(tmp_path / "vault")
    crash = vault.put_bytes(b"CRASH now").sha256
    behind = {i: vault.put_bytes(f"{i:08d}".encode()).sha256 for i in range(1, 5)}
    pool = ExtractionPool(str(vault.root), workers=1, reader=slow_reader, depth=PIPELINE_DEPTH)
    try:
        assert pool.submit(99, crash)
        for i, sha in behind.items():
            assert pool.submit(i, sha)
        got = collect_all(pool, 5)
        assert got[99].error_reason == "internal" and "crashed" in got[99].error_message
        assert {i: got[i].invoices[0]["number"] for i in behind} == {i: f"{i:08d}" for i in behind}
        assert pool.alive_count() == 1
    finally:
        pool.shutdown(1)


def test_an_urgent_document_is_handed_out_ahead_of_those_waiting_for_a_worker(tmp_path):
    vault = Vault(tmp_path / "vault")
    pool = ExtractionPool(str(vault.root), workers=1, reader=slow_reader, depth=PIPELINE_DEPTH, stall_s=NO_STALL)
    try:
        warmed_up(pool, vault)
        # The worker holds as many as its pace allows (PIPELINE_DEPTH at 5 ms a
        # document; fewer when the warm-up read slowly, on a loaded machine).
        depth = pool._pool[0].depth()
        pool.capacity = depth + 8  # room for jobs that wait for the worker
        for i in range(depth + 4):  # the worker's pipe is full, four wait
            assert pool.submit(i, vault.put_bytes(f"{i:08d}".encode()).sha256)
        for i in (100, 101):
            assert pool.submit(i, vault.put_bytes(f"{i:08d}".encode()).sha256, urgent=True)
        order: list[int] = []
        deadline = time.monotonic() + 60
        while len(order) < depth + 6 and time.monotonic() < deadline:
            order += [doc_id for doc_id, _ in pool.collect(0.2)]
        held = list(range(depth))  # already in the pipe: read first, in order
        assert order == held + [100, 101] + [depth + k for k in range(4)]
    finally:
        pool.shutdown(1)


def test_a_worker_at_a_slow_pace_holds_one_and_an_urgent_document_waits_for_that_one_only(tmp_path):
    vault = Vault(tmp_path / "vault")
    pool = ExtractionPool(str(vault.root), workers=1, reader=slow_reader, depth=PIPELINE_DEPTH, stall_s=NO_STALL)
    try:
        warmed_up(pool, vault, b"SLOW warm-up")  # 300 ms a document: it holds one
        for i in range(5):
            assert pool.submit(i, vault.put_bytes(b"SLOW %d" % i).sha256)
        assert pool.submit(100, vault.put_bytes(b"invoice").sha256, urgent=True)
        order: list[int] = []
        deadline = time.monotonic() + 60
        while len(order) < 6 and time.monotonic() < deadline:
            order += [doc_id for doc_id, _ in pool.collect(0.2)]
        assert order == [0, 100, 1, 2, 3, 4], "the urgent document waited behind more than the one being read"
    finally:
        pool.shutdown(1)


def test_urgent_documents_stay_ahead_and_in_order_after_a_worker_holding_others_is_replaced(tmp_path):
    # A hung worker's unstarted documents go back in line, but not ahead of
    # urgent ones already waiting; a later urgent one queues behind those.
    vault = Vault(tmp_path / "vault")
    pool = ExtractionPool(str(vault.root), workers=1, reader=slow_reader, timeout_s=2, depth=PIPELINE_DEPTH)
    pool.capacity = PIPELINE_DEPTH + 8  # room for the urgent ones
    try:
        warmed_up(pool, vault)  # 5 ms a document: it holds PIPELINE_DEPTH
        assert pool.submit(1, vault.put_bytes(b"HANG").sha256)
        for i in range(2, PIPELINE_DEPTH + 1):  # in the pipe behind the hang
            assert pool.submit(i, vault.put_bytes(b"%08d" % i).sha256)
        for i in (1001, 1002):
            assert pool.submit(i, vault.put_bytes(b"%08d" % i).sha256, urgent=True)
        order: list[int] = []
        deadline = time.monotonic() + 60
        while not order and time.monotonic() < deadline:
            order += [doc_id for doc_id, _ in pool.collect(0.2)]
        assert order == [1], "the hang times out first"
        assert pool.submit(1003, vault.put_bytes(b"%08d" % 1003).sha256, urgent=True)
        while len(order) < PIPELINE_DEPTH + 3 and time.monotonic() < deadline:
            order += [doc_id for doc_id, _ in pool.collect(0.2)]
        assert order == [1, 1001, 1002, 1003] + list(range(2, PIPELINE_DEPTH + 1))
    finally:
        pool.shutdown(1)


def test_what_a_stuck_worker_holds_behind_its_document_is_read_by_the_other_worker_at_once(tmp_path):
    # Without the take-back, the documents in the stuck worker's pipe waited
    # for the hang's [extract] timeout_s (a minute here).
    vault = Vault(tmp_path / "vault")
    pool = ExtractionPool(str(vault.root), workers=2, reader=slow_reader, timeout_s=60, depth=PIPELINE_DEPTH)
    try:
        both_warmed_up(pool, vault)
        assert pool.submit(99, vault.put_bytes(b"HANG").sha256)
        fast = {i: vault.put_bytes(b"%08d" % i).sha256 for i in range(1, 15)}
        for i, sha in fast.items():
            assert pool.submit(i, sha)
        stuck = next(w for w in pool._pool if w.jobs and w.jobs[0].doc_id == 99)
        assert len(stuck.jobs) > 1, "the hung worker holds documents behind the hang"
        start = time.monotonic()
        got = collect_each_once(pool, len(fast), 20)
        took = time.monotonic() - start
        assert {i: a.invoices[0]["number"] for i, a in got.items()} == {i: "%08d" % i for i in fast}
        assert took < 5, f"the documents behind the hang waited {took:.1f} s"
        assert pool.in_flight_ids() == {99} and [j.doc_id for j in stuck.jobs] == [99]
    finally:
        pool.shutdown(0)


def test_a_worker_that_had_started_a_job_taken_back_is_handed_nothing_until_it_says_so(tmp_path):
    # The race an outside review found: the worker answers its job and
    # starts the next (a hang) just as the pool takes that next one back.
    # The pool has not read the answer yet, so it thinks the worker is
    # still at the first. The worker must then get no new document until it
    # acknowledged the take-back: a new one would be blamed for the hang
    # (its clock started while the worker was not at it).
    vault = Vault(tmp_path / "vault")
    pool = ExtractionPool(str(vault.root), workers=2, reader=slow_reader, timeout_s=3, depth=PIPELINE_DEPTH)
    try:
        both_warmed_up(pool, vault)
        w = pool._pool[0]
        for doc_id, data in ((1, b"SLOW first"), (2, b"HANG")):  # both to worker 0
            assert w.give(Job(doc_id, vault.put_bytes(data).sha256), next(pool._tokens))
        time.sleep(0.6)  # it answered 1 (unread) and is at 2
        pool._requeue(w.take_back())  # what collect does on a stall
        assert pool.submit(3, vault.put_bytes(b"00000003").sha256)
        got = collect_each_once(pool, 3, 30)
        assert got[3].error_reason is None and got[3].invoices[0]["number"] == "00000003"
        assert got[1].error_reason is None
        assert got[2].error_reason == "timeout", "the hang is answered once, by the worker it was handed to again"
        # The worker stuck at the hang it had given back is replaced once
        # timeout_s is up: no job of its own was lost with it.
        deadline = time.monotonic() + 30
        while pool._pool[0] is w and time.monotonic() < deadline:
            pool.collect(0.2)
        assert pool._pool[0] is not w and pool.alive_count() == 2
    finally:
        pool.shutdown(0)
