"""Delivery rows a document lacks for a destination it has none for: one
added to the config (at start or by a reload) while the document was still
on its way, or named by an operator (`requeue ID --destination NAME`). A
mixin of the one Ledger class; deliveries.py creates a document's first
rows (`queue_deliveries`), this only ever adds a missing one, never
touches a row that exists."""

from __future__ import annotations

from typing import Sequence

from agent.states import State

# Documents still on their way: not every row has reached its destination
# yet, so a destination added now is one more they go to. A delivered or
# confirmed document is done: a destination added later gets it only when
# an operator asks (`requeue ID --destination NAME`), or every invoice ever
# delivered would go to a new system at once (docs/operations.md). A
# `missing` one waits for reconciliation or a person: they requeue it.
ON_THEIR_WAY = (State.QUEUED.value, State.DELIVERING.value, State.FAILED.value)
# How many documents one pass reads at a time (each gets its own transaction).
_BATCH = 500


class DeliveryAddedMixin:
    """Part of `Ledger`: rows for destinations a document has none for."""

    def add_deliveries(self, doc_id: int, destinations: Sequence[str], *, now: str, actor: str,
                       reason: str) -> list[str]:
        """Give document `doc_id` a queued row, due now, for each of
        `destinations` it has no row for, in one transaction with its event
        (`reason`, the destinations named); the document's state follows its
        rows (`_summarise`: a delivered one is queued again). Rows that exist,
        in whatever state, are left as they are. Returns the destinations
        added (empty: nothing changed)."""
        with self.transaction() as c:
            have = {r[0] for r in c.execute("SELECT destination FROM deliveries WHERE document_id = ?",
                                            (doc_id,))}
            added = [d for d in dict.fromkeys(destinations) if d not in have]
            if not added:
                return []
            before = self.state_of(doc_id)
            for name in added:
                c.execute("INSERT INTO deliveries (document_id, destination, state, next_attempt_at, "
                          "queued_at, updated_at) VALUES (?, ?, 'queued', ?, ?, ?)",
                          (doc_id, name, now, now, now))
            said = f"{reason}: queued for {', '.join(added)}"
            self._summarise(doc_id, now=now, actor=actor, reason=said)
            if self.state_of(doc_id) == before:
                # No move to show it (a queued document gets one more row):
                # the trail says so all the same.
                self._event(doc_id, now=now, actor=actor, from_state=None, to_state=None, reason=said,
                            details={"added_destinations": added})
            return added

    def queue_added_destinations(self, destinations: Sequence[str], *, now: str, actor: str) -> dict[str, int]:
        """Every document still on its way (ON_THEIR_WAY) gets a queued row
        for each of `destinations` it has none for (`add_deliveries`, one
        transaction a document). Returns {destination: documents given a
        row}, only destinations that got any. Delivered, confirmed, missing
        and held documents are never given one here."""
        counts: dict[str, int] = {}
        names = list(dict.fromkeys(destinations))
        if not names:
            return counts
        marks, states = ",".join("?" * len(names)), ",".join("?" * len(ON_THEIR_WAY))
        last = 0
        while True:
            # By id, from the last one seen: a document given its rows is not
            # read again, and one that cannot be (a state moved meanwhile) is
            # passed, never looped on.
            ids = [r[0] for r in self.conn.execute(
                f"SELECT id FROM documents WHERE state IN ({states}) AND id > ? AND "
                f"(SELECT COUNT(*) FROM deliveries r WHERE r.document_id = documents.id "
                f"AND r.destination IN ({marks})) < ? ORDER BY id LIMIT ?",
                (*ON_THEIR_WAY, last, *names, len(names), _BATCH))]
            if not ids:
                return counts
            for doc_id in ids:
                last = doc_id
                with self.transaction():
                    if self.state_of(doc_id) not in ON_THEIR_WAY:
                        continue   # delivered or held meanwhile (another thread, a person)
                    for name in self.add_deliveries(doc_id, names, now=now, actor=actor,
                                                    reason="a destination added to the config"):
                        counts[name] = counts.get(name, 0) + 1

    def count_without_delivery(self, destination: str) -> int:
        """How many delivered or confirmed documents have no row for
        `destination`: delivered before it was configured, never sent there
        unless an operator asks (`requeue ID --destination NAME`)."""
        return self.conn.execute(
            "SELECT COUNT(*) FROM documents WHERE state IN (?, ?) AND NOT EXISTS "
            "(SELECT 1 FROM deliveries r WHERE r.document_id = documents.id AND r.destination = ?)",
            (State.DELIVERED.value, State.CONFIRMED.value, destination)).fetchone()[0]
