"""The watcher's folder walk: every entry below a watched folder, by folder
fd, never following a symlinked folder. Apart from service/watch.py (which
notes what it yields) to keep each module readable."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable, Iterator

from agent.config import WatchConfig
from agent.fsutil import is_link_at
from agent.watched import dated

log = logging.getLogger("fapiao.watch")


def files_under(root: Path, watch: WatchConfig | None = None,
                unreadable: Callable[[str, str], None] | None = None) -> Iterator[Path]:
    """Every entry below `root` but those in the agent's own folders
    (`agent_owned`): special files and symlinks to folders included, so
    they are refused with a reason; symlinked folders are not followed.
    Each folder that cannot be listed (`root` too) is told to
    `unreadable(folder, why)`, or logged when there is none."""
    # By folder fd (fwalk): a folder nested past PATH_MAX (4,096 bytes of
    # path) cannot be listed by its name, and os.walk skips it without a
    # word; its files are noted like any other (capture reaches them by
    # fd from the root too). A folder that cannot be read is said.
    def failed(err: OSError) -> None:
        if isinstance(err, FileNotFoundError):
            return  # removed since it was listed: nothing there to take
        # fwalk names the folder relative to `root` ("./sub"); os.open, `root`.
        folder = os.path.normpath(os.path.join(root, os.fsdecode(err.filename or ".")))
        if unreadable is not None:
            unreadable(folder, err.strerror or str(err))
        else:
            log.error("a folder in a watched folder cannot be read; its files are not taken",
                      extra={"folder": folder, "error": err.strerror})

    try:
        # The configured folder may itself be a symlink (to a NAS mount):
        # followed here, once, as its pin follows it; nothing below is.
        top = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
        failed(e)
        return
    try:
        yield from _walk_from(root, top, watch, failed)
    finally:
        os.close(top)


def _walk_from(root: Path, top: int, watch: WatchConfig | None,
               unreadable: Callable[[OSError], None]) -> Iterator[Path]:
    for folder, dirs, files, dirfd in os.fwalk(".", onerror=unreadable, dir_fd=top):
        here = root / folder
        if watch is not None and watch.after == "move" and here.name == "processed":
            dirs[:] = [d for d in dirs if not dated(d)]
        links = [d for d in dirs if is_link_at(d, dirfd)]
        dirs[:] = sorted(d for d in dirs if d not in links)
        for name in sorted(files + links):
            yield here / name
