"""Reconciliation: is every delivered invoice really in the finance system?

Each delivered (or missing, or on request confirmed) row is looked up at its
destination, under the key it was delivered under. Found: `confirmed`, with
the system's receipt stored (found under a key the document no longer has:
`superseded`). Absent: `missing`, and queued again at once when
requeue_missing is set. A lookup that fails changes nothing; the row is
checked again next time.

Then every old key the destination holds a document under (agent/ledger/
held_keys.py: a key it was delivered under before an amend changed it),
whatever the document's state, unless a row of this run looked it up: a
copy under a wrong number a person must remove (`status` names it). A row
`superseded` by an amend is looked up under its old key like a delivered
row: found, it stays superseded (named); gone, the row is `missing`, as a
delivered row found gone is, and never sent again by reconciliation (a
live document's `requeue` sends it under its key). An old key no row
stands for (the row sent again under the new key since, `requeue
--destination`): found, it stays held (`superseded` in the report); gone,
it is forgotten with an event (`forgotten`).

A rejected document's row left `delivering` by an interrupted put (its
worker killed mid-put) is never claimed again (a person holds the
document), so reconciliation settles it too, once its lease has ended:
its key found there, the row is `delivered` (a person removes it there,
then the next run finds it gone); not found, it ends as a put that never
landed (`Ledger.record_stranded_lookup`). A live lease is left alone: the
put may still be under way in another process.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterator, Mapping, Sequence

from agent.deliver.base import Destination, Misconfigured, Receipt
from agent.errors import AdapterError
from agent.ledger import Ledger
from agent.ledger.rows import utc, yuan

# Consecutive failed lookups after which a destination is left for next time.
GIVE_UP_AFTER = 5
PAGE = 500
SCHEDULED_STATES = ("delivered", "missing")
ALL_STATES = ("delivered", "missing", "confirmed")


@dataclass
class Check:
    """One row or old key looked up (`key`): `result` is confirmed,
    superseded (found there under an old key the document no longer has),
    missing, requeued, forgotten (an old key no row stands for, gone
    there), error (lookup failed; nothing changed) or skipped (the row
    changed meanwhile, or its destination was given up for this run); for
    a rejected document's interrupted put, landed (found there: delivered),
    never-landed (not there) or in-flight (its lease is live: not looked
    up, `error` says until when)."""

    document_id: int
    destination: str
    invoice_number: str | None
    invoice_date: str | None
    total: str | None
    delivered_at: str | None
    result: str
    remote_id: str | None = None
    error: str | None = None
    key: str | None = None

    def to_dict(self) -> dict:
        """JSON-ready form (the `reconcile --json` line)."""
        return asdict(self)


@dataclass
class ReconcileReport:
    """Every check of one run, and the counts that end the CLI's output."""

    checks: list[Check] = field(default_factory=list)

    @property
    def summary(self) -> dict[str, int]:
        """checked, confirmed, missing (requeued ones included), requeued,
        errors, skipped, superseded (found under an old key), forgotten (an
        old key found gone); and a rejected document's interrupted puts:
        landed, never_landed, in_flight (not checked)."""
        count = {r: sum(1 for c in self.checks if c.result == r)
                 for r in ("confirmed", "missing", "requeued", "error", "skipped", "landed", "never-landed",
                           "in-flight", "superseded", "forgotten")}
        return {"checked": sum(1 for c in self.checks if c.result not in ("skipped", "in-flight")),
                "confirmed": count["confirmed"], "missing": count["missing"] + count["requeued"],
                "requeued": count["requeued"], "errors": count["error"], "skipped": count["skipped"],
                "superseded": count["superseded"], "forgotten": count["forgotten"],
                "landed": count["landed"], "never_landed": count["never-landed"], "in_flight": count["in-flight"]}


def reconcile(ledger: Ledger, destinations: Mapping[str, Destination], *, now: dt.datetime, actor: str,
              requeue_missing: bool, since: dt.datetime | None = None,
              states: Sequence[str] = SCHEDULED_STATES,
              progress: Callable[[Check], None] | None = None) -> ReconcileReport:
    """Look up every row of the given `destinations` in `states` delivered
    at or after `since`, every old key they hold a document under, first
    held then, and every rejected document's row left `delivering` whose
    lease ended (whatever `since`: it has no delivery to date it), and
    record what was found (see the module docstring).

    Guarantees: only rows still in the state they were read in are changed
    (a stranded row: still its lease's, ended before `now`; an old key:
    still held, no row standing for it); a destination that is
    Misconfigured, or fails GIVE_UP_AFTER lookups in a row, is skipped for
    the rest of the run; a key of a document is looked up at most once a
    run at a destination (a missing row found under its old key is not
    looked up again as an old key). Only AdapterErrors are caught.
    """
    report = ReconcileReport()
    since_text = utc(since) if since else None
    for name, dest in destinations.items():
        failures, given_up = 0, None
        looked_up = set()   # (document, key) looked up at this destination in this run
        for row in _candidates(ledger, name, states, since_text):
            if (row["document_id"], row["lookup_key"]) in looked_up:
                continue
            check = Check(document_id=row["document_id"], destination=name,
                          invoice_number=row["invoice_number"], invoice_date=row["invoice_date"],
                          total=yuan(row["total_cents"]), delivered_at=row["delivered_at"], result="skipped",
                          error=given_up, key=row["lookup_key"])
            if given_up is None:
                looked_up.add((row["document_id"], row["lookup_key"]))
                if _held_only(row):
                    given_up, failures = _check_held(ledger, dest, row, check, failures, now=now, actor=actor)
                else:
                    given_up, failures = _check(ledger, dest, row, check, failures, now=now, actor=actor,
                                                requeue_missing=requeue_missing)
            report.checks.append(check)
            if progress is not None:
                progress(check)
        for row in _stranded(ledger, name):
            check = Check(document_id=row["document_id"], destination=name,
                          invoice_number=row["invoice_number"], invoice_date=row["invoice_date"],
                          total=yuan(row["total_cents"]), delivered_at=row["delivered_at"], result="skipped",
                          error=given_up, key=row["lookup_key"])
            if given_up is None:
                given_up, failures = _check_stranded(ledger, dest, row, check, failures, now=now, actor=actor)
            report.checks.append(check)
            if progress is not None:
                progress(check)
    return report


def _candidates(ledger: Ledger, name: str, states: Sequence[str], since: str | None) -> Iterator[dict]:
    # Pages, so a ledger of a million confirmed invoices is not held in memory
    # at once; then the old keys held there (a superseded row's among them).
    yield from _pages(lambda after: ledger.reconcile_candidates(states=states, destination=name, since=since,
                                                                after_id=after, limit=PAGE))
    yield from _pages(lambda after: ledger.old_key_candidates(destination=name, since=since, after_id=after,
                                                              limit=PAGE), by="held_id")


def _pages(page: Callable[[int], list[dict]], by: str = "delivery_id") -> Iterator[dict]:
    after = 0
    while True:
        rows = page(after)
        yield from rows
        if len(rows) < PAGE:
            return
        after = rows[-1][by]


def _stranded(ledger: Ledger, name: str) -> Iterator[dict]:
    return _pages(lambda after: ledger.stranded_rejected(destination=name, after_id=after, limit=PAGE))


def _check_stranded(ledger: Ledger, dest: Destination, row: dict, check: Check, failures: int, *,
                    now: dt.datetime, actor: str) -> tuple[str | None, int]:
    # A live lease is never judged: the put may be under way in another
    # process (a daemon's worker, lease_s past its claim), and a lookup now
    # could miss what lands a moment later. Once the lease has ended, no
    # worker can still record it (finish_delivery needs the lease), and the
    # destination's answer is the whole truth.
    if row["lease_until"] is not None and row["lease_until"] > utc(now):
        check.result = "in-flight"
        check.error = f"a put may be in flight (its lease ends {row['lease_until']}): run this again after"
        return None, failures
    key = row["lookup_key"]
    found, answered, stop, failures = _look_up(dest, key, check, failures,
                                               say=f"{dest.name} cannot say whether it holds it: ")
    if not answered:
        return stop, failures
    note = None
    held = found.raw.get("sha256") if found is not None and isinstance(found.raw, dict) else None
    if held and row["sha256"] and str(held).lower() != row["sha256"].lower():
        # As the loop's recovery (deliver.loop._held_as_sent): another file
        # under the key is not this document's put having landed.
        note = f"{dest.name} holds another file under key {key} (sha256 {held}), not this document's"
        found = None
    receipt = found.to_dict() if found is not None else None
    result = ledger.record_stranded_lookup(row["delivery_id"], found=receipt, lease_token=row["lease_token"],
                                           now=utc(now), actor=actor, note=note)
    check.result = result or "skipped"
    if found is not None:
        check.remote_id = found.remote_id
    if result is None:
        check.error = "the row changed while it was being checked"
    elif note:
        check.error = note
    return None, 0


def _check(ledger: Ledger, dest: Destination, row: dict, check: Check, failures: int, *, now: dt.datetime,
           actor: str, requeue_missing: bool) -> tuple[str | None, int]:
    # The key the row was delivered under: after an amend the document's own
    # key may differ, and the destination holds what it was sent.
    key = row["lookup_key"]
    found, answered, stop, failures = _look_up(dest, key, check, failures)
    if not answered:
        return stop, failures
    receipt = found.to_dict() if found is not None else None
    result = ledger.record_lookup(row["delivery_id"], found=receipt, now=utc(now), actor=actor,
                                  requeue_missing=requeue_missing, expect_state=row["state"])
    check.result = result or "skipped"
    if found is not None:
        check.remote_id = found.remote_id
    elif result is None:
        check.error = "the row changed while it was being checked"
    return None, 0


def _held_only(row: dict) -> bool:
    # An old key no row stands for (a superseded row's is the row's lookup).
    return "held_id" in row and not (row["state"] == "superseded" and row["delivered_key"] == row["lookup_key"])


def _check_held(ledger: Ledger, dest: Destination, row: dict, check: Check, failures: int, *,
                now: dt.datetime, actor: str) -> tuple[str | None, int]:
    # An old key no row stands for: still there, or forgotten.
    key = row["lookup_key"]
    found, answered, stop, failures = _look_up(dest, key, check, failures)
    if not answered:
        return stop, failures
    result = ledger.record_held_key_lookup(row["held_id"], key=key, found=found.to_dict() if found else None,
                                           now=utc(now), actor=actor)
    check.result = result or "skipped"
    if found is not None:
        check.remote_id = found.remote_id
    if result is None:
        check.error = "the key changed while it was being checked"
    return None, 0


def _look_up(dest: Destination, key: str | None, check: Check, failures: int, *,
             say: str = "") -> tuple[Receipt | None, bool, str | None, int]:
    """`dest.lookup(key)` for one check: (what it holds or None, whether it
    answered, the line that stops this destination's checks or None, the
    failed lookups in a row). No key, no lookup (parcel_for refuses an
    invoice without one: nothing was put). A failure marks `check` an
    error (its message after `say`); a misconfigured destination stops at
    once, one that does not answer after GIVE_UP_AFTER failures."""
    try:
        return (dest.lookup(key) if key else None), True, None, failures
    except Misconfigured as e:
        check.result, check.error = "error", f"{say}{e}"
        return None, False, f"skipped: {dest.name} is misconfigured: {e}", failures
    except AdapterError as e:
        check.result, check.error = "error", f"{say}{e}"
        failures += 1
        stop = f"skipped after {failures} failed lookups at {dest.name}" if failures >= GIVE_UP_AFTER else None
        return None, False, stop, failures
