"""`fleet status` and `fleet find`: every site of the fleet, read from the shared store."""

from __future__ import annotations

import click

from agent.errors import AdapterError
from agent.fleet.repair import repair
from agent.fleet.status import find, read_sites
from agent.fleet.store import open_store
from agent.ledger.rows import as_stored
from service.context import echo_json, fail, human_age, load, now_dt
from service.display import Column, local_time, table
from service.textsafe import echo


def _store(ctx: click.Context):
    cfg = load(ctx)
    if not cfg.fleet.get("url"):
        fail("no [fleet] url is configured: this agent is not part of a fleet", code=2)
    return cfg, open_store(cfg.fleet)


@click.group("fleet")
def command() -> None:
    """Several sites sharing one store: every site's status, and who holds an invoice."""


@command.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON list: each site's status.json with age_s and stale.")
@click.pass_context
def status_command(ctx: click.Context, as_json: bool) -> None:
    """One line per site from its last status.json; STALE when it is older
    than three of its intervals (the site is down or cannot reach the store)."""
    cfg, store = _store(ctx)
    try:
        sites = read_sites(store, now=now_dt())
    except AdapterError as e:
        fail(f"cannot read the fleet store: {e}", code=2)
    if as_json:
        echo_json(sites)
        return
    if not sites:
        echo("no site has published its status yet")
        return
    rows, notes = [], []
    for s in sites:
        if s.get("error"):
            rows.append({"site": s["site"], "seen": "STALE", "health": s["error"]})
            notes.append([])
            continue
        st = s.get("states") or {}
        health = ((s.get("health") or {}).get("summary") or "?").split(":")[0].split(" ")[0]
        rows.append({
            "site": s["site"] + (" (here)" if s["site"] == cfg.fleet["site"] else ""),
            "seen": (human_age(s["age_s"]) if s["age_s"] >= 0 else f"{human_age(-s['age_s'])} ahead")
                    + (" STALE" if s["stale"] else ""),
            "written": local_time(s.get("written_at"), seconds=False), "health": health,
            "queued": st.get("queued", 0) + st.get("delivering", 0), "failed": st.get("failed", 0),
            "quarantined": st.get("quarantined", 0), "delivered": st.get("delivered", 0) + st.get("confirmed", 0),
            "oldest": human_age(s.get("oldest_unfinished_age_s")),
            "backlog": sum(t.get("backlog") or 0 for t in (s.get("backup") or {}).get("targets") or [])})
        held = (s.get("fleet") or {}).get("held_reason")
        notes.append(([f"  SAME NAME: {s['same_name']}"] if s.get("same_name") else [])
                     + ([f"  HELD: {held}"] if held else []))
    lines = table(rows, _TABLE)
    echo(lines[0])
    for line, extra in zip(lines[1:], notes):
        echo(line)
        for note in extra:
            echo(note)


_TABLE = (Column("site", "site"), Column("seen", "seen", ">"), Column("written", "written (local)"),
          Column("health", "health"), Column("queued", "queued", ">"), Column("failed", "failed", ">"),
          Column("quarantined", "quarant.", ">"), Column("delivered", "delivered", ">"),
          Column("oldest", "oldest unfinished"), Column("backlog", "backup backlog", ">"))


@command.command("find")
@click.argument("number")
@click.option("--json", "as_json", is_flag=True, help="One JSON list of claims.")
@click.pass_context
def find_command(ctx: click.Context, number: str, as_json: bool) -> None:
    """Which site holds invoice NUMBER (号码, 代码-号码 or 数电 number) and in what state."""
    _cfg, store = _store(ctx)
    try:
        found = find(store, number.strip(), now=now_dt())
    except AdapterError as e:
        fail(f"cannot read the fleet store: {e}", code=2)
    if as_json:
        echo_json(found)
        return
    if not found:
        fail(f"no site of the fleet has claimed invoice {number}", code=1)
    for f in found:
        if f.get("error"):
            echo(f"{f['invoice_key']}: {f['error']}")
            continue
        echo(f"{f['invoice_key']}: site {f['site']}, {f['state']} (claimed {local_time(f['claimed_at'])}, "
             f"document {f['document_id']} there" + (f", lease until {local_time(f['lease_until'])}"
                                                   if f["state"] == "claimed" else "") + ")")


@command.command("repair")
@click.argument("invoice_key")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: what was done.")
@click.option("--force", is_flag=True,
              help="Also release a valid `delivered` claim (a forged one, or a site that never delivered): "
                   "the next claimer looks every destination up first. Never a live claim.")
@click.pass_context
def repair_command(ctx: click.Context, invoice_key: str, as_json: bool, force: bool) -> None:
    """Let an invoice whose fleet claim is invalid go again (docs/fleet.md,
    "Invalid claims"): the invalid object stays as evidence; the next
    generation restores a live or delivered claim hidden under it, else says
    `released`, and the next site to claim the key looks every destination
    up before any put. Exits 0 when repaired, 1 when the
    claim was valid (nothing done), 2 when the store refused."""
    cfg, store = _store(ctx)
    try:
        done = repair(store, invoice_key.strip(), site=cfg.fleet["site"], now=now_dt(), force=force,
                      time_text=as_stored if as_json else local_time)
    except AdapterError as e:
        fail(f"cannot repair the claim on {invoice_key}: {e}", code=2)
    if as_json:
        echo_json(done)
    elif done["repaired"] and done.get("restored"):
        echo(f"{done['invoice_key']}: generation {done['generation']} restores site {done['restored']}'s claim "
             f"hidden under it (was: {done['why']}); that site goes on, the others wait for it")
    elif done["repaired"]:
        echo(f"{done['invoice_key']}: generation {done['generation']} written as released by the operator "
             f"(was: {done['why']}); the next site to claim it looks every destination up first")
    else:
        echo(f"{done['invoice_key']}: nothing to repair: {done['why']}")
    if not done["repaired"]:
        ctx.exit(1)
