"""Extraction in a process pool, one worker per core.

A file that kills its worker (a parser crash, the OOM killer) breaks the
whole pool. Every document that was in flight then becomes a suspect and is
retried alone in a fresh pool; a suspect that breaks the pool on its own
is the culprit and comes back as an "internal" failure, so the pipeline
quarantines it. The daemon never dies of a bad file.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import multiprocessing
import os
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from agent.pipeline import Analysis, analyse
from agent.vault import Vault

log = logging.getLogger("fapiao.workers")


def _analyse_object(vault_root: str, sha256: str, ocr: bool = True) -> Analysis:
    # Runs in the worker: read from the vault there, so only a hash and a
    # small result cross the process boundary.
    return analyse(Vault(vault_root).read(sha256), ocr=ocr)


def _init_worker(slot_dir: str | None = None, slots: int = 0, threads: int = 1) -> None:
    # The pool runs one page per core; OCR using every core in every worker
    # would only make them fight (0.53 vs 0.84 pages/s on two cores). With
    # fewer OCR slots than workers, a slot's holder gets the waiting ones' cores.
    from agent.extract.ocr import set_gate, set_threads

    set_threads(threads)
    if slot_dir and slots > 0:
        set_gate(functools.partial(ocr_slot, slot_dir, slots))


@contextlib.contextmanager
def ocr_slot(slot_dir: str, slots: int):
    """Hold one of `slots` OCR slots for the duration: an flock on one of the
    files ocr-slot-N.lock in `slot_dir`, waiting for one when all are taken.
    The kernel drops a dead process's lock, so a worker killed mid-page
    never leaks its slot."""
    fds = []
    try:
        for n in range(slots):
            fd = os.open(os.path.join(slot_dir, f"ocr-slot-{n}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fds.append(fd)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            yield
            return
        # All taken: queue on one, spread by pid so waiters do not pile on slot 0.
        fcntl.flock(fds[os.getpid() % slots], fcntl.LOCK_EX)
        yield
    finally:
        for fd in fds:
            os.close(fd)


@dataclass
class _Job:
    doc_id: int
    sha256: str
    suspect: bool = False


class ExtractionPool:
    """Bounded pool: `submit` refuses when full (the caller keeps the work
    queued in the ledger), which is the daemon's backpressure."""

    def __init__(self, vault_root: str, workers: int = 0, reader=None, ocr: bool = True,
                 ocr_slots: int = 0, slot_dir: str | None = None):
        self.vault_root = vault_root
        # `reader(vault_root, sha256) -> Analysis` runs in the worker; tests
        # pass one that crashes on purpose to exercise crash isolation.
        self.reader = reader or functools.partial(_analyse_object, ocr=ocr)
        self.workers = workers or os.cpu_count() or 1
        # At most `ocr_slots` workers OCR at once (0: no limit); the slots are
        # lock files in `slot_dir`.
        threads = self.workers // ocr_slots if 0 < ocr_slots < self.workers else 1
        self._init_args = (slot_dir, ocr_slots, threads)
        self.capacity = self.workers * 2
        self._pool = self._new_pool()
        self._running: dict[Future, _Job] = {}
        self._suspects: deque[_Job] = deque()
        self._isolating: Future | None = None

    def _new_pool(self) -> ProcessPoolExecutor:
        # forkserver, not fork: workers must not inherit the daemon's lock
        # file or sockets, or a SIGKILLed daemon's orphans would hold its lock.
        return ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("forkserver"),
                                   initializer=_init_worker, initargs=self._init_args)

    @property
    def in_flight(self) -> int:
        """Documents submitted or waiting to be retried alone."""
        return len(self._running) + len(self._suspects)

    def has_room(self) -> bool:
        """True when another document may be submitted."""
        return not self._suspects and len(self._running) < self.capacity

    def in_flight_ids(self) -> set[int]:
        """Documents submitted and not yet returned by `collect`."""
        return {j.doc_id for j in self._running.values()} | {j.doc_id for j in self._suspects}

    def submit(self, doc_id: int, sha256: str) -> bool:
        """Start reading a document; False when the pool is full."""
        if not self.has_room():
            return False
        self._start(_Job(doc_id, sha256))
        return True

    def _start(self, job: _Job) -> None:
        try:
            fut = self._pool.submit(self.reader, self.vault_root, job.sha256)
        except BrokenProcessPool:
            self._restart()
            fut = self._pool.submit(self.reader, self.vault_root, job.sha256)
        self._running[fut] = job

    def collect(self, timeout: float) -> list[tuple[int, Analysis]]:
        """Wait up to `timeout` s for results; returns (doc_id, analysis) pairs."""
        if not self._running:
            self._isolate_next()
            if not self._running:
                return []
        done, _ = wait(list(self._running), timeout=timeout, return_when=FIRST_COMPLETED)
        out = []
        broken = False
        for fut in done:
            job = self._running.pop(fut)
            try:
                out.append((job.doc_id, fut.result()))
            except BrokenProcessPool:
                broken = True
                if job.suspect:
                    log.error("worker died reading this document; quarantining it",
                              extra={"document": job.doc_id})
                    out.append((job.doc_id, Analysis(error_reason="internal",
                                                     error_message="the reader process crashed on this file")))
                else:
                    self._suspects.append(_Job(job.doc_id, job.sha256, suspect=True))
            except Exception as e:  # pickling or a bug outside analyse's own guard
                out.append((job.doc_id, Analysis(error_reason="internal", error_message=f"{type(e).__name__}: {e}")))
        if broken:
            for fut, job in list(self._running.items()):
                self._suspects.append(_Job(job.doc_id, job.sha256, suspect=True))
            self._running.clear()
            log.warning("a worker process died; retrying its documents one at a time",
                        extra={"suspects": len(self._suspects)})
            self._restart()
        self._isolate_next()
        return out

    def _isolate_next(self) -> None:
        # Suspects run strictly one at a time, so a crash names its culprit.
        if self._suspects and not self._running:
            self._start(self._suspects.popleft())

    def _restart(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._new_pool()

    def shutdown(self, wait_s: float) -> list[tuple[int, Analysis]]:
        """Finish in-flight work within `wait_s` seconds and stop. Returns what
        finished; unfinished documents stay `captured` for the next run."""
        finished = []
        deadline = time.monotonic() + wait_s
        while self._running and time.monotonic() < deadline:
            finished += self.collect(min(0.5, max(0.0, deadline - time.monotonic())))
        self._suspects.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)
        return finished
