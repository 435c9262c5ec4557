"""Durable-write helpers shared by the vault, file backups and folder deliveries."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def fsync_dir(path: str | os.PathLike) -> None:
    """Flush a folder's entries to disk, so a rename into it survives a power cut."""
    fd = os.open(Path(path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_link_at(name: str, dirfd: int) -> bool:
    """Whether `name` in the folder open as `dirfd` is a symlink (not
    followed); False when it is gone since it was listed."""
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dirfd, follow_symlinks=False).st_mode)
    except OSError:
        return False


# The largest integer SQLite stores: a file's time in nanoseconds past 2262
# (a scanner clock set wrong, `touch -d 2300-01-01`) is held at it.
_INT64_MAX = 2**63 - 1


def storable_ns(ns: int) -> int:
    """A stat time in nanoseconds as the ledger can hold it: clamped to
    SQLite's 64-bit integers (every reading of a file's times goes through
    this, so a clamped time compares equal with itself)."""
    return max(-_INT64_MAX - 1, min(ns, _INT64_MAX))
