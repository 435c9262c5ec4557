"""What `status` says about delivery: backlog, health, SLA breaches.

The SLA is counted from a document's ARRIVAL (`received_at`, its capture),
whatever it waits for since: a person (quarantined), reading, or delivery.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from agent.ledger.document_lists import UNFINISHED

# Rows of documents a person holds (quarantined, rejected, back in
# extraction for 补录) are neither backlog nor late.
_ACTIVE = ("queued", "delivering", "failed", "missing", "delivered", "confirmed")
# A valid invoice is late while one of its rows is in one of these states.
UNDELIVERED_ROW_STATES = ("queued", "delivering", "failed", "missing")
# A document arrived more than the SLA ago is late while in one of these
# states (held by a person, still being read, or not yet delivered).
LATE_DOCUMENT_STATES = tuple(s.value for s in UNFINISHED)
_HEALTH_COLUMNS = frozenset({"breaker", "paused_error", "paused_at", "last_ok_at", "last_error",
                             "last_error_at"})


class DeliveryReportsMixin:
    """Part of `Ledger`: per-destination health and the figures `status` prints."""

    def destination_health(self, name: str) -> dict | None:
        """The stored health of a destination (breaker parsed), or None if never recorded."""
        row = self.conn.execute("SELECT * FROM destination_health WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        d = dict(row)
        d["breaker"] = json.loads(d["breaker"]) if d["breaker"] else None
        return d

    def save_destination_health(self, name: str, *, now: str, **columns: Any) -> None:
        """Upsert the given health columns of a destination (others keep their values).
        `breaker` is a dict (Breaker.to_dict())."""
        bad = set(columns) - _HEALTH_COLUMNS
        if bad:
            raise ValueError(f"not health columns: {sorted(bad)}")
        values = {k: (json.dumps(v) if k == "breaker" and v is not None else v) for k, v in columns.items()}
        names = ", ".join(["name", "updated_at", *values])
        marks = ", ".join(["?"] * (2 + len(values)))
        updates = ", ".join(["updated_at = excluded.updated_at", *(f"{k} = excluded.{k}" for k in values)])
        with self.transaction() as c:
            c.execute(f"INSERT INTO destination_health ({names}) VALUES ({marks}) "
                      f"ON CONFLICT(name) DO UPDATE SET {updates}", (name, now, *values.values()))

    def waiting_by_destination(self) -> dict[str, int]:
        """Rows queued or being delivered of documents on their way (not
        rejected, nor held for a 补录 application: no loop sends those), per
        destination name: every name the ledger holds rows for, configured
        or not."""
        active = ",".join("?" * len(_ACTIVE))
        return dict(self.conn.execute(
            "SELECT d.destination, count(*) FROM deliveries d JOIN documents doc ON doc.id = d.document_id "
            f"WHERE d.state IN ('queued', 'delivering') AND doc.state IN ({active}) GROUP BY d.destination",
            _ACTIVE))

    def overdue_leases(self, destination: str, *, now: str) -> int:
        """Rows of `destination` still `delivering` after their lease ended:
        a worker hung on the destination (an answer that never ends) or
        died. Another worker takes such a row over; counted so a hang is
        seen before the SLA runs out."""
        return self.conn.execute("SELECT count(*) FROM deliveries WHERE destination = ? AND state = 'delivering' "
                                 "AND lease_until < ?", (destination, now)).fetchone()[0]

    def delivery_backlog(self, destination: str) -> dict:
        """Row counts per state for `destination` (every row state present),
        where queued and delivering count only rows of documents on their way
        and `on_hold` those of documents held for a 补录 application (or
        otherwise by a person, not rejected: no loop sends them). A rejected
        document's queued, delivering, failed and quarantined rows are no
        backlog, failure or quarantine of the destination: they count as
        `rejected`; `rejected_there` counts the rows by which the destination
        holds (or may hold) a rejected document (`rejections.HELD_THERE`).
        And the `queued_at` of the oldest row still waiting (queued or
        delivering) of a document nobody holds."""
        counts = {s: 0 for s in ("queued", "delivering", "delivered", "confirmed", "missing", "failed",
                                 "quarantined", "on_hold", "rejected", "rejected_there")}
        for state, n in self.conn.execute("SELECT state, count(*) FROM deliveries WHERE destination = ? "
                                          "GROUP BY state", (destination,)):
            counts[state] = n
        active = ",".join("?" * len(_ACTIVE))
        # Only the waiting rows (few) are joined to their documents.
        for state, n in self.conn.execute(
                "SELECT d.state, count(*) FROM deliveries d JOIN documents doc ON doc.id = d.document_id "
                f"WHERE d.destination = ? AND d.state IN ('queued', 'delivering') AND doc.state NOT IN ({active}) "
                "AND doc.state != 'rejected' GROUP BY d.state", (destination, *_ACTIVE)):
            counts[state] -= n
            counts["on_hold"] += n
        for state, n in self.rejected_rows(destination).items():
            if state == "there":
                counts["rejected_there"] = n
            elif state in ("queued", "delivering", "failed", "quarantined"):
                counts[state] -= n
                counts["rejected"] += n
        oldest = self.conn.execute(
            "SELECT min(d.queued_at) FROM deliveries d JOIN documents doc ON doc.id = d.document_id "
            f"WHERE d.destination = ? AND d.state IN ('queued', 'delivering') AND doc.state IN ({active})",
            (destination, *_ACTIVE)).fetchone()[0]
        return {"counts": counts, "oldest_waiting": oldest}

    def sla_breaches(self, *, arrived_before: str, destinations: Sequence[str] | None = None,
                     limit: int = 1000) -> list[dict]:
        """Rows of valid invoices that arrived before `arrived_before` and are
        still not delivered (queued, delivering, failed or missing), oldest
        arrival first, with `sla_warned_at` so a caller can warn once."""
        states = ",".join("?" * len(UNDELIVERED_ROW_STATES))
        active = ",".join("?" * len(_ACTIVE))
        sql = ("SELECT d.id AS delivery_id, d.document_id, d.destination, d.state, d.queued_at, "
               "doc.received_at, d.last_error, d.sla_warned_at, doc.invoice_number FROM deliveries d "
               "JOIN documents doc ON doc.id = d.document_id "
               f"WHERE d.state IN ({states}) AND doc.received_at < ? AND doc.state IN ({active})")
        params: list[Any] = [*UNDELIVERED_ROW_STATES, arrived_before, *_ACTIVE]
        if destinations is not None:
            sql += f" AND d.destination IN ({','.join('?' * len(destinations))})"
            params += list(destinations)
        sql += f" ORDER BY doc.received_at, d.id LIMIT {int(limit)}"
        return [dict(r) for r in self.conn.execute(sql, params)]

    def count_sla_breaches(self, *, arrived_before: str) -> dict[str, int]:
        """Per destination, its undelivered rows (as in `sla_breaches`) of
        documents that arrived before `arrived_before`."""
        states = ",".join("?" * len(UNDELIVERED_ROW_STATES))
        active = ",".join("?" * len(_ACTIVE))
        return {name: n for name, n in self.conn.execute(
            "SELECT d.destination, count(*) FROM deliveries d JOIN documents doc ON doc.id = d.document_id "
            f"WHERE d.state IN ({states}) AND doc.received_at < ? AND doc.state IN ({active}) "
            "GROUP BY d.destination", (*UNDELIVERED_ROW_STATES, arrived_before, *_ACTIVE))}

    def late_documents(self, *, arrived_before: str) -> dict[str, int]:
        """Documents that arrived before `arrived_before` and are not yet
        delivered nor ended, per state (every LATE_DOCUMENT_STATES present):
        quarantined ones count, as do ones still being read. Uses the
        (state, received_at) index: O(states) lookups, not a scan."""
        out = {s: 0 for s in LATE_DOCUMENT_STATES}
        marks = ",".join("?" * len(LATE_DOCUMENT_STATES))
        for state, n in self.conn.execute(f"SELECT state, count(*) FROM documents WHERE state IN ({marks}) "
                                          "AND received_at < ? GROUP BY state",
                                          (*LATE_DOCUMENT_STATES, arrived_before)):
            out[state] = n
        return out

    def mark_sla_warned(self, delivery_ids: Sequence[int], *, now: str) -> None:
        """Remember that these rows' SLA breach was logged."""
        with self.transaction() as c:
            c.executemany("UPDATE deliveries SET sla_warned_at = ? WHERE id = ?",
                          [(now, i) for i in delivery_ids])
