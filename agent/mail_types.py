"""The data classes of agent/mail.py: what a message may cost, and what
reading it yields (attachments, refusals, headers).

Apart so that the walk over parts (agent/mail_parts.py), which builds
attachments and refusals, and parse_message (agent/mail.py), which gathers
them, share them without importing each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from agent.safezip import DEFAULT_LIMITS, ZipLimits

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
    max_parts: int = 5000  # per message, as max_attachments is
    # A file of many messages (an mbox) reads each within the limits above,
    # and at most this many parts in all (the time one file may hold intake).
    max_file_parts: int = 100_000
    # Levels of message/rfc822 to descend: a supplier's invoice mail forwarded
    # by the employee, then by their manager to the finance mailbox, is three.
    # Each level decoded is at most 3/4 of the one around it (memory stays a
    # small multiple of the message).
    max_nested_messages: int = 3
    zip_limits: ZipLimits = _MAIL_ZIP_LIMITS

    @classmethod
    def from_config(cls, mail: Mapping[str, Any]) -> MailLimits:
        """Limits from the config's [mail] section; missing keys keep the defaults."""
        base = cls()
        return cls(
            max_message_bytes=int(mail.get("max_message_mb", base.max_message_bytes >> 20)) << 20,
            max_attachments=int(mail.get("max_attachments", base.max_attachments)),
            min_image_bytes=int(mail.get("min_inline_image_kb", base.min_image_bytes >> 10)) << 10,
            max_nested_messages=int(mail.get("max_nested_messages", base.max_nested_messages)),
        )


DEFAULT_MAIL_LIMITS = MailLimits()


@dataclass(frozen=True)
class Attachment:
    """An invoice-like file taken from a message.

    `filename` is one sanitised path component (never empty); `media_type`
    comes from the content; `from_zip` names the archive(s) it came out of,
    e.g. "a.zip" or "a.zip/b.zip", else None; an Outlook winmail.dat (TNEF)
    counts as one: "winmail.dat", "a.zip/winmail.dat", "winmail.dat/b.zip".
    """

    filename: str
    data: bytes
    media_type: str
    from_zip: str | None = None
    mail: MailHeaders | None = None  # its own message's headers when the file holds several


@dataclass(frozen=True)
class MailHeaders:
    """One message's headers, as ParsedMail records them."""

    message_id: str | None
    from_: str | None
    subject: str | None
    date: str | None


@dataclass(frozen=True)
class Refusal:
    """A part we did not take. `reason` is a stable code, `detail` is for people.

    Reasons: empty, small-image, unsupported-format, too-large,
    message-size-limit, too-many-attachments, too-many-parts,
    nested-too-deep, unsafe-name, duplicate-name, zip-corrupt,
    zip-limit-exceeded, zip-encrypted, tnef-corrupt (a winmail.dat cut
    short or damaged, or one file in it), undecodable, trailing-content
    (text or parts after a multipart's close delimiter), preamble-content
    (parts, or more than a short note, before its first delimiter).
    """

    filename: str
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class ParsedMail:
    """The headers a document records, and what was taken or refused.

    Header fields are decoded text with control characters removed, or
    None when absent. `date` is ISO 8601 when parseable, else the raw text.
    A file holding several messages (`messages` > 1) keeps here only the
    values all its messages share (one message's sender is never shown as
    another's); each attachment's own are in `Attachment.mail`.
    """

    message_id: str | None
    from_: str | None
    subject: str | None
    date: str | None
    attachments: list[Attachment] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    messages: int = 1
    unclosed: bool = False  # a multipart ended without its close delimiter (refused as `unclosed`)
