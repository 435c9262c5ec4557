"""Delivery rows changed outside the delivery loop: put back to `queued` by
an operator (`requeue`, `retry`) or by reconciliation, set aside as
`superseded` when an amend changes the invoice key, and `dropped` when an
operator lets go of a destination removed from the config
(`drop-destination`) (a mixin of the one Ledger class). Apart from
deliveries.py, which holds the rows' creation, the loop's claims and
leases, and the summary every change here goes through (`_summarise`,
`_attempt`). The keys a destination holds a document under, old ones
included, are held_keys.py's (HeldKeysMixin, a base of this one)."""

from __future__ import annotations

from typing import Any, Sequence

from agent.ledger.deliveries import ACTIVE_DOCUMENT_STATES, ROW_STATES
from agent.ledger.held_keys import HeldKeysMixin

# A row the destination may hold the invoice under its `delivered_key` (a
# `delivering` row's put may have landed). An amend to another key makes these
# `superseded`: never delivered again there unless an operator names the
# destination in `requeue --destination`.
_HELD_ROW_STATES = ("delivering", "delivered", "confirmed")
# Rows a destination has not (or not for sure) got: what `drop-destination`
# lets go of. Delivered, confirmed and superseded rows stay: they are history.
OPEN_ROW_STATES = ("queued", "delivering", "failed", "missing", "quarantined")
# Rows only an operator naming their destination brings back.
_NAMED_ONLY = ("superseded", "dropped")


class DeliveryOperatorsMixin(HeldKeysMixin):
    """Part of `Ledger`: requeues, the documents they pick, and an amend's
    superseded rows; through HeldKeysMixin, the keys destinations hold."""

    def requeue_deliveries(self, doc_id: int, *, from_states: Sequence[str], now: str, actor: str,
                           reason: str, destination: str | None = None,
                           configured: Sequence[str] | None = None) -> list[str]:
        """Put the document's rows in `from_states` (of `destination`, or all;
        given `configured`, only rows of those destinations: no loop sends
        another's) back to `queued`, due now, with attempts reset; the
        document follows. `superseded` rows (the destination holds the
        invoice under an old key) and `dropped` ones (let go while their
        destination was not configured) are requeued only when
        `destination` names theirs. A row back from `missing` forgets its
        delivered key: the destination said it does not hold it. Returns
        the destinations requeued (empty: nothing matched, nothing changed)."""
        states = [s for s in from_states if s in ROW_STATES and s not in ("delivering", "quarantined")
                  and (s not in _NAMED_ONLY or destination is not None)]
        if not states or (configured is not None and not configured):
            return []
        marks = ",".join("?" * len(states))
        sql = (f"SELECT id, destination, state, attempts FROM deliveries WHERE document_id = ? "
               f"AND state IN ({marks})")
        params: list[Any] = [doc_id, *states]
        if destination is not None:
            sql += " AND destination = ?"
            params.append(destination)
        if configured is not None:
            sql += f" AND destination IN ({','.join('?' * len(configured))})"
            params += list(configured)
        with self.transaction() as c:
            rows = c.execute(sql + " ORDER BY id", params).fetchall()
            before = self.state_of(doc_id) if rows else None
            for r in rows:
                c.execute("UPDATE deliveries SET state = 'queued', attempts = 0, next_attempt_at = ?, "
                          "queued_at = ?, lease_until = NULL, lease_token = NULL, sla_warned_at = NULL, "
                          "delivered_key = CASE WHEN state = 'missing' THEN NULL ELSE delivered_key END, "
                          "updated_at = ? WHERE id = ?", (now, now, now, r["id"]))
                self._attempt(r["id"], now=now, outcome="requeued", error=reason, next_attempt_at=now)
            if rows:
                self._summarise(doc_id, now=now, actor=actor, reason=reason)
                if self.state_of(doc_id) == before:
                    # No move to show it (a queued row due now again, its
                    # attempts reset): the trail says so all the same.
                    said = ", ".join(f"{r['destination']} ({r['state']}, {r['attempts']} attempts)" for r in rows)
                    self._event(doc_id, now=now, actor=actor, from_state=None, to_state=None,
                                reason=f"{reason}: {said} due now, attempts reset")
            return [r["destination"] for r in rows]

    def retry_failed(self, *, configured: Sequence[str], now: str, actor: str, reason: str,
                     destination: str | None = None) -> tuple[int, dict[str, int]]:
        """`requeue_deliveries` of the failed rows of every document having
        one (of `destination`, else of every destination in `configured`),
        each document in its own transaction. Failed rows of destinations
        not in `configured` are left (no loop would send them). Returns the
        number of documents requeued and, per destination left, its failed
        rows."""
        n = 0
        for doc_id in self.documents_with_rows("failed", destination=destination):
            n += bool(self.requeue_deliveries(doc_id, from_states=("failed",), destination=destination, now=now,
                                              actor=actor, reason=reason, configured=configured))
        if destination is not None:
            return n, {}
        left = dict(self.conn.execute(
            f"SELECT destination, count(*) FROM deliveries WHERE state = 'failed' AND destination NOT IN "
            f"({','.join('?' * len(configured))}) GROUP BY destination ORDER BY destination", list(configured)))
        return n, left

    def drop_deliveries(self, destination: str, *, configured: Sequence[str], now: str, actor: str,
                        reason: str) -> list[dict]:
        """Let go of every open row (queued, failed, missing, quarantined,
        or delivering with its lease ended) of `destination`, which must
        not be among `configured` (ValueError): each row `dropped`, with an
        attempts line, never sent by any loop (unless the destination is
        configured again and the document queued again). One transaction
        and one event per document (`reason` in it): a document in delivery
        follows the rows left (through `queued` when the machine has no
        direct move); one whose every row was that destination's is queued
        for `configured` instead; a document a person holds (quarantined,
        rejected, held for 补录) keeps its state. A document is left
        unchanged while its row is being sent (a live lease), or when it
        would have nowhere to go (no destination configured). Returns, per
        document: document_id, state_before, state, dropped (the row
        states), queued_for, left (why it was left, else None)."""
        if destination in configured:
            raise ValueError(f"{destination} is configured: only a removed destination's rows can be let go")
        marks = ",".join("?" * len(OPEN_ROW_STATES))
        ids = [r[0] for r in self.conn.execute(
            f"SELECT DISTINCT document_id FROM deliveries WHERE destination = ? AND state IN ({marks}) "
            "ORDER BY document_id", (destination, *OPEN_ROW_STATES))]
        return [self._drop_rows(doc_id, destination, configured=configured, now=now, actor=actor, reason=reason)
                for doc_id in ids]

    def open_rows_by_destination(self) -> dict[str, int]:
        """Rows not (or not for sure) at their destination (OPEN_ROW_STATES),
        per destination name the ledger holds rows for, configured or not."""
        marks = ",".join("?" * len(OPEN_ROW_STATES))
        return dict(self.conn.execute(f"SELECT destination, count(*) FROM deliveries WHERE state IN ({marks}) "
                                      "GROUP BY destination ORDER BY destination", OPEN_ROW_STATES))

    def _drop_rows(self, doc_id: int, destination: str, *, configured: Sequence[str], now: str, actor: str,
                   reason: str) -> dict:
        marks = ",".join("?" * len(OPEN_ROW_STATES))
        with self.transaction() as c:
            before = self.state_of(doc_id)
            rows = c.execute(f"SELECT id, state, lease_until FROM deliveries WHERE document_id = ? "
                             f"AND destination = ? AND state IN ({marks}) ORDER BY id",
                             (doc_id, destination, *OPEN_ROW_STATES)).fetchall()
            out = {"document_id": doc_id, "state_before": before, "state": before,
                   "dropped": [r["state"] for r in rows], "queued_for": [], "left": None}
            live = [r["lease_until"] for r in rows if r["state"] == "delivering" and (r["lease_until"] or "") > now]
            others = c.execute("SELECT count(*) FROM deliveries WHERE document_id = ? AND destination != ? "
                               "AND state != 'dropped'", (doc_id, destination)).fetchone()[0]
            active = before in ACTIVE_DOCUMENT_STATES
            if live:
                out["left"] = (f"being sent to {destination} right now (lease until {max(live)}); "
                               "run this again once it ends")
            elif active and not others and not configured:
                out["left"] = f"{destination} is its only destination and none is configured: add one, or reject it"
            if out["left"]:
                out["dropped"] = []
                return out
            for r in rows:
                c.execute("UPDATE deliveries SET state = 'dropped', lease_until = NULL, lease_token = NULL, "
                          "next_attempt_at = NULL, updated_at = ? WHERE id = ?", (now, r["id"]))
                self._attempt(r["id"], now=now, outcome="dropped", error=reason, next_attempt_at=None)
            if active and not others:
                self._queue_rows(doc_id, configured, now=now)
                out["queued_for"] = list(configured)
            said = (f"delivery to {destination} let go ({', '.join(out['dropped'])}; {destination} is no longer "
                    f"configured): {reason}"
                    + (f"; queued for {', '.join(configured)} instead" if out["queued_for"] else ""))
            details = {"destination": destination, "dropped": out["dropped"], "reason": reason,
                       "queued_for": out["queued_for"]}
            if active:
                self._summarise(doc_id, now=now, actor=actor, reason=said, details=details, via_queued=True)
            out["state"] = self.state_of(doc_id)
            if out["state"] == before:
                held = "" if active else f" (document stays {before}: a person decides it)"
                self._event(doc_id, now=now, actor=actor, from_state=None, to_state=None, reason=said + held,
                            details=details)
            return out

    def documents_with_rows(self, state: str, *, destination: str | None = None,
                            limit: int | None = None) -> list[int]:
        """Ids of documents having a delivery row in `state` (of `destination`), oldest first."""
        sql = "SELECT DISTINCT document_id FROM deliveries WHERE state = ?"
        params: list[Any] = [state]
        if destination is not None:
            sql += " AND destination = ?"
            params.append(destination)
        sql += " ORDER BY document_id" + (f" LIMIT {int(limit)}" if limit else "")
        return [r[0] for r in self.conn.execute(sql, params)]

    def supersede_deliveries(self, doc_id: int, *, old_key: str | None, new_key: str | None, now: str,
                             actor: str) -> list[dict]:
        """Account for a change of the document's invoice key from `old_key`
        to `new_key` (an amend), in one transaction, before it is queued again.

        Rows the destination may hold under another key than `new_key`
        (delivering, delivered or confirmed, or queued/failed again after a
        delivery) become `superseded`, keeping that key in `delivered_key`,
        so no loop delivers the invoice there a second time; a superseded row
        whose key is `new_key` again is `delivered` once more, and so is a
        row (not in flight) of a destination that holds the invoice under
        `new_key` from before (held_keys: amended back after it was sent
        under another key; that one stays held there, an old key). Each
        changed row gets an `attempts` line and the document one event
        naming them. Returns [{destination, key, state}] for the rows changed."""
        held = ",".join("?" * len(_HELD_ROW_STATES))
        with self.transaction() as c:
            rows = c.execute(
                "SELECT id, destination, state, COALESCE(delivered_key, ?) AS key FROM deliveries "
                f"WHERE document_id = ? AND (state IN ({held}) OR state = 'superseded' "
                "OR (delivered_key IS NOT NULL AND state NOT IN ('missing', 'dropped'))) ORDER BY id",
                (old_key, doc_id, *_HELD_ROW_STATES)).fetchall()
            holding = {h["destination"] for h in self.held_keys(doc_id) if h["key"] == new_key}
            changed = []
            for r in rows:
                if r["key"] is None:
                    continue
                key = r["key"]
                if r["key"] != new_key and r["state"] != "delivering" and r["destination"] in holding:
                    state, key = "delivered", new_key
                    note = (f"the invoice key is {new_key} again, which {r['destination']} holds it under from "
                            f"before; it holds it under {r['key']} too, an old key named until it is gone there")
                elif r["state"] == "superseded" and r["key"] == new_key:
                    state, note = "delivered", f"the invoice key is {new_key} again, as delivered"
                elif r["state"] != "superseded" and r["key"] != new_key:
                    state = "superseded"
                    note = (f"invoice key changed from {r['key']} to {new_key or '(none)'}; {r['destination']} "
                            f"may hold it under {r['key']}: `requeue --destination {r['destination']}` "
                            "delivers it again under the new key")
                else:
                    continue
                c.execute("UPDATE deliveries SET state = ?, delivered_key = ?, lease_until = NULL, "
                          "lease_token = NULL, next_attempt_at = NULL, updated_at = ? WHERE id = ?",
                          (state, key, now, r["id"]))
                self._attempt(r["id"], now=now, outcome=state, error=note, next_attempt_at=None)
                changed.append({"destination": r["destination"], "key": key, "state": state})
            if changed:
                said = "; ".join(f"{x['destination']} ({x['key']}): {x['state']}" for x in changed)
                self._event(doc_id, now=now, actor=actor, from_state=None, to_state=None,
                            reason=f"deliveries under the old invoice key: {said}",
                            details={"old_key": old_key, "new_key": new_key, "deliveries": changed})
            return changed
