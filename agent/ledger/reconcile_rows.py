"""Reconciliation's side of the delivery rows: which rows to look up at
their destination, and recording what a lookup found, each move with its
audit event in one transaction (a mixin of the one Ledger class). Also a
rejected document's row left `delivering` by a put that was interrupted
(its worker killed): no loop claims it again (the document is held by a
person), so only reconciliation can settle it. A key found gone there is
forgotten from the keys the destination holds (held_keys.py), with an event
when it was an old key; the old keys no row stands for are looked up by
held_keys.py's `old_key_candidates`, a `superseded` row's through
`record_lookup`."""

from __future__ import annotations

import json
from typing import Any, Sequence

# A rejected document's row left `delivering`: its lease, and the keys the
# interrupted put went under (the document's) and the row was delivered
# under before (a row requeued after a delivery keeps it).
_STRANDED_COLUMNS = ("d.id AS delivery_id, d.document_id, d.destination, d.state, d.delivered_at, "
                     "d.lease_until, d.lease_token, d.delivered_key, doc.invoice_key AS lookup_key, "
                     "doc.invoice_key, doc.invoice_number, doc.invoice_date, doc.total_cents, doc.sha256")


# What a lookup needs of a row: its state, the key it went under, the document's figures.
_CANDIDATE_COLUMNS = ("d.id AS delivery_id, d.document_id, d.destination, d.state, d.delivered_at, "
                      "d.receipt, COALESCE(d.delivered_key, doc.invoice_key) AS lookup_key, "
                      "doc.invoice_key, doc.invoice_number, doc.invoice_date, doc.total_cents")


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
        sql = (f"SELECT {_CANDIDATE_COLUMNS} "
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
        """Record a reconciliation lookup of a row still in `expect_state`,
        made under its delivered_key (else the document's key).

        Found: `confirmed` with the receipt; a superseded or missing row
        found under a key the document no longer has (held under its old
        key, found there still or again): `superseded`, as an amend leaves
        such a row (never a confirmed row under an old key), an attempts
        line only when it was superseded already; the key held there, seen
        now (held_keys). Absent: `missing`, the key looked up no longer held
        there (an old key forgotten with its event), then (when
        `requeue_missing`, the document is not rejected and the row was not
        superseded) `queued` again, due now, each move with its event.
        Returns "confirmed", "superseded", "missing" or "requeued", or None
        when the row changed meanwhile (nothing is written then)."""
        with self.transaction() as c:
            row = c.execute("SELECT d.document_id, d.destination, d.delivered_key, doc.invoice_key "
                            "FROM deliveries d JOIN documents doc ON doc.id = d.document_id "
                            "WHERE d.id = ? AND d.state = ?", (delivery_id, expect_state)).fetchone()
            if row is None:
                return None
            doc_id, name = row["document_id"], row["destination"]
            old_key = row["delivered_key"] if row["delivered_key"] not in (None, row["invoice_key"]) else None
            if found is not None and old_key is not None and expect_state in ("superseded", "missing"):
                self._attempt(delivery_id, now=now, outcome="found", error=None, next_attempt_at=None)
                if expect_state != "superseded":
                    c.execute("UPDATE deliveries SET state = 'superseded', confirmed_at = NULL, updated_at = ? "
                              "WHERE id = ?", (now, delivery_id))
                    self._summarise(doc_id, now=now, actor=actor,
                                    reason=f"{name}: found by reconciliation under its old key {old_key} "
                                           f"(its key is now {row['invoice_key'] or '(none)'}): superseded",
                                    details={"receipt": found, "key": old_key})
                elif self._has_held_keys():
                    c.execute("UPDATE held_keys SET seen_at = ? WHERE document_id = ? AND destination = ? "
                              "AND key = ?", (now, doc_id, name, old_key))
                return "superseded"
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
            under = f" under its old key {old_key}" if old_key else ""
            c.execute("UPDATE deliveries SET state = 'missing', confirmed_at = NULL, updated_at = ? WHERE id = ?",
                      (now, delivery_id))
            self._attempt(delivery_id, now=now, outcome="absent", error=f"{name} does not hold it{under}",
                          next_attempt_at=None)
            self._summarise(doc_id, now=now, actor=actor, reason=f"{name}: not found{under} by reconciliation")
            # Gone there: no longer a key it holds. An old one is told by its
            # own event; the document's own, by the row `missing`.
            self._forget_key(doc_id, name, row["delivered_key"] or row["invoice_key"] or "", now=now, actor=actor,
                             by="reconcile", why="reconciliation found it gone", event=old_key is not None)
            # A rejected document gone from a destination is what its
            # rejection wants (a person removed it there): never sent again.
            # Nor is an old key gone a reason to send the new one there.
            if not requeue_missing or expect_state == "superseded" or self.state_of(doc_id) == "rejected":
                return "missing"
            self.requeue_deliveries(doc_id, from_states=("missing",), destination=name, now=now, actor=actor,
                                    reason=f"{name}: missing, requeued automatically")
            return "requeued"

    # -- a rejected document's put interrupted ---------------------------------------

    def stranded_rejected(self, *, destination: str, after_id: int = 0, limit: int | None = None) -> list[dict]:
        """The `delivering` rows of `destination` whose document is rejected,
        in row id order after `after_id`: each with its lease (lease_until,
        lease_token), delivered_key, `lookup_key` (the document's invoice key:
        the key its put went under), number, date, total and sha256. The
        caller tells a live lease from an ended one."""
        sql = (f"SELECT {_STRANDED_COLUMNS} FROM deliveries d JOIN documents doc ON doc.id = d.document_id "
               "WHERE d.state = 'delivering' AND doc.state = 'rejected' AND d.destination = ? AND d.id > ? "
               "ORDER BY d.id" + (f" LIMIT {int(limit)}" if limit else ""))
        return [dict(r) for r in self.conn.execute(sql, (destination, after_id))]

    def count_stranded_rejected(self, *, destination: str) -> int:
        """How many rows `stranded_rejected` would give (for a progress bar)."""
        return self.conn.execute(
            "SELECT count(*) FROM deliveries d JOIN documents doc ON doc.id = d.document_id "
            "WHERE d.state = 'delivering' AND doc.state = 'rejected' AND d.destination = ?",
            (destination,)).fetchone()[0]

    def record_stranded_lookup(self, delivery_id: int, *, found: dict | None, lease_token: str | None,
                               now: str, actor: str, note: str | None = None) -> str | None:
        """Settle a rejected document's `delivering` row whose lease ended
        before `now` and is still `lease_token`'s, by what a lookup of the
        document's key found, the row and its event in one transaction.

        Found (`found`, the receipt): `delivered` under the receipt's key
        (else the document's) at `now`, so `status` and `audit ledger` name
        it until a person removed it there and reconciliation finds it
        gone. Not found: what the row of a rejected document whose put
        never landed is: `queued` (never sent again: no loop claims a
        rejected document's rows), its delivered_key forgotten (the
        destination said it does not hold it), or `superseded` under that
        key when it is another than the document's (the put went under the
        new key; the old one may still be there). `note` (why a found file
        was not taken for this document's) goes into the attempts line.
        Returns "landed" or "never-landed", or None when the row changed
        meanwhile, its document is no longer rejected or its lease is live
        (nothing is written then)."""
        with self.transaction() as c:
            row = c.execute(
                "SELECT d.document_id, d.destination, d.lease_until, d.delivered_key, doc.invoice_key "
                "FROM deliveries d JOIN documents doc ON doc.id = d.document_id "
                "WHERE d.id = ? AND d.state = 'delivering' AND doc.state = 'rejected' AND d.lease_token IS ? "
                "AND (d.lease_until IS NULL OR d.lease_until <= ?)", (delivery_id, lease_token, now)).fetchone()
            if row is None:
                return None
            doc_id, name = row["document_id"], row["destination"]
            interrupted = f"{name}: a put interrupted (its lease ended {row['lease_until'] or '?'})"
            if found is not None:
                key = found.get("key") or row["invoice_key"]
                c.execute("UPDATE deliveries SET state = 'delivered', lease_until = NULL, lease_token = NULL, "
                          "next_attempt_at = NULL, last_error = NULL, delivered_at = ?, delivered_key = ?, "
                          "receipt = ?, updated_at = ? WHERE id = ?",
                          (now, key, json.dumps(found, ensure_ascii=False, default=str), now, delivery_id))
                self._attempt(delivery_id, now=now, outcome="found", error=None, next_attempt_at=None)
                self._event(doc_id, now=now, actor=actor, from_state=None, to_state=None,
                            reason=f"{interrupted} landed: reconciliation found it there under key {key}; "
                                   "it is rejected: remove it there by hand",
                            details={"destination": name, "key": key, "receipt": found})
                return "landed"
            old_key = row["delivered_key"]
            kept = old_key is not None and old_key != row["invoice_key"]
            state = "superseded" if kept else "queued"
            c.execute("UPDATE deliveries SET state = ?, lease_until = NULL, lease_token = NULL, "
                      "delivered_key = CASE WHEN ? THEN delivered_key END, updated_at = ? WHERE id = ?",
                      (state, kept, now, delivery_id))
            error = note or f"{name} does not hold it"
            self._attempt(delivery_id, now=now, outcome="absent", error=error, next_attempt_at=None)
            # Not there under the document's key (this document's file): held
            # there no longer, if it was (an earlier delivery, requeued); the
            # event below says so.
            if row["invoice_key"]:
                self._forget_key(doc_id, name, row["invoice_key"], now=now, actor=actor, by="reconcile",
                                 why="reconciliation found it gone", event=False)
            left = (f"; it may still hold it under its old key {old_key}" if kept
                    else "; nothing there to remove")
            self._event(doc_id, now=now, actor=actor, from_state=None, to_state=None,
                        reason=f"{interrupted} never landed: reconciliation did not find it there ({error}){left}",
                        details={"destination": name, "key": row["invoice_key"], "row": state})
            return "never-landed"
