"""`fapiao-agent ingest PATH...`: take files in once, without the daemon."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Iterator

import click

from agent.capture import GROUP_MAX, GROUP_S, StoredFile, record_file, store_file
from agent.errors import CaptureError
from agent.filenames import storable
from agent.pipeline import ledger_unavailable, process_captured
from agent.model import State
from service.context import (actor, destination_names, load, now, open_ledger, open_vault, today,
                             validation_settings)
from service import access
from service.display import local_time
from service.ingest_guard import ingest_admission
from service.intake_mail import is_message, mail_rows
from service.intake_zip import is_archive, zip_rows
from agent.mail import MailLimits
from service.progress import Progress
from service.textsafe import echo


@click.command("ingest")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--no-process", is_flag=True, help="Only capture; leave reading and validation to the daemon.")
@click.option("--quiet", "-q", is_flag=True, help="Print only failures and the summary.")
@click.pass_context
def command(ctx: click.Context, paths: tuple[Path, ...], no_process: bool, quiet: bool) -> None:
    """Capture files or folders (recursively) into the vault and ledger, then
    read and validate them. Idempotent: the same bytes twice give one
    document, with the second source recorded on it. A saved e-mail (.eml)
    is read as in a watched mail folder: its invoice attachments become
    documents, what it holds besides is listed by `refused`. So is a zip
    archive (not an OFD): each invoice file in it becomes a document.

    Unreadable files, folders without permission and special files (FIFO,
    socket, device, broken symlink) each get one line; the batch goes on.
    Run through sudo as the service user, it takes only files the person
    behind sudo could read themselves; never the agent's config, nor
    anything under /proc, /sys or /dev.
    Exit status 1 when anything failed.
    """
    cfg = load(ctx)
    settings = validation_settings(cfg)
    ledger, vault = open_ledger(cfg), open_vault(cfg)
    who, max_bytes = actor(), cfg.agent["max_file_mb"] * 1024 * 1024
    admit = ingest_admission(cfg.path, access.identity(cfg.access["service_user"]))
    mail_limits = MailLimits.from_config(cfg.mail)
    failures, new, known = [], 0, 0
    to_process: list[int] = []
    candidates = list(_walk(paths, failures))
    group: list[tuple[Path, StoredFile]] = []  # stored in the vault, rows not yet written
    started = 0.0

    def commit_group() -> None:
        # The group's bytes made durable at once (two filesystem syncs), then
        # one transaction for its rows (agent/capture.py: GROUP_S, GROUP_MAX).
        nonlocal new, known
        vault.commit_staged([stored.staged for _, stored in group if stored.staged])
        with ledger.transaction(memory_journals=True):
            got = []
            for path, stored in group:
                # A savepoint a file: one file's rows that cannot be written
                # are a FAIL line of their own, never the group's end. The
                # folder (`source`) is spelled by record_file (GBK folders
                # as Chinese, other bytes as \\xNN).
                try:
                    with ledger.transaction():
                        got.append((path, record_file(ledger, stored, source_kind="ingest",
                                                      source=str(path.parent), now=now(), actor=who)))
                except Exception as e:
                    if ledger_unavailable(e):
                        raise   # the ledger's disk or lock: no file's fault, the run stops
                    failures.append(storable(f"{path}: could not be recorded: {type(e).__name__}: {e}"))
                    echo(f"FAIL {failures[-1]} (its bytes are in the vault; run ingest again)", err=True)
            states = {doc_id: ledger.get(doc_id).state for doc_id in {g.document_id for _, g in got}}
        group.clear()
        for path, g in got:
            new += g.created
            known += not g.created
            if states[g.document_id] == State.CAPTURED.value and g.document_id not in to_process:
                to_process.append(g.document_id)
            if not quiet and len(candidates) <= 50:
                what = "new" if g.created else "already known; source recorded"
                echo(f"ok   {path} -> document {g.document_id} ({what})")

    # One line per file for a few; a bar on a terminal for many (each stage's, see service/progress.py).
    with Progress("capturing", length=len(candidates), quiet=quiet or len(candidates) <= 50) as bar:
        for done, (path, explicit) in enumerate(candidates):
            bar.update(done, len(candidates))   # shows what is done, not what has begun
            try:
                stored = store_file(vault, path, max_bytes=max_bytes, follow_symlinks=explicit, stage=True,
                                    admit=admit)
            except CaptureError as e:
                failures.append(str(e))
                echo(f"FAIL {e}", err=True)
                continue
            if is_message(stored.head):
                # A saved e-mail (.eml): its attachments become documents,
                # as in a watched mail folder; the files before it first.
                commit_group()
                docs = _ingest_mail(ledger, vault, stored, path, limits=mail_limits, actor=who)
                new += len(docs)
                to_process.extend(d for d in docs if d not in to_process)
                if not quiet and len(candidates) <= 50:
                    echo(f"ok   {path} -> e-mail: " + (f"documents {', '.join(map(str, docs))}" if docs else
                                                      "no new document (see `fapiao-agent refused`)"))
                continue
            if is_archive(stored.head):
                # A zip archive (an OFD is taken as a file): its invoice
                # files become documents, as in a watched folder.
                commit_group()
                archive = _ingest_zip(ledger, vault, stored, path, limits=mail_limits, actor=who)
                if archive is not None:
                    docs, archive = archive
                    new += len(docs)
                    known += archive.known
                    to_process.extend(d for d in docs if d not in to_process)
                    if archive.refused:
                        # Nothing of it is in the ledger but its refusal: a
                        # failure for the exit status, so `ingest x.zip && rm
                        # x.zip` stops here.
                        failures.append(f"{path}: refused, nothing in it was taken")
                        echo(f"FAIL {path}: refused, nothing in it was taken (see `fapiao-agent refused`)", err=True)
                    elif not quiet and len(candidates) <= 50:
                        echo(f"ok   {path} -> zip archive: " + (
                            f"documents {', '.join(map(str, docs))}" if docs else "no new document")
                             + (f", {archive.known} already known" if archive.known else ""))
                    continue
            if not group:
                started = time.monotonic()
            group.append((path, stored))
            if len(group) >= GROUP_MAX or time.monotonic() - started >= GROUP_S:
                commit_group()
        if group:
            commit_group()
        bar.update(len(candidates), len(candidates))
    states: dict[str, int] = {}
    with Progress("processing", length=len(to_process), quiet=quiet or no_process) as bar:
        for done, doc_id in enumerate([] if no_process else to_process):
            bar.update(done, len(to_process))
            outcome = process_captured(ledger, vault, doc_id, settings=settings,
                                       destinations=destination_names(cfg), today=today(),
                                       now=now(), actor=who, ocr=cfg.ocr)
            if outcome.already:
                # The daemon (or another ingest) read it first: report what it made of it.
                states[outcome.already] = states.get(outcome.already, 0) + 1
                if not quiet and len(candidates) <= 50:
                    echo(f"ok   document {doc_id} was read meanwhile by another process: {outcome.already}")
                continue
            if outcome.failed:
                then = f"tried again after {local_time(outcome.retry_at)}" if outcome.retry_at else "quarantined (extract-failed)"
                failures.append(f"document {doc_id}: {outcome.failed}")
                echo(f"FAIL document {doc_id}: reading failed, {then}: {outcome.failed}", err=True)
            for touched in outcome.touched:
                state = ledger.get(touched).state
                states[state] = states.get(state, 0) + 1
        bar.update(len(to_process), len(to_process))
    summary = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
    echo(f"{new} new, {known} already known, {len(failures)} failed"
               + (f"; {summary}" if summary else ""))
    ctx.exit(1 if failures else 0)


def _ingest_mail(ledger, vault, stored: StoredFile, path: Path, *, limits, actor: str) -> list[int]:
    # The message durable first (it is the original), then its attachments
    # (fsynced by mail_rows), then their rows in one transaction.
    if stored.staged is not None:
        vault.commit_staged([stored.staged])
    data = vault.path(stored.sha256).read_bytes()
    write = mail_rows(ledger, vault, data, stored.sha256, path=path, source=str(path.parent), label=None,
                      limits=limits, now=now(), actor=actor)
    with ledger.transaction():
        return write()


def _ingest_zip(ledger, vault, stored: StoredFile, path: Path, *, limits, actor: str):
    # The archive durable first (it is the original), then its invoice
    # files (fsynced by zip_rows), then their rows in one transaction:
    # (new documents, the ZipWrite). None for an OFD whose head looked like
    # a zip: taken as a file.
    data = Path(stored.staged.tmp_name).read_bytes() if stored.staged else vault.path(stored.sha256).read_bytes()
    if not is_archive(data):
        return None
    if stored.staged is not None:
        vault.commit_staged([stored.staged])
    archive = zip_rows(ledger, vault, data, stored.sha256, name=path.name, path=str(path),
                       source_kind="ingest", source=str(path.parent), label=None, limits=limits, now=now(),
                       actor=actor)
    with ledger.transaction():
        return archive.write(), archive


def _walk(paths: tuple[Path, ...], failures: list[str]) -> Iterator[tuple[Path, bool]]:
    """(file, given explicitly) for every candidate; folder errors go to `failures`."""
    for root in paths:
        if root.is_dir() and not root.is_symlink():
            def onerror(err: OSError) -> None:
                msg = f"{err.filename}: {err.strerror} (folder skipped)"
                failures.append(msg)
                echo(f"FAIL {msg}", err=True)
            for folder, dirs, files in os.walk(root, onerror=onerror):
                dirs.sort()
                for name in sorted(files):
                    yield Path(folder) / name, False
        elif root.exists() or root.is_symlink():
            yield root, True
        else:
            failures.append(f"{root}: no such file or folder")
            echo(f"FAIL {root}: no such file or folder", err=True)

