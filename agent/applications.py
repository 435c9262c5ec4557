"""补录 applications: every operator's hand on a document is one, with a number.

`amend`, `accept`, `reject` and `reopen` file an application numbered
`BL-YYYYMMDD-NNNN`: the filing date in China (UTC+8, from the `now` passed
in) and the next sequence number of that day, taken from the ledger's rows
in the filing transaction (agent/ledger/applications.py), so it is unique
under concurrent filers and stable across a restore of the ledger. Each
records the reason (required), the filer (the real account, from
service/access.py), the fields before and after, and the decision. Every
filing and decision is an event carrying the actor, the reason and the
number, written in the same transaction as the state change it causes.

Which values are authoritative, and how each change is classified:
`agent/application_rules.py`.

Each changed field is a `fill` (no value), `same` (the value it has), a
`correction` (replaces a reading that is not carried) or a `conflict`
(differs from a carried value, including clearing it). An amend whose
changes are all `same`, or `fill` while `[access] self_approve_empty_fields`
is on (the default), is approved by its filer at once: the trail shows the
filing and the approval. Any other amend waits (`pending`), its document
held (quarantined with the application shown first in its problems, or a
duplicate of its key's live copy) until someone other than the filer
approves it (four eyes) or anyone with the approve role declines it (its
filer may withdraw it: service/access.py DECLINE). A
copy of its invoice that passes and landed meanwhile takes its place once
the decision leaves it failing.
`accept` is the approver's own decision, `reject` and `reopen` deliver
nothing and are undone by each other: all three are decided by the filer.

Four eyes compares people, not actors: `person` is the account behind sudo
when there is one, else the account itself. Root and the service user are
one person each like anyone else: root filing and root approving is the
same person and refused. (Root can claim any SUDO_UID and write the ledger
directly; four eyes holds between accounts, and the trail records who.)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from agent import amend as hand
from agent.application_copies import copy_takes_over
from agent.application_rules import FILL, SAME, classify, held_problems, needs_why, shown
from agent.errors import AgentError, IllegalTransition
from agent.ledger import Ledger
from agent.ledger.applications import APPROVED, DECLINED, PENDING
from agent.ledger.rows import TimeText, as_stored, parse_utc
from agent.model import Invoice, State

if TYPE_CHECKING:
    from agent.validate import ValidationSettings

# Judging and validation are imported by the functions that judge (as in
# agent/amend.py): `quarantine` and `requests` load this module to list.

SELF, OTHER = "self", "other"
# Where a pending application keeps its document: never valid or queued.
HELD_STATES = (State.QUARANTINED.value, State.DUPLICATE.value)
FILING_OFFSET = dt.timedelta(hours=8)   # the filing date is China's (UTC+8)


@dataclass(frozen=True)
class Operator:
    """Who acts: `actor` as the trail records it (`cli:alice (sudo → fapiao)`)
    and `person`, the account four eyes compares (`alice`)."""

    actor: str
    person: str


class NeedsAnotherPerson(AgentError):
    """The decision needs someone other than the application's filer."""


class StaleApplication(AgentError):
    """The application was decided already, or its document changed since it was filed."""


@dataclass(frozen=True)
class Outcome:
    """What filing or deciding did: the number, the application's state and
    who may decide it, and the document's state after."""

    number: str
    kind: str
    state: str
    approval: str
    document_id: int
    document_state: str
    changes: dict


def filing_day(now: str) -> str:
    """`YYYYMMDD` of the ledger timestamp `now` in China (UTC+8)."""
    return (parse_utc(now) + FILING_OFFSET).strftime("%Y%m%d")


def file_amend(ledger: Ledger, doc_id: int, values: dict[str, str], *, reason: str | None,
               settings: ValidationSettings, destinations: Sequence[str], today: dt.date, now: str,
               filer: Operator, self_approve_empty: bool) -> Outcome:
    """File a 补录 application changing `values` (field -> operator text) of
    the document, in one transaction. Every value is parsed first (AmendError
    names a bad one; nothing is written). Approved by the filer at once and
    carried out (`amend.amend`: re-validated, queued when valid) when every
    change fills an empty field and `self_approve_empty` is set (never on a
    document ever read as not an invoice, nor on one from which neither its
    number nor an amount was read: that makes one), or changes nothing;
    otherwise pending, the document held until decided. Raises
    AmendError without a reason, IllegalTransition from a state amend does
    not work on or while another application holds the document."""
    from agent.judgement import judge

    reason = hand.required_reason(reason, "amend")
    if not values:
        raise hand.AmendError("nothing to amend: give at least one --set name=value")
    parsed = {hand.field_name(n): hand.parse_value(n, raw) for n, raw in values.items()}
    with ledger.transaction():
        doc = ledger.get(doc_id)
        hand.refuse_if_held(ledger, doc_id)
        hand.check_amendable(doc)
        invoice = Invoice.from_dict(doc.fields or {})
        changes = classify(invoice, parsed, frozenset(p.get("code") for p in doc.problems))
        kinds = {c["kind"] for c in changes.values()}
        # A document read as no invoice has every field empty: filling them
        # makes an invoice (and money to pay) out of a trip list or a
        # receipt, which is no 补录 of a scan's missing values. Four eyes.
        # Its trail, not its state: a decline or a reject and reopen leaves
        # it quarantined, the same trip list all the same.
        # Nor one from which neither its number nor an amount was read (a
        # blank page, an unreadable photo): filling every field of it makes
        # an invoice out of nothing. 补录 of a scan fills what OCR missed
        # beside what its QR code or text gave.
        fills_ok = self_approve_empty and _identity_read(invoice) and not _ever_not_invoice(ledger, doc)
        approval = SELF if kinds <= {SAME} or (fills_ok and kinds <= {SAME, FILL}) else OTHER
        number = _file(ledger, doc, "amend", approval, reason=reason, now=now, filer=filer, changes=changes)
        if approval == SELF:
            why = "it changes no value" if kinds <= {SAME} else \
                "it only fills empty fields ([access] self_approve_empty_fields)"
            _decide(ledger, number, doc_id, APPROVED, decider=filer, reason=f"self-approved: {why}", now=now)
            state = hand.amend(ledger, doc_id, values, reason=reason, settings=settings, destinations=destinations,
                               today=today, now=now, actor=filer.actor, application=number)
            ledger.set_application_outcome(number, State(state).value)
            return Outcome(number, "amend", APPROVED, SELF, doc_id, State(state).value, changes)
        ledger.transition(doc_id, State.EXTRACTED, now=now, actor=filer.actor, expect=doc.state, duplicate_of=None,
                          reason=f"{number} filed: held until an approver other than {filer.person} decides",
                          details={"application": number, "held": True})
        state = judge(ledger, doc_id, invoice, settings=settings, destinations=destinations, today=today,
                      now=now, actor=filer.actor)
        return Outcome(number, "amend", PENDING, OTHER, doc_id, State(state).value, changes)


def _identity_read(invoice: Invoice) -> bool:
    # Its number, or an amount it is for, came from the file itself (a QR,
    # XML, OFD, PDF text or OCR reading), not from an operator.
    return any(f is not None and f.value is not None and f.source != "manual"
               for f in (invoice.fields.get(n) for n in ("number", "amount", "total")))


def _ever_not_invoice(ledger: Ledger, doc) -> bool:
    # Read as no invoice at some point of its life (the machine's verdict).
    return doc.state == State.NOT_INVOICE.value or any(
        e.to_state == State.NOT_INVOICE.value for e in ledger.events(doc.id))


def file_accept(ledger: Ledger, doc_id: int, *, reason: str, destinations: Sequence[str], now: str,
                filer: Operator) -> Outcome:
    """`accept` as an application decided by its filer (an approver's own
    decision), then carried out (`amend.accept`), in one transaction; its
    refusals (AmendError, IllegalTransition) leave no application behind."""
    reason = hand.required_reason(reason, "accept")
    with ledger.transaction():
        doc = ledger.get(doc_id)
        number = _self_decided(ledger, doc, "accept", reason, now, filer, "accept is the approver's own decision")
        state = hand.accept(ledger, doc_id, reason=reason, destinations=destinations, now=now,
                            actor=filer.actor, application=number)
        ledger.set_application_outcome(number, State(state).value)
        return Outcome(number, "accept", APPROVED, SELF, doc_id, State(state).value, {})


def file_reject(ledger: Ledger, doc_id: int, *, reason: str, settings: ValidationSettings,
                destinations: Sequence[str], today: dt.date, now: str, filer: Operator,
                acknowledge_delivered: bool = False) -> Outcome:
    """`reject` as an application decided by its filer (it delivers nothing
    more and `reopen` undoes it), then carried out (`amend.reject`, which
    refuses a document a destination holds unless `acknowledge_delivered`),
    in one transaction; refusals leave no application behind."""
    reason = hand.required_reason(reason, "reject")
    with ledger.transaction():
        doc = ledger.get(doc_id)
        held = ledger.held_at(doc_id)
        why = ("a rejection delivers nothing; `reopen` undoes it" if not held else
               f"a rejection delivers nothing more, and takes nothing back from {hand.where_held(held)}; "
               "`reopen` undoes it")
        number = _self_decided(ledger, doc, "reject", reason, now, filer, why)
        state = hand.reject(ledger, doc_id, reason=reason, settings=settings, destinations=destinations,
                            today=today, now=now, actor=filer.actor, application=number,
                            acknowledge_delivered=acknowledge_delivered)
        ledger.set_application_outcome(number, State(state).value)
        return Outcome(number, "reject", APPROVED, SELF, doc_id, State(state).value, {})


def file_reopen(ledger: Ledger, doc_id: int, *, reason: str, settings: ValidationSettings,
                destinations: Sequence[str], today: dt.date, now: str, filer: Operator) -> Outcome:
    """Bring a rejected document back (rejected -> quarantined) as an
    application decided by its filer, in one transaction. It carries a
    `reopened` error naming the filer and the reason, so `accept`, `amend`
    or `reject` decides it again; when another document is its key's live
    copy meanwhile it becomes that one's duplicate (a key has one live
    copy). Raises IllegalTransition for a document that is not rejected."""
    from agent.judgement import settle_key
    from agent.validate import validate

    reason = hand.required_reason(reason, "reopen")
    with ledger.transaction():
        doc = ledger.get(doc_id)
        if doc.state != State.REJECTED.value:
            raise IllegalTransition(f"document {doc_id} is {doc.state}; only rejected documents can be reopened")
        number = _self_decided(ledger, doc, "reopen", reason, now, filer,
                               "a reopened document waits in quarantine for a decision")
        mark = {"code": "reopened", "severity": "error", "field": None,
                "message": f"rejected, then reopened by {filer.person} ({number}): {reason}; "
                           "amend, accept or reject it",
                "message_zh": f"已作废，由 {filer.person} 重新打开（{number}）：{reason}；请补录、接受或作废"}
        invoice = Invoice.from_dict(doc.fields or {})
        key = doc.invoice_key
        holder = ledger.key_holder(key, exclude_id=doc_id) if key else None
        own = [p.to_dict() for p in validate(invoice, settings, today=today,
                                             duplicate_of=holder.id if holder else None)] if doc.fields else \
            [p for p in doc.problems if p.get("code") != "reopened"]
        details = {"application": number, "reason": reason}
        ledger.transition(doc_id, State.QUARANTINED, now=now, actor=filer.actor, expect=State.REJECTED,
                          reason=f"{number} reopened: {reason}", details=details, problems=[mark, *own])
        if holder is not None:
            ledger.transition(doc_id, State.DUPLICATE, now=now, actor=filer.actor, duplicate_of=holder.id,
                              reason=f"{number}: same invoice {key} as document {holder.id} ({holder.state}), "
                                     "its live copy", details=details, problems=[mark, *own])
        elif key:
            settle_key(ledger, key, settings=settings, destinations=destinations, today=today, now=now,
                       actor=filer.actor)
        state = ledger.get(doc_id).state
        ledger.set_application_outcome(number, state)
        return Outcome(number, "reopen", APPROVED, SELF, doc_id, state, {})


def approve(ledger: Ledger, number: str, *, reason: str | None, settings: ValidationSettings,
            destinations: Sequence[str], today: dt.date, now: str, decider: Operator,
            time_text: TimeText = as_stored) -> Outcome:
    """Approve a pending application and carry it out (re-validated, queued
    when valid), in one transaction. Raises StaleApplication when it was
    decided already (saying when, as `time_text` writes a time) or its
    document changed since filing (fields, or no longer held),
    NeedsAnotherPerson when four eyes apply and `decider` is its filer;
    nothing is written then."""
    with ledger.transaction():
        app, doc = _pending(ledger, number, "approved", time_text)
        if app["approval"] == OTHER and decider.person == app["filer"]:
            raise NeedsAnotherPerson(f"{app['number']} needs an approver other than its filer {app['filer']}: "
                                     f"{needs_why(app)}")
        _decide(ledger, app["number"], doc.id, APPROVED, decider=decider, reason=_clean(reason), now=now,
                time_text=time_text)
        values = {n: "" if c["new"] is None else str(c["new"]) for n, c in (app["changes"] or {}).items()}
        state = hand.amend(ledger, doc.id, values, reason=app["reason"], settings=settings,
                           destinations=destinations, today=today, now=now, actor=decider.actor,
                           application=app["number"])
        state = copy_takes_over(ledger, doc.id, app["number"], settings=settings, destinations=destinations,
                                today=today, now=now, actor=decider.actor) or State(state).value
        ledger.set_application_outcome(app["number"], state)
        return Outcome(app["number"], app["kind"], APPROVED, app["approval"], doc.id, state, app["changes"] or {})


def decline(ledger: Ledger, number: str, *, reason: str, settings: ValidationSettings,
            destinations: Sequence[str], today: dt.date, now: str, decider: Operator,
            time_text: TimeText = as_stored) -> Outcome:
    """Decline a pending application (its filer may withdraw their own): its
    values are not applied, and the document is judged again with the values
    it has (re-validated, queued when valid), in one transaction. Raises
    AmendError without a reason, StaleApplication when it was decided
    (saying when, as `time_text` writes a time)."""
    from agent.judgement import judge

    reason = hand.required_reason(reason, "decline")
    with ledger.transaction():
        app = ledger.application(number)
        if app["state"] != PENDING:
            raise StaleApplication(_decided(app, time_text))
        doc = ledger.get(app["document_id"])
        _decide(ledger, app["number"], doc.id, DECLINED, decider=decider, reason=reason, now=now,
                time_text=time_text)
        state = doc.state
        if doc.state in HELD_STATES and fields_digest(doc.fields) == app["fields_sha256"]:
            invoice = Invoice.from_dict(doc.fields or {})
            details = {"application": app["number"]}
            ledger.transition(doc.id, State.EXTRACTED, now=now, actor=decider.actor, expect=doc.state,
                              duplicate_of=None, details=details,
                              reason=f"{app['number']} declined: judged again with the values it has")
            if invoice.is_invoice:
                state = judge(ledger, doc.id, invoice, settings=settings, destinations=destinations, today=today,
                              now=now, actor=decider.actor, reason_prefix="after decline: ").value
            else:   # it was not_invoice, which nothing but reading makes it: a person decides again
                why = invoice.not_invoice_reason or "not an invoice"
                ledger.transition(doc.id, State.QUARANTINED, now=now, actor=decider.actor, details=details,
                                  reason=f"after decline: not-invoice: {why}", problems=[{
                                      "code": "not-invoice", "severity": "error", "field": None,
                                      "message": f"read as no invoice ({why}); {app['number']} to make it one was "
                                                 "declined: amend it again or reject it",
                                      "message_zh": f"识别为非发票（{why}）；补录申请 {app['number']} 已被驳回"}])
                state = State.QUARANTINED.value
            state = copy_takes_over(ledger, doc.id, app["number"], settings=settings, destinations=destinations,
                                    today=today, now=now, actor=decider.actor) or state
        ledger.set_application_outcome(app["number"], state)
        return Outcome(app["number"], app["kind"], DECLINED, app["approval"], doc.id, state, app["changes"] or {})


def fields_digest(fields: dict | None) -> str:
    """SHA-256 of a document's fields as stored (key order ignored): an
    application is stale once its document's digest differs."""
    text = json.dumps(fields or {}, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _pending(ledger: Ledger, number: str, verb: str, time_text: TimeText):
    app = ledger.application(number)
    if app["state"] != PENDING:
        raise StaleApplication(_decided(app, time_text))
    doc = ledger.get(app["document_id"])
    if doc.state not in HELD_STATES or fields_digest(doc.fields) != app["fields_sha256"]:
        # "File again" only where an amend works: a superseded (or rejected) document takes none.
        again = " and file again" if State(doc.state) in hand.AMENDABLE else f"; a {doc.state} document takes no 补录"
        raise StaleApplication(
            f"{app['number']} cannot be {verb}: document {doc.id} changed since it was filed "
            f"(now {doc.state}{'' if doc.state in HELD_STATES else ', no longer held'}); decline it "
            f"(fapiao-agent decline {app['number']} --reason TEXT){again}")
    return app, doc


def _decided(app: dict, time_text: TimeText) -> str:
    return (f"{app['number']} was already {app['state']} by {app['decided_by']} at "
            f"{time_text(app['decided_at'])}; nothing was changed")


def _file(ledger: Ledger, doc, kind: str, approval: str, *, reason: str, now: str, filer: Operator,
          changes: dict | None = None) -> str:
    held = held_problems(changes or {}, filer.person) if approval == OTHER else None
    number = ledger.file_application(day=filing_day(now), document_id=doc.id, kind=kind, approval=approval,
                                     filed_at=now, filed_by=filer.actor, filer=filer.person, reason=reason,
                                     doc_state=doc.state, fields_sha256=fields_digest(doc.fields),
                                     changes=changes, held_problems=None)
    if held is not None:   # the number is known only now
        ledger.set_held_problems(number, [{**p, "message": p["message"].replace("{number}", number),
                                           "message_zh": p["message_zh"].replace("{number}", number)}
                                          for p in held])
    said = "; ".join(f"{n} {shown(c['old'])} -> {shown(c['new'])} ({c['kind']})" for n, c in (changes or {}).items())
    ledger.note(doc.id, now=now, actor=filer.actor,
                reason=f"{number} filed: {kind}{' ' + said if said else ''}: {reason}",
                details={"application": number, "action": "filed", "kind": kind, "reason": reason,
                         "filer": filer.person, "approval": approval, **({"changes": changes} if changes else {})})
    return number


def _self_decided(ledger: Ledger, doc, kind: str, reason: str, now: str, filer: Operator, why: str) -> str:
    number = _file(ledger, doc, kind, SELF, reason=reason, now=now, filer=filer)
    _decide(ledger, number, doc.id, APPROVED, decider=filer, reason=why, now=now)
    return number


def _decide(ledger: Ledger, number: str, doc_id: int, state: str, *, decider: Operator, reason: str | None,
            now: str, time_text: TimeText = as_stored) -> None:
    # time_text: only approve and decline meet an application another
    # person decided; one filed in this transaction cannot be.
    if not ledger.decide_application(number, state=state, at=now, by=decider.actor, decider=decider.person,
                                     reason=reason):
        raise StaleApplication(_decided(ledger.application(number), time_text))
    ledger.note(doc_id, now=now, actor=decider.actor,
                reason=f"{number} {state} by {decider.person}" + (f": {reason}" if reason else ""),
                details={"application": number, "action": state, "decider": decider.person,
                         **({"reason": reason} if reason else {})})


def _clean(reason: str | None) -> str | None:
    return reason.strip() if reason and reason.strip() else None
