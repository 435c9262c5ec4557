"""Taking one ready file from a watched folder: capture, then keep, move or delete.

Every file is reached from its watched folder by directory fd, never
through a symlink (agent/beneath.py). The source is touched only after its
bytes are durable in the vault and recorded in the ledger. A scanner file is
moved or deleted only once extraction has read its capture: the step waits
in the ledger (`source_actions`) and is carried out by `finish_sources`,
after a restart too, and only while the name still holds the very file that
was captured. A file that failed to capture, whose capture was unreadable,
or that changed meanwhile is never moved or deleted; a transient failure
(disk full) leaves it for the next rescan.
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

from agent import beneath
from agent.beneath import Changed, Escapes, Identity, RootReplaced
from agent.capture import Captured, UnsupportedFormat, capture_bytes, capture_file, open_source
from agent.config import WatchConfig
from agent.errors import CaptureError, ExtractError, IllegalTransition
from agent.ledger import Ledger
from agent.mail import MailLimits, maildir_cur_path, parse_message
from agent.vault import Staged, Vault
from service.watch import TEMP_GRACE_S, system_name, temporary_name

log = logging.getLogger("fapiao.intake")
# processed/ holds originals: the vault's modes, whatever the umask.
PROCESSED_DIR_MODE = 0o750
PROCESSED_FILE_MODE = 0o640


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
        except BaseException:
            self.vault.discard_staged([r.staged for r in self._held if r.staged is not None])
            raise
        finally:
            self._held = None
        if held:
            # The refused originals' bytes first, all durable at once: a
            # refusal row never names bytes the vault may lose.
            self.vault.commit_staged([r.staged for r in held if r.staged is not None])
            with self.ledger.transaction():
                for r in held:
                    self._write_refusal(r)

    def take(self, path: Path, watch: WatchConfig, *, now: str, today: dt.date) -> IntakeResult:
        """Capture `path` from `watch`; never raises for a bad file. Only a
        file beneath the watched folder is read (no symlinked folder on the
        way, even one swapped in after the path was noticed, nor a watched
        folder exchanged for another: that file is skipped with a loud
        warning, taken again once the folder is back)."""
        try:
            return self._take(path, watch, now=now, today=today)
        except RootReplaced as e:
            log.error("watched folder replaced; file not taken", extra={"path": _storable(str(path)),
                                                                         "reason": _storable(str(e))})
            return IntakeResult([], skipped=True)

    def _take(self, path: Path, watch: WatchConfig, *, now: str, today: dt.date) -> IntakeResult:
        try:
            st = beneath.lstat_beneath(watch.path, path)
        except FileNotFoundError:
            return IntakeResult([], skipped=True)
        except RootReplaced:
            raise
        except Escapes as e:
            return self._refuse(path, watch, None, f"{path}: {e}; not taken (it may lead outside the "
                                f"watched folder)", now=now)
        except OSError as e:
            st = None
            log.warning("cannot stat file", extra={"path": _storable(str(path)), "error": e.strerror})
        key = _storable(str(path))
        if st is not None and self.ledger.seen_file(key, st.st_size, st.st_mtime_ns, ino=st.st_ino,
                                                    ctime_ns=st.st_ctime_ns):
            return IntakeResult([], skipped=True)
        if st is not None and (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
            # Refused on lstat alone: opening a device node can act on the
            # device (a tape rewinds, /dev/watchdog starts its timer).
            kind = "character" if stat.S_ISCHR(st.st_mode) else "block"
            return self._refuse(path, watch, st, f"{path}: is a {kind} device, not a regular file", now=now)
        if system_name(path.name):
            return self._refuse(path, watch, st, f"{path}: an operating-system file ({path.name}), not an "
                                "invoice; left where it is", now=now)
        if temporary_name(path.name):
            # The watcher hands such a name over only once it stayed unchanged
            # for TEMP_GRACE_S: a download or save that was never finished.
            return self._refuse(path, watch, st, f"{path}: temporary-looking name left unchanged for "
                                f"{TEMP_GRACE_S / 60:g} minutes; rename it to have it taken", now=now)
        if st is not None and stat.S_ISREG(st.st_mode) and st.st_size == 0:
            # Junk known from lstat alone: nothing to open, hash or store.
            return self._refuse(path, watch, st, f"{path}: empty: the file has no bytes (left where it is; "
                                "taken when it changes)", now=now)
        label = _label(path, watch)
        got = None
        try:
            if watch.kind == "email":
                docs = self._take_mail(path, watch, now=now, label=label)
            else:
                got = capture_file(self.ledger, self.vault, path, source_kind="scanner", source=str(watch.path),
                                   now=now, actor=self.actor, max_bytes=self.max_bytes, root=watch.path,
                                   details={"label": label} if label else None, refuse_unreadable=True)
                docs = [got.document_id] if got.created else []
                log.info("captured", extra={"path": key, "document": got.document_id,
                                            "new": got.created, "label": label or ""})
                if got.created:
                    self._supersede_partials(path, got, now=now)
        except UnsupportedFormat as e:
            # Junk by its content (text, random bytes): refused as cheaply as an
            # empty file, but its bytes are an original all the same: the
            # refusal names them, so they are kept, backed up and explained.
            return self._refuse(path, watch, st, str(e), now=now, staged=e.staged)
        except CaptureError as e:
            if e.transient:
                log.error("capture failed; will retry", extra={"path": key, "error": str(e)})
                return IntakeResult([], retry=True, error=_storable(str(e)))
            return self._refuse(path, watch, st, str(e), now=now)
        self._after(path, watch, st, got, now=now, today=today)
        return IntakeResult(docs)

    def _refuse(self, path: Path, watch: WatchConfig, st: os.stat_result | None, reason: str, *,
                now: str, staged: Staged | None = None) -> IntakeResult:
        # The file stays where it is; the seen-file row keeps rescans from
        # refusing it again until it changes. (The log line is rate-limited:
        # a flood gives one line a minute with a count; every file has its row.)
        refusal = _Refusal(_storable(str(path)), _storable(str(watch.path)), _shown(path), _storable(reason), st, now,
                           staged)
        log.warning("refused", extra={"path": refusal.key, "reason": refusal.reason,
                                      "sha256": staged.sha256 if staged else ""})
        if self._held is not None:
            self._held.append(refusal)
            return IntakeResult([], refused=True)
        if staged is not None:
            self.vault.commit_staged([staged])
        with self.ledger.transaction():
            self._write_refusal(refusal)
        return IntakeResult([])

    def _write_refusal(self, r: "_Refusal") -> None:
        self.ledger.record_refusal(source=r.source, name=r.name, reason=r.reason, now=r.now,
                                   sha256=r.staged.sha256 if r.staged else None)
        if r.st is not None:
            self.ledger.remember_file(r.key, r.st.st_size, r.st.st_mtime_ns, ino=r.st.st_ino,
                                      ctime_ns=r.st.st_ctime_ns, outcome="refused", now=r.now)

    def _take_mail(self, path: Path, watch: WatchConfig, *, now: str, label: str | None) -> list[int]:
        # The message itself goes into the vault (so nothing is lost), but only
        # its invoice attachments become documents.
        with open_source(path, max_bytes=self.max_bytes, root=watch.path) as f:
            data = f.read(self.max_bytes + 1)  # read once: stored, then parsed
        if len(data) > self.max_bytes:  # grew after open_source's size check
            raise CaptureError(f"{path}: larger than the limit of {self.max_bytes // (1024 * 1024)} MB "
                               "(agent.max_file_mb)")
        stored = self.vault.put_bytes(data)
        if path.parent.name == "cur" and self.ledger.mail_seen(stored.sha256):
            # An IMAP client re-flags a message by renaming it within cur/
            # (or it predates the remembered new/ -> cur/ move): the very
            # bytes already taken, whose documents already name them.
            log.info("e-mail already taken: the same message, renamed within the Maildir",
                     extra={"path": _storable(str(path)), "sha256": stored.sha256})
            return []
        try:
            mail = parse_message(data, self.mail_limits)
        except ExtractError as e:
            # Refused whole, but already an original in the vault: the refusal
            # names its hash, so it is referenced, explained and backed up.
            reason = _storable(f"{e.reason}: e-mail refused: {e.message}")
            self.ledger.record_refusal(source=_storable(f"e-mail {path.name}"), name=_shown(path),
                                       sha256=stored.sha256, reason=reason, now=now)
            self.ledger.mark_mail_seen(stored.sha256, message_id=None, now=now, document_count=0)
            log.warning("refused", extra={"path": _storable(str(path)), "reason": reason, "sha256": stored.sha256})
            return []
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

    def _after(self, path: Path, watch: WatchConfig, st: os.stat_result | None, got: Captured | None, *,
               now: str, today: dt.date) -> None:
        key = _storable(str(path))
        if watch.kind == "email":
            # A message is parsed in full when taken: its step is done at once,
            # if it is still the file that was looked at.
            if st is None:
                return
            if path.parent.name == "new":  # Maildir: new/ -> cur/ once taken
                cur = maildir_cur_path(path)
                moved: list[Path] = []
                self._log_act(path, *_act(watch.path, path, Identity.of(st), "move", cur.parent, name=cur.name,
                                          dir_mode=None, moved_to=moved))
                self._remember_moved(watch, moved, now=now)
            elif watch.after == "keep":
                self.ledger.remember_file(key, st.st_size, st.st_mtime_ns, ino=st.st_ino, ctime_ns=st.st_ctime_ns,
                                          outcome="captured", now=now)
            else:
                self._log_act(path, *_act(watch.path, path, Identity.of(st), watch.after, _processed(path, today)))
            return
        if got is None or got.source is None:
            return
        if not got.steady:
            # Written to while it was read: not remembered, so it is taken again
            # once it settles; the capture made now is never the reason to act.
            log.info("source changed while it was read; left in place to settle again",
                     extra={"path": key, "document": got.document_id})
            return
        ident = got.source
        if watch.after == "keep":
            self.ledger.remember_file(key, ident.size, ident.mtime_ns, ino=ident.ino, ctime_ns=ident.ctime_ns,
                                      outcome="captured", now=now)
            return
        self.ledger.add_source_action(got.document_id, root=os.fsencode(watch.path), path=os.fsencode(path),
                                      seen_key=key, identity=ident, now=now)
        # The same bytes may have been read already (a second copy).
        self.finish_sources([watch], now=now, today=today, doc_ids=[got.document_id])

    def _remember_moved(self, watch: WatchConfig, moved: list[Path], *, now: str) -> None:
        # cur/ is watched (an IMAP client moves seen mail there): the message
        # we just moved is known by its new name and identity (a rename
        # changes ctime), so it is not taken a second time.
        for dest in moved:
            try:
                st = beneath.lstat_beneath(watch.path, dest)
            except (OSError, Escapes):
                continue  # gone or swapped meanwhile: taken (or refused) like any other file
            self.ledger.remember_file(_storable(str(dest)), st.st_size, st.st_mtime_ns, ino=st.st_ino,
                                      ctime_ns=st.st_ctime_ns, outcome="captured", now=now)

    def finish_sources(self, watches: list[WatchConfig], *, now: str, today: dt.date,
                       doc_ids: list[int] | None = None) -> int:
        """Carry out the waiting moves and deletes of source files whose
        capture has left `captured` (only those of `doc_ids` when given).
        Guarantees: a file is moved or deleted only when its capture was read
        (not unreadable, failed or superseded), its folder is still watched
        with after = move/delete, it is still beneath the folder, and it is
        still the file captured (inode, size, mtime, ctime), checked right
        before the act. Otherwise it stays and the reason is recorded on the
        document. Never raises for a file. Returns how many actions closed."""
        by_root = {os.fsencode(w.path): w for w in watches}
        closed = 0
        while True:
            due = self.ledger.due_source_actions(doc_ids, limit=500)
            before = closed
            for a in due:
                root, path = Path(os.fsdecode(a["root"])), Path(os.fsdecode(a["path"]))
                watch = by_root.get(a["root"])
                if watch is not None and watch.after != "keep" and not watch.path.is_dir():
                    continue  # its share is not mounted: the step waits for it
                replaced = beneath.root_problem(root) if watch is not None and watch.after != "keep" else None
                if replaced:
                    # Never acted on through another folder; waits until it is back.
                    log.error("source step waits: " + replaced, extra={"path": _storable(str(path)),
                                                                        "document": a["document_id"]})
                    continue
                if a["verdict"] == "superseded":
                    state, outcome = "kept", "its capture was superseded"
                elif a["verdict"] == "unread":
                    state, outcome = "kept", ("its capture could not be read (a partial file from a slow "
                                              "writer?); left in place, captured again when it changes")
                elif watch is None or watch.after == "keep":
                    state, outcome = "kept", "its folder is no longer watched with after = move or delete"
                else:
                    state, outcome = _act(root, path, a["identity"], watch.after, _processed(path, today))
                    if state == "wait":
                        continue  # replaced between the look above and the act
                self.ledger.finish_source_action(a["id"], state=state, outcome=_storable(outcome), now=now,
                                                 actor=self.actor)
                self._log_act(path, state, outcome, document=a["document_id"])
                closed += 1
            if len(due) < 500 or closed == before:
                return closed

    def _log_act(self, path: Path, state: str, outcome: str, document: int | None = None) -> None:
        extra = {"path": _storable(str(path)), "outcome": _storable(outcome)}
        if document is not None:
            extra["document"] = document
        if state in ("kept", "wait"):
            log.warning("source left in place", extra=extra)
        else:
            log.info("source " + ("moved or deleted" if state == "done" else "already gone"), extra=extra)

    def _supersede_partials(self, path: Path, got: Captured, *, now: str) -> None:
        # A slow writer's first half settled and was captured; now the path
        # holds more. An earlier capture of this path whose bytes are the
        # beginning of these is that partial file: it ends as `superseded`
        # by this one instead of waiting in quarantine.
        shown = str(path).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        for doc in self.ledger.earlier_captures(shown, exclude_id=got.document_id):
            if doc.size >= got.size or not self._is_prefix(doc.sha256, doc.size, got.sha256):
                continue
            try:
                self.ledger.supersede(doc.id, got.document_id, now=now, actor=self.actor,
                                      why=f"{shown} settled again with {got.size} bytes, of which its "
                                          f"{doc.size} bytes were the beginning (a partial file)")
            except IllegalTransition:
                continue
            log.info("partial capture superseded", extra={"document": doc.id, "by": got.document_id,
                                                          "path": _storable(str(path))})

    def _is_prefix(self, sha256: str, size: int, of_sha256: str) -> bool:
        try:
            with open(self.vault.path(sha256), "rb") as a, open(self.vault.path(of_sha256), "rb") as b:
                while size > 0:
                    n = min(size, 1 << 20)
                    if a.read(n) != b.read(n):
                        return False
                    size -= n
                return True
        except OSError:
            return False


def _processed(path: Path, today: dt.date) -> Path:
    """Where `after = "move"` puts a file: processed/DATE beside it."""
    return path.parent / "processed" / today.isoformat()


def _act(root: Path, path: Path, identity: Identity, after: str, target: Path, *, name: str | None = None,
         dir_mode: int | None = PROCESSED_DIR_MODE, moved_to: list[Path] | None = None) -> tuple[str, str]:
    """Move (into `target`) or delete `path` beneath `root` if it is still
    the file `identity`: ("done" | "gone" | "kept" | "wait", what happened;
    "wait": the watched folder was replaced, nothing was done)."""
    try:
        if after == "delete":
            beneath.unlink_if_same(root, path, identity)
            return "done", "deleted"
        dest = beneath.move_if_same(root, path, identity, target, name=name, dir_mode=dir_mode,
                                    file_mode=PROCESSED_FILE_MODE if dir_mode else None)
        if moved_to is not None:
            moved_to.append(dest)
        return "done", f"moved to {dest}"
    except FileNotFoundError:
        return "gone", "no longer there (moved or deleted by someone else, or by a run killed right after)"
    except RootReplaced as e:
        log.error("source step waits: %s", e, extra={"path": _storable(str(path))})
        return "wait", str(e)
    except Escapes as e:
        return "kept", f"{e}; not touched"
    except Changed as e:
        return "kept", f"changed since its capture ({e}); not touched"
    except OSError as e:
        return "kept", f"could not {after} it: {e.strerror or e}"


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


@dataclass(frozen=True)
class _Refusal:
    """A file refused by `Intake._refuse`, as the ledger will record it."""

    key: str                    # the path, storable
    source: str                 # the watched folder
    name: str
    reason: str
    st: os.stat_result | None   # for the seen-file row
    now: str
    staged: Staged | None = None  # its bytes, committed to the vault before the row is written
