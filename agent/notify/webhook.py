"""http(s)://…: a notification as JSON posted to a group robot's webhook.

Each preset sends its robot's documented message format:
- wecom (企业微信 group robot, qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…):
  {"msgtype": "markdown", "markdown": {"content": …}}; content at most 4096
  bytes; the reply {"errcode": 0, "errmsg": "ok"}.
- dingtalk (钉钉 custom robot, oapi.dingtalk.com/robot/send?access_token=…):
  {"msgtype": "markdown", "markdown": {"title": …, "text": …}}; with
  `secret` (加签, SEC…) the query gets timestamp (ms) and sign =
  urlencode(base64(HmacSHA256(key=secret, msg=f"{timestamp}\\n{secret}")));
  the reply {"errcode": 0, …}.
- feishu (飞书 / Lark custom bot, open.feishu.cn/open-apis/bot/v2/hook/…):
  {"msg_type": "post", "content": {"post": {"zh_cn": {"title", "content"}}}};
  with `secret` the body gets timestamp (s) and sign =
  base64(HmacSHA256(key=f"{timestamp}\\n{secret}", msg=b"")); the reply
  {"code": 0, …} (older: {"StatusCode": 0}).
- generic: {"event", "key", "subject", "text"}; any 2xx is success.

A robot answers HTTP 200 with a non-zero code when it refuses a message
(bad key, bad signature, keyword missing, too many messages): that is a
failure, retryable only for its rate limits. Client: urllib3 (as the http
destination), no retries or redirects of its own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any, Callable
from urllib.parse import parse_qsl, quote_plus, unquote_plus, urlsplit

import urllib3
from urllib3.exceptions import HTTPError, SSLError

from agent.config_notify import shown_notify_url, webhook_preset
from agent.deadline import DeadlinePool, DeadlineTLSPool, send_deadline, tls_context
from agent.errors import NotifyPermanent, NotifyRetryable
from agent.notify.base import Message, inert_code_spans
from agent.redact import remember

# The most text each robot shows (bytes of UTF-8); longer text is cut with a note.
TEXT_LIMITS = {"wecom": 4000, "dingtalk": 18000, "feishu": 18000, "generic": 60000}
# A subject, at most (UTF-8 bytes): a heading of a line or two, under every robot's cap.
SUBJECT_LIMIT = 512
# Non-zero codes that mean "not now" rather than "never": rate limits, busy.
RETRYABLE_CODES = {"wecom": {-1, 45009}, "dingtalk": {-1, 130101, 130102}, "feishu": {11232, 9499}}
_MAX_REPLY = 64 * 1024
_MAX_CONNECT_S = 5.0


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's 加签: base64 of HmacSHA256(secret, "timestamp\\nsecret"), not yet url-encoded."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """Feishu's 签名校验: base64 of HmacSHA256 keyed by "timestamp\\nsecret" over an empty message."""
    digest = hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def cut_utf8(text: str, limit: int, note: str = "\n…(truncated / 已截断)") -> str:
    """`text` cut to at most `limit` UTF-8 bytes at a character boundary, with `note` when cut.
    A code span the cut falls inside is closed first: the rest of its line
    (an outside value) never reads as markdown after an unmatched backtick."""
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text
    kept = raw[:limit - len(note.encode()) - 1].decode("utf-8", "ignore")
    if kept[kept.rfind("\n") + 1:].count("`") % 2:   # spans never cross a line (`code_span`)
        kept += "`"
    return kept + note


class WebhookNotifier:
    """Posts to one robot. Safe to share between threads."""

    def __init__(self, name: str, url: str, *, preset: str, secret: str | None = None, timeout_s: float = 10.0,
                 tls_verify: bool = True, ca_file: str | None = None, clock: Callable[[], float] = time.time):
        self.name, self.url, self.preset = name, url, preset
        self._secret, self.clock = secret, clock
        self.shown = shown_notify_url(url)
        parts = urlsplit(url)
        # The url's key (a query value, a hook path segment) is a credential too.
        url_secrets = [v for _, v in parse_qsl(parts.query) if len(v) >= 8]
        url_secrets += [s for s in parts.path.split("/") if len(s) >= 16]
        # A value too short to mask alone (it would match ordinary words) is
        # still masked where a server quotes it as a query does: `=value`
        # (an echoed request line, "unknown query: token=…").
        for pair in parts.query.split("&"):
            raw = pair.partition("=")[2]
            url_secrets += [f"={v}" for v in {raw, unquote_plus(raw)} if 4 <= len(v) < 8]
        remember(self, secret, *url_secrets)
        # Every socket keeps to the send's deadline (agent/deadline.py):
        # the status line and headers are read a byte at a time by http.client.
        self._pool = urllib3.PoolManager(num_pools=1, maxsize=1, retries=False,
                                         cert_reqs="CERT_REQUIRED" if tls_verify else "CERT_NONE",
                                         ssl_context=tls_context(verify=tls_verify, ca_file=ca_file))
        self._pool.pool_classes_by_scheme = {"http": DeadlinePool, "https": DeadlineTLSPool}
        self._timeout = urllib3.Timeout(connect=min(_MAX_CONNECT_S, timeout_s), read=timeout_s)

    def __repr__(self) -> str:
        return f"WebhookNotifier({self.name!r}, {self.preset}, {self.shown})"

    __str__ = __repr__

    @classmethod
    def from_config(cls, entry: dict[str, Any]) -> "WebhookNotifier":
        """From a checked [[notify]] entry (preset given or inferred from the host)."""
        return cls(entry["name"], entry["url"], preset=webhook_preset(entry), secret=entry.get("secret"),
                   timeout_s=float(entry.get("timeout_s") or 10.0), tls_verify=entry.get("tls_verify", True),
                   ca_file=entry.get("ca_file"))

    def request(self, message: Message) -> tuple[str, dict]:
        """The url (signed when asked) and JSON body this preset posts for `message`."""
        # Every name in a message is a code span (agent/notify/base.py
        # code_span); what this robot's markdown could act on in one is made
        # inert, in the subject (a heading here) as in the text.
        # A subject holds outside values too (a folder's path, an entry's
        # name): cut to SUBJECT_LIMIT, or a long one left the text a
        # negative room and the post over the robot's cap (refused for good).
        subject = cut_utf8(inert_code_spans(message.subject, self.preset), SUBJECT_LIMIT, note="…")
        text = inert_code_spans(message.text, self.preset)
        text = cut_utf8(text, TEXT_LIMITS[self.preset] - len(subject.encode()) - 16)
        url = self.url
        if self.preset == "wecom":
            return url, {"msgtype": "markdown", "markdown": {"content": f"## {subject}\n{text}"}}
        if self.preset == "dingtalk":
            if self._secret:
                ts = int(self.clock() * 1000)
                url += ("&" if urlsplit(url).query else "?") + \
                    f"timestamp={ts}&sign={quote_plus(dingtalk_sign(self._secret, ts))}"
            return url, {"msgtype": "markdown",
                         "markdown": {"title": subject, "text": f"### {subject}\n\n{text}"}}
        if self.preset == "feishu":
            lines = [[{"tag": "text", "text": line}] for line in text.splitlines() or [""]]
            body: dict[str, Any] = {"msg_type": "post",
                                    "content": {"post": {"zh_cn": {"title": subject, "content": lines}}}}
            if self._secret:
                ts = int(self.clock())
                body = {"timestamp": str(ts), "sign": feishu_sign(self._secret, ts), **body}
            return url, body
        return url, {"event": message.event, "key": message.key, "subject": message.subject, "text": text}

    def send(self, message: Message) -> None:
        """One POST, all of it (connect, TLS, request, status line, headers,
        body) within timeout_s whatever the server does
        (agent/deadline.py). 2xx with (for a robot) code 0 returns;
        connection errors, timeouts, the deadline, 5xx, 429 and a robot's
        rate-limit codes are NotifyRetryable; other answers NotifyPermanent."""
        url, body = self.request(message)
        where = f"notify {self.name} ({self.preset} {self.shown})"
        with send_deadline(self._timeout.read_timeout) as deadline:
            try:
                resp = self._pool.request("POST", url, body=json.dumps(body, ensure_ascii=False).encode("utf-8"),
                                          headers={"Content-Type": "application/json; charset=utf-8"},
                                          timeout=self._timeout, redirect=False, preload_content=False)
                try:
                    reply = _read_reply(resp)
                except BaseException:
                    resp.close()      # half an answer: the connection must not serve the next send
                    raise
                finally:
                    resp.release_conn()
            except Exception as e:
                if deadline.spent():
                    raise NotifyRetryable(f"{where}: the POST and its answer did not finish within "
                                          f"{self._timeout.read_timeout:g} s (timeout_s)") from None
                if isinstance(e, SSLError):
                    raise NotifyPermanent(f"{where}: TLS failed ({type(e).__name__}); set ca_file or fix the "
                                          "server's certificate") from None
                if isinstance(e, (HTTPError, OSError)):
                    raise NotifyRetryable(f"{where}: {type(e).__name__}") from None
                raise
        said = reply.decode("utf-8", "replace")[:200]
        if resp.status == 429 or resp.status >= 500:
            raise NotifyRetryable(f"{where}: HTTP {resp.status} {said}")
        if not 200 <= resp.status < 300:
            raise NotifyPermanent(f"{where}: HTTP {resp.status} {said}")
        if self.preset == "generic":
            return
        try:
            answer = json.loads(reply)
        except ValueError:
            raise NotifyPermanent(f"{where}: the answer is not the robot's JSON: {said}") from None
        code = (answer.get("errcode", answer.get("code", answer.get("StatusCode")))
                if isinstance(answer, dict) else None)
        if code == 0:
            return
        if code is None:
            raise NotifyPermanent(f"{where}: the answer has no errcode/code: {said}")
        kind = NotifyRetryable if code in RETRYABLE_CODES[self.preset] else NotifyPermanent
        msg = answer.get("errmsg") or answer.get("msg") or answer.get("StatusMessage") or ""
        raise kind(f"{where}: the robot refused the message: code {code} {str(msg)[:200]}")


def _read_reply(resp) -> bytes:
    # At most _MAX_REPLY bytes; the time it may take is the send's deadline,
    # kept by the socket.
    parts, got = [], 0
    while got < _MAX_REPLY:
        chunk = resp.read1(min(16384, _MAX_REPLY - got))
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)

