"""Opening the daemon's state: which failures are waited for, which end the start.

A state disk that is read-only or full comes back by itself (remounted
read-write, space freed), so the daemon waits for it without claiming
READY. Anything else (the lock held by another daemon, a ledger that is not
a database or cannot be written, a state folder that cannot be created)
needs a person: the daemon exits non-zero, and systemd shows it failed.
"""

from __future__ import annotations

import errno
import os

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
