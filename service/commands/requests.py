"""`fapiao-agent requests`, `approve`, `decline`: 补录 applications by number."""

from __future__ import annotations

import click

from agent import application_rules as rules
from agent import applications as apps
from agent.errors import AgentError
from agent.ledger import Ledger
from agent.ledger.applications import APPLICATION_STATES
from service.commands.quarantine import act
from service import access
from service.context import (LIMIT, age_seconds, destination_names, echo_json, fail, human_age, load, now, now_dt,
                             open_ledger, operator, today, validation_settings)
from service.display import Column, local_time, table
from service.textsafe import echo

_STATE_CHOICE = click.Choice([*APPLICATION_STATES, "all"])


def summary(app: dict, at) -> dict:
    """One application as `requests --json` prints it."""
    keys = ("number", "state", "kind", "document_id", "invoice_number", "filer", "filed_by", "filed_at",
            "approval", "reason", "changes", "decided_at", "decided_by", "decider", "decision_reason", "outcome")
    return {**{k: app.get(k) for k in keys}, "age_s": age_seconds(app["filed_at"], at)}


_TABLE = (Column("state", "state"), Column("number", "number"), Column("document_id", "document", ">"),
          Column("kind", "kind"), Column("filer", "filer"), Column("age", "age", ">"),
          Column("what", "changes or reason"))


def _listing(state: str, limit: int, as_json: bool) -> None:
    cfg = load(click.get_current_context())
    with open_ledger(cfg) as ledger:
        rows = ledger.list_applications(state=None if state == "all" else state, limit=limit or None)
    at = now_dt()
    shown = []
    for app in rows:
        row = summary(app, at)
        if as_json:
            echo_json(row)
            continue
        changed = ", ".join(f"{n} ({c['kind']})" for n, c in (row["changes"] or {}).items())
        shown.append({**row, "age": human_age(row["age_s"]), "what": changed or row["reason"]})
    if shown:
        for line in table(shown, _TABLE):
            echo(line)
    if not rows and not as_json:
        echo(f"no {'' if state == 'all' else state + ' '}applications", err=True)


_LIST_OPTIONS = (
    click.option("--state", type=_STATE_CHOICE, default="all", show_default=True,
                 help="Only applications in this state."),
    click.option("--limit", type=LIMIT, default=50, show_default=True,
                 help="At most this many, newest first (0: all)."),
    click.option("--json", "as_json", is_flag=True,
                 help="One JSON object per application per line: number, state, kind, document_id, "
                      "invoice_number, filer, filed_by, filed_at, age_s, approval (self | other), reason, "
                      "changes {field: {old, old_source, new, kind, carried}}, decided_at, decided_by, "
                      "decider, decision_reason, outcome."),
)


def _with_list_options(fn):
    for option in reversed(_LIST_OPTIONS):
        fn = option(fn)
    return fn


@click.group("requests", invoke_without_command=True, epilog="""\b
Examples:
  fapiao-agent requests --state pending          what waits for an approver
  fapiao-agent requests show BL-20261203-0007    the whole story of one
  fapiao-agent approve BL-20261203-0007 --reason "matches the paper copy"
  fapiao-agent decline BL-20261203-0007 --reason "the QR is right"
  fapiao-agent requests --json | jq -r 'select(.state=="pending") | .number'""")
@_with_list_options
@click.pass_context
def command(ctx: click.Context, state: str, limit: int, as_json: bool) -> None:
    """List 补录 applications: state, number, document, kind, filer, age.

    Every amend, accept, reject and reopen is an application numbered
    BL-YYYYMMDD-NNNN (filing date in China, then the day's sequence).
    `pending` ones wait for an approver other than their filer, and hold
    their document in quarantine meanwhile.
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_command, state=state, limit=limit, as_json=as_json)


@command.command("list")
@_with_list_options
def list_command(state: str, limit: int, as_json: bool) -> None:
    """List 补录 applications (the same as `requests` alone)."""
    _listing(state, limit, as_json)


@command.command("show")
@click.argument("number")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: the application (as in `requests "
              "--json`), the document (id, state, invoice_number) and its events carrying the number.")
@click.pass_context
def show_command(ctx: click.Context, number: str, as_json: bool) -> None:
    """The whole story of one application: the values before and after, who
    filed it and why, who decided and why, and every event carrying its number."""
    cfg = load(ctx)
    with open_ledger(cfg) as ledger:
        app = _application(ledger, number)
        doc = ledger.get(app["document_id"])
        events = ledger.application_events(app["number"], doc.id)
    story = {**summary(app, now_dt()), "document": {"id": doc.id, "state": doc.state,
                                                    "invoice_number": doc.invoice_number},
             "events": events}
    if as_json:
        echo_json(story)
        return
    echo(f"{story['number']}  {story['kind']}  {story['state'].upper()}")
    echo(f"document  {doc.id} (invoice {doc.invoice_number or '-'}, now {doc.state})")
    echo(f"filed     {local_time(story['filed_at'])} by {story['filed_by']} ({human_age(story['age_s'])} ago)")
    echo(f"reason    {story['reason']}")
    for name, c in (story["changes"] or {}).items():
        carried = "".join(f"; {rules.SOURCE_NAMES.get(s, s)} says {v}" for s, v in c["carried"].items())
        echo(f"change    {name}: {c['old'] if c['old'] is not None else '(none)'}"
             + (f" [{c['old_source']}]" if c["old_source"] else "")
             + f" -> {c['new'] if c['new'] is not None else '(none)'}  ({c['kind']}{carried})")
    if story["state"] == "pending":
        needs = rules.needs_why(app) if app["approval"] == apps.OTHER else "its filer"
        echo(f"decision  pending: an approver other than {story['filer']} decides ({needs})")
    else:
        echo(f"decision  {story['state']} by {story['decided_by']} at {local_time(story['decided_at'])}"
             + (f": {story['decision_reason']}" if story["decision_reason"] else ""))
        echo(f"outcome   document {doc.id} {story['outcome'] or '-'}")
    echo("events:")
    for e in events:
        move = f"{e['from_state'] or ''} -> {e['to_state']}" if e["to_state"] else "note"
        echo(f"  {local_time(e['at'])}  {e['actor']:<18} {move:<26} {e['reason'] or ''}")


@click.command("approve", epilog="""\b
Examples:
  fapiao-agent approve BL-20261203-0007
  fapiao-agent approve BL-20261203-0007 --reason "checked against the paper copy"
\b
Exit status: 0 approved; 1 approved but the document still fails
validation (it stays quarantined), or refused as stale or decided; 3 it
needs an approver other than you.""")
@click.argument("number")
@click.option("--reason", default=None, help="Why, for the audit trail (optional).")
@click.pass_context
def approve_command(ctx: click.Context, number: str, reason: str | None) -> None:
    """Approve a pending 补录 application and carry it out.

    Its values are recorded (source `manual`), the document is validated
    again and queued when it passes. A change to what the QR code, the 数电
    XML or the OFD carried needs an approver other than its filer (four
    eyes), root and the service user included. An application whose
    document changed since it was filed, or that was decided already, is
    refused: decline it, and file again if the document still takes a 补录
    (a superseded one, its file read whole since, takes none).
    """
    cfg = load(ctx)
    with open_ledger(cfg) as ledger:
        app = _application(ledger, number)
        _, after = act(ledger, ledger.get(app["document_id"]), lambda who: apps.approve(
            ledger, app["number"], reason=reason, settings=validation_settings(cfg),
            destinations=destination_names(cfg), today=today(), now=now(), decider=who, time_text=local_time))
    if after.state == "quarantined":
        raise SystemExit(1)


@click.command("decline", epilog="""\b
Example:
  fapiao-agent decline BL-20261203-0007 --reason "the QR code is right; the scan was misread"
""")
@click.argument("number")
@click.option("--reason", required=True, help="Why not; kept with the application and in the audit trail.")
@click.pass_context
def decline_command(ctx: click.Context, number: str, reason: str) -> None:
    """Decline a pending 补录 application: its values are not applied.

    The document is validated again with the values it has: queued when it
    passes, quarantined again with its reasons when not. A member of
    approve_group declines any; its filer may decline (withdraw) their own
    with amend_group alone.
    """
    cfg = load(ctx)
    with open_ledger(cfg) as ledger:
        app = _application(ledger, number)
        _may_decline(cfg, app)
        act(ledger, ledger.get(app["document_id"]), lambda who: apps.decline(
            ledger, app["number"], reason=reason, settings=validation_settings(cfg),
            destinations=destination_names(cfg), today=today(), now=now(), decider=who, time_text=local_time))


def _may_decline(cfg, app: dict) -> None:
    # The command's role (access.DECLINE) lets amend_group in for one thing:
    # its filer withdrawing their own application. Anyone else's needs an approver.
    if operator().person == app["filer"]:
        return
    try:
        access.check(access.APPROVE, cfg.access, access.identity(cfg.access["service_user"]))
    except access.AccessDenied as e:
        fail(f"{e}: {app['number']} was filed by {app['filer']}, and only its filer may withdraw it "
             "without that group", code=access.DENIED_EXIT)


def _application(ledger: Ledger, number: str) -> dict:
    try:
        return ledger.application(number)
    except AgentError as e:
        fail(str(e))


extra_commands = (approve_command, decline_command)
