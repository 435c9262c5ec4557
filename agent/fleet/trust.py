"""Whether this site trusts the fleet store to still hold the fleet's claims:
the store's epoch and this site's marks (agent/fleet/epoch.py), with what the
ledger keeps of them (the epoch joined, the doubt and since when).

While the site doubts the store, every claim it makes from nothing (a key
with no claim in the store) is delivered as a takeover is: every
destination looked up before any put (gate.check marks the claim row's
reason with DOUBTED). Until an operator acknowledges (`fleet acknowledge`,
`acknowledge_loss`), which every site follows at its next look.

Pure: the ledger, the store and `now` come from the caller; no threads, no sleeps.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from agent.fleet.epoch import ContendedEpoch, EpochRecord, Finding, acknowledge, examine, quick
from agent.fleet.store import FleetStore
from agent.ledger import Ledger
from agent.ledger.rows import utc

# How a claim row's reason begins when the key was claimed from nothing while
# this site doubted the store: its put looks every destination up first.
DOUBTED = "the fleet store may have lost its claims: "


def _kept(rec: EpochRecord, etag: str) -> dict[str, Any]:
    # What the ledger keeps of the epoch joined.
    return {"generation": rec.generation, "epoch": rec.epoch, "etag": etag, "named": rec.named(),
            "kind": rec.kind, "made_by": rec.made_by}


def _settle(ledger: Ledger, found: Finding, *, now: dt.datetime, actor: str) -> str | None:
    # The ledger follows what `examine` found; the doubt's reason, or None.
    at = utc(now)
    if not found.trusted:
        ledger.doubt_fleet_store(found.why or "?", now=at, actor=actor)
        return found.why
    rec = found.epoch
    why = ("the fleet's first epoch, made here" if found.wrote is not None else
           f"acknowledged by {rec.actor} at site {rec.made_by}: {rec.why}" if rec.kind == "acknowledged" else
           f"the fleet's epoch, made by site {rec.made_by}")
    ledger.join_fleet_epoch(_kept(rec, found.etag), now=at, actor=actor, reason=why)
    return None


def doubt(ledger: Ledger, store: FleetStore, *, site: str, now: dt.datetime, actor: str,
          oldest_mark: bool = False) -> str | None:
    """None when this site trusts the store: the epoch it joined is still
    the store's head (one LIST, its ETag) and its newest mark (with
    `oldest_mark` also its oldest: an expiry rule takes the old claims
    first) is still there; or, after a closer look (`epoch.examine`), it
    joined a new fleet's epoch or an acknowledged one. Else why it doubts,
    recorded in the ledger with an event when the doubt begins (and a
    `lost` generation written in the store for the other sites, unless the
    head is one). Raises Transient/Permanent when the store does not answer
    (the caller decides: nothing is recorded)."""
    joined = ledger.fleet_epoch()
    marks = ledger.fleet_marks(since=joined["joined_at"], oldest=oldest_mark) if joined else []
    if ledger.fleet_doubt() is None and quick(store, joined, marks):
        return None
    found = examine(store, joined, marks, site=site, holder=ledger.fleet_holder(now=utc(now)), now=now)
    return _settle(ledger, found, now=now, actor=actor)


def acknowledge_loss(ledger: Ledger, store: FleetStore, *, site: str, now: dt.datetime, actor: str,
                     reason: str) -> dict[str, Any]:
    """`fleet acknowledge`: when this site doubts the store (looked at
    closely, now), the next epoch generation is written `acknowledged` by
    `actor` for `reason`, and this site joins it (a document-less event
    with the actor and reason); every other site joins it at its next look.
    Returns {"acknowledged": bool, "epoch": the epoch trusted now (its
    stored fields), "was": the doubt acknowledged, or None when there was
    none (nothing written)}. Raises Transient/Permanent when the store
    does not answer, ContendedEpoch when writers keep racing."""
    for _ in range(3):
        joined = ledger.fleet_epoch()
        marks = ledger.fleet_marks(since=joined["joined_at"]) if joined else []
        found = examine(store, joined, marks, site=site, holder=ledger.fleet_holder(now=utc(now)), now=now)
        if found.trusted:
            _settle(ledger, found, now=now, actor=actor)
            return {"acknowledged": False, "epoch": found.epoch.as_dict(), "was": None}
        done = acknowledge(store, found, site=site, holder=ledger.fleet_holder(now=utc(now)), actor=actor,
                           reason=reason, now=now)
        if done is None:
            continue          # another generation meanwhile: look again
        rec, etag = done
        ledger.join_fleet_epoch(_kept(rec, etag), now=utc(now), actor=actor,
                                reason=f"acknowledged here by {actor}: {reason}")
        return {"acknowledged": True, "epoch": rec.as_dict(), "was": found.why}
    raise ContendedEpoch("fleet store: its epoch kept changing while it was acknowledged; run it again")
