"""Real TNEF streams (winmail.dat) for tests, laid out as Outlook writes them
([MS-OXTNEF]): the signature, a key, the message's attributes (version, OEM
code page, class, MAPI properties), then each attachment from its
attAttachRendData: its title, its data, its MAPI properties (the long file
name in UTF-16, the attach method, an 8.3 name). Every attribute carries its
real checksum unless a test asks otherwise; `attribute` and `Attached` let a
hostile test lay out what it needs byte by byte."""

from __future__ import annotations

import struct
from dataclasses import dataclass

SIGNATURE = b"\x78\x9f\x3e\x22"
IID_IMESSAGE = bytes.fromhex("0703020000000000c000000000000046")
IID_ISTORAGE = bytes.fromhex("0b0000000000000000c0000000000046")

# Attribute ids (type << 16 | id) and MAPI property tags used here.
TNEF_VERSION, OEM_CODEPAGE, MESSAGE_CLASS, MAPI_PROPS = 0x00089006, 0x00069007, 0x00078008, 0x00069003
ATTACH_REND_DATA, ATTACH_TITLE, ATTACH_DATA, ATTACHMENT = 0x00069002, 0x00018010, 0x0006800F, 0x00069005
ATTACH_MODIFY_DATE = 0x00038013
PT_LONG, PT_BOOLEAN, PT_STRING8, PT_UNICODE, PT_BINARY, PT_OBJECT = 0x0003, 0x000B, 0x001E, 0x001F, 0x0102, 0x000D
PR_DISPLAY_NAME, PR_ATTACH_DATA_OBJ, PR_ATTACH_FILENAME = 0x3001, 0x3701, 0x3704
PR_ATTACH_METHOD, PR_ATTACH_LONG_FILENAME, PR_ATTACH_MIME_TAG = 0x3705, 0x3707, 0x370E
PR_SUBJECT, PR_RTF_IN_SYNC = 0x0037, 0x0E1F


def checksum(data: bytes) -> int:
    return sum(data) & 0xFFFF


def attribute(level: int, attr: int, data: bytes, *, check: int | None = None, length: int | None = None) -> bytes:
    """One attribute: level, id, length (`length` to declare another), data,
    checksum (`check` to write another)."""
    return (struct.pack("<BII", level, attr, len(data) if length is None else length) + data
            + struct.pack("<H", checksum(data) if check is None else check))


def _padded(value: bytes) -> bytes:
    return struct.pack("<I", len(value)) + value + b"\0" * (-len(value) % 4)


def mapi_props(props: list[tuple[int, int, object]]) -> bytes:
    """MAPI properties as TNEF encodes them: a count, then each property's
    type, id and value (fixed ones padded to 4 bytes; strings, binaries and
    objects as a count of one, a length, the bytes padded to 4)."""
    out = [struct.pack("<I", len(props))]
    for ptype, pid, value in props:
        out.append(struct.pack("<HH", ptype, pid))
        if ptype in (PT_LONG, PT_BOOLEAN):
            out.append(struct.pack("<I", int(value)))
        elif ptype == PT_UNICODE:
            out.append(struct.pack("<I", 1) + _padded(str(value).encode("utf-16-le") + b"\0\0"))
        elif ptype == PT_STRING8:
            raw = value if isinstance(value, bytes) else str(value).encode("ascii")
            out.append(struct.pack("<I", 1) + _padded(raw + b"\0"))
        elif ptype in (PT_BINARY, PT_OBJECT):
            out.append(struct.pack("<I", 1) + _padded(bytes(value)))
        else:
            raise ValueError(f"type {ptype:#06x} not written by this builder")
    return b"".join(out)


@dataclass
class Attached:
    """One attachment: a file (`data`), or an attached Outlook item
    (`message`: its own TNEF stream). `long_name` goes in
    PR_ATTACH_LONG_FILENAME (UTF-16), `title` (bytes, in the stream's code
    page) in attAttachTitle; either may be None."""

    long_name: str | None = None
    data: bytes | None = None
    title: bytes | None = None
    message: bytes | None = None
    short_name: str | None = None

    def attributes(self) -> bytes:
        rend = struct.pack("<HIHHI", 1, 0xFFFFFFFF, 0xFFFF, 0xFFFF, 0)
        out = [attribute(2, ATTACH_REND_DATA, rend)]
        if self.title is not None:
            out.append(attribute(2, ATTACH_TITLE, self.title + b"\0"))
        out.append(attribute(2, ATTACH_MODIFY_DATE, struct.pack("<7H", 2026, 12, 6, 10, 0, 0, 0)))
        props: list[tuple[int, int, object]] = []
        if self.message is not None:
            props += [(PT_LONG, PR_ATTACH_METHOD, 5), (PT_UNICODE, PR_DISPLAY_NAME, self.long_name or "message"),
                      (PT_OBJECT, PR_ATTACH_DATA_OBJ, IID_IMESSAGE + self.message)]
        else:
            out.append(attribute(2, ATTACH_DATA, self.data or b""))
            props.append((PT_LONG, PR_ATTACH_METHOD, 1))
            if self.long_name is not None:
                props.append((PT_UNICODE, PR_ATTACH_LONG_FILENAME, self.long_name))
            if self.short_name is not None:
                props.append((PT_STRING8, PR_ATTACH_FILENAME, self.short_name))
            props.append((PT_STRING8, PR_ATTACH_MIME_TAG, "application/octet-stream"))
        out.append(attribute(2, ATTACHMENT, mapi_props(props)))
        return b"".join(out)


def message_attributes(codepage: int = 936, subject: str = "发票") -> bytes:
    """The message's attributes as Outlook writes them before its attachments."""
    props = mapi_props([(PT_BOOLEAN, PR_RTF_IN_SYNC, 1), (PT_UNICODE, PR_SUBJECT, subject)])
    return (attribute(1, TNEF_VERSION, struct.pack("<I", 0x00010000))
            + attribute(1, OEM_CODEPAGE, struct.pack("<II", codepage, 0))
            + attribute(1, MESSAGE_CLASS, b"IPM.Microsoft Mail.Note\0")
            + attribute(1, MAPI_PROPS, props))


def tnef(attachments: list[Attached], *, codepage: int = 936, key: int = 0x5A3C) -> bytes:
    """A whole winmail.dat holding `attachments`."""
    return (SIGNATURE + struct.pack("<H", key) + message_attributes(codepage)
            + b"".join(a.attributes() for a in attachments))
