"""What in a watched folder belongs to the agent, and which files there
were never handled: the audit's net under "every file that lands is
delivered or explained"."""

from __future__ import annotations

import datetime as dt
import os
import re
import stat
from pathlib import Path
from typing import Iterator

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
        unreadable: list[OSError] = []
        for folder, dirs, files in os.walk(root, onerror=unreadable.append):
            yield from _unlisted(unreadable, folder)
            here = Path(folder)
            if after == "move" and here.name == "processed":
                dirs[:] = [d for d in dirs if not dated(d)]
            dirs.sort()
            for name in sorted(files):
                path = here / name
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                if not stat.S_ISREG(st.st_mode) or st.st_ctime_ns > cutoff_ns:
                    continue
                key = _shown(path)
                if ledger.seen_file(key, st.st_size, st.st_mtime_ns, ino=st.st_ino, ctime_ns=st.st_ctime_ns) is None:
                    yield key, None
        yield from _unlisted(unreadable, root)


def _unlisted(errors: list[OSError], where: str) -> Iterator[tuple[str, str]]:
    # Folders os.walk could not list since the last call (one removed
    # meanwhile is no finding), emptied as they are told.
    for e in errors:
        if not isinstance(e, FileNotFoundError):
            yield _shown(e.filename or where), e.strerror or str(e)
    errors.clear()


def _shown(path) -> str:
    # As the ledger keys files (a name's non-UTF-8 bytes as \xNN).
    return os.fsencode(path).decode("utf-8", "backslashreplace")
