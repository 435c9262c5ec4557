"""The group half of `Intake` (service/intake.py): while a group is open,
the rows of the files taken are gathered; at its end their staged bytes
are made durable, the rows written in ONE transaction (a savepoint a
file), and the source steps carried out after the COMMIT. Apart from
intake.py, which decides what each file is and which rows and steps it
owes: this holds only how a group of them is committed."""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

from agent.config import WatchConfig
from agent.filenames import storable
from agent.ledger import Ledger
from agent.pipeline import ledger_unavailable
from agent.vault import Staged, Vault
from service import source_steps

log = logging.getLogger("fapiao.intake")
# A file whose rows could not be written is held (FolderWatcher.hold) and
# tried again after this, twice as long each time: named in status with
# why meanwhile, and the intake-stuck alert once it is held long.
UNRECORDED_RETRY_S = 30.0


@dataclass
class IntakeResult:
    """What became of one file: new document ids, and whether to retry later.
    Inside a `group`, durable only once the group is committed."""

    documents: list[int]
    retry: bool = False
    skipped: bool = False
    error: str | None = None  # why, when `retry` (the vault's disk is full or failing)
    refused: bool = False
    hold_s: float | None = None  # not complete yet: look again once unchanged this long (FolderWatcher.hold)
    hold_why: str | None = None  # what else than an unfinished e-mail holds it, for status
    hold_backoff: bool = False   # each hold in a row waits twice as long


@dataclass
class _Group:
    """An open group: the rows to write at its end (each with the result it
    completes), staged bytes to make durable before them, source steps to
    carry out after the COMMIT."""

    writes: list[tuple[IntakeResult, Callable[[], None]]] = field(default_factory=list)
    staged: list[Staged] = field(default_factory=list)
    acts: list[Callable[[], None]] = field(default_factory=list)
    # (document, its folder) whose waiting source step may go ahead after
    # the COMMIT. A list: one document may come from two folders in one
    # group (an e-mail copied to two mailboxes), and each folder is needed.
    finish: list[tuple[int, WatchConfig]] = field(default_factory=list)


class GroupedIntake:
    """The base of `Intake`: its open group, and how a group is committed
    (the subclass sets `ledger`, `vault`, `actor` and `_group`)."""

    ledger: Ledger
    vault: Vault
    actor: str
    _group: _Group | None

    @contextmanager
    def group(self, *, now: str, today: dt.date) -> Iterator[None]:
        """Take the files taken inside as one group. While it is open, each
        file's bytes are staged in the vault's tmp/ as it is taken (read,
        hashed, written: no fsync each), and no ledger lock is held; at its
        end all of them are made durable at once (`Vault.commit_staged`: two
        filesystem syncs for the whole group), then the group's rows are
        written in ONE transaction (the lock held only for them) and
        committed. Guarantees: every vault object is durable before the rows
        naming it are committed; no source is moved or deleted before the
        COMMIT returned; one file's rows are written all or none (a
        savepoint); the results of `take` are complete (`documents`) once
        the group is committed. On an error the whole group is rolled back,
        its files are still where they were (taken again later), and the
        error propagates. Nested use joins the outer group."""
        if self._group is not None:
            yield
            return
        grp = self._group = _Group()
        try:
            yield
            staged, grp.staged = grp.staged, []
            self.vault.commit_staged(staged)
            if grp.writes:
                with self.ledger.transaction(memory_journals=True):
                    for result, write in grp.writes:
                        self._write(result, write, grp)
        except BaseException:
            self.vault.discard_staged(grp.staged)
            raise
        finally:
            self._group = None
        for step in grp.acts:
            step()
        if grp.finish:
            watches = list({id(w): w for _, w in grp.finish}.values())
            source_steps.finish_sources(self.ledger, watches, now=now, today=today, actor=self.actor,
                                        doc_ids=list(dict.fromkeys(d for d, _ in grp.finish)))

    def _write(self, result: IntakeResult, write: Callable[[], None], grp: _Group) -> None:
        # One file's rows in a savepoint of the group's transaction: an
        # error of this file (not of the ledger's disk) leaves out its rows
        # and its source steps, and the group goes on; the file stays where
        # it is and is taken again when it changes or at the next start.
        acts, finish = len(grp.acts), len(grp.finish)
        try:
            with self.ledger.transaction():
                write()
        except sqlite3.Error as e:
            if ledger_unavailable(e):
                raise
            self._unwritten(result, e, grp, acts, finish)
        except Exception as e:
            self._unwritten(result, e, grp, acts, finish)

    def _unwritten(self, result: IntakeResult, e: Exception, grp: _Group, acts: int, finish: int) -> None:
        # Never only a log line (rate-limited, and the file would be taken,
        # fail and be forgotten again at every rescan): the result says to
        # hold it, so it stays pending, is named in status with this
        # reason, and raises the intake-stuck alert if it stays so.
        del grp.acts[acts:]
        del grp.finish[finish:]
        result.documents, result.error = [], storable(f"{type(e).__name__}: {e}")
        result.hold_s, result.hold_backoff = UNRECORDED_RETRY_S, True
        result.hold_why = (f"could not be recorded in the ledger ({result.error}); left where it is, its bytes "
                           "kept in the vault; tried again")
        log.error("could not record a file; it stays where it is", exc_info=e,
                  extra={"error": result.error})

    def _later(self, write: Callable[[], list[int]]) -> IntakeResult:
        # The rows of a file stored now, written at the group's end.
        result = IntakeResult([])

        def run() -> None:
            result.documents = write()
        self._group.writes.append((result, run))
        return result
