"""Content-addressed store of originals, plus one JSON sidecar per object.

Layout: `objects/ab/cd/<sha256>` and `objects/ab/cd/<sha256>.json`.
An object is written to `tmp/`, fsynced, renamed into place, and its
folder fsynced, so a crash leaves either the whole object under its final
name or nothing there. The agent never modifies or deletes an object;
only the sidecar is rewritten (atomically, the same way).
"""

from __future__ import annotations

import ctypes
import hashlib
import io
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from agent.errors import CaptureError, SourceUnavailable
from agent.fsutil import fsync_dir

CHUNK = 1024 * 1024
FILE_MODE = 0o640
DIR_MODE = 0o750


@dataclass(frozen=True)
class Stored:
    """The result of a put: the object's hash, size, and whether it was new."""

    sha256: str
    size: int
    created: bool


@dataclass(frozen=True)
class Staged:
    """Bytes written to the vault's tmp/ by `stage_stream`, not yet committed."""

    tmp_name: str
    sha256: str
    size: int


def _read(stream: BinaryIO) -> bytes:
    # The stream copied in is the caller's (a source file): its read errors
    # are that file's, not the vault's, and say so (SourceUnavailable).
    try:
        return stream.read(CHUNK)
    except OSError as e:
        raise SourceUnavailable(f"read failed: {e.strerror or e}") from None


def _syncfs(path: Path) -> None:
    """Flush the whole filesystem holding `path` (one syncfs(2)), or every
    filesystem (sync(2)) where syncfs is not available."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _LIBC is not None and _LIBC.syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        if _LIBC is None:
            os.sync()
    finally:
        os.close(fd)


def _libc():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syncfs  # noqa: B018 (present on Linux)
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _libc()


class Vault:
    """Originals by SHA-256 under `root`. Safe for several writer processes."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.objects = self.root / "objects"
        self.tmp = self.root / "tmp"
        for d in (self.root, self.objects, self.tmp):
            d.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        """Where the object with this hash lives (whether or not it exists)."""
        return self.objects / sha256[:2] / sha256[2:4] / sha256

    def sidecar_path(self, sha256: str) -> Path:
        """Where the object's JSON sidecar lives."""
        return self.path(sha256).with_name(sha256 + ".json")

    def exists(self, sha256: str) -> bool:
        """True when the object is in the vault (complete: it was renamed in)."""
        return self.path(sha256).is_file()

    def put_stream(self, stream: BinaryIO, max_bytes: int | None = None) -> Stored:
        """Copy a readable binary stream into the vault; durable on return.

        Raises CaptureError when the stream exceeds `max_bytes` or the disk
        fails; no partial object is ever left under a final name.
        """
        staged = self._copy_to_tmp(stream, max_bytes, prefix="in-", sync=True)
        try:
            return self._commit(staged.tmp_name, staged.sha256, staged.size)
        except OSError as e:
            raise CaptureError(f"vault write failed: {e.strerror or e}", transient=True) from None
        finally:
            if os.path.exists(staged.tmp_name):
                os.unlink(staged.tmp_name)

    def stage_stream(self, stream: BinaryIO, max_bytes: int | None = None) -> "Staged":
        """Copy a stream into `tmp/` without flushing it: NOT in the vault yet.
        For many small objects at once (a junk flood's refusals): one
        `commit_staged` then makes them all durable with two filesystem
        syncs instead of two fsyncs each. Raises CaptureError like `put_stream`."""
        return self._copy_to_tmp(stream, max_bytes, prefix="st-", sync=False)

    def _copy_to_tmp(self, stream: BinaryIO, max_bytes: int | None, *, prefix: str, sync: bool) -> "Staged":
        # The one copy loop: hashed as it is written, refused past max_bytes,
        # fsynced when asked; the temp file is gone again on any failure.
        digest = hashlib.sha256()
        size = 0
        try:
            fd, tmp_name = tempfile.mkstemp(dir=self.tmp, prefix=prefix)
        except OSError as e:  # the vault's own folder (gone, full, read-only): never the source's fault
            raise CaptureError(f"vault write failed: {e.strerror or e}", transient=True) from None
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := _read(stream):
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise CaptureError(f"larger than the limit of {max_bytes // (1024 * 1024)} MB")
                    digest.update(chunk)
                    out.write(chunk)
                if sync:
                    out.flush()
                    os.fsync(out.fileno())
            return Staged(tmp_name, digest.hexdigest(), size)
        except BaseException as e:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
            if isinstance(e, OSError):
                raise CaptureError(f"vault write failed: {e.strerror or e}", transient=True) from None
            raise

    def commit_staged(self, staged: list["Staged"]) -> None:
        """Move staged objects into the vault, durable on return, with the
        same guarantee as `put_stream` (a crash leaves the whole object under
        its final name or nothing there): their bytes are synced before any
        is renamed in, and the renames are synced before returning. Raises
        CaptureError (transient) when the disk fails; nothing staged is left."""
        if not staged:
            return
        try:
            _syncfs(self.tmp)  # every staged file's bytes, before any final name
            for st in staged:
                final = self.path(st.sha256)
                if final.exists():
                    os.unlink(st.tmp_name)
                    continue
                _make_dirs(final.parent)
                os.chmod(st.tmp_name, FILE_MODE)
                os.replace(st.tmp_name, final)
            _syncfs(self.objects)  # the renames
        except OSError as e:
            raise CaptureError(f"vault write failed: {e.strerror or e}", transient=True) from None
        finally:
            self.discard_staged(staged)

    def discard_staged(self, staged: list["Staged"]) -> None:
        """Drop staged objects not committed (their temp files)."""
        for st in staged:
            try:
                os.unlink(st.tmp_name)
            except FileNotFoundError:
                pass

    def put_bytes(self, data: bytes) -> Stored:
        """Store `data`; same guarantees as `put_stream`."""
        return self.put_stream(io.BytesIO(data))

    def _commit(self, tmp_name: str, sha256: str, size: int) -> Stored:
        final = self.path(sha256)
        if final.exists():
            return Stored(sha256, size, created=False)
        _make_dirs(final.parent)
        os.chmod(tmp_name, FILE_MODE)
        os.replace(tmp_name, final)
        fsync_dir(final.parent)
        return Stored(sha256, size, created=True)

    def read(self, sha256: str) -> bytes:
        """The object's bytes. Raises FileNotFoundError when absent."""
        return self.path(sha256).read_bytes()

    def write_sidecar(self, sha256: str, data: dict[str, Any]) -> None:
        """Replace the sidecar atomically (temp, fsync, rename)."""
        target = self.sidecar_path(sha256)
        _make_dirs(target.parent)
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp, prefix="sc-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(data, out, ensure_ascii=False, indent=1, sort_keys=True, default=str)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp_name, FILE_MODE)
            os.replace(tmp_name, target)
            fsync_dir(target.parent)
        finally:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)

    def write_sidecars(self, sidecars: dict[str, bytes]) -> None:
        """Replace each object's sidecar with its body ({sha256: JSON bytes}),
        with `write_sidecar`'s guarantee (a crash leaves the old sidecar or
        the new one, never part of one), durable on return: the bodies are
        synced before any is renamed in, the renames before returning, two
        filesystem syncs for all instead of two fsyncs each (the backup
        describes hundreds of objects a step). OSError propagates; no temp
        file is left."""
        staged: list[tuple[str, str]] = []
        try:
            for sha256, body in sidecars.items():
                fd, tmp_name = tempfile.mkstemp(dir=self.tmp, prefix="sc-")
                staged.append((sha256, tmp_name))
                with os.fdopen(fd, "wb") as out:
                    out.write(body)
                os.chmod(tmp_name, FILE_MODE)
            if not staged:
                return
            _syncfs(self.tmp)
            for sha256, tmp_name in staged:
                target = self.sidecar_path(sha256)
                _make_dirs(target.parent)
                os.replace(tmp_name, target)
            _syncfs(self.tmp)
        finally:
            for _, tmp_name in staged:
                if os.path.exists(tmp_name):
                    os.unlink(tmp_name)

    def read_sidecar(self, sha256: str) -> dict[str, Any] | None:
        """The sidecar's contents, or None when there is none."""
        try:
            return json.loads(self.sidecar_path(sha256).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None

    def iter_objects(self) -> Iterator[str]:
        """Every object hash in the vault (sidecars and temp files excluded)."""
        for p in self.objects.glob("*/*/*"):
            if len(p.name) == 64 and "." not in p.name:
                yield p.name

    def verify(self, sha256: str) -> bool:
        """True when the object exists and its content hashes to its name."""
        digest = hashlib.sha256()
        try:
            with open(self.path(sha256), "rb") as f:
                while chunk := f.read(CHUNK):
                    digest.update(chunk)
        except FileNotFoundError:
            return False
        return digest.hexdigest() == sha256


def _make_dirs(path: Path) -> None:
    # Not mkdir(parents=True): it creates the missing parents (objects/ab)
    # with the umask's default mode, ignoring `mode`, so they could end up
    # world-readable (0755).
    if path.is_dir():
        return
    _make_dirs(path.parent)
    path.mkdir(mode=DIR_MODE, exist_ok=True)
