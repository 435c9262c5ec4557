"""Delivery rows: one per document and destination, with retry columns."""

from __future__ import annotations

from typing import Sequence

from agent.model import State


class DeliveriesMixin:
    """Part of `Ledger`: delivery rows, attempts and leases."""

    def queue_deliveries(self, doc_id: int, destinations: Sequence[str], *, now: str, actor: str) -> None:
        """Move a `valid` document to `queued` and create one delivery row per
        destination, in one transaction. Existing rows are left as they are."""
        with self.transaction() as c:
            self.transition(doc_id, State.QUEUED, now=now, actor=actor,
                            reason="queued for " + ", ".join(destinations))
            for name in destinations:
                c.execute("INSERT INTO deliveries (document_id, destination, state, next_attempt_at, "
                          "queued_at, updated_at) VALUES (?, ?, 'queued', ?, ?, ?) "
                          "ON CONFLICT(document_id, destination) DO UPDATE SET state = 'queued', "
                          "next_attempt_at = excluded.next_attempt_at, updated_at = excluded.updated_at "
                          "WHERE deliveries.state NOT IN ('delivered', 'confirmed')",
                          (doc_id, name, now, now, now))

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
