"""Taking ready files from a watched folder: capture, then keep, move or delete.

Every file is reached from its watched folder by directory fd, never
through a symlink (agent/beneath.py). Files are taken in groups (`group`):
each file's bytes are staged in the vault as it is taken; at the group's end
(after GROUP_S or GROUP_MAX files, agent/capture.py) all are made durable at
once, then their ledger rows (document, arrival, seen-file row, waiting
source step, refusal) are written in one transaction: one vault sync and
one ledger commit for many files. A source is touched only after its group
is durable. A scanner file (an e-mail file: every document it brought) is
moved or deleted only once extraction has read its capture: the step waits
in the ledger (`source_actions`) and is
carried out by `finish_sources` (service/source_steps.py), after a restart
too, and only while the name still holds the very file that was captured. A
file that failed to capture, whose capture was unreadable, or that changed
meanwhile is never moved or deleted; a transient failure (disk full) leaves
it for the next rescan. How a group is committed: service/intake_group.py
(`GroupedIntake`, Intake's base).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import stat
from pathlib import Path

from agent import beneath
from agent.beneath import Escapes, Identity, RootReplaced
from agent.capture import (UNREADABLE_FORMATS, Captured, UnsupportedFormat, open_source, record_file,
                           store_file)
from agent.config import WatchConfig
from agent.errors import CaptureError, SourceForbidden, SourceGone, SourceUnavailable
from agent.extract.sniff import sniff
from agent.ledger import Ledger
from agent.ledger.rows import parse_utc
from agent.mail import MailLimits, maildir_cur_path
from agent.vault import Staged, Vault
from service import source_steps
from service.intake_group import GroupedIntake, IntakeResult
from service.intake_mail import MailUnfinished, NotAMessage, shown, store_mail
from service.intake_partials import supersede_partials
from service.intake_zip import ArchiveIntake, is_archive
from agent.filenames import exact_path, readable_name, storable
from service.source_steps import act, log_act
from service.watch_names import MAIL_UNFINISHED_GRACE_S, TEMP_GRACE_S, system_name, temporary_name

log = logging.getLogger("fapiao.intake")
# A file that cannot be read just now (SourceUnavailable) is tried again
# after this, then twice as long each time (FolderWatcher.hold).
SOURCE_RETRY_S = 30.0


class Intake(ArchiveIntake, GroupedIntake):
    """Captures files for the daemon (main thread only)."""

    def __init__(self, ledger: Ledger, vault: Vault, *, max_bytes: int, mail_limits: MailLimits,
                 actor: str):
        self.ledger, self.vault = ledger, vault
        self.max_bytes, self.mail_limits, self.actor = max_bytes, mail_limits, actor
        self._group = None

    def configure(self, *, max_bytes: int, mail_limits: MailLimits) -> None:
        """A reload's limits ([agent] max_file_mb, [mail]): every file taken
        taken after this call is judged by them (the daemon reloads between
        its steps, never inside a capture group)."""
        self.max_bytes, self.mail_limits = max_bytes, mail_limits

    def take(self, path: Path, watch: WatchConfig, *, now: str, today: dt.date) -> IntakeResult:
        """Capture `path` from `watch`; never raises for a bad file. Alone,
        durable on return; inside a `group`, once the group is committed.
        Only a file beneath the watched folder is read (no symlinked folder
        on the way, even one swapped in after the path was noticed, nor a
        watched folder exchanged for another: that file is skipped with a
        loud warning, taken again once the folder is back)."""
        with self.group(now=now, today=today):
            try:
                return self._take(path, watch, now=now, today=today)
            except RootReplaced as e:
                log.error("watched folder replaced; file not taken", extra={"path": storable(str(path)),
                                                                             "reason": storable(str(e))})
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
        except PermissionError:
            # A folder on its path lets the service list it but not reach
            # it (no x): the folder's mode, not the file. Held with backoff
            # and named in status, not refused again at every rescan (no
            # lstat, so no seen-file row could keep a refusal from repeating).
            return IntakeResult([], hold_s=SOURCE_RETRY_S, hold_backoff=True,
                                hold_why="cannot be reached: a folder of its path lets the agent's user list "
                                         "it but not open it (no search (x) permission)")
        except OSError as e:
            st = None
            log.warning("cannot stat file", extra={"path": storable(str(path)), "error": e.strerror})
        key = exact_path(str(path))
        if st is not None and self.ledger.seen_file(key, st.st_size, st.st_mtime_ns, ino=st.st_ino,
                                                    ctime_ns=st.st_ctime_ns):
            return IntakeResult([], skipped=True)
        if st is not None and (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
            # Refused on lstat alone: opening a device node can act on the
            # device (a tape rewinds, /dev/watchdog starts its timer).
            kind = "character" if stat.S_ISCHR(st.st_mode) else "block"
            return self._refuse(path, watch, st, f"{path}: is a {kind} device, not a regular file", now=now)
        if system_name(path.name) and not self._holds_invoice_format(path, watch):
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
        try:
            if watch.kind == "email" and (mail := self._take_mail(path, watch, st, label, now=now)) is not None:
                return mail
            stored = store_file(self.vault, path, max_bytes=self.max_bytes, root=watch.path,
                                refuse_unreadable=True, stage=True)
            if is_archive(stored.head) and (archive := self._take_zip(path, watch, stored, label, now=now,
                                                                      today=today)) is not None:
                return archive
        except UnsupportedFormat as e:
            # Junk by its content (text, random bytes): refused as cheaply as an
            # empty file, but its bytes are an original all the same: the
            # refusal names them, so they are kept, backed up and explained.
            return self._refuse(path, watch, st, str(e), now=now, staged=e.staged)
        except SourceGone:
            return IntakeResult([], skipped=True)   # renamed or deleted since noticed: nothing under this name
        except SourceUnavailable as e:
            # This file, not the vault (another program holds it locked, its
            # disk fails): set back on its own, with backoff, while every
            # other file is taken; status names it with the reason.
            log.warning("a file cannot be read just now; tried again later", extra={"path": key, "error": str(e)})
            return IntakeResult([], hold_s=SOURCE_RETRY_S, hold_backoff=True,
                                hold_why=f"cannot be read just now: {_after_path(str(e), path)}")
        except SourceForbidden as e:
            # Refused, as the agent cannot know what it holds now. When the
            # very file captured here before (same inode, size and mtime)
            # became unreadable (a chmod or chown after its capture), the
            # refusal says so: nothing is lost if only its mode changed, but
            # bytes written over it with its mtime kept (cp -p) would be.
            earlier = st is not None and self.ledger.captured_here_before(
                key, ino=st.st_ino, size=st.st_size, mtime_ns=st.st_mtime_ns)
            if not earlier:
                return self._refuse(path, watch, st, str(e), now=now)
            doc_id, was = earlier
            where = "from here before" if was == key else f"as {was} before (renamed since)"
            return self._refuse(path, watch, st, f"{e}; it looks like the file captured {where} (document "
                                f"{doc_id}: same inode, size and modification time): if only its mode or owner "
                                "changed, that capture is current; if it was written again, make it readable to "
                                "have it taken", now=now)
        except CaptureError as e:
            if e.transient:  # the vault's disk: every file waits (IntakeStep pauses intake)
                log.error("capture failed; will retry", extra={"path": key, "error": str(e)})
                return IntakeResult([], retry=True, error=storable(str(e)))
            return self._refuse(path, watch, st, str(e), now=now)

        self._group.staged.append(stored.staged)

        def write_scan() -> list[int]:
            ident = stored.source
            if watch.after == "keep" and stored.steady and self.ledger.same_file_again(key, ident.ino,
                                                                                        stored.sha256):
                # The very file captured here before (same inode, same
                # bytes), kept there: a touch, chmod or chown changed its
                # times, nothing arrived. Remembered anew; no arrival.
                self.ledger.remember_file(key, ident.size, ident.mtime_ns, ino=ident.ino, ctime_ns=ident.ctime_ns,
                                          outcome="captured", now=now)
                log.info("file seen again unchanged (its times changed); no new arrival", extra={"path": key})
                return []
            got = record_file(self.ledger, stored, source_kind="scanner", source=str(watch.path), now=now,
                              actor=self.actor, details={"label": label} if label else None)
            log.info("captured", extra={"path": key, "document": got.document_id, "new": got.created,
                                        "label": label or ""})
            if got.created:
                supersede_partials(self.ledger, self.vault, path, got, now=now, actor=self.actor)
            self._after_scan(path, watch, got, now=now)
            return [got.document_id] if got.created else []
        return self._later(write_scan)

    def _take_mail(self, path: Path, watch: WatchConfig, st: os.stat_result | None, label: str | None, *,
                   now: str) -> IntakeResult | None:
        # A message from an e-mail folder; None for an invoice file dropped
        # there by hand (a PDF, OFD, XML, image): taken as the file it is.
        try:
            write_mail = store_mail(self.ledger, self.vault, path, watch, now=now, label=label,
                                    max_bytes=self.max_bytes, limits=self.mail_limits, actor=self.actor,
                                    young=_changed_within(st, now, MAIL_UNFINISHED_GRACE_S))
        except MailUnfinished:
            # Held: taken when its writer is done (its events), or as it is
            # once unchanged for the grace time (cut off, or malformed:
            # refused as `unclosed`, and the file left in place).
            log.info("e-mail still being written (no closing MIME delimiter yet); taken once complete",
                     extra={"path": storable(str(path)), "grace_s": MAIL_UNFINISHED_GRACE_S})
            return IntakeResult([], hold_s=MAIL_UNFINISHED_GRACE_S)
        except NotAMessage as e:
            log.info("not an e-mail: an invoice file in the e-mail folder, taken as a file",
                     extra={"path": storable(str(path)), "format": e.format})
            return None

        def write() -> list[int]:
            docs = write_mail.write()
            self._after_mail(path, watch, st, list(write_mail.brought), now=now,
                             keep=write_mail.unclosed)
            return docs
        return self._later(write)

    def _refuse(self, path: Path, watch: WatchConfig, st: os.stat_result | None, reason: str, *,
                now: str, staged: Staged | None = None) -> IntakeResult:
        # The file stays where it is; the seen-file row keeps rescans from
        # refusing it again until it changes. (The log line is rate-limited:
        # a flood gives one line a minute with a count; every file has its row.)
        # The refused bytes are made durable with the group's others, before
        # its rows: a refusal row never names bytes the vault may lose.
        key, reason = exact_path(str(path)), storable(reason)
        log.warning("refused", extra={"path": storable(str(path)), "reason": reason,
                                      "sha256": staged.sha256 if staged else ""})
        if staged is not None:
            self._group.staged.append(staged)

        def write() -> list[int]:
            self.ledger.record_refusal(source=storable(str(watch.path)), name=shown(path), reason=reason,
                                       now=now, sha256=staged.sha256 if staged else None)
            if st is not None:
                self.ledger.remember_file(key, st.st_size, st.st_mtime_ns, ino=st.st_ino,
                                          ctime_ns=st.st_ctime_ns, outcome="refused", now=now)
            return []
        result = self._later(write)
        result.refused = True
        return result

    def _after_mail(self, path: Path, watch: WatchConfig, st: os.stat_result | None, docs: list[int], *,
                    now: str, keep: bool = False) -> None:
        # `docs`: every document the message brought. `keep`: cut off, so
        # left in place (remembered: taken again only if it changes, when
        # its writer comes back with the rest). A Maildir message goes from
        # new/ to cur/ at once (once the group is durable): a rename, so
        # bytes its writer adds still reach it, and cur/ is watched too.
        # Moved away or deleted, though, a message still being written
        # would lose the rest: that step waits, as a scanner file's does,
        # until every document it brought was read, and keeps the file if
        # one was unreadable (cut short). One that brought nothing (every
        # part refused, or no attachment yet) stays where it is, as a
        # refused scanner file does, until it changes.
        if st is None:
            return
        ident, key = Identity.of(st), exact_path(str(path))
        if path.parent.name == "new" and not keep:
            self._group.acts.append(lambda: self._to_cur(path, watch, ident, docs, now=now))
        elif watch.after == "keep" or keep or not docs:
            self.ledger.remember_file(key, st.st_size, st.st_mtime_ns, ino=st.st_ino, ctime_ns=st.st_ctime_ns,
                                      outcome="captured", now=now)
        else:
            self.ledger.add_source_action(docs[0], root=os.fsencode(watch.path), path=os.fsencode(path),
                                          seen_key=key, identity=ident, now=now, with_documents=docs[1:])
            self._group.finish.append((docs[0], watch))

    def _act_once(self, path: Path, watch: WatchConfig, ident: Identity, target: Path, docs: list[int], *,
                  now: str) -> None:
        # The move or delete of a zip archive, read in full when taken. One
        # that cannot be done (a folder the agent may not write, processed/
        # taken by a file) leaves the file remembered as
        # kept, with the warning and, on each document it brought, an event
        # saying why (as a plain file's step records): without the row
        # every rescan took it again. One that only waits (another program
        # holds it for now) is kept too: it has no waiting step to retry it
        # (a plain file's source action), and not remembered it was taken
        # again at every rescan; it is moved with its next change, or by hand.
        state, outcome = act(watch.path, path, ident, watch.after, target)
        self._kept_if_not_done(path, watch, ident, docs, state, outcome, now=now)

    def _kept_if_not_done(self, path: Path, watch: WatchConfig, ident: Identity, docs: list[int], state: str,
                          outcome: str, *, now: str) -> None:
        log_act(path, state, outcome)
        if state in ("kept", "wait"):
            self.ledger.keep_source(exact_path(str(path)), ident, docs, outcome=storable(outcome), now=now,
                                    actor=self.actor, folder=storable(str(watch.path)), name=shown(path))

    def _after_scan(self, path: Path, watch: WatchConfig, got: Captured, *, now: str) -> None:
        # What a scanner file's capture owes its source: rows now, in the
        # group; its move or delete only after the COMMIT, once it was read.
        key = exact_path(str(path))
        if not got.steady:
            # Written to while it was read: not remembered, so it is taken again
            # once it settles; the capture made now is never the reason to act.
            log.info("source changed while it was read; left in place to settle again",
                     extra={"path": storable(str(path)), "document": got.document_id})
            return
        ident = got.source
        if watch.after == "keep":
            self.ledger.remember_file(key, ident.size, ident.mtime_ns, ino=ident.ino, ctime_ns=ident.ctime_ns,
                                      outcome="captured", now=now)
            return
        self.ledger.add_source_action(got.document_id, root=os.fsencode(watch.path), path=os.fsencode(path),
                                      seen_key=key, identity=ident, now=now)
        # The same bytes may have been read already (a second copy): its
        # step may then go ahead, once the group is durable.
        self._group.finish.append((got.document_id, watch))

    def _to_cur(self, path: Path, watch: WatchConfig, ident: Identity, docs: list[int], *, now: str) -> None:
        # A message that cannot go to cur/ stays in new/ remembered as kept,
        # as `_act_once` keeps one: not taken again at every rescan.
        cur = maildir_cur_path(path)
        moved: list[Path] = []
        state, outcome = act(watch.path, path, ident, "move", cur.parent, name=cur.name, dir_mode=None,
                             moved_to=moved)
        self._kept_if_not_done(path, watch, ident, docs, state, outcome, now=now)
        # cur/ is watched (an IMAP client moves seen mail there): the message
        # we just moved is known by its new name and identity (a rename
        # changes ctime), so it is not taken a second time.
        for dest in moved:
            try:
                st = beneath.lstat_beneath(watch.path, dest)
            except (OSError, Escapes):
                continue  # gone or swapped meanwhile: taken (or refused) like any other file
            self.ledger.remember_file(exact_path(str(dest)), st.st_size, st.st_mtime_ns, ino=st.st_ino,
                                      ctime_ns=st.st_ctime_ns, outcome="captured", now=now)

    def finish_sources(self, watches: list[WatchConfig], *, now: str, today: dt.date,
                       doc_ids: list[int] | None = None) -> int:
        """`source_steps.finish_sources` with this intake's ledger and actor:
        the waiting moves and deletes whose capture was read (same guarantees)."""
        return source_steps.finish_sources(self.ledger, watches, now=now, today=today, actor=self.actor,
                                           doc_ids=doc_ids)

    def _holds_invoice_format(self, path: Path, watch: WatchConfig) -> bool:
        # A name is no proof: an invoice saved as "Thumbs.db" is taken like
        # any other file. Only its first bytes are read (a real Thumbs.db,
        # an OLE file, or a .DS_Store is no invoice format).
        try:
            with open_source(path, max_bytes=self.max_bytes, root=watch.path) as stream:
                return sniff(stream.read(4096)) not in UNREADABLE_FORMATS
        except CaptureError:
            return False   # refused by its name, as before; what else is wrong shows when it is renamed


def _changed_within(st: os.stat_result | None, now: str, seconds: float) -> bool:
    """Whether the file was modified less than `seconds` before `now`, or
    less than that after it (a writer's clock a little ahead, on a share);
    a time further ahead is no sign of a writer at work."""
    if st is None:
        return False
    try:
        return abs(parse_utc(now).timestamp() - st.st_mtime) < seconds
    except (TypeError, ValueError):
        return False


def _label(path: Path, watch: WatchConfig) -> str | None:
    """The first subfolder below the watched folder (a department) as
    `readable_name` reads a name (GBK as Chinese, else \\xNN: never text
    SQLite refuses), or the folder's configured label."""
    try:
        rel = path.relative_to(watch.path)
    except ValueError:
        return watch.label
    parts = [p for p in rel.parts[:-1] if p not in ("new", "cur", "tmp")]
    return readable_name(parts[0]) if parts else watch.label


def _after_path(message: str, path: Path) -> str:
    # A capture error names its file first ("PATH: why"); status names it too.
    prefix = f"{path}: "
    return message[len(prefix):] if message.startswith(prefix) else message
