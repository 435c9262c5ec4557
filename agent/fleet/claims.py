"""Claims: which site of the fleet delivers an invoice key. Pure logic over a
FleetStore, `now` passed in; no threads, no sleeps.

A claim is a chain of generations, each object created once with
If-None-Match: * and never overwritten:

    claims/<key>/gen-00000001   {"site", "sha256", "document_id", "at", "lease_until", "state"}
    claims/<key>/gen-00000002   ...

The highest generation is the claim. Every change (a renewal, a takeover,
`delivered`, `released`) creates the next generation, so two sites racing
for the same change race for one create, which the store lets exactly one
win. No step needs If-Match: SeaweedFS checks If-Match but two racing puts
with the same ETag can both succeed (bench/fleet.py measures it), so one
scheme, safe on every store that enforces If-None-Match, is used everywhere.

A site owns a key while the head is its own and `claimed` (lease renewed
while it lives) or `delivered`. Another site may take the key over only
when the head is `released`, or `claimed` with its lease expired.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass

from agent.errors import AdapterError, Conflict, Permanent, Transient
from agent.fleet.store import FleetStore

CLAIMS = "claims/"
_GEN = re.compile(r"gen-(\d{8})$")
_SAFE_KEY = re.compile(r"[A-Za-z0-9-]{1,100}")
# Racing sites retry a lost create this many times before calling it a draw
# (each retry reads the new head, so a draw is a storm, not a bug).
_RACE_TRIES = 6


def claim_prefix(invoice_key: str) -> str:
    """`claims/<key>/` for an invoice key: the key itself when it is a plain
    代码-号码 or 数电 number, else `h-` and its SHA-256 (never a path)."""
    safe = invoice_key if _SAFE_KEY.fullmatch(invoice_key) else "h-" + hashlib.sha256(
        invoice_key.encode()).hexdigest()
    return f"{CLAIMS}{safe}/"


def _stamp(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_stamp(s: str) -> dt.datetime:
    """A claim's time stamp (ISO 8601, Z) as an aware datetime."""
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


@dataclass(frozen=True)
class ClaimRecord:
    """One generation of a key's claim, as stored."""

    generation: int
    site: str
    sha256: str
    document_id: int
    at: str                 # when this site first claimed the key (kept across renewals)
    lease_until: str
    state: str              # claimed | delivered | released
    # Which agent (ledger) wrote it: two agents misconfigured with the same
    # site name must not take each other's claims for their own. Empty in
    # claims written before it was recorded (then the site name decides).
    holder: str = ""

    def expired(self, now: dt.datetime) -> bool:
        """True when the lease ended before `now` (a `claimed` holder that stopped renewing)."""
        return self.state == "claimed" and parse_stamp(self.lease_until) <= now

    def to_bytes(self) -> bytes:
        """The object's content (JSON)."""
        return json.dumps({"site": self.site, "sha256": self.sha256, "document_id": self.document_id,
                           "at": self.at, "lease_until": self.lease_until, "state": self.state,
                           "generation": self.generation, "holder": self.holder}, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, generation: int, data: bytes) -> "ClaimRecord":
        """Parse a stored generation; Permanent when it is not a claim."""
        try:
            d = json.loads(data)
            return cls(generation=generation, site=str(d["site"]), sha256=str(d["sha256"]),
                       document_id=int(d["document_id"]), at=str(d["at"]),
                       lease_until=str(d["lease_until"]), state=str(d["state"]),
                       holder=str(d.get("holder") or ""))
        except (ValueError, KeyError, TypeError) as e:
            raise Permanent(f"fleet store: claim generation {generation} is not a claim ({e})") from e


@dataclass(frozen=True)
class Verdict:
    """What a claim attempt came to: `won` (this site delivers; `record` is
    its generation), `lost` (`record` is the other site's claim) or
    `unreachable` (`error` says why; nothing is known)."""

    kind: str
    record: ClaimRecord | None = None
    error: str | None = None
    # Won from another site whose lease ran out or that released the key:
    # its put may have landed before it died or let go, so every destination
    # is looked up before a put.
    took_over_from: ClaimRecord | None = None
    # Unreachable because this site's clock is off the store's: hold even in
    # `deliver` mode (the store answers; this site cannot judge leases).
    clock: bool = False


def head(store: FleetStore, invoice_key: str) -> ClaimRecord | None:
    """The key's current claim (its highest generation), or None when unclaimed.
    Raises Transient/Permanent when the store does not answer."""
    prefix = claim_prefix(invoice_key)
    gens = sorted(int(m.group(1)) for k in store.list(prefix) if (m := _GEN.search(k)))
    for g in reversed(gens):
        got = store.read(f"{prefix}gen-{g:08d}")
        if got is not None:
            return ClaimRecord.from_bytes(g, got[0])
    return None


def clock_error(store: FleetStore, now: dt.datetime, lease_s: float) -> str | None:
    """Why this site may not judge leases, or None: its clock (`now`) is
    more than a quarter lease off the store's at its last answer. Each site
    within a quarter of the store keeps any two sites within half a lease,
    the margin the ledger's cached lease relies on; a site further off would
    see live leases as expired (and take them over) or keep a lapsed one."""
    server = store.server_time()
    if server is None:
        return None
    skew = (now - server).total_seconds()
    if abs(skew) <= lease_s / 4:
        return None
    return (f"this site's clock is {abs(skew):.0f} s {'ahead of' if skew > 0 else 'behind'} the fleet "
            f"store's (at most {lease_s / 4:.0f} s allowed, a quarter of lease_s): leases cannot be "
            "judged; fix its time (NTP)")


def is_mine(record: ClaimRecord, site: str, holder: str) -> bool:
    """True when `record` was written by this agent: its site, and its holder
    when both are known (another agent under the same site name is another site)."""
    return record.site == site and (not holder or not record.holder or record.holder == holder)


def _next(store: FleetStore, invoice_key: str, record: ClaimRecord) -> bool:
    """Create `record`'s generation; False when another writer created it first."""
    try:
        store.create(f"{claim_prefix(invoice_key)}gen-{record.generation:08d}", record.to_bytes())
        return True
    except Conflict:
        return False


def acquire(store: FleetStore, invoice_key: str, *, site: str, sha256: str, document_id: int,
            now: dt.datetime, lease_s: float, holder: str = "", judge_clock: bool = False) -> Verdict:
    """Claim `invoice_key` for `site` at `now`, or learn who holds it.

    Won: the head is this site's (renewed when less than half its lease is
    left), or nobody's (created), or another site's that was released or
    whose lease expired (taken over with the next generation). Lost: another
    site holds it (claimed with a live lease, or delivered). Unreachable:
    the store failed (never raises an AdapterError). A race for the same
    generation is lost by all but one writer, who read the new head again.
    `holder` tells this agent from another one using the same site name.
    With `judge_clock`, a `now` more than a quarter lease off the store's
    clock is `unreachable` (`clock` set) before anything is written."""
    lease = _stamp(now + dt.timedelta(seconds=lease_s))
    try:
        for _ in range(_RACE_TRIES):
            current = head(store, invoice_key)
            if judge_clock and (off := clock_error(store, now, lease_s)) is not None:
                return Verdict("unreachable", error=off, clock=True)
            if current is None:
                mine = ClaimRecord(1, site, sha256, document_id, _stamp(now), lease, "claimed", holder)
            elif is_mine(current, site, holder) and current.state != "released":
                if current.state == "delivered" or (parse_stamp(current.lease_until) - now).total_seconds() > lease_s / 2:
                    return Verdict("won", current)
                mine = ClaimRecord(current.generation + 1, site, sha256, document_id, current.at, lease, "claimed",
                                   holder or current.holder)
            elif current.state == "released" or current.expired(now):
                mine = ClaimRecord(current.generation + 1, site, sha256, document_id, _stamp(now), lease, "claimed",
                                   holder)
            else:
                return Verdict("lost", current)
            if _next(store, invoice_key, mine):
                # Released too: its holder may have put it to some destinations
                # before it let the key go (rejected or re-keyed after a partial delivery).
                taken = (current if current is not None and not is_mine(current, site, holder)
                         and current.state in ("claimed", "released") else None)
                return Verdict("won", mine, took_over_from=taken)
        return Verdict("unreachable", error=f"fleet store: claim on {invoice_key} still contended after "
                                            f"{_RACE_TRIES} tries")
    except (Transient, Permanent) as e:
        return Verdict("unreachable", error=str(e))
    except AdapterError as e:
        return Verdict("unreachable", error=str(e))


def settle(store: FleetStore, invoice_key: str, *, site: str, state: str, now: dt.datetime,
           holder: str = "") -> Verdict:
    """Record `state` ("delivered" or "released") on this site's claim.

    Won: written (or already so). Lost: the head is another site's (it took
    the key over while this site was away: for `delivered`, the invoice may
    have gone twice; the caller says so). Unreachable: try again later."""
    try:
        for _ in range(_RACE_TRIES):
            current = head(store, invoice_key)
            if current is None:
                return Verdict("lost", None) if state == "delivered" else Verdict("won", None)
            if not is_mine(current, site, holder):
                return Verdict("lost", current) if state == "delivered" else Verdict("won", current)
            if current.state == state:
                return Verdict("won", current)
            if current.state == "released" and state == "delivered":
                return Verdict("lost", current)
            mine = ClaimRecord(current.generation + 1, site, current.sha256, current.document_id, current.at,
                               _stamp(now), state, holder or current.holder)
            if _next(store, invoice_key, mine):
                return Verdict("won", mine)
        return Verdict("unreachable", error=f"fleet store: {state} on {invoice_key} still contended")
    except AdapterError as e:
        return Verdict("unreachable", error=str(e))
