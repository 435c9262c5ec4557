"""Names and header text from e-mail written every way there is.

RFC 2231 (`filename*=gbk''…`, continuations split mid-character), RFC 2047
(`=?gb18030?B?…?=`) and raw 8-bit GBK. The stdlib's default policy reads
the well-formed cases; where it garbles, the raw header is decoded the
compat32 way (`decode_params`, `decode_header`).
"""

from __future__ import annotations

import email.header
import email.utils
import re
import unicodedata
from email.message import Message

from agent.extract.sniff import EXTENSIONS, MEDIA_TYPES  # noqa: F401 - MEDIA_TYPES re-exported to agent.mail_parts

_MAX_NAME_BYTES = 200
_UNSAFE_NAME_CHARS = str.maketrans({c: "_" for c in '/\\:*?"<>|'})
_MAX_HEADER_CHARS = 998  # RFC 5322 line limit; longer is abuse, not a subject
# In a display name these would let it pass for an address or a second sender.
_NAME_SPECIALS = frozenset('<>",;@\\')
# GBK and GB2312 are subsets of GB18030; senders often declare the small one
# and use characters only the big one has.
_CHARSET_ALIASES = {"gb2312": "gb18030", "gbk": "gb18030", "cp936": "gb18030",
                    "x-gbk": "gb18030", "euc-cn": "gb18030", "gb_2312-80": "gb18030"}


def filename_of(part: Message) -> str | None:
    """The part's file name, decoded as well as it can be, or None.

    The default policy is asked first. It decodes each RFC 2231 piece on
    its own, so a character split across pieces comes out as the wrong
    character without any replacement mark; we therefore also decode the
    raw header the compat32 way (join, then decode) and prefer that
    whenever it decodes strictly.
    """
    try:
        name = part.get_filename()
    except Exception:  # noqa: BLE001 - default-policy header parser bugs
        name = None
    name = name if isinstance(name, str) else None
    fallback, strict = _filename_from_raw(part)
    if fallback is not None and (strict or name is None or _garbled(name)):
        return fallback
    return name


def _garbled(text: str) -> bool:
    return "\ufffd" in text or "=?" in text or any("\udc80" <= c <= "\udcff" for c in text)


def _filename_from_raw(part: Message) -> tuple[str | None, bool]:
    raw = {k.lower(): v for k, v in part.raw_items() if isinstance(v, str)}
    for header, param in (("content-disposition", "filename"), ("content-type", "name")):
        value = raw.get(header)
        found = None if value is None else _raw_param(value, param)
        if found is not None:
            return found
    return None, False


def _raw_param(value: str, wanted: str) -> tuple[str, bool] | None:
    """compat32's way: split parameters, join RFC 2231 pieces, then decode."""
    params = [("", "")]
    for piece in _split_params(value)[1:]:
        key, eq, val = piece.partition("=")
        if eq:
            params.append((key.strip().lower(), val.strip()))
    try:
        decoded = email.utils.decode_params(params)
    except Exception:  # noqa: BLE001 - decode_params sorts None against int on `name*` + `name*0`
        decoded = [(k.rstrip("*"), v) for k, v in params]
    matches = [val for key, val in decoded[1:] if key == wanted]
    # RFC 6266: the extended `filename*` wins over a plain `filename` fallback.
    matches.sort(key=lambda val: not isinstance(val, tuple))
    if not matches:
        return None
    val = matches[0]
    if isinstance(val, tuple):
        charset, _lang, text = val
        octets = email.utils.unquote(text).encode("latin-1", errors="surrogateescape")
        return decode_bytes(octets, charset)
    return _decode_words(recover_8bit(email.utils.unquote(val)))


def _split_params(value: str) -> list[str]:
    pieces, current, quoted, escaped = [], [], False, False
    for ch in value.replace("\r", "").replace("\n", ""):
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == ";" and not quoted:
            pieces.append("".join(current))
            current = []
            continue
        current.append(ch)
    pieces.append("".join(current))
    return pieces


def decode_bytes(octets: bytes, charset: str | None) -> tuple[str, bool]:
    """Decode with the declared charset, else UTF-8, else GB18030; the flag says strictly."""
    tried = []
    if charset:
        tried.append(_CHARSET_ALIASES.get(charset.strip().lower(), charset.strip()))
    for codec in [*tried, "utf-8", "gb18030"]:
        try:
            return octets.decode(codec), True
        except (LookupError, UnicodeDecodeError, ValueError):
            continue
    return octets.decode("utf-8", errors="replace"), False


def recover_8bit(text: str) -> str:
    """Undo the parser's surrogateescape: raw bytes back to UTF-8 or GBK text."""
    if not any("\udc80" <= c <= "\udcff" for c in text):
        return text
    return decode_bytes(text.encode("utf-8", errors="surrogateescape"), None)[0]


def _decode_words(text: str, quote: bool = False) -> tuple[str, bool]:
    """Decode RFC 2047 encoded-words, mapping GBK names to GB18030; with
    `quote`, a decoded word holding address punctuation is quoted."""
    if "=?" not in text:
        return text, "\ufffd" not in text
    try:
        chunks = email.header.decode_header(text)
    except Exception:  # noqa: BLE001 - HeaderParseError and friends on bad base64
        return text, False
    out, strict = [], True
    for at, (chunk, charset) in enumerate(chunks):
        if isinstance(chunk, str):
            out.append(chunk)
        elif charset is None:
            out.append(chunk.decode("raw-unicode-escape", errors="replace"))
        else:
            piece, ok = decode_bytes(chunk, charset)
            if quote:
                after = chunks[at + 1][0] if at + 1 < len(chunks) else b""
                inside = bool(out) and out[-1].endswith('"') and after[:1] in (b'"', '"')
                piece = _quoted(piece, inside)
            out.append(piece)
            strict = strict and ok
    return "".join(out), strict


def header_text(msg: Message, name: str) -> str | None:
    """A header decoded to one line of text without control characters, or None."""
    raw = next((v for k, v in msg.raw_items() if k.lower() == name.lower() and isinstance(v, str)), None)
    if raw is None:
        return None
    text, strict = _decode_words(recover_8bit(raw))
    if not strict:  # undecodable words: let the default policy try
        try:
            text = str(msg[name])
        except Exception:  # noqa: BLE001 - header parser bugs on hostile input
            pass
    return _one_line(text)[:_MAX_HEADER_CHARS] or None


def sender_text(msg: Message) -> str | None:
    """The From header as header_text shows it, except that an encoded-word
    decoding to `<`, `>`, `"`, `,`, `;`, `@` or `\\` is shown quoted, so the
    real address is the one outside the quotes (`"Boss <ceo@corp>" <evil@x>`,
    never `Boss <ceo@corp> <evil@x>`); None when absent.
    """
    raw = next((v for k, v in msg.raw_items() if k.lower() == "from" and isinstance(v, str)), None)
    if raw is None:
        return None
    text, strict = _decode_words(recover_8bit(raw), quote=True)
    shown = header_text(msg, "From") if not strict else (_one_line(text)[:_MAX_HEADER_CHARS] or None)
    # Two bare <address>es (`老板 <ceo@corp> <evil@x>`, raw 8-bit, no quotes
    # to tell a name from an address): which one sent it cannot be told.
    if shown and len(_ANGLE_ADDR_RE.findall(_UNQUOTED_RE.sub("", shown))) > 1:
        shown += " (several addresses in From: the sender cannot be told)"
    return shown


_ANGLE_ADDR_RE = re.compile(r"<[^<>\s]*@[^<>\s]*>")
_UNQUOTED_RE = re.compile(r'"(?:[^"\\]|\\.)*"')  # quoted display names, whose <...> is text


def _quoted(text: str, inside_quotes: bool) -> str:
    """A decoded word as a quoted-string's content (RFC 5322 escapes), in quotes
    unless the raw header already put it in some."""
    if not any(c in text for c in _NAME_SPECIALS):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return escaped if inside_quotes else f'"{escaped}"'


def _one_line(text: str) -> str:
    return " ".join("".join(" " if unicodedata.category(c).startswith("C") else c for c in text).split())


def date_text(msg: Message) -> str | None:
    """The Date header as ISO 8601 when parseable, else its text, or None."""
    text = header_text(msg, "Date")
    if text is None:
        return None
    try:
        return email.utils.parsedate_to_datetime(text).isoformat()
    except (TypeError, ValueError, IndexError, OverflowError):
        return text


def sanitise_filename(name: str | None, fmt: str = "unknown", index: int = 0) -> str:
    """Return `name` as one safe path component of at most 200 UTF-8 bytes.

    Only the last path component is kept (so `../` and absolute paths cannot
    escape); control characters and characters Windows shares reject are
    replaced; leading dots and spaces go (no hidden files). An empty result
    becomes `attachment-<index>.<ext>` with the extension of `fmt`.
    """
    text = unicodedata.normalize("NFC", recover_8bit(name or ""))
    text = "".join("_" if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") else c
                   for c in text)
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    text = text.strip(" \"").translate(_UNSAFE_NAME_CHARS).strip(" .")
    if not text or set(text) <= {"_", " ", "."}:
        ext = EXTENSIONS[fmt][0] if fmt in MEDIA_TYPES else "bin"
        text = f"attachment-{index}.{ext}"
    return limit_bytes(text, _MAX_NAME_BYTES)


def limit_bytes(text: str, limit: int) -> str:
    """`text` cut to `limit` UTF-8 bytes, keeping a short extension."""
    if len(text.encode("utf-8")) <= limit:
        return text
    stem, dot, ext = text.rpartition(".")
    if not dot or not stem or len(ext.encode("utf-8")) > 16:
        stem, ext = text, ""
    suffix = f".{ext}" if ext else ""
    room = limit - len(suffix.encode("utf-8"))
    cut = stem.encode("utf-8")[:room].decode("utf-8", errors="ignore")
    return cut + suffix


def display_text(text: str) -> str:
    """`text` for a refusal's name: control characters as `_`, at most 200 UTF-8 bytes."""
    clean = "".join("_" if unicodedata.category(c).startswith("C") else c for c in text)
    return limit_bytes(clean, _MAX_NAME_BYTES)


# The stdlib's header parser has had assorted bugs on hostile headers
# (IndexError, AttributeError...); these wrappers turn one into "unknown".

def content_type(part: Message) -> str:
    """The part's content type, lower case; application/octet-stream when unreadable."""
    try:
        return part.get_content_type()
    except Exception:  # noqa: BLE001 - see above
        return "application/octet-stream"


def disposition(part: Message) -> str:
    """The part's Content-Disposition (inline, attachment), "" when absent or unreadable."""
    try:
        return part.get_content_disposition() or ""
    except Exception:  # noqa: BLE001 - see above
        return ""


def display_name(part: Message) -> str:
    """The part's file name made safe, else its content type (what a refusal names it by)."""
    name = filename_of(part)
    return sanitise_filename(name, "unknown") if name else content_type(part)
