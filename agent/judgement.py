"""The judgement of an extracted document: the rules, the duplicate rule,
a copy of an invoice a person rejected held for a person (`rejected-before`),
and settling every duplicate of an invoice key onto its one live copy.

Apart from `pipeline` (which reads a captured document and records what
was read) because judging is also reached without reading: `amend` judges
manual values and re-settles a key, and `resume_stranded` judges what an
older version left. `judge` and `settle_key` call each other, so they
live together. Pure: `today` and `now` come from the caller.
"""

from __future__ import annotations

import datetime as dt
from typing import Sequence

from agent.ledger import Ledger
from agent.ledger.documents import Step
from agent.model import Invoice, State
from agent.validate import ValidationSettings, has_errors, validate


def judge(ledger: Ledger, doc_id: int, invoice: Invoice, *, settings: ValidationSettings,
          destinations: Sequence[str], today: dt.date, now: str, actor: str,
          reason_prefix: str = "", before: Sequence[Step] = (), expect: State | None = None) -> State:
    """Validate an `extracted` document and move it on: duplicate, quarantined,
    or valid and (when there are destinations) queued, in one transaction.
    `before`: the moves that lead the document to `extracted`, not written
    yet: they are written with the judgement's own, by one update
    (`Ledger.advance`), from the state `expect` when given (the pipeline's
    reading of a `captured` document).

    The duplicate rule compares against every live document with the same
    invoice key, whatever its id (`Ledger.key_holder`). A copy that passes
    validation takes the place of a live copy that is quarantined (or not
    yet judged) and was never sent: that one becomes its duplicate. Then the
    key is settled (`settle_key`): every duplicate of it points at the one
    live copy. When no copy is live and a person rejected the key's live
    copy before (`Ledger.rejection_of_key`), the document is quarantined
    with a `rejected-before` error naming that document and its reason,
    never valid or queued: a person accepts it or rejects it. Returns the
    document's state at the end."""
    with ledger.transaction():
        _judge(ledger, doc_id, invoice, settings=settings, destinations=destinations,
               today=today, now=now, actor=actor, reason_prefix=reason_prefix, before=before, expect=expect)
        if invoice.key:
            settle_key(ledger, invoice.key, settings=settings, destinations=destinations,
                       today=today, now=now, actor=actor)
        return State(ledger.state_of(doc_id))


def _judge(ledger: Ledger, doc_id: int, invoice: Invoice, *, settings: ValidationSettings,
           destinations: Sequence[str], today: dt.date, now: str, actor: str, reason_prefix: str,
           before: Sequence[Step] = (), expect: State | None = None) -> State:
    held = ledger.pending_application(doc_id)
    if held is not None:
        return _hold(ledger, doc_id, invoice, held, settings=settings, today=today, now=now, actor=actor,
                     reason_prefix=reason_prefix, before=before, expect=expect)
    key = invoice.key
    holder = ledger.key_holder(key, exclude_id=doc_id) if key else None
    # A person rejected this invoice (its live copy): no other copy of it
    # goes out before a person has looked at it (`rejected-before`).
    rejection = (ledger.rejection_of_key(key, exclude_id=doc_id)
                 if key and (holder is None or holder.replaceable) else None)
    if (holder is not None and holder.replaceable and not has_errors(validate(invoice, settings, today=today))
            and (rejection is None or _fails(ledger, holder.id, settings, today))):
        if before:
            # The reading is written first, as it happened: the copy that
            # steps aside then points at a document already read (the trail
            # in event order says so), at the cost of a second update here.
            ledger.advance(doc_id, before, now=now, actor=actor, expect=expect)
            before, expect = (), None
        _demote(ledger, holder.id, to=doc_id, key=key, settings=settings, today=today, now=now, actor=actor)
        reason_prefix += f"in place of document {holder.id} ({holder.state}): "
        holder = None
    duplicate_of = holder.id if holder else None
    # The copy it duplicates, to be agreed with (rule conflicting-copy).
    original = Invoice.from_dict(ledger.get(holder.id).fields or {}) if holder else None
    problems = validate(invoice, settings, today=today, duplicate_of=duplicate_of, original=original)
    stored = [p.to_dict() for p in problems]
    if duplicate_of is not None:
        step = Step(State.DUPLICATE, f"{reason_prefix}same invoice {key} as document {duplicate_of} ({holder.state})",
                    columns={"problems": stored, "duplicate_of": duplicate_of})
    elif rejection is not None:
        mark = rejected_before(rejection)
        step = Step(State.QUARANTINED, f"{reason_prefix}{REJECTED_BEFORE}: {mark['message']}",
                    {"rejected_before": rejection["document_id"]}, {"problems": [mark, *stored]})
    elif has_errors(problems):
        codes = ", ".join(sorted({p.code for p in problems if p.severity == "error"}))
        step = Step(State.QUARANTINED, f"{reason_prefix}{codes}", columns={"problems": stored})
    else:
        step = Step(State.VALID, f"{reason_prefix}valid" + (f" ({len(stored)} warnings)" if stored else ""),
                    columns={"problems": stored})
        if destinations:
            return ledger.queue_deliveries(doc_id, destinations, now=now, actor=actor, before=[*before, step],
                                           expect=expect)
    ledger.advance(doc_id, [*before, step], now=now, actor=actor, expect=expect)
    return step.to


REJECTED_BEFORE = "rejected-before"


def rejected_before(rejection: dict) -> dict:
    """The `rejected-before` problem (an error, first in the problems) of a
    copy of an invoice a person rejected: it names the rejected document,
    the application and the reason (`Ledger.rejection_of_key`), so the
    person deciding this copy (`accept` or `reject`) sees why."""
    doc_id, reason = rejection["document_id"], rejection["reason"] or "no reason recorded"
    by = rejection["application"] or rejection["actor"]
    return {"code": REJECTED_BEFORE, "severity": "error", "field": None,
            "message": f"document {doc_id}, a copy of this invoice, was rejected ({by}): {reason}; accept this "
                       "copy to deliver it all the same, or reject it",
            "message_zh": f"同一张发票的文档 {doc_id} 已被作废（{by}）：{reason}；如仍需交付请接受（accept）此份，否则作废（reject）"}


def _fails(ledger: Ledger, doc_id: int, settings: ValidationSettings, today: dt.date) -> bool:
    # A held copy fails validation by its own values (not only for the rejection it is held for).
    return has_errors(validate(Invoice.from_dict(ledger.get(doc_id).fields or {}), settings, today=today))


def _hold(ledger: Ledger, doc_id: int, invoice: Invoice, held: dict, *, settings: ValidationSettings,
          today: dt.date, now: str, actor: str, reason_prefix: str, before: Sequence[Step],
          expect: State | None) -> State:
    # A document a pending 补录 application holds is never made valid or
    # queued: it waits in quarantine with the application's problems first,
    # or, when another document is its key's live copy, as that one's
    # duplicate (two live copies of one key would both be delivered).
    key = invoice.key
    holder = ledger.key_holder(key, exclude_id=doc_id) if key else None
    own = validate(invoice, settings, today=today, duplicate_of=holder.id if holder else None)
    problems = list(held.get("held_problems") or []) + [p.to_dict() for p in own]
    why = f"{reason_prefix}held: {held['number']} waits for a decision"
    details = {"application": held["number"], "held": True}
    if holder is not None:
        step = Step(State.DUPLICATE, f"{why}; same invoice {key} as document {holder.id} ({holder.state})",
                    details, {"problems": problems, "duplicate_of": holder.id})
    else:
        step = Step(State.QUARANTINED, why, details, {"problems": problems})
    ledger.advance(doc_id, [*before, step], now=now, actor=actor, expect=expect)
    return step.to


def _demote(ledger: Ledger, holder_id: int, *, to: int, key: str, settings: ValidationSettings,
            today: dt.date, now: str, actor: str) -> None:
    # The held copy steps aside for one that passes; its own problems stay
    # on it, with the duplicate finding, so `show` says why it lost.
    held = ledger.get(holder_id)
    problems = validate(Invoice.from_dict(held.fields or {}), settings, today=today, duplicate_of=to)
    why = f"document {to}, a copy of the same invoice that passes validation, takes its place"
    ledger.transition(holder_id, State.DUPLICATE, now=now, actor=actor, problems=[p.to_dict() for p in problems],
                      duplicate_of=to, reason=f"re-judged: same invoice {key} as document {to}: {why}",
                      details={"rejudged": why, "was": held.state})


def settle_key(ledger: Ledger, key: str, *, settings: ValidationSettings, destinations: Sequence[str],
               today: dt.date, now: str, actor: str) -> list[int]:
    """Make every duplicate of `key` point at the key's one live copy, in one transaction.

    A duplicate whose document is no longer that copy (rejected, amended to
    another key, a duplicate itself) is judged again: back to `extracted`
    with an event saying why, then `judge`. When no live copy is left, the
    best candidate goes first (one that passes validation, then the oldest),
    so it becomes the copy, queued or quarantined, and the others point at
    it. Duplicates already pointing at the live copy are not looked at, so a
    key with many copies costs one indexed query. Returns the ids judged again."""
    rejudged: list[int] = []
    with ledger.transaction():
        for _ in range(_SETTLE_PASSES):
            if not ledger.has_duplicates(key):
                break  # the common case, a key read once: nothing to settle
            holder = ledger.key_holder(key)
            wrong = ledger.duplicates_with_key(key, not_of=holder.id if holder else None)
            if not wrong:
                break
            if holder is None:
                wrong = [min(wrong, key=lambda d: (
                    has_errors(validate(Invoice.from_dict(d.fields or {}), settings, today=today)), d.id))]
            for dup in wrong:
                why = _why_rejudged(ledger, dup, key)
                ledger.transition(dup.id, State.EXTRACTED, now=now, actor=actor, expect=State.DUPLICATE,
                                  duplicate_of=None, reason=f"re-judged: {why}",
                                  details={"rejudged": why, "was_duplicate_of": dup.duplicate_of})
                _judge(ledger, dup.id, Invoice.from_dict(dup.fields or {}), settings=settings,
                       destinations=destinations, today=today, now=now, actor=actor,
                       reason_prefix="re-judged: ")
                rejudged.append(dup.id)
    return rejudged


# Passes of settle_key: one to elect a copy when none is left, one to point
# the rest at it, one more after a copy that passes took the place of a
# held one mid-way; a spare.
_SETTLE_PASSES = 4


def settle_duplicates(ledger: Ledger, *, settings: ValidationSettings, destinations: Sequence[str],
                      today: dt.date, now: str, actor: str) -> int:
    """`settle_key` for every key with a duplicate pointing at no live copy
    of it (left by an older version). Returns how many were judged again."""
    return sum(len(settle_key(ledger, key, settings=settings, destinations=destinations, today=today,
                              now=now, actor=actor))
               for key in ledger.stray_duplicate_keys())


def _why_rejudged(ledger: Ledger, dup, key: str) -> str:
    target = ledger.get(dup.duplicate_of) if dup.duplicate_of is not None else None
    if target is None:
        return "it pointed at no document"
    if target.state == State.REJECTED:
        return f"document {target.id}, which it duplicated, was rejected"
    if target.invoice_key != key:
        return (f"document {target.id}, which it duplicated, was amended to another invoice key "
                f"({target.invoice_key or 'none'})")
    if target.state == State.DUPLICATE:
        return f"document {target.id}, which it duplicated, is now a duplicate of document {target.duplicate_of}"
    return f"document {target.id}, which it duplicated, is {target.state}, not the live copy of {key}"
