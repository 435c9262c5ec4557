"""Taking one zip archive that came on its own (dropped in a watched folder,
given to `ingest`): the archive into the vault as the original, each
invoice file in it a document, every other member a refusal naming the
archive. Read as a zip attached to an e-mail is (`agent.mail.read_zip`).

Like an e-mail (service/intake_mail.py), the archive itself is no
document: its members are. Each member's arrival records the archive's
hash (`archive_sha256`), so the archive is backed up, described in its
backup sidecar and known to the audit, as a raw e-mail is.

A zip whose head is a zip may still be an OFD (its `OFD.xml` is named in
the central directory, at the end): `is_archive` looks at every byte
before an archive is unpacked."""

from __future__ import annotations

import datetime as dt
import io
import logging
from pathlib import Path
from typing import Callable

from agent.capture import StoredFile, record_bytes
from agent.config import WatchConfig
from agent.errors import CaptureError
from agent.extract.sniff import sniff
from agent.filenames import exact_path, storable
from agent.ledger import Ledger
from agent.mail import MailLimits, ZipContents, read_zip
from agent.vault import Staged, Vault
from service.intake_group import IntakeResult
from service.source_steps import processed_folder

log = logging.getLogger("fapiao.intake")


def is_archive(data: bytes) -> bool:
    """Whether `data` is a zip archive, not an OFD (a zip with `OFD.xml`).
    On a file's first bytes, True only says it may be one: an OFD whose
    OFD.xml is named last is told apart by all of its bytes."""
    return sniff(data) == "zip"


class ZipWrite:
    """An archive read and its members' bytes in the vault (staged or
    durable, see `zip_rows`); `write()` records their rows and returns the
    new documents' ids (`known` then counts the members already known).
    `refused` is True when nothing in it was taken: it could not be read
    (cut short, still being written, an Office file) or holds no invoice
    file; it is then refused under its own name, and its file stays where
    it is."""

    def __init__(self, write: Callable[[], tuple[list[int], int]], contents: ZipContents, brought: list[int]):
        self._write, self.contents, self.known = write, contents, 0
        # Every document the archive brought, new or known, once written
        # (`write` fills it).
        self.brought = brought

    def write(self) -> list[int]:
        """The rows (see the class); the new documents' ids."""
        docs, self.known = self._write()
        return docs

    @property
    def refused(self) -> bool:
        """Nothing in the archive was taken (see the class)."""
        return not self.contents.attachments


def zip_rows(ledger: Ledger, vault: Vault, data: bytes, sha256: str, *, name: str, path: str,
             source_kind: str, source: str, label: str | None, limits: MailLimits, now: str, actor: str,
             staged: list[Staged] | None = None) -> ZipWrite:
    """Read the archive `data` (its bytes already in the vault as `sha256`,
    or staged with them; its file `path`, named `name`), put its
    invoice files into the vault and return their rows' write: each member
    captured (`source_kind`, `source`; its arrival's path is the archive's,
    its details name the archive and `label`), each refusal recorded naming
    the archive's hash, and when nothing in it is taken, one refusal under
    the archive's own name (as the file's refusal is named: `storable`) that
    says why. With `staged`, the members' bytes are only staged and appended
    there, for the caller to make durable with the archive's own before the
    rows (`Vault.commit_staged`); else they are fsynced here."""
    contents = read_zip(data, name, limits)
    members = []
    for att in contents.attachments:
        if staged is None:
            members.append((att, vault.put_bytes(att.data)))
        else:
            staged.append(vault.stage_stream(io.BytesIO(att.data)))
            members.append((att, staged[-1]))
    # Refusals name the archive exactly (`exact_path`), as its seen-file row
    # does: two archives whose names read alike are never folded into one.
    shown_path = storable(path)
    refused_in, own_name = f"zip {exact_path(path)}", exact_path(name)
    brought: list[int] = []

    def write() -> tuple[list[int], int]:
        docs, known = [], 0
        for att, put in members:
            got = record_bytes(ledger, put.sha256, put.size, att.data[:4096], name=att.filename,
                               source_kind=source_kind, source=source, now=now, actor=actor,
                               original_path=path,
                               details={"from_zip": att.from_zip, "archive_sha256": sha256,
                                        "archive_path": shown_path, "label": label})
            if got.document_id not in brought:
                brought.append(got.document_id)
            if got.created:
                docs.append(got.document_id)
            else:
                known += 1
        whole = None   # the archive's own refusal, under the file's name
        for r in contents.refusals:
            reason = f"{r.reason}: {r.detail}" if r.detail else r.reason
            if r.filename == contents.shown:
                whole = reason
            else:
                ledger.record_refusal(source=refused_in, name=r.filename, sha256=sha256, reason=reason, now=now,
                                      once=True)
        if not contents.attachments and whole is None:
            unread = sum(r.reason == "zip-limit-exceeded" for r in contents.refusals)
            if unread:
                # Not "holds no invoice": what it holds past its limits was never read.
                whole = (f"zip-limit-exceeded: nothing was taken; {unread} of its files were not read (past the "
                         f"archive's limits: size, ratio or nesting depth); all {len(contents.refusals)} are "
                         f"listed under {contents.shown}/")
            else:
                whole = ("no-invoice: the zip archive holds no invoice file" + (
                    f"; its {len(contents.refusals)} other files are listed under {contents.shown}/"
                    if contents.refusals else " (it is empty)")
                    + " / 压缩包中没有发票文件（PDF、OFD、XML 或图片）" + (
                    f"：其中 {len(contents.refusals)} 个其他文件列在 {contents.shown}/ 下" if contents.refusals else "（压缩包是空的）"))
        if whole is not None:
            # An original all the same: the refusal says so to the operator
            # and gets it backed up.
            ledger.record_refusal(source=refused_in, name=own_name, sha256=sha256, reason=whole, now=now, once=True)
        log.info("zip archive taken" if contents.attachments else "refused", extra={
            "path": shown_path, "files": len(contents.attachments), "refused": len(contents.refusals),
            "new": len(docs), "sha256": sha256, **({"reason": whole} if whole else {})})
        return docs, known
    return ZipWrite(write, contents, brought)


class ArchiveIntake:
    """Intake's handling of a zip archive in a watched folder (a mixin of
    service/intake.py's Intake, which provides the ledger, vault, limits,
    actor and the open group)."""

    def _take_zip(self, path: Path, watch: WatchConfig, stored: StoredFile, label: str | None, *,
                  now: str, today: dt.date) -> IntakeResult | None:
        # A zip archive (not an OFD): its invoice files become documents, as
        # a zip mailed in does; None for an OFD, taken as the file it is.
        # Read back from the vault's copy: what was captured, whatever the
        # file holds by now. Raises CaptureError (the vault's disk).
        try:
            data = Path(stored.staged.tmp_name).read_bytes()
        except OSError as e:
            raise CaptureError(f"vault read failed: {e.strerror or e}", transient=True) from None
        if not is_archive(data):
            return None
        key = exact_path(str(path))
        if watch.after == "keep" and stored.steady and self.ledger.same_archive_again(key, stored.source.ino,
                                                                                         stored.sha256):
            # The very archive taken here before, kept there: a touch, chmod
            # or chown changed its times. Remembered anew; no arrival.
            self.vault.discard_staged([stored.staged])

            def again() -> list[int]:
                ident = stored.source
                self.ledger.remember_file(key, ident.size, ident.mtime_ns, ino=ident.ino,
                                          ctime_ns=ident.ctime_ns, outcome="captured", now=now)
                log.info("file seen again unchanged (its times changed); no new arrival", extra={"path": key})
                return []
            return self._later(again)
        members: list[Staged] = []
        try:
            archive = zip_rows(self.ledger, self.vault, data, stored.sha256, name=path.name,
                               path=str(path), source_kind="scanner", source=str(watch.path),
                               label=label, limits=self.mail_limits, now=now, actor=self.actor, staged=members)
        except BaseException:
            self.vault.discard_staged(members)
            raise
        self._group.staged += [stored.staged, *members]

        def write() -> list[int]:
            docs = archive.write()
            self._after_zip(path, watch, stored, archive.brought, refused=archive.refused, now=now, today=today)
            return docs
        return self._later(write)

    def _after_zip(self, path: Path, watch: WatchConfig, stored: StoredFile, docs: list[int], *, refused: bool,
                   now: str, today: dt.date) -> None:
        # Read in full when taken, so its step is done at once (once the
        # group is durable), as an e-mail's is; but an archive of which
        # nothing was taken (cut short: its writer may not be done) stays
        # where it is, remembered as refused until it changes.
        key = exact_path(str(path))
        if not stored.steady:
            log.info("source changed while it was read; left in place to settle again", extra={"path": key})
            return
        ident = stored.source
        if watch.after == "keep" or refused:
            self.ledger.remember_file(key, ident.size, ident.mtime_ns, ino=ident.ino, ctime_ns=ident.ctime_ns,
                                      outcome="refused" if refused else "captured", now=now)
            return
        self._group.acts.append(lambda: self._act_once(path, watch, ident, processed_folder(path, today), docs,
                                                       now=now))
