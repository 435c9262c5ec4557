"""What `ingest` may read: only what the person running it could read.

In production `ingest` runs as the service user (`sudo -u fapiao`), which
can read what its operators cannot: the config with its tokens, the
daemon's environment under /proc. Taken into the vault, such a file would
be readable by the whole read group and copied to every backup target.
So a file is taken only when the person behind sudo could reach and read it
by its permissions (each folder on its way searchable, the file readable,
by owner, group or other mode bits; a file or folder carrying an ACL, which
mode bits do not tell, is refused rather than guessed at), never from a
kernel filesystem (proc, sysfs, devtmpfs ..., wherever mounted) nor
anything under /proc, /sys or /dev (no invoice lives there), and never the
agent's config. Judged on the opened file (its fstat, and the path the
kernel gives for its descriptor), so a symlink swapped after a check
changes nothing.
"""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path
from typing import Callable

from service.access import Identity

_KERNEL_FOLDERS = ("/proc", "/sys", "/dev")
# Filesystems that are the kernel's, not files: wherever one is mounted.
_KERNEL_FS = frozenset({"proc", "sysfs", "devtmpfs", "devpts", "debugfs", "tracefs", "securityfs", "cgroup",
                        "cgroup2", "configfs", "bpf", "pstore", "efivarfs", "fusectl", "mqueue", "binfmt_misc",
                        "autofs", "rpc_pipefs", "nsfs"})
_ACL = "system.posix_acl_access"


def ingest_admission(config_path: Path | None, who: Identity) -> Callable[[int, os.stat_result], str | None]:
    """A check for `store_file(admit=...)`: given an opened file's descriptor
    and fstat, why `who` may not have it taken (None: taken). Refused: a file
    on or below /proc, /sys or /dev, the config file itself, and, when a
    person acts through another account (sudo), a file that person's uid and
    groups could not reach and read."""
    kernel = _kernel_devices()
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

    def admit(fd: int, st: os.stat_result) -> str | None:
        try:
            where = Path(os.readlink(f"/proc/self/fd/{fd}"))  # the file opened, not the name asked for
        except OSError:
            where = None
        if st.st_dev in kernel or where is None or any(
                where.is_relative_to(folder) for folder in _KERNEL_FOLDERS):
            return "is a kernel file (/proc, /sys, /dev) or cannot be told apart from one; not taken"
        if (st.st_dev, st.st_ino) == config:
            return "is the agent's own config; not taken"
        if person is not None:
            if _has_acl(fd, where):
                return (f"it or a folder on its way carries an ACL, so whether {who.invoker} may read it is "
                        "not told by its mode; not taken for them (copy it to a plain folder)")
            if not (_reachable(where, *person) and _readable(st, *person, stat.S_IRUSR)):
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


def _kernel_devices() -> set[int]:
    """The devices of every kernel filesystem mounted now (/proc/self/mountinfo)."""
    found = set()
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as lines:
            for line in lines:
                fields = line.split()
                if " - " not in line or len(fields) < 3:
                    continue
                fstype = line.split(" - ", 1)[1].split()[0]
                if fstype in _KERNEL_FS:
                    major, minor = fields[2].split(":")
                    found.add(os.makedev(int(major), int(minor)))
    except (OSError, ValueError):
        pass
    return found


def _has_acl(fd: int, path: Path) -> bool:
    # The file (by its descriptor) or any folder on its way.
    try:
        if os.getxattr(fd, _ACL):
            return True
    except OSError:
        pass
    for folder in path.parents:
        try:
            if os.getxattr(folder, _ACL):
                return True
        except OSError:
            continue
    return False


def _reachable(path: Path, uid: int, gids: set[int]) -> bool:
    # Every folder from / down to the file's is searchable by the person.
    for folder in path.parents:
        try:
            st = os.stat(folder)
        except OSError:
            return False
        if not _readable(st, uid, gids, stat.S_IXUSR):
            return False
    return True


def _readable(st: os.stat_result, uid: int, gids: set[int], owner_bit: int) -> bool:
    # The right `owner_bit` names (S_IRUSR read, S_IXUSR search) as the
    # owner's, the group's or other's bit, whichever class the person is in.
    if st.st_uid == uid:
        return bool(st.st_mode & owner_bit)
    if st.st_gid in gids:
        return bool(st.st_mode & (owner_bit >> 3))
    return bool(st.st_mode & (owner_bit >> 6))
