"""OCR in extraction workers: the engine's threads, the OCR slots (at most N
workers OCR at once, each page holding a lock file) and each page's OCR
time for the metrics. Split from `workers.py`, which runs the processes."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import time


def init_worker(slot_dir: str | None = None, slots: int = 0, threads: int = 1, waiting=None,
                ocr_pages: list[float] | None = None) -> None:
    """Set a worker process up for OCR: `threads` engine threads, every
    page inside one of `slots` OCR slots (lock files in `slot_dir`; none
    when 0), each page's OCR time appended to `ocr_pages`."""
    # The pool runs one page per core; OCR using every core in every worker
    # would only make them fight (0.53 vs 0.84 pages/s on two cores). With
    # fewer OCR slots than workers, a slot's holder gets the waiting ones' cores.
    # Each page's OCR time (once its slot is held) is added to `ocr_pages`.
    from agent.extract.ocr import set_gate, set_threads

    set_threads(threads)
    gate = functools.partial(ocr_slot, slot_dir, slots, waiting) if slot_dir and slots > 0 else None
    if ocr_pages is not None:
        gate = functools.partial(_timed, gate or contextlib.nullcontext, ocr_pages)
    if gate is not None:
        set_gate(gate)


@contextlib.contextmanager
def _timed(gate, spent: list[float]):
    # Inside `gate` (the OCR slot): only the engine's own time is counted.
    with gate():
        start = time.perf_counter()
        try:
            yield
        finally:
            spent.append(time.perf_counter() - start)


@contextlib.contextmanager
def ocr_slot(slot_dir: str, slots: int, waiting=None):
    """Hold one of `slots` OCR slots for the duration: an flock on one of the
    files ocr-slot-N.lock in `slot_dir`, waiting for one when all are taken
    (`waiting(True)` before such a wait, `waiting(False)` after it). The
    kernel drops a dead process's lock, so a worker killed mid-page never
    leaks its slot."""
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
        if waiting:
            waiting(True)
        fcntl.flock(fds[os.getpid() % slots], fcntl.LOCK_EX)
        if waiting:
            waiting(False)
        yield
    finally:
        for fd in fds:
            os.close(fd)
