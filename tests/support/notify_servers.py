"""Real servers for the notification tests, on 127.0.0.1.

`SmtpSink`: aiosmtpd's Controller (a real SMTP server in a thread) that
keeps every message it accepted, parsed; optionally requires AUTH
(username/password) and offers STARTTLS (a self-signed cert), and answers
`fail_with` ("451 ..." or "554 ...") to DATA while that is set.

`RobotServer`: http.server in a thread standing in for a group robot
(WeCom, DingTalk, Feishu) or a generic webhook: records every POST (path,
query, headers, JSON body) and answers from a queue of scripted replies
(status, JSON, or "hang" for `delay` seconds), then `default`.

`Tarpit`: a server that keeps every client waiting while never going
silent long enough for a socket timeout: an SMTP greeting of endless "220-"
lines, a status line and headers a byte at a time, a TLS handshake a byte
at a time; or a listen queue that takes no more connections (a black hole).
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


# -- servers that keep a client waiting --------------------------------------------------

TRICKLE_S = 0.2          # a tarpit's pause between two pieces: far inside any socket timeout


def greeting_trickle(conn, more) -> None:
    """An SMTP greeting that never ends: a "220-" continuation line each TRICKLE_S."""
    while more():
        conn.sendall(b"220-still greeting\r\n")


def header_trickle(conn, more) -> None:
    """Reads the request, then a status line and a header line one byte each TRICKLE_S."""
    conn.recv(65536)
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    while more():
        conn.sendall(b"X")


class Tarpit:
    """A server on 127.0.0.1:`port` running `speak(conn, more)` for each
    connection in a thread of its own; `more()` waits TRICKLE_S and says
    whether to go on, false after `give_up_s` (so old code under test
    fails on its clock, never hangs the suite) or once the tarpit stops.
    `tls` (cert, key): the client talks TLS; with `handshake_trickle` the
    server's handshake bytes go out one each TRICKLE_S, else the handshake
    is done at once and `speak` talks inside TLS. `black_hole`: the listen
    queue is full and nothing is accepted, so a connect waits for ever.
    `connections` counts the clients that came."""

    def __init__(self, speak=None, *, tls: tuple[str, str] | None = None, handshake_trickle: bool = False,
                 black_hole: bool = False, give_up_s: float = 8.0):
        self.speak, self.give_up_s, self.handshake_trickle = speak, give_up_s, handshake_trickle
        self.connections = 0
        self.stopping = threading.Event()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.context = None
        if tls:
            self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.context.load_cert_chain(*tls)
        self.held: list[socket.socket] = []
        if black_hole:
            # A queue of one, filled: the kernel drops every later SYN.
            self.listener.listen(0)
            filler = socket.create_connection(("127.0.0.1", self.port), timeout=2)
            self.held.append(filler)
        else:
            self.listener.listen(8)
            threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn) -> None:
        until = time.monotonic() + self.give_up_s

        def more() -> bool:
            return not self.stopping.wait(TRICKLE_S) and time.monotonic() < until
        try:
            with conn:
                if self.context and self.handshake_trickle:
                    self._trickle_handshake(conn, more)
                    return
                if self.context:
                    conn = self.context.wrap_socket(conn, server_side=True)
                self.speak(conn, more)
        except OSError:
            pass

    def _trickle_handshake(self, conn, more) -> None:
        # The server's half of a real handshake (ServerHello, certificate...),
        # made in memory, sent one byte at a time.
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = self.context.wrap_bio(incoming, outgoing, server_side=True)
        incoming.write(conn.recv(65536))
        try:
            tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        data = outgoing.read()
        for i in range(len(data)):
            if not more():
                return
            conn.sendall(data[i:i + 1])
        while more():          # all sent (a fast give_up_s): wait, saying nothing more
            pass

    def __enter__(self) -> "Tarpit":
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.listener.close()
        for s in self.held:
            s.close()
