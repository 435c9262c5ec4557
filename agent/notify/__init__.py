"""Notifications ([[notify]]): e-mail and group-robot webhooks told about
faults the ledger shows, quarantine digests and the weekly report.

Other producers call `enqueue` (see its guarantee); the daemon's notify
loop (service/notify.py) runs `run_round` and `send_due`.

The names below are imported from their modules on first use: loading a
config reads only `agent.notify.events` (the event and preset names), and
every CLI command loads a config.
"""

from __future__ import annotations

import importlib

_HOMES = {
    "Attachment": "base", "Message": "base", "Notifier": "base", "open_notifier": "base",
    "EVENTS": "events", "FAULT_EVENTS": "events",
    "Fault": "faults", "open_faults": "faults",
    "enqueue": "outbox", "run_round": "outbox", "send_due": "outbox",
}

__all__ = ["Attachment", "EVENTS", "FAULT_EVENTS", "Fault", "Message", "Notifier", "enqueue", "open_faults",
           "open_notifier", "run_round", "send_due"]


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    globals()[name] = value
    return value
