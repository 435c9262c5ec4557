"""Taking one e-mail file (an .eml, a Maildir message): the message into the
vault, each invoice attachment a document, the rest refusals naming it.

Apart from service/intake.py, which calls it in two halves: `store_mail`
while the group is gathered (every byte fsynced into the vault, no ledger
lock held), its `write` when the group is committed (the rows)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

from agent.capture import open_source, record_bytes
from agent.config import WatchConfig
from agent.errors import CaptureError, ExtractError
from agent.filenames import exact_path, storable
from agent.ledger import Ledger
from agent.mail import MailLimits, ParsedMail, parse_message
from agent.tnef import is_tnef
from agent.mime import message_head, starts_like_message
from agent.extract.sniff import sniff
from agent.extract.unreadable import unreadable_kind
from agent.vault import Vault

log = logging.getLogger("fapiao.intake")


class MailUnfinished(Exception):
    """The message is still being written: not taken yet (`store_mail`)."""


class NotAMessage(Exception):
    """The file in the e-mail folder is an invoice file, not a message (`store_mail`)."""

    def __init__(self, format: str):
        super().__init__(f"a {format} file, not an e-mail")
        self.format = format


# Formats a person drops in a mail folder by hand; a message is "unknown"
# to sniff (its headers are text), and one starting as a message is one
# even when its first KB holds a PDF sent 8-bit.
_FILE_FORMATS = frozenset({"pdf", "ofd", "zip", "xml", "png", "jpeg", "tiff", "bmp", "gif", "webp"})


def store_mail(ledger: Ledger, vault: Vault, path: Path, watch: WatchConfig, *, now: str, label: str | None,
               max_bytes: int, limits: MailLimits, actor: str, young: bool = False) -> Callable[[], list[int]]:
    """Put the message at `path` and its attachments into the vault (fsynced
    on return) and return the write of its rows (`MailWrite`: attachments
    captured, refusals recorded, the message marked taken; the write
    returns the new documents' ids). Raises CaptureError; NotAMessage,
    storing nothing, for an invoice file (`_FILE_FORMATS` by its bytes)
    dropped there by hand, to be taken as a file; and MailUnfinished,
    storing nothing, when the file is `young` (changed lately) and a
    multipart of it (any message of an mbox, any level) lacks its closing
    delimiter: its writer is between two goes. An old one is taken as it
    is, refused as `unclosed` besides what it holds, and left in place."""
    # The message itself goes into the vault (so nothing is lost), but only
    # its invoice attachments become documents.
    with open_source(path, max_bytes=max_bytes, root=watch.path) as f:
        data = f.read(max_bytes + 1)  # read once: stored, then parsed
    if len(data) > max_bytes:  # grew after open_source's size check
        raise CaptureError(f"{path}: larger than the limit of {max_bytes // (1024 * 1024)} MB "
                           "(agent.max_file_mb)")
    if not starts_like_message(data) and (kind := sniff(data[:4096])) in _FILE_FORMATS:
        raise NotAMessage(kind)
    parsed = _parse(data, limits, shown(path))
    if young and isinstance(parsed, ParsedMail) and parsed.unclosed:
        raise MailUnfinished(f"{path}: the message has no closing MIME delimiter yet (still being written)")
    stored = vault.put_bytes(data)
    if path.parent.name == "cur" and ledger.mail_seen(stored.sha256):
        # An IMAP client re-flags a message by renaming it within cur/
        # (or it predates the remembered new/ -> cur/ move): the very
        # bytes already taken, whose documents already name them.
        log.info("e-mail already taken: the same message, renamed within the Maildir",
                 extra={"path": storable(str(path)), "sha256": stored.sha256})
        return MailWrite(lambda: [], False)
    brought: list[int] = []
    return MailWrite(mail_rows(ledger, vault, data, stored.sha256, path=path, source=str(watch.path), label=label,
                               limits=limits, now=now, actor=actor, parsed=parsed, brought=brought),
                     isinstance(parsed, ParsedMail) and parsed.unclosed, brought)


class MailWrite(NamedTuple):
    """`store_mail`'s answer: the write of the rows, and whether the message
    was cut off (a multipart without its close delimiter, taken as it is):
    its file is then left where it is, so that the rest, if its writer
    comes back, is taken too."""

    write: Callable[[], list[int]]
    unclosed: bool
    # Every document the message brought, new or known, once `write` ran:
    # a "source kept" event names the file on each (Intake._act_once).
    brought: Sequence[int] = ()


def _parse(data: bytes, limits: MailLimits, name: str) -> ParsedMail | ExtractError:
    try:
        return parse_message(data, limits, name=name)
    except ExtractError as e:
        return e


def is_message(head: bytes) -> bool:
    """Whether a file's first bytes are an e-mail's (`mime.message_head`),
    not an invoice file's or junk, or an Outlook winmail.dat's (TNEF), which
    `parse_message` reads as a message without headers."""
    return is_tnef(head) or (sniff(head) not in _FILE_FORMATS and message_head(head))


def mail_rows(ledger: Ledger, vault: Vault, data: bytes, sha256: str, *, path: Path, source: str,
              label: str | None, limits: MailLimits, now: str, actor: str,
              parsed: ParsedMail | ExtractError | None = None,
              brought: list[int] | None = None) -> Callable[[], list[int]]:
    """Parse the message `data` (from `path`; its bytes already durable in
    the vault as `sha256`), put its attachments into the vault (fsynced on
    return) and return the write of its rows: attachments captured (source
    `source`), refusals recorded, the message marked taken; the write
    returns the new documents' ids, and appends every document it names,
    new or known, to `brought` when given. A message that cannot be read
    is refused whole, its hash named. `parsed`: `data` already parsed."""
    mail = _parse(data, limits, shown(path)) if parsed is None else parsed
    if isinstance(mail, ExtractError):
        e = mail
        # Refused whole, but already an original in the vault: the refusal
        # names its hash, so it is referenced, explained and backed up.
        reason = storable(f"{e.reason}: e-mail refused: {e.message}")

        def refuse() -> list[int]:
            ledger.record_refusal(source=storable(f"e-mail {path.name}"), name=shown(path),
                                  sha256=sha256, reason=reason, now=now)
            ledger.mark_mail_seen(sha256, message_id=None, now=now, document_count=0)
            log.warning("refused", extra={"path": storable(str(path)), "reason": reason, "sha256": sha256})
            return []
        return refuse
    attachments = [(att, vault.put_bytes(att.data)) for att in mail.attachments]
    not_mail = None if starts_like_message(data) else unreadable_kind(data[:1024])

    def write() -> list[int]:
        # Only the bytes make two messages the same: a copier that restarted
        # its counter, or a resent mail, reuses the Message-ID of another
        # message, and that one is taken in full like any other. The same
        # bytes again (a copy of the .eml, a Maildir redelivery) are taken
        # too: each attachment gets another source row, never a silent skip.
        docs = []
        for att, put in attachments:
            # A file of several messages (an mbox): each attachment names its own.
            own = att.mail or mail
            details = {"message_id": own.message_id, "from": own.from_, "subject": own.subject,
                       "date": own.date, "message_sha256": sha256, "label": label}
            got = record_bytes(ledger, put.sha256, put.size, att.data[:4096], name=att.filename,
                               source_kind="email", source=source, now=now, actor=actor,
                               details={**details, "from_zip": att.from_zip})
            if got.created:
                docs.append(got.document_id)
            if brought is not None and got.document_id not in brought:
                brought.append(got.document_id)
        refused_in = storable(f"e-mail {mail.message_id or path.name}")
        for r in mail.refusals:
            ledger.record_refusal(source=refused_in, name=r.filename, sha256=sha256,
                                  reason=f"{r.reason}: {r.detail}" if r.detail else r.reason, now=now)
        if not mail.attachments and not mail.refusals:
            # Nothing to read, but the message is an original all the same:
            # the refusal says so to the operator and gets it backed up. A
            # RAR or a winmail.dat saved into the folder is no e-mail at all:
            # named as what it is, not as a message without attachments.
            ledger.record_refusal(source=refused_in, name=shown(path), sha256=sha256,
                                  reason=f"unsupported-format: {not_mail.text}" if not_mail
                                  else "no-attachment: the e-mail carries no invoice file", now=now)
        times = ledger.mark_mail_seen(sha256, message_id=mail.message_id, now=now,
                                      document_count=len(mail.attachments))
        extra = {"path": storable(str(path)), "attachments": len(mail.attachments),
                 "refused": len(mail.refusals), "message_id": mail.message_id or "", "sha256": sha256}
        if times > 1:
            log.info("e-mail taken again: the same bytes as before, recorded as another source of each "
                     "of its documents", extra={**extra, "times": times})
        else:
            log.info("e-mail taken", extra=extra)
        return docs
    return write


def shown(path: Path) -> str:
    """The file's name as refusals record it: `exact_path`, so two names
    never look alike (bytes that are not UTF-8 as \\xNN, a backslash of
    the name that reads as such an escape as \\x5c)."""
    return exact_path(path.name)
