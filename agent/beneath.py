"""Acting on a file that really lies under a folder, never through a symlink.

A path noticed in a watched folder is only a name. By the time it is opened,
moved or deleted, one of its folders may have been swapped for a symlink
(`renameat2(RENAME_EXCHANGE)`) leading to the state folder or /etc. So every
operation here starts from the root's directory fd and opens each folder
below it with O_NOFOLLOW|O_DIRECTORY, then acts on the last name relative to
the fd reached: whatever happens to the names meanwhile, that fd is a real
folder beneath the root. Moves and deletes also check that the name still
holds the very file (inode, size, mtime, ctime) that was captured.

The root itself is pinned (`pin_root`, when the daemon starts watching it):
its (st_dev, st_ino) then, checked on the fd every walk starts from. A root
exchanged for a symlink to the outbox or the state folder raises
RootReplaced, so nothing outside the watched folder is read, moved or
deleted until it is back, or an operator repins it (`config repin`) and
reloads.
"""

from __future__ import annotations

import errno
import os
import stat
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from agent.fsutil import storable_ns

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
FILE_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_RENAME_NOREPLACE = 1


class Escapes(Exception):
    """The path does not lead to a place beneath the root without a symlink."""


class RootReplaced(Escapes):
    """The watched folder's name now leads to another folder than the one pinned."""


# Watched folder (as configured) -> (st_dev, st_ino) of the folder it led to when pinned.
_PINS: dict[str, tuple[int, int]] = {}


def pin_root(root: Path) -> tuple[int, int]:
    """Remember which folder `root` leads to now (following a configured
    symlink once); from now on every walk from `root` must reach that very
    folder. Re-pinning (a reload) accepts the folder found then."""
    st = os.stat(root)
    _PINS[os.fspath(root)] = (st.st_dev, st.st_ino)
    return _PINS[os.fspath(root)]


def pinned(root: Path) -> tuple[int, int] | None:
    """The pinned identity of `root`, or None when it was never pinned."""
    return _PINS.get(os.fspath(root))


def root_problem(root: Path) -> str | None:
    """Why `root` may not be used now (it leads to another folder than the
    one pinned, or is gone), or None when it is fine or was never pinned."""
    pin = pinned(root)
    if pin is None:
        return None
    try:
        st = os.stat(root)
    except OSError as e:
        return f"watched folder {root} cannot be reached ({e.strerror})"
    return _replaced(root, st, pin)


def _replaced(root: Path, st: os.stat_result, pin: tuple[int, int]) -> str | None:
    if (st.st_dev, st.st_ino) == pin:
        return None
    return (f"watched folder {root} was replaced (it now leads to another folder); nothing taken, "
            f"moved or deleted there until it is back (replaced on purpose: `fapiao-agent config repin "
            f"{root}`, then reload)")


@dataclass(frozen=True)
class Identity:
    """Which file a name held when it was captured: a rename-over, an
    in-place rewrite (`cp -p`: same inode, size and mtime, new ctime) or a
    replacement (`rsync -t`: new inode) all change it."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> "Identity":
        """The identity in a stat result."""
        return cls(st.st_dev, st.st_ino, st.st_size, storable_ns(st.st_mtime_ns), storable_ns(st.st_ctime_ns))

    def differences(self, st: os.stat_result) -> list[str]:
        """What changed between this identity and `st` (empty: the same file, unchanged)."""
        now = Identity.of(st)
        out = []
        if (now.dev, now.ino) != (self.dev, self.ino):
            out.append("another file (inode)")
        for name in ("size", "mtime_ns", "ctime_ns"):
            if getattr(now, name) != getattr(self, name):
                out.append(name.removesuffix("_ns"))
        if not stat.S_ISREG(st.st_mode):
            out.append("not a regular file")
        return out


def relative_parts(root: Path, path: Path) -> list[str]:
    """`path`'s components below `root`; raises Escapes for a path not
    below it or one with empty, `.` or `..` components."""
    # Plain string work: this runs for every file of every rescan.
    top, full = os.fspath(root).rstrip("/") + "/", os.fspath(path)
    if not full.startswith(top):
        raise Escapes(f"not inside {root}")
    parts = full[len(top):].split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise Escapes(f"not a plain path inside {root}")
    return parts


@contextmanager
def folder_of(root: Path, path: Path, *, create_mode: int | None = None) -> Iterator[tuple[int, str]]:
    """(fd of the folder holding `path`, last name), the folder reached from
    `root` without following any symlink. With `create_mode`, missing
    folders are created with exactly that mode and the process's own
    (effective) group, never one a setgid folder hands down. Raises Escapes when a folder
    on the way is a symlink or not a folder, FileNotFoundError when one is
    missing. The root itself is opened as configured (it may be a symlink),
    but when pinned it must be the pinned folder, else RootReplaced."""
    parts = relative_parts(root, path)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    try:
        pin = pinned(root)
        if pin is not None:
            why = _replaced(root, os.fstat(fd), pin)
            if why:
                raise RootReplaced(why)
        for part in parts[:-1]:
            nfd = _open_dir(fd, part, create_mode)
            os.close(fd)
            fd = nfd
        yield fd, parts[-1]
    finally:
        os.close(fd)


def _open_dir(dirfd: int, name: str, create_mode: int | None) -> int:
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=dirfd)
    except FileNotFoundError:
        if create_mode is None:
            raise
        try:
            os.mkdir(name, create_mode, dir_fd=dirfd)
        except FileExistsError:
            pass  # made meanwhile by someone else: opened (and checked) below
        else:
            fd = os.open(name, _DIR_FLAGS, dir_fd=dirfd)
            # Our own group, not the one a setgid watched folder hands down
            # (the drop group): whoever may drop files there must not read
            # what the agent moved aside, as they cannot read the vault.
            os.fchown(fd, -1, os.getegid())
            os.fchmod(fd, create_mode)  # exactly, whatever the umask
            return fd
        return _open_dir(dirfd, name, None)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
            raise Escapes(f"the folder {name!r} on its path is a symlink or not a folder") from None
        raise
    return fd  # O_DIRECTORY: a folder, O_NOFOLLOW: not through a symlink


def lstat_beneath(root: Path, path: Path) -> os.stat_result:
    """lstat of `path`, reached from `root` without following symlinks (see `folder_of`)."""
    with folder_of(root, path) as (dirfd, name):
        return os.stat(name, dir_fd=dirfd, follow_symlinks=False)


def unlink_if_same(root: Path, path: Path, identity: Identity) -> None:
    """Delete `path` beneath `root` only if it is still the captured file.
    Raises Escapes, FileNotFoundError, Changed (naming what changed) or OSError."""
    with folder_of(root, path) as (dirfd, name):
        _check(dirfd, name, identity)
        os.unlink(name, dir_fd=dirfd)


def move_if_same(root: Path, path: Path, identity: Identity, target_dir: Path, *, name: str | None = None,
                 dir_mode: int | None, file_mode: int | None) -> Path:
    """Move `path` beneath `root` into `target_dir` (also beneath `root`;
    created with `dir_mode` where missing, unless None) as `name` (default:
    its own), or a free variant of it, never replacing a file; only if it is
    still the captured file and has no other name (a hard link). Chmods it
    to `file_mode` when we may and it has one name only. Returns
    where it went. Raises like `unlink_if_same`."""
    new_base = name
    with folder_of(root, path) as (dirfd, name):
        fd = os.open(name, FILE_FLAGS, dir_fd=dirfd)  # ELOOP for a symlink: an OSError, not acted on
        try:
            st = os.fstat(fd)
            changed = identity.differences(st)
            if st.st_nlink > 1:
                changed.append(f"it has {st.st_nlink - 1} other name(s) (a hard link)")
            if changed:
                raise Changed(", ".join(changed))
            with folder_of(root, target_dir / "x", create_mode=dir_mode) as (target_fd, _):
                new_name = _rename_free(dirfd, name, target_fd, new_base or name)
                moved = os.stat(new_name, dir_fd=target_fd, follow_symlinks=False)
                if (moved.st_dev, moved.st_ino) != (identity.dev, identity.ino):
                    # Swapped between the check and the rename: put it back.
                    os.rename(new_name, name, src_dir_fd=target_fd, dst_dir_fd=dirfd)
                    raise Changed("another file (inode) took its name while it was moved")
            if file_mode is not None and os.fstat(fd).st_nlink == 1:
                # Never with another name: a chmod acts on the inode, whose
                # other name may lie outside the watched folder.
                try:
                    os.fchmod(fd, file_mode)
                except PermissionError:
                    pass  # not ours (the scanner's user owns it); the folder's 0750 still guards it
            return target_dir / new_name
        finally:
            os.close(fd)


class Changed(Exception):
    """The name no longer holds the captured file, unchanged."""


def _check(dirfd: int, name: str, identity: Identity) -> None:
    st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    changed = identity.differences(st)
    if st.st_nlink > 1:
        changed.append(f"it has {st.st_nlink - 1} other name(s) (a hard link)")
    if changed:
        raise Changed(", ".join(changed))


def _rename_free(src_fd: int, name: str, dst_fd: int, base: str) -> str:
    """Rename `name` into `dst_fd` as `base`, or `stem.N.ext` when taken; never replaces."""
    stem, dot, ext = base.rpartition(".")
    if not stem:
        stem, dot, ext = base, "", ""
    for n in range(10_000):
        candidate = base if n == 0 else f"{stem}.{n}{dot}{ext}"
        try:
            _rename_noreplace(src_fd, name, dst_fd, candidate)
            return candidate
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free name in the target folder", name)


_libc = None


def _rename_noreplace(src_fd: int, src: str, dst_fd: int, dst: str) -> None:
    global _libc
    import ctypes   # here: the ledger imports this module, and reading it needs no libc

    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    fn = getattr(_libc, "renameat2", None)
    if fn is not None:
        if fn(src_fd, os.fsencode(src), dst_fd, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
            return
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOSYS):  # EINVAL: the filesystem lacks the flag
            raise OSError(err, os.strerror(err), dst)
    # No renameat2: look, then rename (a name taken in between is replaced;
    # only our own processed/ folder is at stake).
    try:
        os.stat(dst, dir_fd=dst_fd, follow_symlinks=False)
    except FileNotFoundError:
        os.rename(src, dst, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
        return
    raise FileExistsError(errno.EEXIST, "exists", dst)
