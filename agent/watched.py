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
                    older_than_s: float) -> Iterator[str]:
    """Paths of files in the watched folders ((root, after) pairs) that have
    been there unchanged (by ctime) for more than `older_than_s` and that
    the ledger never noted as handled (no seen-file row for this very file:
    path, size, mtime, inode, ctime). A file still settling, or waiting out
    a temporary name's grace, is younger than that and not reported.
    Reads the folders and the ledger; writes nothing."""
    cutoff_ns = int((now.timestamp() - older_than_s) * 1e9)
    for root, after in watched:
        for folder, dirs, files in os.walk(root):
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
                key = str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                if ledger.seen_file(key, st.st_size, st.st_mtime_ns, ino=st.st_ino, ctime_ns=st.st_ctime_ns) is None:
                    yield key
