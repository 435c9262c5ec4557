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
