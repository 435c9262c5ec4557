"""Background loops beside the main one: delivery and backup.

Each loop runs in its own thread(s) with its own ledger connection, and is
controlled through `kick()` (work may be waiting), `stop()` and `join()`.
"""

from __future__ import annotations

import threading
from typing import Protocol

from agent.config import Config


class Loop(Protocol):
    def kick(self) -> None: ...
    def stop(self) -> None: ...
    def join(self, timeout: float) -> None: ...


def start_loops(cfg: Config, wake: threading.Event) -> list[Loop]:
    """Start the loops the config asks for; returns them running.
    Delivery runs when at least one [[destination]] is configured, backup
    when at least one [[backup]] is."""
    loops: list[Loop] = []
    if cfg.destinations:
        from service.delivery import DeliveryService

        loops.append(DeliveryService(cfg).start())
    if cfg.backups:
        from service.backup import BackupService

        loops.append(BackupService(cfg).start())
    return loops
