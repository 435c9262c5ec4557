"""What `ingest` may read: only what the person running it could read.

In production `ingest` runs as the service user (`sudo -u fapiao`), which
can read what its operators cannot: the config with its tokens, the
daemon's environment under /proc. Taken into the vault, such a file would
be readable by the whole read group and copied to every backup target.
So a file is taken only when the person behind sudo could read it by its
own permissions, never from /proc, /sys or /dev (no invoice lives there),
and never the agent's config. Judged on the opened file's fstat, so a
symlink swapped after the check changes nothing.
"""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path
from typing import Callable

from service.access import Identity

_KERNEL_FOLDERS = ("/proc", "/sys", "/dev")


def ingest_admission(config_path: Path | None, who: Identity) -> Callable[[os.stat_result], str | None]:
    """A check for `store_file(admit=...)`: given an opened file's fstat, why
    `who` may not have it taken (None: taken). Refused: a file on the kernel's
    own filesystems, the config file itself, and, when a person acts through
    another account (sudo), a file that person's uid and groups could not read."""
    kernel = set()
    for folder in _KERNEL_FOLDERS:
        try:
            kernel.add(os.stat(folder).st_dev)
        except OSError:
            pass
    config = None
    if config_path is not None:
        try:
            st = os.stat(config_path)
            config = (st.st_dev, st.st_ino)
        except OSError:
            pass
    person = _person(who)

    def admit(st: os.stat_result) -> str | None:
        if st.st_dev in kernel:
            return "is a kernel file (/proc, /sys, /dev), not an invoice; not taken"
        if (st.st_dev, st.st_ino) == config:
            return "is the agent's own config; not taken"
        if person is not None and not _readable(st, *person):
            return (f"{who.invoker} cannot read this file by its own permissions; not taken for them "
                    "(ingest reads only what the person running it may read)")
        return None

    return admit


def _person(who: Identity) -> tuple[int, set[int]] | None:
    # (uid, groups) of the person behind sudo, when the process acts as
    # another account; None when the kernel already checks as them.
    if who.invoker_uid is None or who.invoker_uid == who.uid:
        return None
    if who.invoker_uid == 0:
        return None  # root behind sudo: it reads everything anyway
    try:
        entry = pwd.getpwuid(who.invoker_uid)
    except KeyError:
        return who.invoker_uid, set()
    return who.invoker_uid, set(os.getgrouplist(entry.pw_name, entry.pw_gid))


def _readable(st: os.stat_result, uid: int, gids: set[int]) -> bool:
    mode = st.st_mode
    if st.st_uid == uid:
        return bool(mode & stat.S_IRUSR)
    if st.st_gid in gids:
        return bool(mode & stat.S_IRGRP)
    return bool(mode & stat.S_IROTH)
