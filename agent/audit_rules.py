"""What `audit ledger` reports: the seven checks, the stable rule codes, a
Violation, and the settings the audit takes from the config.

Apart from the checks themselves (`audit`, `audit_files`) so both can
make Violations and the CLI can list the rules without importing a check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from agent.ledger.rows import TimeText, as_stored

CHECKS = {
    1: "every source file the ledger has seen became a document or a refusal",
    2: "every vault object is referenced, and its hash matches its name",
    3: "every document is in a state with a way forward, or in an end state with its reason",
    4: "every duplicate points at a live document with the same key",
    5: "every valid document is delivered, queued or paused with a reason",
    6: "every delivered key was confirmed at its last reconciliation, or is marked missing",
    7: "no document has been waiting past the SLA without a line in `status`",
}
# code -> (check, what it means). Codes are stable: scripts grep for them.
RULES: dict[str, tuple[int, str]] = {
    "seen-not-recorded": (1, "a watched file marked handled has no arrival (source row) and no refusal"),
    "mail-not-recorded": (1, "an e-mail marked taken (Message-ID) gave no document and no refusal"),
    "file-not-taken": (1, "a file in a watched folder, unchanged for longer than a rescan and the grace of a "
                          "temporary name, that was never taken nor refused"),
    "folder-unreadable": (1, "a folder in a watched folder that the audit cannot list (its mode, an I/O "
                             "error): the daemon cannot take its files either"),
    "source-orphan": (1, "an arrival (source row) names a document that does not exist"),
    "object-unreferenced": (2, "a vault object no document, e-mail arrival or refusal names"),
    "object-corrupt": (2, "a vault object whose content does not hash to its name"),
    "object-missing": (2, "an object the ledger names is not in the vault"),
    "vault-stray": (2, "a file in vault/objects that is neither an object nor its sidecar"),
    "unknown-state": (3, "a document in a state the model does not know"),
    "end-without-reason": (3, "a document in an end state without an event giving the reason"),
    "quarantined-without-problem": (3, "a quarantined document whose problems are empty"),
    "application-not-held": (3, "a document with a pending 补录 application that is neither quarantined nor a "
                                "duplicate (it could be delivered before the decision)"),
    "no-delivery-rows": (3, "a document in a delivery state without any delivery row"),
    "rows-disagree": (3, "a document whose state is not what its delivery rows add up to"),
    "duplicate-without-original": (4, "a duplicate that names no document, or one that does not exist"),
    "duplicate-of-dead": (4, "a duplicate of a document that is not live (rejected, duplicate ...)"),
    "duplicate-key-differs": (4, "a duplicate whose invoice key is not its original's"),
    "fleet-lost-live": (4, "a document whose invoice key another site of the fleet claimed is not a duplicate "
                           "(or rejected), or has a delivery row still open (queued, delivering, failed, "
                           "missing, quarantined)"),
    "key-twice": (4, "two live documents carry the same invoice key (one would be delivered twice)"),
    "key-delivered-twice": (4, "two documents hold delivered/confirmed rows under one key at one destination"),
    "valid-not-queued": (5, "a valid document not queued although destinations are configured"),
    "unknown-destination": (5, "a delivery waiting for a destination that is not configured"),
    "failed-without-error": (5, "a failed delivery without its last error"),
    "delivered-key-changed": (6, "a delivery holds the invoice under a key the document no longer has"),
    "confirmed-stale": (6, "a delivery marked confirmed without a lookup after its last delivery"),
    "rejected-at-destination": (6, "a rejected document that a destination holds (a row delivered, confirmed, "
                                   "superseded, or requeued after its delivery) or may hold (a put in flight): "
                                   "remove it there by hand; `reconcile` then finds it gone"),
    "held-keys-disagree": (6, "a delivery row stands for a key (delivered, confirmed, superseded, or requeued "
                              "after its delivery) that the keys its destination holds the document under do not "
                              "list (once the row moves on, no command would name that copy), or they list the key "
                              "a row was found missing under, or mark a key old (or not) against the document's"),
    "lookup-disagrees": (6, "a delivery whose last lookup contradicts its state (absent but "
                            "delivered, found but missing)"),
    "late-silent": (7, "a document waiting for the machine longer than [delivery] sla_hours that "
                       "`status` does not count as LATE"),
}


@dataclass(frozen=True)
class Violation:
    """One broken promise: a rule code, the document or vault object, and what is wrong."""

    code: str
    message: str
    document: int | None = None
    object: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: code, check number, document, object, message."""
        return {"code": self.code, "check": RULES[self.code][0], "document": self.document,
                "object": self.object, "message": self.message}

    def line(self) -> str:
        """One line: the code, what it concerns, the message."""
        what = (f"document {self.document}" if self.document is not None
                else f"object {self.object}" if self.object else "ledger")
        return f"{self.code}  {what}: {self.message}"


@dataclass(frozen=True)
class AuditSettings:
    """What the audit needs from the config."""

    destinations: tuple[str, ...] = ()
    mail_roots: tuple[str, ...] = ()     # e-mail watch folders: their files map to message objects
    sla_hours: float = 24.0
    hash_objects: bool = True
    watched: tuple[tuple[str, str], ...] = ()  # (folder, after) of every watch: walked for files never taken
    unhandled_after_s: float = 1200.0          # younger files may still be settling or waiting out their grace
    time_text: TimeText = as_stored            # a stored time in a message: `audit ledger` shows local time


Progress = Callable[[str, int, int | None], None]


def violation(code: str, message: str, *, document: int | None = None, object: str | None = None) -> Violation:
    """A Violation of rule `code`; raises ValueError for a code not in RULES,
    so a typo never makes a rule scripts cannot grep for."""
    if code not in RULES:
        raise ValueError(f"unknown audit rule {code!r}")
    return Violation(code, message, document, object)
