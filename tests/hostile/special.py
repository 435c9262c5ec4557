"""Entries that are not plain files, and names that are not plain names.

Each maker takes the folder and the case id and creates one entry there;
it raises `NotPermitted` when the system will not let it (mknod without
CAP_MKNOD), so the test can skip with that reason.
"""

from __future__ import annotations

import os
import socket
import stat
import tempfile
from pathlib import Path


class NotPermitted(Exception):
    """The entry cannot be made here; the message says why."""


def fifo(folder: Path, cid: str) -> None:
    os.mkfifo(folder / f"{cid}.pdf")


def fifo_gbk_name(folder: Path, cid: str) -> None:
    os.mkfifo(os.fsencode(folder) + b"/" + cid.encode() + "-管道.pdf".encode("gbk"))


def unix_socket(folder: Path, cid: str) -> None:
    # AF_UNIX paths are limited to 108 bytes: bind in a short folder, move in.
    short = tempfile.mkdtemp(prefix="hs", dir="/tmp")
    try:
        s = socket.socket(socket.AF_UNIX)
        s.bind(os.path.join(short, "s"))
        s.close()
        os.rename(os.path.join(short, "s"), folder / f"{cid}.pdf")
    except OSError as e:
        raise NotPermitted(f"cannot create a socket in the watched folder: {e}") from None
    finally:
        if os.path.exists(os.path.join(short, "s")):
            os.unlink(os.path.join(short, "s"))
        os.rmdir(short)


def _mknod(path: Path, kind: int, major: int, minor: int) -> None:
    try:
        os.mknod(path, kind | 0o600, os.makedev(major, minor))
    except PermissionError as e:
        raise NotPermitted(f"os.mknod is not permitted here (needs root / CAP_MKNOD): {e}") from None


def char_device(folder: Path, cid: str) -> None:
    _mknod(folder / f"{cid}.pdf", stat.S_IFCHR, 1, 3)  # /dev/null's numbers


def block_device(folder: Path, cid: str) -> None:
    _mknod(folder / f"{cid}.pdf", stat.S_IFBLK, 7, 0)  # loop0's numbers


def symlink_outside(folder: Path, cid: str) -> None:
    (folder / f"{cid}.pdf").symlink_to("/etc/passwd")


def symlink_dangling(folder: Path, cid: str) -> None:
    (folder / f"{cid}.pdf").symlink_to(folder.parent / "nowhere" / "gone.pdf")


def symlink_to_fifo(folder: Path, cid: str) -> None:
    target = folder.parent / f"{cid}-outside-fifo"
    os.mkfifo(target)
    (folder / f"{cid}.pdf").symlink_to(target)


def outside_file_content(cid: str) -> bytes:
    """What the folder behind `symlink_dir_outside` holds (must never be captured)."""
    return b"%PDF-1.4\n% outside the watched folder " + cid.encode() + b"\n%%EOF\n"


def symlink_dir_outside(folder: Path, cid: str) -> None:
    outside = folder.parent / f"{cid}-outside"
    outside.mkdir()
    (outside / "secret.pdf").write_bytes(outside_file_content(cid))
    (folder / cid).symlink_to(outside, target_is_directory=True)


def sparse_5gb(folder: Path, cid: str) -> None:
    with open(folder / f"{cid}.pdf", "wb") as f:
        f.write(b"%PDF-1.4\n")
        f.truncate(5 * 1024 ** 3)  # sparse: no disk blocks behind the hole


def raw_name(folder: Path, name: bytes, data: bytes) -> None:
    """Write `data` under a name given as bytes (not necessarily UTF-8)."""
    with open(os.fsencode(folder) + b"/" + name, "wb") as f:
        f.write(data)
