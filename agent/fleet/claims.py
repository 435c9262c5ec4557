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

Anyone who can write to the bucket can put anything there, so a head is
trusted only when it is a claim a site could have written (`InvalidClaim`
otherwise: bigger than CLAIM_MAX_BYTES, not JSON, the wrong shape, a lease
ending more than MAX_LEASE_S ahead, a generation that does not follow the
one below it). A key whose head is invalid is held at every site, in either
`on_unreachable` mode (the object may hide another site's delivery), until
an operator runs `fapiao-agent fleet repair KEY` (agent/fleet/repair.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass

from agent.errors import AdapterError, ClockSkewed, Conflict, Permanent, Transient
from agent.fleet import MAX_LEASE_S
from agent.fleet.store import FleetStore, TooLarge

CLAIMS = "claims/"
_GEN = re.compile(r"gen-(\d{8})")   # the whole last name of a claim (fullmatch)
# Claims are read no further than this (one is under 1 KiB).
CLAIM_MAX_BYTES = 16 * 1024
# Generations are 1 .. MAX_GENERATION ("gen-" and 8 digits): a key renewed
# every 150 s for 40 years stays below it. A name above it is no site's: not
# part of the chain, and nothing is written above it.
MAX_GENERATION = 10_000_000
STATES = ("claimed", "delivered", "released")
_SITE_NAME = re.compile(r"[a-z0-9-]{1,63}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
# Who writes a `released` generation for an operator (`repair`).
OPERATOR = "operator"
_SAFE_KEY = re.compile(r"[A-Za-z0-9-]{1,100}")
# The UTC years a claim's or a status's time stamps may fall in.
STAMP_YEARS = range(2000, 9000)
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


class InvalidClaim(Permanent):
    """The head of a key's claim is not a claim any site writes (see the
    module docstring): the key is held until an operator repairs it."""


def _aware_stamp(d: dict, name: str) -> str:
    value = d[name]
    if not isinstance(value, str) or len(value) > 40:
        raise TypeError(f"{name} is not a time stamp")
    moment = parse_stamp(value)
    if moment.tzinfo is None:
        raise ValueError(f"{name} {value!r} has no time zone")
    check_calendar(moment, name)
    return value


def check_calendar(moment: dt.datetime, name: str) -> None:
    """ValueError unless the aware `moment` is in years STAMP_YEARS once in UTC:
    no site writes another, and year 1 at +01:00 or 9999 at -01:00 parse but
    overflow when moved to UTC or a local zone (every display and ledger row)."""
    try:
        year = moment.astimezone(dt.timezone.utc).year
    except OverflowError:
        year = 0
    if year not in STAMP_YEARS:
        raise ValueError(f"{name} {moment.isoformat()[:40]!r} is off the calendar any site writes")


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
    def from_bytes(cls, generation: int, data: bytes, *, now: dt.datetime | None = None) -> "ClaimRecord":
        """Parse a stored generation; InvalidClaim when it is not one a site
        writes: not a JSON object; a site that is no site name; a sha256
        that is neither empty nor 64 hex digits; a document id that is not a
        whole number >= 0; a state other than claimed, delivered, released;
        a time stamp without a time zone; a `generation` other than its
        name's; with `now`, a lease ending more than MAX_LEASE_S after it."""
        try:
            d = json.loads(data)
            if not isinstance(d, dict):
                raise TypeError(f"a JSON {type(d).__name__}, not an object")
            site, sha, doc, state, holder = (d["site"], d["sha256"], d["document_id"], d["state"],
                                             d.get("holder") or "")
            if not isinstance(site, str) or not _SITE_NAME.fullmatch(site):
                raise ValueError("site is not a site name")
            if not isinstance(sha, str) or (sha and not _SHA256.fullmatch(sha)):
                raise ValueError("sha256 is not a SHA-256")
            if isinstance(doc, bool) or not isinstance(doc, int) or not 0 <= doc < 2 ** 63:
                raise ValueError(f"document_id {doc!r} is not a document id")
            if state not in STATES:
                raise ValueError(f"state {str(state)[:40]!r} is none of {', '.join(STATES)}")
            if not isinstance(holder, str) or len(holder) > 100:
                raise ValueError("holder is not an agent id")
            if d.get("generation", generation) != generation:
                raise ValueError(f"it says generation {str(d.get('generation'))[:20]}")
            at, lease = _aware_stamp(d, "at"), _aware_stamp(d, "lease_until")
            if now is not None and state == "claimed" and (
                    parse_stamp(lease) - now).total_seconds() > MAX_LEASE_S:
                raise ValueError(f"its lease ends {lease}, more than {MAX_LEASE_S / 3600:.0f} h from now "
                                 "(no site's lease is that long)")
            return cls(generation=generation, site=site, sha256=sha, document_id=doc, at=at,
                       lease_until=lease, state=state, holder=holder)
        except (ValueError, KeyError, TypeError, OverflowError, RecursionError) as e:
            raise InvalidClaim(f"claim generation {generation} is not a claim any site writes "
                               f"({type(e).__name__}: {str(e)[:120]})") from e


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
    # Unreachable because the key's claim is invalid (InvalidClaim): hold even
    # in `deliver` mode (it may hide another site's delivery) until repaired.
    invalid: bool = False
    # Won by creating generation 1 on an empty chain. The caller tells a key
    # never claimed from one whose claims the store lost (it had recorded a
    # generation): a vanished chain is no release (gate.check).
    fresh: bool = False

    @property
    def must_hold(self) -> bool:
        """True when even `on_unreachable = "deliver"` must not deliver: the
        store answered, but the claim cannot be judged."""
        return self.clock or self.invalid


def generations(store: FleetStore, invoice_key: str) -> list[int]:
    """The key's generation numbers (1 .. MAX_GENERATION), sorted; other
    names under its prefix are not part of the chain."""
    prefix = claim_prefix(invoice_key)
    return sorted(g for k in store.list(prefix)
                  if k.count("/") == 2 and (m := _GEN.fullmatch(k.rsplit("/", 1)[-1]))
                  and 1 <= (g := int(m.group(1))) <= MAX_GENERATION)


def head(store: FleetStore, invoice_key: str, *, now: dt.datetime | None = None) -> ClaimRecord | None:
    """The key's current claim (its highest generation), or None when unclaimed.
    Raises InvalidClaim when that generation is not a claim a site writes
    (ClaimRecord.from_bytes, with `now`), is bigger than CLAIM_MAX_BYTES
    (never read further), or does not follow the generation below it (a
    lone generation above 1, or a gap: no site skips one); Transient or
    Permanent when the store does not answer."""
    prefix = claim_prefix(invoice_key)
    gens = generations(store, invoice_key)
    for i in range(len(gens) - 1, -1, -1):
        g = gens[i]
        try:
            got = store.read(f"{prefix}gen-{g:08d}", max_bytes=CLAIM_MAX_BYTES)
        except TooLarge as e:
            raise InvalidClaim(f"claim generation {g} of {invoice_key}: {e}") from e
        if got is None:
            continue    # listed, then gone: the one below is the head
        below = gens[i - 1] if i else 0
        if g != below + 1:
            raise InvalidClaim(f"claim generation {g} of {invoice_key} does not follow "
                               + (f"generation {below}" if below else "any generation") + " (no site skips one)")
        try:
            return ClaimRecord.from_bytes(g, got[0], now=now)
        except InvalidClaim as e:
            raise InvalidClaim(f"{invoice_key}: {e}") from e
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


def refused_clock(store: FleetStore, now: dt.datetime, e: ClockSkewed) -> str:
    """Why this site may not judge leases when the store refused its clock
    outright (further off than the store's signature window, ~15 min): the
    skew against the store's clock in its answer when it gave one."""
    server = e.server_time or store.server_time()
    if server is not None:
        skew = (now - server).total_seconds()
        off = f"this site's clock is {abs(skew):.0f} s {'ahead of' if skew > 0 else 'behind'} the fleet store's"
    else:
        off = "this site's clock is off the fleet store's"
    return (f"{off}, so far that the store refuses its requests: leases cannot be judged and nothing is "
            f"claimed or delivered here; fix its time (NTP). The store said: {e}")


def is_mine(record: ClaimRecord, site: str, holder: str) -> bool:
    """True when `record` was written by this agent: its holder when both are
    known (another agent under the same site name is another site; this
    agent under a site name changed in its config is still this agent, so
    its claims are renewed and settled under the new name, not left to lapse
    as a stranger's), else its site name."""
    if holder and record.holder:
        return record.holder == holder
    return record.site == site


def _next(store: FleetStore, invoice_key: str, record: ClaimRecord) -> bool:
    """Create `record`'s generation; False when another writer created it first.
    InvalidClaim above MAX_GENERATION (the chain is used up: never written)."""
    if record.generation > MAX_GENERATION:
        raise InvalidClaim(f"the claim of {invoice_key} is at generation {MAX_GENERATION}, the last one")
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
            current = head(store, invoice_key, now=now)
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
                return Verdict("won", mine, took_over_from=taken, fresh=current is None)
        return Verdict("unreachable", error=f"fleet store: claim on {invoice_key} still contended after "
                                            f"{_RACE_TRIES} tries")
    except InvalidClaim as e:
        return Verdict("unreachable", error=str(e), invalid=True)
    except ClockSkewed as e:
        # Hold even in `deliver` mode: the store is there, this site's clock is not.
        return Verdict("unreachable", error=refused_clock(store, now, e), clock=True)
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
            current = head(store, invoice_key, now=now)
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
    except InvalidClaim as e:
        return Verdict("unreachable", error=str(e), invalid=True)
    except AdapterError as e:
        return Verdict("unreachable", error=str(e))

