"""`fapiao-agent forget-key`: a person says a destination no longer holds a
document under an old key (the copy under a wrong 号码 removed there by
hand), so `status`, `show` and the `held-under-old-key` alert stop naming it."""

from __future__ import annotations

import click

from agent.errors import AgentError
from service.context import actor, echo_json, fail, load, now, open_ledger
from service.display import local_time
from service.textsafe import echo


@click.command("forget-key", epilog="""\b
When: an amend corrected an invoice's 代码/号码 after a destination got it,
so the destination holds it under the OLD key (and, once `requeue ID
--destination NAME` sent it again, under the new one too). `status` counts
such documents (OLD KEYS), `show ID` lists each old key per destination,
`status --check` warns and a [[notify]] entry asking for held-under-old-key
is told. Remove the old copy at the destination by hand first, then:
\b
  fapiao-agent show 42                     "held there under old key 2511… : remove it there …"
  fapiao-agent forget-key 42 --destination erp --key 25110000000012345678 \\
      --reason "old copy deleted in the ERP (ticket FIN-88)"
\b
`fapiao-agent reconcile` does the same by itself where the destination can
look a key up: it looks each old key up and forgets the ones gone there.
\b
What it does, in one transaction with an event naming you and the reason:
  - the key is no longer listed as held at NAME;
  - a delivery `superseded` under it becomes `missing`: NAME holds nothing
    of the invoice now (`fapiao-agent requeue ID` sends it under its key;
    a rejected invoice is never sent);
  - a delivery requeued after it went out under that key forgets it.
Refused (nothing changes): a key the ledger does not list as held at NAME,
and the key a delivered or confirmed delivery there stands for (removed
there, `reconcile` finds that one gone). Running it again for a key already
forgotten changes nothing and says when it was forgotten, and by whom.
\b
Exit status: 0 forgotten (or already forgotten); 1 refused; 2 bad input.""")
@click.argument("ref")
@click.option("--destination", metavar="NAME", required=True,
              help="The destination the old copy was removed from (configured or not).")
@click.option("--key", "key", metavar="KEY", required=True,
              help="The key it was held under there, as `show ID` lists it (an invoice's 代码+号码, or its 数电 号码).")
@click.option("--reason", required=True, help="What was done there (who removed it, a ticket); kept in the "
              "audit trail.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: document_id, destination, key, forgotten "
              "(true: now; false: already), already ({at, actor, by, why} of the earlier forgetting, else null), "
              "row_state (the delivery's state after), held (the keys still held there).")
@click.pass_context
def command(ctx: click.Context, ref: str, destination: str, key: str, reason: str, as_json: bool) -> None:
    """Say that destination NAME no longer holds document REF under KEY, an
    old key of it, after the copy there was removed by hand. REF is a
    document id, SHA-256 prefix or invoice number (#ID: the id alone)."""
    from agent.amend import resolve
    from agent.ledger.held_keys import KeyNotHeld

    if not reason.strip():
        fail("--reason must say what was done at the destination: it goes into the audit trail", code=2)
    if not key.strip() or not destination.strip():
        fail("--key and --destination must name the key and the destination (`fapiao-agent show ID` lists them)",
             code=2)
    cfg = load(ctx)
    with open_ledger(cfg) as ledger:
        try:
            doc = resolve(ledger, ref)
            out = ledger.forget_held_key(doc.id, destination, key.strip(), now=now(), actor=actor(),
                                         reason=reason.strip())
        except KeyNotHeld as e:
            fail(str(e))
        except AgentError as e:
            fail(str(e))
    if as_json:
        echo_json(out)
        return
    if not out["forgotten"]:
        a = out["already"]
        who = f" by {a['actor']}" if a.get("actor") else f" by {a['by']}" if a.get("by") else ""
        echo(f"document {doc.id}: {destination} was no longer listed as holding it under key {key} already "
             f"(since {local_time(a['at'])}{who}" + (f": {a['why']}" if a.get("why") else "") + "); nothing changed")
        return
    echo(f"document {doc.id}: {destination} no longer listed as holding it under key {key}")
    if out["held"]:
        echo(f"  still held there under {', '.join(out['held'])} (`fapiao-agent show {doc.id}`)")
    elif out["row_state"] == "missing" and doc.state != "rejected":
        echo(f"  {destination} holds nothing of it now (its delivery there is missing): "
             f"`fapiao-agent requeue {doc.id} --destination {destination}` sends it under {doc.invoice_key}")
