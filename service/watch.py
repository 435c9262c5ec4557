"""Watched folders → candidate files that are complete and safe to capture.

Observers (service/watch_events.py, the only module that imports watchdog)
run in watchdog's threads and only note paths; the daemon's main loop asks
`ready()` for files that are complete: closed after writing, or unchanged
in size and mtime for `settle_seconds`. Network shares deliver no inotify
events, so their folders are polled instead.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import stat
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from agent import beneath
from agent.config import WatchConfig
from agent.watched import agent_owned
from service.watch_events import HANDLED_EVENTS, _Handler, _OverflowAlarm, observer_for
from service.watch_waits import WaitingAccount
from service.watch_names import JUNK, TEMP_GRACE_S, intake_rank, should_poll, waits_long
from service.watch_walk import files_under

log = logging.getLogger("fapiao.watch")

# A settling file is looked at again after half its settle time (events
# bring a look at once), so a change without an event restarts its clock.
LOOK_FRACTION = 0.5
# The longest a file intake holds with backoff waits between tries (`hold`).
HOLD_MAX_S = 600.0
# Looks (one lstat each) per `ready()` call: a flood noted at once is
# looked at over a few calls, and one call stays short.
LOOK_BUDGET = 20_000


@dataclass
class _Pending:
    closed: bool
    stable_since: float
    watch: WatchConfig
    size: int = -1
    mtime_ns: int = -1
    token: int = 0          # bumped whenever it is scheduled again: older heap and lane items are stale
    queued: bool = False    # ready: in an intake lane, or handed out and not yet done
    rank: int = JUNK
    slow: bool = False      # waits TEMP_GRACE_S unchanged, whatever the events say (`waits_long`)
    hold_s: float | None = None  # held by intake (`hold`): ready only this long unchanged, until it changes
    hold_why: str | None = None  # and why, for the heartbeat (None: an e-mail still being written)
    holds: int = 0          # holds in a row (`hold` with backoff doubles the wait each time)
    served: int = -1        # the token `ready` handed it out under: `done` forgets only that
    noted_at: float = 0.0   # first noted (a change does not reset it): how long it has waited (`waiting_long`)


class FolderWatcher(WaitingAccount):
    """Watches a set of folders and reports files ready for capture.

    Thread-safe: observer threads call the handler; the main loop calls
    `ready()` and `rescan()`. `wake` is called whenever something may be ready.
    """

    def __init__(self, watches: list[WatchConfig], wake: Callable[[], None],
                 clock: Callable[[], float] = time.monotonic, temp_grace_s: float = TEMP_GRACE_S):
        self.watches = watches
        self.temp_grace_s = temp_grace_s
        self.wake = wake
        self.clock = clock
        self._pending: dict[Path, _Pending] = {}
        self._lock = threading.Lock()
        # Files to look at: those an event named first, in order (a file just
        # written is never behind the re-looks of a flood still settling),
        # then the others by when: (at, seq, path, token).
        self._fresh: deque[tuple[Path, int]] = deque()
        self._looks: list[tuple[float, int, Path, int]] = []
        self._seq = itertools.count()
        # Ready files per rank, one FIFO lane per folder, served round-robin,
        # so a flood in one folder (or of one kind) cannot starve the others.
        self._lanes: tuple[OrderedDict[Path, deque[tuple[Path, int]]], ...] = (OrderedDict(), OrderedDict(),
                                                                               OrderedDict())
        self._offered: list[tuple[Path, int]] = []
        self._observers: list = []
        self.rescan_requested = threading.Event()
        # Watched folders found replaced (or unreachable) at the last scan,
        # with why: the heartbeat shows them until a scan finds them back.
        self.replaced: dict[str, str] = {}
        # Folders below a watched folder the last scan could not list (no
        # permission, an I/O error), with why: their files are never taken,
        # so the heartbeat shows them (status, alerts) until a scan can.
        self.unreadable: dict[str, str] = {}

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> list[str]:
        """Start one observer per folder; returns a log line per folder."""
        lines = []
        for w in self.watches:
            # Which folder each watched path leads to now: intake acts only
            # there, never in a folder swapped in for it later (agent/beneath.py).
            beneath.pin_root(w.path)
            observer, line = self._observe(w)
            self._observers.append(observer)
            lines.append(line)
        _OverflowAlarm.install(self)
        return lines

    def _observe(self, w: WatchConfig) -> tuple:
        poll, why = should_poll(w)
        observer = observer_for(poll)
        observer.schedule(_Handler(self), str(w.path), recursive=True, event_filter=HANDLED_EVENTS)
        observer.daemon = True
        observer.start()
        return observer, f"watching {w.path} kind={w.kind} mode={'poll' if poll else 'inotify'} reason=\"{why}\""

    def _observe_again(self, readable: set[str]) -> None:
        # Folders a scan can list again that it could not before: inotify
        # could not watch them either (it needs the same permission), and
        # does not retry, so their new files would wait for every rescan.
        # Their watched folder's observer starts afresh (its recursive walk
        # adds every watch again).
        for i, w in enumerate(self.watches):
            root = str(w.path).rstrip("/")
            if i < len(self._observers) and any(f == root or f.startswith(root + "/") for f in readable):
                self._observers[i].stop()
                self._observers[i].join(timeout=5)
                self._observers[i], line = self._observe(w)
                log.info("watching again: " + line, extra={"watch": str(w.path)})

    def stop(self) -> None:
        """Stop every observer (intake stops; pending paths are forgotten and
        found again by the start-up scan of the next run)."""
        for o in self._observers:
            o.stop()
        for o in self._observers:
            o.join(timeout=5)
        self._observers.clear()
        _OverflowAlarm.remove(self)

    # -- events -----------------------------------------------------------------

    def note(self, path: Path, closed: bool = False, *, changed: bool = True) -> None:
        """Something happened to `path` (`changed`: an event, not a rescan
        merely finding it); remember it for settling and look at it soon."""
        watch = self.watch_of(path)
        if watch is None:
            return
        now = self.clock()
        with self._lock:
            p = self._pending.get(path)
            if p is None:
                p = self._pending[path] = _Pending(closed, now, watch, slow=waits_long(watch, path), noted_at=now)
            elif changed or closed:
                p.closed = p.closed or closed
                p.queued = False  # look again: a queued file that changes settles anew
                p.hold_s = None   # its writer is at it again: intake looks once it settles
                p.holds = 0
            else:
                return  # already known; a rescan changes nothing
            if changed or closed:
                p.token += 1
                self._fresh.append((path, p.token))
            else:
                self._schedule(path, p, now)
        self.wake()

    def _schedule(self, path: Path, p: _Pending, at: float) -> None:
        # Under the lock.
        p.token += 1
        heapq.heappush(self._looks, (at, next(self._seq), path, p.token))

    def scan(self) -> int:
        """Note every file under every folder (start-up and periodic rescans).
        Returns how many files were seen. A folder replaced since it was
        pinned is skipped and kept in `replaced` until a scan finds it back;
        a folder below one that cannot be listed is kept in `unreadable`
        until a scan can."""
        n = 0
        unreadable: dict[str, str] = {}

        def cannot_list(folder: str, why: str) -> None:
            if folder not in self.unreadable:   # once, not at every rescan
                log.error("a folder in a watched folder cannot be read; its files are not taken",
                          extra={"folder": folder, "error": why})
            unreadable[folder] = why

        for w in self.watches:
            replaced = beneath.root_problem(w.path)
            if replaced:
                log.error(replaced, extra={"watch": str(w.path)})
                self.replaced[str(w.path)] = replaced
                continue
            if self.replaced.pop(str(w.path), None) is not None:
                log.info("watched folder is back; taking files there again", extra={"watch": str(w.path)})
            for path in self.files_under(w.path, w, cannot_list):
                self.note(path, changed=False)
                n += 1
        readable = self.unreadable.keys() - unreadable.keys()
        for folder in readable:
            log.info("a folder in a watched folder can be read again; taking its files", extra={"folder": folder})
        self.unreadable = unreadable
        if readable:
            self._observe_again(readable)
        return n

    # The folder walk of `scan` (service/watch_walk.py), kept here by name
    # for its callers.
    files_under = staticmethod(files_under)

    def watch_of(self, path: Path) -> WatchConfig | None:
        """The watched folder `path` lies in, or None."""
        # Plain string work, not Path.relative_to: this runs several times
        # for every file of a flood.
        text = str(path)
        for w in self.watches:
            root = str(w.path).rstrip("/") + "/"
            if not text.startswith(root):
                continue
            folders = text[len(root):].split("/")[:-1]
            # Maildir's cur/ is taken (an IMAP client moves seen mail there;
            # our own new/ -> cur/ move is remembered as seen) and tmp/ waits
            # (`waits_long`); only the agent's processed/DATE is skipped.
            if not agent_owned(w.after, folders):
                return w
        return None

    def ready(self, limit: int | None = None) -> list[Path]:
        """Up to `limit` paths complete now (closed after writing, or stable
        in size and mtime for the folder's settle_seconds), in intake order:
        likely invoices before other files before junk, and round-robin over
        folders within each. Vanished paths are dropped. A path handed out
        and not `done()` by the next call is handed out again first."""
        now = self.clock()
        with self._lock:
            self._requeue_offered()
            # Only looks still current cost an lstat: a file written in
            # several events was noted (and queued to look at) once per
            # event, and only its latest note counts; files not yet due
            # stay in the heap, untouched, however many are pending.
            due = []
            while self._fresh and len(due) < LOOK_BUDGET:
                path, token = self._fresh.popleft()
                if self._current(path, token):
                    due.append((path, token))
            while self._looks and self._looks[0][0] <= now and len(due) < LOOK_BUDGET:
                _, _, path, token = heapq.heappop(self._looks)
                if self._current(path, token):
                    due.append((path, token))
        for path, token in due:
            self._look(path, token, now)
        return self._serve(limit)

    def _current(self, path: Path, token: int) -> bool:
        # Under the lock: the latest note of a path still pending.
        p = self._pending.get(path)
        return p is not None and p.token == token

    def _look(self, path: Path, token: int, now: float) -> None:
        try:
            st: os.stat_result | None = os.lstat(path)
        except FileNotFoundError:
            with self._lock:
                p = self._pending.get(path)
                if p is not None and p.token == token:
                    del self._pending[path]
            return
        except OSError:
            st = None  # capture will say what is wrong with it
        with self._lock:
            p = self._pending.get(path)
            if p is None or p.token != token:
                return  # done, or noted again since: a newer look is scheduled
            settle = self.temp_grace_s if p.slow else p.hold_s or p.watch.settle_seconds
            # A temporary or held file is closed between its writes.
            closed = p.closed and not p.slow and not p.hold_s
            if st is not None and stat.S_ISREG(st.st_mode):
                if (st.st_size, st.st_mtime_ns) != (p.size, p.mtime_ns):
                    p.size, p.mtime_ns, p.stable_since = st.st_size, st.st_mtime_ns, now
                    if not closed:
                        self._schedule(path, p, now + settle * LOOK_FRACTION)
                        return
                if not closed and now - p.stable_since < settle:
                    self._schedule(path, p, min(p.stable_since + settle, now + settle * LOOK_FRACTION))
                    return
            # Ready; a FIFO or a symlink too, to be refused at once with its reason.
            p.queued, p.rank = True, intake_rank(path, st, p.watch.kind)
            self._lanes[p.rank].setdefault(path.parent, deque()).append((path, p.token))

    def _serve(self, limit: int | None) -> list[Path]:
        out: list[Path] = []
        with self._lock:
            for lanes in self._lanes:
                while lanes and (limit is None or len(out) < limit):
                    folder, lane = next(iter(lanes.items()))
                    path, token = lane.popleft()
                    if lane:
                        lanes.move_to_end(folder)  # the next folder's turn
                    else:
                        del lanes[folder]
                    p = self._pending.get(path)
                    if p is not None and p.token == token and p.queued:
                        out.append(path)
                        self._offered.append((path, token))
                        p.served = token
        return out

    def _requeue_offered(self) -> None:
        # Under the lock: handed out last time and not done (intake paused
        # before it got to them): first in line again, in the same order.
        for path, token in reversed(self._offered):
            p = self._pending.get(path)
            if p is not None and p.token == token and p.queued:
                lanes = self._lanes[p.rank]
                lanes.setdefault(path.parent, deque()).appendleft((path, token))
                lanes.move_to_end(path.parent, last=False)
        self._offered.clear()

    def hold(self, path: Path, seconds: float, why: str | None = None, backoff: bool = False) -> None:
        """Intake looked at `path` and cannot take it yet (an e-mail still
        being written; with `why`, what else: a file another program holds
        locked): it is handed out again once it stayed unchanged for
        `seconds` (with `backoff`, doubled at each hold in a row, up to
        HOLD_MAX_S), or settles anew when an event says it changed. Stays
        pending (counted, never forgotten, and in the heartbeat with `why`:
        `waits`) meanwhile."""
        now = self.clock()
        try:
            st = os.lstat(path)
            seen = (st.st_size, st.st_mtime_ns)   # unchanged from now on counts
        except OSError:
            seen = (-1, -1)                       # the next look says what became of it
        with self._lock:
            p = self._pending.get(path)
            if p is None:
                return
            if backoff:
                seconds = min(HOLD_MAX_S, seconds * 2 ** p.holds)
            p.holds += 1
            p.queued, p.closed, p.hold_s, p.hold_why = False, False, seconds, why
            (p.size, p.mtime_ns), p.stable_since = seen, now
            self._schedule(path, p, now + seconds * LOOK_FRACTION)

    def done(self, path: Path) -> None:
        """The main loop has handled `path` (captured or refused) as it was
        when `ready` handed it out. Forgotten, unless an event said it
        changed since (a writer that appends in several opens, its next
        write landing while this one was captured): then it stays pending
        and settles anew, so its final bytes are taken too, not left for
        the next rescan minutes later."""
        with self._lock:
            p = self._pending.get(path)
            if p is not None and p.token == p.served:
                del self._pending[path]

    def ask_rescan(self) -> None:
        """Have the main loop scan every watched folder again at its next
        step (events cannot tell what changed), waking it now."""
        self.rescan_requested.set()
        self.wake()

    @property
    def pending_count(self) -> int:
        """Paths noted and not yet handled (settling or waiting for the main loop)."""
        with self._lock:
            return len(self._pending)

