"""s3://BUCKET/PREFIX: an inbox bucket on any S3-compatible store.

Layout: `<prefix>/<invoice key>/<original filename>` and, written after it,
`<prefix>/<invoice key>/invoice.json` (the sidecar). The sidecar's presence
means a complete delivery; lookup is one HEAD on it. Both puts carry
IfNoneMatch='*', so a second put of the same key is a no-op the store itself
enforces (412 PreconditionFailed = already there = success), and an
x-amz-checksum-sha256 taken from the ledger's hash, so the store refuses
bytes that are not the vault's original.

botocore's own retries are off (one attempt): the ledger decides retries.
"""

from __future__ import annotations

import base64
import hashlib
import pathlib
from urllib.parse import quote, unquote

import boto3
import botocore.exceptions as bx
from botocore.config import Config

from agent.deliver.base import (
    Misconfigured, Parcel, Receipt, config_number, config_str, destination_name, extension_of,
    read_parcel_file, safe_name_part, sidecar_bytes, where,
)
from agent.errors import ConfigError, Permanent, Transient
from agent.redact import remember

SIDECAR = "invoice.json"
_MISCONFIGURED = {"NoSuchBucket", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied",
                  "AllAccessDisabled", "InvalidBucketName", "PermanentRedirect", "AuthorizationHeaderMalformed",
                  "RequestTimeTooSkewed", "InvalidToken", "ExpiredToken", "403", "301"}
_TRANSIENT = {"SlowDown", "Throttling", "ThrottlingException", "RequestThrottled", "RequestTimeout",
              "InternalError", "ServiceUnavailable", "ConditionalRequestConflict", "OperationAborted",
              "RequestLimitExceeded", "BandwidthLimitExceeded"}
_ALREADY_THERE = {"PreconditionFailed", "412"}


class S3Destination:
    """An S3 inbox. The boto3 client is thread-safe and pooled to `concurrency`."""

    def __init__(self, name: str, bucket: str, prefix: str, *, endpoint_url: str | None = None,
                 region: str | None = None, access_key_id: str | None = None,
                 secret_access_key: str | None = None, addressing_style: str = "auto",
                 timeout_s: float = 30.0, concurrency: int = 4):
        self.name = name
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        remember(self, access_key_id, secret_access_key)  # signature errors may quote them: agent/redact.py
        session = boto3.session.Session()  # not the global default: clients are built per thread-safe session
        self._client = session.client(
            "s3", endpoint_url=endpoint_url, region_name=region or "us-east-1",
            aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key,
            config=Config(s3={"addressing_style": addressing_style},
                          connect_timeout=min(timeout_s, 10.0), read_timeout=timeout_s,
                          retries={"total_max_attempts": 1}, max_pool_connections=max(1, concurrency)))

    @classmethod
    def from_config(cls, cfg: dict) -> "S3Destination":
        """Keys: url (s3://bucket/prefix), name, endpoint_url, region, access_key_id,
        secret_access_key, addressing_style (auto|path|virtual), timeout_s, concurrency.
        Without keys, boto3's usual credential chain applies."""
        rest = cfg["url"].split("://", 1)[1]
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise ConfigError(f"{where(cfg)}url: s3:// needs a bucket, e.g. s3://finance-inbox/invoices")
        style = config_str(cfg, "addressing_style", "auto")
        if style not in ("auto", "path", "virtual"):
            raise ConfigError(f"{where(cfg)}addressing_style: expected auto, path or virtual, got {style!r}")
        key_id, secret = config_str(cfg, "access_key_id"), config_str(cfg, "secret_access_key")
        if bool(key_id) != bool(secret):
            raise ConfigError(f"{where(cfg)}access_key_id: give both access_key_id and secret_access_key, or neither")
        return cls(destination_name(cfg), bucket, prefix, endpoint_url=config_str(cfg, "endpoint_url"),
                   region=config_str(cfg, "region"), access_key_id=key_id, secret_access_key=secret,
                   addressing_style=style,
                   timeout_s=config_number(cfg, "timeout_s", 30.0, minimum=0.001),
                   concurrency=int(config_number(cfg, "concurrency", 4, integer=True, minimum=1)))

    def __repr__(self) -> str:
        return f"S3Destination(name={self.name!r}, bucket={self.bucket!r}, prefix={self.prefix!r}, endpoint={self.endpoint_url!r})"

    def put(self, parcel: Parcel) -> Receipt:
        """Put the file, then the sidecar, each only if absent; either already
        present is success with the receipt of what is there (the sidecar's
        sha256, which the caller compares with the parcel's)."""
        folder = self._folder(parcel.key)
        object_key = f"{folder}/{_object_name(parcel)}"
        try:
            checksum = base64.b64encode(bytes.fromhex(parcel.sha256)).decode()
        except ValueError:
            raise Permanent(f"{self.name}: sha256 {parcel.sha256!r} of {parcel.key} is not hex") from None
        data = read_parcel_file(parcel)
        created = self._put_if_absent(object_key, data, parcel.media_type, checksum,
                                      {"invoice-key": quote(parcel.key, safe="")})
        if not created and (there := self.lookup(parcel.key)) is not None:
            return there
        side = sidecar_bytes(parcel)
        side_sum = base64.b64encode(_sha256(side)).decode()
        if not self._put_if_absent(f"{folder}/{SIDECAR}", side, "application/json", side_sum,
                                   {"object": quote(object_key, safe=""), "sha256": parcel.sha256}):
            return self.lookup(parcel.key) or self._receipt(parcel.key, object_key, parcel.sha256)
        return self._receipt(parcel.key, object_key, parcel.sha256)

    def lookup(self, key: str) -> Receipt | None:
        """HEAD the sidecar: its metadata names the file; None when absent
        (including keys put would refuse, which therefore cannot be held)."""
        try:
            side_key = f"{self._folder(key)}/{SIDECAR}"
        except Permanent:
            return None
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=side_key)
        except bx.ClientError as e:
            if _code(e) in ("404", "NoSuchKey", "NotFound"):
                # A HEAD 404 has no body: a missing bucket looks like a missing key.
                self.probe()
                return None
            raise self._error(e, f"HEAD {side_key}") from None
        except bx.BotoCoreError as e:
            raise self._error(e, f"HEAD {side_key}") from None
        meta = head.get("Metadata", {})
        object_key = unquote(meta.get("object", "")) or side_key
        return self._receipt(key, object_key, meta.get("sha256"))

    def probe(self) -> None:
        """HEAD the bucket: raises Misconfigured for a missing bucket or refused keys."""
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except (bx.ClientError, bx.BotoCoreError) as e:
            if isinstance(e, bx.ClientError) and _code(e) in ("404", "NoSuchBucket"):
                raise Misconfigured(f"{self.name}: NoSuchBucket: bucket {self.bucket!r} does not exist "
                                    f"at {self._endpoint()}") from None
            raise self._error(e, "HEAD of the bucket") from None

    # -- internals ---------------------------------------------------------

    def _folder(self, key: str) -> str:
        # Invoice keys are 代码-号码 or 20 digits; anything else could climb out of the prefix.
        safe_name_part(key, "invoice key")
        return f"{self.prefix}/{key}" if self.prefix else key

    def _put_if_absent(self, key: str, body: bytes, content_type: str, checksum: str, meta: dict) -> bool:
        """True when this put created the object, False when it was already there."""
        try:
            self._client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type,
                                    IfNoneMatch="*", ChecksumAlgorithm="SHA256", ChecksumSHA256=checksum,
                                    Metadata=meta)
            return True
        except bx.ClientError as e:
            if _code(e) in _ALREADY_THERE:
                return False
            raise self._error(e, f"PUT {key}") from None
        except bx.BotoCoreError as e:
            raise self._error(e, f"PUT {key}") from None

    def _receipt(self, key: str, object_key: str, sha256: str | None) -> Receipt:
        return Receipt(destination=self.name, key=key, remote_id=None,
                       location=f"s3://{self.bucket}/{object_key}",
                       raw={"bucket": self.bucket, "object": object_key,
                            "sidecar": f"{self._folder(key)}/{SIDECAR}", "sha256": sha256})

    def _endpoint(self) -> str:
        return self.endpoint_url or "AWS"

    def _error(self, e: Exception, doing: str) -> Exception:
        """One line naming bucket and endpoint, never the keys."""
        if isinstance(e, bx.ClientError):
            code = _code(e)
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            text = e.response.get("Error", {}).get("Message") or ""
            if code in ("BadDigest", "XAmzContentSHA256Mismatch", "InvalidDigest"):
                text = "the file sent does not match the sha256 recorded for it"
            msg = f"{self.name}: {code} on {doing}, bucket {self.bucket!r} at {self._endpoint()}: {text}".rstrip(": ")
            if code in _MISCONFIGURED or status in (401, 403):
                return Misconfigured(msg)
            if code in _TRANSIENT or status >= 500 or status == 429:
                return Transient(msg)
            return Permanent(msg)
        msg = f"{self.name}: {type(e).__name__} on {doing}, bucket {self.bucket!r} at {self._endpoint()}"
        if isinstance(e, (bx.NoCredentialsError, bx.PartialCredentialsError)):
            return Misconfigured(msg + ": no credentials")
        if isinstance(e, bx.ParamValidationError):
            return Permanent(f"{msg}: {e}")
        return Transient(msg)  # connection refused/reset, timeouts, closed connections


def _code(e: bx.ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code") or e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or "")


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _object_name(parcel: Parcel) -> str:
    """The original's base name, unless it is empty, hidden or the sidecar's name."""
    name = pathlib.PurePosixPath(parcel.filename.replace("\\", "/")).name.strip()
    if not name or name.startswith(".") or name.lower() == SIDECAR:
        name = f"{parcel.number}.{extension_of(parcel)}"
    return name
