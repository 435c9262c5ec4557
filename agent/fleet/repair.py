"""`fleet repair KEY`: the way out for a key whose claim is invalid (or, with
force, a valid `delivered` claim nobody can vouch for). Pure logic over a
FleetStore, `now` passed in; the claim scheme is agent/fleet/claims.py's."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from agent.errors import Conflict
from agent.fleet.claims import (CLAIM_MAX_BYTES, OPERATOR, ClaimRecord, InvalidClaim, _next, _stamp,
                                claim_prefix, generations, head)
from agent.fleet.store import FleetStore, TooLarge
from agent.ledger.rows import TimeText, as_stored


def _last_valid(store: FleetStore, invoice_key: str, gens: list[int], *, now: dt.datetime) -> ClaimRecord | None:
    # The highest generation below the invalid head that is a claim a site
    # writes (what the garbage hides), or None.
    prefix = claim_prefix(invoice_key)
    for g in reversed(gens[:-1]):
        try:
            got = store.read(f"{prefix}gen-{g:08d}", max_bytes=CLAIM_MAX_BYTES)
            if got is not None:
                return ClaimRecord.from_bytes(g, got[0], now=now)
        except (InvalidClaim, TooLarge):
            continue
    return None


def repair(store: FleetStore, invoice_key: str, *, site: str, now: dt.datetime, force: bool = False,
           time_text: TimeText = as_stored) -> dict:
    """What `fleet repair KEY` does, by the documented rule: when the key's
    head is invalid, create the next generation, leaving the invalid object
    where it is (evidence). When the highest valid generation below it is a
    live claim (`claimed`, lease not run out) or `delivered`, the next
    generation restores it as it was (same site, holder, lease, state): its
    holder may be putting the invoice right now, or has put it, and a
    `released` would let another site put it again before that put lands.
    Otherwise the next generation is `released` by the operator at `site`,
    and the next site to claim the key takes it over as it would from a
    site that let it go: looking every destination up before any put.
    A valid head is left alone, but with `force` a valid `delivered` head
    is released by the operator the same way (a forged "delivered" in a
    valid shape, or a site that never did deliver, otherwise leaves every
    copy a duplicate for ever; the taker's look-up finds a real delivery);
    a live `claimed` head is never forced (its holder may be putting it:
    its lease ends within MAX_LEASE_S). Returns {"invoice_key", "repaired", "why",
    "generation", "restored"} (`restored`: the site whose claim was put
    back, or None); raises InvalidClaim when no generation is left above the
    invalid one (delete it by hand), Conflict when a site wrote the next
    generation meanwhile (run it again), Transient/Permanent when the store
    does not answer. Leases are judged by the store's clock when it gives
    one (the operator's host may be off: a live lease must not look run out).
    A claim's time in `why` is written by `time_text` (the command passes
    local time for a person)."""
    generations(store, invoice_key)
    now = store.server_time() or now
    try:
        current = head(store, invoice_key, now=now)
    except InvalidClaim as e:
        why = str(e)
    else:
        if not (force and current is not None and current.state == "delivered"):
            return {"invoice_key": invoice_key, "repaired": False,
                    "generation": current.generation if current else None, "restored": None,
                    "why": f"its claim is valid ({current.state} by site {current.site}"
                           + (f", lease until {time_text(current.lease_until)}: never forced while it lives"
                              if force and current.state == "claimed" else "") + ")"
                    if current else "it is not claimed"}
        record = ClaimRecord(current.generation + 1, site, "", 0, _stamp(now), _stamp(now), "released", OPERATOR)
        if not _next(store, invoice_key, record):
            raise Conflict(f"fleet store: generation {record.generation} of {invoice_key} was written meanwhile; "
                           "run the repair again")
        return {"invoice_key": invoice_key, "repaired": True, "generation": record.generation, "restored": None,
                "why": f"forced over site {current.site}'s delivered claim of {time_text(current.at)}"}
    gens = generations(store, invoice_key)
    top = (gens[-1] if gens else 0) + 1
    below = _last_valid(store, invoice_key, gens, now=now)
    if below is not None and (below.state == "delivered" or (below.state == "claimed" and not below.expired(now))):
        record = replace(below, generation=top)
    else:
        below = None
        record = ClaimRecord(top, site, "", 0, _stamp(now), _stamp(now), "released", OPERATOR)
    if not _next(store, invoice_key, record):
        raise Conflict(f"fleet store: generation {record.generation} of {invoice_key} was written meanwhile; "
                       "run the repair again")
    return {"invoice_key": invoice_key, "repaired": True, "generation": record.generation, "why": why,
            "restored": below.site if below else None}
