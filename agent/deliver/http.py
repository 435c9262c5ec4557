"""http(s)://HOST/BASE: the generic finance-system API of docs/destination-api.md.

Client: urllib3 (already installed as botocore's own dependency). Over the
standard library it gives a thread-safe keep-alive connection pool sized to
the destination's `concurrency` (5,000 invoices over one TLS handshake, not
5,000), separate connect and read timeouts, multipart encoding and
certificate verification on by default, without a new dependency.
Its own retries and redirects are switched off: the ledger decides retries.

Each call is over within `timeout_s`, whatever the server does: the
connect, the TLS handshake, the writing of the request and the reading of
the whole answer share one deadline, kept on the socket (agent/deadline.py),
and a put's look-up after a bare 409 shares its put's. A server slow at
every phase, never too slow at any (a second to accept, a handshake or an
answer a byte at a time, a request body read a byte at a time) cannot hold
a worker, nor the stop that waits for it, past that. The deadline's end is
a Transient, as a timeout always was: the request may have been stored, and
the retry's Idempotency-Key makes it the same delivery. Bodies are read in
their declared charset (or by their BOM) and redacted before anything keeps
them.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
from urllib.parse import quote, urlsplit

import urllib3
from urllib3.exceptions import HTTPError, ReadTimeoutError, SSLError
from urllib3.fields import RequestField
from urllib3.filepost import encode_multipart_formdata

from agent.deadline import DeadlinePool, DeadlineTLSPool, send_deadline, tls_context
from agent.deliver.base import (
    Misconfigured, Parcel, Receipt, config_bool, config_number, config_str, destination_name,
    read_parcel_file, where,
)
from agent.deliver.http_wire import body_text
from agent.deliver.retry import RETRY_AFTER_MAX_S
from agent.errors import ConfigError, Permanent, Transient
from agent.redact import redact_data, remember, shown_url

_MAX_BODY = 1 << 20          # a receipt is small; a larger answer is cut, not buffered
_MAX_MESSAGE = 300           # server messages go into the ledger and `show`
_MAX_CONNECT_S = 10.0        # a host that does not answer SYN in 10 s is down


class HttpDestination:
    """The documented HTTP API. Safe to share between threads."""

    def __init__(self, name: str, base_url: str, *, token: str | None = None,
                 username: str | None = None, password: str | None = None,
                 timeout_s: float = 30.0, tls_verify: bool = True, ca_file: str | None = None,
                 concurrency: int = 4):
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.tls_verify = tls_verify
        self._headers: dict[str, str] = {"User-Agent": "fapiao-agent", "Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        elif username is not None:
            self._headers["Authorization"] = urllib3.make_headers(
                basic_auth=f"{username}:{password or ''}")["authorization"]
        # A server may echo the header back in an error body: see agent/redact.py.
        remember(self, token, password, basic=(username, password) if username is not None else None)
        try:
            # Its sockets keep to the send's deadline, the handshake included.
            context = tls_context(verify=tls_verify, ca_file=ca_file)
        except OSError as e:    # missing, unreadable, or no certificate in it (ssl.SSLError)
            raise ConfigError(f"destination {name!r}: ca_file: cannot read {ca_file!r} as CA certificates: "
                              f"{type(e).__name__}: {e}") from None
        self._pool = urllib3.PoolManager(
            num_pools=2, maxsize=max(1, concurrency), block=False, retries=False,
            timeout=urllib3.Timeout(connect=min(timeout_s, _MAX_CONNECT_S), read=timeout_s),
            cert_reqs="CERT_REQUIRED" if tls_verify else "CERT_NONE", ssl_context=context)
        # Connections on the deadline's sockets: every phase of a send under one deadline.
        self._pool.pool_classes_by_scheme = {"http": DeadlinePool, "https": DeadlineTLSPool}

    @classmethod
    def from_config(cls, cfg: dict) -> "HttpDestination":
        """Keys: url, name, token | username+password, timeout_s, tls_verify, ca_file, concurrency.
        Credentials in the url itself are refused: urls end up in logs."""
        url = cfg["url"].strip()
        parts = urlsplit(url)
        if "@" in parts.netloc:
            raise ConfigError(f"{where(cfg)}url: put credentials in token or username/password, not in the url")
        if not parts.hostname:
            # Shown without its query: that is where a token would be.
            raise ConfigError(f"{where(cfg)}url: no host in {shown_url(url).split('?', 1)[0]!r}")
        if parts.query or parts.fragment:
            raise ConfigError(f"{where(cfg)}url: the base url takes no query or fragment")
        token = config_str(cfg, "token")
        username = config_str(cfg, "username")
        password = config_str(cfg, "password")
        if token and (username or password):
            raise ConfigError(f"{where(cfg)}token: give either token or username/password, not both")
        if password and not username:
            raise ConfigError(f"{where(cfg)}username: password given without username")
        return cls(destination_name(cfg), url, token=token, username=username, password=password,
                   timeout_s=config_number(cfg, "timeout_s", 30.0, minimum=0.001),
                   tls_verify=config_bool(cfg, "tls_verify", True),
                   ca_file=config_str(cfg, "ca_file"),
                   concurrency=int(config_number(cfg, "concurrency", 4, integer=True, minimum=1)))

    def __repr__(self) -> str:
        auth = self._headers.get("Authorization", "").split(" ", 1)[0].lower() or "none"
        return f"HttpDestination(name={self.name!r}, url={self.base_url!r}, auth={auth})"

    def close(self) -> None:
        """Drop pooled connections (the object stays usable)."""
        self._pool.clear()

    def put(self, parcel: Parcel) -> Receipt:
        """POST {base}/invoices, multipart (file, fields, sha256) with Idempotency-Key.
        2xx and 409 are success; a 409 without a receipt body is looked up.
        Not a success: a 2xx whose JSON body says it failed (`_failure_in_body`:
        Transient, or Permanent for a 4xx `code`), and a receipt naming
        another invoice's key (Permanent). Over within timeout_s, the
        look-up included; its end is a Transient ("timed out"), the invoice
        then maybe stored: a put again is the same delivery."""
        file_part = RequestField("file", read_parcel_file(parcel), filename=parcel.filename)
        file_part.make_multipart(content_type=parcel.media_type)
        fields_part = RequestField("fields", json.dumps(parcel.fields, ensure_ascii=False, default=str).encode())
        fields_part.make_multipart(content_type="application/json; charset=utf-8")
        sha_part = RequestField("sha256", parcel.sha256)
        sha_part.make_multipart(content_type="text/plain")
        body, content_type = encode_multipart_formdata([fields_part, sha_part, file_part])
        headers = dict(self._headers, **{"Content-Type": content_type, "Idempotency-Key": parcel.key})
        # One deadline for the POST and the look-up a bare 409 needs (nested, it keeps this one).
        with send_deadline(self.timeout_s):
            return self._posted(parcel, body, headers)

    def _posted(self, parcel: Parcel, body: bytes, headers: dict) -> Receipt:
        status, doc, text, resp = self._request("POST", "/invoices", body=body, headers=headers)
        if 200 <= status < 300:
            failed = _failure_in_body(doc)
            if failed is not None:
                where_ = f"{self.name}: POST {self.base_url}/invoices: {status}"
                message = f"{where_}, but the body says it failed (code {failed[1]}): {_server_message(doc, text)}"
                raise failed[0](message.rstrip())
        if 200 <= status < 300 or status == 409:
            receipt = self._receipt(parcel.key, doc, status, f"POST {self.base_url}/invoices")
            if receipt.remote_id is None and status == 409:
                found = self.lookup(parcel.key)
                if found is not None:
                    return found
            return receipt
        raise self._failure("POST", "/invoices", status, doc, text, resp)

    def lookup(self, key: str) -> Receipt | None:
        """GET {base}/invoices/{key}: the receipt on 200, None on 404;
        Permanent when the receipt names another invoice's key; over within
        timeout_s (a Transient, "timed out", once it is spent)."""
        path = "/invoices/" + quote(key, safe="")
        status, doc, text, resp = self._request("GET", path, headers=self._headers)
        if status == 200:
            return self._receipt(key, doc, status, f"GET {self.base_url}{path}")
        if status in (404, 410):
            return None
        raise self._failure("GET", path, status, doc, text, resp)

    def probe(self) -> None:
        """GET {base}/health must answer 2xx within timeout_s; anything else raises."""
        status, doc, text, resp = self._request("GET", "/health", headers=self._headers)
        if not 200 <= status < 300:
            if status == 404:
                raise Misconfigured(f"{self.name}: GET {self.base_url}/health: 404; is the base url right?")
            raise self._failure("GET", "/health", status, doc, text, resp)

    # -- internals ---------------------------------------------------------

    def _request(self, method: str, path: str, *, headers: dict, body: bytes | None = None):
        url = self.base_url + path
        resp, data, complete = None, b"", False
        with send_deadline(self.timeout_s) as deadline:
            try:
                resp = self._pool.request(method, url, body=body, headers=headers, preload_content=False,
                                          redirect=False)
                data = resp.read(_MAX_BODY + 1)
                complete = len(data) <= _MAX_BODY
            except (HTTPError, OSError) as e:
                # The deadline first: whatever urllib3 made of it (a connect, TLS,
                # write or read error), the server was too slow. Stored or not, the
                # invoice is retried by key, as after any timeout.
                if deadline.spent() or isinstance(e, ReadTimeoutError):
                    raise Transient(f"{self.name}: {method} {url}: timed out: the request and its answer "
                                    f"did not finish within {self.timeout_s:g} s (timeout_s)") from None
                if isinstance(e, SSLError):
                    raise Misconfigured(f"{self.name}: TLS failure on {method} {url}: {_reason(e)}") from None
                raise Transient(f"{self.name}: {method} {url}: {_reason(e)}") from None
            finally:
                if resp is not None:
                    # Only a fully read answer leaves the connection reusable.
                    if not complete or resp.length_remaining:
                        resp.close()
                    else:
                        resp.release_conn()
        # Redacted before anything reads, cuts or keeps it: a cut secret would escape.
        text = body_text(data[:_MAX_BODY], resp.headers.get("Content-Type"))
        doc = None
        if text.strip():
            try:
                doc = json.loads(text)
            except ValueError:
                doc = None
        return resp.status, doc, text, resp

    def _receipt(self, key: str, doc, status: int, request: str = "answer") -> Receipt:
        raw = redact_data(doc) if isinstance(doc, dict) else {"status": status}
        # Compared as the server wrote it: redaction (a short password that
        # also appears in numbers) must never make our own key look foreign.
        # A key sent back as a JSON number (its leading zeros or last digits
        # lost by a JavaScript server) is not compared: it proves nothing.
        named = doc.get("key") if isinstance(doc, dict) else None
        if isinstance(named, str) and named and not _same_key(named, key):
            # A receipt for another invoice (a server mixing up answers) proves
            # nothing about this one: counting it delivered would store the
            # other invoice's id against this one and never send it.
            raise Permanent(f"{self.name}: {request}: {status}, but the receipt names "
                            f"another invoice ({str(raw.get('key'))[:60]!r}, not {key!r}); not counted as "
                            "delivered")
        remote_id = raw.get("id") if isinstance(doc, dict) else None
        location = raw.get("location") if isinstance(doc, dict) else None
        warning = None
        if remote_id in (None, ""):
            warning = (f"{self.name} answered {status} with no id in its receipt"
                       + ("" if isinstance(doc, dict) else " (no JSON receipt at all)"))
        return Receipt(destination=self.name, key=key,
                       remote_id=str(remote_id) if remote_id not in (None, "") else None,
                       location=str(location) if location is not None else None, raw=raw, warning=warning)

    def _failure(self, method: str, path: str, status: int, doc, text: str, resp) -> Exception:
        message = _server_message(doc, text)
        where_ = f"{self.name}: {method} {self.base_url}{path}: {status}"
        if status >= 500 or status in (408, 425, 429):
            return Transient(f"{where_} {message}".rstrip(), retry_after=_retry_after(resp.headers))
        if status in (401, 403):
            return Misconfigured(f"{where_} (check token or username/password) {message}".rstrip())
        if 300 <= status < 400:
            return Misconfigured(f"{where_} redirect to {resp.headers.get('Location', '?')}; set url to the final address")
        return Permanent(f"{where_} {message}".rstrip())


def _reason(e: Exception) -> str:
    # MaxRetryError wraps the real cause; its own text repeats the whole url.
    inner = getattr(e, "reason", None) or e
    return f"{type(inner).__name__}: {inner}"[:_MAX_MESSAGE]


def _server_message(doc, text: str) -> str:
    """The server's own words: a JSON message/error/detail/title/msg/errmsg
    field (the first present), else the body text."""
    if isinstance(doc, dict):
        for k in ("message", "error", "detail", "title", "msg", "errmsg"):
            v = doc.get(k)
            if isinstance(v, str) and v.strip():
                return " ".join(v.split())[:_MAX_MESSAGE]
            if isinstance(v, dict) and isinstance(v.get("message"), str):
                return " ".join(v["message"].split())[:_MAX_MESSAGE]
    return " ".join(text.split())[:_MAX_MESSAGE]


def _retry_after(headers) -> float | None:
    """Retry-After in seconds: a number, or an HTTP-date taken against the
    server's own Date header (so no local clock is needed). Never raises:
    unreadable or NaN is None (no advice), negative is 0, and a wait beyond
    RETRY_AFTER_MAX_S (1e12, inf, a date years ahead) is cut to it."""
    value = headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            until = email.utils.parsedate_to_datetime(value)
            said_at = email.utils.parsedate_to_datetime(headers.get("Date", ""))
            seconds = (until - said_at).total_seconds()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if math.isnan(seconds):
        return None
    return min(max(0.0, seconds), RETRY_AFTER_MAX_S)


def _same_key(named: str, key: str) -> bool:
    # Letters and digits only, any case: "031002200311_78837327" names the
    # same invoice as "031002200311-78837327"; any other digit does not.
    return re.sub(r"[^0-9A-Za-z]", "", named).upper() == re.sub(r"[^0-9A-Za-z]", "", key).upper()


def _failure_in_body(doc) -> tuple[type, object] | None:
    """A 2xx whose JSON body says the request failed (docs/destination-api.md):
    `"success": false`, or, in a receipt with no `id` and no `"success":
    true`, a numeric `code` (a number or 1-6 digits) of 400-599 or below 0,
    the HTTP-like error codes. Other codes (1, 10000, "0000"...) mean success
    in some systems and are not read. Gives (Permanent for a 4xx code, else
    Transient; the code), or None: any other 2xx, an empty body included, is
    a delivery."""
    if not isinstance(doc, dict):
        return None
    code = doc.get("code")
    number = None
    if isinstance(code, int) and not isinstance(code, bool):
        number = code
    elif isinstance(code, str) and re.fullmatch(r"\d{1,6}", code.strip()):
        number = int(code.strip())
    success = doc.get("success")
    said_ok = success is True or (isinstance(success, str) and success.strip().lower() == "true")
    said_failed = success is False or (isinstance(success, str) and success.strip().lower() == "false")
    failed = said_failed or (
        not said_ok and doc.get("id") in (None, "") and number is not None
        and (400 <= number < 600 or number < 0))
    if not failed:
        return None
    shown = code if number is not None else "success: false"
    return (Permanent if number is not None and 400 <= number < 500 else Transient), shown
