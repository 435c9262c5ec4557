"""The config a running daemon took, as its heartbeat says, against the
file `status` reads now.

A reload (SIGHUP) the daemon refuses keeps it on the config it had; one it
takes may change settings it reads only at its start (the extraction
pool's workers and limits, the log format). Both used to be said only by a
log line, while `status` read the file and showed what the daemon did not
run. The daemon now puts `RunningConfig.details()` in its heartbeat
(`config`); `config_report` compares it with the file `status` loaded, and
agent/health.py makes a WARNING of a refused reload and of settings
waiting for a restart.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any, Callable

from agent.config import Config
from agent.config_file import MAX_CONFIG_BYTES

# Settings the daemon reads once, at its start: a reload that changes them
# takes the rest, names these in a warning and in `status`.
RESTART_ONLY = (("agent", "workers"), ("agent", "log_format"), ("extract", "ocr"),
                ("extract", "ocr_workers"), ("extract", "timeout_s"), ("extract", "ocr_idle_unload_s"))


def restart_only_values(cfg: Config) -> dict[str, Any]:
    """{"section.key": value} of the RESTART_ONLY settings in `cfg`."""
    return {f"{section}.{key}": getattr(cfg, section).get(key) for section, key in RESTART_ONLY}


def file_sha256(path: Path | str | None) -> str | None:
    """The SHA-256 of the regular file at `path` now, or None when it cannot
    be read, is not a regular file or is larger than any config
    (MAX_CONFIG_BYTES). Returns at once whatever is put in the config's
    place: the daemon's notify and metrics threads call this at every check,
    and a pipe there (opened without O_NONBLOCK, read until a writer comes)
    or /dev/zero (read for ever) would hang them."""
    if not path:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
        return hashlib.sha256(data).hexdigest() if len(data) <= MAX_CONFIG_BYTES else None
    except OSError:
        return None
    finally:
        os.close(fd)


class RunningConfig:
    """What one daemon run says of its config: the file (path, SHA-256) it
    runs, when it loaded it, its last reload's outcome and the settings
    changed since its start that wait for a restart."""

    def __init__(self, cfg: Config, *, at: str, fixed: frozenset[str] = frozenset()):
        # `fixed`: settings the command line decides (--log-format), never
        # waiting on the file.
        self.started = restart_only_values(cfg)
        self.fixed = fixed
        self.path, self.sha256, self.loaded_at = str(cfg.path), cfg.file_sha256, at
        self.reload: dict[str, Any] | None = None
        self.restart_needed: list[str] = []

    def refused(self, reason: str, *, at: str, path: Path | str | None) -> None:
        """A reload refused: the config loaded before goes on."""
        self.reload = {"at": at, "outcome": "refused", "reason": reason, "sha256": file_sha256(path)}

    def applied(self, cfg: Config, *, at: str) -> list[str]:
        """A reload taken: `cfg` is the config run from now on, but for the
        RESTART_ONLY settings, which keep their start-up values. Returns
        those that differ in `cfg` ("key: old → new"), empty when none."""
        self.path, self.sha256, self.loaded_at = str(cfg.path), cfg.file_sha256, at
        new = restart_only_values(cfg)
        self.restart_needed = [f"{k}: {self.started[k]!r} → {new[k]!r}" for k in self.started
                               if k not in self.fixed and new[k] != self.started[k]]
        self.reload = {"at": at, "outcome": "applied", "sha256": cfg.file_sha256}
        return self.restart_needed

    def details(self) -> dict[str, Any]:
        """The heartbeat's `config`: path, sha256, loaded_at, reload, restart_needed."""
        return {"path": self.path, "sha256": self.sha256, "loaded_at": self.loaded_at, "reload": self.reload,
                "restart_needed": self.restart_needed}


def config_report(cfg: Config, daemon: dict | None, details: dict) -> dict | None:
    """What `status` says of the config a live daemon runs (`details`: its
    heartbeat's), against the file at `cfg.path` as it is now; None when no
    daemon is alive or its heartbeat says nothing of its config (an older
    version). `file_changed`: the same file holds other bytes than the
    daemon loaded (or can no longer be read). `reload_refused`: the last
    reload was refused and the daemon still runs other bytes than the file
    (or the file is another one, which `status` cannot compare: the refusal
    stands)."""
    ran = details.get("config")
    if not daemon or not daemon.get("alive") or not isinstance(ran, dict):
        return None
    same_file = ran.get("path") == str(cfg.path)
    # The file read again, not `cfg.file_sha256`: the daemon's own notify and
    # metrics threads pass the config it runs, whose bytes are those it
    # loaded, so a refused reload would never show there (nor its alert).
    # For `status` it is the file it has just read.
    now_sha = file_sha256(cfg.path) if cfg.path is not None else cfg.file_sha256
    changed = bool(same_file and ran.get("sha256") and ran["sha256"] != now_sha)
    reload = ran.get("reload") if isinstance(ran.get("reload"), dict) else None
    refused = bool(reload and reload.get("outcome") == "refused" and (changed or not same_file))
    return {"path": ran.get("path"), "sha256": ran.get("sha256"), "loaded_at": ran.get("loaded_at"),
            "file": str(cfg.path), "file_sha256": now_sha, "same_file": same_file,
            "file_changed": changed, "reload": reload, "reload_refused": refused,
            "restart_needed": list(ran.get("restart_needed") or [])}


def config_lines(report: dict | None, time_text: Callable[[str | None], str]) -> list[str]:
    """The `status` lines of `config_report`'s dict: nothing when the daemon
    runs the very file there is."""
    if not report:
        return []
    lines = []
    loaded = time_text(report["loaded_at"])
    reload = report["reload"] or {}
    if report["reload_refused"]:
        where = "the file changed since" if report["same_file"] else f"{report['path']} was edited"
        lines.append(f"the daemon runs the config loaded at {loaded}; {where} and its reload at "
                     f"{time_text(reload.get('at'))} was REFUSED: {reload.get('reason')}")
    elif report["file_changed"]:
        lines.append(f"the file changed since the daemon loaded it at {loaded}; not reloaded yet "
                     "(systemctl reload fapiao-agent)")
    if report["restart_needed"]:
        lines.append(f"reloaded at {loaded}, but these settings take effect only at a restart: "
                     + "; ".join(report["restart_needed"]))
    return lines
