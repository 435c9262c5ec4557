"""The worker process's side of extraction (service/workers.py is the
daemon's): it reads the documents handed to it through its pipe in order,
one at a time, and sends back each result with its own timing. Apart so
the pool's bookkeeping and the process's loop each stay readable."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import time
from collections import deque
from multiprocessing.connection import Connection

from agent.pipeline import Analysis, analyse
from agent.vault import Vault
from service.worker_ocr import init_worker as _init_worker

PR_SET_PDEATHSIG = 1
WORKER_NICE = 10
SLOT_NOTE = "ocr-slot-wait"
# (TAKE_BACK, [token, ...]) from the daemon: jobs it handed over that are
# given to another worker; skipped if not started yet. (TAKE_BACK, None)
# back: read, and every job before it answered or skipped.
TAKE_BACK = "take-back"


def analyse_object(vault_root: str, sha256: str, ocr: bool = True) -> Analysis:
    # Runs in the worker: read from the vault there, so only a hash and a
    # small result cross the process boundary.
    return analyse(_vault(vault_root).read(sha256), ocr=ocr)


@functools.lru_cache(maxsize=4)
def _vault(root: str) -> Vault:
    # One Vault a worker: opening one makes sure of its three folders (three
    # mkdir calls), 3 % of a worker's time in a burst of 1 ms readings.
    return Vault(root)


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


def worker_main(conn: Connection, vault_root: str, reader, init_args: tuple) -> None:
    # The documents handed over, in order, one at a time: receive (doc_id,
    # sha256, token), send (doc_id, Analysis, timing, token); timing is the
    # worker's own clock, for the metrics' histograms. Every message waiting
    # is read before a job starts, so a take-back reaches each job not
    # started yet. EOF on the pipe (the daemon closed it or died) ends the worker.
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
        conn.send((SLOT_NOTE, flag))

    _init_worker(*init_args, waiting, ocr_pages)
    inbox: deque = deque()
    while True:
        try:
            while not inbox or conn.poll():
                message = conn.recv()
                if message[0] == TAKE_BACK:
                    skip = set(message[1])
                    inbox = deque(job for job in inbox if job[2] not in skip)
                    conn.send((TAKE_BACK, None))
                else:
                    inbox.append(message)
        except (EOFError, OSError):
            return
        doc_id, sha256, token = inbox.popleft()
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
            conn.send((doc_id, result, timing, token))
        except (EOFError, OSError):
            return
        except Exception as e:  # the result does not pickle
            conn.send((doc_id, Analysis(error_reason="internal",
                                        error_message=f"result not transferable: {type(e).__name__}: {e}"),
                       timing, token))
