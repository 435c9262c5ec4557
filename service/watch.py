"""Watched folders → candidate files that are complete and safe to capture.

The only module that imports watchdog. Observers run in watchdog's threads
and only note paths; the daemon's main loop asks `ready()` for files that
are complete: closed after writing, or unchanged in size and mtime for
`settle_seconds`. Network shares deliver no inotify events, so their
folders are polled instead.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from watchdog.events import (FileClosedEvent, FileCreatedEvent, FileModifiedEvent, FileMovedEvent,
                             FileSystemEvent, FileSystemEventHandler)
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

from agent.config import WatchConfig

log = logging.getLogger("fapiao.watch")

IGNORED_NAMES = ("~$*", ".~lock*", "*.part", "*.tmp", "*.crdownload", ".DS_Store", "Thumbs.db",
                 "desktop.ini", ".*")
IGNORED_DIRS = ("@eaDir", ".stversions", "processed", "tmp", "cur")
NETWORK_FS = ("cifs", "smb3", "smbfs", "nfs", "nfs4", "fuse.sshfs", "sshfs", "9p", "ceph",
              "glusterfs", "fuse.glusterfs", "davfs", "fuse.davfs2", "afs", "fuse.rclone")
POLL_INTERVAL_S = 2.0


def ignored(name: str) -> bool:
    """True for temporary and system files that are never invoices."""
    return any(fnmatch.fnmatchcase(name, pat) for pat in IGNORED_NAMES)


def mount_fs_type(path: Path, mountinfo: str | None = None) -> str | None:
    """The filesystem type of the mount holding `path`, from /proc/self/mountinfo."""
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError:
            return None
    target = str(path.resolve())
    best, best_type = "", None
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) < 5 or not right:
            continue
        mount_point = fields[4].replace("\\040", " ")
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, best_type = mount_point, right.split()[0]
    return best_type


def should_poll(watch: WatchConfig, mountinfo: str | None = None) -> tuple[bool, str]:
    """Whether to poll this folder, and why (for the log)."""
    if watch.poll is not None:
        return watch.poll, f"poll = {str(watch.poll).lower()} in config"
    fs = mount_fs_type(watch.path, mountinfo)
    if fs in NETWORK_FS:
        return True, f"{watch.path} is on a network share ({fs}), which sends no inotify events"
    return False, f"local filesystem ({fs or 'unknown'})"


@dataclass
class _Pending:
    closed: bool
    size: int
    mtime_ns: int
    stable_since: float


class FolderWatcher:
    """Watches a set of folders and reports files ready for capture.

    Thread-safe: observer threads call the handler; the main loop calls
    `ready()` and `rescan()`. `wake` is called whenever something may be ready.
    """

    def __init__(self, watches: list[WatchConfig], wake: Callable[[], None],
                 clock: Callable[[], float] = time.monotonic):
        self.watches = watches
        self.wake = wake
        self.clock = clock
        self._pending: dict[Path, _Pending] = {}
        self._lock = threading.Lock()
        self._observers: list = []
        self.rescan_requested = threading.Event()

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> list[str]:
        """Start one observer per folder; returns a log line per folder."""
        lines = []
        handler = _Handler(self)
        for w in self.watches:
            poll, why = should_poll(w)
            observer = PollingObserver(timeout=POLL_INTERVAL_S) if poll else Observer()
            observer.schedule(handler, str(w.path), recursive=True)
            observer.daemon = True
            observer.start()
            self._observers.append(observer)
            lines.append(f"watching {w.path} kind={w.kind} mode={'poll' if poll else 'inotify'} reason=\"{why}\"")
        _OverflowAlarm.install(self)
        return lines

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

    def note(self, path: Path, closed: bool = False) -> None:
        """Something happened to `path`; remember it for settling."""
        if ignored(path.name) or self.watch_of(path) is None:
            return
        with self._lock:
            p = self._pending.get(path)
            if p is None:
                self._pending[path] = _Pending(closed, -1, -1, self.clock())
            else:
                p.closed = p.closed or closed
        self.wake()

    def scan(self) -> int:
        """Note every file under every folder (start-up and periodic rescans).
        Returns how many files were seen."""
        n = 0
        for w in self.watches:
            for path in self.files_under(w.path):
                self.note(path)
                n += 1
        return n

    @staticmethod
    def files_under(root: Path) -> Iterator[Path]:
        """Every non-ignored entry below `root` (special files included, so
        they are refused with a reason), not following symlinked folders."""
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d not in IGNORED_DIRS and not ignored(d))
            for name in sorted(files):
                if not ignored(name):
                    yield Path(folder) / name

    def watch_of(self, path: Path) -> WatchConfig | None:
        """The watched folder `path` lies in, or None."""
        for w in self.watches:
            try:
                rel = path.relative_to(w.path)
            except ValueError:
                continue
            # No exception for e-mail folders: Maildir's tmp/ holds messages
            # still being written, and cur/ and processed/ hold the ones we
            # took (taking them again would record each a second time).
            if not any(part in IGNORED_DIRS for part in rel.parts[:-1]):
                return w
        return None

    def ready(self) -> list[Path]:
        """Paths complete now: closed after writing, or stable in size and
        mtime for the folder's settle_seconds. Vanished paths are dropped."""
        out = []
        now = self.clock()
        with self._lock:
            items = list(self._pending.items())
        for path, p in items:
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                self._forget(path)
                continue
            except OSError:
                out.append(path)  # capture will say what is wrong with it
                continue
            if not stat.S_ISREG(st.st_mode):
                out.append(path)  # a FIFO or a symlink is refused at once, with its reason
                continue
            w = self.watch_of(path)
            settle = w.settle_seconds if w else 2.0
            with self._lock:
                if (st.st_size, st.st_mtime_ns) != (p.size, p.mtime_ns):
                    p.size, p.mtime_ns, p.stable_since = st.st_size, st.st_mtime_ns, now
                    if not p.closed:
                        continue
                if p.closed or now - p.stable_since >= settle:
                    out.append(path)
        return out

    def next_due_in(self) -> float | None:
        """Seconds until a pending file may settle, for the main loop's sleep."""
        with self._lock:
            if not self._pending:
                return None
        return 0.25

    def done(self, path: Path) -> None:
        """The main loop has handled `path` (captured or refused)."""
        self._forget(path)

    def _forget(self, path: Path) -> None:
        with self._lock:
            self._pending.pop(path, None)

    @property
    def pending_count(self) -> int:
        """Paths noted and not yet handled (settling or waiting for the main loop)."""
        with self._lock:
            return len(self._pending)


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: FolderWatcher):
        self.watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            if isinstance(event, (FileMovedEvent,)) or event.event_type in ("moved", "created"):
                # A folder moved in brings files that raise no events of their own.
                self.watcher.rescan_requested.set()
                self.watcher.wake()
            return
        if isinstance(event, FileMovedEvent):
            self.watcher.note(Path(os.fsdecode(event.dest_path)))
        elif isinstance(event, FileClosedEvent):
            self.watcher.note(Path(os.fsdecode(event.src_path)), closed=True)
        elif isinstance(event, (FileCreatedEvent, FileModifiedEvent)):
            self.watcher.note(Path(os.fsdecode(event.src_path)))


class _OverflowAlarm(logging.Handler):
    """watchdog reports a kernel inotify queue overflow only as a log
    warning; turn that warning into an immediate rescan."""

    _watchers: set = set()
    _installed: "_OverflowAlarm | None" = None

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            for w in list(self._watchers):
                w.rescan_requested.set()
                w.wake()

    @classmethod
    def install(cls, watcher: FolderWatcher) -> None:
        """Have an inotify overflow ask `watcher` for a rescan."""
        cls._watchers.add(watcher)
        if cls._installed is None:
            cls._installed = cls(level=logging.WARNING)
            logging.getLogger("watchdog").addHandler(cls._installed)

    @classmethod
    def remove(cls, watcher: FolderWatcher) -> None:
        """Stop telling `watcher` about overflows."""
        cls._watchers.discard(watcher)
