"""One e-mail (bytes) → the invoice attachments in it, each with a safe name.

Mail from Chinese senders names files every way there is: RFC 2231
(`filename*=gbk''…`, continuations split mid-character), RFC 2047
(`=?gb18030?B?…?=`), or raw 8-bit GBK. The stdlib's default policy reads the
well-formed cases; where it garbles, we decode the raw header ourselves with
the compat32 tools (`decode_params`, `decode_header`). Formats are judged by
content (`sniff`), never by name. Every part we do not take is returned as a
`Refusal` with a stable reason code, so the ledger can say why.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from email.message import Message
from pathlib import Path
from typing import Any

from agent.errors import CaptureError, ExtractError
from agent.extract.sniff import sniff
from agent.mailnames import date_text, filename_of, header_text, recover_8bit
from agent.mime import (HeaderTooLarge, Part, Span, boundary_of, decode_body, decoded_size_bound,
                        read_part, split_multipart, transfer_encoding, whole)
from agent.safezip import DEFAULT_LIMITS, SafeZip, ZipLimits, open_zip

MEDIA_TYPES = {
    "pdf": "application/pdf", "ofd": "application/ofd", "xml": "application/xml",
    "png": "image/png", "jpeg": "image/jpeg", "tiff": "image/tiff", "bmp": "image/bmp",
    "gif": "image/gif", "webp": "image/webp",
}
_IMAGE_FORMATS = frozenset({"png", "jpeg", "tiff", "bmp", "gif", "webp"})
_EXTENSIONS = {"jpeg": "jpg", "tiff": "tif"}
_MAX_NAME_BYTES = 200
_MAX_MULTIPART_DEPTH = 32
# Unnamed leaves of these types are the message's text, not attachments.
_BODY_TYPES = frozenset({"text/plain", "text/html", "text/enriched", "message/delivery-status"})
_UNSAFE_NAME_CHARS = str.maketrans({c: "_" for c in '/\\:*?"<>|'})


# An archive's inflated bytes are held at once (plus one member's copy while
# it is read): a tighter budget than an OFD's.
_MAIL_ZIP_LIMITS = replace(DEFAULT_LIMITS, max_total_bytes=100 * 1024 * 1024,
                           max_member_bytes=50 * 1024 * 1024)


@dataclass(frozen=True)
class MailLimits:
    """What one message may cost. Sizes are decoded bytes."""

    max_message_bytes: int = 50 * 1024 * 1024
    max_attachments: int = 50
    # Attachments are held in memory until captured: with a 50 MB message these
    # keep parsing under 300 MB (tests/integration/test_mail_memory.py).
    max_attachment_bytes: int = 50 * 1024 * 1024  # zip members can outgrow the message
    max_total_bytes: int = 100 * 1024 * 1024
    min_image_bytes: int = 20 * 1024  # below this an image is a logo or signature
    max_parts: int = 5000
    max_nested_messages: int = 1  # levels of message/rfc822 to descend
    zip_limits: ZipLimits = _MAIL_ZIP_LIMITS

    @classmethod
    def from_config(cls, mail: Mapping[str, Any]) -> MailLimits:
        """Limits from the config's [mail] section; missing keys keep the defaults."""
        base = cls()
        return cls(
            max_message_bytes=int(mail.get("max_message_mb", base.max_message_bytes >> 20)) << 20,
            max_attachments=int(mail.get("max_attachments", base.max_attachments)),
            min_image_bytes=int(mail.get("min_inline_image_kb", base.min_image_bytes >> 10)) << 10,
        )


DEFAULT_MAIL_LIMITS = MailLimits()


@dataclass(frozen=True)
class Attachment:
    """An invoice-like file taken from a message.

    `filename` is one sanitised path component (never empty); `media_type`
    comes from the content; `from_zip` names the archive(s) it came out of,
    e.g. "a.zip" or "a.zip/b.zip", else None.
    """

    filename: str
    data: bytes
    media_type: str
    from_zip: str | None = None


@dataclass(frozen=True)
class Refusal:
    """A part we did not take. `reason` is a stable code, `detail` is for people.

    Reasons: empty, small-image, unsupported-format, too-large,
    message-size-limit, too-many-attachments, too-many-parts,
    nested-too-deep, unsafe-name, duplicate-name, zip-corrupt,
    zip-limit-exceeded, zip-encrypted, undecodable.
    """

    filename: str
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class ParsedMail:
    """The headers a document records, and what was taken or refused.

    Header fields are decoded text with control characters removed, or
    None when absent. `date` is ISO 8601 when parseable, else the raw text.
    """

    message_id: str | None
    from_: str | None
    subject: str | None
    date: str | None
    attachments: list[Attachment] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)


def parse_message(data: bytes, limits: MailLimits = DEFAULT_MAIL_LIMITS) -> ParsedMail:
    """Parse one RFC 5322 message and return its invoice attachments.

    Never raises on bad mail except ExtractError: "limit-exceeded" when the
    message is larger than `max_message_bytes` or its header block passes
    agent.mime.MAX_HEADER_BYTES; "corrupt" when it is not bytes. Damaged
    parts become refusals; the rest of the message is still read.
    Memory is bounded by a small multiple of the message's size, whatever
    its shape (agent/mime.py reads bodies as spans, never line by line).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ExtractError("corrupt", "a message must be bytes")
    if len(data) > limits.max_message_bytes:
        raise ExtractError("limit-exceeded", f"message is {len(data)} bytes, "
                                             f"limit {limits.max_message_bytes}")
    try:
        root = read_part(whole(bytes(data) if not isinstance(data, bytes) else data))
    except HeaderTooLarge as e:
        raise ExtractError("limit-exceeded", f"the message's {e}") from None
    collector = _Collector(limits)
    collector.walk(root)
    msg = root.headers
    return ParsedMail(
        message_id=header_text(msg, "Message-ID"),
        from_=header_text(msg, "From"),
        subject=header_text(msg, "Subject"),
        date=date_text(msg),
        attachments=collector.attachments,
        refusals=collector.refusals,
    )


def iter_maildir(root: Path) -> Iterator[Path]:
    """Yield the regular files in `root/new`, oldest name first.

    Maildir writers finish in `tmp/` and rename into `new/`, so every file
    here is complete. Dot-files, folders and symlinks are skipped (never
    followed). A missing `new/` yields nothing.
    """
    new = Path(root) / "new"
    try:
        entries = sorted(os.scandir(new), key=lambda e: e.name)
        regular = [e for e in entries if not e.name.startswith(".") and e.is_file(follow_symlinks=False)]
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as exc:
        raise CaptureError(f"cannot list Maildir {new}: {exc.strerror or exc}") from None
    for entry in regular:
        yield Path(entry.path)


def maildir_cur_path(path: Path) -> Path:
    """Where a captured `new/` message goes in `cur/`, with the Maildir info suffix."""
    name = path.name if ":" in path.name else path.name + ":2,"
    return path.parent.parent / "cur" / name


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
        ext = _EXTENSIONS.get(fmt, fmt if fmt in MEDIA_TYPES else "bin")
        text = f"attachment-{index}.{ext}"
    return _limit_bytes(text, _MAX_NAME_BYTES)


def _limit_bytes(text: str, limit: int) -> str:
    if len(text.encode("utf-8")) <= limit:
        return text
    stem, dot, ext = text.rpartition(".")
    if not dot or not stem or len(ext.encode("utf-8")) > 16:
        stem, ext = text, ""
    suffix = f".{ext}" if ext else ""
    room = limit - len(suffix.encode("utf-8"))
    cut = stem.encode("utf-8")[:room].decode("utf-8", errors="ignore")
    return cut + suffix


class _Collector:
    """Walks one message tree, applying the limits in document order."""

    def __init__(self, limits: MailLimits):
        self.limits = limits
        self.attachments: list[Attachment] = []
        self.refusals: list[Refusal] = []
        self.total_bytes = 0
        self.parts_seen = 0
        self.index = 0

    def refuse(self, filename: str, reason: str, detail: str = "") -> None:
        self.refusals.append(Refusal(filename, reason, detail))

    def walk(self, root: Part) -> None:
        # An explicit stack, not recursion: hostile mail nests thousands deep.
        # Entries are parts read already, or spans whose headers are read when popped.
        stack: list[tuple[Part | Span, int, int]] = [(root, 0, 0)]
        while stack:
            item, nested, depth = stack.pop()
            self.parts_seen += 1
            if self.parts_seen > self.limits.max_parts:
                self.refuse("(rest of message)", "too-many-parts",
                            f"more than {self.limits.max_parts} MIME parts; the rest were not read")
                return
            try:
                part = item if isinstance(item, Part) else read_part(item)
            except HeaderTooLarge as e:
                self.index += 1
                self.refuse(f"attachment-{self.index}", "too-large", f"the part's {e}; not read")
                continue
            children = self._children(part, nested, depth)
            if children is not None:
                stack.extend(reversed(children))
            else:
                self._leaf(part)

    def _children(self, part: Part, nested: int, depth: int) -> list | None:
        """The sub-parts to visit, or None when `part` is a leaf."""
        ctype = _content_type(part.headers)
        is_message = ctype.startswith("message/") and ctype != "message/delivery-status"
        boundary = boundary_of(part.headers) if ctype.startswith("multipart/") else None
        if boundary is None and not is_message:
            return None
        if depth + 1 > _MAX_MULTIPART_DEPTH or (is_message and nested + 1 > self.limits.max_nested_messages):
            self.refuse(_display_name(part.headers), "nested-too-deep",
                        f"{ctype} nested deeper than allowed; not read")
            return []
        if is_message:
            # RFC 2046 forbids base64/QP on message/rfc822, but senders do it:
            # decode first, then read the result as a message.
            inner = part.body if transfer_encoding(part.headers) in ("", "7bit", "8bit", "binary") \
                else decode_body(part)
            if inner is None:
                self.refuse(_display_name(part.headers), "undecodable", "embedded message cannot be decoded")
                return []
            return [(inner if isinstance(inner, Span) else whole(inner), nested + 1, depth + 1)]
        bodies = split_multipart(part.body, boundary, self.limits.max_parts - self.parts_seen + 1)
        if bodies is None:
            return None  # no delimiter at all: the stdlib reads it as one part too
        return [(body, nested, depth + 1) for body in bodies]

    def _leaf(self, part: Part) -> None:
        raw_name = filename_of(part.headers)
        if raw_name is None and _disposition(part.headers) != "attachment" \
                and _content_type(part.headers) in _BODY_TYPES:
            return  # the message body, not an attachment
        self.index += 1
        display = sanitise_filename(raw_name, "unknown", self.index)
        bound = decoded_size_bound(part)
        if bound > self.limits.max_attachment_bytes:
            # Refused before decoding: the decoded bytes would be refused anyway.
            self.refuse(display, "too-large", f"up to {bound} bytes once decoded, "
                                              f"limit {self.limits.max_attachment_bytes}")
            return
        data = decode_body(part)
        if data is None:
            self.refuse(display, "undecodable", "the part's content cannot be decoded")
            return
        self._take(data, raw_name, from_zip=None)

    def _take(self, data: bytes, raw_name: str | None, from_zip: str | None) -> None:
        fmt = sniff(data)
        name = sanitise_filename(raw_name, fmt, self.index)
        shown = f"{from_zip}/{name}" if from_zip else name
        lim = self.limits
        if len(self.attachments) >= lim.max_attachments:
            self.refuse(shown, "too-many-attachments", f"limit is {lim.max_attachments} per message")
        elif not data or fmt == "empty":
            self.refuse(shown, "empty", "zero bytes or only whitespace")
        elif len(data) > lim.max_attachment_bytes:
            self.refuse(shown, "too-large", f"{len(data)} bytes, limit {lim.max_attachment_bytes}")
        elif fmt == "zip":
            self._expand_zip(data, shown)
        elif fmt in _IMAGE_FORMATS and len(data) < lim.min_image_bytes:
            self.refuse(shown, "small-image", f"{fmt} image of {len(data)} bytes is below "
                                              f"{lim.min_image_bytes}: a logo or signature")
        elif fmt not in MEDIA_TYPES or (fmt == "xml" and _looks_like_html(data)):
            self.refuse(shown, "unsupported-format", f"content is {fmt}, not PDF, OFD, XML or an image")
        elif self.total_bytes + len(data) > lim.max_total_bytes:
            self.refuse(shown, "message-size-limit", f"attachments exceed {lim.max_total_bytes} bytes")
        else:
            self.total_bytes += len(data)
            self.attachments.append(Attachment(name, data, MEDIA_TYPES[fmt], from_zip))

    def _expand_zip(self, data: bytes, shown: str, parent: SafeZip | None = None,
                    member: str | None = None) -> None:
        try:
            archive = parent.open_nested(member, data) if parent else open_zip(data, self.limits.zip_limits)
        except ExtractError as exc:
            self.refuse(shown, f"zip-{exc.reason}", exc.message)
            return
        for skipped in archive.skipped:
            self.refuse(f"{shown}/{_display(skipped.raw_name)}", skipped.reason, "zip member not read")
        for member_name in archive.names():
            member_shown = f"{shown}/{member_name}"
            if len(self.attachments) >= self.limits.max_attachments:
                self.refuse(member_shown, "too-many-attachments",
                            f"limit is {self.limits.max_attachments} per message")
                continue
            try:
                content = archive.read(member_name)
            except ExtractError as exc:
                self.refuse(member_shown, f"zip-{exc.reason}", exc.message)
                if exc.reason == "limit-exceeded":
                    return  # the shared budget is spent; the rest would fail too
                continue
            self.index += 1
            if sniff(content) == "zip":
                self._expand_zip(content, member_shown, archive, member_name)
            else:
                self._take(content, member_name, from_zip=shown)


# The stdlib's header parser has had assorted bugs on hostile headers
# (IndexError, AttributeError...); these wrappers turn one into "unknown".

def _content_type(part: Message) -> str:
    try:
        return part.get_content_type()
    except Exception:  # noqa: BLE001 - see above
        return "application/octet-stream"


def _disposition(part: Message) -> str:
    try:
        return part.get_content_disposition() or ""
    except Exception:  # noqa: BLE001 - see above
        return ""


def _display_name(part: Message) -> str:
    name = filename_of(part)
    return sanitise_filename(name, "unknown") if name else _content_type(part)


def _display(text: str) -> str:
    clean = "".join("_" if unicodedata.category(c).startswith("C") else c for c in text)
    return _limit_bytes(clean, _MAX_NAME_BYTES)


def _looks_like_html(data: bytes) -> bool:
    head = data[:1024].lower()
    return b"<html" in head or b"<!doctype html" in head
