"""The other copies of an invoice when a 补录 decision frees its document.

A pending application's document keeps its invoice key (judgement._hold),
so a copy that passes and lands meanwhile becomes its duplicate instead of
taking its place. Once a person decides, that copy goes where it would be
had the hold never been. Pure, in the caller's transaction
(agent/applications.py); `now` passed in.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Sequence

from agent.ledger import Ledger
from agent.model import Invoice, State

if TYPE_CHECKING:
    from agent.validate import ValidationSettings


def copy_takes_over(ledger: Ledger, doc_id: int, number: str, *, settings: ValidationSettings,
                    destinations: Sequence[str], today: dt.date, now: str, actor: str) -> str | None:
    """Once application `number` is decided and its document is still its
    key's live copy, quarantined, never sent and failing validation by its
    own values: a duplicate of it that passes (it landed while the
    application held the key) is judged again and takes its place, as it
    would have on arrival (`judgement.judge`). Returns the document's
    state after, or None when no copy did."""
    from agent.judgement import judge
    from agent.validate import has_errors, validate

    doc = ledger.get(doc_id)
    holder = ledger.key_holder(doc.invoice_key) if doc.invoice_key else None
    if holder is None or holder.id != doc_id or not holder.replaceable or not has_errors(
            validate(Invoice.from_dict(doc.fields or {}), settings, today=today)):
        return None
    for copy in ledger.duplicates_with_key(doc.invoice_key):
        invoice = Invoice.from_dict(copy.fields or {})
        if copy.duplicate_of != doc_id or ledger.pending_application(copy.id) or has_errors(
                validate(invoice, settings, today=today)):
            continue
        why = f"document {doc_id}, which it duplicated, is no longer held by {number} and fails validation"
        ledger.transition(copy.id, State.EXTRACTED, now=now, actor=actor, expect=State.DUPLICATE, duplicate_of=None,
                          reason=f"re-judged: {why}", details={"rejudged": why, "application": number,
                                                               "was_duplicate_of": doc_id})
        judge(ledger, copy.id, invoice, settings=settings, destinations=destinations, today=today, now=now,
              actor=actor, reason_prefix="re-judged: ")
        return ledger.get(doc_id).state
    return None
