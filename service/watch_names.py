"""What a watched file's name, size and mount say before it is opened:
a temporary-looking or operating-system name, the intake order (likely
invoices, other files, junk), and whether a folder is polled (a network
share sends no inotify events). Pure functions of names, lstat results
and /proc/self/mountinfo; service/watch.py and intake use them."""

from __future__ import annotations

import fnmatch
import os
import re
import stat
from pathlib import Path

from agent.config import WatchConfig

# Nothing that lands is passed over in silence. Names that look like a file
# still being written (a browser's download, an editor's lock, a dotfile a
# sync tool renames when complete) wait TEMP_GRACE_S without a change, then
# go to intake, which refuses them with the reason; a Maildir's tmp/ holds
# deliveries in progress and waits as long, then is taken. Operating-system
# files are refused at once. Only the agent's own folders are skipped: the
# dated processed/ folders of an after = "move" watch.
TEMPORARY_NAMES = ("~$*", ".~lock*", "*.part", "*.tmp", "*.crdownload", ".*")
SYSTEM_NAMES = frozenset({".ds_store", "thumbs.db", "desktop.ini"})
TEMP_GRACE_S = 600.0
# A multipart e-mail without its closing delimiter is held this long
# unchanged (its writer between two goes: they pause for seconds), then
# taken as it is: a message that never closes is malformed, not unfinished.
MAIL_UNFINISHED_GRACE_S = 30.0
NETWORK_FS = ("cifs", "smb3", "smbfs", "nfs", "nfs4", "fuse.sshfs", "sshfs", "9p", "ceph",
              "glusterfs", "fuse.glusterfs", "davfs", "fuse.davfs2", "afs", "fuse.rclone")
# Below this size no invoice format fits (the smallest real PDF or 数电 XML
# is several hundred bytes): such a file is junk until intake proves otherwise.
JUNK_MAX_BYTES = 64
INVOICE_SUFFIXES = frozenset({".pdf", ".ofd", ".xml", ".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp",
                              ".gif", ".webp", ".zip", ".eml"})
# Intake order (names lie, so this only orders, it never decides): likely
# invoices first, then other files with content, then known junk (empty,
# tiny, not a regular file), which is refused cheaply but must never delay
# an invoice.
LIKELY, OTHER, JUNK = 0, 1, 2


_TEMPORARY = re.compile("|".join(fnmatch.translate(pat) for pat in TEMPORARY_NAMES))


def temporary_name(name: str) -> bool:
    """True for a name that looks like a file still being written (not
    an operating-system file: see `system_name`)."""
    return _TEMPORARY.match(name) is not None and not system_name(name)


def system_name(name: str) -> bool:
    """True for an operating-system file (.DS_Store, Thumbs.db, desktop.ini)."""
    return name.lower() in SYSTEM_NAMES


def waits_long(watch: WatchConfig, path: Path) -> bool:
    """True for a file given TEMP_GRACE_S without change before it is taken:
    a temporary-looking name, or a message in a Maildir's tmp/."""
    return temporary_name(path.name) or (watch.kind == "email" and path.parent.name == "tmp")


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


def intake_rank(path: Path, st: os.stat_result | None, kind: str) -> int:
    """LIKELY, OTHER or JUNK for a file about to be taken, from its lstat
    and name alone (nothing is opened): the order intake takes files in."""
    if st is None or not stat.S_ISREG(st.st_mode) or st.st_size < JUNK_MAX_BYTES:
        return JUNK
    if kind == "email" or path.suffix.lower() in INVOICE_SUFFIXES:
        return LIKELY
    return OTHER
