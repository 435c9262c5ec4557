"""Attack 18 on the HTTP destination (F4-F7), against a real loopback server
that misbehaves on purpose: error bodies in other charsets echoing the token,
Retry-After no schedule can hold, answers trickled a byte at a time, receipts
for another invoice or saying "failed" under a 2xx, and one invoice refused
401/403 or redirected while the others are accepted."""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import json
import random
import threading
import time
import unicodedata
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agent.deliver import open_destination
from agent.deliver.base import Parcel, Receipt
from agent.deliver.loop import Gate, Outcome, Refusals, claim, deliver_step, record_safely
from agent.deliver.retry import RETRY_AFTER_MAX_S, DeliveryPolicy
from agent.errors import Permanent, Transient
from agent.ledger import Ledger, utc
from agent.redact import redact, remember
from agent.vault import Vault
from tests.support.queued import number_of, queue_invoice

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 3, 4, 10, 0, tzinfo=UTC)
TOKEN = "Zq7SecretTok3n-9f8e7d6c5b4a"


class EvilServer:
    """POST /invoices answers what `answer(key, handler)` says (default: a
    201 receipt for the key); GET /health is 200. Counts POSTs per key."""

    def __init__(self):
        self.answer = None
        self.posts: dict[str, int] = {}
        self.stopping = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def send(self, status, body=b"", headers=()):
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path.endswith("/health"):
                    return self.send(200, b"{}")
                return self.send(404, b'{"error": "not found"}')

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                key = self.headers.get("Idempotency-Key")
                outer.posts[key] = outer.posts.get(key, 0) + 1
                if outer.answer is None or outer.answer(key, self) is None:
                    self.send(201, json.dumps({"key": key, "id": "OK-" + key}).encode())

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/api"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)


@pytest.fixture
def server():
    with EvilServer() as s:
        yield s


@pytest.fixture
def parcel(tmp_path):
    path = tmp_path / "invoice.pdf"
    path.write_bytes(b"%PDF-1.4 attack 18\n%%EOF\n")
    key = "26427000000145889304"
    return Parcel(key=key, number=key, filename="发票.pdf", media_type="application/pdf",
                  sha256=hashlib.sha256(path.read_bytes()).hexdigest(), fields={"number": key}, path=path)


def dest_for(server, **over):
    return open_destination(dict({"name": "fin", "url": server.url, "token": TOKEN, "timeout_s": 2}, **over))


def secret_spellings(text: str) -> list[str]:
    """The token read out of `text` in any way a person could: as is, with
    invisible characters or escaped NULs between its letters dropped, or the
    text written in another encoding and read back as UTF-8."""
    views = [text, text.replace("\\u0000", "").replace("\\x00", "")]
    for codec in ("utf-16-le", "utf-16-be", "utf-32-le", "latin-1", "cp500"):
        views.append(text.encode(codec, "replace").decode("utf-8", "replace"))
    views = ["".join(ch for ch in v if unicodedata.category(ch)[0] != "C") for v in views]
    return [v for v in views if TOKEN in v or TOKEN[:12] in v]


# -- F4: error bodies in other charsets ---------------------------------------------------

ECHO = "bad request, header was Bearer " + TOKEN


def test_an_echoed_token_in_any_charset_never_reaches_the_error(server, parcel):
    cases = [
        (ECHO.encode("utf-16-le"), "text/plain; charset=utf-16le"),
        (ECHO.encode("utf-16-be"), "text/plain; charset=UTF-16BE"),
        (ECHO.encode("utf-16"), "text/plain"),                                # BOM, no charset
        (ECHO.encode("utf-32"), "text/plain"),                                # BOM, no charset
        (ECHO.encode("utf-32-le"), "text/plain; charset=utf-32le"),
        (ECHO.encode("utf-16-le"), "text/plain"),                             # no BOM, no charset
        (("请求错误：" + ECHO).encode("gbk"), "text/plain; charset=gbk"),
        (ECHO.encode("utf-8"), "text/plain; charset=utf-16le"),               # a charset that lies
        (ECHO.encode("cp500"), "text/plain; charset=cp500"),                  # EBCDIC
        (ECHO.encode("utf-8"), "text/plain; charset=base64"),                 # not a text encoding
        (json.dumps({"message": "\0".join(ECHO)}).encode(), "application/json"),
        (json.dumps({"message": "\u200b".join(ECHO)}).encode(), "application/json"),
    ]
    dest = dest_for(server)
    for body, content_type in cases:
        server.answer = lambda key, h: h.send(400, body, [("Content-Type", content_type)]) or True
        with pytest.raises(Permanent) as info:
            dest.put(parcel)
        message = str(info.value)
        assert "400" in message and not secret_spellings(message), (content_type, message)
        for shown in (json.dumps(message), json.dumps(message, ensure_ascii=False)):
            assert not secret_spellings(shown), (content_type, shown)


def test_a_declared_charset_is_read_so_the_servers_words_are_shown(server, parcel):
    said = "购买方税号校验失败"
    server.answer = lambda key, h: h.send(400, json.dumps({"msg": said}, ensure_ascii=False).encode("gbk"),
                                          [("Content-Type", "application/json; charset=GBK")]) or True
    with pytest.raises(Permanent, match=said):
        dest_for(server).put(parcel)
    server.answer = lambda key, h: h.send(400, said.encode("utf-16"), [("Content-Type", "text/plain")]) or True
    with pytest.raises(Permanent, match=said):
        dest_for(server).put(parcel)


def test_redaction_sees_through_invisible_characters_and_keeps_other_text():
    class Owner:
        pass

    owner = Owner()
    remember(owner, TOKEN)
    wide = TOKEN.translate({c: c + 0xFEE0 for c in range(0x21, 0x7F)})
    for sep in ("\0", "\0\0\0", "\u200b", "\u200d", "\ufeff", "\u00ad", "\x1b", "\\u0000", "\\x00", "%00", "&#0;"):
        assert redact("token " + sep.join(TOKEN) + " end") == "token *** end", repr(sep)
    assert redact("token " + wide) == "token ***"
    assert redact("cut at the end: " + "\0".join(TOKEN[:9])) == "cut at the end: ***"
    for plain in ("hello\0world", "发票\u200b号码 ｔｅｓｔ", "C:\\0temp %00 &#0;", "a\x1b[1mbold\x1b[0m"):
        assert redact(plain) == plain
    del owner


# -- F5a: Retry-After no schedule can hold -------------------------------------------------

def test_retry_after_is_read_defensively_and_capped(server, parcel):
    far = email.utils.formatdate(time.time() + 400 * 365 * 86400.0, usegmt=True)
    cases = [("1e12", RETRY_AFTER_MAX_S), ("inf", RETRY_AFTER_MAX_S), ("Infinity", RETRY_AFTER_MAX_S),
             ("nan", None), ("-5", 0.0), ("soon", None), ("120", 120.0), (far, RETRY_AFTER_MAX_S),
             ("Fri, 31 Dec 9999 23:59:59 GMT", RETRY_AFTER_MAX_S)]
    dest = dest_for(server)
    for value, expect in cases:
        server.answer = lambda key, h: h.send(503, b'{"message": "busy"}', [("Retry-After", value)]) or True
        with pytest.raises(Transient) as info:
            dest.put(parcel)
        assert info.value.retry_after == expect, value


class Env:
    def __init__(self, tmp_path, server, **settings):
        self.server = server
        self.ledger = Ledger(tmp_path / "ledger.sqlite3")
        self.vault = Vault(tmp_path / "vault")
        self.cfg = {"name": "fin", "url": server.url, "token": TOKEN, "timeout_s": 2, "base_delay_s": 5,
                    "max_delay_s": 60, "probe_interval_s": 30, "max_attempts": 4, **settings}
        self.dest = open_destination(self.cfg)
        self.policy = DeliveryPolicy.from_config(self.cfg)
        self.gate = Gate.fresh(self.policy, tz=UTC)
        self.refusals = Refusals()
        self.rng = random.Random(7)

    def queue(self, i: int, at=T0) -> int:
        return queue_invoice(self.ledger, self.vault, i, destinations=["fin"], now=utc(at))

    def step(self, at):
        return deliver_step(self.ledger, self.dest, self.policy, self.gate, vault=self.vault, now=at, rng=self.rng,
                            lease_s=60, token="w1", actor="test", tz=UTC, refusals=self.refusals)

    def row(self, doc_id: int) -> dict:
        return self.ledger.deliveries_of(doc_id)[0]


@pytest.fixture
def env(tmp_path, server):
    e = Env(tmp_path, server)
    yield e
    e.ledger.close()


def test_a_huge_retry_after_is_recorded_and_retried_not_a_crash(env):
    doc = env.queue(1)
    env.server.answer = lambda key, h: h.send(503, b"{}", [("Retry-After", "1e12")]) or True
    result = env.step(T0)
    assert result.outcome == "transient" and result.row_state == "queued", result
    assert result.next_attempt_at == T0 + dt.timedelta(seconds=RETRY_AFTER_MAX_S)
    assert env.row(doc)["state"] == "queued"
    env.server.answer = None
    assert env.step(T0 + dt.timedelta(days=1)).outcome == "delivered"


def test_one_rows_recording_error_does_not_lose_the_rest_of_its_batch(env):
    docs = [env.queue(i) for i in (1, 2, 3)]
    claims = claim(env.ledger, "fin", now=T0, lease_s=60, token="w1", actor="test", limit=3)
    receipt = Receipt(destination="fin", key=number_of(1), remote_id="R1", location=None)
    outcomes = [Outcome("delivered", receipt=receipt),
                Outcome("delivered", receipt=None),                      # a bug: no receipt to store
                Outcome("transient", error="503", retry_after=float("inf"))]
    with env.ledger.transaction():
        results = [record_safely(env.ledger, c, o, env.policy, now=T0, rng=env.rng, actor="test")
                   for c, o in zip(claims, outcomes)]
    assert [r.recorded for r in results] == [True, True, True]
    assert [env.row(d)["state"] for d in docs] == ["delivered", "queued", "queued"]
    assert "internal error recording the delivered outcome" in env.row(docs[1])["last_error"]
    assert results[2].next_attempt_at <= T0 + dt.timedelta(seconds=RETRY_AFTER_MAX_S)


# -- F5b: an answer trickled a byte at a time --------------------------------------------

def trickle(server, h, head: bytes, body: bytes, pause_s: float) -> bool:
    """Answer on handler `h`: `head` at once, then `body` a byte every
    `pause_s`, until the server stops or the client hangs up; True (answered)."""
    try:
        h.wfile.write(head)
        for i in range(len(body)):
            if server.stopping.is_set():
                break
            h.wfile.write(body[i:i + 1])
            h.wfile.flush()
            time.sleep(pause_s)
    except OSError:
        pass
    h.close_connection = True
    return True


def _trickle(server, headers_first: bool):
    def answer(key, h):
        if headers_first:
            return trickle(server, h, b"HTTP/1.1 201 Created\r\nContent-Length: 100000\r\n\r\n", b" " * 100000, 0.1)
        return trickle(server, h, b"", b"HTTP/1.1 201 Created\r\nX-Slow: " + b"a" * 60000, 0.1)
    return answer


@pytest.mark.parametrize("headers_first", [True, False], ids=["body", "headers"])
def test_a_trickled_answer_times_out_within_the_timeout(server, parcel, headers_first):
    server.answer = _trickle(server, headers_first)
    dest = dest_for(server, timeout_s=1)
    began = time.monotonic()
    with pytest.raises(Transient, match="timed out"):
        dest.put(parcel)
    assert time.monotonic() - began < 3
    server.answer = None
    assert dest.put(parcel).remote_id == "OK-" + parcel.key     # the pool recovers


# -- F6: receipts that are not a delivery of ours -----------------------------------------

def test_a_receipt_for_another_invoice_is_not_a_delivery(env):
    doc = env.queue(1)
    env.server.answer = lambda key, h: h.send(201, b'{"key": "011001900411-00000001", "id": "SQ-OTHER-1"}') or True
    result = env.step(T0)
    assert result.outcome == "permanent" and result.row_state == "quarantined"
    assert "another invoice" in result.error and "011001900411-00000001" in result.error
    row = env.row(doc)
    assert row["state"] == "quarantined" and row["receipt"] is None and row["delivered_at"] is None
    assert "SQ-OTHER-1" not in json.dumps(row, default=str)


@pytest.mark.parametrize("body, verdict", [
    ({"code": 500, "success": False, "msg": "系统异常，未入账"}, Transient),
    ({"code": "500", "msg": "系统异常，未入账"}, Transient),
    ({"success": False, "message": "稍后再试"}, Transient),
    ({"code": 403, "msg": "无权限"}, Permanent),
])
def test_a_2xx_whose_body_says_it_failed_is_not_a_delivery(server, parcel, body, verdict):
    server.answer = lambda key, h: h.send(200, json.dumps(body, ensure_ascii=False).encode()) or True
    with pytest.raises(verdict) as info:
        dest_for(server).put(parcel)
    assert type(info.value) is verdict and "says it failed" in str(info.value)
    assert (body.get("msg") or body.get("message")) in str(info.value)


@pytest.mark.parametrize("body", [b"", b"{}", b'{"code": 0, "msg": "ok"}', b'{"code": 200}',
                                  b'{"key": "K", "id": "A-1", "code": "031002200311"}',
                                  # Success in other systems' words: ThinkPHP, Alipay, banks.
                                  '{"success": true, "code": 1, "msg": "操作成功"}'.encode(),
                                  b'{"code": "10000", "msg": "Success"}', b'{"code": "0000"}',
                                  b'{"success": "true", "code": 500}',
                                  # The key as a JSON number (a JavaScript server): not compared.
                                  b'{"key": 26427000000145889000, "id": "A-1"}'])
def test_other_2xx_answers_stay_deliveries_and_a_missing_id_is_said(server, parcel, body):
    body = body.replace(b'"K"', json.dumps(parcel.key).encode())
    server.answer = lambda key, h: h.send(201, body) or True
    receipt = dest_for(server).put(parcel)
    if b'"id"' in body:
        assert receipt.remote_id == "A-1" and receipt.warning is None
    else:
        assert receipt.remote_id is None and "no id" in receipt.warning
        assert receipt.to_dict()["warning"] == receipt.warning


# -- F7: one invoice refused must not hold up the others -----------------------------------

@pytest.mark.parametrize("refusal", [403, 401, 302])
def test_one_refused_invoice_does_not_block_the_others(env, refusal):
    bad = number_of(1)
    docs = [env.queue(i) for i in (1, 2, 3, 4)]
    headers = [("Location", "http://elsewhere.example/x")] if refusal == 302 else []
    env.server.answer = lambda key, h: (h.send(refusal, "没有此发票的入账权限".encode(), headers) or True
                                        if key == bad else None)
    at = T0
    for _ in range(200):
        step = env.step(at)
        at += dt.timedelta(seconds=31)
        if all(env.row(d)["state"] in ("delivered", "failed") for d in docs):
            break
    assert [env.row(d)["state"] for d in docs] == ["failed", "delivered", "delivered", "delivered"]
    failed = env.row(docs[0])
    assert str(refusal) in failed["last_error"] and "gave up" in failed["last_error"]
    assert "refused for this invoice only" in failed["last_error"]
    if refusal != 302:
        assert "没有此发票的入账权限" in failed["last_error"]
    assert env.server.posts[bad] == env.policy.max_attempts + 1      # the first refusal was not counted
    assert env.gate.paused_error is None, step


def test_a_bad_token_still_pauses_the_destination_and_fails_nothing(env):
    docs = [env.queue(i) for i in (1, 2, 3)]
    env.server.answer = lambda key, h: h.send(401, b'{"message": "invalid token"}') or True
    at, outcomes, paused = T0, [], 0
    for _ in range(60):                     # /health answers 200 without looking at the token
        step = env.step(at)
        outcomes += [step.outcome] if hasattr(step, "outcome") else []
        paused += bool(env.gate.paused_error and "invalid token" in env.gate.paused_error)
        at += dt.timedelta(seconds=31)
    assert [env.row(d)["state"] for d in docs] == ["queued"] * 3
    assert all(env.row(d)["attempts"] == 0 for d in docs)
    assert outcomes and set(outcomes) == {"misconfigured"} and paused >= len(outcomes)
    assert len(env.server.posts) == 3
    for d in docs:                          # each refused row goes behind the others, not first again
        for a in env.row(d)["attempts_log"]:
            waited = dt.datetime.fromisoformat(a["next_attempt_at"]) - dt.datetime.fromisoformat(a["at"])
            assert waited >= dt.timedelta(seconds=env.policy.probe_interval_s), a
    assert sum(env.server.posts.values()) == len(outcomes) <= 60 // 2 + 1   # one try per probe interval


def test_a_refused_row_goes_behind_the_others_after_the_pause(env):
    docs = [env.queue(i) for i in (1, 2)]
    env.server.answer = lambda key, h: h.send(403, b"{}") or True if key == number_of(1) else None
    first = env.step(T0)
    assert first.outcome == "misconfigured" and env.gate.paused_error
    assert first.next_attempt_at >= T0 + dt.timedelta(seconds=env.policy.probe_interval_s)
    assert env.step(T0 + dt.timedelta(seconds=30)).kind == "probe" and env.gate.paused_error is None
    assert env.step(T0 + dt.timedelta(seconds=30)).document_id == docs[1]      # not the refused one again



def test_a_token_echoed_with_php_escaped_slashes_never_reaches_the_error(server, parcel):
    # PHP's json_encode writes every "/" as "\/": a base64-style token
    # with a "/" came back spelled differently, and its tail was stored.
    token = "aB3/xYz9Qw+Lm7/Pq2Rs5Tu8"
    echo = "header was Bearer " + token.replace("/", "\\/")
    server.answer = lambda key, h: h.send(400, ('{"note": "' + echo + '"}').encode()) or True
    with pytest.raises(Permanent) as info:
        dest_for(server, token=token).put(parcel)
    assert "xYz9" not in str(info.value) and "Pq2Rs5" not in str(info.value), str(info.value)


def test_a_short_common_password_never_mangles_our_own_key_or_amounts(server, parcel):
    # Basic auth fapiao / 000000: redacting the receipt before comparing
    # its key made every receipt look foreign (the key holds 000000).
    key = "24442000000000001"
    p = Parcel(key=key, number=key, filename="a.pdf", media_type="application/pdf", sha256=parcel.sha256,
               fields={"number": key}, path=parcel.path)
    dest = open_destination({"name": "fin", "url": server.url, "username": "fapiao", "password": "000000",
                             "timeout_s": 2})
    receipt = dest.put(p)
    assert receipt.remote_id == "OK-" + key
    assert redact("amount 1000000.00, id SQ-2026-000000123") == "amount 1000000.00, id SQ-2026-000000123"
    assert redact("the password 000000 was refused") == "the password *** was refused"
