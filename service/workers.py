"""Extraction in worker processes, one per core, each holding up to
PIPELINE_DEPTH documents and reading them one at a time, in order (the
process's side is service/worker_process.py).

Each worker is its own process with its own pipe, so the pool always knows
which document a worker holds:
- a worker still at one document after PIPELINE_STALL_S gives back the ones
  it holds behind it, unstarted (`WorkerHandle.take_back`): they go to another
  worker instead of waiting on a slow or hung file;
- a file that kills its worker (a parser crash, the OOM killer) comes back
  as an "internal" failure for that document alone, and the worker is
  replaced (the pipeline retries it a bounded number of times);
- a file still being read after `timeout_s` has its worker SIGKILLed and
  replaced, and comes back as a "timeout" (quarantined `extract-timeout`),
  so a hostile file holds one worker for at most `timeout_s`;
- workers die with the daemon, even a SIGKILLed one: they are children of
  multiprocessing's forkserver, which exits when the daemon is gone once the
  workers have let go of its "alive" pipe, and PR_SET_PDEATHSIG kills a
  worker when the forkserver exits.
The daemon never dies of a bad file.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import multiprocessing
import os
import time
from collections import deque
from multiprocessing.connection import wait

from agent.pipeline import Analysis
from service import metrics
from service.worker_ocr import ocr_slot  # noqa: F401 - part of this module's interface (tests, bench)
from service.worker_handle import PIPELINE_DEPTH, PIPELINE_STALL_S, Job, WorkerHandle
from service.worker_process import SLOT_NOTE, TAKE_BACK, analyse_object

log = logging.getLogger("fapiao.workers")


# The modules every worker needs, imported once in the forkserver so a
# replacement worker (after a timeout or a crash) starts in milliseconds.
_PRELOAD = ["agent.pipeline", "agent.extract", "service.worker_process", "service.worker_handle", "service.workers"]


class ExtractionPool:
    """Bounded pool: `submit` refuses when full (the caller keeps the work
    queued in the ledger), which is the daemon's backpressure. A document is
    read for at most `timeout_s` seconds of a worker's time. A worker holds
    up to `depth` documents; one `stall_s` at a document gives back the
    ones it holds behind it."""

    def __init__(self, vault_root: str, workers: int = 0, reader=None, ocr: bool = True,
                 ocr_slots: int = 0, slot_dir: str | None = None, timeout_s: float = 60.0,
                 ocr_idle_unload_s: float = 0.0, depth: int = PIPELINE_DEPTH, stall_s: float = PIPELINE_STALL_S):
        self.vault_root = vault_root
        # A worker idle this long with its OCR engine loaded is replaced by a
        # fresh one (0: never). Dropping the engine alone hands back ~20 of
        # the ~150 MB an OCR page leaves resident: the rest is onnxruntime's
        # and OpenCV's code and heap, which only leave with the process.
        self.ocr_idle_unload_s = float(ocr_idle_unload_s)
        # `reader(vault_root, sha256) -> Analysis` runs in the worker; tests
        # pass one that crashes on purpose to exercise crash isolation.
        self.reader = reader or functools.partial(analyse_object, ocr=ocr)
        self.workers = workers or os.cpu_count() or 1
        self.timeout_s = float(timeout_s)
        # At most `ocr_slots` workers OCR at once (0: no limit); the slots are
        # lock files in `slot_dir`.
        threads = self.workers // ocr_slots if 0 < ocr_slots < self.workers else 1
        self._init_args = (slot_dir, ocr_slots, threads)
        # Each worker holds up to `depth` documents in its pipe: it
        # starts the next the moment it sent a result, instead of idling until
        # the main thread (busy capturing a burst) collects and hands out
        # another; with one at a time a 0.6 ms XML cost a whole main-loop
        # step, and reading ran at a tenth of what two cores do.
        self.depth, self.stall_s = depth, float(stall_s)
        self.capacity = self.workers * depth
        self._tokens = itertools.count(1)
        # forkserver, not fork: workers must not inherit the daemon's lock
        # file or sockets, and forking a threaded daemon is unsafe.
        self._ctx = multiprocessing.get_context("forkserver")
        self._ctx.set_forkserver_preload(_PRELOAD)
        self._pool: list[WorkerHandle] = [self._spawn() for _ in range(self.workers)]
        # Jobs waiting for a worker: urgent ones (likely invoices) are handed
        # out before any other, each line in its own order.
        self._urgent: deque[Job] = deque()
        self._waiting: deque[Job] = deque()
        metrics.watch_pool(self)

    def _spawn(self) -> WorkerHandle:
        return WorkerHandle(self._ctx, self.vault_root, self.reader, self._init_args, self.depth)

    @property
    def in_flight(self) -> int:
        """Documents submitted and not yet returned by `collect`."""
        return len(self._urgent) + len(self._waiting) + sum(len(w.jobs) for w in self._pool)

    def has_room(self) -> bool:
        """True when another document may be submitted."""
        return self.in_flight < self.capacity

    def in_flight_ids(self) -> set[int]:
        """Documents submitted and not yet returned by `collect`."""
        return ({j.doc_id for j in self._urgent} | {j.doc_id for j in self._waiting}
                | {j.doc_id for w in self._pool for j in w.jobs})

    def worker_pids(self) -> list[int]:
        """The worker processes' ids (for status and tests)."""
        return [w.proc.pid for w in self._pool]

    def alive_count(self) -> int:
        """Worker processes that exist now. Safe from any thread (the
        metrics endpoint's): it signals pids (0: a probe, nothing is sent)
        and never touches the Process objects, which the main thread reaps."""
        alive = 0
        for w in list(self._pool):
            try:
                pid = w.proc.pid
            except ValueError:  # closed: being replaced right now
                continue
            try:
                if pid:
                    os.kill(pid, 0)
                    alive += 1
            except ProcessLookupError:
                pass
            except PermissionError:
                alive += 1
        return alive

    def submit(self, doc_id: int, sha256: str, *, urgent: bool = False) -> bool:
        """Start reading a document; False when the pool is full. An
        `urgent` one (a likely invoice) is handed out ahead of every
        non-urgent one still waiting for a worker, and to the worker with
        the least ahead of it; urgent ones keep their order among
        themselves."""
        if not self.has_room():
            return False
        (self._urgent if urgent else self._waiting).append(Job(doc_id, sha256, urgent))
        self._dispatch()
        return True

    def _dispatch(self) -> None:
        # One job at a time to the worker holding the fewest, so both get
        # work, up to its depth; never more to one still at a job after
        # PIPELINE_STALL_S (an OCR page, a hang): see `collect`.
        now = time.monotonic()
        while line := (self._urgent or self._waiting):
            open_ = [i for i, w in enumerate(self._pool) if w.available and len(w.jobs) < w.depth() and (
                not w.jobs or w.elapsed(now) < self.stall_s)]
            if not open_:
                return
            i = min(open_, key=lambda k: len(self._pool[k].jobs))
            w = self._pool[i]
            if w.give(line[0], next(self._tokens)):
                line.popleft()
            else:  # gone: its jobs go first in line again, to its replacement
                self._replace(i)

    def collect(self, timeout: float) -> list[tuple[int, Analysis]]:
        """Wait up to `timeout` s for results; returns (doc_id, analysis)
        pairs, including "internal" for a worker that died on its document
        and "timeout" for one stopped after `timeout_s`. Workers idle with
        their OCR engine loaded for `ocr_idle_unload_s` are replaced first."""
        self._unload_idle(time.monotonic())
        self._dispatch()
        busy = [w for w in self._pool if w.jobs or not w.available]
        if not busy:
            return []
        now = time.monotonic()
        left = [self.timeout_s - w.elapsed(now) for w in busy if w.paused_at is None]
        ready = set(wait([w.conn for w in busy] + [w.proc.sentinel for w in busy],
                         max(0.0, min([timeout, *left]))))
        out = []
        now = time.monotonic()
        for i, w in enumerate(self._pool):
            if not w.jobs and w.available:
                continue
            result = self._receive(w, now, out) if w.conn in ready or w.proc.sentinel in ready else True
            if not w.jobs:
                # Its clock runs from its last answer, when it may have
                # started a job taken back (OCR slot waits left out, as for
                # any job): a worker that reads on acknowledges at once.
                if not w.available and (result is None or w.elapsed(now) >= self.timeout_s):
                    # Dead or stuck at a job taken back (handed out again:
                    # that reading answers for it): nothing of its own is lost.
                    log.warning("a worker stuck at a document taken back from it was replaced",
                                extra={"dead": result is None})
                    self._replace(i)
                continue  # every job it held is answered
            job = w.job
            if result is True and w.elapsed(now) < self.timeout_s:
                # Stuck at one job (as far as the answers taken in tell: one
                # may be on its way, hence the acknowledgement): what it
                # holds behind it goes first in line again, for the other
                # worker, or for itself once it acknowledged.
                if len(w.jobs) > 1 and (w.paused_at is not None or w.elapsed(now) >= self.stall_s):
                    self._requeue(w.take_back())
                continue
            if result is None:
                code = w.proc.exitcode
                metrics.observe_reading("crashed", w.elapsed(now))
                log.error("a worker died reading this document", extra={"document": job.doc_id, "exit": code})
                out.append((job.doc_id, Analysis(
                    error_reason="internal",
                    error_message=f"the reader process crashed on this file (exit status {code})")))
            else:
                metrics.observe_reading("timeout", w.elapsed(now))
                log.error("reading a document took too long; its worker was stopped",
                          extra={"document": job.doc_id, "timeout_s": self.timeout_s})
                out.append((job.doc_id, Analysis(
                    error_reason="timeout",
                    error_message=f"reading took longer than {self.timeout_s:g} s ([extract] timeout_s); "
                                  "the reader was stopped")))
            w.jobs.popleft()  # the job that crashed or hung the worker is answered above
            self._replace(i)  # kills it (a hung one)
        self._dispatch()
        return out

    def _replace(self, i: int) -> None:
        # A new worker in slot i; the jobs the old one held and never
        # started go first in their line again (urgent or not), in their order.
        old = self._pool[i]
        old.kill()
        self._requeue(old.jobs)
        old.jobs.clear()
        self._pool[i] = self._spawn()

    def _requeue(self, jobs) -> None:
        # Jobs handed out and never started, first in their line (urgent or
        # not) again, in their order.
        self._urgent.extendleft(reversed([j for j in jobs if j.urgent]))
        self._waiting.extendleft(reversed([j for j in jobs if not j.urgent]))

    def _unload_idle(self, now: float) -> None:
        # An idle worker holds no job and no OCR slot (a slot is held for
        # one page): SIGKILL loses nothing, and its replacement starts from
        # the forkserver in milliseconds, without the engine.
        if self.ocr_idle_unload_s <= 0:
            return
        for i, w in enumerate(self._pool):
            if not w.jobs and w.available and w.ocr_loaded and now - w.idle_since >= self.ocr_idle_unload_s:
                self._replace(i)
                log.info("an idle worker was replaced to hand back its OCR engine's memory",
                         extra={"idle_s": round(now - w.idle_since, 1)})

    def _receive(self, w: WorkerHandle, now: float, out: list) -> bool | None:
        # Every answer the worker has sent, in order, each for the job it is
        # at, added to `out`; True while it is still at work (or only noted an
        # OCR slot wait), None when it died (at the job it is at now).
        try:
            while (w.jobs or not w.available) and w.conn.poll():
                doc_id, result, *answer = w.conn.recv()
                if doc_id == TAKE_BACK:
                    w.acknowledged(time.monotonic())
                    continue
                if doc_id == SLOT_NOTE:
                    if result:
                        w.paused_at = time.monotonic()
                    elif w.paused_at is not None:
                        w.started += time.monotonic() - w.paused_at
                        w.paused_at = None
                    continue
                t, token = answer
                if not w.answer_for(token):
                    w.ocr_loaded = bool(t.get("ocr_loaded"))  # the worker's engine, whatever the job
                    continue  # taken back after it was started: handed out again
                if not w.jobs:  # cannot happen: every job it holds is answered; its document is still `captured`
                    log.error("a worker answered when it held no job; answer dropped", extra={"document": doc_id})
                    continue
                if token != w.job.token:  # cannot happen: a worker reads its jobs in order
                    result = Analysis(error_reason="internal", error_message="a worker answered for another document")
                job = w.finished(now)
                w.ocr_loaded = bool(t.get("ocr_loaded"))
                if t.get("read_s") is not None:
                    w.paced(t["read_s"])
                metrics.observe_reading("failed" if result.error_reason else "ok", t.get("read_s"),
                                        t.get("ocr_s") or ())
                out.append((job.doc_id, result))
        except (EOFError, OSError):
            return None
        return None if (w.jobs or not w.available) and w.proc.exitcode is not None else True

    def shutdown(self, wait_s: float) -> list[tuple[int, Analysis]]:
        """Finish in-flight work within `wait_s` seconds and stop every
        worker. Returns what finished; unfinished documents stay `captured`
        for the next run."""
        self._urgent.clear()
        self._waiting.clear()
        finished = []
        deadline = time.monotonic() + wait_s
        while any(w.jobs for w in self._pool) and time.monotonic() < deadline:
            finished += self.collect(min(0.5, max(0.0, deadline - time.monotonic())))
        for w in self._pool:
            if w.jobs:
                w.kill()
            else:
                w.stop()
        for w in self._pool:
            with contextlib.suppress(ValueError):  # killed above: already reaped and closed
                w.proc.join(2)
            w.kill()  # reaps and closes; SIGKILL only reaches one still running
        self._pool = []
        return finished
