"""Notifications ([[notify]]): e-mail and group-robot webhooks told about
faults the ledger shows, quarantine digests and the weekly report.

Other producers call `enqueue` (see its guarantee); the daemon's notify
loop (service/notify.py) runs `run_round` and `send_due`.
"""

from agent.notify.base import Attachment, Message, Notifier, open_notifier
from agent.notify.events import EVENTS, FAULT_EVENTS
from agent.notify.faults import Fault, open_faults
from agent.notify.outbox import enqueue, run_round, send_due

__all__ = ["Attachment", "EVENTS", "FAULT_EVENTS", "Fault", "Message", "Notifier", "enqueue", "open_faults",
           "open_notifier", "run_round", "send_due"]
