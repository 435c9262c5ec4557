"""The one-request PUT of a small object for S3Target, the backup's hot path.

Through the boto3 client a 100 KB put costs ~3 ms of CPU under the GIL
(event hooks, parameter validation, endpoint rules, response parsing):
twice this path's. With 16 puts in flight on 2 cores that, not the
network, is what bounded the backup loop (issue 17, bench/backup.py). Here
the request is signed by botocore's own SigV4 signer (S3SigV4Auth, the
payload hash being the SHA-256 the caller already has) and sent on the
client's own HTTP session (its pool, TLS settings, proxies, timeouts).

Only the common case goes this way: a new object, answered 200 (or 412:
something is there, which S3Target checks with a head as before). Anything
else (an error status, no credentials, a connection problem) and S3Target
takes the client's path,
which retries and translates errors as before, so what a put guarantees
does not change: the server still checks x-amz-checksum-sha256, and the
hex SHA-256 is still stored as x-amz-meta-sha256.
"""

from __future__ import annotations

import base64
from urllib.parse import quote, urlsplit

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest


class _KnownPayloadAuth(S3SigV4Auth):
    """SigV4 for S3 with the payload's SHA-256 given, not computed again."""

    def __init__(self, credentials, region: str, sha256: str):
        super().__init__(credentials, "s3", region)
        self._sha256 = sha256

    def payload(self, request) -> str:
        return self._sha256


class DirectPut:
    """Signed single-request PUTs into one bucket, beside a boto3 client."""

    def __init__(self, session, client, bucket: str, headers: dict[str, str]):
        self._session, self._bucket, self._headers = session, bucket, headers
        self._region = client.meta.region_name or "us-east-1"
        # The client's own session: the same pool, verify and proxies as every other call.
        self._http = getattr(getattr(client, "_endpoint", None), "http_session", None)
        # Where this client sends an object (path or virtual-host style,
        # custom endpoint or AWS), read once from a URL it signs itself.
        probe = "p"
        url = client.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": probe}, ExpiresIn=60)
        parts = urlsplit(url)
        path = parts.path
        self._base = f"{parts.scheme}://{parts.netloc}{path[:-len(probe)]}" if path.endswith("/" + probe) else None

    @property
    def usable(self) -> bool:
        """False when this botocore offers no session to send on, or the URL form was not understood."""
        return self._http is not None and self._base is not None

    def put(self, full_key: str, data: bytes, sha256: str, *, if_none_match: bool) -> int | None:
        """PUT `data` at `full_key` with its SHA-256 checked by the server;
        returns the HTTP status (200: stored; 412: something is already
        there), or None when no answer came. For anything but 200 and 412
        the caller takes the client's path, which knows what each answer
        means. Never raises."""
        credentials = self._session.get_credentials()
        if not self.usable or credentials is None:
            return None
        url = self._base + quote(full_key, safe="/~")
        headers = {**self._headers, "x-amz-checksum-sha256": base64.b64encode(bytes.fromhex(sha256)).decode(),
                   "x-amz-meta-sha256": sha256}
        if if_none_match:
            headers["If-None-Match"] = "*"
        request = AWSRequest(method="PUT", url=url, data=data, headers=headers)
        try:
            _KnownPayloadAuth(credentials.get_frozen_credentials(), self._region, sha256).add_auth(request)
            response = self._http.send(request.prepare())
        except Exception:  # noqa: BLE001  any failure: the client's path decides what it was
            return None
        return response.status_code
