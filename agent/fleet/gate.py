"""The fleet in the delivery loop: before a put, is this site the one that
delivers the invoice key? And afterwards, the claim brought up to date.

Pure: a FleetStore, a Ledger and `now` come from the caller (service/fleet.py,
service/delivery.py); no threads, no sleeps. Every decision is written to
the ledger with its event in one transaction before anything is sent.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

from agent.deliver.loop import Claim
from agent.errors import AdapterError, ClockSkewed
from agent.fleet.claims import (InvalidClaim, Verdict, acquire, clock_error, generations, head, parse_stamp,
                                settle)
from agent.fleet.store import FleetStore
from agent.fleet.trust import DOUBTED, doubt
from agent.health import span
from agent.ledger import Ledger
from agent.ledger.fleet import VANISHED
from agent.ledger.rows import TimeText, as_stored, parse_utc, utc
from agent.model import Invoice

# A held row is tried again this often (uncounted: the store, not the invoice, is the problem).
HOLD_RETRY_S = 15.0


@dataclass(frozen=True)
class FleetSettings:
    """[fleet] as the loops use it."""

    site: str
    lease_s: float = 300.0
    on_unreachable: str = "hold"
    hold_retry_s: float = HOLD_RETRY_S

    @classmethod
    def from_config(cls, fleet: dict) -> "FleetSettings | None":
        """None without a fleet url (no fleet: nothing changes)."""
        if not fleet or not fleet.get("url"):
            return None
        return cls(site=fleet["site"], lease_s=float(fleet.get("lease_s") or 300.0),
                   on_unreachable=fleet.get("on_unreachable") or "hold",
                   hold_retry_s=float(fleet.get("retry_s") or HOLD_RETRY_S))


@dataclass(frozen=True)
class Screened:
    """What `screen` did to one claimed row: `go` (send it), `lost` (another
    site delivered the key: the document is now its duplicate), `wait`
    (another site holds a live claim: the row waits for its delivery or its
    lease to end) or `held` (the store did not answer; the row waits), with
    a line for the log."""

    claim: Claim
    kind: str
    note: str = ""


def invoice_key_of(c: Claim) -> str | None:
    """The invoice key a claimed row is delivered under (None: no key)."""
    return Invoice.from_dict(c.fields or {}).key


def _same_name(record, settings: FleetSettings) -> str | None:
    # Another agent's claim under this site's own name: a copied config.
    if record is None or record.site != settings.site:
        return None
    return (f"another agent uses the same site name {settings.site!r} and holds it "
            "(two sites configured with one [fleet] site: give each its own)")


def _ours(local: dict | None, key: str, now: dt.datetime, settings: FleetSettings, store: FleetStore) -> bool:
    # The ledger knows this site holds the key with time to spare. The lease is
    # judged by this site's clock, which may have been stepped back since the
    # claim (its renewals then come late and the store's lease lapses): one
    # LIST confirms that no generation was written after this site's and, by
    # its Date, that the clock still agrees with the store's. Anything else
    # goes the long way (acquire: it waits, loses or holds for the clock).
    if not local or local["invoice_key"] != key:
        return False
    if local["state"] == "delivered":
        return True
    if not (local["state"] == "won" and local["lease_until"] is not None
            and (parse_utc(local["lease_until"]) - now).total_seconds() > settings.lease_s / 2):
        return False
    try:
        gens = generations(store, key)
    except ClockSkewed:
        return False
    except AdapterError:
        # The store does not answer: the cached lease, as before the LIST was
        # added (a site cut off longer than the lease is the documented takeover case).
        return True
    return bool(gens) and gens[-1] == local["generation"] and clock_error(store, now, settings.lease_s) is None


def check(ledger: Ledger, store: FleetStore, settings: FleetSettings, c: Claim, *,
          now: dt.datetime, actor: str) -> Verdict:
    """Whether this site delivers the row's invoice key, with the ledger's
    claim row brought up to date: won (or unclaimed in `deliver` mode) gives
    `won`; another site's delivered (or delivered-and-kept) claim gives
    `lost`; another site's live claim gives `wait`; a store that does not
    answer gives `unreachable` in `hold` mode."""
    key = invoice_key_of(c)
    if key is None:
        return Verdict("won")   # no key: the put refuses it (Permanent), nothing to claim
    local = ledger.fleet_claim(c.document_id)
    if _ours(local, key, now, settings, store):
        return Verdict("won")
    v = acquire(store, key, site=settings.site, sha256=c.sha256, document_id=c.document_id, now=now,
                lease_s=settings.lease_s, holder=ledger.fleet_holder(now=utc(now)), judge_clock=True)
    at = utc(now)
    if v.kind == "won":
        # remote_site on a won claim: taken over from that site (kept across renewals).
        why = None
        if v.fresh and (lost := _vanished(local, key)):
            # This site had recorded a generation of the key and the store has
            # none now: the claims were lost, not released (releases are
            # generations). Whoever held it may have put it: look up first.
            remote = (local["remote_site"], local["remote_at"])
            why = lost + "; every destination looked up before any put"
        elif v.fresh and (doubted := _doubted(ledger, store, settings, now=now, actor=actor)):
            # No claim in a store that may have lost them: another site may
            # have delivered it before the loss. Look up first, as a takeover does.
            remote, why = (None, None), DOUBTED + doubted + "; every destination looked up before any put"
        elif v.took_over_from is not None:
            remote = (v.took_over_from.site, v.took_over_from.at)
            why = f"taken over from site {remote[0]} " + (
                "(it released the key)" if v.took_over_from.state == "released" else "(its lease ran out)")
        elif local and local["state"] == "won" and local["invoice_key"] == key:
            remote, why = (local["remote_site"], local["remote_at"]), local["reason"]
        else:
            remote = (None, None)
        ledger.set_fleet_claim(c.document_id, invoice_key=key, state="won", now=at, actor=actor,
                               generation=v.record.generation, lease_until=utc(parse_stamp(v.record.lease_until)),
                               remote_site=remote[0], remote_at=remote[1], reason=why)
        return v
    if v.kind == "lost" and v.record.state == "claimed":
        # Its holder has not delivered yet: wait for its delivery (then this
        # copy is a duplicate) or its lease to run out (then this site takes over).
        ledger.set_fleet_claim(c.document_id, invoice_key=key, state="waiting", now=at, actor=actor,
                               generation=v.record.generation, remote_site=v.record.site,
                               remote_at=v.record.at, lease_until=utc(parse_stamp(v.record.lease_until)),
                               reason=_same_name(v.record, settings))
        return Verdict("wait", v.record)
    if v.kind == "lost":
        return v
    if settings.on_unreachable == "deliver" and not v.must_hold:
        ledger.set_fleet_claim(c.document_id, invoice_key=key, state="unclaimed", now=at, actor=actor,
                               reason=f"delivered without a claim (on_unreachable = deliver): {v.error}")
        return Verdict("won", error=v.error)
    ledger.set_fleet_claim(c.document_id, invoice_key=key, state="held", now=at, actor=actor,
                           reason=held_reason(v, key))
    return v


def _vanished(local: dict | None, key: str) -> str | None:
    # The reason (VANISHED ...) when the ledger knew `key` claimed in the store:
    # a generation recorded (this site's claim or another's), or a reopened
    # duplicate of another site's delivery.
    if not local or local["invoice_key"] != key or (local["generation"] is None and local["state"] != "reopened"):
        return None
    whose = f"site {local['remote_site']}'s claim" if local["remote_site"] else "this site's own claim"
    seen = f"generation {local['generation']} of " if local["generation"] is not None else ""
    return f"{VANISHED}{key}: this site had seen {seen}{whose}, and the store holds none now"


def _doubted(ledger: Ledger, store: FleetStore, settings: FleetSettings, *, now: dt.datetime,
             actor: str) -> str | None:
    # Why this site doubts the store holds the fleet's claims (trust.doubt),
    # else None. A store that answered the claim and not this look: looked
    # up all the same (once claimed, the key is this site's: never asked again).
    try:
        return doubt(ledger, store, site=settings.site, now=now, actor=actor)
    except AdapterError as e:
        return f"not known, the store's epoch could not be read ({e})"


def held_reason(v: Verdict, key: str) -> str:
    """Why a row is held, as `status` and the row's last error say it."""
    if v.invalid:
        return (f"fleet claim invalid, held at every site: {v.error}; once understood, "
                f"`fapiao-agent fleet repair {key}` lets it go (looked up before any put)")
    if v.clock:
        return v.error      # "this site's clock is ...": the store answered, so not "unreachable"
    return f"fleet store unreachable: {v.error}"


def taken_over(ledger: Ledger, doc_id: int) -> bool:
    """True when this site holds the document's key because another site's
    lease ran out (that site may have put it before it died), or claimed it
    from nothing in a store that lost claims or may have: looked up first."""
    local = ledger.fleet_claim(doc_id)
    return bool(local and local["state"] == "won" and (
        local["remote_site"] or (local["reason"] or "").startswith((VANISHED, DOUBTED))))


def screen(ledger: Ledger, store: FleetStore, settings: FleetSettings, claims: list[Claim], *,
           now: dt.datetime, actor: str, time_text: TimeText = as_stored) -> list[Screened]:
    """Each claimed row judged before its put: `go` rows are still leased for
    the caller to send; a `lost` row's document became a duplicate of the
    other site's claim (every open row superseded, one transaction); a
    `wait` or `held` row is queued again, uncounted, due in `hold_retry_s`
    (a `wait` sooner when the other site's lease ends first). Rows of one
    document share one verdict. A claim's time in a note (logged by the
    caller) is written by `time_text`."""
    out: list[Screened] = []
    verdicts: dict[int, Verdict] = {}
    at = utc(now)
    for c in claims:
        v = verdicts.get(c.document_id) or check(ledger, store, settings, c, now=now, actor=actor)
        verdicts[c.document_id] = v
        if v.kind == "won" and taken_over(ledger, c.document_id):
            # The site whose lease ran out may have put it before it died: look up first.
            why = (ledger.fleet_claim(c.document_id)["reason"] or "")
            out.append(Screened(replace(c, recovering=True), "go", why if why.startswith((VANISHED, DOUBTED)) else
                                "claim taken over from a site whose lease ran out or that released it; looked up before any put"))
        elif v.kind == "won":
            out.append(Screened(c, "go", f"delivering without a claim: {v.error}" if v.error else ""))
        elif v.kind == "lost":
            r = v.record
            ledger.fleet_lose(c.document_id, invoice_key=invoice_key_of(c) or "", remote_site=r.site,
                              remote_at=r.at, generation=r.generation, now=at, actor=actor,
                              reason=_same_name(r, settings))
            out.append(Screened(c, "lost", f"site {r.site} claimed this invoice at {time_text(r.at)}; a duplicate here"))
        elif v.kind == "wait":
            r = v.record
            lease_end = parse_stamp(r.lease_until)
            due = min(now + dt.timedelta(seconds=settings.hold_retry_s), lease_end + dt.timedelta(seconds=1))
            ledger.finish_delivery(c.delivery_id, c.token, state="queued", now=at, actor=actor,
                                   outcome="fleet-wait", next_attempt_at=utc(max(due, now)), uncount_attempt=True,
                                   # Spans, not stamps: stored, then shown by `show` beside its local time.
                                   error=f"site {r.site} claimed this invoice and has not delivered it yet; this "
                                         f"copy waits (its lease ends in {span((lease_end - now).total_seconds())})")
            out.append(Screened(c, "wait", f"site {r.site} holds the claim until {time_text(r.lease_until)}; waiting"))
        else:
            retry = utc(now + dt.timedelta(seconds=settings.hold_retry_s))
            why = held_reason(v, invoice_key_of(c) or "")
            ledger.finish_delivery(c.delivery_id, c.token, state="queued", now=at, actor=actor,
                                   outcome="fleet-held", error=why, next_attempt_at=retry, uncount_attempt=True)
            out.append(Screened(c, "held", why if v.must_hold else f"held (on_unreachable = hold): {v.error}"))
    return out


def settle_claims(ledger: Ledger, store: FleetStore, settings: FleetSettings, *, now: dt.datetime,
                  actor: str) -> list[str]:
    """Bring the store's claims up to the ledger: `delivered` on the claims of
    delivered documents, `released` for rejected or re-keyed ones, and
    claims made after the fact for documents sent while the store was down.
    Returns one line per change worth a log line (warnings start with "!")."""
    lines: list[str] = []
    at = utc(now)
    for row in ledger.fleet_claims_to_settle():
        doc_id, key, doc_state = row["document_id"], row["invoice_key"], row["doc_state"]
        sent = doc_state in ("delivered", "confirmed")
        if row["state"] == "unclaimed":
            v = acquire(store, key, site=settings.site, sha256=row["sha256"], document_id=doc_id, now=now,
                        lease_s=settings.lease_s, holder=ledger.fleet_holder(now=at),
                        judge_clock=True)
            if v.kind == "unreachable":
                if v.invalid:
                    lines.append(f"!{key}: sent while the store was unreachable, and cannot be claimed now: "
                                 f"{held_reason(v, key)}")
                continue
            if v.kind == "lost":
                note = (f"site {v.record.site} claimed {key} at {v.record.at}, and this site delivered it "
                        "while the store was unreachable: the destination's idempotency is the last guard")
                ledger.set_fleet_claim(doc_id, invoice_key=key, state="delivered" if sent else "lost", now=at,
                                       actor=actor, generation=v.record.generation, remote_site=v.record.site,
                                       remote_at=v.record.at, reason=note)
                lines.append("!" + note)
                continue
            ledger.set_fleet_claim(doc_id, invoice_key=key, state="won", now=at, actor=actor,
                                   generation=v.record.generation,
                                   lease_until=utc(parse_stamp(v.record.lease_until)))
            lines.append(f"claimed {key} after the fact")
            if not sent:
                continue
        if sent and row["doc_key"] == key:
            v = settle(store, key, site=settings.site, state="delivered", now=now,
                       holder=ledger.fleet_holder(now=at))
            if v.kind == "unreachable":
                if v.invalid:
                    lines.append(f"!{key}: delivered here, but `delivered` cannot be recorded on its claim: "
                                 f"{held_reason(v, key)}")
                continue
            reason = None
            if v.kind == "lost":
                who = v.record.site if v.record else "nobody"
                reason = f"the claim is {who}'s now (its lease ran out before the delivery was recorded)"
                lines.append(f"!{key}: {reason}")
            ledger.set_fleet_claim(doc_id, invoice_key=key, state="delivered", now=at, actor=actor,
                                   generation=v.record.generation if v.record else None, reason=reason)
            continue
        v = settle(store, key, site=settings.site, state="released", now=now,
                   holder=ledger.fleet_holder(now=at))
        if v.kind == "unreachable":
            if v.invalid:
                lines.append(f"!{key}: cannot be released (document {doc_id} is {doc_state}): "
                             f"{held_reason(v, key)}")
            continue
        ledger.set_fleet_claim(doc_id, invoice_key=key, state="released", now=at, actor=actor,
                               generation=v.record.generation if v.record else None,
                               reason=f"document is {doc_state}" + (
                                   f" under key {row['doc_key']}" if row["doc_key"] != key else ""))
        lines.append(f"released {key} (document {doc_id} is {doc_state})")
    return lines


def renew_leases(ledger: Ledger, store: FleetStore, settings: FleetSettings, *, now: dt.datetime,
                 actor: str) -> list[str]:
    """Renew this site's claims of documents still on their way once less
    than half their lease is left (a new generation, as before a put), so a
    site whose destination is down longer than `lease_s` keeps its keys.
    The ledger's row follows (no event: the state does not change). A claim
    another site took over meanwhile is left to the gate's next check; a
    store that does not answer ends the pass (the leases run on; a taker
    looks up before it puts). Returns a warning line (starting with "!")
    per claim another site holds now."""
    lines: list[str] = []
    at = utc(now)
    due = utc(now + dt.timedelta(seconds=settings.lease_s / 2))
    for row in ledger.fleet_claims_to_renew(lease_before=due):
        doc_id, key = row["document_id"], row["invoice_key"]
        v = acquire(store, key, site=settings.site, sha256=row["sha256"], document_id=doc_id, now=now,
                    lease_s=settings.lease_s, holder=ledger.fleet_holder(now=at),
                        judge_clock=True)
        if v.invalid:
            lines.append(f"!the claim on {key} cannot be renewed: {held_reason(v, key)}")
            continue
        if v.kind == "unreachable":
            break   # said once by the gate and `status` (held), not again every pass
        if v.kind != "won":
            lines.append(f"!the claim on {key} is site {v.record.site}'s now (this site's lease ran out)")
            continue
        remote = ((v.took_over_from.site, v.took_over_from.at) if v.took_over_from is not None
                  else (row["remote_site"], row["remote_at"]))
        reason = row["reason"]
        if v.fresh and (lost := _vanished(row, key)):
            # Claimed again from nothing: said, and its put looks up first (gate.taken_over).
            reason = lost + "; claimed again, every destination looked up before any put"
            lines.append(f"!{reason}")
        ledger.set_fleet_claim(doc_id, invoice_key=key, state="won", now=at, actor=actor,
                               generation=v.record.generation, lease_until=utc(parse_stamp(v.record.lease_until)),
                               remote_site=remote[0], remote_at=remote[1], reason=reason)
    return lines


# A fleet duplicate's remote claim is looked at again this often.
RECHECK_LOST_S = 60.0


def recheck_lost(ledger: Ledger, store: FleetStore, *, now: dt.datetime,
                 actor: str = "fleet") -> list[tuple[int, str]]:
    """Fleet duplicates whose original let the key go (released: rejected or
    re-keyed there; or a claim whose holder died before delivering), as
    (document id, why) for the caller to reopen and judge again
    (`Ledger.fleet_reopen`, then `judgement.judge`, in one transaction). A
    key with no claim left in the store is never reopened: the store lost
    its claims, the other site did not let it go; the duplicate stays one,
    its claim row's reason says so (VANISHED: a WARNING in `status --check`)
    until a claim of the same site and time is back. The others are noted
    as looked at; a store that does not answer leaves the rest for the next
    pass."""
    out: list[tuple[int, str]] = []
    at = utc(now)
    for row in ledger.fleet_lost_to_recheck(checked_before=utc(now - dt.timedelta(seconds=RECHECK_LOST_S))):
        try:
            current = head(store, row["invoice_key"], now=now)
        except InvalidClaim:
            ledger.touch_fleet_claim(row["document_id"], now=at)   # stays a duplicate until repaired
            continue
        except AdapterError:
            break
        if current is None:
            # Not a release (that is a generation of its own): the store lost
            # the claims of a key another site delivered. Reopening delivered
            # it again at every site that had it as a duplicate; it stays one.
            ledger.note_fleet_claim(row["document_id"], now=at, actor=actor, reason=(
                f"{VANISHED}{row['invoice_key']}: site {row['remote_site']} delivered it (generation "
                f"{row['generation']}), and the store holds no claim now; kept a duplicate here"))
        elif current.state == "released" or current.expired(now):
            out.append((row["document_id"], f"site {current.site} released invoice {row['invoice_key']}"
                        if current.state == "released"
                        else f"site {current.site}'s lease on {row['invoice_key']} ran out before it delivered"))
        elif (row["reason"] or "").startswith(VANISHED):
            back = (current.site, current.at) == (row["remote_site"], row["remote_at"])
            ledger.note_fleet_claim(row["document_id"], now=at, actor=actor, reason=None if back else (
                f"{VANISHED}{row['invoice_key']}: site {row['remote_site']} delivered it; its claim came back "
                f"as site {current.site}'s of {current.at}, which may have delivered it again"))
        else:
            ledger.touch_fleet_claim(row["document_id"], now=at)
    return out
