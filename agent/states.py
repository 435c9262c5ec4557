"""Document states and the transitions between them (docs/states.md).

Apart from agent/model.py, which re-exports them, so that the ledger and
every CLI command that only reads it load the state machine without the
invoice dataclasses and Decimal (issue 17: start-up).
"""

from __future__ import annotations

from enum import StrEnum

from agent.errors import IllegalTransition


class State(StrEnum):
    """Where a document is in its life. See docs/states.md for the diagram."""

    CAPTURED = "captured"        # original is in the vault, nothing read yet
    EXTRACTED = "extracted"      # fields read, not yet judged
    VALID = "valid"              # passed validation, waiting to be queued
    QUARANTINED = "quarantined"  # needs a person: see problems; amend/accept/reject
    QUEUED = "queued"            # waiting for delivery to every destination
    DELIVERING = "delivering"    # a worker holds a lease on at least one delivery
    DELIVERED = "delivered"      # every destination accepted it
    CONFIRMED = "confirmed"      # reconciliation found it at every destination
    MISSING = "missing"          # reconciliation did not find it where it was delivered
    FAILED = "failed"            # retries exhausted; `retry` brings it back
    DUPLICATE = "duplicate"      # same invoice as an earlier document; never delivered
    NOT_INVOICE = "not_invoice"  # readable, but not an invoice (trip list, receipt...)
    REJECTED = "rejected"        # an operator ended it
    SUPERSEDED = "superseded"    # a partial capture: the same path later settled with the whole file


TRANSITIONS: dict[State, frozenset[State]] = {
    State.CAPTURED: frozenset({State.EXTRACTED, State.QUARANTINED, State.NOT_INVOICE, State.SUPERSEDED}),
    State.EXTRACTED: frozenset({State.VALID, State.QUARANTINED, State.DUPLICATE, State.EXTRACTED}),
    State.VALID: frozenset({State.QUEUED, State.QUARANTINED, State.EXTRACTED}),
    State.QUARANTINED: frozenset(
        {State.EXTRACTED, State.VALID, State.REJECTED, State.DUPLICATE, State.SUPERSEDED}
    ),
    # -> DUPLICATE from queued/delivering/failed: another site of the fleet
    # claimed the invoice key first (agent/fleet/claims.py), checked right before a put.
    # -> DELIVERED/CONFIRMED/FAILED/MISSING from queued without a send: the
    # document follows its delivery rows (`summary_state`), and when it is
    # queued again every destination may hold it already (an amend keeping
    # its key), or the rows left after an operator let a removed
    # destination's rows go say where it is.
    State.QUEUED: frozenset({State.DELIVERING, State.QUARANTINED, State.REJECTED, State.EXTRACTED,
                             State.DUPLICATE, State.DELIVERED, State.CONFIRMED, State.FAILED, State.MISSING}),
    State.DELIVERING: frozenset(
        {State.DELIVERED, State.QUEUED, State.FAILED, State.QUARANTINED, State.DELIVERING, State.DUPLICATE}
    ),
    State.DELIVERED: frozenset({State.CONFIRMED, State.MISSING, State.QUEUED}),
    State.CONFIRMED: frozenset({State.MISSING, State.CONFIRMED}),
    State.MISSING: frozenset({State.QUEUED, State.CONFIRMED, State.FAILED}),
    State.FAILED: frozenset({State.QUEUED, State.REJECTED, State.QUARANTINED, State.EXTRACTED, State.DUPLICATE}),
    State.DUPLICATE: frozenset({State.EXTRACTED, State.REJECTED}),
    State.NOT_INVOICE: frozenset({State.EXTRACTED, State.REJECTED}),
    State.REJECTED: frozenset({State.QUARANTINED}),   # `reopen` (an operator's application)
    State.SUPERSEDED: frozenset(),
}


def check_transition(old: State | str, new: State | str) -> None:
    """Raise `IllegalTransition` unless the state machine allows old -> new."""
    old_s, new_s = State(old), State(new)
    if new_s not in TRANSITIONS[old_s]:
        raise IllegalTransition(f"illegal transition {old_s.value} -> {new_s.value}")
