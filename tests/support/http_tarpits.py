"""A slow front for the HTTP destination's tests: raw sockets on 127.0.0.1
before a real FaultyFinanceServer, dragging out whichever phase of a send a
test names, each pause far inside any socket timeout.

`SlowFront(backend, ...)` listens on its own port, reads each request
whole, hands it to `backend` (a FaultyFinanceServer, which stores it by
Idempotency-Key and counts it) and gives the answer back, marked
`Connection: close` (one request per connection: a slowed connection is
never pooled for the next send). What it drags out:

  backlog_s   the listen queue is full (a connection sits in it unaccepted)
              for that long: a connect waits for the kernel's SYN retry
  handshake   "silent": TLS (needs `tls`), the ClientHello read and never
              answered; "trickle": the server's handshake bytes one each
              TRICKLE_S, never finished
  read_pace   (n, pause_s): the request read `n` bytes per `pause_s`, on a
              socket with a tiny receive buffer, so the client's writes wait
              for the window
  answer      "head": the status line and headers one byte each TRICKLE_S;
              "body": them at once, then the body one byte each TRICKLE_S.
              The backend has the request by then: it stored the invoice.

`healthy = True` makes later connections plain (backlog and handshake
excepted: they are the listener's and the TLS context's); every slowed
connection gives up after `give_up_s`, so old code fails on its clock and
never hangs the suite. `requests` counts the requests handed to the backend.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time

from tests.support.http_destination import FaultyFinanceServer

TRICKLE_S = 0.2        # a pause between two pieces: far inside any socket timeout
TINY_RCVBUF = 1024     # the kernel doubles it and keeps a floor; a window of a few KB


class SlowFront:
    """See the module's docstring; `url` is the API's base url through the front."""

    def __init__(self, backend: FaultyFinanceServer, *, tls: tuple[str, str] | None = None,
                 backlog_s: float = 0.0, handshake: str | None = None,
                 read_pace: tuple[int, float] | None = None, answer: str | None = None,
                 give_up_s: float = 8.0):
        if handshake not in (None, "silent", "trickle") or answer not in (None, "head", "body"):
            raise ValueError(f"handshake {handshake!r}, answer {answer!r}")
        if handshake and not tls:
            raise ValueError("a handshake needs tls=(cert, key)")
        self.backend, self.handshake, self.read_pace, self.answer = backend, handshake, read_pace, answer
        self.give_up_s = give_up_s
        self.healthy = False
        self.requests = 0
        self.connections = 0
        self.stopping = threading.Event()
        self.context = None
        if tls:
            self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.context.load_cert_chain(*tls)
        self.listener = socket.socket()
        if read_pace:  # inherited by accepted sockets; set before listen so the window is small from the SYN
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, TINY_RCVBUF)
        self.listener.bind(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}{backend.base}"
        self._filler: socket.socket | None = None
        if backlog_s > 0:
            # A queue of one, filled: the kernel drops every later SYN until it is accepted.
            self.listener.listen(0)
            self._filler = socket.create_connection(("127.0.0.1", self.port), timeout=2)
        else:
            self.listener.listen(16)
        self._thread = threading.Thread(target=self._accept, args=(backlog_s,), daemon=True,
                                        name=f"slow-front-{self.port}")

    def __enter__(self) -> "SlowFront":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        try:
            self.listener.shutdown(socket.SHUT_RDWR)   # wakes the accept(); a close alone does not
        except OSError:
            pass
        self.listener.close()
        if self._filler:
            self._filler.close()
        self._thread.join(10)

    # -- the server's side ---------------------------------------------------

    def _accept(self, backlog_s: float) -> None:
        if backlog_s > 0:
            if self.stopping.wait(backlog_s):
                return
            try:
                self.listener.accept()[0].close()       # the filler: the queue has room again
            except OSError:
                return
            self.listener.listen(16)
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _more(self, until: float, pause: float = TRICKLE_S) -> bool:
        return not self.stopping.wait(pause) and time.monotonic() < until

    def _serve(self, conn: socket.socket) -> None:
        until = time.monotonic() + self.give_up_s
        slow = not self.healthy
        try:
            with conn:
                if self.context:
                    if self.handshake and slow:
                        return self._stall_handshake(conn, until)
                    conn = self.context.wrap_socket(conn, server_side=True)
                request = self._read_request(conn, until, slow)
                if request is None:
                    return
                answer = self._forward(request)
                self._answer(conn, answer, until, slow)
        except OSError:
            pass        # the client gave up: that is the point

    def _stall_handshake(self, conn: socket.socket, until: float) -> None:
        hello = conn.recv(65536)
        if self.handshake == "trickle":
            # The server's half of a real handshake, made in memory, a byte at a time.
            incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            tls = self.context.wrap_bio(incoming, outgoing, server_side=True)
            incoming.write(hello)
            try:
                tls.do_handshake()
            except ssl.SSLWantReadError:
                pass
            data = outgoing.read()
            for i in range(len(data)):
                if not self._more(until):
                    return
                conn.sendall(data[i:i + 1])
        while self._more(until):   # silent (or all sent): say nothing more
            pass

    def _read_request(self, conn, until: float, slow: bool) -> bytes | None:
        # The head as it comes; then the body, paced when asked: `n` bytes
        # (all of them) after each pause.
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk or time.monotonic() > until:
                return None
            data += chunk
        head = data.split(b"\r\n\r\n", 1)[0]
        length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")[1:]
                       if line.lower().startswith(b"content-length:")), 0)
        need = len(head) + 4 + length
        n, pause = self.read_pace if (slow and self.read_pace) else (65536, 0.0)
        while len(data) < need:
            if pause and not self._more(until, pause):
                return None
            if time.monotonic() > until:
                return None
            want = min(n, need - len(data)) if pause else need - len(data)
            got = b""
            while len(got) < want:       # a TLS socket takes no MSG_WAITALL
                chunk = conn.recv(min(65536, want - len(got)))
                if not chunk:
                    return None
                got += chunk
                if not pause:
                    break
            data += got
        return data

    def _forward(self, request: bytes) -> bytes:
        self.requests += 1
        with socket.create_connection(("127.0.0.1", self.backend.port), timeout=10) as up:
            up.sendall(request)
            data, need = b"", None
            while need is None or len(data) < need:
                chunk = up.recv(65536)
                if not chunk:
                    break
                data += chunk
                if need is None and b"\r\n\r\n" in data:
                    head = data.split(b"\r\n\r\n", 1)[0]
                    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")[1:]
                                   if line.lower().startswith(b"content-length:")), 0)
                    need = len(head) + 4 + length
        head, _, body = data.partition(b"\r\n\r\n")
        status, _, headers = head.partition(b"\r\n")
        return status + b"\r\nConnection: close\r\n" + headers + b"\r\n\r\n" + body

    def _answer(self, conn, answer: bytes, until: float, slow: bool) -> None:
        if not slow or self.answer is None:
            conn.sendall(answer)
            return
        head, _, body = answer.partition(b"\r\n\r\n")
        at = 0 if self.answer == "head" else len(head) + 4
        conn.sendall(answer[:at])
        for i in range(at, len(answer)):
            if not self._more(until):
                return
            conn.sendall(answer[i:i + 1])
