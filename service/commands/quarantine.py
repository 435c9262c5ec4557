"""`fapiao-agent quarantine`, `amend`, `accept`, `reject`: what needs a person, and the person's hand."""

from __future__ import annotations

from typing import Callable

import click

from agent import amend as lib
from agent.errors import AgentError, NotFoundInLedger
from agent.ledger import Document, Ledger
from service.context import (actor, destination_names, echo_json, fail, load, now, open_ledger, today,
                             validation_settings)
from service.textsafe import echo


def _problem_lines(problems: list[dict], indent: str = "  ") -> list[str]:
    lines = []
    for p in problems:
        where = f" ({p['field']})" if p.get("field") else ""
        lines.append(f"{indent}{p['severity'].upper():<7} {p['code']}{where}: {p['message']}")
        if p.get("message_zh"):
            lines.append(f"{indent}        {p['message_zh']}")
    return lines


def _summary(doc: Document) -> dict:
    return {"id": doc.id, "received_at": doc.received_at, "invoice_number": doc.invoice_number,
            "invoice_date": doc.invoice_date,
            "total": None if doc.total_cents is None else f"{doc.total_cents / 100:.2f}",
            "original_name": doc.original_name, "sha256": doc.sha256, "problems": doc.problems}


@click.command("quarantine", epilog="""\b
Examples:
  fapiao-agent quarantine                       newest arrivals first
  fapiao-agent quarantine --sort amount         largest 价税合计 first
  fapiao-agent quarantine --json | jq -r '.problems[].code' | sort | uniq -c
\b
Then, for each document: fix what was misread with `amend`, let it through
as it is with `accept`, or end it with `reject`.""")
@click.option("--sort", type=click.Choice(lib.QUARANTINE_SORTS), default="received", show_default=True,
              help="Newest received, newest invoice date, or largest amount first.")
@click.option("--limit", type=click.IntRange(min=0), default=50, show_default=True,
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
                   f"{row['total'] or '-'}  {row['original_name'] or ''}  (received {row['received_at'][:19]})")
        for line in _problem_lines(doc.problems) or ["  (no reason recorded)"]:
            echo(line)
    if not docs and not as_json:
        echo("nothing is quarantined", err=True)


@click.command("amend", epilog="""\b
Examples:
  fapiao-agent amend 12 --set number=12345678 --set date=2024-03-15
  fapiao-agent amend 25379266878000000370 --set total=6.50 --reason "QR unreadable"
  fapiao-agent amend 3 --set seller_tax_id=915001025636387295 --reason "typo on the scan"
\b
Fields: kind title code number date check_code amount tax total
total_in_words buyer_name buyer_tax_id seller_name seller_tax_id qr.
Money is yuan with at most 2 decimals (1234.50); dates are YYYY-MM-DD;
an empty value (--set code=) clears a field.""")
@click.argument("ref", metavar="ID")
@click.option("--set", "assignments", multiple=True, required=True, metavar="NAME=VALUE",
              help="A field's correct value; repeat for several fields.")
@click.option("--reason", default=None, help="Why, for the audit log (recommended).")
@click.pass_context
def amend_command(ctx: click.Context, ref: str, assignments: tuple[str, ...], reason: str | None) -> None:
    """Correct (补录) fields of a document and validate it again.

    The values are recorded with source `manual`, and the event log keeps
    your OS user, the time, and each old and new value. The document then
    goes through validation again: when it passes it is queued for delivery;
    when it still fails it stays quarantined (exit status 1) with the
    remaining reasons printed. The original file in the vault is never
    changed. ID is a document id, a SHA-256 prefix or an invoice number.
    Works on quarantined, valid, duplicate and not_invoice documents.

    A new number that another document already holds makes this one its
    duplicate. Changing the number of an invoice already delivered somewhere
    prints a warning: that delivery is marked superseded and not repeated
    under the new number unless you run `requeue ID --destination NAME`.
    """
    cfg = load(ctx)
    settings = validation_settings(cfg)
    values = _call(lambda: lib.parse_assignments(assignments))
    with open_ledger(cfg) as ledger:
        _act(ledger, ref, lambda doc_id, who: lib.amend(
            ledger, doc_id, values, reason=reason, settings=settings,
            destinations=destination_names(cfg), today=today(), now=now(), actor=who))


@click.command("accept", epilog="""\b
Example:
  fapiao-agent accept 12 --reason "expired, but finance agreed to book it (ticket FIN-88)"
""")
@click.argument("ref", metavar="ID")
@click.option("--reason", required=True, help="Why the errors may be overridden; kept in the audit log.")
@click.pass_context
def accept_command(ctx: click.Context, ref: str, reason: str) -> None:
    """Let a quarantined document through despite its errors.

    The document becomes valid and is queued for delivery. The event log
    records your OS user, the reason and every error overridden; the
    problems stay visible on the document (`show ID`). A document that could
    not be read at all has nothing to deliver: `amend` it first.
    """
    cfg = load(ctx)
    with open_ledger(cfg) as ledger:
        _act(ledger, ref, lambda doc_id, who: lib.accept(
            ledger, doc_id, reason=reason, destinations=destination_names(cfg), now=now(), actor=who))


@click.command("reject", epilog="""\b
Example:
  fapiao-agent reject 12 --reason "test invoice from the vendor's demo"
""")
@click.argument("ref", metavar="ID")
@click.option("--reason", required=True, help="Why the document ends here; kept in the audit log.")
@click.pass_context
def reject_command(ctx: click.Context, ref: str, reason: str) -> None:
    """End a document for good: it is never delivered.

    Works on quarantined, queued, failed, duplicate and not_invoice
    documents. The original stays in the vault and the event log records
    your OS user and the reason. Its duplicates (other copies of the same
    invoice) are judged again at once: one of them may be delivered instead.
    """
    cfg = load(ctx)
    with open_ledger(cfg) as ledger:
        _act(ledger, ref, lambda doc_id, who: lib.reject(
            ledger, doc_id, reason=reason, settings=validation_settings(cfg),
            destinations=destination_names(cfg), today=today(), now=now(), actor=who))


def _call(fn: Callable):
    try:
        return fn()
    except lib.AmendError as e:
        fail(str(e), code=2)


def _act(ledger: Ledger, ref: str, action: Callable[[int, str], object]) -> None:
    """Resolve ID, run `action(doc_id, actor)`, print one outcome line; exit 1 if still quarantined."""
    who = actor()
    try:
        doc = lib.resolve(ledger, ref)
    except (NotFoundInLedger, lib.AmbiguousReference) as e:
        fail(str(e))
    seen = len(ledger.events(doc.id))
    superseded = lib.superseded_by_amend(ledger, doc.id)
    copies = {d.id: d.state for d in ledger.documents_with_key(doc.invoice_key) if d.id != doc.id}
    try:
        _call(lambda: action(doc.id, who))
    except AgentError as e:
        fail(str(e))
    after = ledger.get(doc.id)
    for row in lib.superseded_by_amend(ledger, doc.id):
        if row not in superseded:
            echo(f"warning: document {doc.id} was already delivered to {row['destination']} under invoice "
                       f"key {row['key']}; that delivery is now superseded and it is not sent there again "
                       f"under {after.invoice_key or 'its new key'}. To deliver it there again: "
                       f"fapiao-agent requeue {doc.id} --destination {row['destination']} "
                       f"(and remove the copy under {row['key']} there by hand)", err=True)
    # Only our own moves (a daemon may act on the document meanwhile);
    # the intermediate `extracted` is how amend re-enters validation, not news.
    path = [doc.state] + [e.to_state for e in ledger.events(doc.id)[seen:]
                          if e.actor == who and e.to_state and e.to_state != "extracted"]
    echo(f"document {doc.id}: {' -> '.join(path)}{_note(after)}")
    # Other copies of the invoice judged again because of this act.
    for other in ledger.documents_with_key(doc.invoice_key) + ledger.documents_with_key(
            after.invoice_key if after.invoice_key != doc.invoice_key else None):
        if other.id != doc.id and other.state != copies.get(other.id, other.state):
            echo(f"document {other.id} (a copy of invoice {other.invoice_key}): "
                       f"{copies[other.id]} -> {other.state}{_note(other)}")
    if after.state == "quarantined":
        for line in _problem_lines([p for p in after.problems if p.get("severity") == "error"]):
            echo(line)
        raise SystemExit(1)


def _note(doc: Document) -> str:
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


extra_commands = (amend_command, accept_command, reject_command)
