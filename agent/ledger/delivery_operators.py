"""Delivery rows changed outside the delivery loop: put back to `queued` by
an operator (`requeue`, `retry`) or by reconciliation, and set aside as
`superseded` when an amend changes the invoice key (a mixin of the one
Ledger class). Apart from deliveries.py, which holds the rows' creation,
the loop's claims and leases, and the summary every change here goes
through (`_summarise`, `_attempt`)."""

from __future__ import annotations

from typing import Any, Sequence

from agent.ledger.deliveries import ROW_STATES

# A row the destination may hold the invoice under its `delivered_key` (a
# `delivering` row's put may have landed). An amend to another key makes these
# `superseded`: never delivered again there unless an operator names the
# destination in `requeue --destination`.
_HELD_ROW_STATES = ("delivering", "delivered", "confirmed")


class DeliveryOperatorsMixin:
    """Part of `Ledger`: requeues, the documents they pick, and an amend's superseded rows."""

    def requeue_deliveries(self, doc_id: int, *, from_states: Sequence[str], now: str, actor: str,
                           reason: str, destination: str | None = None) -> list[str]:
        """Put the document's rows in `from_states` (of `destination`, or all)
        back to `queued`, due now, with attempts reset; the document follows.
        `superseded` rows (the destination holds the invoice under an old
        key) are requeued only when `destination` names theirs. A row back
        from `missing` forgets its delivered key: the destination said it
        does not hold it. Returns the destinations requeued (empty: nothing
        matched, nothing changed)."""
        states = [s for s in from_states if s in ROW_STATES and s not in ("delivering", "quarantined")
                  and (s != "superseded" or destination is not None)]
        if not states:
            return []
        marks = ",".join("?" * len(states))
        sql = (f"SELECT id, destination, state, attempts FROM deliveries WHERE document_id = ? "
               f"AND state IN ({marks})")
        params: list[Any] = [doc_id, *states]
        if destination is not None:
            sql += " AND destination = ?"
            params.append(destination)
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
        whose key is `new_key` again is `delivered` once more. Each changed
        row gets an `attempts` line and the document one event naming them.
        Returns [{destination, key, state}] for the rows changed."""
        held = ",".join("?" * len(_HELD_ROW_STATES))
        with self.transaction() as c:
            rows = c.execute(
                "SELECT id, destination, state, COALESCE(delivered_key, ?) AS key FROM deliveries "
                f"WHERE document_id = ? AND (state IN ({held}) OR state = 'superseded' "
                "OR (delivered_key IS NOT NULL AND state != 'missing')) ORDER BY id",
                (old_key, doc_id, *_HELD_ROW_STATES)).fetchall()
            changed = []
            for r in rows:
                if r["key"] is None:
                    continue
                if r["state"] == "superseded" and r["key"] == new_key:
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
                          (state, r["key"], now, r["id"]))
                self._attempt(r["id"], now=now, outcome=state, error=note, next_attempt_at=None)
                changed.append({"destination": r["destination"], "key": r["key"], "state": state})
            if changed:
                said = "; ".join(f"{x['destination']} ({x['key']}): {x['state']}" for x in changed)
                self._event(doc_id, now=now, actor=actor, from_state=None, to_state=None,
                            reason=f"deliveries under the old invoice key: {said}",
                            details={"old_key": old_key, "new_key": new_key, "deliveries": changed})
            return changed
