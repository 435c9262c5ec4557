"""What in a watched folder belongs to the agent, and which files there
were never handled: the audit's net under "every file that lands is
delivered or explained"."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import stat
from pathlib import Path
from typing import Callable, Collection, Iterator, NamedTuple

from agent.filenames import exact_path, storable
from agent.ledger import Ledger

_DATED = re.compile(r"\d{4}-\d{2}-\d{2}\Z")


def agent_owned(after: str, folders: list[str]) -> bool:
    """True when `folders` (below a watched folder) lead into one the agent
    made itself: processed/DATE of an after = "move" watch. Nothing else in
    a watched folder is ever skipped."""
    if after != "move":
        return False
    return any(f == "processed" and _DATED.match(nxt) is not None for f, nxt in zip(folders, folders[1:]))


def dated(name: str) -> bool:
    """True for a processed/ subfolder name the agent makes (YYYY-MM-DD)."""
    return _DATED.match(name) is not None


class Unhandled(NamedTuple):
    """A file or folder of a watched folder the audit reports: `code` is its
    rule (file-not-taken, folder-unreadable), `why` says what is wrong."""

    path: str
    code: str
    why: str


def unhandled_files(ledger: Ledger, watched: list[tuple[str, str]], *, now: dt.datetime,
                    older_than_s: float, known_objects: Collection[str] = ()) -> Iterator[Unhandled]:
    """What in the watched folders ((root, after) pairs) was never handled,
    each as an `Unhandled`:
    - a file there unchanged (by ctime) for more than `older_than_s` with no
      seen-file row for this very file (path, size, mtime, inode, ctime);
    - a file in an after = "move" watch's processed/DATE that the agent did
      not move there (its inode, device, size and mtime are no move's) and
      whose bytes are none of `known_objects` (the vault hashes the ledger
      names): put there by hand, so never taken. (Not by size alone: a
      zip or e-mail the agent moved has no move row, and agent.max_file_mb
      may have been larger when it was taken.)
    - a folder that cannot be listed (its files can be neither taken nor
      checked).
    A file still settling, or waiting out a temporary name's grace, is
    younger than `older_than_s` and not reported. Reads the folders and the
    ledger (and the bytes of processed files that are not the agent's
    moves); writes nothing."""
    cutoff_ns = int((now.timestamp() - older_than_s) * 1e9)
    for root, after in watched:
        own: list[Path] = []
        for found in _settled_files(Path(root), after, cutoff_ns, own.append):
            if isinstance(found, Unhandled):
                yield found
                continue
            path, _, _, st = found
            key = exact_path(str(path))  # as intake keys the files it has seen
            if ledger.seen_file(key, st.st_size, st.st_mtime_ns, ino=st.st_ino, ctime_ns=st.st_ctime_ns) is None:
                yield Unhandled(key, "file-not-taken", "in a watched folder, never taken nor refused")
        for folder in own:
            yield from _put_by_hand(ledger, folder, cutoff_ns, known_objects)


def _settled_files(root: Path, after: str | None, cutoff_ns: int, own: Callable[[Path], None] | None = None
                   ) -> Iterator[Unhandled | tuple[Path, int, str, os.stat_result]]:
    # The regular files below `root` unchanged since `cutoff_ns` (by ctime)
    # as (path, fd of its folder, name, lstat), and between them each
    # folder the walk cannot list, as an Unhandled (see `entries_under`).
    unreadable: list[tuple[Path, OSError]] = []
    for path, fd, name in entries_under(root, after, lambda f, e: unreadable.append((f, e)), own):
        yield from _unlisted(unreadable)
        try:
            st = os.lstat(name, dir_fd=fd)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_ctime_ns <= cutoff_ns:
            yield path, fd, name, st
    yield from _unlisted(unreadable)


def _put_by_hand(ledger: Ledger, folder: Path, cutoff_ns: int, known: Collection[str]) -> Iterator[Unhandled]:
    # The files of one processed/DATE folder (and below) that are not the
    # agent's: the watcher never looks there, so nothing else would tell.
    for found in _settled_files(folder, None, cutoff_ns):
        if isinstance(found, Unhandled):
            yield found
            continue
        path, fd, name, st = found
        if ledger.moved_here(dev=st.st_dev, ino=st.st_ino, size=st.st_size, mtime_ns=st.st_mtime_ns):
            continue
        try:
            sha256 = _hash_at(fd, name)
        except OSError as e:
            yield Unhandled(storable(str(path)), "file-not-taken",
                            f"in the agent's processed folder, not moved there by it, and unreadable "
                            f"({e.strerror or e}): never taken")
            continue
        if sha256 not in known:
            yield Unhandled(storable(str(path)), "file-not-taken",
                            "in the agent's processed folder, and the ledger does not hold its bytes: put "
                            "there by hand, or written to after the agent moved it (a writer back after "
                            "quiet_seconds); never taken as it is now; move it into the watched folder to "
                            "have it taken")


def _hash_at(fd: int, name: str) -> str:
    # Never through a symlink, never blocking on a FIFO swapped in.
    f = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
    with os.fdopen(f, "rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def _unlisted(errors: list[tuple[Path, OSError]]) -> Iterator[Unhandled]:
    # Folders the walk could not list since the last call, emptied as told.
    for folder, e in errors:
        yield Unhandled(storable(str(folder)), "folder-unreadable",
                        f"in a watched folder, cannot be listed ({e.strerror or e}): its files can be neither "
                        "taken nor checked")
    errors.clear()


def entries_under(root: Path, after: str | None, failed: Callable[[Path, OSError], None],
                  own: Callable[[Path], None] | None = None) -> Iterator[tuple[Path, int, str]]:
    """Every entry below `root` but its folders and the agent's own (an
    after = "move" watch's processed/DATE), as (path, fd of its folder, its
    name): files, symlinks (to folders too: never followed) and special
    files, each folder's sorted by name, depth first. The fd is open until
    the next entry is asked for: `os.lstat(name, dir_fd=fd)` reaches an
    entry past PATH_MAX (4,096 bytes of path), which its path cannot. Each
    folder that cannot be listed (`root` too, but not one removed meanwhile)
    is told by its full path to `failed(folder, error)`; each agent's own
    folder left out, to `own(folder)` when given."""
    # Not os.walk (it skips a folder past PATH_MAX without a word) nor
    # os.fwalk (it tells a folder it cannot open by its last name alone, so
    # two folders named "dec" in different places were one, named where
    # neither is). One fd open per level.
    def told(folder: Path, err: OSError) -> None:
        if not isinstance(err, FileNotFoundError):
            failed(folder, err)

    try:
        # The configured folder may itself be a symlink (to a NAS mount):
        # followed here, once, as its pin follows it; nothing below is.
        top = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
        told(root, e)
        return
    stack: list[tuple[Path, int, Iterator[str]]] = []

    def enter(here: Path, fd: int) -> Iterator[tuple[Path, int, str]]:
        # List the folder open as `fd`: its folders wait on the stack (which
        # closes `fd` once they are done), its files are yielded now.
        listed = _listed(here, fd, after, told)
        if listed is None:
            os.close(fd)
            return
        files, folders, skipped = listed
        if own is not None:
            for name in skipped:
                own(here / name)
        stack.append((here, fd, iter(folders)))
        yield from ((here / name, fd, name) for name in files)

    try:
        yield from enter(root, top)
        while stack:
            here, fd, folders = stack[-1]
            name = next(folders, None)
            if name is None:
                os.close(fd)
                stack.pop()
                continue
            try:
                sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as e:
                told(here / name, e)
                continue
            yield from enter(here / name, sub)
    finally:
        for _, fd, _ in stack:
            os.close(fd)


def _listed(here: Path, fd: int, after: str | None,
            failed: Callable[[Path, OSError], None]) -> tuple[list[str], list[str], list[str]] | None:
    # The folder open as `fd`: (names of its files, symlinks and special
    # files; names of its folders to walk; the agent's own folders left
    # out), each sorted; None when it cannot be listed (told to `failed`).
    try:
        with os.scandir(fd) as entries:
            files, folders = [], []
            for entry in entries:
                try:
                    is_folder = entry.is_dir(follow_symlinks=False)
                except OSError:
                    is_folder = False
                (folders if is_folder else files).append(entry.name)
    except OSError as e:
        failed(here, e)
        return None
    skipped = []
    if after == "move" and here.name == "processed":
        skipped = [f for f in folders if dated(f)]
        folders = [f for f in folders if not dated(f)]
    return sorted(files), sorted(folders), sorted(skipped)
