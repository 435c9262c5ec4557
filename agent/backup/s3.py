"""A backup target in any S3-compatible bucket (AWS, MinIO, Ceph RGW, SeaweedFS).

Plain boto3 with `endpoint_url`, region and addressing style. Every put
carries a SHA-256 the server checks (ChecksumSHA256 on single puts,
per-part SHA-256 on multipart), and the hex SHA-256 is also stored as
`x-amz-meta-sha256` so `head` can report it for multipart objects, whose S3
checksum is a checksum of part checksums. A new small object goes up in one
request outside the client's per-call machinery (agent/backup/s3_put.py).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from typing import Iterator
from urllib.parse import urlsplit

import boto3
import botocore.exceptions as bx
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from agent.backup.base import (AccessDenied, BucketMissing, ChecksumMismatch, CorruptObject,
                               ObjectInfo, Source, check_dest, check_key, check_prefix,
                               check_sha256, source_path)
from agent.backup.s3_clock import clock_refusal
from agent.backup.s3_put import DirectPut
from agent.errors import AdapterError, ClockSkewed, ConfigError, NotFound, Permanent, Transient
from agent.redact import redact, remember

MULTIPART_THRESHOLD = 64 * 1024 * 1024
MULTIPART_CHUNKSIZE = 16 * 1024 * 1024
SHA256_META = "sha256"

_AUTH_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken",
               "ExpiredToken", "TokenRefreshRequired", "AllAccessDisabled", "403"}
_TRANSIENT_CODES = {"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable",
                    "Throttling", "ThrottlingException", "RequestLimitExceeded", "OperationAborted",
                    "ConditionalRequestConflict"}
_DIGEST_CODES = {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch",
                 "XAmzContentChecksumMismatch", "InvalidChecksum"}
_CONNECTION_ERRORS = (bx.ConnectionError, bx.HTTPClientError, bx.IncompleteReadError)
_HEADERS = {"ServerSideEncryption": "x-amz-server-side-encryption", "StorageClass": "x-amz-storage-class"}


class ChecksumRejected(Transient):
    """The server refused an upload whose bytes did not match the SHA-256 sent.

    Raised when the source itself matches (the transfer was damaged, so a
    retry can succeed); a corrupt source raises `ChecksumMismatch` instead.
    """


class S3Target:
    """Objects under `prefix` in one bucket; see BackupTarget for each guarantee.

    The boto3 client is created once and shared: boto3 clients are
    thread-safe, so callers may put from a thread pool. Transfers run in the
    calling thread (`use_threads=False`); concurrency is the caller's choice.
    """

    def __init__(self, bucket: str, prefix: str = "", *, name: str = "s3", url: str | None = None,
                 endpoint_url: str | None = None, region: str | None = None,
                 addressing_style: str | None = None, access_key_id: str | None = None,
                 secret_access_key: str | None = None, sse: str | None = None,
                 storage_class: str | None = None, multipart_threshold: int = MULTIPART_THRESHOLD,
                 multipart_chunksize: int = MULTIPART_CHUNKSIZE, max_attempts: int = 2,
                 connect_timeout: float = 5.0, read_timeout: float = 60.0):
        if not bucket:
            raise ConfigError(f"backup target {name!r}: url names no bucket")
        if (access_key_id is None) != (secret_access_key is None):
            raise ConfigError(f"backup target {name!r}: set both access_key_id and "
                              "secret_access_key, or neither (to use the AWS credential chain)")
        if addressing_style not in (None, "path", "virtual"):
            raise ConfigError(f"backup target {name!r}: addressing_style must be path or virtual")
        if sse not in (None, "AES256", "aws:kms"):
            raise ConfigError(f"backup target {name!r}: sse must be AES256 or aws:kms")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.name = name
        self.url = url or f"s3://{bucket}/{self.prefix}"
        self.endpoint_url = endpoint_url
        self._where = f"bucket {bucket!r} at {endpoint_url or 'AWS S3'}"
        self._extra: dict[str, str] = {}
        if sse:
            self._extra["ServerSideEncryption"] = sse
        if storage_class:
            self._extra["StorageClass"] = storage_class
        self._transfer = TransferConfig(multipart_threshold=multipart_threshold,
                                        multipart_chunksize=multipart_chunksize, use_threads=False)
        self._threshold = multipart_threshold
        # If-None-Match on PUT (AWS since 2024, MinIO, Ceph, SeaweedFS) saves
        # a head per new object; switched off if the store says 501.
        self.conditional_puts = True
        # Signature errors may quote the key id; see agent/redact.py.
        remember(self, access_key_id, secret_access_key)
        try:
            # A Session per target: sessions are not thread-safe, and the
            # default chain (env, profile, instance role) applies when no keys are set.
            session = boto3.session.Session(aws_access_key_id=access_key_id,
                                            aws_secret_access_key=secret_access_key,
                                            region_name=region or None)
            self._client = session.client("s3", endpoint_url=endpoint_url or None, config=Config(
                s3={"addressing_style": addressing_style or "auto"},
                retries={"max_attempts": max_attempts, "mode": "standard"},
                connect_timeout=connect_timeout, read_timeout=read_timeout,
                max_pool_connections=32))
        except (ValueError, bx.BotoCoreError) as e:
            raise ConfigError(redact(f"backup target {name!r}: cannot build an S3 client "
                                     f"({type(e).__name__}: {e})")) from e
        self._direct: DirectPut | None = None
        try:   # the one-request put of small objects (agent/backup/s3_put.py); the client's path without it
            self._direct = DirectPut(session, self._client, bucket, {
                _HEADERS[k]: v for k, v in self._extra.items()})
        except Exception:  # noqa: BLE001  e.g. no credentials yet: every put takes the client's path
            self._direct = None

    @classmethod
    def from_config(cls, cfg: dict) -> "S3Target":
        """An S3Target from a [[backup]] entry whose url is s3://bucket/prefix."""
        parts = urlsplit(cfg["url"])
        return cls(parts.netloc, parts.path, name=cfg.get("name") or cfg["url"], url=cfg["url"],
                   endpoint_url=cfg.get("endpoint_url"), region=cfg.get("region"),
                   addressing_style=cfg.get("addressing_style"),
                   access_key_id=cfg.get("access_key_id"),
                   secret_access_key=cfg.get("secret_access_key"),
                   sse=cfg.get("sse"), storage_class=cfg.get("storage_class"))

    @property
    def client(self):
        """The boto3 client built from this entry's keys (shared: fleet/s3.py reuses it)."""
        return self._client

    def __repr__(self) -> str:
        return f"S3Target({self.name!r}, {self.url!r}, endpoint={self.endpoint_url!r})"

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def put(self, key: str, path_or_bytes: Source, sha256: str) -> None:
        """See BackupTarget.put.

        Small objects go up in one request with If-None-Match: * (one round
        trip for a new object, the common case); a 412 means something is
        already there, and a head decides whether it is ours or must be
        replaced (`_holds_proven`). Files at or above the multipart threshold are checked with
        a head first and go up in parts, each with its own SHA-256.
        """
        check_sha256(sha256)
        full = self._key(key)
        path = source_path(path_or_bytes)
        if path is None:
            return self._put_small(key, full, bytes(path_or_bytes), sha256)
        try:
            if path.stat().st_size < self._threshold:
                return self._put_small(key, full, path.read_bytes(), sha256)
            if self._holds_proven(key, full, sha256, path.stat().st_size):
                return
            # S3 offers no full-object SHA-256 for multipart uploads, so the
            # whole file is checked here; the parts' checksums guard transit.
            with open(path, "rb") as f:
                local = hashlib.file_digest(f, "sha256").hexdigest()
        except OSError as e:
            raise Permanent(f"backup target {self.name!r}: cannot read source {path} "
                            f"for {key!r}: {e.strerror or e}") from e
        if local != sha256:
            raise ChecksumMismatch(f"backup target {self.name!r}: {path} hashes to {local}, "
                                   f"not {sha256}")
        try:
            self._client.upload_file(str(path), self.bucket, full, Config=self._transfer,
                                     ExtraArgs={"ChecksumAlgorithm": "SHA256",
                                                **self._put_args(sha256)})
        except (S3UploadFailedError, bx.BotoCoreError, bx.ClientError, OSError) as e:
            raise self._translate(e, "put", key) from e

    def _put_args(self, sha256: str) -> dict:
        return {"Metadata": {SHA256_META: sha256}, **self._extra}

    def _put_small(self, key: str, full: str, data: bytes, sha256: str) -> None:
        checksum = base64.b64encode(bytes.fromhex(sha256)).decode()
        args = dict(Bucket=self.bucket, Key=full, Body=data, ChecksumSHA256=checksum,
                    **self._put_args(sha256))
        try:
            status = None
            if self.conditional_puts and self._direct is not None:
                status = self._direct.put(full, data, sha256, if_none_match=True)
                if status == 200:
                    return
            if self.conditional_puts and status != 412:
                try:
                    self._client.put_object(IfNoneMatch="*", **args)
                    return
                except bx.ClientError as e:
                    if _not_implemented(e):
                        self.conditional_puts = False  # an older store: head, then put
                    elif not _precondition_failed(e):
                        raise
                    # Something is there (in a shared fleet bucket, usually
                    # another site's copy of the same original): the head
                    # below keeps it only when its recorded SHA-256 is ours.
            if self._holds_proven(key, full, sha256, len(data)):
                return
            self._client.put_object(**args)
        except (bx.BotoCoreError, bx.ClientError, OSError) as e:
            err = self._translate(e, "put", key)
            if isinstance(err, ChecksumRejected):
                actual = hashlib.sha256(data).hexdigest()
                if actual != sha256:
                    raise ChecksumMismatch(f"backup target {self.name!r}: server rejected {key!r}: "
                                           f"content hashes to {actual}, not {sha256}") from e
            raise err from e

    def _holds_proven(self, key: str, full: str, sha256: str, size: int) -> bool:
        """True when the object already at `key` is the original: its size
        ours and its SHA-256 ours by the server's own full-object checksum,
        or, when the server keeps none (SeaweedFS for an object put without
        one, any multipart object), by reading it back and hashing it. The
        x-amz-meta-sha256 label alone proves nothing: whoever wrote the
        object chose it (a hand-seeded copy, another site of a shared
        bucket), and a put taken as done over other bytes is an original
        counted as backed up that is not. Only an object already there pays
        the read, which is the rare path."""
        r = self._head(key)
        if r is None or r["ContentLength"] != size:
            return False
        server = _hex_checksum(r.get("ChecksumSHA256"))
        if server is not None or (r.get("Metadata") or {}).get(SHA256_META) != sha256:
            return server == sha256
        digest = hashlib.sha256()
        try:
            got = self._client.get_object(Bucket=self.bucket, Key=full, ChecksumMode="ENABLED")
            for chunk in got["Body"].iter_chunks(1 << 20):
                digest.update(chunk)
        except (bx.BotoCoreError, bx.ClientError, OSError) as e:
            err = self._translate(e, "get", key)
            if isinstance(err, (NotFound, CorruptObject)):
                return False   # gone meanwhile, or not what the store itself stored: put ours
            raise err from e
        return digest.hexdigest() == sha256

    def head(self, key: str) -> ObjectInfo | None:
        """See BackupTarget.head: size, and the SHA-256 of the bytes held: the
        server's full-object checksum when it has one, else the SHA-256
        recorded at upload (x-amz-meta-sha256)."""
        r = self._head(key)
        if r is None:
            return None
        # The server's checksum of the bytes it holds first; the metadata is
        # only a label the writer set (a hand-seeded or faulty copy can carry
        # ours over other bytes, and a put's 412 + head then took it as
        # backed up). A multipart object has no full-object one: the label.
        sha = _hex_checksum(r.get("ChecksumSHA256")) or (r.get("Metadata") or {}).get(SHA256_META)
        return ObjectInfo(key, r["ContentLength"], sha, r.get("LastModified"))

    def _head(self, key: str) -> dict | None:
        """The HEAD response for `key` (checksums asked for); None when there is no object."""
        try:
            return self._client.head_object(Bucket=self.bucket, Key=self._key(key), ChecksumMode="ENABLED")
        except (bx.BotoCoreError, bx.ClientError, OSError) as e:
            err = self._translate(e, "head", key)
            if isinstance(err, NotFound):
                return None
            raise err from e

    def get(self, key: str, dest: str | os.PathLike | None = None) -> bytes | None:
        """See BackupTarget.get. The server's stored checksum is checked on the way in."""
        full = self._key(key)
        dest = None if dest is None else check_dest(dest)
        tmp = None
        try:
            r = self._client.get_object(Bucket=self.bucket, Key=full, ChecksumMode="ENABLED")
            if dest is None:
                return r["Body"].read()
            tmp = dest.with_name(f".tmp-{dest.name}.{secrets.token_hex(4)}")
            with open(tmp, "xb") as out:
                os.fchmod(out.fileno(), 0o640)  # restored files are the vault's: never every user's
                for chunk in r["Body"].iter_chunks(1 << 20):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, dest)
            tmp = None
            return None
        except (bx.BotoCoreError, bx.ClientError, OSError) as e:
            raise self._translate(e, "get", key) from e
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """See BackupTarget.list (sha256 is None: S3 lists carry no SHA-256)."""
        check_prefix(prefix)
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for obj in page.get("Contents", []):
                    yield ObjectInfo(obj["Key"][len(self.prefix):], obj["Size"], None,
                                     obj.get("LastModified"))
        except (bx.BotoCoreError, bx.ClientError, OSError) as e:
            raise self._translate(e, "list", prefix) from e

    def delete(self, key: str) -> None:
        """See BackupTarget.delete."""
        full = self._key(key)
        try:
            self._client.delete_object(Bucket=self.bucket, Key=full)
        except (bx.BotoCoreError, bx.ClientError, OSError) as e:
            err = self._translate(e, "delete", key)
            if not isinstance(err, NotFound) or isinstance(err, BucketMissing):
                raise err from e

    def _translate(self, e: BaseException, action: str, key: str) -> AdapterError:
        """One typed, one-line error for a boto3/botocore failure (never a secret)."""
        if isinstance(e, S3UploadFailedError) and e.__cause__ is not None:
            e = e.__cause__
        head = f"backup target {self.name!r}: {action} {key!r}"
        if isinstance(e, bx.ClientError):
            err = e.response.get("Error", {})
            code = str(err.get("Code", ""))
            meta = e.response.get("ResponseMetadata", {})
            status = meta.get("HTTPStatusCode", 0)
            if (refused := clock_refusal(e.response)) is not None:
                return ClockSkewed(f"backup target {self.name!r}: {self._where} refused the request: "
                                   f"{refused[0]}; fix this host's time (NTP), the credentials are not "
                                   "the problem", server_time=refused[1])
            if code in _AUTH_CODES or status == 403:
                return AccessDenied(f"backup target {self.name!r}: access denied to {self._where} "
                                    f"({code or status}); check access_key_id and secret_access_key")
            if code == "NoSuchBucket":
                return BucketMissing(f"backup target {self.name!r}: {self._where} does not exist")
            if code in ("NoSuchKey", "404", "NotFound") or status == 404:
                return NotFound(f"{head}: no such object in {self._where}")
            if code in _DIGEST_CODES:
                return ChecksumRejected(f"{head}: server rejected the SHA-256 checksum ({code}) "
                                        f"in {self._where}")
            if code in _TRANSIENT_CODES or status == 429 or status >= 500:
                return Transient(f"{head}: {code or status} from {self._where}",
                                 retry_after=_retry_after(meta.get("HTTPHeaders", {})))
            return Permanent(f"{head}: {code or status} from {self._where}: {err.get('Message', '')}")
        if isinstance(e, (bx.NoCredentialsError, bx.PartialCredentialsError)):
            return AccessDenied(f"backup target {self.name!r}: no credentials for {self._where} "
                                "(set access_key_id/secret_access_key or the AWS chain)")
        if isinstance(e, bx.FlexibleChecksumError):
            return CorruptObject(f"{head}: stored checksum does not match the bytes "
                                 f"returned by {self._where}")
        if isinstance(e, bx.ParamValidationError):
            return Permanent(f"{head}: invalid request: {e}")
        if isinstance(e, _CONNECTION_ERRORS):
            return Transient(f"{head}: cannot reach {self._where} ({type(e).__name__})")
        if isinstance(e, OSError):
            return Transient(f"{head}: I/O error with {self._where}: {e.strerror or e}")
        return Transient(f"{head}: {type(e).__name__} with {self._where}")


def _not_implemented(e: bx.ClientError) -> bool:
    """True when the store does not support a conditional PUT."""
    return (e.response.get("Error", {}).get("Code") == "NotImplemented"
            or e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 501)


def _precondition_failed(e: bx.ClientError) -> bool:
    """True for the 412 an If-None-Match: * put gets when the key exists."""
    return (e.response.get("Error", {}).get("Code") == "PreconditionFailed"
            or e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 412)


def _hex_checksum(b64: str | None) -> str | None:
    """Hex of a full-object ChecksumSHA256; None for composite ("...-N") or absent ones."""
    if not b64 or "-" in b64:
        return None
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 32 else None


def _retry_after(headers: dict) -> float | None:
    value = headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP-date: the loop's own backoff is good enough
