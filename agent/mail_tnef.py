"""The files in an Outlook TNEF stream (winmail.dat) taken as the message's
own attachments: each through the walk's `_take` (agent/mail_parts.py), so
the same sniffing and limits apply as to any attachment, named as TNEF names
it, `from_zip` naming the winmail.dat it came out of.

What a TNEF can add is bounded by the limits the message already has: each
of its attachments counts as a MIME part of the message (`max_parts`), and
so do its attributes and MAPI properties, ATTRIBUTES_PER_PART to a part
(every stream of a message, or of a zip, shares one budget), each file taken
as an attachment (`max_attachments`, `max_attachment_bytes`,
`max_total_bytes`), a TNEF inside a TNEF (a winmail.dat in one, an attached
Outlook item) as a nested message (`max_nested_messages`); a zip in a TNEF
that came out of a zip shares that archive's budget. A stream cut short or
damaged is refused by name (`tnef-corrupt`, in English and Chinese) after
the attachments before the damage are taken; the message's other parts are
read as ever. The reader itself is agent/tnef.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.mailnames import sanitise_filename
from agent.tnef import Budget, Cut, TnefFile, is_tnef, tnef_files

if TYPE_CHECKING:
    from agent.mail_parts import _Collector
    from agent.safezip import SafeZip

# Outlook writes about ten attributes for the message and up to eight for
# each attachment: a stream of more than this many per part the message may
# have is no message (50 MB of empty attributes would take seconds to walk).
# The attributes (and MAPI properties) read are charged to the message's
# parts, this many a part: every stream in a message (or in a zip) shares
# its parts budget, never a fresh one each.
ATTRIBUTES_PER_PART = 16

# What a refusal of a TNEF stream that is a file of its own (one saved into
# the mail folder: parse_message has no name for it) is named.
WHOLE_FILE = "(the TNEF file)"


def take_tnef(collector: _Collector, data: bytes | memoryview, shown: str | None,
              archive: SafeZip | None = None) -> bool:
    """Take the attachments of the TNEF stream `data` (named `shown`; None
    for a stream that is the whole file) as the message's attachments,
    refusing by name each that cannot be, and the stream when it is cut
    short, damaged or nested too deep. False when the stream holds no
    attachment and nothing was refused: the caller says what it is. Never
    raises on any bytes."""
    c, lim = collector, collector.limits
    if c.tnef_depth >= lim.max_nested_messages:
        c.refuse(shown or WHOLE_FILE, "nested-too-deep",
                 f"an Outlook TNEF (winmail.dat) inside another, deeper than {lim.max_nested_messages} levels; "
                 f"not read / winmail.dat 嵌套超过 {lim.max_nested_messages} 层，未读取")
        return True
    c.tnef_depth += 1
    try:
        return _walk(c, data, shown, archive)
    finally:
        c.tnef_depth -= 1


def _walk(c: _Collector, data: bytes | memoryview, shown: str | None, archive: SafeZip | None) -> bool:
    lim, seen = c.limits, 0
    left = lim.max_parts - c.message_parts
    if left <= 0:
        c.refuse(shown or WHOLE_FILE, "too-many-parts",
                 f"more than {lim.max_parts} MIME parts (Outlook TNEF attributes counted {ATTRIBUTES_PER_PART} "
                 f"a part) before this Outlook TNEF (winmail.dat); not read")
        return True
    budget, charged = Budget(ATTRIBUTES_PER_PART * left), 0

    def charge() -> None:
        # What this stream read so far, as parts: before anything else
        # (a stream inside this one) counts against the same budget.
        nonlocal charged
        parts = budget.spent // ATTRIBUTES_PER_PART - charged
        c.message_parts += parts
        c.parts_seen += parts
        charged += parts

    try:
        for item in tnef_files(data, budget):
            charge()
            if isinstance(item, Cut):
                if budget.left < 0 and budget.limit < ATTRIBUTES_PER_PART * lim.max_parts:
                    # Cut by what the message's other parts left: its limit, not damage.
                    c.refuse(shown or WHOLE_FILE, "too-many-parts",
                             f"more than {lim.max_parts} MIME parts (Outlook TNEF attributes counted "
                             f"{ATTRIBUTES_PER_PART} a part): this Outlook TNEF (winmail.dat) was read to byte "
                             f"{item.at} of {item.size}, {seen} attachment(s) before it; the rest of it was not read")
                else:
                    c.refuse(shown or WHOLE_FILE, "tnef-corrupt", cut_text(item, seen, c.index))
                return True
            seen += 1
            if not _one(c, item, shown, archive):
                return True
        return seen > 0
    finally:
        charge()


def _one(c: _Collector, item: TnefFile, shown: str | None, archive: SafeZip | None) -> bool:
    """Take one attachment of the stream; False when the message's parts
    are spent (the rest refused at once)."""
    lim = c.limits
    c.parts_seen += 1
    c.message_parts += 1
    if c.message_parts > lim.max_parts and item.damaged is None:
        # (A damaged one is still named: the one whose properties spent the budget.)
        c.refuse(f"{shown}/(rest)" if shown else f"{WHOLE_FILE}/(rest)", "too-many-parts",
                 f"more than {lim.max_parts} MIME parts with the attachments of the Outlook TNEF "
                 f"(winmail.dat); the rest of it was not read")
        return False
    c.index += 1
    if item.data is not None:
        c._take(item.data, item.name, from_zip=shown, archive=archive)
        return True
    name = sanitise_filename(item.name, "unknown", c.index)
    inner = f"{shown}/{name}" if shown else name
    if item.damaged is not None:
        c.refuse(inner, "tnef-corrupt", item.damaged)
    elif not is_tnef(item.message):
        c.refuse(inner, "tnef-corrupt", "an attached Outlook item whose content is no TNEF stream: not read / "
                                        "附件中的 Outlook 邮件项目无法读取")
    else:
        # An Outlook item attached to the message (a forwarded mail): its
        # own attachments are the message's, as a forward's are.
        take_tnef(c, item.message, inner, archive)
    return True


def cut_text(cut: Cut, seen: int, index: int = 0) -> str:
    """A cut-off or damaged stream's refusal detail, English then Chinese;
    the attachment it cut through named as its file would be (one safe
    path component: no control characters, no `../`, at most 200 bytes)."""
    where = sanitise_filename(cut.inside, "unknown", index + 1) if cut.inside else None
    inside = f", inside the attachment {where}" if where else ""
    inside_zh = f"（在附件 {where} 中）" if where else ""
    return (f"an Outlook TNEF file (winmail.dat) cut short or damaged at byte {cut.at} of {cut.size} "
            f"({cut.why}{inside}): what follows it cannot be read; {seen} attachment(s) before it were read; "
            "ask the sender to send it again, as plain text or HTML / "
            f"Outlook 的 winmail.dat（TNEF）在第 {cut.at} 字节处截断或损坏（共 {cut.size} 字节）{inside_zh}："
            f"之后的附件无法读取，之前的 {seen} 个附件已读取；请让发件人改用纯文本或 HTML 格式重发")
