"""The fleet store: one small key -> bytes interface with conditional writes.

Chosen by URL scheme: `s3://bucket/prefix` (agent/fleet/s3.py, the same keys
as an S3 backup target) or `file:///path` (here: one host, tests). Every
vendor error leaves a store as `Transient` (unreachable: worth waiting for),
`Permanent` (credentials, bucket) or `Conflict` (a conditional write lost).

ETags are opaque strings: compare them only with each other.

Every read is bounded: `read` never takes more than `max_bytes` + 1 bytes of
an object into memory, and answers TooLarge for a bigger one (anyone with
write access to the bucket can put a 1 GB object where a claim should be).
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import hashlib
import os
import re
import secrets
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

from agent.errors import ConfigError, Conflict, Permanent, Transient

# The default bound of a read: far above any object the fleet writes (a claim
# is under 1 KiB, a status.json some KiB).
MAX_OBJECT_BYTES = 1 << 20


class TooLarge(Permanent):
    """An object bigger than the reader's bound: not read (`size` is its size
    in bytes when the store said it, else None)."""

    def __init__(self, message: str, size: int | None = None):
        super().__init__(message)
        self.size = size


def too_large(url: str, key: str, size: int | None, max_bytes: int) -> TooLarge:
    """The TooLarge for `key` (one wording for every store)."""
    what = f"{size} bytes" if size is not None else "larger"
    return TooLarge(f"fleet store {url}: {key!r} is {what}, over the {max_bytes}-byte limit of "
                    "what the fleet reads (not a claim or status any site writes)", size)


_KEY_RE = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")


def check_key(key: str) -> str:
    """`key` when it is a relative path of safe parts (no '..', no empty part); else Permanent."""
    if not isinstance(key, str) or not _KEY_RE.fullmatch(key) or any(p in (".", "..") for p in key.split("/")):
        raise Permanent(f"fleet store: invalid key {key!r}")
    return key


@runtime_checkable
class FleetStore(Protocol):
    """What claims and status need from the shared store."""

    url: str

    def create(self, key: str, data: bytes) -> str:
        """Write `data` under `key` only if nothing is there; returns the new ETag.
        Raises Conflict when the key exists (an If-None-Match: * put)."""

    def read(self, key: str, *, max_bytes: int = MAX_OBJECT_BYTES) -> tuple[bytes, str] | None:
        """The bytes under `key` and their ETag, or None when absent. Takes
        at most `max_bytes` + 1 bytes of the object into memory; raises
        TooLarge when it is bigger than `max_bytes`."""

    def replace(self, key: str, data: bytes, etag: str) -> str:
        """Overwrite `key` only while its ETag is still `etag`; returns the new ETag.
        Raises Conflict when it changed or is absent (an If-Match put). See
        docs/fleet.md: SeaweedFS checks If-Match but not atomically, so claims
        never rely on this call."""

    def put(self, key: str, data: bytes) -> str:
        """Write `key` whatever is there (last writer wins); returns the new ETag."""

    def list(self, prefix: str) -> list[str]:
        """Every key under `prefix` (relative to the store), sorted."""

    def list_tagged(self, prefix: str) -> dict[str, str]:
        """Every key under `prefix` with its ETag, by one listing: an object
        written again (even with other bytes under the same name) shows
        another ETag, one restored from a copy of the same bytes usually the
        same (compare them only with ETags this call gave)."""

    def server_time(self) -> dt.datetime | None:
        """The store's own clock at its last answer (UTC), or None when it
        gives none: the reference every site's leases are judged against."""


def _etag(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


class FileStore:
    """A folder as a fleet store for one host: create is O_EXCL, replace holds
    an flock on `.lock` and renames a complete temp file into place, so
    readers never see half an object and two writers never both win."""

    def __init__(self, root: str | os.PathLike, url: str | None = None):
        self.root = Path(root)
        self.url = url or f"file://{self.root}"

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _io(self, action: str, key: str, e: OSError) -> Exception:
        if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return Permanent(f"fleet store {self.url}: {action} {key!r}: {e.strerror}")
        return Transient(f"fleet store {self.url}: {action} {key!r}: {e.strerror or e}")

    def _root_ready(self, action: str, key: str) -> None:
        # An absent root is a NAS not mounted: unreachable, never created here.
        if not self.root.is_dir():
            raise Transient(f"fleet store {self.url}: {action} {key!r}: folder {self.root} is missing")

    def _write_tmp(self, path: Path, data: bytes) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{path.name}.{secrets.token_hex(4)}")
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return tmp

    def create(self, key: str, data: bytes) -> str:
        """See FleetStore.create: a hard link of a complete temp file (link
        fails with EEXIST when the name is taken: O_EXCL semantics, never a
        half-written object visible)."""
        path = self._path(key)
        self._root_ready("create", key)
        tmp = None
        try:
            tmp = self._write_tmp(path, data)
            os.link(tmp, path)
        except FileExistsError as e:
            raise Conflict(f"fleet store {self.url}: {key!r} exists") from e
        except OSError as e:
            raise self._io("create", key, e) from e
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
        return _etag(data)

    def read(self, key: str, *, max_bytes: int = MAX_OBJECT_BYTES) -> tuple[bytes, str] | None:
        """See FleetStore.read: the size is checked on the open file, then
        at most `max_bytes` + 1 bytes are read (a file growing meanwhile too)."""
        path = self._path(key)
        self._root_ready("read", key)
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size > max_bytes:
                    raise too_large(self.url, key, size, max_bytes)
                data = f.read(max_bytes + 1)
        except FileNotFoundError:
            return None
        except IsADirectoryError:
            raise Permanent(f"fleet store {self.url}: {key!r} is a folder, not an object") from None
        except OSError as e:
            raise self._io("read", key, e) from e
        if len(data) > max_bytes:
            raise too_large(self.url, key, None, max_bytes)
        return data, _etag(data)

    def replace(self, key: str, data: bytes, etag: str) -> str:
        """See FleetStore.replace: compare and rename under one flock."""
        path = self._path(key)
        self._root_ready("replace", key)
        try:
            with open(self.root / ".lock", "a+b") as lock:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
                try:
                    current = path.read_bytes()
                except FileNotFoundError:
                    raise Conflict(f"fleet store {self.url}: {key!r} is absent") from None
                if _etag(current) != etag:
                    raise Conflict(f"fleet store {self.url}: {key!r} changed since it was read")
                os.replace(self._write_tmp(path, data), path)
        except OSError as e:
            raise self._io("replace", key, e) from e
        return _etag(data)

    def put(self, key: str, data: bytes) -> str:
        """See FleetStore.put."""
        path = self._path(key)
        self._root_ready("put", key)
        try:
            os.replace(self._write_tmp(path, data), path)
        except OSError as e:
            raise self._io("put", key, e) from e
        return _etag(data)

    def server_time(self) -> dt.datetime | None:
        """None: a folder on this host shares this host's clock."""
        return None

    def list(self, prefix: str) -> list[str]:
        """See FleetStore.list (temp files and the lock are not keys)."""
        self._root_ready("list", prefix)
        out = []
        try:
            for dirpath, _dirs, files in os.walk(self.root):
                for name in files:
                    if name.startswith("."):
                        continue
                    key = os.path.relpath(os.path.join(dirpath, name), self.root)
                    if key.startswith(prefix):
                        out.append(key)
        except OSError as e:
            raise self._io("list", prefix, e) from e
        return sorted(out)

    def list_tagged(self, prefix: str) -> dict[str, str]:
        """See FleetStore.list_tagged: each file's bytes hashed (the fleet
        lists this way only the epoch's few small objects); one bigger than
        MAX_OBJECT_BYTES is tagged by its size, unread (its reader says it
        is too large)."""
        out = {}
        for key in self.list(prefix):
            try:
                got = self.read(key)
            except TooLarge as e:
                got = (b"", f"too-large-{e.size}")
            if got is not None:
                out[key] = got[1]
        return out


def open_store(cfg: dict) -> FleetStore:
    """The store a [fleet] section describes, chosen by its url (no I/O).
    Raises ConfigError naming the key on a bad entry."""
    url = cfg.get("url") or ""
    scheme = urlsplit(url).scheme
    if scheme == "s3":
        from agent.fleet.s3 import S3Store

        return S3Store.from_config(cfg)
    if scheme == "file":
        rest = url[len("file://"):]
        if not rest.startswith("/"):
            raise ConfigError(f"fleet.url: {url!r} must be an absolute file:///path")
        return FileStore(rest, url=url)
    raise ConfigError(f"fleet.url: must start with s3:// or file://, not {scheme + '://' if scheme else 'nothing'}")
