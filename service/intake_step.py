"""The main loop's intake step: ready files taken in groups, time-bounded,
paused while the vault cannot take files.

Apart from service/daemon.py, which only says when (`run` once a step):
this says how many, in what groups, and what a full vault disk does (the
files stay where they are; one is tried again after PAUSE_FIRST_RETRY_S,
doubling up to PAUSE_MAX_RETRY_S). Main thread only.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from typing import Callable

from agent.capture import GROUP_MAX, GROUP_S
from agent.errors import CaptureError
from agent.filenames import storable
from agent.vault import Vault
from service import pace
from service.context import now, today
from service.intake import Intake
from service.intake_group import UNRECORDED_RETRY_S, IntakeResult
from service.reading import Reading
from service.watch import FolderWatcher

log = logging.getLogger("fapiao.daemon")
# While intake is paused (vault disk full or failing), the files stay where
# they are and one is retried after this long, doubling up to the cap.
PAUSE_FIRST_RETRY_S = 2.0
PAUSE_MAX_RETRY_S = 30.0
# Files handed out per main-loop step.
INTAKE_BATCH = 200
# Intake stops taking files after this long in one step, even mid-batch (the
# rest stay first in line): each step must also feed the extraction pool, or
# a long backlog of files to capture starves the reading of those captured.
INTAKE_STEP_S = 0.25


class IntakeStep:
    """Takes ready files from `watcher` through `intake`, feeding and
    collecting `reading` between groups."""

    def __init__(self, intake: Intake, watcher: FolderWatcher, reading: Reading, vault: Vault, *,
                 stopping: Callable[[], bool], on_pause_change: Callable[[], None]):
        self.intake, self.watcher, self.reading, self.vault = intake, watcher, reading, vault
        self.stopping, self.on_pause_change = stopping, on_pause_change
        self.paused: str | None = None  # why, while the vault cannot take files
        self._pause_wait = PAUSE_FIRST_RETRY_S
        self._retry_at = 0.0
        self._paused_since = 0.0

    def run(self) -> int:
        """Take up to INTAKE_BATCH ready files, for at most INTAKE_STEP_S (the
        watcher's fair order puts likely invoices ahead of junk; files not
        reached stay first in line), in groups committed at once
        (`Intake.group`): a file is done only once its group is durable.
        While ready files are left for the next step, marks intake busy
        (`pace.intake_busy`). Returns how many were handled."""
        if self.paused and time.monotonic() < self._retry_at:
            return 0
        paths = self.watcher.ready(INTAKE_BATCH)
        handled, at = 0, 0
        start = time.monotonic()
        while at < len(paths) and not self.stopping():
            if handled and time.monotonic() - start >= INTAKE_STEP_S:
                break  # not done(): handed out again first by the next ready()
            # Between groups, never inside one: results in (their own batch),
            # new documents out, so the workers stay busy while a long batch
            # is captured, and no reading's result rides in a group of files.
            self.reading.collect(timeout=0, intake_busy=True)
            self.reading.feed()
            taken, at, paused = self._group(paths, at)
            for path in taken:
                self.watcher.done(path)
            handled += len(taken)
            if paused:
                break  # the file stays pending; the others wait too rather than hammer the disk
        if handled and (at < len(paths) or len(paths) >= INTAKE_BATCH):
            # A backlog: ready files were left for the next step (its time
            # was up) or more may be ready (a full batch). Capture is then
            # the bottleneck, and backup and delivery step aside
            # (service/pace.py). Files still settling are no backlog: they
            # need no CPU, and a steady trickle of arrivals delays nothing.
            pace.intake_busy()
        return handled

    def _group(self, paths: list, at: int) -> tuple[list, int, bool]:
        # One group from paths[at:]: (files handled, where the next group
        # starts, whether intake paused). Closed after GROUP_S or GROUP_MAX
        # files, so a file's rows are committed within a few milliseconds.
        taken: list = []
        first, paused = at, False
        end = time.monotonic() + GROUP_S
        try:
            with self.intake.group(now=now(), today=today()):
                while at < len(paths):
                    path = paths[at]
                    watch = self.watcher.watch_of(path)
                    result = None
                    try:
                        if watch is not None:
                            result = self.intake.take(path, watch, now=now(), today=today())
                    except sqlite3.Error:
                        raise  # the ledger's disk: the group is undone, the main loop backs off; files stay pending
                    except Exception as e:
                        log.exception("unexpected error taking a file; it stays where it is",
                                      extra={"path": storable(str(path))})
                        # Held, named in status with why (never taken and
                        # forgotten at every rescan with only a log line).
                        result = IntakeResult([], hold_s=UNRECORDED_RETRY_S, hold_backoff=True,
                                              hold_why=storable(f"could not be taken ({type(e).__name__}: {e}); "
                                                                "left where it is; tried again"))
                    if result is not None and result.retry:
                        self._pause(result.error or "the vault cannot take files")
                        paused = True
                        break
                    at += 1
                    if result is not None and result.hold_s:
                        # Not done: looked at again later.
                        self.watcher.hold(path, result.hold_s, why=result.hold_why, backoff=result.hold_backoff)
                        continue
                    taken.append((path, result))
                    if len(taken) >= GROUP_MAX or time.monotonic() >= end:
                        break
        except CaptureError as e:
            if not e.transient:
                raise
            # The group's commit failed on the vault's disk (a folder it
            # cannot make, a sync that fails): nothing of the group was
            # written, every file of it stays pending; intake pauses with the
            # vault's reason, as for a write that fails.
            self._pause(storable(str(e)))
            return [], first, True
        if taken and self.paused and not paused:
            self._resume()  # only now: the group's files are in the vault and the ledger
        done = []
        for path, result in taken:
            if result is not None and result.hold_s:
                # Its rows could not be written at the group's COMMIT
                # (`GroupedIntake._write`): held like a file taken too early.
                self.watcher.hold(path, result.hold_s, why=result.hold_why, backoff=result.hold_backoff)
            else:
                done.append(path)
        return done, at, paused

    def _pause(self, reason: str) -> None:
        if self.paused is None:
            self._paused_since = time.monotonic()
            self._pause_wait = PAUSE_FIRST_RETRY_S
            log.error("intake paused: files cannot be taken just now (the vault's disk, or the agent's "
                      "own limits: the reason says which); sources stay where they are and are retried",
                      extra={"reason": reason, "vault": str(self.vault.root)})
        else:
            self._pause_wait = min(PAUSE_MAX_RETRY_S, self._pause_wait * 2)
        self.paused = reason
        self._retry_at = time.monotonic() + self._pause_wait
        self.on_pause_change()  # the heartbeat shows the pause now

    def _resume(self) -> None:
        log.info("intake resumed", extra={"paused_s": round(time.monotonic() - self._paused_since, 1)})
        self.paused = None
        self.on_pause_change()
        self.watcher.rescan_requested.set()  # anything noted while paused is looked at again
