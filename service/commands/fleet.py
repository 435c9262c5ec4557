"""`fleet status`, `fleet find`, `fleet repair`, `fleet epoch` and `fleet
acknowledge`: every site of the fleet, read from the shared store, and an
operator's way out of a claim or an epoch in doubt."""

from __future__ import annotations

import click

from agent.errors import AdapterError
from agent.fleet.repair import repair
from agent.fleet.status import find, read_sites
from agent.fleet.store import open_store
from agent.ledger.rows import as_stored
from service.context import actor, echo_json, fail, human_age, load, now_dt, open_ledger
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
        _epoch_note(store)
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
        held, doubt = ((s.get("fleet") or {}).get(k) for k in ("held_reason", "doubt"))
        notes.append(([f"  SAME NAME: {s['same_name']}"] if s.get("same_name") else [])
                     + ([f"  HELD: {held}"] if held else [])
                     + ([f"  CLAIMS MAY BE LOST: {doubt}; new claims there look up first"] if doubt else []))
    lines = table(rows, _TABLE)
    echo(lines[0])
    for line, extra in zip(lines[1:], notes):
        echo(line)
        for note in extra:
            echo(note)
    _epoch_note(store)


def _epoch_note(store) -> None:
    # Under the sites, indented as their notes: the store's epoch when it is
    # not one every site may trust (written as lost, not one a site writes,
    # not read). A trusted one is `fleet epoch`'s to show.
    from agent.fleet.epoch import read_head

    try:
        head, invalid = read_head(store)
    except AdapterError as e:
        echo(f"  fleet store epoch: not read: {e}")
        return
    if invalid or (head is not None and head.kind == "lost"):
        echo("  " + _epoch_text(head, invalid))


def _epoch_text(head, invalid: str | None) -> str:
    if head is None:
        return f"fleet store epoch: {invalid or 'none yet (the first site to claim makes one)'}"
    return (f"fleet store epoch: {head.named()}, {local_time(head.made_at)}"
            + (f": {head.why}" if head.why else "")
            + ("; every site looks up before it claims anew until `fapiao-agent fleet acknowledge`"
               if head.kind == "lost" else ""))


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


@command.command("epoch")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object: store (the store's epoch, or null), store_error, joined, doubt, doubt_since.")
@click.pass_context
def epoch_command(ctx: click.Context, as_json: bool) -> None:
    """The fleet store's epoch and what this site thinks of it: the epoch it
    joined, and its doubt that the store still holds the fleet's claims
    (docs/fleet.md, "When the store loses its claims"). Reads only. Exits
    0 while this site trusts the store, 1 while it doubts it, 2 when the
    store does not answer."""
    from agent.fleet.epoch import read_head

    cfg, store = _store(ctx)
    try:
        head, invalid = read_head(store)
    except AdapterError as e:
        fail(f"cannot read the fleet store: {e}", code=2)
    with open_ledger(cfg) as ledger:
        joined, doubt = ledger.fleet_epoch(), ledger.fleet_doubt()
    if as_json:
        echo_json({"store": head.as_dict() if head else None, "store_error": invalid, "joined": joined,
                   "doubt": doubt["why"] if doubt else None, "doubt_since": doubt["since"] if doubt else None})
    else:
        echo(_epoch_text(head, invalid))
        echo(f"this site joined: {joined['named']}, {local_time(joined['joined_at'])}" if joined
             else "this site joined: none yet (its fleet loop or first claim joins one)")
        if doubt:
            echo(f"DOUBT since {local_time(doubt['since'])}: the fleet store may have lost its claims: "
                 f"{doubt['why']}; every new claim here looks every destination up before any put")
    if doubt:
        ctx.exit(1)


@command.command("acknowledge", epilog="""\b
When does a site doubt the store? When the store's epoch (epoch/gen-*,
made once by the fleet's first site) is gone or another one (the bucket
emptied, made anew, [fleet] url moved without its objects), older than
the one it joined (restored from an older copy), or a claim it saw there
is gone (claims/ deleted or expiring). A site that finds it writes a
`lost` epoch, so every site doubts, also one that never saw the claims.
\b
While in doubt, every site claims invoices as if it took them over from a
site that may have delivered them: every destination is looked up before
any put (a look-up finds only what is still there: a folder whose importer
takes the files away, or a destination the other site does not deliver
to, shows nothing, and the invoice is put). `status`, `status --check`,
`fleet status` and the fleet-claims-lost notification say it.
\b
Before you acknowledge: find out what happened to the store (`fleet epoch`
says what was found; the store made again exactly what a copy of the
whole prefix holds, epoch/ too, ends the doubt at every site whose marks
the copy holds, without this command), and
tell finance which invoices may have gone twice meanwhile (`status` at
each site: CLAIMS LOST names those the site knew of). Then acknowledge at
ONE site; every other site follows at its next look (within
status_interval_s, 60 s), and claims go on as usual.
\b
Examples:
  fapiao-agent fleet epoch
  fapiao-agent fleet acknowledge --reason "bucket made anew after the NAS failure (CHG-2041)"
  fapiao-agent fleet acknowledge --reason "restored from Monday's copy" --json
\b
Exit status: 0 acknowledged; 1 nothing to acknowledge (this site trusts
the store's epoch); 2 the store did not answer or --reason is empty.""")
@click.option("--reason", required=True, help="Why the loss is acknowledged: kept in the store's epoch and in "
              "this site's audit trail with who ran the command.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object: acknowledged (true/false), epoch (the epoch trusted now), was (the doubt "
                   "acknowledged, or null).")
@click.pass_context
def acknowledge_command(ctx: click.Context, reason: str, as_json: bool) -> None:
    """Acknowledge that the fleet store may have lost its claims, so that
    every site claims invoices as usual again (no look-up before each first
    put). Writes the next generation of the store's epoch as `acknowledged`
    by you, with your reason."""
    from agent.fleet.trust import acknowledge_loss

    if not reason.strip():
        fail("--reason must say why: it goes into the store's epoch and the audit trail", code=2)
    cfg, store = _store(ctx)
    with open_ledger(cfg) as ledger:
        try:
            done = acknowledge_loss(ledger, store, site=cfg.fleet["site"], now=now_dt(), actor=actor(),
                                    reason=reason.strip())
        except AdapterError as e:
            fail(f"cannot acknowledge: {e}", code=2)
    rec = done["epoch"]
    if as_json:
        echo_json(done)
    elif done["acknowledged"]:
        echo(f"fleet store epoch generation {rec['generation']} written as acknowledged by {rec['actor']} "
             f"(was: {done['was']}); every site claims as usual again at its next look")
    else:
        echo(f"nothing to acknowledge: this site trusts the fleet store's epoch, generation {rec['generation']} "
             f"({rec['kind']}, site {rec['made_by']})")
    if not done["acknowledged"]:
        ctx.exit(1)
