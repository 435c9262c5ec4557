"""One contract for every notification channel (SMTP and each webhook
preset), against real servers on 127.0.0.1: what arrives, and which failures
are retryable or permanent; then what only one channel does (AUTH and
STARTTLS, attachments, the robots' signatures and error codes)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import socket
import time

import pytest

from agent.errors import NotifyPermanent, NotifyRetryable
from agent.notify import Attachment, Message, open_notifier
from agent.notify.smtp import SmtpNotifier
from tests.support.notify_servers import RobotServer, SmtpSink, free_port, self_signed

SUBJECT = "[fapiao-agent] 备份目标 s3main 故障 / backup target s3main failing"
TEXT = "备份目标 s3main 自 2026-12-03 起无法备份 (45 min): 连接超时\nbacklog 17 objects."
PRESETS = ("smtp", "wecom", "dingtalk", "feishu", "generic")


class Channel:
    """A notifier wired to its real server, and how to read / break that server."""

    def __init__(self, kind, server, notifier):
        self.kind, self.server, self.notifier = kind, server, notifier

    def received(self) -> list[str]:
        """Each message as the server got it: one text holding subject and body."""
        if self.kind == "smtp":
            return [m["message"]["Subject"] + "\n" + m["message"].get_body(("plain",)).get_content()
                    for m in self.server.messages]
        out = []
        for r in self.server.requests:
            j = r["json"]
            if self.kind == "wecom":
                out.append(j["markdown"]["content"])
            elif self.kind == "dingtalk":
                out.append(j["markdown"]["title"] + "\n" + j["markdown"]["text"])
            elif self.kind == "feishu":
                post = j["content"]["post"]["zh_cn"]
                out.append(post["title"] + "\n" + "\n".join(seg["text"] for line in post["content"] for seg in line))
            else:
                out.append(j["subject"] + "\n" + j["text"])
        return out

    def fail(self, permanent: bool) -> None:
        if self.kind == "smtp":
            self.server.fail_with = "554 5.7.1 rejected" if permanent else "451 4.3.0 try again later"
        elif self.kind == "generic":
            self.server.replies.append((400, {"error": "bad"}) if permanent else (503, {"error": "busy"}))
        else:
            # A robot refuses with HTTP 200 and a non-zero code.
            code = {"wecom": (93000, 45009), "dingtalk": (310000, 130101), "feishu": (19021, 11232)}[self.kind]
            key = "code" if self.kind == "feishu" else "errcode"
            self.server.replies.append((200, {key: code[0] if permanent else code[1], "errmsg": "refused"}))


def _entry(kind: str, url: str, **extra) -> dict:
    entry = {"name": f"n-{kind}", "url": url, "timeout_s": 2.0, **extra}
    if kind not in ("smtp",):
        entry["preset"] = kind
    return entry


@pytest.fixture(params=PRESETS)
def channel(request):
    kind = request.param
    if kind == "smtp":
        with SmtpSink() as sink:
            yield Channel(kind, sink, open_notifier(_entry(kind, "mailto:finance@example.com,ops@example.com",
                                                           host="127.0.0.1", port=sink.port,
                                                           sender="agent@example.com")))
    else:
        with RobotServer() as robot:
            yield Channel(kind, robot, open_notifier(_entry(kind, robot.url)))


def test_a_message_arrives_with_its_subject_numbers_and_chinese_text(channel):
    channel.notifier.send(Message(subject=SUBJECT, text=TEXT, event="backup-failing", key="backup-failing:s3main"))
    (got,) = channel.received()
    assert "备份目标 s3main 故障" in got and "backup target s3main failing" in got
    assert "连接超时" in got and "45 min" in got and "backlog 17 objects" in got


def test_a_temporary_refusal_is_retryable_and_a_lasting_one_permanent(channel):
    channel.fail(permanent=False)
    with pytest.raises(NotifyRetryable):
        channel.notifier.send(Message(subject=SUBJECT, text=TEXT))
    channel.fail(permanent=True)       # SMTP: fail_with replaced; webhooks: the next scripted reply
    with pytest.raises(NotifyPermanent):
        channel.notifier.send(Message(subject=SUBJECT, text=TEXT))


@pytest.mark.parametrize("kind", ("smtp", "wecom"))   # the robots share one HTTP client: one stands for all
def test_no_server_and_a_silent_server_are_retryable_within_the_timeout(kind):
    dead = f"127.0.0.1:{free_port()}"
    url = "mailto:a@example.com" if kind == "smtp" else f"http://{dead}/hook/0123456789abcdef0123"
    host_port = {"host": "127.0.0.1", "port": int(dead.split(":")[1])} if kind == "smtp" else {}
    with pytest.raises(NotifyRetryable):
        open_notifier(_entry(kind, url, **host_port)).send(Message(subject="s", text="t"))
    # A server that takes the connection and never says a word.
    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(8)
        port = hole.getsockname()[1]
        url = "mailto:a@example.com" if kind == "smtp" else f"http://127.0.0.1:{port}/hook/0123456789abcdef0123"
        extra = {"host": "127.0.0.1", "port": port} if kind == "smtp" else {}
        started = time.monotonic()
        with pytest.raises(NotifyRetryable):
            open_notifier(_entry(kind, url, timeout_s=0.3, **extra)).send(Message(subject="s", text="t"))
        assert time.monotonic() - started < 5


# -- SMTP only ---------------------------------------------------------------------------


def test_smtp_starttls_and_auth_and_a_wrong_password_that_is_never_shown(tmp_path):
    cert, key = self_signed(tmp_path)
    with SmtpSink(username="fapiao", password="s3cret-Pa55word!", starttls_cert=(cert, key)) as sink:
        base = {"name": "mail", "url": "mailto:finance@example.com", "host": "127.0.0.1", "port": sink.port,
                "starttls": True, "ca_file": cert, "username": "fapiao", "timeout_s": 5.0}
        (tmp_path / "pw").write_text("s3cret-Pa55word!\n")
        open_notifier({**base, "password_file": "pw", "base_dir": str(tmp_path)}).send(
            Message(subject="测试 test", text="第一行\nline two"))
        (m,) = sink.messages
        assert m["tls"] and m["login"] == "fapiao" and m["to"] == ["finance@example.com"]
        assert m["message"]["Subject"] == "测试 test"
        assert m["message"].get_body(("plain",)).get_content().replace("\r\n", "\n").strip() == "第一行\nline two"
        with pytest.raises(NotifyPermanent) as e:
            open_notifier({**base, "password": "wrong-Pa55word!"}).send(Message(subject="s", text="t"))
        assert "wrong-Pa55word" not in str(e.value) and "login refused" in str(e.value)
        assert sink.logins[-1] == ("fapiao", False)
        # A server whose certificate is not trusted is a configuration fault, not a retry.
        with pytest.raises(NotifyPermanent):
            open_notifier({**base, "password": "s3cret-Pa55word!", "ca_file": None}).send(Message(subject="s", text="t"))


def test_smtp_sends_the_html_and_the_attachments_byte_for_byte():
    csv = "\ufeff发票号码,金额\n26110000000012345678,1234.50\n".encode("utf-8")
    html = "<html><body><h1>每周发票检查</h1><p>42 invoices</p></body></html>"
    with SmtpSink() as sink:
        SmtpNotifier("mail", ["finance@example.com"], host="127.0.0.1", port=sink.port).send(Message(
            subject="每周报告 weekly", text="42 invoices", html=html,
            attachments=(Attachment("report.html", html.encode(), "text/html"),
                         Attachment("发票.csv", csv, "text/csv"))))
        msg = sink.messages[0]["message"]
    assert "每周发票检查" in msg.get_body(("html",)).get_content()
    files = {a.get_filename(): a.get_payload(decode=True) for a in msg.iter_attachments()}
    assert files == {"report.html": html.encode(), "发票.csv": csv}
    assert msg["Auto-Submitted"] == "auto-generated"


# -- robots only --------------------------------------------------------------------------


def test_dingtalk_signs_the_query_as_documented():
    with RobotServer(path="/robot/send?access_token=t0ken-0f-the-r0b0t") as robot:
        notifier = open_notifier({"name": "ding", "url": robot.url, "preset": "dingtalk", "secret": "SECabc123xyz",
                                  "timeout_s": 2.0})
        notifier.send(Message(subject="主题", text="正文 12"))
        (req,) = robot.requests
    ts, sign = req["query"]["timestamp"][0], req["query"]["sign"][0]
    assert req["query"]["access_token"] == ["t0ken-0f-the-r0b0t"]
    expected = base64.b64encode(hmac.new(b"SECabc123xyz", f"{ts}\nSECabc123xyz".encode(), hashlib.sha256).digest())
    assert sign.encode() == expected                   # parse_qs already url-decoded it once
    assert abs(int(ts) / 1000 - time.time()) < 60
    assert req["json"] == {"msgtype": "markdown", "markdown": {"title": "主题", "text": "### 主题\n\n正文 12"}}


def test_feishu_signs_the_body_as_documented_and_sends_a_post():
    with RobotServer(path="/open-apis/bot/v2/hook/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
                     default=(200, {"code": 0, "msg": "success"})) as robot:
        open_notifier({"name": "fs", "url": robot.url, "preset": "feishu", "secret": "feishu-secret",
                       "timeout_s": 2.0}).send(Message(subject="标题", text="一\n二"))
        body = robot.requests[0]["json"]
    key = f"{body['timestamp']}\nfeishu-secret".encode()
    assert body["sign"] == base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
    assert body["msg_type"] == "post"
    assert body["content"]["post"]["zh_cn"]["content"] == [[{"tag": "text", "text": "一"}], [{"tag": "text", "text": "二"}]]


def test_wecom_markdown_is_cut_to_its_limit_at_a_character_boundary():
    with RobotServer() as robot:
        open_notifier({"name": "wx", "url": robot.url, "preset": "wecom", "timeout_s": 2.0}).send(
            Message(subject="长", text="发票" * 3000))
        content = robot.requests[0]["json"]["markdown"]["content"]
        raw = robot.requests[0]["raw"]
    assert len(content.encode("utf-8")) <= 4096 and content.endswith("已截断)")
    raw.decode("utf-8")   # valid UTF-8 on the wire


def test_a_robot_that_echoes_its_key_in_an_error_does_not_leak_it():
    with RobotServer(path="/cgi-bin/webhook/send?key=693a91f6-7aaa-4bc4-97a0-0ec2sifa5aaa") as robot:
        robot.replies.append((200, {"errcode": 93000, "errmsg": "invalid webhook url, key=693a91f6-7aaa-4bc4-97a0-0ec2sifa5aaa"}))
        notifier = open_notifier({"name": "wx", "url": robot.url, "preset": "wecom", "timeout_s": 2.0})
        with pytest.raises(NotifyPermanent) as e:
            notifier.send(Message(subject="s", text="t"))
    assert "93000" in str(e.value) and "693a91f6-7aaa" not in str(e.value)
    assert "693a91f6" not in repr(notifier)


def test_a_server_that_echoes_the_request_line_does_not_leak_a_short_token():
    # A generic hook's or DingTalk's access token may be short (under the
    # 8 characters a lone value needs to be masked); a server quoting the
    # request line or the query still gives it away as `name=value`.
    with RobotServer(path="/robot/send?access_token=tok123") as robot:
        robot.replies.append((400, {"error": "bad request POST /robot/send?access_token=tok123&timestamp=1"}))
        robot.replies.append((400, {"error": "unknown query: access_token=tok123"}))
        notifier = open_notifier({"name": "ding", "url": robot.url, "preset": "dingtalk", "timeout_s": 2.0})
        for _ in range(2):
            with pytest.raises(NotifyPermanent) as e:
                notifier.send(Message(subject="s", text="t"))
            assert "HTTP 400" in str(e.value) and "tok123" not in str(e.value), str(e.value)


def test_a_robot_trickling_its_answer_is_cut_at_timeout_s_not_held_for_hours():
    # urllib3's read timeout bounds each recv: a byte every 0.3 s kept the
    # one notify thread (every entry's alerts) for 64 KiB x 0.3 s per try.
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    stop = threading.Event()

    def trickle():
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 65536\r\n\r\n{")
            for _ in range(20):              # gives up after ~6 s, closing early
                if stop.wait(0.3):
                    break
                conn.sendall(b" ")

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.getsockname()[1]}/cgi-bin/webhook/send?key=k3y-0f-the-r0b0t"
        notifier = open_notifier({"name": "wx", "url": url, "preset": "wecom", "timeout_s": 1.0})
        with pytest.raises(NotifyRetryable) as e:
            notifier.send(Message(subject="s", text="t"))
        assert "did not finish within 1 s" in str(e.value), str(e.value)
    finally:
        stop.set()
        thread.join(10)
        server.close()


def test_dingtalk_shows_a_file_name_inert_and_wecom_a_code_span_without_links_tags_or_emphasis():
    # DingTalk's markdown has no code span: `[点此核对](https:evil)` in one
    # was posted as a live link, `![](…)` as a remote image, `@138…` a mention.
    from agent.notify.base import code_span

    name = "[点此核对发票](https:evil.example) ![](https:x.png) <@all> *b* _i_ #h |t|.pdf"
    message = Message(subject="隔离 quarantined", text=f"- 1 {code_span(name)}", event="quarantine", key="k")
    ding = open_notifier({"name": "ding", "url": "https://oapi.dingtalk.com/robot/send?access_token=t0",
                          "preset": "dingtalk"})
    _, body = ding.request(message)
    text = body["markdown"]["text"]
    assert not any(ch in text.split("\n\n", 1)[1] for ch in "[]()!<>@*_#|"), text
    assert "［点此核对发票］（https:evil.example）" in text
    wecom = open_notifier({"name": "wx", "url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k0",
                           "preset": "wecom"})
    _, body = wecom.request(message)
    # A code span there, but what WeCom's own syntax starts with (a link's
    # or image's `[`, a `<@…>` or `<font>` tag, `*`) made inert; the rest exact.
    assert "`［点此核对发票］(https:evil.example) !［］(https:x.png) ＜@all＞ ＊b＊ _i_ #h |t|.pdf`" \
        in body["markdown"]["content"]
