"""The walk over one message's MIME parts (`_Collector`): which parts are
the text, which are attachments, zip archives expanded, nested messages
descended, and every part not taken refused with its reason.

Apart from agent/mail.py, which splits a file into messages and gathers
what this walk yields: the walk is most of the reading, and alone it
keeps both modules short.
"""

from __future__ import annotations

import binascii
import re

from agent.errors import ExtractError
from agent.extract.sniff import sniff
from agent.extract.refusal_texts import PART_UNKNOWN, package
from agent.extract.unreadable import HTML, TNEF, is_html_page, office_zip_kind, unreadable_kind
from agent.filenames import readable_name
from agent.mail_tnef import take_tnef
from agent.mail_types import Attachment, MailLimits, Refusal
from agent.mailnames import (MEDIA_TYPES, content_type, decode_bytes, disposition, display_name, display_text,
                             filename_of, header_text, sanitise_filename)
from agent.mime import (HeaderTooLarge, Multipart, Part, Span, boundary_of, decode_body, decoded_size_bound,
                        looks_like_message, outside_parts, read_part, split_multipart, transfer_encoding, whole)
from agent.safezip import SafeZip, open_zip
from agent.tnef import is_tnef

_IMAGE_FORMATS = frozenset({"png", "jpeg", "tiff", "bmp", "gif", "webp"})
_MAX_MULTIPART_DEPTH = 32
# Unnamed leaves of these types are the message's text, not attachments.
_BODY_TYPES = frozenset({"text/plain", "text/html", "text/enriched", "message/delivery-status"})
# A body this many bytes is sniffed for an invoice XML sent as the message's text.
_SNIFF_BYTES = 8192
_INVOICE_XML = re.compile(rb"<\s*(?:[\w.-]+:)?einvoice[\s>/]|edrm\.org\.cn/schema/e-invoice", re.IGNORECASE)


class _Collector:
    """Walks one message tree, applying the limits in document order."""

    def __init__(self, limits: MailLimits):
        self.limits = limits
        self.attachments: list[Attachment] = []
        self.refusals: list[Refusal] = []
        self.total_bytes = 0  # the file's: the attachments are held in memory until captured
        self.parts_seen = 0  # the file's, all its messages (mail.py bounds a file of many)
        # Counts and limits per message: each message of an mbox is read
        # within its own max_parts and max_attachments (`begin_message`).
        self.message_parts = 0
        self.message_first = 0  # where the message being walked begins in `attachments`
        self.index = 0
        self.following: Span | None = None  # a message written after the one walked
        self.unclosed = False  # a multipart of the file ended without its close delimiter
        self.tnef_depth = 0  # TNEF streams being read, one inside another (agent/mail_tnef.py)

    def refuse(self, filename: str, reason: str, detail: str = "") -> None:
        self.refusals.append(Refusal(filename, reason, detail))

    def begin_message(self) -> None:
        """The next parts are a new message's: its own part and attachment
        counts start at nought (a file's later messages are not refused for
        what its earlier ones held)."""
        self.message_parts = 0
        self.message_first = len(self.attachments)

    def _attachments_full(self) -> bool:
        return len(self.attachments) - self.message_first >= self.limits.max_attachments

    def walk(self, root: Part) -> Span | None:
        """Visit `root`'s parts; return a further message found after its
        close delimiter (messages written one after another), else None."""
        self.following = None
        # An explicit stack, not recursion: hostile mail nests thousands deep.
        # Entries are parts read already, or spans whose headers are read when popped.
        stack: list[tuple[Part | Span, int, int]] = [(root, 0, 0)]
        while stack:
            item, nested, depth = stack.pop()
            self.parts_seen += 1
            self.message_parts += 1
            if self.message_parts > self.limits.max_parts:
                self.refuse("(rest of message)", "too-many-parts",
                            f"more than {self.limits.max_parts} MIME parts; the rest were not read")
                return None
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
        return self.following

    def _children(self, part: Part, nested: int, depth: int) -> list | None:
        """The sub-parts to visit, or None when `part` is a leaf."""
        ctype = content_type(part.headers)
        is_message = ctype.startswith("message/") and ctype != "message/delivery-status"
        boundary = boundary_of(part.headers) if ctype.startswith("multipart/") else None
        attached = None if is_message or boundary is not None else self._attached_message(part)
        if boundary is None and not is_message and attached is None:
            return None
        is_message = is_message or attached is not None
        if depth + 1 > _MAX_MULTIPART_DEPTH or (is_message and nested + 1 > self.limits.max_nested_messages):
            levels = f"attached messages are read {self.limits.max_nested_messages} deep" if is_message \
                else f"parts are read {_MAX_MULTIPART_DEPTH} deep"
            self.refuse(_message_name(part) if is_message else display_name(part.headers), "nested-too-deep",
                        f"{ctype} nested deeper than allowed ({levels}); not read")
            return []
        if is_message:
            # RFC 2046 forbids base64/QP on message/rfc822, but senders do it:
            # decode first, then read the result as a message.
            inner = attached if attached is not None else part.body \
                if transfer_encoding(part.headers) in ("", "7bit", "8bit", "binary") else decode_body(part)
            if inner is None:
                self.refuse(display_name(part.headers), "undecodable", "embedded message cannot be decoded")
                return []
            return [(inner if isinstance(inner, Span) else whole(inner), nested + 1, depth + 1)]
        limit = self.limits.max_parts - self.message_parts + 1
        split = split_multipart(part.body, boundary, limit)
        if split is None:
            return None  # no delimiter at all: the stdlib reads it as one part too
        if split.epilogue is None and len(split.parts) < limit and not self.unclosed:
            # Cut off (or still being written): what came after the cut is
            # not here, and nothing else would say so. Said once a file.
            self.unclosed = True
            self.refuse(display_name(part.headers), "unclosed",
                        f"the {ctype} ends without its closing delimiter: the message is cut off, and "
                        "parts after the cut may be missing")
        self._outside(split, ctype, boundary, depth)
        return [(body, nested, depth + 1) for body in split.parts]

    def _attached_message(self, part: Part) -> bytes | None:
        """An e-mail attached as a file (`*.eml` sent as application/octet-stream
        or text/plain): its decoded bytes when they read as a message, else None."""
        name = filename_of(part.headers)
        if not name or not name.rstrip(" .").lower().endswith(".eml") \
                or decoded_size_bound(part) > self.limits.max_attachment_bytes:
            return None
        data = decode_body(part)
        if data is None or sniff(data) != "unknown" or not looks_like_message(whole(data)):
            return None
        return data

    def _outside(self, split: Multipart, ctype: str, boundary: bytes, depth: int) -> None:
        """What a multipart holds outside its parts, accounted for: a further
        message after the file's own is read next, the rest is refused."""
        following, hidden = outside_parts(split, ctype, boundary, depth == 0)
        if following is not None:
            self.following = following
        for name, is_part, code, detail in hidden:
            if is_part:
                self.index += 1
                name = sanitise_filename(name, "unknown", self.index)
            self.refuse(name or "", code, detail)

    def _leaf(self, part: Part) -> None:
        raw_name = filename_of(part.headers)
        ctype = content_type(part.headers)
        if raw_name is None and disposition(part.headers) != "attachment" and ctype in _BODY_TYPES \
                and not (ctype == "text/plain" and self._invoice_xml(part)):
            if ctype == "text/plain":
                self._uuencoded(part)
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

    def _uuencoded(self, part: Part) -> None:
        """Files uuencoded into the message's text (`begin 644 name` ...
        `end`, as old mailers and some scanners' mail send them): each taken
        as an attachment, one cut off before its `end` refused by name."""
        body = part.body
        if not _UU_BEGIN.search(body.data, body.start, body.end) \
                or decoded_size_bound(part) > self.limits.max_attachment_bytes:
            return  # (a text that large was never a message's text: the part limits refuse it)
        text = decode_body(part)
        for raw_name, data in uuencoded_files(text or b""):
            self.index += 1
            name = decode_bytes(raw_name, None)[0]
            if data is None:
                self.refuse(sanitise_filename(name, "unknown", self.index), "undecodable",
                            "uuencoded in the message's text without its end line: cut off")
            else:
                self._take(data, name, from_zip=None)

    def _invoice_xml(self, part: Part) -> bool:
        """Is this unnamed text body an invoice XML (sent as the message's text)?
        Judged on the decoded start of the body, without decoding all of it."""
        body = part.body
        head = decode_body(Part(part.headers, Span(body.data, body.start, min(body.end, body.start + _SNIFF_BYTES))))
        return head is not None and sniff(head) == "xml" and bool(_INVOICE_XML.search(head))

    def take_archive(self, data: bytes, raw_name: str | None) -> str:
        """Expand a zip archive that came on its own (dropped in a folder)
        as an attached one is expanded, whatever its own size; returns the
        name it is shown by: its file's, as a document's name is shown
        (`readable_name`: GBK read as such, other bytes as \\xNN, never
        U+FFFD, which would make two names look alike)."""
        name = readable_name(raw_name) if raw_name else "archive.zip"
        self._expand_zip(data, name)
        return name

    def _take(self, data: bytes, raw_name: str | None, from_zip: str | None,
              archive: SafeZip | None = None) -> None:
        # `archive`: the zip `data` came out of, through a TNEF in it: a zip
        # in that TNEF shares its budget, as a zip in a zip does.
        fmt = sniff(data)
        name = sanitise_filename(raw_name, fmt, self.index)
        shown = f"{from_zip}/{name}" if from_zip else name
        lim = self.limits
        if self._attachments_full():
            self.refuse(shown, "too-many-attachments", f"limit is {lim.max_attachments} per message")
        elif not data or fmt == "empty":
            self.refuse(shown, "empty", "zero bytes or only whitespace")
        elif len(data) > lim.max_attachment_bytes:
            self.refuse(shown, "too-large", f"{len(data)} bytes, limit {lim.max_attachment_bytes}")
        elif fmt == "zip":
            self._expand_zip(data, shown, archive, shown)
        elif fmt == "unknown" and is_tnef(data):
            # Outlook's winmail.dat: its files are this message's attachments.
            # One holding none is named as before, with what to do.
            if not take_tnef(self, data, shown, archive):
                self.refuse(shown, "unsupported-format", TNEF.text)
        elif fmt in _IMAGE_FORMATS and len(data) < lim.min_image_bytes:
            self.refuse(shown, "small-image", f"{fmt} image of {len(data)} bytes is below "
                                              f"{lim.min_image_bytes}: a logo or signature")
        elif fmt not in MEDIA_TYPES or (fmt == "xml" and is_html_page(data)):
            # Named when it is a kind people send in place of an invoice (a
            # RAR, a winmail.dat, a Word file ...): "unknown" says nothing.
            kind = HTML if fmt == "xml" else unreadable_kind(data[:1024]) or PART_UNKNOWN
            self.refuse(shown, "unsupported-format", kind.text)
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
        names = archive.names()
        mimetype = None
        if names[:1] and names[0].lower() == "mimetype":
            try:
                mimetype = archive.read(names[0])[:128]
            except ExtractError:
                pass   # then no package: its members are read, and refused, one by one
        office = office_zip_kind(names)
        if office or (kind := package_kind(names, mimetype)):
            # A file of its own kind stored as a zip (a spreadsheet, a
            # Word file): its parts are no files anybody sent, and reading
            # its XML parts would make documents of them.
            self.refuse(shown, "unsupported-format", (office or package(kind)).text)
            return
        for skipped in archive.skipped:
            self.refuse(f"{shown}/{display_text(skipped.raw_name)}", skipped.reason, "zip member not read")
        for member_name in archive.names():
            member_shown = f"{shown}/{member_name}"
            if self._attachments_full():
                self.refuse(member_shown, "too-many-attachments",
                            f"limit is {self.limits.max_attachments} per message")
                continue
            try:
                content = archive.read(member_name)
            except ExtractError as exc:
                # Once the shared budget is spent every member after this
                # one fails at its first block: each is still refused by
                # name, never dropped unnamed (here and in the archives above).
                self.refuse(member_shown, f"zip-{exc.reason}", exc.message)
                continue
            self.index += 1
            if sniff(content) == "zip":
                self._expand_zip(content, member_shown, archive, member_name)
            else:
                self._take(content, member_name, from_zip=shown, archive=archive)


# Formats kept as a zip of parts, told by the members every such file has
# (all of them: an archive of invoices that happens to hold one such name
# is still an archive).
_PACKAGES = (({"[content_types].xml", "_rels/.rels"},
              "an Office document (Word, Excel, PowerPoint, XPS: Open XML parts)"),
             ({"meta-inf/manifest.mf", "*.class"}, "a Java package"),
             ({"androidmanifest.xml", "classes.dex"}, "an Android package"))


def package_kind(names: list[str], mimetype: bytes | None = None) -> str | None:
    """What a zip whose members are `names` (in archive order) is when it
    is a file format of its own (an .xlsx, .docx, .odt, .epub, .jar, .apk)
    rather than an archive of files; None for an archive. `mimetype`: the
    content of a first member named so (OpenDocument and EPUB store their
    media type there, first, by their specifications)."""
    lowered = [n.replace("\\", "/").lstrip("/").lower() for n in names]
    if lowered[:1] == ["mimetype"] and (mimetype or b"").strip().startswith(
            (b"application/vnd.oasis.opendocument", b"application/epub+zip")):
        return "an OpenDocument or EPUB file"
    have = set(lowered)
    for markers, kind in _PACKAGES:
        if all(any(n.endswith(m[1:]) for n in have) if m.startswith("*") else m in have for m in markers):
            return kind
    return None


def _message_name(part: Part) -> str:
    """An attached message's name: its file name, else its Subject (a forward
    inside a forward rarely has a file name, and "message/rfc822" says nothing)."""
    if filename_of(part.headers):
        return display_name(part.headers)
    subject = None
    if transfer_encoding(part.headers) in ("", "7bit", "8bit", "binary"):
        try:
            subject = header_text(read_part(part.body).headers, "Subject")
        except HeaderTooLarge:
            pass
    ctype = content_type(part.headers)
    return display_text(f"{ctype} «{subject}»") if subject else ctype


# A uuencoded file's first line (the mode, then the name).
_UU_BEGIN = re.compile(rb"^begin +[0-7]{3,4} +([^\r\n]*?)[ \t]*\r?$", re.MULTILINE)


def uuencoded_files(text: bytes) -> list[tuple[bytes, bytes | None]]:
    """Each file uuencoded in `text`: its name as written, and its bytes,
    or None when a line cannot be decoded or its `end` line never comes
    (never a file cut short passed on as whole)."""
    found: list[tuple[bytes, bytes | None]] = []
    pos = 0
    while hit := _UU_BEGIN.search(text, pos):
        at = hit.end() + 1
        data, whole_file = bytearray(), False
        while at < len(text):
            stop = text.find(b"\n", at)
            stop = len(text) if stop < 0 else stop
            line, at = text[at:stop].rstrip(b"\r"), stop + 1
            if line.rstrip() == b"end":
                whole_file = True
                break
            if not line.strip():
                continue  # the length-0 line before `end`, its space stripped by a mailer
            try:
                data += binascii.a2b_uu(line)
            except binascii.Error:
                # Some encoders pad a line past its length: read only what it declares.
                try:
                    data += binascii.a2b_uu(line[:(((line[0] - 32) & 63) * 4 + 5) // 3])
                except binascii.Error:
                    break
        if whole_file or data:  # else prose that happens to read "begin 600 units"
            found.append((hit.group(1), bytes(data) if whole_file else None))
        pos = at
    return found
