"""The HTTP destination's wire: answers read whole within a deadline, and
bodies decoded in whatever charset a server sends (agent/deliver/http.py).

Apart from http.py because it is about bytes on a socket, not the API.
"""

from __future__ import annotations

import codecs
import functools
import http.client
import io
import re
import time
import types

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from agent.redact import holds_secret, redact


# -- bodies in any charset ------------------------------------------------------------

_BOMS = ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"), (codecs.BOM_UTF8, "utf-8"),
         (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
_CHARSET = re.compile(r"""charset\s*=\s*["']?([A-Za-z0-9._:-]+)""", re.IGNORECASE)
# Chinese systems that say gb2312 or gbk often send characters only GB18030 has.
_WIDER = {"gb2312": "gb18030", "gbk": "gb18030"}


def body_text(data: bytes, content_type: str | None) -> str:
    """An answer's body as text, redacted: decoded by its BOM, else its
    declared charset, else UTF-16 when NULs say so, else UTF-8, else GB18030,
    else UTF-8 with replacement characters. When the text kept, written back
    in the charset it was read in, still spells a secret (a charset that does
    not match the bytes turns an ASCII token into other letters), the UTF-8
    reading is kept instead, redacted as well."""
    codec, skip = _codec_of(data, content_type)
    text = redact(data[skip:].decode(codec, "replace"))
    if codec != "utf-8" and holds_secret(text.encode(codec, "replace").decode("utf-8", "replace")):
        text = redact(data.decode("utf-8", "replace"))
    return text


def _codec_of(data: bytes, content_type: str | None) -> tuple[str, int]:
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return codec, len(bom)
    m = _CHARSET.search(content_type or "")
    if m:
        try:
            b"a".decode(m.group(1), "replace")      # a text encoding (not base64, rot13...)
            name = codecs.lookup(m.group(1)).name
            return _WIDER.get(name, name), 0
        except LookupError:
            pass
    if b"\0" in data[:512]:
        odd, even = data[1:512:2].count(0), data[0:512:2].count(0)
        if odd > 4 * even and odd * 4 > len(data[:512]) // 2:
            return "utf-16-le", 0
        if even > 4 * odd and even * 4 > len(data[:512]) // 2:
            return "utf-16-be", 0
    for codec in ("utf-8", "gb18030"):
        try:
            data.decode(codec)
            return codec, 0
        except UnicodeDecodeError:
            pass
    return "utf-8", 0


# -- answers with a deadline ------------------------------------------------------------
# urllib3's read timeout bounds each socket read; a server sending a byte
# just under it keeps an answer coming forever. Here every read of an
# answer (status line, headers, body) waits at most what is left of the
# read timeout counted from the moment the answer is awaited.

class _DeadlineReader(io.RawIOBase):
    """A socket's bytes, each read waiting at most until `deadline` (monotonic)."""

    def __init__(self, sock, deadline: float):
        super().__init__()
        self._sock, self._deadline = sock, deadline
        self._raw = sock.makefile("rb", buffering=0)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int | None:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the answer did not arrive in full in time")
        timeout = self._sock.gettimeout()
        self._sock.settimeout(left if timeout is None else min(left, timeout))
        try:
            return self._raw.readinto(buffer)
        finally:
            try:
                self._sock.settimeout(timeout)
            except OSError:         # closed meanwhile: nothing left to restore
                pass

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


class _TimedResponse(http.client.HTTPResponse):
    def __init__(self, sock, debuglevel: int = 0, method=None, url=None, *, deadline: float | None = None):
        if deadline is not None:    # all HTTPResponse asks of its socket is makefile("rb")
            reader = io.BufferedReader(_DeadlineReader(sock, deadline))
            sock = types.SimpleNamespace(makefile=lambda *_, **__: reader)
        super().__init__(sock, debuglevel, method, url)


class _TimedConnection(HTTPConnection):
    """urllib3's connection whose answer must be read whole within the read
    timeout (urllib3 sets `timeout` to it just before `getresponse`)."""

    def getresponse(self):
        limit = self.timeout
        deadline = time.monotonic() + limit if isinstance(limit, (int, float)) and limit > 0 else None
        self.response_class = functools.partial(_TimedResponse, deadline=deadline)
        return super().getresponse()


# The same for TLS, and the pools that make these connections.
_TimedTLSConnection = type("_TimedTLSConnection", (_TimedConnection, HTTPSConnection), {})
TimedPool = type("TimedPool", (HTTPConnectionPool,), {"ConnectionCls": _TimedConnection})
TimedTLSPool = type("TimedTLSPool", (HTTPSConnectionPool,), {"ConnectionCls": _TimedTLSConnection})
