"""The daemon's handle on one extraction worker process (service/workers.py
runs the pool, service/worker_process.py is the process's own loop): its
pipe, the jobs handed to it in order, its pace, and taking back the jobs
it holds behind a document it is stuck at."""

from __future__ import annotations

import contextlib
import time
from collections import deque
from dataclasses import dataclass

from service.worker_process import TAKE_BACK, worker_main


@dataclass
class Job:
    """A document handed to the pool, waiting for a worker or held by one."""

    doc_id: int
    sha256: str
    urgent: bool = False  # a likely invoice: handed out ahead of the others waiting
    token: int = 0  # this handing-out's number: the worker's answer names it


# Documents a worker holds at once at most, and how long it may be at one
# before no more are handed to it and those it holds behind it are taken
# back (to another worker). The main thread hands out documents between
# its own steps (a capture group, a chunk of results recorded: up to ~50
# ms), so a worker must hold that much reading or idle. With 8, the two
# workers used 0.7 of a core once a 3,000-file burst (20 % text PDFs) was
# captured, and the ~2,000 files left reached `queued` at 569-643 files/s;
# with 64 (and more handed out between recorded chunks), 0.8 of a core and
# 788-876 files/s, the whole burst 513-549 against 429-447 (interleaved
# runs on a fast-disk minute; on a slow one capture bounds both alike).
# Depth once also bounded what waited behind a hung file, for up to
# [extract] timeout_s; since the take-back it waits PIPELINE_STALL_S.
PIPELINE_DEPTH = 64
PIPELINE_STALL_S = 0.5
# The reading a worker may hold ahead of a document handed to it, at its
# recent pace: a worker reading slow documents holds fewer, so an invoice
# handed out behind them (a likely invoice is handed out ahead of all that
# waits for a worker, not of what a worker already holds) waits ~this long
# at most; a worker of 6 ms PDFs holds ~40, one of OCR pages (~0.8 s)
# one. Until a worker's first answer its pace is unknown: it holds two.
PIPELINE_AHEAD_S = 0.25
_FIRST_DEPTH = 2


class WorkerHandle:
    """One worker process, its end of the pipe, and the jobs handed to it
    (read in order: the first is the one it is at)."""

    def __init__(self, ctx, vault_root: str, reader, init_args: tuple, max_depth: int = PIPELINE_DEPTH):
        parent, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=worker_main, args=(child, vault_root, reader, init_args),
                                name="fapiao-extract", daemon=True)
        self.proc.start()
        child.close()
        self.conn = parent
        self.jobs: deque[Job] = deque()
        self.killed = False
        self.started = 0.0
        self.paused_at: float | None = None  # while queueing for an OCR slot
        self.idle_since = time.monotonic()
        self.ocr_loaded = False  # it said its OCR engine is loaded (after its last document)
        self.pace_s: float | None = None  # its recent seconds a document (a moving average)
        self.max_depth = max_depth
        # Tokens of jobs taken back: an answer for one the worker had started
        # before the take-back reached it is dropped (it is read elsewhere).
        self.taken_back: set[int] = set()
        # A take-back was sent and not yet acknowledged: till then the worker
        # may be at a job taken back, so it is handed nothing new (a new
        # job's clock, a crash or a timeout would be charged to the wrong
        # document).
        self.awaiting_ack = False

    @property
    def job(self) -> Job | None:
        """The job the worker is at, or None when it has none."""
        return self.jobs[0] if self.jobs else None

    def elapsed(self, now: float) -> float:
        """Seconds this worker has spent on its current job, waits for an OCR slot excluded."""
        return (self.paused_at if self.paused_at is not None else now) - self.started

    def depth(self) -> int:
        """Documents this worker may hold now: PIPELINE_AHEAD_S of reading
        at its recent pace, between 1 and its maximum (PIPELINE_DEPTH)."""
        if self.pace_s is None:
            return _FIRST_DEPTH
        return max(1, min(self.max_depth, int(PIPELINE_AHEAD_S / max(self.pace_s, 1e-6))))

    def paced(self, read_s: float) -> None:
        """Note one document's reading time in the worker's pace."""
        self.pace_s = read_s if self.pace_s is None else 0.7 * self.pace_s + 0.3 * read_s

    def give(self, job: Job, token: int) -> bool:
        """Hand `job` over as handing-out `token`, behind the ones it holds;
        False when the worker is gone."""
        job.token = token
        try:
            self.conn.send((job.doc_id, job.sha256, token))
        except (OSError, EOFError, ValueError):
            return False
        if not self.jobs:
            self.started, self.paused_at = time.monotonic(), None
        self.jobs.append(job)
        return True

    def take_back(self) -> list[Job]:
        """The jobs it holds behind the one it is at, taken back: it skips
        those not started (it reads every message before starting a job)
        and then acknowledges (`acknowledged`); an answer for one it had
        already started is dropped (`answer_for`). [] when it holds no
        other, or is gone (its jobs then go back with it)."""
        behind = list(self.jobs)[1:]
        if not behind:
            return []
        try:
            self.conn.send((TAKE_BACK, [j.token for j in behind]))
        except (OSError, EOFError, ValueError):
            return []
        self.taken_back.update(j.token for j in behind)
        self.awaiting_ack = True
        current = self.jobs.popleft()
        self.jobs.clear()
        self.jobs.append(current)
        return behind

    @property
    def available(self) -> bool:
        """Whether new jobs may be handed to it: not while a take-back is unacknowledged."""
        return not self.awaiting_ack

    def answer_for(self, token: int) -> bool:
        """Whether an answer with `token` is for a job it holds; False for
        one taken back after the worker had started it (drop it)."""
        return token not in self.taken_back

    def acknowledged(self, now: float) -> None:
        """The worker read the take-back: every job handed out before it is
        answered or skipped, so no taken-back answer can follow. It is at
        nothing, or at the job it still holds if it had not started that
        one yet (slow to start): that job's clock starts now."""
        self.awaiting_ack = False
        self.taken_back.clear()
        self.started, self.paused_at, self.idle_since = now, None, now

    def finished(self, now: float) -> Job:
        """The current job's answer came: the next one (already in the
        worker's pipe) is started now."""
        job = self.jobs.popleft()
        self.started, self.paused_at = now, None
        if not self.jobs:
            self.idle_since = now
        return job

    def kill(self) -> None:
        """SIGKILL the process and reap it; the pipe and the process's own
        descriptors are closed (a daemon replaces workers for months).
        Once only: a second call does nothing."""
        if self.killed:
            return
        self.killed = True
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
