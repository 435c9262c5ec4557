"""Delivery rows: one per document and destination, with retry columns and leases.

A row's state is one of ROW_STATES; the document's state summarises its rows
(`summary_state`). Every row change that moves the document writes the
document's transition and audit event in the same transaction. Attempts go
to `attempts`, one line per try, so `show` can print the history.
Requeues and an amend's superseded rows are in delivery_operators.py.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from agent.ledger.delivery_reports import DeliveryReportsMixin
from agent.ledger.held_values import values_digest
from agent.ledger.documents import Step
from agent.ledger.reconcile_rows import ReconcileRowsMixin
from agent.ledger.rows import parse_utc, utc
from agent.states import TRANSITIONS, State

if TYPE_CHECKING:
    from agent.model import Problem

ROW_STATES = ("queued", "delivering", "delivered", "confirmed", "missing", "failed", "quarantined",
              "superseded", "dropped")
# Rows a new queueing leaves as they are: the destination holds the invoice
# (under `delivered_key`). Any other row of a destination queued for starts
# afresh, a `dropped` one too (its destination is configured again).
_HELD_ROWS = ("delivered", "confirmed", "superseded")
# Only documents in these states have their rows worked on; in any other
# state (quarantined, rejected, back to extracted for 补录) a person holds them.
ACTIVE_DOCUMENT_STATES = (State.QUEUED.value, State.DELIVERING.value, State.FAILED.value,
                          State.MISSING.value, State.DELIVERED.value, State.CONFIRMED.value)
# The document states a delivery row may move a document between.
_DELIVERY_DOC_STATES = frozenset({State.QUEUED, State.DELIVERING, State.DELIVERED, State.CONFIRMED,
                                  State.MISSING, State.FAILED, State.QUARANTINED})
_CLAIM_COLUMNS = ("d.id AS delivery_id, d.document_id, d.destination, d.state AS row_state, d.attempts, "
                  "d.queued_at, d.waited_s, doc.sha256, doc.media_type, doc.original_name, doc.fields")
# A row written this far after `now` was written before the wall clock went
# back (threads take `now` at slightly different moments, so not less).
# Same as agent.deliver.retry.CLOCK_SLACK_S.
_CLOCK_SLACK_S = 1.0
# A queued row due further ahead than the longest backoff, and written after
# now: its wait was set before a backward jump of the clock, so it is due now.
# Found by the deliveries_written index (such rows are normally none).
_WRITTEN_INDEX = "deliveries d INDEXED BY deliveries_written"
_JUMPED = "d.updated_at > ? AND d.next_attempt_at > ?"


def _jumped_params(now: str, max_wait_s: float) -> tuple[str, str]:
    return _later(now, _CLOCK_SLACK_S), _later(now, max(max_wait_s, 0.0) + _CLOCK_SLACK_S)


def summary_state(row_states: Iterable[str]) -> State | None:
    """The document state its delivery rows add up to, or None without rows.

    The most urgent row wins: quarantined, failed, delivering, queued,
    missing; then delivered unless every row is confirmed. A `superseded`
    row (held under the invoice's old key) asks nothing more of the machine:
    it counts only when it is all there is, as delivered. A `dropped` row
    (an operator let a removed destination's row go) does not count at all:
    rows all dropped are no rows.
    """
    states = set(row_states)
    states.discard("dropped")
    if not states:
        return None
    if states == {"superseded"}:
        return State.DELIVERED
    states.discard("superseded")
    for row_state, doc_state in (("quarantined", State.QUARANTINED), ("failed", State.FAILED),
                                 ("delivering", State.DELIVERING), ("queued", State.QUEUED),
                                 ("missing", State.MISSING), ("delivered", State.DELIVERED)):
        if row_state in states:
            return doc_state
    return State.CONFIRMED


class DeliveriesMixin(DeliveryReportsMixin, ReconcileRowsMixin):
    """Part of `Ledger`: delivery rows, attempts and leases."""

    def queue_deliveries(self, doc_id: int, destinations: Sequence[str], *, now: str, actor: str,
                         before: Sequence[Step] = (), expect: State | None = None) -> State:
        """Queue a `valid` document: one delivery row per destination, and
        the document moved to what its rows then add up to, in one
        transaction. Returns that state.

        Rows already delivered, confirmed or superseded (held under an old
        key: only `requeue --destination` sends those again), and rows whose
        put is in flight (delivering, lease live), are left as they are; any other row of `destinations` starts afresh (attempts 0,
        due now). The document goes to `queued` ("queued for" the rows that
        start afresh) and, when its rows add up to something else, on to
        that (`summary_state`, as the delivery loop summarises): delivered
        or confirmed when every destination holds it already (nothing is
        sent), or what a row of a destination not among `destinations` (one
        removed from the config) says; quarantined by such a row carries its
        refusal as a problem. So its state always agrees with its rows.
        `before`: the moves that lead the document to `valid`, not written
        yet (written with these, `advance`), from the state `expect` when
        given."""
        with self.transaction() as c:
            self._queue_rows(doc_id, destinations, now=now)
            rows = c.execute("SELECT destination, state, delivered_key, last_error FROM deliveries "
                             "WHERE document_id = ? ORDER BY id", (doc_id,)).fetchall()
            target = summary_state(r["state"] for r in rows) or State.QUEUED
            fresh = [r["destination"] for r in rows if r["state"] == "queued" and r["destination"] in destinations]
            others = ", ".join(f"{r['destination']} {r['state']}"
                               + (f" under {r['delivered_key']}" if r["delivered_key"] else "")
                               for r in rows if r["destination"] not in fresh)
            steps = [*before, Step(State.QUEUED, "queued for " + ", ".join(fresh) if fresh
                                   else f"queued: nothing to send ({others})")]
            if target != State.QUEUED:
                columns = None
                if target == State.QUARANTINED:
                    columns = {"problems": self._refusals_kept(doc_id, before, rows)}
                steps.append(Step(target, f"its deliveries add up to {target.value}: {others}", columns=columns))
            self.advance(doc_id, steps, now=now, actor=actor, expect=expect)
            return target

    def _queue_rows(self, doc_id: int, destinations: Sequence[str], *, now: str) -> None:
        # One row per destination, due now; one the destination holds is left as it is,
        # and so is one whose put is in flight (a live lease): reset, its put's answer
        # found the lease gone and was never recorded, and the put sent again was
        # "already there", read as if the values sent now had arrived. Left, it ends
        # delivered with what it carried (an amend names it: note_values_held).
        # A row back from `missing` forgets its delivered key, as requeue_deliveries
        # does: the destination said it does not hold it (kept, the row would
        # read as held there, and an amend would supersede what was never there).
        for name in destinations:
            self.conn.execute(
                "INSERT INTO deliveries (document_id, destination, state, next_attempt_at, "
                "queued_at, updated_at) VALUES (?, ?, 'queued', ?, ?, ?) "
                "ON CONFLICT(document_id, destination) DO UPDATE SET state = 'queued', "
                "attempts = 0, lease_until = NULL, lease_token = NULL, sla_warned_at = NULL, "
                "delivered_key = CASE WHEN deliveries.state = 'missing' THEN NULL "
                "ELSE deliveries.delivered_key END, "
                "queued_at = excluded.queued_at, "
                "next_attempt_at = excluded.next_attempt_at, updated_at = excluded.updated_at "
                f"WHERE deliveries.state NOT IN ({','.join('?' * len(_HELD_ROWS))}) "
                "AND NOT (deliveries.state = 'delivering' AND deliveries.lease_until > ?)",
                (doc_id, name, now, now, now, *_HELD_ROWS, now))

    def _refusals_kept(self, doc_id: int, before: Sequence[Step], rows: Sequence) -> list[dict]:
        # The problems the moves before set (else the document's), and for
        # each quarantined row the refusal it stands for: the loop's
        # `delivery-rejected` (agent/deliver/loop.py), so `quarantine` says why.
        problems = next((s.columns["problems"] for s in reversed(before) if s.columns and "problems" in s.columns),
                        None)
        problems = list(self.get(doc_id).problems if problems is None else problems)
        for r in rows:
            if r["state"] == "quarantined":
                problems.append({"code": "delivery-rejected", "severity": "error", "field": None,
                                 "message": f"delivery refused by {r['destination']}: {r['last_error'] or '?'}",
                                 "message_zh": f"目标 {r['destination']} 拒收此发票"})
        return problems

    def deliveries_of(self, doc_id: int) -> list[dict]:
        """Each delivery row of a document with its attempts, oldest first."""
        out = []
        for row in self.conn.execute("SELECT * FROM deliveries WHERE document_id = ? ORDER BY id", (doc_id,)):
            d = dict(row)
            d["attempts_log"] = [dict(a) for a in self.conn.execute(
                "SELECT at, outcome, error, next_attempt_at FROM attempts WHERE delivery_id = ? ORDER BY id",
                (d["id"],))]
            out.append(d)
        return out

    def delivery(self, delivery_id: int) -> dict | None:
        """One delivery row as a dict, or None."""
        row = self.conn.execute("SELECT * FROM deliveries WHERE id = ?", (delivery_id,)).fetchone()
        return dict(row) if row else None

    # -- the delivery loop ---------------------------------------------------------

    def claim_deliveries(self, destination: str, *, now: str, lease_until: str, token: str,
                         actor: str, limit: int = 1, max_wait_s: float | None = None) -> list[dict]:
        """Take up to `limit` due rows of `destination` under a lease, in one transaction.

        Due: `delivering` with an expired lease first (a worker died; the
        caller must look the invoice up before putting it again), then
        `queued` with next_attempt_at <= now, oldest first. A clock that
        went back does not stall them: a lease ending after `lease_until`
        (later than one taken now would), and with `max_wait_s` (the
        longest backoff) a queued row due further ahead than that and
        written after `now` (so its wait was set before the jump), are due
        now. Rows of documents a person holds
        (not in ACTIVE_DOCUMENT_STATES) are skipped. Each claimed row
        becomes `delivering`, its attempts grow by one (waited_s restarts
        at a first attempt) and its document moves to `delivering`. Returns
        dicts with the row, the document's sha256, media_type,
        original_name, parsed fields and `row_state` (the state before the claim).
        """
        active = ",".join("?" * len(ACTIVE_DOCUMENT_STATES))
        base = (f"SELECT {_CLAIM_COLUMNS} FROM deliveries d JOIN documents doc ON doc.id = d.document_id "
                f"WHERE d.destination = ? AND doc.state IN ({active}) AND ")
        # A plain read first: idle workers woken by a kick must not queue for the write lock.
        due = self.next_due(destination, now=now, lease_until=lease_until, max_wait_s=max_wait_s)
        if due is None or due > now:
            return []
        with self.transaction() as c:
            rows = c.execute(base + "d.state = 'delivering' AND (d.lease_until <= ? OR d.lease_until > ?) "
                             "ORDER BY d.lease_until LIMIT ?",
                             (destination, *ACTIVE_DOCUMENT_STATES, now, _later(lease_until, _CLOCK_SLACK_S),
                              limit)).fetchall()
            if len(rows) < limit:
                rows += c.execute(base + "d.state = 'queued' AND d.next_attempt_at <= ? "
                                  "ORDER BY d.next_attempt_at, d.id LIMIT ?",
                                  (destination, *ACTIVE_DOCUMENT_STATES, now, limit - len(rows))).fetchall()
            if len(rows) < limit and max_wait_s is not None:
                jumped = base.replace("deliveries d", _WRITTEN_INDEX, 1) + "d.state = 'queued' AND " + _JUMPED
                rows += c.execute(jumped + " ORDER BY d.updated_at DESC, d.id LIMIT ?",
                                  (destination, *ACTIVE_DOCUMENT_STATES, *_jumped_params(now, max_wait_s),
                                   limit - len(rows))).fetchall()
            claimed = []
            for r in rows:
                c.execute("UPDATE deliveries SET state = 'delivering', "
                          "waited_s = CASE WHEN attempts = 0 THEN 0 ELSE waited_s END, attempts = attempts + 1, "
                          "lease_until = ?, lease_token = ?, updated_at = ? WHERE id = ?",
                          (lease_until, token, now, r["delivery_id"]))
                self._summarise(r["document_id"], now=now, actor=actor,
                                reason=f"delivering to {destination}")
                d = dict(r)
                d["fields"] = json.loads(d["fields"]) if d["fields"] else {}
                if d["attempts"] == 0:
                    d["waited_s"] = 0.0
                d["attempts"] += 1
                claimed.append(d)
            return claimed

    def delivered_holder(self, destination: str, key: str, *, other_than: int) -> int | None:
        """The id of another document whose row at `destination` is delivered
        or confirmed under `key` (its delivered_key, else its invoice key), or
        that still holds `key` there from an earlier delivery (requeued,
        superseded, its document rejected meanwhile, or sent there under its
        new key since: `held_key_holder`), or None when there is none."""
        row = self.conn.execute(
            "SELECT d.document_id FROM deliveries d JOIN documents doc ON doc.id = d.document_id "
            "WHERE d.destination = ? AND (d.state IN ('delivered', 'confirmed') OR (d.delivered_key IS NOT NULL "
            "AND d.state != 'missing')) AND d.document_id != ? "
            "AND COALESCE(d.delivered_key, doc.invoice_key) = ? ORDER BY d.id LIMIT 1",
            (destination, other_than, key)).fetchone()
        return row[0] if row else self.held_key_holder(destination, key, other_than=other_than)

    def finish_delivery(self, delivery_id: int, token: str, *, state: str, now: str, actor: str,
                        outcome: str, error: str | None = None, next_attempt_at: str | None = None,
                        receipt: dict | None = None, problem: Problem | None = None,
                        uncount_attempt: bool = False, wait_s: float = 0.0,
                        sent_fields: dict | None = None) -> bool:
        """Record the end of one attempt on a row this worker still leases.

        Writes the row (`state`, last_error, next_attempt_at, receipt, and
        delivered_at and delivered_key (the receipt's key, else the
        document's) as they apply; `wait_s`, the wait to next_attempt_at,
        added to waited_s), one `attempts` line, and the document's
        new summary state with its event (plus `problem` when the row is
        quarantined), all in one transaction. Returns False and changes
        nothing when the lease is no longer `token`'s (another worker took it).

        Delivered with `sent_fields` (the fields the parcel carried): the
        receipt keeps, as `held_values_sha256`, the digest of the values the
        destination holds: those sent, unless the row was delivered under
        this key before (a put of a key it holds changes nothing there,
        docs/destination-api.md), when it keeps the earlier digest. When
        that differs from the values sent (amended since), the attempts
        line and an event on the document say the destination keeps the
        earlier values: the row is delivered (the invoice is there, once),
        never as if the new values were.
        """
        if state not in ROW_STATES or state == "delivering":
            raise ValueError(f"cannot finish a delivery as {state!r}")
        with self.transaction() as c:
            row = c.execute("SELECT document_id, destination, delivered_key, receipt FROM deliveries "
                            "WHERE id = ? AND state = 'delivering' AND lease_token = ?",
                            (delivery_id, token)).fetchone()
            if row is None:
                return False
            delivered = state == "delivered"
            note = None
            if delivered and receipt is not None and sent_fields is not None:
                receipt, note = self._held_values(row, receipt, values_digest(sent_fields))
            c.execute("UPDATE deliveries SET state = ?, lease_until = NULL, lease_token = NULL, "
                      "next_attempt_at = ?, last_error = ?, "
                      "receipt = COALESCE(?, receipt), "
                      "delivered_at = CASE WHEN ? THEN ? ELSE delivered_at END, "
                      "delivered_key = CASE WHEN ? THEN COALESCE(?, (SELECT invoice_key FROM documents "
                      "WHERE documents.id = deliveries.document_id)) ELSE delivered_key END, "
                      "waited_s = waited_s + ?, "
                      "attempts = attempts - ?, updated_at = ? WHERE id = ?",
                      (state, next_attempt_at, error,
                       json.dumps(receipt, ensure_ascii=False, default=str) if receipt else None,
                       delivered, now, delivered, (receipt or {}).get("key"),
                       wait_s, 1 if uncount_attempt else 0, now, delivery_id))
            self._attempt(delivery_id, now=now, outcome=outcome, error=error or note, next_attempt_at=next_attempt_at)
            reason = f"{row['destination']}: {outcome}" + (f": {error}" if error else "")
            self._summarise(row["document_id"], now=now, actor=actor, reason=reason, problem=problem)
            if note:
                self._event(row["document_id"], now=now, actor=actor, from_state=None, to_state=None,
                            reason=note, details={"destination": row["destination"], "values_held": "earlier"})
            return True

    def release_delivery(self, delivery_id: int, token: str, *, recovering: bool, now: str, actor: str) -> bool:
        """Give back a claimed row that was not attempted (the destination
        became unavailable mid-batch): its attempt is not counted and it is
        due now; `delivering` with an expired lease when it was `recovering`
        (so it is still looked up first), else `queued`. False, changing
        nothing, when the lease is not `token`'s."""
        with self.transaction() as c:
            row = c.execute("SELECT document_id FROM deliveries WHERE id = ? AND state = 'delivering' "
                            "AND lease_token = ?", (delivery_id, token)).fetchone()
            if row is None:
                return False
            c.execute("UPDATE deliveries SET state = ?, attempts = attempts - 1, lease_until = ?, "
                      "lease_token = NULL, updated_at = ? WHERE id = ?",
                      ("delivering" if recovering else "queued", now if recovering else None, now, delivery_id))
            self._summarise(row["document_id"], now=now, actor=actor, reason="delivery put back unattempted")
            return True

    def release_leases(self, *, now: str, keep_token_prefix: str) -> int:
        """Make every `delivering` lease not held by `keep_token_prefix` due now.

        Only for a daemon that holds the ledger's lock: the owners of those
        leases are dead. The rows stay `delivering`, so the next claim looks
        each invoice up before putting it again. Returns how many."""
        with self.transaction() as c:
            return c.execute("UPDATE deliveries SET lease_until = ? WHERE state = 'delivering' "
                             "AND (lease_token IS NULL OR substr(lease_token, 1, ?) != ?)",
                             (now, len(keep_token_prefix), keep_token_prefix)).rowcount

    def next_due(self, destination: str, *, now: str | None = None, lease_until: str | None = None,
                 max_wait_s: float | None = None) -> str | None:
        """The earliest next_attempt_at (or lease expiry) among `destination`'s
        waiting rows that a claim could take (documents a person holds excluded).
        Given `now` (and `lease_until`, `max_wait_s` as for a claim), `now`
        when a row set before a backward jump of the clock is due at once.
        Index-ordered with LIMIT 1, so it costs the same at any backlog."""
        active = ",".join("?" * len(ACTIVE_DOCUMENT_STATES))
        join = ("FROM deliveries d JOIN documents doc ON doc.id = d.document_id "
                f"WHERE d.destination = ? AND d.state = ? AND doc.state IN ({active}) ")
        times = []
        for state, column in (("queued", "next_attempt_at"), ("delivering", "lease_until")):
            row = self.conn.execute(f"SELECT d.{column} {join} ORDER BY d.{column} LIMIT 1",
                                    (destination, state, *ACTIVE_DOCUMENT_STATES)).fetchone()
            if row and row[0]:
                times.append(row[0])
        if now is not None and lease_until is not None and self.conn.execute(
                f"SELECT 1 {join} AND d.lease_until > ? LIMIT 1",
                (destination, "delivering", *ACTIVE_DOCUMENT_STATES,
                 _later(lease_until, _CLOCK_SLACK_S))).fetchone():
            times.append(now)
        if now is not None and max_wait_s is not None and self.conn.execute(
                f"SELECT 1 {join.replace('deliveries d', _WRITTEN_INDEX, 1)} AND {_JUMPED} LIMIT 1",
                (destination, "queued", *ACTIVE_DOCUMENT_STATES, *_jumped_params(now, max_wait_s))).fetchone():
            times.append(now)
        return min(times) if times else None

    # -- internals ------------------------------------------------------------------

    def _attempt(self, delivery_id: int, *, now: str, outcome: str, error: str | None,
                 next_attempt_at: str | None) -> None:
        self.conn.execute("INSERT INTO attempts (delivery_id, at, outcome, error, next_attempt_at) "
                          "VALUES (?, ?, ?, ?, ?)", (delivery_id, now, outcome, error, next_attempt_at))

    def _summarise(self, doc_id: int, *, now: str, actor: str, reason: str,
                   problem: Problem | None = None, details: dict | None = None, via_queued: bool = False) -> None:
        # Called inside a transaction. A document an operator holds, or one
        # whose summary the machine does not allow from here, keeps its state
        # and gets a note instead, so a delivery is never lost to a refusal.
        # `via_queued`: rows let go by an operator; the document is queued
        # again and follows the rows left, when the machine allows no direct move.
        doc = self.get(doc_id)
        target = summary_state(r[0] for r in self.conn.execute(
            "SELECT state FROM deliveries WHERE document_id = ?", (doc_id,)))
        current = State(doc.state)
        if target is None or current == target:
            return
        if (via_queued and current in _DELIVERY_DOC_STATES and target not in TRANSITIONS[current]
                and State.QUEUED in TRANSITIONS[current] and target in TRANSITIONS[State.QUEUED]):
            self.advance(doc_id, [Step(State.QUEUED, reason, details),
                                  Step(target, f"its deliveries add up to {target.value}")], now=now, actor=actor)
            return
        if current not in _DELIVERY_DOC_STATES or target not in TRANSITIONS[current]:
            self._event(doc_id, now=now, actor=actor, from_state=None, to_state=None,
                        reason=f"{reason} (document stays {current.value}; its deliveries say {target.value})",
                        details=details)
            return
        columns: dict[str, Any] = {}
        if problem is not None and target == State.QUARANTINED:
            columns["problems"] = [p for p in doc.problems if p.get("code") != problem.code] + [problem.to_dict()]
        self.transition(doc_id, target, now=now, actor=actor, reason=reason, details=details, **columns)


def _later(stamp: str, seconds: float) -> str:
    """The ledger timestamp `seconds` after `stamp`."""
    return utc(parse_utc(stamp) + dt.timedelta(seconds=seconds))
