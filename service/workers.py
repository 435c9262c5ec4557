"""Extraction in worker processes, one per core, each running one document
at a time.

Each worker is its own process with its own pipe, so the pool always knows
which document a worker holds:
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
import ctypes
import functools
import logging
import multiprocessing
import os
import signal
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait

from agent.pipeline import Analysis, analyse
from agent.vault import Vault
from service import metrics
from service.worker_ocr import init_worker as _init_worker  # bench/extract.py's pools use it too
from service.worker_ocr import ocr_slot  # noqa: F401 - part of this module's interface (tests, bench)

log = logging.getLogger("fapiao.workers")


def _analyse_object(vault_root: str, sha256: str, ocr: bool = True) -> Analysis:
    # Runs in the worker: read from the vault there, so only a hash and a
    # small result cross the process boundary.
    return analyse(Vault(vault_root).read(sha256), ocr=ocr)


@dataclass
class _Job:
    doc_id: int
    sha256: str


PR_SET_PDEATHSIG = 1
WORKER_NICE = 10
_SLOT_NOTE = "ocr-slot-wait"
# The modules every worker needs, imported once in the forkserver so a
# replacement worker (after a timeout or a crash) starts in milliseconds.
_PRELOAD = ["agent.pipeline", "agent.extract", "service.workers"]


def die_with_parent() -> None:
    """Make the kernel SIGKILL this process when its parent exits, and stop
    holding the forkserver's "alive" pipe, so the forkserver (our parent)
    exits as soon as the daemon does. Linux only; elsewhere a no-op."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    fd = getattr(server, "_forkserver_alive_fd", None)
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)
        server._forkserver_alive_fd = None


def _worker_main(conn: Connection, vault_root: str, reader, init_args: tuple) -> None:
    # One document at a time: receive (doc_id, sha256), send (doc_id,
    # Analysis, timing): the worker's own clock, for the metrics' histograms.
    # EOF on the pipe (the daemon closed it or died) ends the worker.
    from agent.extract.ocr_engine import engine_loaded

    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the daemon, which stops us
    # Reading yields the CPU to capture: the daemon's main thread takes
    # files in (the step that makes them safe) and records what workers
    # read; on a machine with as many workers as cores, at equal priority
    # the workers would take the cores from it and a burst would be
    # captured at a fraction of the disk's pace. Idle cores still go to
    # the workers in full.
    with contextlib.suppress(OSError):
        os.nice(WORKER_NICE)
    ocr_pages: list[float] = []
    slot_wait = {"since": 0.0, "total": 0.0}

    def waiting(flag: bool) -> None:
        # Time spent queueing for an OCR slot is another document's, not
        # this one's: the pool stops this document's clock meanwhile, and
        # the reading time sent back leaves it out.
        if flag:
            slot_wait["since"] = time.perf_counter()
        else:
            slot_wait["total"] += time.perf_counter() - slot_wait["since"]
        conn.send((_SLOT_NOTE, flag))

    _init_worker(*init_args, waiting, ocr_pages)
    while True:
        try:
            doc_id, sha256 = conn.recv()
        except (EOFError, OSError):
            return
        ocr_pages.clear()
        slot_wait["total"] = 0.0
        start = time.perf_counter()
        try:
            result = reader(vault_root, sha256)
        except Exception as e:  # a reader that raises instead of returning an Analysis
            result = Analysis(error_reason="internal", error_message=f"{type(e).__name__}: {e}")
        timing = {"read_s": time.perf_counter() - start - slot_wait["total"], "ocr_s": list(ocr_pages),
                  "ocr_loaded": engine_loaded()}
        try:
            conn.send((doc_id, result, timing))
        except (EOFError, OSError):
            return
        except Exception as e:  # the result does not pickle
            conn.send((doc_id, Analysis(error_reason="internal",
                                        error_message=f"result not transferable: {type(e).__name__}: {e}"),
                       timing))


class _Worker:
    """One worker process, its end of the pipe, and the job it holds."""

    def __init__(self, ctx, vault_root: str, reader, init_args: tuple):
        parent, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_worker_main, args=(child, vault_root, reader, init_args),
                                name="fapiao-extract", daemon=True)
        self.proc.start()
        child.close()
        self.conn = parent
        self.job: _Job | None = None
        self.timing: dict | None = None  # what the worker said of its last document
        self.started = 0.0
        self.paused_at: float | None = None  # while queueing for an OCR slot
        self.idle_since = time.monotonic()
        self.ocr_loaded = False  # it said its OCR engine is loaded (after its last document)

    def elapsed(self, now: float) -> float:
        """Seconds this worker has spent on its job, waits for an OCR slot excluded."""
        return (self.paused_at if self.paused_at is not None else now) - self.started

    def give(self, job: _Job) -> bool:
        """Hand `job` over; False when the worker is gone."""
        try:
            self.conn.send((job.doc_id, job.sha256))
        except (OSError, EOFError, ValueError):
            return False
        self.job, self.started, self.paused_at = job, time.monotonic(), None
        return True

    def kill(self) -> None:
        """SIGKILL the process and reap it; the pipe and the process's own
        descriptors are closed (a daemon replaces workers for months)."""
        # The forkserver reaps its children, so only signal a pid not known dead.
        with contextlib.suppress(OSError, ValueError):
            if self.proc.exitcode is None:
                self.proc.kill()
        self.proc.join(5)
        with contextlib.suppress(OSError):
            self.conn.close()
        with contextlib.suppress(ValueError):  # still running: leave it to the finalizer
            self.proc.close()

    def stop(self) -> None:
        """Close the pipe (an idle worker exits on EOF)."""
        with contextlib.suppress(OSError):
            self.conn.close()


class ExtractionPool:
    """Bounded pool: `submit` refuses when full (the caller keeps the work
    queued in the ledger), which is the daemon's backpressure. A document is
    read for at most `timeout_s` seconds of a worker's time."""

    def __init__(self, vault_root: str, workers: int = 0, reader=None, ocr: bool = True,
                 ocr_slots: int = 0, slot_dir: str | None = None, timeout_s: float = 60.0,
                 ocr_idle_unload_s: float = 0.0):
        self.vault_root = vault_root
        # A worker idle this long with its OCR engine loaded is replaced by a
        # fresh one (0: never). Dropping the engine alone hands back ~20 of
        # the ~150 MB an OCR page leaves resident: the rest is onnxruntime's
        # and OpenCV's code and heap, which only leave with the process.
        self.ocr_idle_unload_s = float(ocr_idle_unload_s)
        # `reader(vault_root, sha256) -> Analysis` runs in the worker; tests
        # pass one that crashes on purpose to exercise crash isolation.
        self.reader = reader or functools.partial(_analyse_object, ocr=ocr)
        self.workers = workers or os.cpu_count() or 1
        self.timeout_s = float(timeout_s)
        # At most `ocr_slots` workers OCR at once (0: no limit); the slots are
        # lock files in `slot_dir`.
        threads = self.workers // ocr_slots if 0 < ocr_slots < self.workers else 1
        self._init_args = (slot_dir, ocr_slots, threads)
        self.capacity = self.workers * 2
        # forkserver, not fork: workers must not inherit the daemon's lock
        # file or sockets, and forking a threaded daemon is unsafe.
        self._ctx = multiprocessing.get_context("forkserver")
        self._ctx.set_forkserver_preload(_PRELOAD)
        self._pool: list[_Worker] = [self._spawn() for _ in range(self.workers)]
        self._waiting: deque[_Job] = deque()
        metrics.watch_pool(self)

    def _spawn(self) -> _Worker:
        return _Worker(self._ctx, self.vault_root, self.reader, self._init_args)

    @property
    def in_flight(self) -> int:
        """Documents submitted and not yet returned by `collect`."""
        return len(self._waiting) + sum(1 for w in self._pool if w.job)

    def has_room(self) -> bool:
        """True when another document may be submitted."""
        return self.in_flight < self.capacity

    def in_flight_ids(self) -> set[int]:
        """Documents submitted and not yet returned by `collect`."""
        return {j.doc_id for j in self._waiting} | {w.job.doc_id for w in self._pool if w.job}

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

    def submit(self, doc_id: int, sha256: str) -> bool:
        """Start reading a document; False when the pool is full."""
        if not self.has_room():
            return False
        self._waiting.append(_Job(doc_id, sha256))
        self._dispatch()
        return True

    def _dispatch(self) -> None:
        for i, w in enumerate(self._pool):
            while not w.job and self._waiting:
                if w.give(self._waiting[0]):
                    self._waiting.popleft()
                else:  # died while idle: replace it and hand the job to the new one
                    w.kill()
                    w = self._pool[i] = self._spawn()

    def collect(self, timeout: float) -> list[tuple[int, Analysis]]:
        """Wait up to `timeout` s for results; returns (doc_id, analysis)
        pairs, including "internal" for a worker that died on its document
        and "timeout" for one stopped after `timeout_s`. Workers idle with
        their OCR engine loaded for `ocr_idle_unload_s` are replaced first."""
        self._unload_idle(time.monotonic())
        self._dispatch()
        busy = [w for w in self._pool if w.job]
        if not busy:
            return []
        now = time.monotonic()
        left = [self.timeout_s - w.elapsed(now) for w in busy if w.paused_at is None]
        ready = set(wait([w.conn for w in busy] + [w.proc.sentinel for w in busy],
                         max(0.0, min([timeout, *left]))))
        out = []
        now = time.monotonic()
        for i, w in enumerate(self._pool):
            if not w.job:
                continue
            job = w.job
            result = self._receive(w) if w.conn in ready or w.proc.sentinel in ready else True
            if isinstance(result, Analysis):
                w.job = None
                timing = w.timing or {}
                w.idle_since, w.ocr_loaded = now, bool(timing.get("ocr_loaded"))
                metrics.observe_reading("failed" if result.error_reason else "ok", timing.get("read_s"),
                                        timing.get("ocr_s") or ())
                out.append((job.doc_id, result))
                continue
            if result is None:
                code = w.proc.exitcode
                metrics.observe_reading("crashed", w.elapsed(now))
                w.kill()
                log.error("a worker died reading this document", extra={"document": job.doc_id, "exit": code})
                out.append((job.doc_id, Analysis(
                    error_reason="internal",
                    error_message=f"the reader process crashed on this file (exit status {code})")))
            elif w.elapsed(now) >= self.timeout_s:
                metrics.observe_reading("timeout", w.elapsed(now))
                w.kill()
                log.error("reading a document took too long; its worker was stopped",
                          extra={"document": job.doc_id, "timeout_s": self.timeout_s})
                out.append((job.doc_id, Analysis(
                    error_reason="timeout",
                    error_message=f"reading took longer than {self.timeout_s:g} s ([extract] timeout_s); "
                                  "the reader was stopped")))
            else:
                continue
            self._pool[i] = self._spawn()
        self._dispatch()
        return out

    def _unload_idle(self, now: float) -> None:
        # An idle worker holds no job and no OCR slot (a slot is held for
        # one page): SIGKILL loses nothing, and its replacement starts from
        # the forkserver in milliseconds, without the engine.
        if self.ocr_idle_unload_s <= 0:
            return
        for i, w in enumerate(self._pool):
            if w.job is None and w.ocr_loaded and now - w.idle_since >= self.ocr_idle_unload_s:
                w.kill()
                self._pool[i] = self._spawn()
                log.info("an idle worker was replaced to hand back its OCR engine's memory",
                         extra={"idle_s": round(now - w.idle_since, 1)})

    def _receive(self, w: _Worker) -> Analysis | bool | None:
        # The worker's answer for its job; True while it is still at work
        # (it only noted an OCR slot wait); None when it died without one.
        try:
            while w.conn.poll():
                doc_id, result, *timing = w.conn.recv()
                if doc_id == _SLOT_NOTE:
                    now = time.monotonic()
                    if result:
                        w.paused_at = now
                    elif w.paused_at is not None:
                        w.started += now - w.paused_at
                        w.paused_at = None
                    continue
                if doc_id != w.job.doc_id:  # cannot happen: one job at a time
                    return Analysis(error_reason="internal", error_message="a worker answered for another document")
                w.timing = timing[0] if timing else None
                return result
        except (EOFError, OSError):
            return None
        return None if w.proc.exitcode is not None else True

    def shutdown(self, wait_s: float) -> list[tuple[int, Analysis]]:
        """Finish in-flight work within `wait_s` seconds and stop every
        worker. Returns what finished; unfinished documents stay `captured`
        for the next run."""
        self._waiting.clear()
        finished = []
        deadline = time.monotonic() + wait_s
        while any(w.job for w in self._pool) and time.monotonic() < deadline:
            finished += self.collect(min(0.5, max(0.0, deadline - time.monotonic())))
        for w in self._pool:
            if w.job:
                w.kill()
            else:
                w.stop()
        for w in self._pool:
            w.proc.join(2)
            w.kill()  # reaps and closes; SIGKILL only reaches one still running
        self._pool = []
        return finished
