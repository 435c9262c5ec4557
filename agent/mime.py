"""Bounded MIME reading: one message's bytes → parts (headers, raw body slice)
→ each body decoded from its transfer encoding.

Why not the stdlib parser: `email.feedparser` keeps every line of a body as
its own str; a 39 MB quoted-printable body made of soft line breaks (13 M
lines) peaked near 1 GB. Here a body is never split into lines: parts are
spans (offsets) of the message, delimiters are found with `bytes.find`,
and decoding is one C call over a slice, so memory stays a small multiple of
the message whatever its shape. Only header blocks (at most
MAX_HEADER_BYTES each) go through the stdlib, which keeps its RFC 2047 /
RFC 2231 handling of names. Delimiters and the header/body split follow the
stdlib's rules (a delimiter line is `--boundary`, optional `--`, optional
blanks; a line that is not a header starts the body).
"""

from __future__ import annotations

import binascii
import email.parser
import re
import unicodedata
from dataclasses import dataclass
from email.message import Message
from email.policy import default as default_policy

from agent.mailnames import filename_of

MAX_HEADER_BYTES = 256 * 1024
# The stdlib's own test for "this line is still a header" (email.feedparser.headerRE).
_HEADER_LINE = re.compile(rb"(From |[\041-\071\073-\176]*:|[\t ])")
_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
_B64_JUNK = bytes(b for b in range(256) if b not in _B64_ALPHABET)
_CHUNK = 1 << 20
_UU = ("x-uuencode", "uuencode", "uue", "x-uue")
_NOT_BLANK = re.compile(rb"\S")
# An mbox's next message: an empty line, then a `From ` envelope line.
_MBOX_SEPARATOR = re.compile(rb"\r?\n\r?\n(From )")
_FIELD_LINE = re.compile(rb"[\041-\071\073-\176]+:")
# A message's first line: a header field, or an mbox's `From ` envelope.
_MESSAGE_START = re.compile(rb"From |" + _FIELD_LINE.pattern)
# A line of a header block: that, or a folded continuation.
_BLOCK_LINE = re.compile(rb"From |" + _FIELD_LINE.pattern + rb"|[ \t]")
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_ENVELOPE_TIME = re.compile(rb"\d{1,2}:\d{2}(?::\d{2})?\s.*\d{4}|\d{4}.*\d{1,2}:\d{2}")
# Fields that make a header block a message's (two of them, to tell it from a MIME part's).
_MESSAGE_FIELDS = frozenset({"from", "to", "cc", "subject", "date", "message-id", "mime-version", "received"})
# Trace fields a delivery agent puts first in a stored message.
_TRACE_FIELDS = frozenset({"return-path", "delivered-to"})
# A preamble longer than a mailer's "This is a multi-part message" note is read as hiding something.
_MAX_PREAMBLE_NOTE = 1024
_PART_FIELD = re.compile(rb"(?:^|\n)content-(?:type|transfer-encoding|disposition)\s*:", re.IGNORECASE)
_MAX_HIDDEN_NAMED = 20


class HeaderTooLarge(Exception):
    """A header block longer than MAX_HEADER_BYTES (no blank line in reach)."""


@dataclass(frozen=True)
class Span:
    """Bytes `start:end` of `data`, without a copy."""

    data: bytes
    start: int
    end: int

    def __len__(self) -> int:
        return self.end - self.start

    def view(self) -> memoryview:
        """The span as a memoryview (no copy)."""
        return memoryview(self.data)[self.start:self.end]


def whole(data: bytes) -> Span:
    """All of `data` as a span."""
    return Span(data, 0, len(data))


@dataclass(frozen=True)
class Part:
    """One MIME entity: its headers (a header-only Message, for the stdlib's
    header API) and its body, still transfer-encoded, as a span of the message."""

    headers: Message
    body: Span


def read_part(span: Span) -> Part:
    """Split one entity into headers and body without copying the body.

    Headers end at the first empty line (dropped) or at the first line that
    is not a header (kept as the body's first line), as the stdlib reads
    them. Raises HeaderTooLarge when neither comes within MAX_HEADER_BYTES.
    """
    data, start, end = span.data, span.start, span.end
    reach = min(end, start + MAX_HEADER_BYTES)
    pos = start
    while pos < end:
        nl = data.find(b"\n", pos, reach)
        if nl < 0:
            if reach < end:
                raise HeaderTooLarge(f"header block longer than {MAX_HEADER_BYTES} bytes")
            line_end = end
        else:
            line_end = nl + 1
        line = data[pos:min(line_end, pos + 80)]
        if line in (b"\n", b"\r\n") or (line == b"\r" and line_end == end):
            return Part(_headers(data[start:pos]), Span(data, line_end, end))
        if not _HEADER_LINE.match(line):
            return Part(_headers(data[start:pos]), Span(data, pos, end))
        pos = line_end
    return Part(_headers(data[start:end]), Span(data, end, end))


def _headers(block: bytes) -> Message:
    return email.parser.BytesParser(policy=default_policy).parsebytes(block, headersonly=True)


def boundary_of(headers: Message) -> bytes | None:
    """The multipart boundary as bytes, or None when absent or unusable."""
    try:
        text = headers.get_boundary()
    except Exception:  # noqa: BLE001 - hostile parameters upset the stdlib's parser
        return None
    if not text:
        return None
    try:
        return text.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape")


@dataclass(frozen=True)
class Multipart:
    """A multipart body cut at its delimiter lines: the parts, and the text
    outside them: the preamble (before the first delimiter) and the
    epilogue (after the close delimiter; None when there is none)."""

    parts: list[Span]
    preamble: Span
    epilogue: Span | None


def split_multipart(body: Span, boundary: bytes, limit: int) -> Multipart | None:
    """The bodies between delimiter lines of `boundary`, at most `limit` of
    them; None when no delimiter line is found (the stdlib then reads the
    part as a leaf). The line break before a delimiter belongs to it; a
    missing close delimiter ends the last part at the end of `body`. The
    preamble and the epilogue are returned apart, never read as parts: what
    they hold is the caller's to judge (mail programs show neither)."""
    data, end = body.data, body.end
    sep = b"--" + boundary
    parts: list[Span] = []
    current: int | None = None  # where the part being read began
    pos = body.start
    first_line: int | None = None
    epilogue: Span | None = None
    while len(parts) < limit:
        hit = _next_delimiter(data, sep, pos, body.start, end)
        if hit is None:
            break
        line_start, after, closing = hit
        if first_line is None:
            first_line = line_start
        if current is not None:
            parts.append(Span(data, current, max(current, _strip_eol(data, current, line_start))))
        current = None if closing else after
        pos = after
        if closing:
            epilogue = Span(data, after, end)
            break
    if first_line is None:
        return None
    if current is not None and len(parts) < limit:
        parts.append(Span(data, current, end))
    preamble = Span(data, body.start, max(body.start, _strip_eol(data, body.start, first_line)))
    return Multipart(parts, preamble, epilogue)


def is_blank(span: Span) -> bool:
    """True when `span` holds only whitespace (checked in place, no copy)."""
    return _NOT_BLANK.search(span.data, span.start, span.end) is None


def looks_like_message(span: Span) -> bool:
    """Does `span` start with a message's header block (two of its usual fields)?"""
    try:
        headers = read_part(span).headers
    except HeaderTooLarge:
        return False
    return len({k.lower() for k in headers.keys()} & _MESSAGE_FIELDS) >= 2


def starts_like_message(data: bytes) -> bool:
    """Does `data` begin as a message does: a header field, or an mbox's
    `From ` envelope line? (An invoice file begins otherwise.)"""
    return _MESSAGE_START.match(data) is not None


def message_head(head: bytes) -> bool:
    """Are a file's first bytes `head` a message's header block? Every line
    up to the blank line that ends it is a header line, and it names two of
    a message's usual fields, or runs past `head` (a server's trace headers,
    DKIM and ARC signatures, can fill the first 4 KB before From and
    Subject). Unlike `looks_like_message`, which reads a whole block, this
    judges a head cut anywhere."""
    if not starts_like_message(head):
        return False
    block, *after = _HEAD_END.split(head, maxsplit=1)
    lines = block.split(b"\n")
    if not after:
        lines = lines[:-1]  # the last line may be cut by the head's end
    if not all(_BLOCK_LINE.match(line) for line in lines if line.strip()):
        return False
    names = {line.split(b":", 1)[0].strip().lower().decode("latin-1") for line in lines if b":" in line[:80]}
    return not after or len(names & (_MESSAGE_FIELDS | _TRACE_FIELDS)) >= 2


# (name, is a part: the name is its file name (None if it has none), else says where; code; detail)
Hidden = tuple[str | None, bool, str, str]


def outside_parts(split: Multipart, ctype: str, boundary: bytes,
                  outermost: bool) -> tuple[Span | None, list[Hidden]]:
    """What `split` holds outside its parts, every byte accounted for: a
    further message after the outermost multipart's close delimiter
    (messages written one after another) is returned to be read; any other
    text after it is `trailing-content`, and a preamble holding a part's
    header or more than a short note is `preamble-content`. Parts written
    there with the multipart's own delimiters are named one by one (up to
    20), else the text's size and start are given. Mail programs show none
    of this, so none of it is taken."""
    following, hidden = None, []
    epilogue = split.epilogue
    if epilogue is not None and not is_blank(epilogue):
        start = epilogue.start
        while epilogue.data[start] in (10, 13):  # not blank: something else comes first
            start += 1
        rest = Span(epilogue.data, start, epilogue.end)
        if outermost and looks_like_message(rest):
            following = rest
        else:
            hidden += _hidden(rest, ctype, boundary, "trailing-content", "after the close delimiter of")
    preamble = split.preamble
    if len(preamble) > _MAX_PREAMBLE_NOTE and not is_blank(preamble) \
            or _PART_FIELD.search(preamble.view()[:8192].tobytes()):
        hidden += _hidden(preamble, ctype, boundary, "preamble-content", "before the first delimiter of")
    return following, hidden


def _hidden(span: Span, ctype: str, boundary: bytes, code: str, where: str) -> list[Hidden]:
    inner = split_multipart(span, boundary, _MAX_HIDDEN_NAMED)
    found: list[Hidden] = []
    for body in inner.parts if inner is not None else []:
        try:
            name = filename_of(read_part(body).headers)
        except HeaderTooLarge:
            name = None
        found.append((name, True, code, f"a part {where} {ctype}, which mail programs do not show; not read"))
    label = f"({where.split()[0]} {ctype})"
    if len(found) == _MAX_HIDDEN_NAMED:
        found.append((label, False, code, f"more parts {where} {ctype} than the {_MAX_HIDDEN_NAMED} named; not read"))
    if not found:
        text = span.view()[:120].tobytes().decode("utf-8", "replace")
        text = " ".join("".join(" " if unicodedata.category(c)[0] == "C" else c for c in text).split())
        found.append((label, False, code, f"{len(span)} bytes {where} {ctype}, which mail programs do not show; "
                                          f"not read: {text!r}"))
    return found


def split_mbox(data: bytes) -> list[Span]:
    """An mbox's messages, or [all of `data`] when it is not one.

    A file is an mbox when its first line is a `From ` envelope line; the
    next message starts at a `From ` envelope line (with its time) after an
    empty line and followed by a header line (mboxrd and mboxo quote body
    lines as `>From `; a base64 body cannot hold one; an unquoted "From now
    on" in a text body has no time). Each span starts at its envelope line,
    which the header reader takes as the stdlib does (a Unix "From" line).
    """
    if not data.startswith(b"From "):
        return [whole(data)]
    spans, start = [], 0
    for hit in _MBOX_SEPARATOR.finditer(data):
        line_end = data.find(b"\n", hit.end())
        # An envelope line carries a time (RFC 4155: "From addr asctime"): a
        # body's "From now on, ..." after a blank line is no new message.
        if line_end > 0 and _ENVELOPE_TIME.search(data, hit.end(), line_end) \
                and _FIELD_LINE.match(data, line_end + 1):
            spans.append(Span(data, start, hit.start()))
            start = hit.start(1)
    spans.append(Span(data, start, len(data)))
    return spans


def _next_delimiter(data: bytes, sep: bytes, pos: int, first: int, end: int) -> tuple[int, int, bool] | None:
    """(start of the delimiter line, start of the line after it, is close) of
    the first delimiter line at or after `pos` (lines begin at `first` or
    after a line feed), else None."""
    while pos < end:
        if (pos == first or data[pos - 1] == 10) and data.startswith(sep, pos, end):
            at = pos
        else:
            at = data.find(b"\n" + sep, pos, end)
            if at < 0:
                return None
            at += 1
        rest = at + len(sep)
        closing = data.startswith(b"--", rest, end)
        if closing:
            rest += 2
        while rest < end and data[rest] in (32, 9):
            rest += 1
        if rest >= end:
            return at, end, closing
        if data.startswith(b"\r\n", rest, end):
            return at, rest + 2, closing
        if data[rest] in (10, 13):
            return at, rest + 1, closing
        pos = at + 1  # "--boundary" followed by more text: not a delimiter
    return None


def _strip_eol(data: bytes, begin: int, line_start: int) -> int:
    if line_start >= begin + 2 and data[line_start - 2:line_start] == b"\r\n":
        return line_start - 2
    if line_start >= begin + 1 and data[line_start - 1] in (10, 13):
        return line_start - 1
    return line_start


def transfer_encoding(headers: Message) -> str:
    """The Content-Transfer-Encoding, lower case, "" when absent."""
    try:
        return str(headers.get("content-transfer-encoding", "")).strip().lower()
    except Exception:  # noqa: BLE001 - see boundary_of
        return ""


def decoded_size_bound(part: Part) -> int:
    """The most bytes decoding `part` can produce (checked before decoding)."""
    n = len(part.body)
    return (n * 3) // 4 + 3 if transfer_encoding(part.headers) == "base64" else n


def decode_body(part: Part) -> bytes | None:
    """The body decoded from its transfer encoding (base64, quoted-printable,
    uuencode; anything else as is), or None when it cannot be decoded.

    Bounded: base64 is filtered of junk one MiB at a time and decoded in one
    C call; quoted-printable is one C call over the slice (soft line breaks
    cost nothing). Peak memory is about twice the part's size.
    """
    cte = transfer_encoding(part.headers)
    body = part.body.view()
    try:
        if cte == "base64":
            return _b64decode(body)
        if cte == "quoted-printable":
            return binascii.a2b_qp(body)
        if cte in _UU:
            return _uudecode(bytes(body))
    except (binascii.Error, ValueError):
        return None
    return bytes(body)


def _b64decode(body: memoryview) -> bytes | None:
    clean = bytearray()
    for at in range(0, len(body), _CHUNK):
        clean += body[at:at + _CHUNK].tobytes().translate(None, _B64_JUNK)
    stop = clean.find(b"=")  # padding ends the data; what follows is junk
    if stop >= 0:
        del clean[stop:]
    extra = len(clean) % 4
    if extra == 1:
        del clean[-1:]  # one stray character cannot carry a byte
    elif extra:
        clean += b"=" * (4 - extra)
    return binascii.a2b_base64(clean)


def _uudecode(data: bytes) -> bytes | None:
    message = Message()
    message["Content-Transfer-Encoding"] = "x-uuencode"
    message.set_payload(data.decode("ascii", "surrogateescape"))
    out = message.get_payload(decode=True)
    return out if isinstance(out, bytes) else None
