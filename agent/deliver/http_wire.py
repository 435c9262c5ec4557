"""The HTTP destination's answers: bodies decoded in whatever charset a
server sends, redacted (agent/deliver/http.py). How long a send may take is
agent/deadline.py's: one deadline on the socket for all of it.

Apart from http.py because it is about bytes, not the API.
"""

from __future__ import annotations

import codecs
import re

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
