"""Real servers for the notification tests, on 127.0.0.1.

`SmtpSink`: aiosmtpd's Controller (a real SMTP server in a thread) that
keeps every message it accepted, parsed; optionally requires AUTH
(username/password) and offers STARTTLS (a self-signed cert), and answers
`fail_with` ("451 ..." or "554 ...") to DATA while that is set.

`RobotServer`: http.server in a thread standing in for a group robot
(WeCom, DingTalk, Feishu) or a generic webhook: records every POST (path,
query, headers, JSON body) and answers from a queue of scripted replies
(status, JSON, or "hang" for `delay` seconds), then `default`.
"""

from __future__ import annotations

import email
import email.policy
import json
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


def free_port() -> int:
    """A port nothing listens on now (the kernel's pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def self_signed(folder: Path) -> tuple[str, str]:
    """A throwaway certificate for 127.0.0.1: (cert.pem, key.pem)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return str(cert), str(key)


class _Handler:
    def __init__(self, sink: "SmtpSink"):
        self.sink = sink

    async def handle_DATA(self, server, session, envelope):
        if self.sink.fail_with:
            return self.sink.fail_with
        msg = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        self.sink.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos), "message": msg,
                                   "raw": envelope.original_content or envelope.content,
                                   "tls": session.ssl is not None, "login": self.sink.last_login})
        return "250 OK"


class SmtpSink:
    """A real SMTP server; `messages` are dicts (from, to, message: EmailMessage, raw, tls, login)."""

    def __init__(self, *, username: str | None = None, password: str | None = None,
                 starttls_cert: tuple[str, str] | None = None):
        self.port = free_port()
        self.messages: list[dict] = []
        self.fail_with: str | None = None
        self.logins: list[tuple[str, bool]] = []
        self.last_login: str | None = None
        self.username, self.password = username, password
        kwargs: dict = {}
        if username is not None:
            kwargs.update(authenticator=self._auth, auth_required=True, auth_require_tls=starttls_cert is not None)
        if starttls_cert:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(*starttls_cert)
            kwargs.update(tls_context=ctx, require_starttls=True)
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port, **kwargs)

    def _auth(self, server, session, envelope, mechanism, auth_data):
        login = auth_data.login.decode()
        ok = login == self.username and auth_data.password.decode() == self.password
        self.logins.append((login, ok))
        if ok:
            self.last_login = login
        return AuthResult(success=ok, handled=False)

    def start(self) -> "SmtpSink":
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def __enter__(self) -> "SmtpSink":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class RobotServer:
    """Records POSTs at `url` (http://127.0.0.1:PORT/hook/…); replies scripted."""

    def __init__(self, path: str = "/cgi-bin/webhook/send?key=k3y-0f-the-r0b0t-abcdef",
                 default: tuple[int, dict] = (200, {"errcode": 0, "errmsg": "ok"})):
        self.requests: list[dict] = []
        self.replies: list = []
        self.default = default
        self.lock = threading.Lock()
        robot = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = urlsplit(self.path)
                with robot.lock:
                    robot.requests.append({"path": parts.path, "query": parse_qs(parts.query),
                                           "headers": dict(self.headers), "raw": body,
                                           "json": json.loads(body.decode("utf-8"))})
                    reply = robot.replies.pop(0) if robot.replies else robot.default
                if reply[0] == "hang":
                    time.sleep(reply[1])
                    return
                status, doc = reply
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "RobotServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
