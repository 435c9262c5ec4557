"""An operator's hand on a document: amend (补录), accept, reject, and the quarantine list.

Pure library over the Ledger: `now`, `today` and `actor` come from the
caller. Each call runs in one ledger transaction, so a document is never
left half-amended, and every change is an event naming the actor. The
vault original is never touched: amended values live in the ledger only,
with source `manual`.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from agent.errors import AgentError, IllegalTransition
from agent.ledger import Document, Ledger
from agent.ledger.rejections import where_held
from agent.model import FIELD_NAMES, KIND_NAMES, MONEY_FIELDS, TRANSITIONS, Invoice, State
from agent.textchars import has_unsafe

if TYPE_CHECKING:
    from agent.validate import ValidationSettings

# Judging (agent.judgement, agent.pipeline and the validation rules behind
# them) is imported by the functions that judge: `quarantine` and `retry`
# use this module only to list and resolve documents.

QUARANTINE_SORTS = ("received", "date", "amount")
# States from which amend can send a document back to validation. Captured
# and extracted documents are the pipeline's, mid-flight: amending them
# would race the worker that is about to judge them.
AMENDABLE = tuple(s for s in State if State.EXTRACTED in TRANSITIONS[s]
                  and s not in (State.CAPTURED, State.EXTRACTED))
MAX_TEXT = 500
# What an operator's value may not hold is agent/textchars.py's UNSAFE (C0
# and C1 controls, line and paragraph separators, text-direction and other
# format characters such as a zero-width space, lone surrogates): what the
# CLI escapes on output is what may not be typed. Stored, they break lines,
# reorder text or hide inside a value in every system that later shows it.

# ASCII digits; commas (or spaces) only between groups of three, as
# 1,234,567.80 is written: "12,50" is a decimal comma typed by mistake,
# never 1250.00 (a wrong value is worse than a refusal).
_MONEY = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d{1,3}(?: \d{3})+|\d{1,13})(?:\.\d{1,2})?", re.ASCII)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DIGITS_FIELDS = {"number": "发票号码", "code": "发票代码", "check_code": "校验码"}
_TAX_ID = re.compile(r"[0-9A-Z]{15,20}")


class AmendError(AgentError):
    """An operator's request cannot be carried out as given: an unknown
    field, a malformed value, a missing reason. `field` names the field."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class AmbiguousReference(AgentError):
    """A reference (invoice number, hash prefix) matches several documents.
    `candidates` holds them, so the caller can list them."""

    def __init__(self, ref: str, candidates: list[Document]):
        listed = "; ".join(f"{d.id} ({d.state}, {d.original_name or d.sha256[:12]})" for d in candidates)
        super().__init__(f"{ref!r} matches {len(candidates)} documents: {listed}; give the one you mean "
                         "as #ID (the id alone)")
        self.candidates = candidates


def resolve(ledger: Ledger, ref: str) -> Document:
    """The one document `ref` (id, SHA-256 prefix or invoice number) names.
    Raises NotFoundInLedger when none does, AmbiguousReference when several do."""
    docs = ledger.find(ref)
    if len(docs) > 1:
        raise AmbiguousReference(ref, docs)
    return docs[0]


def parse_assignments(pairs: Iterable[str]) -> dict[str, str]:
    """`["number=123", "date=2024-01-02"]` -> `{"number": "123", "date": "2024-01-02"}`.
    Names are checked against FIELD_NAMES (`-` may stand for `_`). Raises
    AmendError for a pair without `=`, an unknown name or a name given twice."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise AmendError(f"--set {pair!r}: expected name=value, e.g. number=12345678")
        name = _field_name(name)
        if name in out:
            raise AmendError(f"--set {name}: given twice", field=name)
        out[name] = value
    return out


def parse_value(name: str, raw: str) -> Any:
    """The typed value an operator's text stands for: Decimal (2 places) for
    money, `datetime.date` for `date`, digits for number/code/check_code,
    upper-case for tax ids and kind, stripped text otherwise. An empty text
    clears the field (None). Raises AmendError naming the field when the
    name is unknown or the text is not a value of that field."""
    name = _field_name(name)
    text = raw.strip()
    if not text:
        return None
    if has_unsafe(text) or len(text) > MAX_TEXT:
        raise AmendError(f"--set {name}: value must be one line of at most {MAX_TEXT} characters, without "
                         "control, line or paragraph separator, text-direction or invisible format characters",
                         field=name)
    if name in MONEY_FIELDS:
        plain = unicodedata.normalize("NFKC", text).lstrip("¥").strip()
        if not _MONEY.fullmatch(plain):
            raise AmendError(f"--set {name}={raw}: not an amount; write yuan with at most 2 decimals and "
                             "commas only between groups of three digits, e.g. 1234.50 or 1,234.50", field=name)
        return Decimal(plain.replace(",", "").replace(" ", "")).quantize(Decimal("0.01"))
    if name == "date":
        try:
            if not _DATE.fullmatch(text):
                raise ValueError
            return dt.date.fromisoformat(text)
        except ValueError:
            raise AmendError(f"--set date={raw}: not a real date; write YYYY-MM-DD, e.g. 2024-03-15",
                             field=name) from None
    if name in _DIGITS_FIELDS:
        digits = "".join(text.split())
        if not digits.isascii() or not digits.isdigit():
            raise AmendError(f"--set {name}={raw}: {_DIGITS_FIELDS[name]} is digits only", field=name)
        return digits
    if name in ("buyer_tax_id", "seller_tax_id"):
        tax_id = "".join(text.split()).upper()
        if not _TAX_ID.fullmatch(tax_id):
            raise AmendError(f"--set {name}={raw}: a tax id is 15 to 20 letters and digits, "
                             "e.g. 91110108MA01ABCD2X", field=name)
        return tax_id
    if name == "kind":
        if text not in KIND_NAMES:
            known = ", ".join(f"{k} {v}" for k, v in KIND_NAMES.items())
            raise AmendError(f"--set kind={raw}: not an invoice type code; known: {known}", field=name)
        return text
    return text


def amend(ledger: Ledger, doc_id: int, values: dict[str, str], *, reason: str | None,
          settings: ValidationSettings, destinations: Sequence[str], today: dt.date,
          now: str, actor: str, application: str | None = None) -> State:
    """Record operator values (source `manual`) on a document and judge it again.

    Every value is parsed before anything is written; a bad one raises
    AmendError naming the field and changes nothing. The document goes to
    `extracted` with an event by `actor` carrying old and new values and the
    reason, then through validation to valid/queued, quarantined or
    duplicate, all in one transaction. Works from the states that may return
    to `extracted` (AMENDABLE); others raise IllegalTransition. Returns the
    new state. The vault is not touched.

    When the invoice key changes, deliveries already made under the old key
    become `superseded` (never repeated under the new key without an
    explicit `requeue --destination`; `superseded_by_amend` lists them),
    and every duplicate of the old key is judged again (`settle_key`).
    When it does not, a destination holding the invoice keeps the values
    it got (a put again changes nothing there): an event names it
    (`note_values_held`; `values_held_by_amend` reads it back).
    `application` (a 补录 number) goes into the event; a document that a
    pending application holds is refused (IllegalTransition).
    """
    from agent.judgement import judge, settle_key
    from agent.pipeline import invoice_columns

    if not values:
        raise AmendError("nothing to amend: give at least one --set name=value")
    parsed = {_field_name(name): parse_value(name, raw) for name, raw in values.items()}
    with ledger.transaction():
        doc = ledger.get(doc_id)
        refuse_if_held(ledger, doc_id)
        check_amendable(doc)
        invoice = Invoice.from_dict(doc.fields or {})
        old = doc.fields or {}
        changes = {}
        for name, value in parsed.items():
            if _already_held(invoice, name, value):
                continue   # keeps its reading's source: typing a value in again is no reading of it
            invoice.set_manual(name, value)
            changes[name] = {"old": old.get(name), "old_source": (old.get("sources") or {}).get(name),
                             "new": invoice.to_dict()[name]}
        details: dict[str, Any] = {"source": "manual", "fields": changes}
        if application:
            details["application"] = application
        if reason and reason.strip():
            details["reason"] = reason.strip()
        if not invoice.is_invoice:
            # Typing in an invoice's fields says it is one after all.
            details["was_not_invoice"] = invoice.not_invoice_reason or "not an invoice"
            invoice.is_invoice, invoice.not_invoice_reason = True, None
        said = "; ".join(f"{n} {_shown(c['old'])} -> {_shown(c['new'])}" for n, c in changes.items())
        text = (f"{application + ' ' if application else ''}amended {said} (manual)"
                + (f": {details['reason']}" if "reason" in details else ""))
        ledger.transition(doc_id, State.EXTRACTED, now=now, actor=actor, expect=doc.state,
                          reason=text, details=details, duplicate_of=None, **invoice_columns(invoice))
        if invoice.key != doc.invoice_key:
            ledger.supersede_deliveries(doc_id, old_key=doc.invoice_key, new_key=invoice.key, now=now,
                                        actor=actor)
        # A destination holding the invoice under its (unchanged) key keeps
        # the values it got: the event says so, so no later "delivered" hides it.
        ledger.note_values_held(doc_id, key=invoice.key, values=invoice.to_dict(), changes=changes, now=now,
                                actor=actor, application=application)
        state = judge(ledger, doc_id, invoice, settings=settings, destinations=destinations,
                      today=today, now=now, actor=actor, reason_prefix="after amend: ")
        if doc.invoice_key and doc.invoice_key != invoice.key:
            settle_key(ledger, doc.invoice_key, settings=settings, destinations=destinations,
                       today=today, now=now, actor=actor)
        return state


def _already_held(invoice: Invoice, name: str, value: Any) -> bool:
    # The field holds exactly this value (text to the last space, money of
    # equal value) and no reading disagrees with it: nothing to confirm.
    held = invoice.get(name)
    return (value is not None and held is not None and type(held) is type(value) and held == value
            and not any(c.field == name for c in invoice.conflicts))


def field_name(name: str) -> str:
    """The FIELD_NAMES name an operator's `name` stands for (`-` for `_`,
    any case); raises AmendError for an unknown one."""
    return _field_name(name)


def required_reason(reason: str | None, what: str) -> str:
    """The stripped reason; raises AmendError naming `what` when there is none."""
    return _required(reason, what)


def check_amendable(doc: Document) -> None:
    """Raise IllegalTransition unless `amend` works from the document's state (AMENDABLE)."""
    if State(doc.state) not in AMENDABLE:
        raise IllegalTransition(
            f"document {doc.id} is {doc.state}; amend works on "
            f"{', '.join(s.value for s in AMENDABLE)} documents")


def superseded_by_amend(ledger: Ledger, doc_id: int) -> list[dict]:
    """The document's deliveries held under another key than its own
    (`superseded`): [{destination, key}], for the warning an amend prints."""
    return [{"destination": d["destination"], "key": d["delivered_key"]}
            for d in ledger.deliveries_of(doc_id) if d["state"] == "superseded"]


def values_held_by_amend(events: Sequence) -> list[dict]:
    """From a document's `events`: each event of an amend that changed
    fields of an invoice a destination held under the same key, as
    {destinations, key, fields}, for the warning an amend prints."""
    out = []
    for e in events:
        held = (e.details or {}).get("values_held")
        if isinstance(held, list) and held:
            out.append({"destinations": [r["destination"] for r in held], "key": held[0]["key"],
                        "fields": (e.details or {}).get("fields") or []})
    return out


def accept(ledger: Ledger, doc_id: int, *, reason: str, destinations: Sequence[str],
           now: str, actor: str, application: str | None = None) -> State:
    """Let a quarantined document through despite its errors: quarantined ->
    valid, then queued when there are destinations, in one transaction. The
    event names `actor`, the reason and every overridden error; the problems
    stay on the document. Raises AmendError without a reason or for a
    document with no fields (unreadable: amend it first), IllegalTransition
    when the document is not quarantined or another live document is
    already the copy of its invoice key (it would be delivered twice), or
    a pending application holds it. `application` goes into the event.
    Returns the new state."""
    reason = _required(reason, "accept")
    with ledger.transaction():
        doc = ledger.get(doc_id)
        refuse_if_held(ledger, doc_id)
        if doc.state != State.QUARANTINED.value:
            raise IllegalTransition(f"document {doc_id} is {doc.state}; only quarantined documents can be accepted")
        if not doc.fields:
            raise AmendError(f"document {doc_id} has no invoice fields (it could not be read); "
                             f"type them in with `amend {doc_id} --set number=... --set date=...` first")
        holder = ledger.key_holder(doc.invoice_key, exclude_id=doc_id) if doc.invoice_key else None
        if holder is not None:
            raise IllegalTransition(
                f"document {holder.id} ({holder.state}) is already the copy of invoice {doc.invoice_key}: "
                f"delivering document {doc_id} too would deliver it twice; reject one of them, "
                "or amend this one if it is another invoice")
        overridden = [p for p in doc.problems if p.get("severity") == "error"]
        codes = ", ".join(sorted({p["code"] for p in overridden})) or "no errors"
        ledger.transition(doc_id, State.VALID, now=now, actor=actor, expect=State.QUARANTINED,
                          reason=f"{application + ' ' if application else ''}accepted over {codes}: {reason}",
                          details={"reason": reason, "overridden": overridden,
                                   **({"application": application} if application else {})})
        if destinations:
            return ledger.queue_deliveries(doc_id, destinations, now=now, actor=actor)
        return State.VALID


def reject(ledger: Ledger, doc_id: int, *, reason: str, settings: ValidationSettings,
           destinations: Sequence[str], today: dt.date, now: str, actor: str,
           application: str | None = None, acknowledge_delivered: bool = False) -> State:
    """End a document for good (-> rejected) with the operator's reason in
    the event, and judge again every duplicate that pointed at it, in one
    transaction (`settle_key`: one of them may now be the invoice's copy,
    held in quarantine as `rejected-before` for a person to accept).

    A destination may already hold the document (`Ledger.held_at`: a row
    delivered or confirmed, requeued after a delivery, superseded, or a put
    in flight). A rejection takes nothing back from there, so without
    `acknowledge_delivered` that raises StillAtDestination naming each one
    and nothing changes; with it the event records them, and rows requeued
    after their delivery are `delivered` again, or `superseded` when they
    went under a key the document no longer has (`keep_delivered`: nothing
    more is sent; reconciliation finds them gone once a person removed
    them there).
    Raises AmendError without a reason, IllegalTransition from a state that
    cannot be rejected or when a pending application holds the document
    (it is then unchanged). `application` goes into the event."""
    from agent.judgement import settle_key

    reason = _required(reason, "reject")
    with ledger.transaction():
        doc = ledger.get(doc_id)
        refuse_if_held(ledger, doc_id)
        if State.REJECTED not in TRANSITIONS[State(doc.state)]:
            allowed = ", ".join(s.value for s in State if State.REJECTED in TRANSITIONS[s])
            raise IllegalTransition(f"document {doc_id} is {doc.state}; only {allowed} documents can be rejected")
        held = ledger.held_at(doc_id)
        if held and not acknowledge_delivered:
            raise StillAtDestination(doc_id, held)
        details: dict[str, Any] = {"reason": reason, **({"application": application} if application else {})}
        text = f"{application + ' ' if application else ''}rejected: {reason}"
        if held:
            details["at_destinations"] = held
            text += f"; still at {where_held(held)}: remove it there by hand"
        ledger.transition(doc_id, State.REJECTED, now=now, actor=actor, expect=doc.state, reason=text,
                          details=details)
        ledger.keep_delivered(doc_id, now=now)
        if doc.invoice_key:
            settle_key(ledger, doc.invoice_key, settings=settings, destinations=destinations,
                       today=today, now=now, actor=actor)
    return State.REJECTED


class StillAtDestination(IllegalTransition):
    """`reject` refused: a destination holds the document, or may (a put in
    flight). `held` lists those rows (`Ledger.held_at`)."""

    def __init__(self, doc_id: int, held: list[dict]):
        super().__init__(
            f"document {doc_id} is at a destination already: {where_held(held)}. Rejecting it takes nothing "
            "back from there. To reject it all the same, add --acknowledge-delivered, then remove it there "
            "by hand (`fapiao-agent reconcile` then finds it gone; until then `status` and `audit ledger` "
            "name it)")
        self.held = held


def refuse_if_held(ledger: Ledger, doc_id: int) -> None:
    """Raise IllegalTransition when a pending 补录 application holds the
    document: it is decided first (`approve` / `decline`)."""
    held = ledger.pending_application(doc_id)
    if held is not None:
        raise IllegalTransition(
            f"document {doc_id} is held by the pending application {held['number']} (filed by {held['filer']}); "
            f"an approver decides it first: fapiao-agent approve {held['number']} "
            f"or fapiao-agent decline {held['number']} --reason TEXT")


def quarantined(ledger: Ledger, *, sort: str = "received", limit: int | None = 50) -> list[Document]:
    """Quarantined documents with their problems: newest received, newest
    invoice date or largest amount first; `limit` None or 0 means all.
    Raises AmendError for another sort."""
    if sort not in QUARANTINE_SORTS:
        raise AmendError(f"sort must be one of {', '.join(QUARANTINE_SORTS)}, not {sort!r}")
    return ledger.list_documents(state=State.QUARANTINED.value, sort=sort, limit=limit or None)


def _field_name(name: str) -> str:
    key = name.strip().lower().replace("-", "_")
    if key not in FIELD_NAMES:
        raise AmendError(f"--set {name.strip()}: unknown field; fields are {', '.join(FIELD_NAMES)}",
                         field=name.strip())
    return key


def _required(reason: str | None, what: str) -> str:
    if reason is None or not reason.strip():
        raise AmendError(f"{what} needs a reason (--reason TEXT): it goes into the audit log")
    return reason.strip()


def _shown(value: Any) -> str:
    return "(none)" if value is None else str(value)
