"""The watcher's folder walk (agent.watched.entries_under), with a
folder that cannot be listed told to the scan or logged. Apart from
service/watch.py, which notes what it yields."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Iterator

from agent.config import WatchConfig
from agent.watched import entries_under

log = logging.getLogger("fapiao.watch")


def files_under(root: Path, watch: WatchConfig | None = None,
                unreadable: Callable[[str, str], None] | None = None) -> Iterator[Path]:
    """Every entry below `root` but those in the agent's own folders
    (`agent_owned`): special files and symlinks to folders included, so
    they are refused with a reason; symlinked folders are not followed.
    Each folder that cannot be listed (`root` too) is told by its full path
    to `unreadable(folder, why)`, or logged when there is none."""
    def failed(folder: Path, err: OSError) -> None:
        if unreadable is not None:
            unreadable(str(folder), err.strerror or str(err))
        else:
            log.error("a folder in a watched folder cannot be read; its files are not taken",
                      extra={"folder": str(folder), "error": err.strerror})

    for path, _, _ in entries_under(root, watch.after if watch is not None else None, failed):
        yield path
