"""One e-mail (bytes) → the invoice attachments in it, each with a safe name.

Names and header text are read by agent/mailnames.py (RFC 2231, RFC 2047,
raw 8-bit GBK), bytes by agent/mime.py. Formats are judged by content
(`sniff`), never by name. Every part we do not take, and anything the file
holds outside its parts, is returned as a `Refusal` with a stable reason
code, so the ledger can say why. The walk over one message's parts is
agent/mail_parts.py; the data classes are agent/mail_types.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

from agent.errors import CaptureError, ExtractError
from agent.mail_parts import _Collector
from agent.mail_tnef import take_tnef
from agent.mail_types import DEFAULT_MAIL_LIMITS, Attachment, MailHeaders, MailLimits, ParsedMail, Refusal
from agent.mailnames import date_text, header_text, sender_text
from agent.mime import HeaderTooLarge, read_part, split_mbox
from agent.tnef import is_tnef

__all__ = ["DEFAULT_MAIL_LIMITS", "Attachment", "MailHeaders", "MailLimits", "ParsedMail", "Refusal",
           "ZipContents", "iter_maildir", "maildir_cur_path", "parse_message", "read_zip"]


def parse_message(data: bytes, limits: MailLimits = DEFAULT_MAIL_LIMITS, *, name: str | None = None) -> ParsedMail:
    """Parse one RFC 5322 message and return its invoice attachments.

    Never raises on bad mail except ExtractError: "limit-exceeded" when the
    message is larger than `max_message_bytes` or its header block passes
    agent.mime.MAX_HEADER_BYTES; "corrupt" when it is not bytes. Damaged
    parts become refusals; the rest of the message is still read.
    Memory is bounded by a small multiple of the message's size, whatever
    its shape (agent/mime.py reads bodies as spans, never line by line).

    Nothing in the file goes unaccounted: a file holding several messages
    (an mbox, or messages written one after another) has each read, within
    the one file's limits; text after a multipart's close delimiter that is
    not a further message is refused (trailing-content), never dropped.
    Each message of such a file has its own `max_parts` and
    `max_attachments`; the file reads at most `max_file_parts` parts, and
    the messages past them are refused by number (too-many-parts).
    A message with bare CR line ends and no LF at all is read as if its
    line ends were LF.

    An Outlook TNEF file (a winmail.dat saved into the mail folder) is read
    as a message without headers whose attachments are the files in it,
    within the same limits (agent/mail_tnef.py); one holding none gives
    nothing, for the caller to name the file. `name`, the file's own name
    when known, names such a file's refusals and the origin of its files.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ExtractError("corrupt", "a message must be bytes")
    if len(data) > limits.max_message_bytes:
        raise ExtractError("limit-exceeded", f"message is {len(data)} bytes, "
                                             f"limit {limits.max_message_bytes}")
    data = bytes(data) if not isinstance(data, bytes) else data
    collector = _Collector(limits)
    if is_tnef(data):   # (binary: never a line end to mend)
        take_tnef(collector, data, name)
        return ParsedMail(None, None, None, None, collector.attachments, collector.refusals)
    if b"\n" not in data and b"\r" in data:
        # Old Mac line ends: without this, the header block never ends (or
        # ends at the first blank part) and every part is misread.
        data = data.replace(b"\r", b"\n")
    pending = split_mbox(data)
    messages: list[tuple[MailHeaders, slice, slice]] = []  # headers, its attachments, its refusals
    while pending and collector.parts_seen < limits.max_file_parts:
        span = pending.pop(0)
        collector.begin_message()
        try:
            root = read_part(span)
        except HeaderTooLarge as e:
            if not messages:
                raise ExtractError("limit-exceeded", f"the message's {e}") from None
            collector.refuse(f"message-{len(messages) + 1}", "too-large", f"message {len(messages) + 1} "
                             f"in the file: its {e}; it and what follows were not read")
            break
        a0, r0 = len(collector.attachments), len(collector.refusals)
        following = collector.walk(root)
        msg = root.headers
        head = MailHeaders(header_text(msg, "Message-ID"), sender_text(msg), header_text(msg, "Subject"),
                           date_text(msg))
        messages.append((head, slice(a0, len(collector.attachments)), slice(r0, len(collector.refusals))))
        if following is not None:
            pending.insert(0, following)
    if pending:
        # The file's budget is spent: the messages left are named, never
        # dropped (the file itself is kept in the vault).
        first = len(messages) + 1
        more = f"messages {first} to {first + len(pending) - 1}" if len(pending) > 1 else f"message {first}"
        collector.refuse(f"message-{first}", "too-many-parts",
                         f"{more} of the file not read: its first {len(messages)} messages hold "
                         f"{collector.parts_seen} MIME parts, the limit for one file is {limits.max_file_parts}")
    if len(messages) == 1:
        head = messages[0][0]
        return ParsedMail(head.message_id, head.from_, head.subject, head.date,
                          collector.attachments, collector.refusals, unclosed=collector.unclosed)
    return _several(messages, collector)


def _several(messages: list[tuple[MailHeaders, slice, slice]], collector: _Collector) -> ParsedMail:
    """A file of several messages: each attachment with its own message's
    headers, each refusal saying which message, the file's headers only
    those all messages share."""
    attachments: list[Attachment] = []
    refusals = list(collector.refusals)
    for number, (head, atts, refs) in enumerate(messages, 1):
        attachments += [replace(a, mail=head) for a in collector.attachments[atts]]
        which = f"message {number} of {len(messages)} in the file ({head.message_id or 'no Message-ID'})"
        refusals[refs] = [replace(r, detail=f"{which}: {r.detail}" if r.detail else which)
                          for r in collector.refusals[refs]]
    heads = [head for head, _, _ in messages]

    def shared(name: str) -> str | None:
        values = {getattr(h, name) for h in heads}
        return values.pop() if len(values) == 1 else None
    return ParsedMail(shared("message_id"), shared("from_"), shared("subject"), shared("date"),
                      attachments, refusals, messages=len(messages), unclosed=collector.unclosed)


class ZipContents(NamedTuple):
    """`read_zip`'s answer: the invoice files taken, the members refused
    (and why), and the archive's name as they give it. A refusal named
    `shown` itself refuses the archive whole (`zip-corrupt` for one cut
    short or still being written, an Office file): nothing in it was taken."""

    attachments: list[Attachment]
    refusals: list[Refusal]
    shown: str


def read_zip(data: bytes, name: str, limits: MailLimits = DEFAULT_MAIL_LIMITS) -> ZipContents:
    """The invoice files in a zip archive that came on its own (dropped in
    a watched folder, given to `ingest`): read exactly as a zip attached to
    an e-mail is (members judged by content, zips inside expanded, the
    same zip limits), except that one archive may hold as many invoice
    files as it may hold members (a bulk download from the tax platform
    holds hundreds), and is not itself refused for its size (the agent's
    max_file_mb took it in); its members are, past the same limits. Every
    member not taken is a Refusal; a member's `from_zip` names the archive
    (`name`, sanitised). Never raises."""
    zl = limits.zip_limits
    collector = _Collector(replace(limits, max_attachments=max(limits.max_attachments, zl.max_members),
                                   max_total_bytes=max(limits.max_total_bytes, zl.max_total_bytes)))
    shown = collector.take_archive(bytes(data), name)
    return ZipContents(collector.attachments, collector.refusals, shown)


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

