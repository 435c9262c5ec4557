"""`show`: every field, arrival, delivery, claim, application and event of
a document, found by id, SHA-256 prefix or invoice number."""

from __future__ import annotations

import json

import click

from agent.errors import NotFoundInLedger
from agent.filenames import readable_path, readable_spelled
from agent.ledger.rejections import where_held
from service.context import echo_json, fail, load, open_ledger
from service.display import arrival_lines, local_time, problem_lines
from service.textsafe import echo


@click.command("show")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per matching document.")
@click.pass_context
def command(ctx, ref: str, as_json: bool) -> None:
    """Every field and the full history of a document, found by id, SHA-256
    prefix or invoice number: every document REF names in any of those
    readings (#ID: the id alone)."""
    cfg = load(ctx)
    with open_ledger(cfg) as ledger:
        try:
            docs = ledger.find(ref)
        except NotFoundInLedger as e:
            fail(str(e))
        for doc in docs:
            events = ledger.events(doc.id)
            detail = {**doc.to_dict(), "sources": [vars(s) for s in ledger.sources(doc.id)],
                      "events": [vars(e) for e in events],
                      "deliveries": ledger.deliveries_of(doc.id), **_duplicate_detail(ledger, doc, events),
                      # Every key each destination holds it under, old ones (an amend changed
                      # the 号码 since) to be removed there by hand.
                      "held_keys": ledger.held_keys(doc.id),
                      # A rejection takes nothing back: where it is all the same.
                      "rejected_yet_at": ledger.held_at(doc.id) if doc.state == "rejected" else [],
                      "fleet_claim": ledger.fleet_claim(doc.id),
                      "applications": [{k: a[k] for k in ("number", "kind", "state", "filer", "filed_at", "reason",
                                                          "decider", "decided_at", "decision_reason")}
                                       for a in ledger.applications_of(doc.id)],
                      "source_steps": [{k: a[k] for k in ("id", "path", "state", "outcome", "created_at", "updated_at")}
                                       for a in ledger.source_actions(doc.id)]}
            if as_json:
                echo_json(detail)
            else:
                _print_detail(detail)


def _claim_site(f: dict) -> str:
    # remote_site says another site's part in the claim: on one this site
    # won, the site it was taken over from; on one delivered here while the
    # store was unreachable, the site that had claimed it; on any other,
    # the site that holds it.
    if not f["remote_site"]:
        return ""
    site, at = f["remote_site"], local_time(f["remote_at"])
    if f["state"] == "won":
        return f": taken over from site {site} (its claim of {at})"
    if f["state"] == "delivered":
        return f": site {site} had claimed it at {at}"
    return f": held by site {site} since {at}"


def _print_detail(d: dict) -> None:
    echo(f"document {d['id']}  {d['state']}  sha256 {d['sha256']}  ({d['size']} bytes, {d['media_type']})")
    if d.get("fleet_claim"):
        f = d["fleet_claim"]
        echo(f"  fleet claim on {f['invoice_key']}: {f['state']}" + _claim_site(f)
             + (f" ({f['reason']})" if f["reason"] else ""))
    if d.get("rejected_yet_at"):
        echo(f"  REJECTED, yet at {where_held(d['rejected_yet_at'])}: a rejection takes nothing back; remove it "
             "there by hand (`fapiao-agent reconcile` then finds it gone)")
    if d["duplicate_of"]:
        t = d["duplicate_target"]
        echo(f"  duplicate of document {d['duplicate_of']} ({t['state']}, invoice key {t['invoice_key']})")
    if d.get("rejudged"):
        echo(f"  re-judged: {d['rejudged']}")
    fields = d["fields"] or {}
    sources = fields.get("sources", {})
    for name, value in fields.items():
        if name in ("sources", "problems", "items", "conflicts") or value in (None, [], {}):
            continue
        echo(f"  {name:<15} {value}" + (f"   [{sources[name]}]" if name in sources else ""))
    for line in problem_lines(d["problems"]):
        echo(line)
    echo("  arrivals:")
    for s in d["sources"]:
        # The path as people read it (a GBK folder as its Chinese), and when
        # that differs, the exact spelling the ledger matches on too: a GBK
        # name and the same name in UTF-8 must not look alike.
        where = s["original_path"] or s["original_name"]
        if s["original_path"] and (readable := readable_spelled(where)) != where:
            where = f"{readable}  (exactly {where})"
        echo(f"    {local_time(s['at'])}  {s['source_kind']}  {where}")
        for line in arrival_lines(s.get("details")):
            echo(f"      {line}")
    if d.get("source_steps"):
        echo("  source file, moved or deleted once read (the watch's `after`):")
        for a in d["source_steps"]:
            if a["state"] == "waiting":
                echo(f"    waiting since {local_time(a['created_at'])}: {readable_path(a['path'])}"
                     " (until every document it brought is read and the file is quiet)")
            else:
                echo(f"    {a['state']} {local_time(a['updated_at'])}: {readable_path(a['path'])}"
                     + (f": {a['outcome']}" if a["outcome"] else ""))
    if d["deliveries"]:
        echo("  deliveries:")
        for dl in d["deliveries"]:
            echo(f"    {dl['destination']}: {dl['state']}"
                       + (f" under key {dl['delivered_key']}" if dl.get("delivered_key") else "")
                       + (f", receipt {json.loads(dl['receipt']).get('remote_id') or '(no id)'}"
                          if dl.get("receipt") else "")
                       + f", {dl['attempts']} attempts"
                       + (f", next {local_time(dl['next_attempt_at'])}" if dl.get("next_attempt_at") else "")
                       + (f", last error: {dl['last_error']}" if dl.get("last_error") else ""))
            for line in _held_lines(d, dl):
                echo(f"      {line}")
            for a in dl.get("attempts_log", []):
                echo(f"      {local_time(a['at'])}  {a['outcome']}" + (f"  {a['error']}" if a["error"] else "")
                           + (f"  (next attempt {local_time(a['next_attempt_at'])})" if a.get("next_attempt_at") else ""))
    if d.get("applications"):
        echo("  补录 applications (`requests show NUMBER`):")
        for a in d["applications"]:
            echo(f"    {a['number']}  {a['kind']:<7} {a['state']:<9} filed by {a['filer']}: {a['reason']}"
                 + (f"; {a['state']} by {a['decider']}" if a["decider"] else ""))
    echo("  history:")
    for e in d["events"]:
        move = f"{e['from_state'] or ''} -> {e['to_state']}" if e["to_state"] else "note"
        echo(f"    {local_time(e['at'])}  {e['actor']:<18} {move:<26} {e['reason'] or ''}")


def _held_lines(d: dict, dl: dict) -> list[str]:
    """For one delivery: the keys its destination holds the document under
    beside its current one, each old key with what to do (agent/ledger/
    held_keys.py). Nothing when it holds it under the one key its row says."""
    name = dl["destination"]
    held = [h for h in d.get("held_keys") or () if h["destination"] == name]
    old = [h for h in held if h["old"]]
    if not old:
        return []
    own = d["invoice_key"]
    lines = [f"held there under: {', '.join(h['key'] + (' (OLD)' if h['old'] else ' (its key)') for h in held)}"
             + ("" if any(not h["old"] for h in held) else f"; not under its key {own or '(none)'}")]
    for h in old:
        lines.append(f"OLD KEY {h['key']} held there since {local_time(h['since'])}"
                     + (f", last seen {local_time(h['seen_at'])}" if h["seen_at"] != h["since"] else "")
                     + f": remove that copy at {name} by hand, then `fapiao-agent forget-key {d['id']} --destination "
                     f"{name} --key {h['key']} --reason TEXT` (`fapiao-agent reconcile` finds it gone too)")
    return lines


def _duplicate_detail(ledger, doc, events: list) -> dict:
    """What `show` adds for a duplicate's target and a re-judgement: the
    target's id, state and key, and the reason of the last re-judgement
    (from `events`, the document's own, already read)."""
    out: dict = {}
    if doc.duplicate_of is not None:
        target = ledger.get(doc.duplicate_of)
        out["duplicate_target"] = {"id": target.id, "state": target.state, "invoice_key": target.invoice_key}
    why = [e.details["rejudged"] for e in events
           if isinstance(e.details, dict) and e.details.get("rejudged")]
    if why:
        out["rejudged"] = why[-1]
    return out
