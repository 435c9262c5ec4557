"""One deadline for a whole send, enforced on the socket: the clients of
every network adapter that talks over plain sockets (the notify channels'
smtplib and urllib3, the HTTP destination's urllib3) read and write through
the sockets made here.

A socket timeout bounds one call, not a send: an SMTP server sending a
"220-" continuation line every 2 s, or a proxy sending its status line and
headers a byte a second, keeps a client reading for ever while every recv
is quick; and a client that gives the connect, the TLS handshake, the
request's write and the answer a timeout each is held for the sum of them
(a server slow at each, never too slow at any). One stuck send holds its
thread: all [[notify]] entries share one, and a destination's worker is
what a stop waits for. Here every blocking call (connect, send, recv, the
TLS handshake, TLS reads and writes) first sets the socket's timeout to
what is left of the send's deadline, and raises TimeoutError once it is
spent. No thread, no signal: the operating system's own timeouts do the
waiting.

    with send_deadline(timeout_s) as deadline:
        sock = open_connection(host, port, timeout=timeout_s)  # a DeadlineSocket
        ...                                  # TLS through tls_context(...)
    # after an error: deadline.spent() tells the deadline from other failures

For urllib3, `DeadlinePool` and `DeadlineTLSPool` (pool_classes_by_scheme of
a PoolManager made with ssl_context=tls_context(...)) open their
connections here.

The deadline is held in a context variable (per thread, like decimal's
context) rather than on each socket: the TLS handshake runs inside
ssl's socket constructor, before anything could be set on the new socket,
and urllib3 reuses a connection across sends, each with its own deadline.
Outside `send_deadline` these sockets behave as plain ones.
Not bounded: the name lookup (getaddrinfo has no timeout to set).
"""

from __future__ import annotations

import contextvars
import socket
import ssl
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError

_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("send_deadline", default=None)
_UNSET = object()


@dataclass(frozen=True)
class Deadline:
    """The moment (time.monotonic()) a send must be over by."""

    at: float

    def spent(self) -> bool:
        """True once the moment has come: an error seen now is the deadline's."""
        return time.monotonic() >= self.at


@contextmanager
def send_deadline(seconds: float) -> Iterator[Deadline]:
    """Within the block, every blocking call on a DeadlineSocket or
    DeadlineSSLSocket of this thread waits at most until `seconds` from now
    in all, then raises TimeoutError (before the call, once spent), however
    the server trickles. Nested blocks keep the earlier deadline."""
    outer = _DEADLINE.get()
    at = time.monotonic() + max(0.0, seconds)
    token = _DEADLINE.set(at if outer is None else min(outer, at))
    try:
        yield Deadline(_DEADLINE.get())
    finally:
        _DEADLINE.reset(token)


class _Bounded:
    # The part both socket classes share. `_wanted` is the timeout the client
    # asked for (settimeout); each call runs under the smaller of it and the
    # time left, so a client's own, longer timeout can never outlast the send.

    def settimeout(self, value: float | None) -> None:
        self._wanted = value
        super().settimeout(value)

    def gettimeout(self) -> float | None:
        wanted = getattr(self, "_wanted", _UNSET)
        return super().gettimeout() if wanted is _UNSET else wanted

    def _arm(self) -> None:
        at = _DEADLINE.get()
        if at is None:
            return
        left = at - time.monotonic()
        if left <= 0:
            raise TimeoutError("the send's deadline (timeout_s) is spent")
        wanted = self.gettimeout()
        if wanted == 0:            # non-blocking: the call cannot wait, nothing to bound
            return
        super().settimeout(left if wanted is None else min(wanted, left))

    def connect(self, address) -> None:
        self._arm()
        return super().connect(address)

    def send(self, data, flags: int = 0) -> int:
        self._arm()
        return super().send(data, flags)

    def sendall(self, data, flags: int = 0) -> None:
        self._arm()          # the C sendall keeps one deadline for the whole call: its timeout
        return super().sendall(data, flags)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        self._arm()
        return super().recv(bufsize, flags)

    def recv_into(self, buffer, nbytes: int = 0, flags: int = 0) -> int:
        self._arm()          # makefile()'s reader (readline of a reply or header) reads through this
        return super().recv_into(buffer, nbytes, flags)


class DeadlineSocket(_Bounded, socket.socket):
    """A TCP socket whose every blocking call keeps to the current send_deadline."""


class DeadlineSSLSocket(_Bounded, ssl.SSLSocket):
    """A TLS socket (made by a tls_context) whose handshake, reads and writes
    keep to the current send_deadline; ssl's C calls each keep one deadline
    per call, which is the timeout _arm sets."""

    def do_handshake(self, block: bool = False) -> None:
        self._arm()
        return super().do_handshake(block)

    def read(self, len: int = 1024, buffer=None):
        self._arm()
        return super().read(len, buffer)

    def write(self, data) -> int:
        self._arm()
        return super().write(data)


def open_connection(host: str, port: int, *, timeout: float | None,
                    source_address: tuple[str, int] | None = None,
                    socket_options=()) -> DeadlineSocket:
    """A connected DeadlineSocket to (host, port): each address the name
    resolves to tried in turn, all of them within the current
    send_deadline (so a name with many black-holed addresses costs the
    deadline, not `timeout` per address), each connect waiting at most
    `timeout`. Raises the last OSError (TimeoutError once the deadline is
    spent, socket.gaierror when the name does not resolve)."""
    error: OSError | None = None
    for family, kind, proto, _, address in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM):
        sock = DeadlineSocket(family, kind, proto)
        try:
            for level, option, value in socket_options or ():
                sock.setsockopt(level, option, value)
            sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(address)
            return sock
        except OSError as e:     # the next address; once the deadline is spent its connect raises at once
            sock.close()
            error = e
    raise error or OSError(f"getaddrinfo returned no address for {host}")


def tls_context(*, verify: bool = True, ca_file: str | None = None) -> ssl.SSLContext:
    """A client TLS context whose sockets are DeadlineSSLSocket: the system's
    trusted CAs (only `ca_file`'s when given), host name checked; with
    verify=False neither the certificate nor the name is checked."""
    context = ssl.create_default_context(cafile=ca_file)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.sslsocket_class = DeadlineSSLSocket
    return context


# -- urllib3 on these sockets ----------------------------------------------------------

class _Connection(HTTPConnection):
    # urllib3's connection on a DeadlineSocket (its TLS sockets come from the
    # pool's tls_context); connect errors mapped as urllib3 maps its own.
    def _new_conn(self):
        try:
            return open_connection(self._dns_host, self.port, timeout=self.timeout,
                                   source_address=self.source_address, socket_options=self.socket_options)
        except OSError as e:
            raise NewConnectionError(self, f"Failed to establish a new connection: {type(e).__name__}: {e}") from e


class _TLSConnection(_Connection, HTTPSConnection):
    pass


class DeadlinePool(HTTPConnectionPool):
    """urllib3's pool for http://, its connections on DeadlineSockets."""

    ConnectionCls = _Connection


class DeadlineTLSPool(HTTPSConnectionPool):
    """urllib3's pool for https://; give its PoolManager ssl_context=tls_context(...)
    so that the TLS sockets are DeadlineSSLSockets too."""

    ConnectionCls = _TLSConnection
