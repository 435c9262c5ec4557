"""The state folder one daemon holds: opened and locked at start, pinned by
what its configured name led to then, checked at each heartbeat for that
name now leading elsewhere, and waited for while its disk is read-only or
full (at start and in the main loop).

Apart from service/daemon.py, which only says when (once at start, on a
reload, at each heartbeat, after a failed step): this says which folder is
held, what is said when it is lost, and how a broken state disk is waited
out. service/state.py says which failures opening it are worth waiting for.
Main thread only.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Callable

from agent.config import Config
from agent.config_paths import folder_identity
from agent.ledger import Ledger
from agent.ledger.damage import damage_phrase
from agent.vault import Vault
from service import systemd
from service.state import EXTEND_MARGIN_S, StateUnavailable, take_daemon_lock, worth_waiting

log = logging.getLogger("fapiao.daemon")
# A broken state disk is tried again after 2, 4, 8 ... s, at most this far apart.
MAX_BACKOFF_S = 60.0


class StateFolder:
    """The state folder of one daemon run, from its lock to its stop.

    `cfg` is the config the daemon started with: its state folder is the
    one for the daemon's whole life (a reload may not move it:
    `reload_refusal`, and `pin_state_dir` points each reloaded config at
    it), so its state_dir, ledger_path and vault_dir stay true after a
    reload. `stopping` says when to give up waiting."""

    def __init__(self, cfg: Config, stopping: Callable[[], bool]):
        self.cfg = cfg
        self.stopping = stopping
        self.lock_fd: int | None = None
        self.identity: tuple[int, int] | None = None  # the state folder opened (dev, inode)
        self.named: Path | None = None  # agent.state_dir as configured, before pin_state_dir
        self.moved_said = False

    def open_state(self) -> tuple[Ledger, Vault] | None:
        """Lock and open the ledger and vault; READY=1 is sent only after this
        succeeded. A state disk that is read-only or full is waited for (with
        backoff, systemd told the start takes longer: EXTEND_TIMEOUT_USEC, the
        unit stays `activating`): exiting would make systemd restart us over
        and over and give up for good after StartLimitBurst, while the disk
        comes back by itself. Anything retrying cannot fix (the lock held, a
        ledger that is not a database or cannot be written, a state folder
        that cannot be created) raises `StateUnavailable`. Returns the ledger
        and vault; None when asked to stop while waiting."""
        failures = 0
        while not self.stopping():
            ledger = None
            try:
                self.cfg.state_dir.mkdir(mode=0o750, parents=True, exist_ok=True)
                self.pin_state_dir(self.cfg)
                self.lock_fd = take_daemon_lock(self.cfg.state_dir, self.cfg.ledger_path)
                self.identity = folder_identity(self.cfg.state_dir)  # what a reload may not move
                ledger = Ledger(self.cfg.ledger_path)
                return ledger, Vault(self.cfg.vault_dir)
            except (OSError, sqlite3.Error) as e:
                self._release_state(ledger)
                if not worth_waiting(e, self.cfg.ledger_path.parent):
                    raise StateUnavailable(f"cannot open the state folder {self.cfg.state_dir}: "
                                           f"{type(e).__name__}: {e}" + damage_phrase(self.cfg.ledger_path),
                                           os_errno=getattr(e, "errno", None)) from e
                failures += 1
                wait = min(MAX_BACKOFF_S, 2.0 ** failures)
                systemd.notify(EXTEND_TIMEOUT_USEC=int((wait + EXTEND_MARGIN_S) * 1_000_000))
                self.log_step_failure(e, failures, wait)
                self.backoff(wait)
        return None

    def pin_state_dir(self, cfg: Config) -> None:
        """Points `cfg`'s agent.state_dir at the folder this daemon holds:
        the real path its configured name led to at the first call, the
        same one at every later call (a retry, a reload)."""
        # The state folder by what it leads to now, for the daemon's whole
        # life: every later open (delivery and backup threads, workers, the
        # vault) goes to the folder the lock was taken in, even if the
        # configured name is a symlink an admin re-points while we run, so
        # one daemon never writes half its state to each folder.
        if self.named is None:
            self.named = cfg.state_dir
            cfg.agent["state_dir"] = os.path.realpath(cfg.state_dir)
        else:  # a reload: reload_refusal has checked it leads to the same folder
            cfg.agent["state_dir"] = self.cfg.agent["state_dir"]

    def _release_state(self, ledger: Ledger | None) -> None:
        # What a failed open_state had opened, so the next try starts clean.
        if ledger is not None:
            ledger.close()
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None

    def check_state_name(self, details: dict) -> None:
        """Adds `state_dir_moved` (why) to the heartbeat `details` while the
        configured name no longer leads to the folder held, and logs it the
        first time; `moved_said` is true from then until it leads there again."""
        # The configured state folder name now leads elsewhere (a symlink
        # re-pointed, a folder swapped in): the daemon keeps its own, but
        # the CLI, which opens the name, reads another ledger. Said once in
        # the log and on every heartbeat, until a restart settles it.
        # The folder itself moved or renamed (mv state state.old): the
        # daemon's paths lead nowhere; its open ledger still works, its
        # vault writes fail. Said the same way: only a restart mends it.
        if self.named is None or folder_identity(self.named) == self.identity:
            self.moved_said = False
            return
        if folder_identity(self.cfg.state_dir) == self.identity:
            why = (f"{self.named} no longer leads to {self.cfg.state_dir}, the folder this daemon "
                   "holds; commands read another ledger: restart it")
        else:
            why = (f"the state folder {self.cfg.state_dir} was moved, renamed or replaced while the daemon ran; "
                   "intake cannot store files: put it back, or restart")
        details["state_dir_moved"] = why
        if not self.moved_said:
            self.moved_said = True
            log.error("the state folder name leads elsewhere now: " + why,
                      extra={"state_dir": str(self.named), "held": str(self.cfg.state_dir)})

    def log_step_failure(self, e: Exception, failures: int, wait: float) -> None:
        """Logs `e` (a read-only or full state disk said as such) and puts
        it in the systemd status line with the retry delay; never raises."""
        extra = {"failures": failures, "retry_in_s": wait, "error": f"{type(e).__name__}: {e}",
                 "state_dir": str(self.cfg.state_dir)}
        text = str(e).lower()
        if "readonly" in text or "read-only" in text or getattr(e, "errno", None) == errno.EROFS:
            log.error("the ledger's disk is read-only: nothing can be recorded; waiting, not exiting "
                      "(remount the state folder read-write)", extra=extra)
        elif "disk is full" in text or getattr(e, "errno", None) == errno.ENOSPC:
            log.error("the ledger's disk is full: nothing can be recorded; waiting, not exiting "
                      "(free space in the state folder)", extra=extra)
        else:
            log.exception("main loop step failed; backing off", extra=extra)
        systemd.status(f"ERROR (retry in {wait:.0f} s): {type(e).__name__}: {e}")

    def backoff(self, seconds: float) -> None:
        """Returns after `seconds`, or soon after `stopping` turns true;
        the systemd watchdog is fed meanwhile."""
        # Not wake.wait(): file events set `wake`, and would cut every backoff
        # short while the disk is broken. The watchdog is still fed, so a long
        # backoff is not mistaken for a hang and restarted (a crash loop).
        end = time.monotonic() + seconds
        while not self.stopping() and (left := end - time.monotonic()) > 0:
            systemd.watchdog()
            time.sleep(min(0.25, left))
