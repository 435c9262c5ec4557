"""Opening the daemon's state: which failures are waited for, which end the start.

A state disk that is read-only or full comes back by itself (remounted
read-write, space freed), so the daemon waits for it without claiming
READY. Anything else (the lock held by another daemon, a ledger that is not
a database or cannot be written, a state folder that cannot be created)
needs a person: the daemon exits non-zero, and systemd shows it failed.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from agent.errors import AgentError

# While waiting for a read-only or full state disk at start, systemd is
# told to wait this much longer than each backoff for the next word from us.
EXTEND_MARGIN_S = 30.0
# A state disk with one of these errors comes back by itself (remounted
# read-write, space freed): waited for at start, never a reason to exit.
WAIT_ERRNOS = frozenset({errno.EROFS, errno.ENOSPC, errno.EDQUOT})
_SQLITE_FULL = 13
# SQLITE_READONLY, SQLITE_IOERR, SQLITE_CANTOPEN: waited for only when the
# ledger's file system is mounted read-only (else a file mode or a broken file).
_SQLITE_READ_ONLY_SIGNS = frozenset({8, 10, 14})


class StateUnavailable(AgentError):
    """The ledger, vault or lock cannot be opened, and waiting will not help:
    the daemon exits non-zero without READY=1. `errno` when the OS gave one."""

    def __init__(self, message: str, os_errno: int | None = None):
        super().__init__(message)
        self.errno = os_errno


def worth_waiting(e: BaseException, folder) -> bool:
    """True when `e`, met opening the state, is a disk that is read-only or
    full (it comes back by itself), not a fault only a person can fix."""
    if isinstance(e, OSError):
        return e.errno in WAIT_ERRNOS
    code = getattr(e, "sqlite_errorcode", None)
    if code is None:
        return False
    primary = code & 0xFF
    if primary == _SQLITE_FULL:
        return True
    if primary not in _SQLITE_READ_ONLY_SIGNS:
        return False
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


class AlreadyRunning(StateUnavailable):
    """Another daemon holds the lock on this ledger."""


def take_daemon_lock(state_dir: Path, ledger_path: Path) -> int:
    """The daemon's exclusive lock on `state_dir`/daemon.lock, holding our
    pid; returns its fd (the lock lasts while it is open). Raises
    AlreadyRunning, naming the other daemon's pid, when one holds it: only
    one daemon may write a ledger."""
    fd = os.open(state_dir / "daemon.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise AlreadyRunning(f"another fapiao-agent daemon (pid {other}) is already running on "
                             f"{ledger_path}; stop it first (only one may run per ledger)") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd
