"""`fapiao-agent drop-destination`: let go of the deliveries still waiting
for a destination removed from the config on purpose (or renamed), which no
loop will ever send."""

from __future__ import annotations

import click

from service.context import actor, destination_names, echo_json, fail, load, now, open_ledger
from service.textsafe import echo


@click.command("drop-destination", epilog="""\b
Examples:
  fapiao-agent status                 "… wait for destination old-erp, which the
                                      config no longer has"
  fapiao-agent drop-destination old-erp --reason "ERP retired (CHG-1234)"
  fapiao-agent drop-destination fin --reason "renamed to finance" --json
\b
First remove the destination from the config and reload the daemon
(`systemctl reload fapiao-agent`): a destination still configured is
refused. To keep delivering there, put it back in the config instead: its
deliveries go on where they stopped. To stop one invoice, `reject` it.
\b
For each document with an open delivery to NAME (queued, failed, missing,
refused, or being sent with its lease ended), in one transaction each:
  - the delivery becomes `dropped` (kept, with this reason, in `show`);
    it is never sent; delivered and confirmed ones are history and stay;
  - the document follows the deliveries it has left (delivered, queued …);
    one whose every delivery was to NAME (a renamed destination) is queued
    for the destinations configured now, as a new invoice is;
  - one a person holds (quarantined, rejected, held for 补录) keeps its
    state: decide it with accept, amend or reject;
  - one being sent to NAME right now is left: run the command again later.
Queueing it again once NAME is configured again (amend, or
`requeue ID --destination NAME`) brings a dropped delivery back.
\b
Exit status: 0 done (also: nothing was waiting for NAME); 1 some document
was left; 2 bad input (NAME is configured, or no reason).""")
@click.argument("name", metavar="NAME")
@click.option("--reason", required=True, help="Why the deliveries to NAME are let go; kept with each of them "
              "and in the audit trail.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per document per line: document_id, state_before, state, dropped (the "
                   "deliveries' states), queued_for, left (why it was left, else null).")
@click.pass_context
def command(ctx: click.Context, name: str, reason: str, as_json: bool) -> None:
    """Let go of the deliveries waiting for NAME, a destination no longer in
    the config: they are never sent, and each document they held back goes
    on with its other destinations. `status` and `audit ledger` name such a
    destination ("which the config no longer has")."""
    cfg = load(ctx)
    names = destination_names(cfg)
    if name in names:
        fail(f"{name} is in the config: only the deliveries of a destination removed from it can be let go "
             f"(remove it and reload the daemon first; to stop one invoice, reject it)", code=2)
    if not reason.strip():
        fail("--reason must say why: it goes into the audit trail", code=2)
    with open_ledger(cfg) as ledger:
        waiting = ledger.open_rows_by_destination()
        results = ledger.drop_deliveries(name, configured=names, now=now(), actor=actor(), reason=reason.strip())
    for r in results:
        if as_json:
            echo_json(r)
        elif r["left"]:
            echo(f"document {r['document_id']} ({r['state']}): left: {r['left']}")
        else:
            moved = f"{r['state_before']} -> {r['state']}" if r["state"] != r["state_before"] else f"stays {r['state']}"
            echo(f"document {r['document_id']}: {name} ({', '.join(r['dropped'])}) let go; {moved}"
                 + (f", queued for {', '.join(r['queued_for'])}" if r["queued_for"] else ""))
    left = sum(1 for r in results if r["left"])
    if not results:
        others = ", ".join(f"{n} ({k})" for n, k in waiting.items() if n not in names)
        echo(f"nothing waits for {name}" + (f"; destinations not configured with deliveries waiting: {others}"
                                            if others else ""), err=True)
        return
    echo(f"{len(results) - left} documents: deliveries to {name} let go"
         + (f"; {left} left (see above)" if left else ""), err=True)
    if left:
        raise SystemExit(1)
