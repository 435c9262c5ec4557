"""Reconciliation's side of the delivery rows: which rows to look up at
their destination, and recording what a lookup found, each move with its
audit event in one transaction (a mixin of the one Ledger class)."""

from __future__ import annotations

import json
from typing import Any, Sequence


class ReconcileRowsMixin:
    """Candidate rows for reconciliation and the record of each lookup."""

    def reconcile_candidates(self, *, states: Sequence[str], destination: str | None = None,
                             since: str | None = None, after_id: int = 0,
                             limit: int | None = None) -> list[dict]:
        """Rows to look up at their destination, in row id order after
        `after_id` (keyset paging): in `states`, delivered at or after
        `since`, with the document's invoice key, number, date and total, and
        `lookup_key`: the key the row was delivered under (the document's
        own for rows from before that was recorded)."""
        where, params = self._candidates_where(states, destination, since)
        sql = ("SELECT d.id AS delivery_id, d.document_id, d.destination, d.state, d.delivered_at, "
               "d.receipt, COALESCE(d.delivered_key, doc.invoice_key) AS lookup_key, "
               "doc.invoice_key, doc.invoice_number, doc.invoice_date, doc.total_cents "
               f"FROM deliveries d JOIN documents doc ON doc.id = d.document_id WHERE {where} AND d.id > ? "
               "ORDER BY d.id" + (f" LIMIT {int(limit)}" if limit else ""))
        return [dict(r) for r in self.conn.execute(sql, [*params, after_id])]

    def count_reconcile_candidates(self, *, states: Sequence[str], destination: str | None = None,
                                   since: str | None = None) -> int:
        """How many rows `reconcile_candidates` would give (for a progress bar)."""
        where, params = self._candidates_where(states, destination, since)
        return self.conn.execute(f"SELECT count(*) FROM deliveries d WHERE {where}", params).fetchone()[0]

    @staticmethod
    def _candidates_where(states: Sequence[str], destination: str | None, since: str | None):
        where = [f"d.state IN ({','.join('?' * len(states))})"]
        params: list[Any] = list(states)
        if destination is not None:
            where.append("d.destination = ?")
            params.append(destination)
        if since is not None:
            where.append("d.delivered_at >= ?")
            params.append(since)
        return " AND ".join(where), params

    def record_lookup(self, delivery_id: int, *, found: dict | None, now: str, actor: str,
                      requeue_missing: bool, expect_state: str) -> str | None:
        """Record a reconciliation lookup of a row still in `expect_state`.

        Found: `confirmed` with the receipt. Absent: `missing`, then (when
        `requeue_missing`, and the document is not rejected) `queued` again,
        due now, each move with its event.
        Returns "confirmed", "missing" or "requeued", or None when the row
        changed meanwhile (nothing is written then)."""
        with self.transaction() as c:
            row = c.execute("SELECT document_id, destination FROM deliveries WHERE id = ? AND state = ?",
                            (delivery_id, expect_state)).fetchone()
            if row is None:
                return None
            doc_id, name = row["document_id"], row["destination"]
            if found is not None:
                # The digest of the values it holds (finish_delivery) outlives the lookup's receipt.
                c.execute("UPDATE deliveries SET state = 'confirmed', confirmed_at = ?, receipt = "
                          "CASE WHEN json_valid(receipt) AND json_type(receipt, '$.held_values_sha256') = 'text' "
                          "THEN json_set(?, '$.held_values_sha256', json_extract(receipt, '$.held_values_sha256')) "
                          "ELSE ? END, updated_at = ? WHERE id = ?",
                          (now, *[json.dumps(found, ensure_ascii=False, default=str)] * 2, now, delivery_id))
                self._attempt(delivery_id, now=now, outcome="found", error=None, next_attempt_at=None)
                self._summarise(doc_id, now=now, actor=actor, reason=f"{name}: found by reconciliation",
                                details={"receipt": found})
                return "confirmed"
            c.execute("UPDATE deliveries SET state = 'missing', confirmed_at = NULL, updated_at = ? WHERE id = ?",
                      (now, delivery_id))
            self._attempt(delivery_id, now=now, outcome="absent", error=f"{name} does not hold it",
                          next_attempt_at=None)
            self._summarise(doc_id, now=now, actor=actor, reason=f"{name}: not found by reconciliation")
            # A rejected document gone from a destination is what its
            # rejection wants (a person removed it there): never sent again.
            if not requeue_missing or self.state_of(doc_id) == "rejected":
                return "missing"
            self.requeue_deliveries(doc_id, from_states=("missing",), destination=name, now=now, actor=actor,
                                    reason=f"{name}: missing, requeued automatically")
            return "requeued"
