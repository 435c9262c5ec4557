"""A running daemon's mark on the folder of its config file, for the CLI.

The CLI finds a daemon through the ledger the config names (its heartbeat).
When the config no longer leads there (agent.state_dir edited, its reload
refused: the daemon keeps the folder it opened) or cannot be read at all
(a TOML error, its reload refused), the CLI has no ledger to ask. So the
daemon holds a shared flock(2) on the config file's folder while it runs
(the folder, not the file: an editor's save replaces the file, never the
folder), and a command asks whether anyone holds one there. A folder may
hold several configs (/etc/fapiao-agent/read.toml beside config.toml):
"a daemon runs from a config in this folder" is all this tells, and it is
only asked when the config's own ledger cannot say more.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

# A command's probe holds the lock exclusively for microseconds; another
# command probing at that very moment tries again before it concludes.
_PROBES = 5
_PROBE_GAP_S = 0.02


def hold(config_path: Path | None) -> int | None:
    """Take the daemon's shared hold on the folder of `config_path`; its fd
    (the hold lasts while it is open, never inherited by an exec), or None
    when the folder cannot be opened or locked (nothing then tells the CLI
    of this daemon but its heartbeat: never fatal)."""
    fd = _folder_fd(config_path)
    if fd is None:
        return None
    for _ in range(_PROBES):
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            time.sleep(_PROBE_GAP_S)   # a command's probe, over in microseconds
        except OSError:
            break
    os.close(fd)
    return None


def daemon_running_from(config_path: Path | None) -> bool:
    """True when a daemon holds the folder of `config_path` (`hold`): one
    runs from a config there. False when none does, or it cannot be told
    (the folder cannot be opened by this user)."""
    fd = _folder_fd(config_path)
    if fd is None:
        return False
    try:
        for _ in range(_PROBES):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                time.sleep(_PROBE_GAP_S)
                continue
            except OSError:
                return False
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        return True
    finally:
        os.close(fd)


def served_elsewhere(config_path: Path | None, state_dir: Path) -> str | None:
    """For a command that found no ledger in `state_dir`: why that is not a
    fresh start when a daemon runs from a config in the same folder (it
    keeps the state folder it opened, after a refused reload that moved
    agent.state_dir), else None."""
    if not daemon_running_from(config_path):
        return None
    return (f"a daemon is running from a config in {Path(config_path).parent}, yet {state_dir} holds no ledger: "
            "it serves the state folder it opened at its start (agent.state_dir changed since? a reload cannot "
            "move it). Restart the daemon to use the new folder, or put the old value back")


def still_running_hint(config_path: Path | None) -> str:
    """For a config that cannot be read: what a daemon running from a config
    in its folder does meanwhile (its reload refused, it keeps the config it
    loaded), or '' when none does."""
    if not daemon_running_from(config_path):
        return ""
    return (f"\na daemon is running from a config in {Path(config_path).parent}: it goes on with the config it "
            "loaded (a reload of this file is refused); fix the file before it is restarted")


def _folder_fd(config_path: Path | None) -> int | None:
    # The folder holding the config, opened for flock (a save replaces the
    # file, never the folder); None when there is none or it cannot be opened.
    if config_path is None:
        return None
    try:
        return os.open(Path(config_path).parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
