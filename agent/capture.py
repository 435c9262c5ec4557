"""Capture: the only step that touches a source file.

A file is opened without following symlinks and without blocking on FIFOs,
checked to be a regular file within the size limit, copied into the vault
(durable on return), then recorded in the ledger. Only after that may the
caller move or delete the source.
"""

from __future__ import annotations

import errno
import os
import stat
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

from agent import beneath
from agent.beneath import Identity
from agent.errors import CaptureError, SourceForbidden, SourceGone, SourceUnavailable
from agent.filenames import exact_path, readable_name, readable_path
from agent.fsutil import is_link_at
from agent.extract.sniff import sniff
from agent.extract.unreadable import unreadable_kind
from agent.ledger import Ledger
from agent.vault import Staged, Vault

# Files stored one by one (`store_file`) are recorded in groups, one
# transaction (one fsync of the ledger) for all of them, closed after this
# long or this many files (service/intake.py, `ingest`): each file's rows are
# durable within a few tens of ms of its vault object.
GROUP_S = 0.02
GROUP_MAX = 200
_KINDS = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device", stat.S_IFDIR: "a directory", stat.S_IFLNK: "a symlink"}


@dataclass(frozen=True)
class Captured:
    """A file safely in the vault and the ledger."""

    document_id: int
    sha256: str
    size: int
    created: bool  # False: the same bytes were already known (second source recorded)
    # The source file as it was opened (None for bytes without a file), and
    # whether it stayed the same while it was read: only then may it be
    # moved or deleted later.
    source: Identity | None = None
    steady: bool = False


@contextmanager
def open_source(path: Path, *, max_bytes: int, follow_symlinks: bool = False,
                root: Path | None = None) -> Iterator[BinaryIO]:
    """Open a source file for reading, refusing anything that is not a
    regular file within `max_bytes`. Never blocks on a FIFO, never follows
    a symlink unless asked. With `root`, the file must lie beneath it: the
    folders on the way are walked from `root` by fd, none may be a symlink
    (see agent/beneath.py), and it must have no other name: a hard link
    may lead to a file outside the folder (a config holding a token), so
    one with st_nlink > 1 is refused. Raises CaptureError with a message
    naming the path and saying what is wrong, fit for an operator."""
    with _opened(path, max_bytes=max_bytes, follow_symlinks=follow_symlinks, root=root) as (stream, _):
        yield stream


@contextmanager
def _opened(path: Path, *, max_bytes: int, follow_symlinks: bool, root: Path | None,
            admit: Callable[[int, os.stat_result], str | None] | None = None
            ) -> Iterator[tuple[BinaryIO, os.stat_result]]:
    flags = beneath.FILE_FLAGS if not follow_symlinks else beneath.FILE_FLAGS & ~os.O_NOFOLLOW
    try:
        if root is not None:
            with beneath.folder_of(root, path) as (dirfd, name):
                fd = _open_at(path, name, flags, dirfd=dirfd, follow_symlinks=False)
        else:
            fd = _open_at(path, path, flags, dirfd=None, follow_symlinks=follow_symlinks)
    except beneath.RootReplaced:
        raise  # not this file's fault: the caller waits for the folder to come back
    except beneath.Escapes as e:
        raise CaptureError(f"{path}: {e}; not taken (it may lead outside the watched folder)") from None
    except FileNotFoundError:
        raise SourceGone(f"{path}: no such file (moved or deleted before capture)") from None
    except PermissionError:
        raise CaptureError(f"{path}: permission denied on a folder of its path") from None
    except OSError as e:  # a folder on the way cannot be opened (EIO...): look again later
        if e.errno in _AGENTS_OWN:
            raise CaptureError(f"{path}: {_agents_own(e)}", transient=True) from None
        raise SourceUnavailable(f"{path}: cannot open a folder of its path: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        kind = stat.S_IFMT(st.st_mode)
        if kind != stat.S_IFREG:
            raise CaptureError(f"{path}: is {_KINDS.get(kind, 'not a regular file')}, not a regular file")
        if root is not None and st.st_nlink > 1:
            raise CaptureError(f"{path}: has {st.st_nlink - 1} other name(s) (a hard link), which may lie "
                               "outside the watched folder; not taken (copy the file in instead of linking it)")
        if st.st_size > max_bytes:
            raise CaptureError(f"{path}: {st.st_size // (1024 * 1024)} MB is larger than the limit "
                               f"of {max_bytes // (1024 * 1024)} MB (agent.max_file_mb)")
        if admit is not None and (refusal := admit(fd, st)):
            raise CaptureError(f"{path}: {refusal}")
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as stream:
            yield stream, st
    except CaptureError as e:
        # Named by its path, whatever it is (SourceUnavailable, a vault's
        # error): the same error, its kind and fields kept, its text prefixed.
        if str(path) not in str(e):
            e.args = (f"{path}: {e}", *e.args[1:])
        raise
    except OSError as e:  # reading the source (the vault's own errors are CaptureErrors)
        raise SourceUnavailable(f"{path}: read failed: {e.strerror}") from None
    finally:
        os.close(fd)


def _open_at(path: Path, name, flags: int, *, dirfd: int | None, follow_symlinks: bool) -> int:
    """Open `name` (relative to `dirfd` when given); `path` names it in errors."""
    try:
        # Opening a device node can act on the device (a tape rewinds), so
        # look before opening; the fstat after opening still guards against a swap.
        kind = stat.S_IFMT(os.stat(name, dir_fd=dirfd, follow_symlinks=follow_symlinks).st_mode)
        if kind in (stat.S_IFCHR, stat.S_IFBLK):
            raise CaptureError(f"{path}: is {_KINDS[kind]}, not a regular file")
        return os.open(name, flags, dir_fd=dirfd)
    except FileNotFoundError:
        if os.path.islink(name) if dirfd is None else is_link_at(name, dirfd):
            raise CaptureError(f"{path}: broken symlink (its target does not exist)") from None
        raise
    except PermissionError:
        raise SourceForbidden(f"{path}: permission denied (the agent's user cannot read it)") from None
    except OSError as e:
        raise _describe(path, name, dirfd, e) from None


# Formats no invoice comes in, told from a file's first bytes: its reading
# could only fail with "unsupported-format" (agent/extract). A zip is not
# among them: from its head alone an OFD cannot always be told from a zip.
UNREADABLE_FORMATS = frozenset({"unknown", "empty"})


class UnsupportedFormat(CaptureError):
    """The file's bytes are in the vault (`sha256`) but are of no format an
    invoice comes in: refused, never a document for a worker to read."""

    def __init__(self, message: str, *, staged: Staged, fmt: str):
        super().__init__(message)
        self.staged, self.fmt = staged, fmt
        self.sha256, self.size = staged.sha256, staged.size


@dataclass(frozen=True)
class StoredFile:
    """A source file's bytes durable in the vault, not yet in the ledger
    (`store_file`; `record_file` writes its rows)."""

    sha256: str
    size: int
    head: bytes
    name: str
    path: str
    source: Identity   # the file as it was opened (fstat before reading)
    steady: bool       # unchanged while it was read: only then may it be moved or deleted later
    staged: Staged | None = None  # `stage`: in the vault's tmp/, durable once `Vault.commit_staged` returned


def capture_file(ledger: Ledger, vault: Vault, path: str | os.PathLike, *, source_kind: str,
                 source: str | None, now: str, actor: str, max_bytes: int,
                 follow_symlinks: bool = False, root: Path | None = None,
                 details: dict[str, Any] | None = None, refuse_unreadable: bool = False) -> Captured:
    """Take one file into vault and ledger, idempotently: `store_file`, then
    `record_file`.

    Guarantees: on return the bytes are fsynced in the vault and the ledger
    row is committed (or written in the caller's open transaction: durable
    with its COMMIT). See `store_file` for what is read and refused."""
    stored = store_file(vault, path, max_bytes=max_bytes, follow_symlinks=follow_symlinks, root=root,
                        refuse_unreadable=refuse_unreadable)
    return record_file(ledger, stored, source_kind=source_kind, source=source, now=now, actor=actor,
                       details=details)


def store_file(vault: Vault, path: str | os.PathLike, *, max_bytes: int, follow_symlinks: bool = False,
               root: Path | None = None, refuse_unreadable: bool = False, stage: bool = False,
               admit: Callable[[int, os.stat_result], str | None] | None = None) -> StoredFile:
    """Copy one file's bytes into the vault, fsynced on return; nothing is
    written to the ledger (a group of files gets its rows in one commit,
    service/intake.py). With `stage`, the bytes are only staged
    (`StoredFile.staged`, `Vault.stage_stream`): the caller makes a whole
    group durable with one `Vault.commit_staged` (two filesystem syncs for
    all of them instead of two fsyncs each) before writing its rows.

    With `root`, only a file beneath it is read (see `open_source`). The
    result says which file was read (`source`, its fstat before reading)
    and whether it stayed unchanged while it was read (`steady`). Raises
    CaptureError (see `open_source`; `transient` set for disk errors) and
    leaves nothing behind in that case. With `refuse_unreadable`, a file
    whose first bytes are of no format an invoice comes in
    (UNREADABLE_FORMATS, judged by content, never size) is not stored: its
    bytes are staged in the vault (`Vault.stage_stream`) and
    UnsupportedFormat is raised carrying them; the caller records the
    refusal naming their sha256 once `Vault.commit_staged` made them durable
    (many at once: a flood of junk costs no fsync per file). `admit`, given
    the opened file's descriptor and fstat (the file read, whatever its path
    led to by then), returns why it must not be taken, raised as CaptureError."""
    path = Path(path)
    with _opened(path, max_bytes=max_bytes, follow_symlinks=follow_symlinks, root=root,
                 admit=admit) as (stream, before):
        head = stream.read(4096)
        stream.seek(0)
        fmt = sniff(head) if head else "empty"
        if refuse_unreadable and fmt in UNREADABLE_FORMATS:
            staged = vault.stage_stream(stream, max_bytes=max_bytes)
            # The rule codes are the ones reading the file would give (agent/extract).
            kind = unreadable_kind(head) if fmt == "unknown" else None
            what = ("empty: only blank bytes: ask the sender for the file again / 文件只有空白字节：请向发件人重新索取文件"
                    if fmt == "empty"
                    else f"unsupported-format: {kind.text}" if kind   # a RAR, a winmail.dat ...: named
                    else "unsupported-format: not a PDF, OFD, invoice XML, image or zip: send the invoice's own "
                         "PDF, OFD or XML / 不是 PDF、OFD、发票 XML、图片或 zip 压缩包：请发送发票原件（PDF、OFD 或 XML）")
            raise UnsupportedFormat(f"{what}: {path} ({staged.size} bytes, kept in the vault as "
                                    f"{staged.sha256[:12]}); left where it is, taken again when it changes",
                                    staged=staged, fmt=fmt)
        stored = vault.stage_stream(stream, max_bytes=max_bytes) if stage else vault.put_stream(stream,
                                                                                               max_bytes=max_bytes)
        after = os.fstat(stream.fileno())
    read_from = Identity.of(before)
    steady = stored.size == before.st_size and not read_from.differences(after)
    return StoredFile(stored.sha256, stored.size, head, path.name, str(path), read_from, steady,
                      staged=stored if stage else None)


def record_file(ledger: Ledger, stored: StoredFile, *, source_kind: str, source: str | None, now: str,
                actor: str, details: dict[str, Any] | None = None) -> Captured:
    """Record a stored file's arrival in the ledger, idempotently (a new
    `captured` document, or another source row of the known one); one
    transaction, or part of the caller's."""
    got = _record(ledger, stored.sha256, stored.size, stored.head, source_kind=source_kind, source=source,
                  name=stored.name, original_path=stored.path, now=now, actor=actor, details=details)
    return Captured(got.document_id, got.sha256, got.size, got.created, source=stored.source,
                    steady=stored.steady)


def _describe(path: Path, name, dirfd: int | None, e: OSError) -> CaptureError:
    # ELOOP (a symlink under O_NOFOLLOW), ENXIO (a socket): say what it is.
    try:
        kind = stat.S_IFMT(os.stat(name, dir_fd=dirfd, follow_symlinks=False).st_mode)
    except OSError:
        kind = None
    if kind == stat.S_IFLNK and (why := _dangling(name, dirfd)):
        return CaptureError(f"{path}: {why}")
    if kind == stat.S_IFLNK:
        return CaptureError(f"{path}: is a symlink; symlinks in watched folders are not followed")
    if kind in _KINDS:
        return CaptureError(f"{path}: is {_KINDS[kind]}, not a regular file")
    if e.errno in _AGENTS_OWN:
        return CaptureError(f"{path}: {_agents_own(e)}", transient=True)
    # EAGAIN (a lease or mandatory lock held by another program, as Samba's
    # kernel oplocks take), EIO, ETXTBSY: this file, for now.
    return SourceUnavailable(f"{path}: cannot open: {e.strerror}")


# Open errors that are the agent's own state, not the file's: every file
# would fail alike, so intake pauses (a transient CaptureError) rather than
# holding each file in turn as if it were locked.
_AGENTS_OWN = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM})


def _agents_own(e: OSError) -> str:
    return f"the agent cannot open files just now ({e.strerror}); not this file's fault"


def _dangling(name, dirfd: int | None) -> str | None:
    # Why a symlink leads nowhere, or None when it leads to something.
    try:
        os.stat(name, dir_fd=dirfd, follow_symlinks=True)
        return None
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "a symlink loop (it leads back to itself)"
        return "broken symlink (its target does not exist)"


def capture_bytes(ledger: Ledger, vault: Vault, data: bytes, *, name: str, source_kind: str,
                  source: str | None, now: str, actor: str,
                  details: dict[str, Any] | None = None) -> Captured:
    """Take bytes that have no file of their own (an e-mail attachment) into
    vault and ledger, idempotently; same guarantees as `capture_file`."""
    stored = vault.put_bytes(data)
    return record_bytes(ledger, stored.sha256, stored.size, data[:4096], name=name, source_kind=source_kind,
                        source=source, now=now, actor=actor, details=details)


def record_bytes(ledger: Ledger, sha256: str, size: int, head: bytes, *, name: str, source_kind: str,
                 source: str | None, now: str, actor: str, details: dict[str, Any] | None = None,
                 original_path: str | None = None) -> Captured:
    """Record the arrival of bytes already durable in the vault (`sha256`,
    starting with `head`) that have no file of their own, idempotently; one
    transaction, or part of the caller's. `original_path`: the file they
    came out of (a zip archive's), if any."""
    return _record(ledger, sha256, size, head, source_kind=source_kind, source=source, name=name,
                   original_path=original_path, now=now, actor=actor, details=details)


def _record(ledger: Ledger, sha256: str, size: int, head: bytes, *, source_kind: str,
            source: str | None, name: str, original_path: str | None, now: str, actor: str,
            details: dict[str, Any] | None) -> Captured:
    # Every text of the arrival made of a path is spelled here, whatever
    # the caller passed: the folder (`source`: a watched folder, the folder
    # `ingest` found it in, a GBK department folder among them) and the
    # name as people read them, the path exactly (it is matched on).
    doc_id, created = ledger.add_document(
        sha256=sha256, size=size, media_type=sniff(head) if head else "empty", source_kind=source_kind,
        source=None if source is None else readable_path(source), original_name=readable_name(name),
        original_path=_stored_path(original_path),
        now=now, actor=actor, details=details)
    return Captured(doc_id, sha256, size, created)


def _stored_path(text: str | None) -> str | None:
    # Exact, as arrivals and files seen are matched on (see agent/filenames.py).
    return None if text is None else exact_path(text)
