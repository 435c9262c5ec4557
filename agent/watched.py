"""What in a watched folder belongs to the agent, and which files there
were never handled: the audit's net under "every file that lands is
delivered or explained"."""

from __future__ import annotations

import datetime as dt
import os
import re
import stat
from pathlib import Path
from typing import Callable, Iterator

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


def unhandled_files(ledger: Ledger, watched: list[tuple[str, str]], *, now: dt.datetime,
                    older_than_s: float) -> Iterator[tuple[str, str | None]]:
    """Files in the watched folders ((root, after) pairs) that have been
    there unchanged (by ctime) for more than `older_than_s` and that the
    ledger never noted as handled (no seen-file row for this very file:
    path, size, mtime, inode, ctime), as (path, None); and each folder
    there that cannot be listed (its files can be neither taken nor
    checked), as (folder, why). A file still settling, or waiting out a
    temporary name's grace, is younger than that and not reported.
    Reads the folders and the ledger; writes nothing."""
    cutoff_ns = int((now.timestamp() - older_than_s) * 1e9)
    for root, after in watched:
        unreadable: list[tuple[Path, OSError]] = []
        for path, fd, name in entries_under(Path(root), after, lambda f, e: unreadable.append((f, e))):
            yield from _unlisted(unreadable)
            try:
                st = os.lstat(name, dir_fd=fd)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode) or st.st_ctime_ns > cutoff_ns:
                continue
            key = exact_path(str(path))  # as intake keys the files it has seen
            if ledger.seen_file(key, st.st_size, st.st_mtime_ns, ino=st.st_ino, ctime_ns=st.st_ctime_ns) is None:
                yield key, None
        yield from _unlisted(unreadable)


def _unlisted(errors: list[tuple[Path, OSError]]) -> Iterator[tuple[str, str]]:
    # Folders the walk could not list since the last call, emptied as told.
    for folder, e in errors:
        yield storable(str(folder)), e.strerror or str(e)
    errors.clear()


def entries_under(root: Path, after: str | None, failed: Callable[[Path, OSError], None]
                  ) -> Iterator[tuple[Path, int, str]]:
    """Every entry below `root` but its folders and the agent's own (an
    after = "move" watch's processed/DATE), as (path, fd of its folder, its
    name): files, symlinks (to folders too: never followed) and special
    files, each folder's sorted by name, depth first. The fd is open until
    the next entry is asked for: `os.lstat(name, dir_fd=fd)` reaches an
    entry past PATH_MAX (4,096 bytes of path), which its path cannot. Each
    folder that cannot be listed (`root` too, but not one removed meanwhile)
    is told by its full path to `failed(folder, error)`."""
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
        files, folders = listed
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
            failed: Callable[[Path, OSError], None]) -> tuple[list[str], list[str]] | None:
    # The folder open as `fd`: (names of its files, symlinks and special
    # files; names of its folders to walk), each sorted; None when it
    # cannot be listed (told to `failed`).
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
    if after == "move" and here.name == "processed":
        folders = [f for f in folders if not dated(f)]
    return sorted(files), sorted(folders)
