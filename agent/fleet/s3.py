"""The fleet store in an S3-compatible bucket (AWS, MinIO, Ceph RGW, SeaweedFS).

The client is the S3 backup target's (agent/backup/s3.py: the same keys,
validation, secret redaction); this module adds conditional writes:
If-None-Match: * for `create`, If-Match for `replace`.
"""

from __future__ import annotations

import datetime as dt
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import botocore.exceptions as bx

from agent.backup.s3 import S3Target
from agent.backup.s3_clock import clock_refusal
from agent.errors import AdapterError, ClockSkewed, Conflict, Permanent, Transient
from agent.fleet.store import MAX_OBJECT_BYTES, check_key, too_large

_AUTH = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"}


class S3Store:
    """Keys under `prefix` of one bucket; see FleetStore for each guarantee."""

    def __init__(self, target: S3Target):
        self._target = target
        self._client = target.client
        self.bucket, self.prefix, self.url = target.bucket, target.prefix, target.url
        self._where = f"bucket {self.bucket!r} at {target.endpoint_url or 'AWS S3'}"
        self._server_time: dt.datetime | None = None

    @classmethod
    def from_config(cls, cfg: dict) -> "S3Store":
        """An S3Store from a [fleet] section whose url is s3://bucket/prefix."""
        parts = urlsplit(cfg["url"])
        # Short timeouts: a claim waits on this store; unreachable must be
        # known in seconds so `hold` or `deliver` can decide.
        return cls(S3Target(parts.netloc, parts.path, name="fleet", url=cfg["url"],
                            endpoint_url=cfg.get("endpoint_url"), region=cfg.get("region"),
                            addressing_style=cfg.get("addressing_style"),
                            access_key_id=cfg.get("access_key_id"),
                            secret_access_key=cfg.get("secret_access_key"),
                            max_attempts=1, connect_timeout=3.0, read_timeout=10.0))

    def server_time(self) -> dt.datetime | None:
        """See FleetStore.server_time: the Date header of the store's last answer."""
        return self._server_time

    def _saw(self, response: dict) -> dict:
        # The store's clock, from the Date header of any answer (errors too).
        date = ((response or {}).get("ResponseMetadata") or {}).get("HTTPHeaders", {}).get("date")
        try:
            self._server_time = parsedate_to_datetime(date).astimezone(dt.timezone.utc) if date else None
        except (TypeError, ValueError):
            self._server_time = None
        return response

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def create(self, key: str, data: bytes) -> str:
        """See FleetStore.create (PutObject with If-None-Match: *)."""
        try:
            return self._saw(self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data,
                                                     IfNoneMatch="*"))["ETag"]
        except (bx.BotoCoreError, bx.ClientError, OSError) as e:
            raise self._translate(e, "create", key) from e

    def read(self, key: str, *, max_bytes: int = MAX_OBJECT_BYTES) -> tuple[bytes, str] | None:
        """See FleetStore.read: a ranged GET of the first `max_bytes` + 1
        bytes; the object's size (Content-Range) decides TooLarge before the
        body is read, and the body is read no further than the range even
        from a store that ignores Range."""
        try:
            r = self._saw(self._client.get_object(Bucket=self.bucket, Key=self._key(key),
                                                  Range=f"bytes=0-{max_bytes}"))
            body = r["Body"]
            try:
                total = _total_size(r)
                if total is not None and total > max_bytes:
                    raise too_large(self.url, key, total, max_bytes)
                data = body.read(max_bytes + 1)
            finally:
                body.close()
            if len(data) > max_bytes:
                raise too_large(self.url, key, None, max_bytes)
            return data, r["ETag"]
        except (bx.BotoCoreError, bx.ClientError, OSError) as e:
            if isinstance(e, bx.ClientError) and (
                    e.response.get("Error", {}).get("Code") == "InvalidRange"
                    or e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 416):
                return b"", ""      # a zero-byte object: no byte 0 to range over
            err = self._translate(e, "read", key)
            if isinstance(err, _Absent):
                return None
            raise err from e

    def replace(self, key: str, data: bytes, etag: str) -> str:
        """See FleetStore.replace (PutObject with If-Match)."""
        try:
            return self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data,
                                           IfMatch=etag)["ETag"]
        except (bx.BotoCoreError, bx.ClientError, OSError) as e:
            err = self._translate(e, "replace", key)
            raise (Conflict(f"fleet store: {key!r} is absent") if isinstance(err, _Absent) else err) from e

    def put(self, key: str, data: bytes) -> str:
        """See FleetStore.put."""
        try:
            return self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)["ETag"]
        except (bx.BotoCoreError, bx.ClientError, OSError) as e:
            raise self._translate(e, "put", key) from e

    def list(self, prefix: str) -> list[str]:
        """See FleetStore.list."""
        return sorted(self._listing(prefix))

    def list_tagged(self, prefix: str) -> dict[str, str]:
        """See FleetStore.list_tagged: the ETags ListObjectsV2 gives (the
        same string as a GET's and a PUT's on AWS, MinIO, Ceph and SeaweedFS;
        compared only with one another here all the same)."""
        return self._listing(prefix)

    def _listing(self, prefix: str) -> dict[str, str]:
        out = {}
        try:
            for page in self._client.get_paginator("list_objects_v2").paginate(
                    Bucket=self.bucket, Prefix=self.prefix + prefix):
                self._saw(page)
                out.update((o["Key"][len(self.prefix):], o.get("ETag") or "") for o in page.get("Contents", []))
        except (bx.BotoCoreError, bx.ClientError, OSError) as e:
            raise self._translate(e, "list", prefix) from e
        return out

    def _translate(self, e: BaseException, action: str, key: str) -> AdapterError:
        head = f"fleet store: {action} {key!r}"
        if isinstance(e, bx.ClientError):
            self._saw(e.response)
            code = str(e.response.get("Error", {}).get("Code", ""))
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412):
                return Conflict(f"{head}: written by someone else first ({code or status})")
            if code in ("NoSuchKey", "404", "NotFound") or (status == 404 and code != "NoSuchBucket"):
                return _Absent(head)
            if (refused := clock_refusal(e.response)) is not None:
                # Before the 403 below: a clock the store refuses is no credentials problem.
                return ClockSkewed(f"{head}: {self._where} refused this site's clock ({refused[0]})",
                                   server_time=refused[1])
            if code in _AUTH or status == 403:
                return Permanent(f"{head}: access denied to {self._where} ({code or status}); "
                                 "check access_key_id and secret_access_key")
            if code == "NoSuchBucket":
                return Permanent(f"{head}: {self._where} does not exist")
            if code == "NotImplemented" or status == 501:
                return Permanent(f"{head}: {self._where} does not support conditional writes "
                                 "(see docs/fleet.md for the stores that do)")
            if status == 429 or status >= 500:
                return Transient(f"{head}: {code or status} from {self._where}")
            return Permanent(f"{head}: {code or status} from {self._where}")
        if isinstance(e, (bx.NoCredentialsError, bx.PartialCredentialsError)):
            return Permanent(f"{head}: no credentials for {self._where}")
        if isinstance(e, (bx.ConnectionError, bx.HTTPClientError, bx.IncompleteReadError, OSError)):
            return Transient(f"{head}: cannot reach {self._where} ({type(e).__name__})")
        return Transient(f"{head}: {type(e).__name__} with {self._where}")


def _total_size(response: dict) -> int | None:
    # "bytes 0-1023/1048576": the object's whole size; a store that ignored
    # the Range answers the whole object with its ContentLength.
    rng = response.get("ContentRange") or ""
    if "/" in rng and rng.rsplit("/", 1)[1].isdigit():
        return int(rng.rsplit("/", 1)[1])
    length = response.get("ContentLength")
    return int(length) if isinstance(length, int) and not rng else None


class _Absent(AdapterError):
    """Internal: a 404, which `read` answers as None."""
