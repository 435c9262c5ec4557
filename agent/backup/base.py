"""The one small interface every backup target implements, and its key layout.

A target is a dumb, durable key -> bytes store (an S3 bucket, a mounted
disk). It knows nothing about documents, ledgers or retries: the backup loop
decides what to put and when, and the ledger remembers what is done. Every
vendor error leaves a target as `Transient`, `Permanent` or `NotFound` (or a
subclass below), so the loop retries or gives up in one place.

Key layout (scripts and restores depend on it; never change it):

    objects/ab/cd/<sha256>          a vault original, keyed by its SHA-256
    objects/ab/cd/<sha256>.json     its JSON sidecar (written before sidecar batches; still read)
    sidecars/<time>-<random>.json   one batch of sidecars per mirror step (agent/backup/sidecars.py)
    ledger/<snapshot name>          gzip-compressed SQLite ledger snapshots
    manifests/YYYY-MM-DD.json       what was added that day
    .fapiao-agent-target            the target's identity marker (agent/backup/identity.py)

With [fleet] site set, all but the originals live under `sites/<site>/`
(agent/backup/sites.py maps the keys; code here and above never sees it).
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol, Union, runtime_checkable
from urllib.parse import urlsplit

from agent.errors import ConfigError, Permanent, Transient

# Bytes are uploaded as they are; a str or PathLike is a local file to read.
Source = Union[bytes, bytearray, memoryview, str, os.PathLike]

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")

OBJECTS_PREFIX = "objects/"
LEDGER_PREFIX = "ledger/"
MANIFESTS_PREFIX = "manifests/"


class AccessDenied(Permanent):
    """The target refuses to let us write or read: our credentials (403,
    unknown key, bad signature), or a file target's permissions or read-only
    mount. Permanent, so the target is paused: a person must fix it."""


class BucketMissing(Permanent):
    """The bucket (or the target's root folder) does not exist."""


class FolderMissing(Transient):
    """A file target's root folder is absent: usually a disk or NAS not mounted.

    Transient, so the backlog drains by itself once the disk is back;
    `config_paths.check_paths` reports a folder that was never there at start-up.
    """


class TargetUnrecognised(Permanent):
    """The target does not carry the identity marker this agent wrote on it
    (agent/backup/identity.py): an empty mount point, another disk or bucket
    under the same name. Nothing is written to it until it is the right one
    again, or an operator accepts it (`backup accept`).

    Permanent, so the target is paused: retrying cannot mount the disk."""


class NotKept(Permanent):
    """An object put again after a verification found it gone or changed
    reads back gone or changed again: the store answers puts but does not
    keep them (agent/backup/mirror.py), so it is not counted as held."""


class ChecksumMismatch(Permanent):
    """The bytes given to `put` do not hash to the SHA-256 the caller claimed.

    The source (usually a vault file) is corrupt, so retrying cannot help.
    """


class CorruptObject(Permanent):
    """The store returned bytes that fail its own recorded checksum."""


class InvalidKey(Permanent):
    """A key that is empty, absolute, or climbs out of the target ('..')."""


@dataclass(frozen=True)
class ObjectInfo:
    """What a target knows about one stored object.

    `key` is relative to the target (its URL prefix removed). `sha256` is
    lowercase hex when the target knows it (always from `head`, for objects
    this code put), None when it does not (e.g. `list` on S3).
    """

    key: str
    size: int
    sha256: str | None = None
    modified: dt.datetime | None = None


@runtime_checkable
class BackupTarget(Protocol):
    """A place backups go. Implementations: file.FileTarget, s3.S3Target.

    Every method raises only `Transient` (retry later: timeouts, connection
    refused, 5xx, 429, a NAS that is not mounted), `Permanent` (retrying the
    same call cannot succeed: wrong credentials, missing bucket, corrupt
    source, invalid key) or `NotFound`, or their subclasses in this module.
    Messages are one line that names the target, and for S3 the bucket and
    endpoint; they never contain a secret.

    Methods are safe to call from several threads at once on one instance;
    the callers own any concurrency, targets spawn no threads of their own
    beyond what the vendor library does inside one call.
    """

    name: str
    url: str

    def put(self, key: str, path_or_bytes: Source, sha256: str) -> None:
        """Store `path_or_bytes` under `key`, all or nothing.

        `sha256` is the lowercase hex SHA-256 of the content. It travels with
        the upload and is checked by the receiving side (the S3 server via
        ChecksumSHA256, the file target by hashing before the rename), so a
        transfer that arrives corrupt is never stored: the call raises
        `ChecksumMismatch` when the source itself does not match, `Transient`
        when only the transfer was damaged.

        Idempotent: when the object at `key` already has this `sha256` (as
        `head` reports it), it is left as it is, so agents that share a
        bucket deduplicate. An object at `key` with another or unknown
        checksum is replaced. After a successful return, `head(key)` reports `sha256`
        and a reader sees the complete object (never a partial one).
        """
        ...

    def head(self, key: str) -> ObjectInfo | None:
        """The object's size and SHA-256, or None when there is no object at `key`.

        The SHA-256 is the server's checksum of the bytes (S3; the one recorded at
        upload for a multipart object) or computed now by
        reading the file (file target); `verify.verify_object` re-reads the
        bytes when the stored content itself must be checked.
        """
        ...

    def get(self, key: str, dest: str | os.PathLike | None = None) -> bytes | None:
        """The object's bytes; or, when `dest` is given, write them to `dest`
        (atomically: temp file, fsync, rename) and return None.

        Raises `NotFound` when there is no object at `key`, and
        `CorruptObject` when the store's own checksum does not match the bytes
        it returned.
        """
        ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with `prefix`, each once, in no promised order.

        (AWS lists in key order, but SeaweedFS lists folder by folder, so
        callers that need an order sort.)

        Keys are relative to the target. Objects added or removed while the
        iteration runs may or may not appear. In-flight temporary uploads
        never appear. A missing bucket raises `BucketMissing`.
        """
        ...

    def delete(self, key: str) -> None:
        """Remove the object at `key`; deleting a missing object is not an error.

        Used only for ledger-snapshot retention and to replace an object that
        verification found corrupt: backed-up originals are never deleted.
        """
        ...


def check_sha256(sha256: str) -> str:
    """`sha256` itself when it is 64 lowercase hex digits, else `Permanent`."""
    if not isinstance(sha256, str) or not _SHA256_RE.match(sha256):
        raise Permanent(f"not a lowercase hex SHA-256: {sha256!r}")
    return sha256


def check_key(key: str) -> str:
    """`key` itself when it is a safe relative key, else `InvalidKey`.

    Safe: non-empty, '/'-separated, no leading '/', no empty, '.' or '..'
    segment, no backslash or NUL, at most 1024 bytes.
    """
    if not isinstance(key, str) or not key or len(key.encode("utf-8", "replace")) > 1024:
        raise InvalidKey(f"invalid backup key {key!r}")
    if "\\" in key or "\x00" in key or key.startswith("/"):
        raise InvalidKey(f"invalid backup key {key!r}")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise InvalidKey(f"invalid backup key {key!r}")
    return key


def source_path(path_or_bytes: Source) -> Path | None:
    """None for a bytes-like source, the Path of a file source; `Permanent`
    for any other type (a caller's bug, reported as our own error)."""
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        return None
    if isinstance(path_or_bytes, (str, os.PathLike)) and str(path_or_bytes):
        return Path(path_or_bytes)
    raise Permanent(f"backup source must be bytes or a file path, not {type(path_or_bytes).__name__}")


def check_dest(dest: str | os.PathLike) -> Path:
    """`dest` as a Path when its folder exists, else `Permanent` (a caller's mistake,
    which retrying cannot fix)."""
    if not isinstance(dest, (str, os.PathLike)) or not str(dest):
        raise Permanent(f"download destination must be a file path, not {dest!r}")
    path = Path(dest)
    if not path.parent.is_dir():
        raise Permanent(f"download destination folder {path.parent} does not exist")
    return path


def check_prefix(prefix: str) -> str:
    """`prefix` itself when it is '' or a safe key prefix, else `InvalidKey`."""
    if not isinstance(prefix, str):
        raise InvalidKey(f"invalid backup key prefix {prefix!r}")
    if prefix:
        check_key(prefix.rstrip("/") or "/")
    return prefix


def object_key(sha256: str) -> str:
    """`objects/ab/cd/<sha256>`: where a vault original lives on every target."""
    check_sha256(sha256)
    return f"{OBJECTS_PREFIX}{sha256[:2]}/{sha256[2:4]}/{sha256}"


def sidecar_key(sha256: str) -> str:
    """`objects/ab/cd/<sha256>.json`: where an original's JSON sidecar lives."""
    return object_key(sha256) + ".json"


def snapshot_key(name: str) -> str:
    """`ledger/<name>` for a snapshot name from `snapshot.snapshot_name`."""
    return check_key(LEDGER_PREFIX + name)


def manifest_key(day: dt.date) -> str:
    """`manifests/YYYY-MM-DD.json`: the list of what was added on `day`."""
    if isinstance(day, dt.datetime):
        day = day.date()
    return f"{MANIFESTS_PREFIX}{day.isoformat()}.json"


def sha256_of_object_key(key: str) -> str | None:
    """The SHA-256 an `objects/...` key (original or sidecar) is named after, else None.

    Restores use it to rebuild a vault from `list("objects/")`.
    """
    m = re.fullmatch(r"objects/([0-9a-f]{2})/([0-9a-f]{2})/([0-9a-f]{64})(\.json)?", key)
    if not m or m.group(3)[:2] != m.group(1) or m.group(3)[2:4] != m.group(2):
        return None
    return m.group(3)


# Keys of a [[backup]] entry; agent/config.py fills absent ones with None and
# adds base_dir (the folder relative file:// URLs start from).
S3_ONLY_KEYS = ("endpoint_url", "region", "addressing_style", "access_key_id",
                "secret_access_key", "sse", "storage_class")
CONFIG_KEYS = frozenset({"name", "url", "base_dir", *S3_ONLY_KEYS})


def open_target(cfg: dict) -> BackupTarget:
    """The target a [[backup]] config entry describes, chosen by its URL.

    `s3://bucket/prefix` gives an S3Target, `file:///abs/path` or
    `file://relative/path` (relative to cfg["base_dir"]) a FileTarget.
    Opening does no I/O, so a target that is down can still be opened; the
    first call reports it. Raises `ConfigError` naming the key on a bad entry.
    """
    if not isinstance(cfg, dict):
        raise ConfigError(f"backup target config must be a table, not {type(cfg).__name__}")
    unknown = sorted(set(cfg) - CONFIG_KEYS)
    if unknown:
        raise ConfigError(f"backup target {cfg.get('name')!r}: unknown key(s) {', '.join(unknown)}; "
                          f"known: {', '.join(sorted(CONFIG_KEYS))}")
    url = cfg.get("url")
    if not isinstance(url, str) or not url:
        raise ConfigError(f"backup target {cfg.get('name')!r}: url is required")
    name = cfg.get("name") or url
    scheme = urlsplit(url).scheme
    if scheme == "s3":
        from agent.backup.s3 import S3Target

        return S3Target.from_config({**cfg, "name": name})
    if scheme == "file":
        extra = [k for k in S3_ONLY_KEYS if cfg.get(k) is not None]
        if extra:
            raise ConfigError(f"backup target {name!r}: {', '.join(extra)} apply only to s3:// targets")
        from agent.backup.file import FileTarget

        return FileTarget(file_url_path(url, cfg.get("base_dir")), name=name, url=url)
    raise ConfigError(f"backup target {name!r}: url {url!r} must start with s3:// or file://")


def file_url_path(url: str, base_dir: str | os.PathLike | None) -> Path:
    """The folder of a file:// URL: absolute for file:///x, else under `base_dir`."""
    rest = url[len("file://"):]
    if not rest:
        raise ConfigError(f"backup url {url!r} names no folder")
    if rest.startswith("/"):
        return Path(rest)
    if base_dir is None:
        raise ConfigError(f"backup url {url!r} is relative but no base_dir was given")
    return Path(base_dir) / rest
