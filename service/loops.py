"""Background loops beside the main one: delivery, fleet, backup, notify
and metrics.

Each loop runs in its own thread(s) with its own ledger connection, and is
controlled through `kick()` (work may be waiting), `stop()` and `join()`.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

from agent.config import Config


class Loop(Protocol):
    """What the daemon needs of a background loop."""

    def kick(self) -> None: ...
    def stop(self) -> None: ...
    def join(self, timeout: float) -> None: ...
    def finish(self, timeout: float) -> dict[str, str]: ...


class Runner:
    """Threads of one destination or target that sleep until kicked: the
    wake-up half of every runner, written once. Subclasses set `threads`."""

    def __init__(self, stopping: threading.Event):
        self.stopping = stopping
        self.cond = threading.Condition()
        self._kicks = 0
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start every thread."""
        for t in self.threads:
            t.start()

    def kick(self) -> None:
        """Work may be waiting: wake the sleeping threads."""
        with self.cond:
            self._kicks += 1
            self.cond.notify_all()

    def _sleep(self, kicks: int, seconds: float) -> None:
        # Sleep unless a kick came since `kicks` was read, or we are stopping.
        with self.cond:
            if self._kicks == kicks and not self.stopping.is_set():
                self.cond.wait(seconds)


class RunnerGroup:
    """Runners (each with `kick()` and `threads`) sharing one stop event:
    the kick/stop/join half of every loop, written once."""

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self.runners: list = []

    def threads(self) -> list[threading.Thread]:
        """Every thread to wait for on stop."""
        return [t for r in self.runners for t in r.threads]

    def kick(self) -> None:
        """Work may be waiting: wake every runner."""
        for r in self.runners:
            r.kick()

    def stop(self) -> None:
        """Ask every thread to finish its current step and end."""
        self.stopping.set()
        self.kick()

    def join(self, timeout: float) -> None:
        """Wait up to `timeout` seconds in all (not per thread), so the
        daemon's stop_timeout holds however many threads there are."""
        deadline = time.monotonic() + timeout
        for t in self.threads():
            if t.ident is not None:
                t.join(max(0.0, deadline - time.monotonic()))

    def finish(self, timeout: float) -> dict[str, str]:
        """Last work at a clean stop of the daemon (not at a reload), after
        `stop` and `join`, within `timeout` seconds; outcomes by runner name.
        Nothing by default."""
        return {}


def start_loops(cfg: Config, wake: threading.Event) -> list[Loop]:
    """Start the loops the config asks for; returns them running.
    Delivery runs when at least one [[destination]] is configured, backup
    when at least one [[backup]] is, the fleet loop when [fleet] has a url,
    notify when a [[notify]] entry is,
    metrics when [metrics] listen or textfile is set (a failure there is
    logged and never stops the rest)."""
    loops: list[Loop] = []
    if cfg.destinations:
        from service.delivery import DeliveryService

        loops.append(DeliveryService(cfg).start())
    if cfg.fleet.get("url"):
        from service.fleet import FleetService

        loops.append(FleetService(cfg).start())
    if cfg.backups:
        from service.backup import BackupService

        loops.append(BackupService(cfg).start())
    if cfg.notify:
        from service.notify import NotifyService

        loops.append(NotifyService(cfg).start())
    if cfg.metrics["listen"] or cfg.metrics["textfile"]:
        from service.metrics import MetricsService

        loops.append(MetricsService(cfg).start())
    return loops
