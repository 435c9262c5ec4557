"""One delivery step, in parts: claim a due row, send it, record the outcome.

No threads, no sleeps, no clock: `now` and `rng` come from the caller, so a
test walks through time and a restart recomputes the same answers from the
ledger. The service runs `claim` / `send` / `record` in its worker threads
(with a fresh `now` after the network call); `deliver_step` strings them
together for a caller with one `now`.

Effectively once: the Idempotency-Key is the invoice key, and a row found
`delivering` after its lease expired (its worker died mid-put) is looked up
first and put again only if the destination does not hold it.

One row never holds up the others: a row refused (401/403, a redirect) is
put back behind the rest, and once other rows get through while it is
still refused, the refusal is its own (`Refusals`) and counts as an
attempt; a row whose outcome cannot be recorded is recorded as a failed
attempt, so the rest of its batch is kept.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agent.deliver.base import Destination, Misconfigured, Parcel, Receipt, parcel_for, storable_text
from agent.deliver.gate import Decision, Gate
from agent.deliver.retry import DeliveryPolicy, Refusals, next_attempt_at
from agent.errors import AdapterError, OriginalUnreadable, Permanent, Transient
from agent.ledger import Ledger
from agent.ledger.rows import utc
from agent.model import Invoice, Problem

if TYPE_CHECKING:
    from agent.vault import Vault

__all__ = ["Claim", "Decision", "Gate", "Outcome", "Refusals", "Result", "claim", "deliver_step", "observe",
           "record", "record_safely", "release", "send"]

DELIVERY_REJECTED = "delivery-rejected"
DELIVERY_CONFLICT = "delivery-conflict"


@dataclass(frozen=True)
class Claim:
    """A delivery row this worker leases, with what is needed to build its parcel.

    `recovering` is True when the row was found `delivering` with an
    expired lease: its earlier put may have reached the destination.
    """

    delivery_id: int
    document_id: int
    destination: str
    token: str
    attempts: int
    queued_at: str
    recovering: bool
    sha256: str
    media_type: str | None
    original_name: str | None
    fields: dict = field(hash=False, compare=False)
    waited_s: float = 0.0  # the waits the schedule set since attempts were last reset


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to: delivered, found (already there), conflict
    (the destination holds other content under the key), transient,
    permanent, misconfigured (the destination refused it: bad credentials,
    a redirect) or refused (such an answer judged this invoice's own by
    `observe`); with the receipt or the error, which is made storable
    (`storable_text`: a server's half emoji would fail the row's write and
    turn a permanent refusal into a transient retry)."""

    kind: str
    receipt: Receipt | None = None
    error: str | None = None
    retry_after: float | None = None

    def __post_init__(self):
        if self.error is not None:
            object.__setattr__(self, "error", storable_text(self.error))


@dataclass(frozen=True)
class Result:
    """What `record` wrote: the row's new state, and when it is tried again.
    `recorded` is False when the lease had been taken over (nothing written)."""

    delivery_id: int
    document_id: int
    destination: str
    outcome: str
    row_state: str
    error: str | None = None
    next_attempt_at: dt.datetime | None = None
    recorded: bool = True


def claim(ledger: Ledger, destination: str, *, now: dt.datetime, lease_s: float, token: str,
          actor: str, limit: int = 1, max_delay_s: float | None = None) -> list[Claim]:
    """Lease up to `limit` due rows of `destination` until now + lease_s (see
    `Ledger.claim_deliveries` for which rows are due and in what order).
    With `max_delay_s` (the policy's), a row due further ahead than that and
    written after `now` had its wait set before the clock went back: due now."""
    rows = ledger.claim_deliveries(destination, now=utc(now), lease_until=utc(now + dt.timedelta(seconds=lease_s)),
                                   token=token, actor=actor, limit=limit, max_wait_s=max_delay_s)
    return [Claim(delivery_id=r["delivery_id"], document_id=r["document_id"], destination=r["destination"],
                  token=token, attempts=r["attempts"], queued_at=r["queued_at"],
                  recovering=r["row_state"] == "delivering", sha256=r["sha256"], media_type=r["media_type"],
                  original_name=r["original_name"], fields=r["fields"], waited_s=r["waited_s"] or 0.0)
            for r in rows]


def release(ledger: Ledger, c: Claim, *, now: dt.datetime, actor: str) -> bool:
    """Give back a claimed row without attempting it (uncounted, due now);
    False when its lease had been taken over."""
    return ledger.release_delivery(c.delivery_id, c.token, recovering=c.recovering, now=utc(now), actor=actor)


def parcel_of(c: Claim, vault: Vault) -> Parcel:
    """The parcel for a claimed row: the document's fields and its vault file.
    Raises Permanent when the invoice has no key to deliver under."""
    invoice = Invoice.from_dict(c.fields or {})
    number = invoice.get("number") or "invoice"
    filename = c.original_name or f"{number}"
    return parcel_for(invoice, path=vault.path(c.sha256), filename=filename,
                      media_type=c.media_type or "application/octet-stream", sha256=c.sha256)


def send(dest: Destination, c: Claim, vault: Vault) -> Outcome:
    """Deliver one claimed row: look it up first when recovering, then put.
    Adapter errors come back as an Outcome; nothing but a bug raises."""
    try:
        parcel = parcel_of(c, vault)
        if c.recovering:
            found = dest.lookup(parcel.key)
            if found is not None:
                return _held_as_sent(dest, parcel, Outcome("found", receipt=found))
        return _held_as_sent(dest, parcel, Outcome("delivered", receipt=dest.put(parcel)))
    except Misconfigured as e:
        return Outcome("misconfigured", error=str(e))
    except Transient as e:
        return Outcome("transient", error=str(e), retry_after=e.retry_after)
    except OriginalUnreadable as e:
        return Outcome("original", error=str(e))
    except Permanent as e:
        return Outcome("permanent", error=str(e))
    except AdapterError as e:  # NotFound from a put: the remote lost track mid-request
        return Outcome("transient", error=str(e))


def _held_as_sent(dest: Destination, parcel: Parcel, outcome: Outcome) -> Outcome:
    """`outcome` when what the destination holds under the key is this
    parcel's content; a `conflict` when its receipt names another sha256 (an
    idempotent "already there" answered for a different file under the same
    key: counting it delivered would let two documents claim one key);
    `permanent` when the receipt is for another key altogether."""
    if outcome.receipt is not None and outcome.receipt.key != parcel.key:
        return Outcome("permanent", error=f"{getattr(dest, 'name', 'the destination')} answered with a receipt "
                                          f"for {outcome.receipt.key!r}, not {parcel.key!r}; not delivered")
    held = outcome.receipt.raw.get("sha256") if outcome.receipt and isinstance(outcome.receipt.raw, dict) else None
    if held and str(held).lower() != parcel.sha256.lower():
        name = getattr(dest, "name", "the destination")
        return Outcome("conflict", receipt=outcome.receipt,
                       error=f"{name} already holds another file under key {parcel.key} "
                             f"(sha256 {str(held)[:16]}..., not {parcel.sha256[:16]}...)")
    return outcome


def record(ledger: Ledger, c: Claim, outcome: Outcome, policy: DeliveryPolicy, *, now: dt.datetime,
           rng: random.Random, actor: str, tz: dt.tzinfo | None = None) -> Result:
    """Write an attempt's outcome for a claimed row, with its document's move, in one transaction.

    delivered/found: `delivered` with the receipt. transient: `queued` again
    at a jittered backoff (never before Retry-After, never inside a
    maintenance window read in `tz`, default the host's zone), or `failed`
    once `max_attempts` is reached or the waits the schedule set add up to
    `max_age_s`. Age is never read off the wall clock: a jump of the clock
    neither fails a row with attempts left nor keeps one alive. conflict:
    `quarantined`, the document with a "delivery-conflict" problem naming the
    document that holds the key there (never `delivered`). permanent: `quarantined`,
    the document with a "delivery-rejected" problem carrying the server's
    message. misconfigured: `queued` again without counting the attempt
    (the destination, not the invoice, needs a person), due no sooner than
    a probe interval and a backoff from now, so that once a probe resumes
    the destination the other rows are tried before it. refused (a
    refusal `observe` found to be this invoice's): retried like transient
    (counted, backoff, `failed` in the end) with the destination's words,
    its attempt lines marked misconfigured.
    """
    at = utc(now)
    base = dict(delivery_id=c.delivery_id, document_id=c.document_id, destination=c.destination,
                outcome=outcome.kind, error=outcome.error)
    if outcome.kind in ("delivered", "found"):
        # The fields sent: the ledger keeps the digest of the values the destination holds.
        ok = ledger.finish_delivery(c.delivery_id, c.token, state="delivered", now=at, actor=actor,
                                    outcome=outcome.kind, receipt=outcome.receipt.to_dict(), sent_fields=c.fields)
        return Result(**base, row_state="delivered", recorded=ok)
    if outcome.kind == "conflict":
        holder = ledger.delivered_holder(c.destination, outcome.receipt.key if outcome.receipt else "",
                                   other_than=c.document_id)
        key = outcome.receipt.key if outcome.receipt else "?"
        # A rejected holder's copy stays there until a person removes it.
        rejected = holder is not None and ledger.state_of(holder) == "rejected"
        error = (f"delivery-conflict: {c.destination} already holds another file under key {key}"
                 + (f" (document {holder}" + (", rejected: remove its copy there by hand, then `accept` this one"
                                              if rejected else "") + ")" if holder is not None else "")
                 + "; this document's content was not delivered")
        problem = Problem(code=DELIVERY_CONFLICT, severity="error", field=None, message=error,
                          message_zh="目标处已存有同一发票号码的另一份文件，本文件未交付")
        ok = ledger.finish_delivery(c.delivery_id, c.token, state="quarantined", now=at, actor=actor,
                                    outcome="conflict", error=error, problem=problem)
        return Result(**{**base, "error": error}, row_state="quarantined", recorded=ok)
    if outcome.kind == "original":
        # Nothing was sent and the destination refused nothing: the vault's
        # original is gone or altered (audit ledger: object-missing). Said
        # so, not "refused by" a destination that never saw it.
        problem = Problem(code=DELIVERY_REJECTED, severity="error", field=None,
                          message=(f"not sent to {c.destination}: {outcome.error}; the destination refused nothing: "
                                   "restore the original from a backup (`fapiao-agent backup restore`), then "
                                   f"`fapiao-agent accept {c.document_id}`"),
                          message_zh=(f"未发送到 {c.destination}：保险库中的原件缺失或与记录不符（不是目标拒收）："
                                      f"请从备份恢复原件（fapiao-agent backup restore）后执行 "
                                      f"fapiao-agent accept {c.document_id}"))
        ok = ledger.finish_delivery(c.delivery_id, c.token, state="quarantined", now=at, actor=actor,
                                    outcome="permanent", error=outcome.error, problem=problem)
        return Result(**base, row_state="quarantined", recorded=ok)
    if outcome.kind == "permanent":
        problem = Problem(code=DELIVERY_REJECTED, severity="error", field=None,
                          message=f"delivery refused: {outcome.error}",
                          # The destination's reason, not a guess at it: a
                          # refusal that no 补录 can fix (a folder that
                          # cannot hold two invoices sharing a 号码) is no
                          # call to correct the invoice.
                          message_zh=(f"目标 {c.destination} 拒收此发票，原因："
                                      f"{_reason(outcome.error, c.destination)}"))
        ok = ledger.finish_delivery(c.delivery_id, c.token, state="quarantined", now=at, actor=actor,
                                    outcome="permanent", error=outcome.error, problem=problem)
        return Result(**base, row_state="quarantined", recorded=ok)
    local = now.astimezone(tz or policy.timezone)
    if outcome.kind == "misconfigured":
        # Behind the rows already waiting: were it due again the moment a
        # probe resumes the destination, it would be claimed first and pause
        # it again, every time, and no other row would ever be tried.
        when = next_attempt_at(local + dt.timedelta(seconds=policy.probe_interval_s), c.attempts, None,
                               base_s=policy.base_delay_s, max_delay_s=policy.max_delay_s, rng=rng,
                               windows=policy.maintenance).astimezone(dt.timezone.utc)
        ok = ledger.finish_delivery(c.delivery_id, c.token, state="queued", now=at, actor=actor,
                                    outcome="misconfigured", error=outcome.error, next_attempt_at=utc(when),
                                    uncount_attempt=True)
        return Result(**base, row_state="queued", next_attempt_at=when, recorded=ok)
    # A refused attempt's line says what the destination answered (metrics
    # count it a failure); its error says it was counted.
    kind = "misconfigured" if outcome.kind == "refused" else "transient"
    if c.attempts >= policy.max_attempts or c.waited_s >= policy.max_age_s:
        why = (f"{c.attempts} attempts" if c.attempts >= policy.max_attempts
               else f"still undelivered after {c.waited_s / 3600:.1f} h of retry waits")
        error = f"gave up ({why}): {outcome.error}"
        ok = ledger.finish_delivery(c.delivery_id, c.token, state="failed", now=at, actor=actor,
                                    outcome=kind, error=error)
        return Result(**{**base, "error": error}, row_state="failed", recorded=ok)
    when = next_attempt_at(local, c.attempts, outcome.retry_after, base_s=policy.base_delay_s,
                           max_delay_s=policy.max_delay_s, rng=rng, windows=policy.maintenance)
    when = when.astimezone(dt.timezone.utc)
    ok = ledger.finish_delivery(c.delivery_id, c.token, state="queued", now=at, actor=actor,
                                outcome=kind, error=outcome.error, next_attempt_at=utc(when),
                                wait_s=max(0.0, (when - now).total_seconds()))
    return Result(**base, row_state="queued", next_attempt_at=when, recorded=ok)


def record_safely(ledger: Ledger, c: Claim, outcome: Outcome, policy: DeliveryPolicy, *, now: dt.datetime,
                  rng: random.Random, actor: str, tz: dt.tzinfo | None = None) -> Result:
    """`record`, in a savepoint of the caller's transaction (or its own),
    never raising for one row: when recording `outcome` fails (a bug, a value
    the ledger refuses), that row is recorded instead as a transient failure
    naming the error (counted, retried, `failed` in the end), so it is not
    left `delivering` and the rest of a batch is still recorded. If even that
    fails, a Result with recorded=False and outcome "unrecorded" says so
    (the row's lease expires and it is looked up again). Raises only when
    the ledger lost the caller's whole transaction (nothing of the batch is
    written then)."""
    outer = ledger.conn.in_transaction
    try:
        with ledger.transaction():
            return record(ledger, c, outcome, policy, now=now, rng=rng, actor=actor, tz=tz)
    except Exception as e:
        if outer and not ledger.conn.in_transaction:
            raise
        error = str(AdapterError(f"internal error recording the {outcome.kind} outcome: "
                                 f"{type(e).__name__}: {e}; retried"))
    try:
        with ledger.transaction():
            return record(ledger, c, Outcome("transient", error=error), policy, now=now, rng=rng, actor=actor,
                          tz=tz)
    except Exception as e:
        if outer and not ledger.conn.in_transaction:
            raise
        return Result(delivery_id=c.delivery_id, document_id=c.document_id, destination=c.destination,
                      outcome="unrecorded", row_state="delivering", recorded=False,
                      error=f"{error}; recording that failed too: {type(e).__name__}: {e}")


def observe(gate: Gate, outcome: Outcome, now: dt.datetime, refusals: Refusals | None = None, *,
            row: int | None = None) -> tuple[Outcome, str | None]:
    """The gate learns from `outcome` of delivery `row`; returns the outcome
    to record and the gate's change (as `Gate.observe`). With `refusals` (one
    per destination, kept as long as its gate), a misconfigured outcome that
    `Refusals` finds to be this invoice's (other rows were delivered while
    it was refused) becomes `refused`: the destination is not paused, and
    the row is retried and counted. Without it every refusal pauses the
    destination."""
    if refusals is not None:
        if outcome.kind in ("delivered", "found"):
            refusals.delivered(now)
        elif outcome.kind == "misconfigured" and refusals.refused(row, now):
            return Outcome("refused", error=f"{outcome.error} (refused for this invoice only: other invoices "
                                            f"were delivered meanwhile; counted as an attempt)"), None
    return outcome, gate.observe(outcome, now)


def deliver_step(ledger: Ledger, dest: Destination, policy: DeliveryPolicy, gate: Gate, *, vault: Vault,
                 now: dt.datetime, rng: random.Random, lease_s: float, token: str, actor: str,
                 tz: dt.tzinfo | None = None, refusals: Refusals | None = None) -> Result | Decision | None:
    """One step for one destination at `now`: a Decision to wait (or the
    probe made), the Result of one delivery, or None when nothing is due.
    `refusals` as for `observe`."""
    decision = gate.decide(now)
    if decision.kind == "wait":
        return decision
    if decision.kind == "probe":
        try:
            dest.probe()
            gate.probed(None, now)
        except AdapterError as e:
            gate.probed(e, now)
        return decision
    claims = claim(ledger, dest.name, now=now, lease_s=lease_s, token=token, actor=actor,
                   max_delay_s=policy.max_delay_s)
    if not claims:
        return None
    outcome, _ = observe(gate, send(dest, claims[0], vault), now, refusals, row=claims[0].delivery_id)
    return record_safely(ledger, claims[0], outcome, policy, now=now, rng=rng, actor=actor, tz=tz)


def _reason(error: str | None, destination: str) -> str:
    # The adapter's error without its own "<destination>: " lead, which the
    # sentence around it already names.
    text = error or "?"
    return text[len(destination) + 2:] if text.startswith(f"{destination}: ") else text
