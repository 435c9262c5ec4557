"""`fapiao-agent retry`, `requeue`, `reconcile`: an operator's hand on deliveries.
(The delivery part of `status` is service/delivery_figures.py.)"""

from __future__ import annotations

import datetime as dt
import sys
from typing import TYPE_CHECKING

import click

from agent.errors import AgentError
from agent.ledger import Ledger, utc
from agent.ledger.deliveries import ACTIVE_DOCUMENT_STATES
from service.display import Column, local_time, table
from service.progress import Progress
from service.context import actor, destination_names, echo_json, fail, load, now, now_dt, open_ledger
from service.textsafe import echo

if TYPE_CHECKING:
    from agent.reconcile import Check

# The delivery machinery (agent.deliver.*, agent.reconcile) is imported by the
# functions that use it: `--help` loads every command's module.

RECONCILE_COLUMNS = ("document_id", "destination", "invoice_number", "invoice_date", "total",
                     "delivered_at", "result", "remote_id", "error", "key")
# `key`: the one looked up, an old key of the document's (an amend changed it since) included.
RECONCILE_TABLE = (Column("document_id", "id", ">"), Column("destination", "destination"), Column("key", "key"),
                   Column("invoice_number", "number"), Column("invoice_date", "date"),
                   Column("total", "total", ">"), Column("result", "result"),
                   Column("remote_id", "remote id", empty=""), Column("error", "error", empty=""))


def _names(cfg, destination: str | None) -> list[str]:
    names = destination_names(cfg)
    if destination is not None and destination not in names:
        fail(f"no destination named {destination!r} (configured: {', '.join(names) or 'none'})")
    return [destination] if destination else names


# A row in one of these is done with: its destination gone, nothing waits on it.
_FINISHED = ("delivered", "confirmed", "superseded", "dropped")


def _gone_notes(rows, from_states, names: list[str]) -> list[str]:
    """One line per row in `from_states` whose destination the config no
    longer has: left as it is (no loop would send it), and, for one still
    waiting, how to let it go (a finished one has nothing to let go)."""
    out = []
    for d in rows:
        name, state = d["destination"], d["state"]
        if name in names or state not in from_states:
            continue
        if state in _FINISHED:
            out.append(f"note: not sent again to {name} ({state}): {name} is no longer in the config")
        else:
            out.append(f"note: left {name} ({state}): {name} is no longer in the config; put it back, or let "
                       f"its deliveries go: fapiao-agent drop-destination {name} --reason TEXT")
    return out


def _document(ledger: Ledger, ref: str):
    from agent.amend import resolve   # here: `status` imports this module for its delivery report

    try:
        doc = resolve(ledger, ref)
    except AgentError as e:
        fail(str(e))
    if doc.state not in ACTIVE_DOCUMENT_STATES:
        fail(f"document {doc.id} is {doc.state}, not in delivery; "
             + ("fix it with amend/accept first" if doc.state in ("quarantined", "extracted", "valid")
                else "there is nothing to deliver"))
    return doc


@click.command("retry", epilog="""\b
Examples:
  fapiao-agent retry 42                          try document 42 again now
  fapiao-agent retry --all-failed                every failed delivery
  fapiao-agent retry --all-failed --destination erp""")
@click.argument("ref", required=False)
@click.option("--all-failed", is_flag=True, help="Every document with a failed delivery.")
@click.option("--destination", metavar="NAME", help="Only deliveries to this destination.")
@click.pass_context
def command(ctx: click.Context, ref: str | None, all_failed: bool, destination: str | None) -> None:
    """Bring failed deliveries back: queued again, due now, attempts reset.

    REF is a document id, SHA-256 prefix or invoice number (#ID: the id
    alone). A delivery still
    waiting for its next attempt is also made due now.

    Only deliveries to destinations in the config are brought back: one to
    a destination removed (or renamed) since is left, with a note saying so;
    `drop-destination NAME` lets such deliveries go.
    """
    if bool(ref) == all_failed:
        fail("give a document (id, hash prefix or invoice number) or --all-failed, not both", code=2)
    cfg = load(ctx)
    names = destination_names(cfg)
    _names(cfg, destination)
    who, at = actor(), now()
    with open_ledger(cfg) as ledger:
        if ref:
            doc = _document(ledger, ref)
            done = ledger.requeue_deliveries(doc.id, from_states=("failed", "queued"), destination=destination,
                                             now=at, actor=who, reason="retry requested by an operator",
                                             configured=names)
            if destination is None:
                for line in _gone_notes(ledger.deliveries_of(doc.id), ("failed", "queued"), names):
                    echo(line, err=True)
            if not done:
                fail(f"document {doc.id} ({doc.state}) has no failed or waiting delivery"
                     + (f" to {destination}" if destination else " to a configured destination")
                     + "; use `requeue` to deliver it again")
            echo(f"document {doc.id}: queued again for {', '.join(done)}")
            return
        n, left = ledger.retry_failed(configured=names, destination=destination, now=at, actor=who,
                                      reason="retry --all-failed")
        for name, rows in left.items():
            echo(f"note: left {rows} failed deliver{'y' if rows == 1 else 'ies'} to {name}: {name} is no longer in "
                 f"the config; put it back, or let them go: fapiao-agent drop-destination {name} --reason TEXT",
                 err=True)
        echo(f"{n} documents queued again" + (f" for {destination}" if destination else ""))


@click.command("requeue", epilog="""\b
Examples:
  fapiao-agent requeue 42                        deliver document 42 again
  fapiao-agent requeue 42 --destination erp      also when erp holds it under
                                                 the key it had before an amend, or
                                                 erp was added after it was delivered""")
@click.argument("ref")
@click.option("--destination", metavar="NAME", help="Only the delivery to this destination.")
@click.pass_context
def requeue_command(ctx: click.Context, ref: str, destination: str | None) -> None:
    """Deliver a document again: its delivered, missing or failed deliveries
    are queued afresh. Safe: the destination keeps one copy per invoice key.

    A delivery `superseded` by an amend (the destination holds the invoice
    under its old key) is sent again only with --destination naming it: the
    destination then holds it under both keys until the old copy is removed
    there (`status`, `show` name it; `forget-key` once it is gone).

    Only deliveries to destinations in the config are queued: one to a
    destination removed (or renamed) since is left, with a note saying so;
    `drop-destination NAME` lets such deliveries go. --destination naming a
    destination the document has no delivery to (one added to the config
    after it was delivered) sends it there too."""
    cfg = load(ctx)
    names = destination_names(cfg)
    _names(cfg, destination)
    from_states = ("delivered", "missing", "failed", "queued", "superseded")
    with open_ledger(cfg) as ledger:
        doc = _document(ledger, ref)
        rows = {d["destination"]: d for d in ledger.deliveries_of(doc.id)}
        named = rows.get(destination) if destination else None
        for d in rows.values():
            if d["state"] == "superseded" and d is not named:
                echo(f"note: {d['destination']} holds document {doc.id} under its old invoice key "
                           f"{d['delivered_key']} (superseded by an amend); only `requeue {doc.id} --destination "
                           f"{d['destination']}` sends it there again", err=True)
        if destination and named is None:
            # A destination configured after this document was delivered (or
            # went on its way before it was added): this is how it is sent
            # there (docs/operations.md, "Adding a destination").
            done = ledger.add_deliveries(doc.id, [destination], now=now(), actor=actor(),
                                         reason="sent to a destination it had no delivery to, by an operator")
            if not done:   # another command gave it one meanwhile
                fail(f"document {doc.id} has a delivery to {destination} now; run requeue again")
            echo(f"document {doc.id}: queued for {', '.join(done)} (it had no delivery there)")
            return
        if doc.state == "confirmed" and not (named and named["state"] in ("superseded", "dropped")):
            fail(f"document {doc.id} is confirmed at every destination it is due at; "
                 "run `reconcile` to check it again")
        done = ledger.requeue_deliveries(doc.id, from_states=from_states + ("dropped",), destination=destination,
                                         now=now(), actor=actor(), reason="requeued by an operator",
                                         configured=names)
        if destination is None:
            for line in _gone_notes(rows.values(), from_states, names):
                echo(line, err=True)
        if not done:
            fail(f"document {doc.id} ({doc.state}) has nothing to requeue"
                 + (f" for {destination}" if destination else ""))
        if named and named["state"] == "superseded":
            old = named["delivered_key"]
            echo(f"warning: {destination} holds document {doc.id} under invoice key {old}; it now gets it under "
                 f"{doc.invoice_key} too: remove the old copy there by hand, then `fapiao-agent forget-key {doc.id} "
                 f"--destination {destination} --key {old} --reason TEXT` (`status` and `show` name it until then)",
                 err=True)
        echo(f"document {doc.id}: queued again for {', '.join(done)}")


@click.command("reconcile", epilog="""\b
Examples:
  fapiao-agent reconcile                          every delivered invoice
  fapiao-agent reconcile --since 2026-03-01 --destination erp
  fapiao-agent reconcile --json | jq .summary
  fapiao-agent reconcile --csv --sort amount > reconcile.csv""")
@click.option("--since", metavar="DATE", help="Only invoices delivered on or after DATE (YYYY-MM-DD, UTC).")
@click.option("--destination", metavar="NAME", help="Only this destination.")
@click.option("--sort", type=click.Choice(["delivered", "date", "amount"]), default="delivered",
              show_default=True, help="Delivery order, newest invoice date, or largest amount first.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: checks (list) and summary.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV with a header row; the summary goes to stderr.")
@click.pass_context
def reconcile_command(ctx, since, destination, sort, as_json, as_csv) -> None:
    """Is every delivered invoice really in the finance system? Looks each one
    up at its destination: found ones become confirmed (the system's id is
    kept), absent ones missing, and are queued again when
    [delivery] requeue_missing is on. Ends with checked/confirmed/missing/requeued.
    Also a rejected invoice whose put was cut off (the daemon killed mid-put),
    once its lease has ended, whatever --since: landed (found there: delivered,
    `status` names it until removed there by hand and reconciled) or
    never_landed (not there: nothing to remove); in_flight while its lease is
    live (left as it is). And every old key a destination holds an invoice
    under (an amend changed its 号码 after it went there): found,
    `superseded` (named by `status`); gone, `forgotten`, a delivery
    superseded under it `missing`.
    Destinations in maintenance or paused are left out (with a note). Exits 1
    when a lookup failed (the row is left as it was)."""
    from agent.reconcile import ALL_STATES, reconcile

    if as_json and as_csv:   # as `search` and `audit export`: never one of them silently dropped
        fail("choose one of --json and --csv", code=2)
    cfg = load(ctx)
    since_dt = _since(since)
    names = _names(cfg, destination)
    with open_ledger(cfg) as ledger:
        dests = _callable_destinations(ledger, cfg, names)
        since_text = utc(since_dt) if since_dt else None
        total = sum(ledger.count_reconcile_candidates(states=ALL_STATES, destination=n, since=since_text)
                    + ledger.count_old_key_candidates(destination=n, since=since_text)
                    + ledger.count_stranded_rejected(destination=n) for n in dests)
        # Only for a person watching: piped output or --json gets no bar and no stray label.
        with Progress("reconciling", length=total, as_json=as_json) as bar:
            report = reconcile(ledger, dests, now=now_dt(), actor=actor(), since=since_dt, states=ALL_STATES,
                               requeue_missing=bool(cfg.delivery.get("requeue_missing", True)),
                               progress=lambda _c: bar.advance())
    checks = _sorted(report.checks, sort)
    summary = report.summary
    line = ", ".join(f"{k} {v}" for k, v in summary.items() if k in ("checked", "confirmed", "missing",
                                                                      "requeued") or v)
    if as_json:
        echo_json({"checks": [c.to_dict() for c in checks], "summary": summary})
    elif as_csv:
        from service.csv_safe import echo_csv   # only for --csv: `status` loads this module and writes none

        echo_csv((c.to_dict() for c in checks), RECONCILE_COLUMNS)
        echo(line, err=True)
    else:
        if checks:
            for row in table((c.to_dict() for c in checks), RECONCILE_TABLE):
                echo(row)
        echo(line)
    for c in checks:
        if c.result == "landed":   # a rejected invoice found there: only a person takes it back
            echo(f"warning: document {c.document_id} is rejected, but its put cut off landed at {c.destination}: "
                 "remove it there by hand, then run `fapiao-agent reconcile` again", err=True)
        elif c.result == "superseded":
            echo(f"warning: {c.destination} holds document {c.document_id} under an old invoice key, not its "
                 f"own ({c.key}; `fapiao-agent show {c.document_id}` names it): remove that copy there by hand, "
                 "then run `fapiao-agent reconcile` again", err=True)
        elif c.result == "forgotten":
            echo(f"note: {c.destination} no longer holds document {c.document_id} under its old key {c.key}: "
                 "forgotten", err=True)
    if summary["errors"]:
        sys.exit(1)


def _since(text: str | None) -> dt.datetime | None:
    # The day read exactly as `search --date` and `list --since` read one:
    # fromisoformat also took '' (as no filter), 20261205 and 2026-W49.
    from agent.search import BadSearch, parse_day

    if text is None:
        return None
    try:
        return dt.datetime.combine(parse_day(text), dt.time(), dt.timezone.utc)
    except BadSearch as e:
        fail(f"--since: {e}", code=2)


def _sorted(checks: list[Check], sort: str) -> list[Check]:
    if sort == "date":
        return sorted(checks, key=lambda c: (c.invoice_date or "", c.document_id), reverse=True)
    if sort == "amount":
        # Decimal, not float: past 2**53 cents two totals a float cannot tell apart.
        from decimal import Decimal

        return sorted(checks, key=lambda c: (Decimal(c.total) if c.total else Decimal(-1), c.document_id),
                      reverse=True)
    return checks


def _callable_destinations(ledger: Ledger, cfg, names: list[str]) -> dict:
    """Adapters for `names`, leaving out (with a note) any in maintenance or paused."""
    from agent.deliver import open_destination
    from agent.deliver.gate import Gate
    from agent.deliver.retry import DeliveryPolicy

    out = {}
    at = now_dt()
    for entry in cfg.destinations:
        if entry["name"] not in names:
            continue
        try:
            gate = Gate.from_health(ledger.destination_health(entry["name"]), DeliveryPolicy.from_config(entry))
            dest = open_destination(entry)
        except AgentError as e:
            fail(str(e), code=2)
        end = gate.maintenance_until(at)
        if end is not None:
            echo(f"note: {entry['name']} is in maintenance until {_local(end)}; not checked", err=True)
        elif gate.paused_error:
            echo(f"note: {entry['name']} is paused ({gate.paused_error}); not checked", err=True)
        else:
            out[entry["name"]] = dest
    return out


def _local(moment: dt.datetime) -> str:
    return local_time(moment, seconds=False)


extra_commands = (requeue_command, reconcile_command)
