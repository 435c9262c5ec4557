"""What a rejection leaves behind (a mixin of the one Ledger class): the
copies destinations hold (or may hold) of a document, which `reject` must
name before it ends the document and `status`, `show` and `audit ledger`
keep naming afterwards; and the rejection a later copy of the same invoice
is held for (`judgement`: `rejected-before`).

A rejection takes nothing back from a destination: only a person can, by
hand, and `reconcile` then finds the copy gone (the row `missing`).
"""

from __future__ import annotations

import json
from typing import Any, Sequence

# A row by which its destination holds the invoice, or may: a put in flight
# (`delivering`), delivered or confirmed, superseded (held under an old key),
# or put back to the queue after a delivery (`requeue`: its delivered_key is
# kept). A row back from `missing` forgot its key: the destination said it
# does not hold it. A superseded row holds only with its delivered_key (an
# amend's always has it): one without is a fleet duplicate's open row, never
# sent from here (the file there under the key is another site's delivery).
# The one definition: status, show, audit and reject use it.
HELD_THERE = ("(d.state IN ('delivering', 'delivered', 'confirmed') "
              "OR (d.delivered_key IS NOT NULL AND d.state != 'missing'))")
HELD_ROW_STATES = frozenset({"delivering", "delivered", "confirmed"})


def held_there(row: dict) -> bool:
    """HELD_THERE for a row read as a dict (state, delivered_key): the audit
    reads every row once and judges it in Python."""
    return row["state"] in HELD_ROW_STATES or (row.get("delivered_key") is not None and row["state"] != "missing")


def where_held(held: Sequence[dict]) -> str:
    """`fin (delivered under key K), b (a put in flight)`: where a document
    is, or may be, for a person's text."""
    def one(r: dict) -> str:
        if r["state"] == "delivering":
            return f"{r['destination']} (a put in flight: it may hold it under key {r['key']})"
        if r["state"] == "superseded":
            return f"{r['destination']} (under its old key {r['key']})"
        if r["state"] in ("delivered", "confirmed"):
            return f"{r['destination']} ({r['state']} under key {r['key']})"
        return f"{r['destination']} (delivered under key {r['key']}, then {r['state']} again)"
    return ", ".join(one(r) for r in held)


class RejectionsMixin:
    """Part of `Ledger`: copies at destinations, and earlier rejections of a key."""

    def held_at(self, doc_id: int) -> list[dict[str, Any]]:
        """The document's rows by which a destination holds it or may hold it
        (HELD_THERE), in row order: destination, state, key (the one it went
        under, else the document's), delivered_at."""
        return [dict(r) for r in self.conn.execute(
            "SELECT d.destination, d.state, COALESCE(d.delivered_key, doc.invoice_key) AS key, d.delivered_at "
            f"FROM deliveries d JOIN documents doc ON doc.id = d.document_id WHERE d.document_id = ? AND {HELD_THERE} "
            "ORDER BY d.id", (doc_id,))]

    def keep_delivered(self, doc_id: int, *, now: str) -> list[str]:
        """For a document being rejected, inside the caller's transaction: its
        rows put back to the queue after a delivery (queued, failed or
        quarantined, their delivered_key kept) become what the destination
        holds again, as it still holds what it got then and nothing more
        will be sent: `delivered` under the document's own key, `superseded`
        under another (delivered, then amended to a new key and requeued by
        name: the destination holds the old key, as an amend's superseded
        row says; never a delivered row under a key the document no longer
        has). Reconciliation looks them up under that key, and finds them
        gone once a person removed them there. Returns their destinations."""
        with self.transaction() as c:
            rows = c.execute(
                "SELECT d.id, d.destination, d.delivered_key IS NOT doc.invoice_key AS old_key "
                "FROM deliveries d JOIN documents doc ON doc.id = d.document_id "
                "WHERE d.document_id = ? AND d.delivered_key IS NOT NULL "
                "AND d.state IN ('queued', 'failed', 'quarantined') ORDER BY d.id", (doc_id,)).fetchall()
            for r in rows:
                c.execute("UPDATE deliveries SET state = ?, next_attempt_at = NULL, lease_until = NULL, "
                          "lease_token = NULL, updated_at = ? WHERE id = ?",
                          ("superseded" if r["old_key"] else "delivered", now, r["id"]))
        return [r["destination"] for r in rows]

    def rejected_there(self, *, limit: int = 20) -> dict[str, Any]:
        """Rejected documents a destination holds or may hold (HELD_THERE):
        `count`, and the first `limit` of them by id, each with `document_id`
        and `at` ([{destination, state, key}])."""
        rows = self.conn.execute(
            "SELECT d.document_id, d.destination, d.state, COALESCE(d.delivered_key, doc.invoice_key) AS key "
            "FROM documents doc JOIN deliveries d ON d.document_id = doc.id "
            f"WHERE doc.state = 'rejected' AND {HELD_THERE} ORDER BY d.document_id, d.id").fetchall()
        docs: dict[int, list[dict]] = {}
        for r in rows:
            docs.setdefault(r["document_id"], []).append({"destination": r["destination"], "state": r["state"],
                                                          "key": r["key"]})
        listed = [{"document_id": i, "at": at} for i, at in list(docs.items())[:limit]]
        return {"count": len(docs), "documents": listed}

    def rejected_rows(self, destination: str) -> dict[str, int]:
        """Per state, the rows of `destination` whose document is rejected
        (their count by `HELD_THERE` too, as `there`): no loop sends them, so
        they are no backlog, failure or quarantine of the destination."""
        out: dict[str, int] = {"there": 0}
        for state, there, n in self.conn.execute(
                f"SELECT d.state, {HELD_THERE}, count(*) FROM documents doc "
                "JOIN deliveries d ON d.document_id = doc.id WHERE doc.state = 'rejected' AND d.destination = ? "
                "GROUP BY 1, 2", (destination,)):
            out[state] = out.get(state, 0) + n
            if there:
                out["there"] += n
        return out

    def rejection_of_key(self, invoice_key: str, *, exclude_id: int | None = None) -> dict[str, Any] | None:
        """The latest rejection of a document carrying `invoice_key` (other
        than `exclude_id`) that was its key's live copy when rejected (not a
        duplicate: rejecting a spare copy says nothing of the invoice) and is
        rejected still: {document_id, reason, application, actor, at}, or None."""
        row = self.conn.execute(
            "SELECT doc.id, e.details, e.actor, e.at FROM documents doc "
            "JOIN events e ON e.id = (SELECT max(x.id) FROM events x WHERE x.document_id = doc.id "
            "AND x.to_state = 'rejected') "
            "WHERE doc.invoice_key = ? AND doc.state = 'rejected' AND doc.id IS NOT ? "
            "AND e.from_state IS NOT 'duplicate' ORDER BY e.id DESC LIMIT 1", (invoice_key, exclude_id)).fetchone()
        if row is None:
            return None
        details = json.loads(row["details"]) if row["details"] else {}
        details = details if isinstance(details, dict) else {}
        return {"document_id": row["id"], "reason": details.get("reason"), "application": details.get("application"),
                "actor": row["actor"], "at": row["at"]}
