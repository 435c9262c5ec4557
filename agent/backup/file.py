"""A backup target on a mounted disk or NAS folder.

Objects are plain files under the root at their key's path, so an operator
can read a backup with `ls` and `sha256sum`. Writes go to a hidden temp file
in the destination folder, are hashed and fsynced, then renamed into place
and the folder fsynced: a crash leaves the old object or the new one, never
half of one. The SHA-256 is not stored beside the file: `head` re-hashes,
so what it reports is always what the disk holds.
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import os
import secrets
from pathlib import Path
from typing import Iterator

from agent.backup.base import (AccessDenied, ChecksumMismatch, FolderMissing, ObjectInfo, Source, check_dest,
                               check_key, check_prefix, check_sha256, source_path)
from agent.errors import NotFound, Permanent, Transient
from agent.fsutil import fsync_dir

CHUNK = 1 << 20
TEMP_PREFIX = ".tmp-"
# Like the vault: the agent and its group, never every user; set, not left to the umask.
FILE_MODE = 0o640
DIR_MODE = 0o750

# errno values that a person must fix (permissions, read-only mount);
# everything else (EIO, ENOSPC, ESTALE...) may pass by itself.
_PERMANENT_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENAMETOOLONG,
                     errno.EISDIR, errno.ENOTDIR}
# Of those, the ones about the whole disk rather than one key: raised as
# AccessDenied, so the target is paused (and `status --check` warns at once)
# instead of counted as unreachable, which warns only after
# backup_unreachable_warn_minutes although no wait can remount a disk.
_DENIED_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS}


class FileTarget:
    """Objects as files under `root`, which must already exist.

    The root is never created: a NAS that is not mounted leaves an empty
    mount point or none, and writing there would silently fill the local
    disk instead. A missing root raises `FolderMissing` (Transient) at every call.
    """

    def __init__(self, root: str | os.PathLike, name: str = "file", url: str | None = None):
        self.root = Path(root)
        self.name = name
        self.url = url or self.root.resolve().as_uri()

    def __repr__(self) -> str:
        return f"FileTarget({self.name!r}, {str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def _check_root(self) -> None:
        if not self.root.is_dir():
            raise FolderMissing(f"backup target {self.name!r}: folder {self.root} does not exist "
                                "(disk not mounted?)")

    def _error(self, action: str, key: str, e: OSError) -> Exception:
        where = f"backup target {self.name!r}: {action} {key!r} in {self.root}"
        if e.errno in _DENIED_ERRNOS:
            return AccessDenied(f"{where}: {e.strerror or e} (a read-only mount or the folder's permissions?)")
        if e.errno in _PERMANENT_ERRNOS:
            return Permanent(f"{where}: {e.strerror or e}")
        return Transient(f"{where}: {e.strerror or e}")

    def put(self, key: str, path_or_bytes: Source, sha256: str) -> None:
        """See BackupTarget.put: temp file, hash check, fsync, rename, fsync folder."""
        check_sha256(sha256)
        final = self._path(key)
        self._check_root()
        src_path = source_path(path_or_bytes)
        existing = self.head(key)
        if existing is not None and existing.sha256 == sha256:
            return
        try:
            source = path_or_bytes if src_path is None else open(src_path, "rb")
        except OSError as e:
            raise Permanent(f"backup target {self.name!r}: cannot read source {src_path} "
                            f"for {key!r}: {e.strerror or e}") from e
        try:
            created = _make_dirs(self.root, final.parent)
            tmp = final.parent / f"{TEMP_PREFIX}{final.name}.{secrets.token_hex(4)}"
            try:
                digest = _write_and_hash(tmp, source)
                if digest != sha256:
                    raise ChecksumMismatch(f"backup target {self.name!r}: content for {key!r} "
                                           f"hashes to {digest}, not {sha256}")
                os.replace(tmp, final)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            fsync_dir(final.parent)
            for d in created:
                fsync_dir(d.parent)
        except OSError as e:
            raise self._error("writing", key, e) from e
        finally:
            if source is not path_or_bytes:
                source.close()

    def head(self, key: str) -> ObjectInfo | None:
        """See BackupTarget.head; the SHA-256 is computed now from the file's bytes."""
        path = self._path(key)
        self._check_root()
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                digest = hashlib.file_digest(f, "sha256").hexdigest()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        except OSError as e:
            raise self._error("reading", key, e) from e
        return ObjectInfo(key, st.st_size, digest, _mtime(st))

    def get(self, key: str, dest: str | os.PathLike | None = None) -> bytes | None:
        """See BackupTarget.get."""
        path = self._path(key)
        dest = None if dest is None else check_dest(dest)
        self._check_root()
        try:
            if dest is None:
                return path.read_bytes()
            tmp = dest.with_name(f"{TEMP_PREFIX}{dest.name}.{secrets.token_hex(4)}")
            try:
                with open(path, "rb") as src:
                    _write_and_hash(tmp, src)
                os.replace(tmp, dest)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            fsync_dir(dest.parent)
            return None
        except (FileNotFoundError, IsADirectoryError) as e:
            if not path.is_file():
                raise NotFound(f"backup target {self.name!r}: no object {key!r}") from e
            raise self._error("reading", key, e) from e
        except OSError as e:
            raise self._error("reading", key, e) from e

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """See BackupTarget.list; sizes and times from stat, sha256 None (not hashed)."""
        check_prefix(prefix)
        self._check_root()
        # Walk only the folder the prefix points into, not the whole tree.
        start_rel = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        if start_rel:
            check_key(start_rel)
        start = self.root.joinpath(*start_rel.split("/")) if start_rel else self.root
        try:
            yield from self._walk(start, start_rel, prefix)
        except OSError as e:
            raise self._error("listing", prefix, e) from e

    def _walk(self, folder: Path, rel: str, prefix: str) -> Iterator[ObjectInfo]:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            return
        # Sorting names and descending in place would misorder "a/x" vs "a.b";
        # S3 orders by the full key, so sort by the full key here too.
        items = []
        for entry in entries:
            if entry.name.startswith(TEMP_PREFIX):
                continue
            key = f"{rel}/{entry.name}" if rel else entry.name
            if entry.is_dir(follow_symlinks=False):
                if key.startswith(prefix[:len(key)]):
                    items.append((key + "/", entry))
            elif entry.is_file(follow_symlinks=False) and key.startswith(prefix):
                items.append((key, entry))
        for sort_key, entry in sorted(items, key=lambda kv: kv[0]):
            if sort_key.endswith("/"):
                yield from self._walk(Path(entry.path), sort_key[:-1], prefix)
            else:
                st = entry.stat(follow_symlinks=False)
                yield ObjectInfo(sort_key, st.st_size, None, _mtime(st))

    def delete(self, key: str) -> None:
        """See BackupTarget.delete."""
        path = self._path(key)
        self._check_root()
        try:
            path.unlink()
            fsync_dir(path.parent)
        except FileNotFoundError:
            return
        except OSError as e:
            raise self._error("deleting", key, e) from e


def _write_and_hash(tmp: Path, source) -> str:
    """Write `source` (bytes or an open binary file) to `tmp` (mode 0640), fsync it,
    return its SHA-256."""
    digest = hashlib.sha256()
    with open(tmp, "xb") as out:
        os.fchmod(out.fileno(), FILE_MODE)
        if isinstance(source, (bytes, bytearray, memoryview)):
            digest.update(source)
            out.write(source)
        else:
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest()


def _make_dirs(root: Path, folder: Path) -> list[Path]:
    """mkdir -p `folder` below `root`, each made 0750; the folders it created, outermost first."""
    missing = []
    d = folder
    while d != root and not d.is_dir():
        missing.append(d)
        d = d.parent
    for d in reversed(missing):
        try:
            d.mkdir()
        except FileExistsError:
            continue
        os.chmod(d, DIR_MODE)
    return list(reversed(missing))


def _mtime(st: os.stat_result) -> dt.datetime:
    return dt.datetime.fromtimestamp(st.st_mtime, dt.timezone.utc)
