"""Taking one ready file from a watched folder: capture, then keep, move or delete.

The source is touched only after its bytes are durable in the vault and
recorded in the ledger. A file that failed to capture is never moved or
deleted; a transient failure (disk full) leaves it for the next rescan.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import stat
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from agent.capture import capture_bytes, capture_file, open_source
from agent.config import WatchConfig
from agent.errors import CaptureError, ExtractError
from agent.ledger import Ledger
from agent.mail import MailLimits, maildir_cur_path, parse_message
from agent.vault import Vault

log = logging.getLogger("fapiao.intake")


@dataclass
class IntakeResult:
    """What became of one file: new document ids, and whether to retry later."""

    documents: list[int]
    retry: bool = False
    skipped: bool = False
    error: str | None = None  # why, when `retry` (the vault's disk is full or failing)
    refused: bool = False     # inside `refusal_batch()`: durable only once the batch is written


class Intake:
    """Captures files for the daemon (main thread only)."""

    def __init__(self, ledger: Ledger, vault: Vault, *, max_bytes: int, mail_limits: MailLimits,
                 actor: str):
        self.ledger, self.vault = ledger, vault
        self.max_bytes, self.mail_limits, self.actor = max_bytes, mail_limits, actor
        self._held: list[_Refusal] | None = None  # refusals of the open batch, not yet written

    @contextmanager
    def refusal_batch(self) -> Iterator[None]:
        """Hold the file refusals made inside and write them all in one
        transaction (one fsync) at the end, instead of one each. A refusal
        never moves or deletes its file, so until the batch is written the
        file is merely still where it was: the caller marks those paths done
        only after a clean exit. On an error the held refusals are dropped
        (their files are taken again later) and the error propagates."""
        self._held = []
        try:
            yield
            held = self._held
        finally:
            self._held = None
        if held:
            with self.ledger.transaction():
                for r in held:
                    self._write_refusal(r)

    def take(self, path: Path, watch: WatchConfig, *, now: str, today: dt.date) -> IntakeResult:
        """Capture `path` from `watch`; never raises for a bad file."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return IntakeResult([], skipped=True)
        except OSError as e:
            st = None
            log.warning("cannot stat file", extra={"path": _storable(str(path)), "error": e.strerror})
        key = _storable(str(path))
        if st is not None and self.ledger.seen_file(key, st.st_size, st.st_mtime_ns):
            return IntakeResult([], skipped=True)
        if st is not None and (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
            # Refused on lstat alone: opening a device node can act on the
            # device (a tape rewinds, /dev/watchdog starts its timer).
            kind = "character" if stat.S_ISCHR(st.st_mode) else "block"
            return self._refuse(path, watch, st, f"{path}: is a {kind} device, not a regular file", now=now)
        if st is not None and stat.S_ISREG(st.st_mode) and st.st_size == 0:
            # Junk known from lstat alone: nothing to open, hash or store.
            return self._refuse(path, watch, st, f"{path}: empty: the file has no bytes (left where it is; "
                                "taken when it changes)", now=now)
        label = _label(path, watch)
        try:
            if watch.kind == "email":
                docs = self._take_mail(path, watch, now=now, label=label)
            else:
                got = capture_file(self.ledger, self.vault, path, source_kind="scanner", source=str(watch.path),
                                   now=now, actor=self.actor, max_bytes=self.max_bytes,
                                   details={"label": label} if label else None)
                docs = [got.document_id] if got.created else []
                log.info("captured", extra={"path": _storable(str(path)), "document": got.document_id,
                                            "new": got.created, "label": label or ""})
        except CaptureError as e:
            if e.transient:
                log.error("capture failed; will retry", extra={"path": _storable(str(path)), "error": str(e)})
                return IntakeResult([], retry=True, error=_storable(str(e)))
            return self._refuse(path, watch, st, str(e), now=now)
        self._after(path, watch, st, now=now, today=today)
        return IntakeResult(docs)

    def _refuse(self, path: Path, watch: WatchConfig, st: os.stat_result | None, reason: str, *,
                now: str) -> IntakeResult:
        # The file stays where it is; the seen-file row keeps rescans from
        # refusing it again until it changes. (The log line is rate-limited:
        # a flood gives one line a minute with a count; every file has its row.)
        refusal = _Refusal(_storable(str(path)), _storable(str(watch.path)), _shown(path), _storable(reason), st, now)
        log.warning("refused", extra={"path": refusal.key, "reason": refusal.reason})
        if self._held is not None:
            self._held.append(refusal)
            return IntakeResult([], refused=True)
        with self.ledger.transaction():
            self._write_refusal(refusal)
        return IntakeResult([])

    def _write_refusal(self, r: "_Refusal") -> None:
        self.ledger.record_refusal(source=r.source, name=r.name, reason=r.reason, now=r.now)
        if r.st is not None:
            self.ledger.remember_file(r.key, r.st.st_size, r.st.st_mtime_ns, outcome="refused", now=r.now)

    def _take_mail(self, path: Path, watch: WatchConfig, *, now: str, label: str | None) -> list[int]:
        # The message itself goes into the vault (so nothing is lost), but only
        # its invoice attachments become documents.
        with open_source(path, max_bytes=self.max_bytes) as f:
            data = f.read(self.max_bytes + 1)  # read once: stored, then parsed
        if len(data) > self.max_bytes:  # grew after open_source's size check
            raise CaptureError(f"{path}: larger than the limit of {self.max_bytes // (1024 * 1024)} MB "
                               "(agent.max_file_mb)")
        stored = self.vault.put_bytes(data)
        try:
            mail = parse_message(data, self.mail_limits)
        except ExtractError as e:
            raise CaptureError(f"{path}: e-mail refused: {e.message}") from None
        # Only the bytes make two messages the same: a copier that restarted
        # its counter, or a resent mail, reuses the Message-ID of another
        # message, and that one is taken in full like any other. The same
        # bytes again (a copy of the .eml, a Maildir redelivery) are taken
        # too: each attachment gets another source row, never a silent skip.
        details = {"message_id": mail.message_id, "from": mail.from_, "subject": mail.subject,
                   "date": mail.date, "message_sha256": stored.sha256, "label": label}
        docs = []
        for att in mail.attachments:
            got = capture_bytes(self.ledger, self.vault, att.data, name=att.filename, source_kind="email",
                                source=str(watch.path), now=now, actor=self.actor,
                                details={**details, "from_zip": att.from_zip})
            if got.created:
                docs.append(got.document_id)
        source = _storable(f"e-mail {mail.message_id or path.name}")
        for r in mail.refusals:
            self.ledger.record_refusal(source=source, name=r.filename, sha256=stored.sha256,
                                       reason=f"{r.reason}: {r.detail}" if r.detail else r.reason, now=now)
        if not mail.attachments and not mail.refusals:
            # Nothing to read, but the message is an original all the same:
            # the refusal says so to the operator and gets it backed up.
            self.ledger.record_refusal(source=source, name=_shown(path), sha256=stored.sha256,
                                       reason="no-attachment: the e-mail carries no invoice file", now=now)
        times = self.ledger.mark_mail_seen(stored.sha256, message_id=mail.message_id, now=now,
                                           document_count=len(mail.attachments))
        extra = {"path": _storable(str(path)), "attachments": len(mail.attachments),
                 "refused": len(mail.refusals), "message_id": mail.message_id or "", "sha256": stored.sha256}
        if times > 1:
            log.info("e-mail taken again: the same bytes as before, recorded as another source of each "
                     "of its documents", extra={**extra, "times": times})
        else:
            log.info("e-mail taken", extra=extra)
        return docs

    def _after(self, path: Path, watch: WatchConfig, st: os.stat_result | None, *, now: str,
               today: dt.date) -> None:
        if watch.kind == "email" and path.parent.name == "new":
            _rename(path, maildir_cur_path(path))  # Maildir: new/ -> cur/ once taken
            return
        if watch.after == "delete":
            path.unlink(missing_ok=True)
        elif watch.after == "move":
            target = path.parent / "processed" / today.isoformat()
            target.mkdir(parents=True, exist_ok=True)
            _rename(path, _free_name(target / path.name))
        elif st is not None:
            self.ledger.remember_file(_storable(str(path)), st.st_size, st.st_mtime_ns, outcome="captured", now=now)


def _label(path: Path, watch: WatchConfig) -> str | None:
    """The first subfolder below the watched folder (a department), or the
    folder's configured label."""
    try:
        rel = path.relative_to(watch.path)
    except ValueError:
        return watch.label
    parts = [p for p in rel.parts[:-1] if p not in ("new", "cur", "tmp")]
    return parts[0] if parts else watch.label


def _storable(text: str) -> str:
    """`text` with the surrogate escapes of a non-UTF-8 file name turned into
    \\xNN, so SQLite (which stores UTF-8 only) takes it; stable per name."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _shown(path: Path) -> str:
    return os.fsencode(path.name).decode("utf-8", "replace")


def _free_name(target: Path) -> Path:
    n, candidate = 1, target
    while candidate.exists():
        candidate = target.with_name(f"{target.stem}.{n}{target.suffix}")
        n += 1
    return candidate


def _rename(src: Path, dst: Path) -> None:
    try:
        os.rename(src, dst)
    except OSError as e:
        log.warning("could not move source after capture", extra={"path": str(src), "error": e.strerror})


@dataclass(frozen=True)
class _Refusal:
    """A file refused by `Intake._refuse`, as the ledger will record it."""

    key: str                    # the path, storable
    source: str                 # the watched folder
    name: str
    reason: str
    st: os.stat_result | None   # for the seen-file row
    now: str
