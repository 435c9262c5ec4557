"""The watcher's account of files not taken yet, for the heartbeat (so for
`status`, `status --check` and the intake-stuck alert): files intake holds,
files a writer still changes minutes after they landed, folders a scan
could not list. Apart from service/watch.py, which it is a part of
(`FolderWatcher` is a `WaitingAccount`), to keep each module readable."""

from __future__ import annotations

import heapq
import itertools
import os
import time
from operator import itemgetter
from pathlib import Path
from typing import Callable

from agent.health import WAITING_ALERT_S

# A file first seen this long ago and still not ready to take (its writer
# still at it) is named in the heartbeat (`waits`), so `status` shows it
# and, past agent.health.WAITING_ALERT_S, the alerts do: a scan is written
# in seconds, and a file that grows or is touched forever would otherwise
# wait unseen. Files named in the heartbeat, of each kind, at most:
WAITING_SAID_S = 300.0
WAITS_NAMED = 20
# A file is still being written when a look saw it change within twice its
# settle time plus this (a look comes every half settle time while it does);
# a temporary name, within its grace.
CHANGING_SLACK_S = 1.0
_AGE = itemgetter(0)


class WaitingAccount:
    """Part of `FolderWatcher`: reads its pending files (under its lock)."""

    def waits(self, said_after_s: float = WAITING_SAID_S) -> dict:
        """The heartbeat's account of the files not taken yet, for `status`
        and agent.health: `files_held` (intake holds them: an e-mail still
        being written), `files_waiting` (`waiting_long(said_after_s)`) and
        `folders_unreadable` (the last scan's `unreadable`), up to
        WAITS_NAMED of each by path with why (the oldest first), with their
        `_count`s, `files_held_oldest_s` and `files_waiting_oldest_s`
        (seconds since the oldest was first seen), and `files_stuck_count`
        and `files_stuck_oldest_s` for the held and still-written files first
        seen agent.health.WAITING_ALERT_S ago or more, and `files_first_seen`:
        when each file named was first seen, and its inode ([Unix time,
        inode]), which the next run starts from (`carry_first_seen`). {}
        when none."""
        out: dict = {}
        with self._lock:
            now = self.clock()
            held = [(now - p.noted_at, path, p.hold_why, p.hold_s) for path, p in self._pending.items() if p.hold_s]
            # One pass over the pending files for both bounds: those said
            # (past `said_after_s`) and those alerted on (WAITING_ALERT_S).
            late, ages = self._late(min(said_after_s, WAITING_ALERT_S), now)
        # A held file deleted meanwhile is not said to wait: its next look
        # (up to HOLD_MAX_S / 2 away) would forget it, and status would name
        # a file that is gone till then. Outside the lock: held files are few.
        # Only "no such file" is gone: one in a folder the agent may list but
        # not search (a PermissionError) is held for that very reason.
        looks = _Looks()
        held = [h for h in held if not looks.gone(h[1])]
        said = [age for age in ages if age > said_after_s]
        late = [item for item in late if item[1] > said_after_s]   # the oldest first: still the oldest
        stuck = [age for age, *_ in held if age >= WAITING_ALERT_S] + [age for age in ages if age >= WAITING_ALERT_S]
        named = heapq.nlargest(WAITS_NAMED, held, key=_AGE)
        if held:
            out["files_held"] = {
                str(path): (f"{why}; tried again in {seconds:g} s" if why else
                            "e-mail still being written (no closing MIME delimiter yet); taken as it is once "
                            f"unchanged for {seconds:g} s") + f"; first seen {age / 60:.0f} min ago"
                for age, path, why, seconds in named}
            out["files_held_count"] = len(held)
            out["files_held_oldest_s"] = round(max(held, key=_AGE)[0])
        if late:
            out["files_waiting"] = {str(path): f"{why}; first seen {age / 60:.0f} min ago"
                                    for path, age, why in late[:WAITS_NAMED]}
            out["files_waiting_count"] = len(said)
            out["files_waiting_oldest_s"] = round(late[0][1])
        if named or late:
            # [first seen (Unix time), inode]: the next run carries the time
            # over only to this very file, not a new one under its name.
            wall = time.time()
            out["files_first_seen"] = {str(path): [round(wall - age, 1), ino] for age, path in
                                       [(h[0], h[1]) for h in named] + [(w[1], w[0]) for w in late[:WAITS_NAMED]]
                                       if (ino := looks.inode(path)) is not None}
        if stuck:
            # Held or still written WAITING_ALERT_S on: a WARNING and an alert.
            out["files_stuck_count"] = len(stuck)
            out["files_stuck_oldest_s"] = round(max(stuck))
        if self.unreadable:
            out["folders_unreadable"] = dict(itertools.islice(self.unreadable.items(), WAITS_NAMED))
            out["folders_unreadable_count"] = len(self.unreadable)
        return out

    def keep_ages_of(self, old: "WaitingAccount") -> None:
        """After a reload (a new watcher for the new config): each file
        pending here and in `old` keeps when `old` first saw it, so its age
        in `status` and the alerts goes on, and an open intake-stuck alert
        is not resolved and opened again 30 min later. (Both count on the
        same process's monotonic clock.)"""
        with old._lock:
            first = {path: p.noted_at for path, p in old._pending.items()}
        with self._lock:
            for path, p in self._pending.items():
                if path in first:
                    p.noted_at = min(p.noted_at, first[path])

    def carry_first_seen(self, first_seen: dict, wall_now: float,
                         taken_since: Callable[[str, float], bool] = lambda path, at: False) -> int:
        """After a restart: each file pending here that the last run's
        heartbeat named (`files_first_seen`: path -> [Unix time, inode])
        keeps when that run first saw it, so `status` and the alerts go on
        counting its wait, and an open intake-stuck alert is not resolved by
        the restart and opened again 30 min later. Only the very file named
        carries it: the same inode, and no file under its name taken since
        (`taken_since(path, time)`: a new file may get a freed inode at
        once). A time that is no finite number after 1970 is ignored, and
        one in the future (the clock set back) counts as now. Returns how
        many files it applied to."""
        with self._lock:
            pending = {str(path): path for path in self._pending}
        ages = {}
        looks = _Looks()
        for key, entry in first_seen.items():
            path = pending.get(key) if isinstance(key, str) else None
            if path is None or not isinstance(entry, list) or len(entry) != 2:
                continue
            at, ino = entry
            if (isinstance(at, (int, float)) and not isinstance(at, bool) and isinstance(ino, int)
                    and not isinstance(ino, bool) and 0 < at < 1e11 and looks.inode(path) == ino
                    and not taken_since(key, float(at))):
                ages[path] = max(0.0, wall_now - float(at))
        with self._lock:
            now = self.clock()
            for path, age in ages.items():
                if (p := self._pending.get(path)) is not None:
                    p.noted_at = min(p.noted_at, now - age)
        return len(ages)

    def waiting_long(self, seconds: float) -> list[tuple[Path, float, str]]:
        """Files first seen more than `seconds` ago and not ready to take
        because their writer is still at it (a file that grows or is touched
        forever never settles: its last look saw it change within about its
        settle time), or because a temporary name waits out its grace;
        oldest first, as (path, seconds since first seen, why). Not here:
        files intake holds (`hold`), ready ones waiting for the main loop,
        and unchanged ones not looked at again yet (while intake is paused,
        which is said on its own): none of those waits for its writer."""
        with self._lock:
            return self._late(seconds, self.clock(), named=None)[0]

    def _late(self, seconds: float, now: float,
              named: int | None = WAITS_NAMED) -> tuple[list[tuple[Path, float, str]], list[float]]:
        # Under the lock: the oldest `named` (None: all) with why, and every
        # one's age. The heartbeat names 20, and a flood may leave 100,000
        # pending.
        late = [(now - p.noted_at, path, p) for path, p in self._pending.items()
                if not p.queued and not p.hold_s and now - p.noted_at > seconds
                and now - p.stable_since < (self.temp_grace_s if p.slow else 2 * p.watch.settle_seconds)
                + CHANGING_SLACK_S]
        oldest = heapq.nlargest(len(late) if named is None else named, late, key=_AGE)
        return ([(path, age, self._why_waiting(p, now)) for age, path, p in oldest],
                [age for age, _, _ in late])

    def _why_waiting(self, p, now: float) -> str:
        # Under the lock.
        if p.slow:
            return (f"a temporary name: taken once unchanged for {self.temp_grace_s / 60:g} min "
                    "(or renamed to its final name)")
        return (f"still being written or changed (last changed {now - p.stable_since:.0f} s ago): taken once "
                f"unchanged for {p.watch.settle_seconds:g} s")


_GONE = -1


class _Looks:
    """Whether files are there, and their inodes, for one account (a
    heartbeat's `waits`, a restart's carry-over). In a folder the agent
    may list but not search (r, no x: a file held for that very reason)
    lstat fails, but the folder's listing still gives each name and its
    inode (d_ino, no stat): without it a restart lost such a file's wait,
    and one deleted there stayed named as held until its next try. Each
    such folder is listed once per account, not once per file (thousands
    held there would make each heartbeat list it thousands of times)."""

    def __init__(self) -> None:
        self._listed: dict[Path, dict[str, int] | None] = {}

    def gone(self, path: Path) -> bool:
        """True only when there is no file at `path` (not when it cannot be told)."""
        return self._look(path) == _GONE

    def inode(self, path: Path) -> int | None:
        """The inode of the file at `path`; None when it is gone or cannot be told."""
        ino = self._look(path)
        return None if ino == _GONE else ino

    def _look(self, path: Path) -> int | None:
        try:
            return os.lstat(path).st_ino
        except (FileNotFoundError, NotADirectoryError):
            return _GONE
        except PermissionError:
            pass
        except OSError:
            return None
        folder = path.parent
        if folder not in self._listed:
            try:
                with os.scandir(folder) as entries:
                    self._listed[folder] = {entry.name: entry.inode() for entry in entries}
            except OSError:
                self._listed[folder] = None
        names = self._listed[folder]
        if names is None:
            return None
        return names.get(path.name, _GONE)
