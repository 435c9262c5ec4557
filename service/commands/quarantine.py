"""`fapiao-agent quarantine`, `amend`, `accept`, `reject`, `reopen`: what needs a
person, and the person's hand. Each hand is a 补录 application (agent/applications.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import click

import sys

from agent import amend as lib
from agent.errors import AgentError, NotFoundInLedger
from agent.ledger import Document, Ledger
from agent.ledger.rows import yuan
from service.context import (LIMIT, destination_names, echo_json, fail, load, now, open_ledger, operator,
                             self_approve_empty_fields, today, validation_settings)
from service.display import local_time
from service.display import problem_lines as _problem_lines
from service.textsafe import echo, shown

if TYPE_CHECKING:
    from agent import applications as apps

# The 补录 machinery (agent.applications, agent.application_rules: hashlib,
# the rules' tables) is imported by the hands that file an application: the
# `quarantine` listing reads the ledger only (issue 17: start-up).


def _summary(doc: Document) -> dict:
    return {"id": doc.id, "received_at": doc.received_at, "invoice_number": doc.invoice_number,
            "invoice_date": doc.invoice_date,
            "total": yuan(doc.total_cents),
            "original_name": doc.original_name, "sha256": doc.sha256, "problems": doc.problems}


@click.command("quarantine", epilog="""\b
Examples:
  fapiao-agent quarantine                       newest arrivals first
  fapiao-agent quarantine --sort amount         largest 价税合计 first
  fapiao-agent quarantine --json | jq -r '.problems[].code' | sort | uniq -c
\b
Then, for each document: fix what was misread with `amend`, let it through
as it is with `accept`, or end it with `reject`. A document held by a
pending 补录 application shows `application-pending` first: an approver
decides it with `approve BL-...` or `decline BL-...` (see `requests`).""")
@click.option("--sort", type=click.Choice(lib.QUARANTINE_SORTS), default="received", show_default=True,
              help="Newest received, newest invoice date, or largest amount first.")
@click.option("--limit", type=LIMIT, default=50, show_default=True,
              help="At most this many (0: all).")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per document per line: id, received_at, invoice_number, "
                   "invoice_date, total, original_name, sha256, problems [{code, severity, field, "
                   "message, message_zh}].")
@click.pass_context
def command(ctx: click.Context, sort: str, limit: int, as_json: bool) -> None:
    """List quarantined documents with every reason they were stopped.

    Each reason shows its rule code (stable: grep for it), its severity,
    the field it concerns, and its message in English and Chinese.
    """
    cfg = load(ctx)
    with open_ledger(cfg) as ledger:
        docs = _call(lambda: lib.quarantined(ledger, sort=sort, limit=limit))
    for doc in docs:
        row = _summary(doc)
        if as_json:
            echo_json(row)
            continue
        echo(f"document {row['id']}  {row['invoice_number'] or '-'}  {row['invoice_date'] or '-'}  "
                   f"{row['total'] or '-'}  {row['original_name'] or ''}  (received {local_time(row['received_at'])})")
        for line in _problem_lines(doc.problems) or ["  (no reason recorded)"]:
            echo(line)
    if not docs and not as_json:
        echo("nothing is quarantined", err=True)


@click.command("amend", epilog="""\b
Examples:
  fapiao-agent amend 12 --set number=12345678 --set date=2024-03-15 --reason "scan: QR unreadable"
  fapiao-agent amend 25379266878000000370 --set total=6.50 --reason "纸质发票金额"
  fapiao-agent amend 3 --set seller_tax_id=915001025636387295 --reason "typo on the scan"
\b
Fields: kind title code number date check_code amount tax total
total_in_words buyer_name buyer_tax_id seller_name seller_tax_id qr.
Money is yuan with at most 2 decimals (1234.50); dates are YYYY-MM-DD;
an empty value (--set code=) clears a field.
\b
Who decides:
  filling fields no source read     you, at once ([access] self_approve_empty_fields,
                                    default true)
  changing what the QR code, the    a member of approve_group other than you
  数电 XML or the OFD's data carried  (four eyes); until then the document is
  (a conflict), or any other value  held in quarantine, the change shown first
\b
Exit status: 0 done, or filed and waiting for an approver (the document
held meanwhile); 1 carried out, but the document is still quarantined (still
failing); 2 bad input; 3 not allowed.""")
@click.argument("ref", metavar="ID")
@click.option("--set", "assignments", multiple=True, required=True, metavar="NAME=VALUE",
              help="A field's correct value; repeat for several fields.")
@click.option("--reason", required=True, help="Why (the paper copy, the vendor's mail...): kept with the "
              "application and in the audit trail.")
@click.pass_context
def amend_command(ctx: click.Context, ref: str, assignments: tuple[str, ...], reason: str) -> None:
    """File a 补录 application correcting fields of a document.

    The application gets a number (BL-YYYYMMDD-NNNN) and records the fields
    before and after, you (your real account, also behind sudo) and the
    reason. When it may be approved at once, the values are recorded with
    source `manual` and the document is validated again: queued when it
    passes, still quarantined (exit 1) with the remaining reasons when not.
    Otherwise it waits for an approver (`requests`, `approve`, `decline`;
    exit 0: filed as asked) and the document is held in quarantine meanwhile. The original file in
    the vault is never changed. ID is a document id, a SHA-256 prefix or an
    invoice number (#ID: the id alone, when it reads as the others too). Works on quarantined, valid, queued, failed, duplicate
    and not_invoice documents.

    A new number that another document already holds makes this one its
    duplicate. Changing the number of an invoice already delivered somewhere
    prints a warning: that delivery is marked superseded and not repeated
    under the new number unless you run `requeue ID --destination NAME`.
    Changing other fields of an invoice already delivered somewhere prints a
    warning too: that destination keeps the values it got (it holds one copy
    per invoice number, and a delivery again does not change it): correct
    them there by hand. `show ID` says so as well.
    """
    from agent import applications as apps

    cfg = load(ctx)
    settings = validation_settings(cfg)
    values = _call(lambda: lib.parse_assignments(assignments))
    with open_ledger(cfg) as ledger:
        doc = resolve(ledger, ref)
        out, after = act(ledger, doc, lambda who: apps.file_amend(
            ledger, doc.id, values, reason=reason, settings=settings, destinations=destination_names(cfg),
            today=today(), now=now(), filer=who, self_approve_empty=self_approve_empty_fields(cfg)))
    # Filed and waiting for its approver is what was asked (its line says so):
    # only values carried out that still fail are not done.
    if out.state != "pending" and after.state == "quarantined":
        raise SystemExit(1)


@click.command("accept", epilog="""\b
Example:
  fapiao-agent accept 12 --reason "expired, but finance agreed to book it (ticket FIN-88)"
""")
@click.argument("ref", metavar="ID")
@click.option("--reason", required=True, help="Why the errors may be overridden; kept in the audit log.")
@click.pass_context
def accept_command(ctx: click.Context, ref: str, reason: str) -> None:
    """Let a quarantined document through despite its errors (approvers only).

    Filed as a 补录 application (BL-...) that is your own decision as an
    approver. The document becomes valid and is queued for delivery. The
    trail records your account, the reason and every error overridden; the
    problems stay visible on the document (`show ID`). A document that could
    not be read at all has nothing to deliver: `amend` it first. A document
    held by a pending application is decided with `approve`/`decline` first.
    """
    from agent import applications as apps

    cfg = load(ctx)
    with open_ledger(cfg) as ledger:
        doc = resolve(ledger, ref)
        _, after = act(ledger, doc, lambda who: apps.file_accept(
            ledger, doc.id, reason=reason, destinations=destination_names(cfg), now=now(), filer=who))
    if after.state == "quarantined":
        raise SystemExit(1)


@click.command("reject", epilog="""\b
Examples:
  fapiao-agent reject 12 --reason "test invoice from the vendor's demo"
  fapiao-agent reject 12 --reason "作废发票" --yes        no question (scripts)
  fapiao-agent reject 12 --reason "作废发票" --acknowledge-delivered
\b
On a terminal it asks first; without a terminal (a script, a pipe) it
refuses unless --yes is given. `reopen ID --reason` brings it back.
A document a destination holds already (or may: a put in flight) is
refused (exit 1, naming each) unless --acknowledge-delivered: a rejection
takes nothing back from a destination.""")
@click.argument("ref", metavar="ID")
@click.option("--reason", required=True, help="Why the document ends here; kept in the audit log.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--acknowledge-delivered", is_flag=True,
              help="Reject it even though a destination holds it already (or may: a put in flight); "
                   "you then remove it there by hand.")
@click.pass_context
def reject_command(ctx: click.Context, ref: str, reason: str, yes: bool, acknowledge_delivered: bool) -> None:
    """Take a document out of delivery: it is never delivered unless reopened.

    Filed as a 补录 application (BL-...) decided by you. Works on
    quarantined, queued, failed, duplicate and not_invoice documents. The
    original stays in the vault and the trail records your account and the
    reason. Its duplicates (other copies of the same invoice) are judged
    again at once: one of them becomes the invoice's copy, held in
    quarantine (`rejected-before`) until a person accepts or rejects it.

    A rejection takes nothing back from a destination that holds the
    document already (delivered before a requeue, delivered to one
    destination while another failed, a put still in flight): it is refused,
    naming them, unless --acknowledge-delivered. Then remove it there by
    hand; `status`, `show` and `audit ledger` name it until `reconcile`
    finds it gone.
    """
    from agent import applications as apps

    cfg = load(ctx)
    with open_ledger(cfg) as ledger:
        doc = resolve(ledger, ref)
        held = ledger.held_at(doc.id)
        # Held there and not acknowledged: the library refuses it, naming where; nothing to ask.
        if not yes and (acknowledge_delivered or not held):
            what = f"document {doc.id} ({doc.state}, invoice {doc.invoice_number or '-'}, {doc.original_name or '-'})"
            if not sys.stdin.isatty():
                fail(f"reject asks before it ends {what}, and there is no terminal to ask on: "
                     "add --yes to reject it", code=2)
            there = (f" It stays at {lib.where_held(held)}: remove it there by hand." if held else "")
            # click.confirm prints its text raw: the file name is a stranger's.
            if not click.confirm(shown(f"Reject {what}? It will not be delivered (`reopen` brings it back).{there}"),
                                 default=False):
                fail(f"document {doc.id} was not rejected")
        act(ledger, doc, lambda who: apps.file_reject(
            ledger, doc.id, reason=reason, settings=validation_settings(cfg),
            destinations=destination_names(cfg), today=today(), now=now(), filer=who,
            acknowledge_delivered=acknowledge_delivered))
        held = ledger.held_at(doc.id)
    if held:
        echo(f"warning: document {doc.id} is rejected, but stays at {lib.where_held(held)}: remove it there "
             "by hand; `fapiao-agent reconcile` then finds it gone (until then `status` and `audit ledger` "
             "name it)", err=True)


@click.command("reopen", epilog="""\b
Example:
  fapiao-agent reopen 12 --reason "rejected by mistake: it is the March invoice, not a copy"
""")
@click.argument("ref", metavar="ID")
@click.option("--reason", required=True, help="Why it comes back; kept in the audit log.")
@click.pass_context
def reopen_command(ctx: click.Context, ref: str, reason: str) -> None:
    """Bring a rejected document back to quarantine.

    Filed as a 补录 application (BL-...) decided by you. The document is
    quarantined with a `reopened` error naming you and the reason, so it is
    decided again with `amend`, `accept` or `reject`. When another copy of
    the same invoice is live meanwhile, it comes back as that copy's duplicate.
    """
    from agent import applications as apps

    cfg = load(ctx)
    with open_ledger(cfg) as ledger:
        doc = resolve(ledger, ref)
        act(ledger, doc, lambda who: apps.file_reopen(
            ledger, doc.id, reason=reason, settings=validation_settings(cfg),
            destinations=destination_names(cfg), today=today(), now=now(), filer=who))


def _call(fn: Callable):
    try:
        return fn()
    except lib.AmendError as e:
        fail(str(e), code=2)


def resolve(ledger: Ledger, ref: str) -> Document:
    """The one document ID names, or exit 1 with the reason."""
    try:
        return lib.resolve(ledger, ref)
    except (NotFoundInLedger, lib.AmbiguousReference) as e:
        fail(str(e))


def act(ledger: Ledger, doc: Document, action: Callable[[apps.Operator], apps.Outcome]):
    """Run `action(operator)`, print the application line and one outcome
    line per document it moved; returns (Outcome, the document after).
    Exits 3 when four eyes refuse, 2 for bad input, 1 for other refusals."""
    from agent import applications as apps

    who = operator()
    seen = len(ledger.events(doc.id))
    superseded = lib.superseded_by_amend(ledger, doc.id)
    copies = {d.id: d.state for d in ledger.documents_with_key(doc.invoice_key) if d.id != doc.id}
    try:
        out = _call(lambda: action(who))
    except apps.NeedsAnotherPerson as e:
        fail(str(e), code=3)
    except AgentError as e:
        fail(str(e))
    after = ledger.get(doc.id)
    echo(application_line(out, who))
    for name, c in out.changes.items():
        echo(f"  {name} {_shown(c['old'])}" + (f" [{c['old_source']}]" if c["old_source"] else "")
             + f" -> {_shown(c['new'])}  ({_kind(c)})")
    for row in lib.superseded_by_amend(ledger, doc.id):
        # A rejection names its own (it stays there under its old key): no requeue to suggest.
        if row not in superseded and after.state != "rejected":
            echo(f"warning: document {doc.id} was already delivered to {row['destination']} under invoice "
                 f"key {row['key']}; that delivery is now superseded and it is not sent there again "
                 f"under {after.invoice_key or 'its new key'}. To deliver it there again: "
                 f"fapiao-agent requeue {doc.id} --destination {row['destination']} "
                 f"(and remove the copy under {row['key']} there by hand)", err=True)
    for held in lib.values_held_by_amend(ledger.events(doc.id)[seen:]):
        where = ", ".join(held["destinations"])
        echo(f"warning: document {doc.id} was already delivered to {where} under invoice key {held['key']}; "
             f"{where} keep{'s' if len(held['destinations']) == 1 else ''} the values it got and sending it again "
             f"under the same key does not change them: correct {', '.join(held['fields'])} in {where} by hand",
             err=True)
    # Only our own moves (a daemon may act on the document meanwhile);
    # the intermediate `extracted` is how amend re-enters validation, not news.
    path = [doc.state] + [e.to_state for e in ledger.events(doc.id)[seen:]
                          if e.actor == who.actor and e.to_state and e.to_state != "extracted"]
    echo(f"document {doc.id}: {' -> '.join(path)}{_note(after, out)}")
    # Other copies of the invoice judged again because of this act.
    for other in ledger.documents_with_key(doc.invoice_key) + ledger.documents_with_key(
            after.invoice_key if after.invoice_key != doc.invoice_key else None):
        if other.id != doc.id and other.state != copies.get(other.id, other.state):
            echo(f"document {other.id} (a copy of invoice {other.invoice_key}): "
                 f"{copies[other.id]} -> {other.state}{_note(other)}")
    if after.state == "quarantined":
        for line in _problem_lines([p for p in after.problems if p.get("severity") == "error"]):
            echo(line)
    return out, after


def application_line(out: apps.Outcome, who: apps.Operator) -> str:
    """`BL-... filed ...`: what became of the application, in one line."""
    from agent import application_rules as rules

    what = f"{out.kind} of document {out.document_id}"
    if out.state == "pending":
        return (f"{out.number} filed: {what}, waiting for an approver other than {who.person} "
                f"(`fapiao-agent approve {out.number}`): " + rules.needs_why({"changes": out.changes}))
    if out.approval == "self" and out.state == "approved":
        return f"{out.number} filed and approved by {who.person}: {what}"
    return f"{out.number} {out.state} by {who.person}: {what}"


def _kind(c: dict) -> str:
    from agent import application_rules as rules

    if c["kind"] == rules.CONFLICT:
        return "conflict: " + ", ".join(f"{rules.SOURCE_NAMES.get(s, s)} says {v}" for s, v in c["carried"].items())
    return {"fill": "fills an empty field", "same": "no change", "correction": "replaces a reading"}[c["kind"]]


def _shown(value) -> str:
    return "(none)" if value is None else str(value)


def _note(doc: Document, out: apps.Outcome | None = None) -> str:
    if out is not None and out.state == "pending":
        return f" (held until {out.number} is decided)"
    warnings = sum(1 for p in doc.problems if p.get("severity") == "warning")
    errors = sorted({p["code"] for p in doc.problems if p.get("severity") == "error"})
    if doc.state == "duplicate":
        return f" (same invoice as document {doc.duplicate_of})"
    if doc.state == "quarantined":
        return f" (still failing: {', '.join(errors)})"
    if doc.state in ("valid", "queued") and errors:
        return f" (accepted over {', '.join(errors)}" + (f"; {warnings} warnings)" if warnings else ")")
    if doc.state in ("valid", "queued") and warnings:
        return f" ({warnings} warning{'s' if warnings != 1 else ''})"
    return ""


extra_commands = (amend_command, accept_command, reject_command, reopen_command)
