"""Outlook's TNEF (a winmail.dat, application/ms-tnef): the files inside it.

Outlook sends a message as rich text to a recipient it does not know by
wrapping the attachments in one TNEF stream: the invoice is inside. This is
a small reader of our own, bounded on hostile input (tnefparse, the one
Python library, copies the rest of the stream at every attribute, takes an
attribute cut short as whole and only logs a bad checksum):

- attributes are read in place, by offset; a declared length is checked
  against the bytes left before anything is read: a length past the end is
  the stream cut short (`Cut`), never an allocation;
- files are copied out one at a time as they are yielded, so the caller's
  limits (count, bytes) stop the walk before more is copied;
- every attribute of an attachment is checked against its checksum: a file
  damaged in transit is refused by name, never passed on as whole;
- an attached Outlook item (an embedded message) is yielded as its own TNEF
  stream, for the caller to read within its nesting limit.

The format ([MS-OXTNEF]): the signature 0x223E9F78 (little-endian), a 16-bit
key, then attributes: level (1 message, 2 attachment), id (32 bits: its type
<< 16 | its id), length (32 bits), data, checksum (16 bits: the data's bytes
summed). Each attachment starts at attAttachRendData; its bytes are
attAttachData (or PR_ATTACH_DATA_OBJ in attAttachment's MAPI properties),
its name PR_ATTACH_LONG_FILENAME there, else attAttachTitle, else
PR_ATTACH_FILENAME or PR_DISPLAY_NAME.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import NamedTuple

from agent.extract.sniff import TNEF_SIGNATURE as SIGNATURE
from agent.extract.sniff import is_tnef
from agent.mailnames import decode_bytes

__all__ = ["SIGNATURE", "Budget", "Cut", "TnefFile", "is_tnef", "tnef_files"]

_HEAD = struct.Struct("<BII")   # level, attribute id, length
_LEVEL_MESSAGE, _LEVEL_ATTACHMENT = 1, 2
_OEM_CODEPAGE = 0x00069007
_ATTACH_REND_DATA = 0x00069002   # starts an attachment
_ATTACH_TITLE = 0x00018010
_ATTACH_DATA = 0x0006800F
_ATTACHMENT = 0x00069005         # the attachment's MAPI properties
# Each at most once an attachment: a second one is the next attachment's
# (a writer that left out attAttachRendData), never written over the first.
_ONCE = frozenset({_ATTACH_TITLE, _ATTACH_DATA, _ATTACHMENT})

# MAPI property ids (attAttachment) and types.
_PR_DISPLAY_NAME, _PR_ATTACH_DATA_OBJ, _PR_ATTACH_FILENAME = 0x3001, 0x3701, 0x3704
_PR_ATTACH_METHOD, _PR_ATTACH_LONG_FILENAME = 0x3705, 0x3707
_PT_LONG, _PT_STRING8, _PT_UNICODE, _PT_OBJECT, _PT_BINARY = 0x0003, 0x001E, 0x001F, 0x000D, 0x0102
_MV = 0x1000
# Fixed-size types and the bytes each value takes in TNEF (2-byte ones padded to 4).
_FIXED = {0x0002: 4, 0x0003: 4, 0x0004: 4, 0x0005: 8, 0x0006: 8, 0x0007: 8, 0x000A: 4, 0x000B: 4,
          0x0014: 8, 0x0040: 8, 0x0048: 16}
_VARIABLE = frozenset({_PT_STRING8, _PT_UNICODE, _PT_OBJECT, _PT_BINARY})
_EMBEDDED_MSG = (5).to_bytes(4, "little")   # PR_ATTACH_METHOD's ATTACH_EMBEDDED_MSG
# A PtypObject value starts with its interface id; an embedded message's is IID_IMessage.
_IID_IMESSAGE = bytes.fromhex("0703020000000000c000000000000046")


class TnefFile(NamedTuple):
    """One attachment of a TNEF stream: its name as the stream gives it
    (None when it gives none, or none that decodes), and exactly one of:
    its bytes (`data`, possibly empty), an attached Outlook item's own TNEF
    stream (`message`), or why it cannot be read (`damaged`: English, then
    Chinese)."""

    name: str | None
    data: bytes | None = None
    message: memoryview | None = None
    damaged: str | None = None


class Budget:
    """How many steps walks may still take: each attribute is one, each
    MAPI property (and each value of one) in attAttachment is one. One
    budget may be shared by several streams (a message's winmail.dat files,
    one inside another), so that together they cost no more than it."""

    def __init__(self, steps: int) -> None:
        self.limit = self.left = steps

    @property
    def spent(self) -> int:
        return self.limit - max(self.left, 0)


class Cut(NamedTuple):
    """The stream is cut short or damaged at byte `at` of `size`: nothing
    after it was read. `why` says how; `inside` names the attachment it cut
    through, when that one's name came before the cut."""

    at: int
    size: int
    why: str
    inside: str | None = None


def tnef_files(data: bytes | memoryview, max_attributes: int | Budget = 1 << 62) -> Iterator[TnefFile | Cut]:
    """The attachments of the TNEF stream `data`, in stream order, each a
    TnefFile once all its attributes are read (two when it holds different
    bytes in attAttachData and in its properties); a Cut last when the stream
    breaks off (what came before it is whole: each attachment's attributes
    passed their checksums). Yields nothing for a stream without
    attachments. Never raises on any bytes (a stream not starting with the
    signature is a Cut at byte 0; one of more than `max_attributes`
    attributes and MAPI properties a Cut there: a Budget to share it with
    other streams); copies only the files' bytes, one at a time; time is
    linear in the stream's length and in `max_attributes`."""
    budget = max_attributes if isinstance(max_attributes, Budget) else Budget(max_attributes)
    view = memoryview(data).cast("B") if not isinstance(data, bytes) else memoryview(data)
    size = len(view)
    if not is_tnef(view):
        yield Cut(0, size, "no TNEF signature")
        return
    if size < 6:
        yield Cut(size, size, "the stream ends inside its header")
        return
    pos, codepage, current = 6, None, None
    while pos < size:
        budget.left -= 1
        if budget.left < 0:
            yield Cut(pos, size, f"more than {budget.limit} attributes and MAPI properties",
                      _name_of(current, codepage))
            return
        if size - pos < _HEAD.size + 2:
            if not any(view[pos:]):
                break  # NUL padding after the last attribute (some gateways add it)
            yield Cut(pos, size, "an attribute's header is cut off", _name_of(current, codepage))
            return
        level, attr, length = _HEAD.unpack_from(view, pos)
        start = pos + _HEAD.size
        end = start + length
        if level not in (_LEVEL_MESSAGE, _LEVEL_ATTACHMENT):
            yield Cut(pos, size, f"an attribute of unknown level {level}", _name_of(current, codepage))
            return
        if end + 2 > size:
            yield Cut(pos, size, f"an attribute declares {length} bytes, {max(size - start - 2, 0)} are left",
                      _name_of(current, codepage))
            return
        pos = end + 2
        if level == _LEVEL_MESSAGE:
            # Of the message's attributes only its code page is used (for
            # 8-bit names); the rest are stepped over unchecked.
            if attr == _OEM_CODEPAGE and length >= 4 and _checked(view, start, end):
                codepage = int.from_bytes(view[start:start + 4], "little")
            continue
        if attr == _ATTACH_REND_DATA or current is None or attr in current.seen:
            if current is not None:
                yield from _finish(view, current, codepage)
            current = _Attachment(view)
        if attr in _ONCE:
            current.seen.add(attr)
        if not _checked(view, start, end):
            current.bad_checksum = True
        elif attr == _ATTACH_TITLE:
            current.title = bytes(view[start:end])
        elif attr == _ATTACH_DATA:
            current.data = (start, end)
        elif attr == _ATTACHMENT:
            current.props, current.props_whole = _properties(view, start, end, budget)
    if current is not None:
        yield from _finish(view, current, codepage)


def _checked(view: memoryview, start: int, end: int) -> bool:
    """Whether the attribute's data `view[start:end]` sums to the checksum after it."""
    return sum(view[start:end]) & 0xFFFF == int.from_bytes(view[end:end + 2], "little")


class _Attachment:
    """What the attributes of one attachment said so far."""

    def __init__(self, view: memoryview) -> None:
        self.view = view   # the stream its spans are of
        self.title: bytes | None = None
        self.data: tuple[int, int] | None = None
        self.props: dict[int, tuple[int, int, int]] = {}   # MAPI property id → (type, start, end)
        self.props_whole = True   # every property in attAttachment read (else a damaged or endless list)
        self.bad_checksum = False
        self.seen: set[int] = set()   # of _ONCE


def _finish(view: memoryview, att: _Attachment, codepage: int | None) -> Iterator[TnefFile]:
    """The attachment's file: from attAttachData, and from its properties'
    PR_ATTACH_DATA_OBJ too when that holds other bytes (never one dropped
    for the other); or why it has none."""
    name = _name_of(att, codepage)
    if att.bad_checksum:
        yield TnefFile(name, damaged="its bytes in the TNEF stream fail their checksum (damaged on the way); "
                                     "ask the sender to send it again / 附件数据校验和不符（传输中损坏），请让发件人重发")
        return
    obj = att.props.get(_PR_ATTACH_DATA_OBJ)
    data = view[att.data[0]:att.data[1]] if att.data is not None else None
    if data is not None and (len(data) or obj is None):
        yield TnefFile(name, data=bytes(data))
    if obj is None:
        if data is None:
            # Never "an empty file": the sender's bytes may be past what could be read.
            yield TnefFile(name, damaged=_NO_BYTES if att.props_whole else _PROPERTIES_CUT)
        return
    ptype, start, end = obj
    if ptype == _PT_OBJECT:
        # The object's interface id, then the object: an attached Outlook
        # item's TNEF stream (read in place), or an OLE object's storage
        # (a file the caller names for what it is).
        method = att.props.get(_PR_ATTACH_METHOD)
        embedded = method is not None and view[method[1]:method[1] + 4] == _EMBEDDED_MSG
        if view[start:start + 16] == _IID_IMESSAGE or embedded:
            yield TnefFile(name, message=view[start + 16:end])
            return
        start = min(start + 16, end)
    if not data or view[start:end] != data:   # (PR_ATTACH_DATA_BIN, or the OLE object)
        yield TnefFile(name, data=bytes(view[start:end]))


_NO_BYTES = ("the TNEF stream holds no bytes for it (cut short between its attributes, or an attachment by "
             "reference): ask the sender to send it again / "
             "TNEF 中没有该附件的数据（在属性之间截断，或只是一个链接），请让发件人重发")
_PROPERTIES_CUT = ("its MAPI properties cannot be read to their end (damaged, or too many): its bytes, if there, "
                   "were not read; ask the sender to send it again / "
                   "附件的 MAPI 属性无法读完（损坏或过多），其数据未读取，请让发件人重发")


def _name_of(att: _Attachment | None, codepage: int | None) -> str | None:
    """The attachment's best name: the long file name, the title, the 8.3
    name, the display name; one that does not decode is passed over."""
    if att is None:
        return None
    props = att.props
    candidates = [props.get(_PR_ATTACH_LONG_FILENAME), "title", props.get(_PR_ATTACH_FILENAME),
                  props.get(_PR_DISPLAY_NAME)]
    for found in candidates:
        if found == "title":
            text = _text(_PT_STRING8, att.title, codepage) if att.title is not None else None
        elif found is not None:
            ptype, start, end = found
            text = _text(ptype, bytes(att.view[start:end]), codepage)
        else:
            continue
        if text:
            return text
    return None


def _text(ptype: int, raw: bytes, codepage: int | None) -> str | None:
    if ptype == _PT_UNICODE:
        try:
            return raw.decode("utf-16-le").split("\0", 1)[0].strip() or None
        except UnicodeDecodeError:
            return None
    raw = raw.split(b"\0", 1)[0]
    # The stream's own code page first (936 on a Chinese Windows), then UTF-8, then GB18030.
    text, strict = decode_bytes(raw, f"cp{codepage}" if codepage else None)
    return (text.strip() or None) if strict else None


_WANTED = frozenset({_PR_DISPLAY_NAME, _PR_ATTACH_DATA_OBJ, _PR_ATTACH_FILENAME, _PR_ATTACH_METHOD,
                     _PR_ATTACH_LONG_FILENAME})


def _properties(view: memoryview, pos: int, end: int, budget: Budget) -> tuple[dict[int, tuple[int, int, int]], bool]:
    """The MAPI properties of `view[pos:end]` this reader uses: id → (type,
    where its first value's bytes start and end in `view`), and whether
    all were read. Read until the end, the first property it cannot size
    (an unknown type, a length past the end) or the end of `budget` (each
    property and each value a step): those before it are kept.
    Every step moves forward at least 4 bytes, so a count of billions costs
    no more than the bytes there, and no more steps than the budget."""
    found: dict[int, tuple[int, int, int]] = {}

    def u32(at: int) -> int | None:
        return int.from_bytes(view[at:at + 4], "little") if at + 4 <= end else None

    count = u32(pos)
    pos += 4
    while count and pos + 4 <= end:
        count -= 1
        budget.left -= 1
        if budget.left < 0:
            return found, False
        ptype, pid = struct.unpack_from("<HH", view, pos)
        pos += 4
        if pid >= 0x8000:   # a named property: a GUID, then a number or a name
            kind = u32(pos + 16)
            pos += 20
            if kind is None:
                return found, False
            if kind == 0:
                pos += 4
            else:
                n = u32(pos)
                if n is None:
                    return found, False
                pos += 4 + n + (-n % 4)
        base, many = ptype & ~_MV, bool(ptype & _MV)
        values = u32(pos) if many or base in _VARIABLE else 1
        if values is None:
            return found, False
        if many or base in _VARIABLE:
            pos += 4
        if base in _FIXED:
            first = (pos, pos + _FIXED[base])
            pos += values * _FIXED[base]
        elif base in _VARIABLE:
            first = (pos, pos)
            for i in range(values):
                if i:
                    budget.left -= 1
                    if budget.left < 0:
                        return found, False
                n = u32(pos)
                if n is None or pos + 4 + n > end:
                    return found, False
                if i == 0:
                    first = (pos + 4, pos + 4 + n)
                pos += 4 + n + (-n % 4)
        else:
            return found, False
        if pos > end:
            return found, False
        if pid in _WANTED and not many:
            found.setdefault(pid, (base, *first))
    return found, not count
