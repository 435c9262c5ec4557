"""Every key a destination was told it holds a document under (a mixin of
the one Ledger class, through DeliveryOperatorsMixin).

A delivery row's `delivered_key` is only the latest key. An amend that
corrects an invoice's 代码/号码 leaves the destination's row `superseded`
under the old key; `requeue --destination` then sends it there under the
new one, and the row's key is the new one: the old copy, still there, was
named by nothing. `held_keys` keeps each (document, destination, key) the
ledger learned of (delivered, confirmed, superseded under it: triggers of
migration 36 keep it, whoever writes the row) until reconciliation finds
it gone there or a person says so (`forget-key`), each forgetting with its
event. `old` says the key is not the document's (a trigger on
documents.invoice_key keeps it), so `status` reads the few held under an
old key by a partial index.

What `status`, `show`, the `held-under-old-key` alert and reconciliation
name: a key held there other than the document's (`old`), unless it is a
rejected document's key its row stands for (`rejected_there` names those).
A document's own key held at a destination has a row standing for it: an
amend back to a key held there makes the row `delivered` under it again
(`supersede_deliveries`); one found gone there is forgotten.
"""

from __future__ import annotations

import json
from typing import Any

from agent.errors import AgentError
from agent.ledger.rejections import HELD_THERE
from agent.ledger.schema import MIGRATIONS

# The schema version that made the table: read-only ledgers may be older.
HELD_KEYS_SCHEMA = next(i + 1 for i, m in enumerate(MIGRATIONS) if "CREATE TABLE held_keys" in m)
# A row that stands for its key as (maybe) delivered there: reconciliation
# looks those up as rows (`reconcile_candidates`, a put's recovery), and a
# `missing` one under its key was found gone already.
_ROW_HOLDS = ("delivered", "confirmed", "delivering", "missing")
# A row by which `rejected_there` names the key (a rejected document's).
_COVERED = ("EXISTS (SELECT 1 FROM deliveries d WHERE d.document_id = h.document_id "
            "AND d.destination = h.destination AND COALESCE(d.delivered_key, doc.invoice_key) = h.key "
            f"AND {HELD_THERE})")
# Every (document, destination, key) to remove there (the module docstring),
# by the partial index: as many rows read as there are old keys.
_LISTED = ("SELECT h.document_id, h.destination, h.key, h.since, doc.state FROM held_keys h INDEXED BY held_keys_old "
           f"JOIN documents doc ON doc.id = h.document_id WHERE h.old AND NOT (doc.state = 'rejected' AND {_COVERED}) "
           "ORDER BY 1, 2, 4")
# An old key of a destination no row stands for as delivered (a row superseded
# under it does, and is looked up through `record_lookup`): reconciliation's old-key pass.
_CANDIDATES = ("FROM held_keys h INDEXED BY held_keys_old "
               "JOIN deliveries d ON d.document_id = h.document_id AND d.destination = h.destination "
               "JOIN documents doc ON doc.id = h.document_id "
               f"WHERE h.old AND h.destination = ? AND NOT (d.delivered_key IS h.key AND d.state IN "
               f"({','.join(repr(s) for s in _ROW_HOLDS)}))")


class KeyNotHeld(AgentError):
    """`forget-key` named a key the ledger does not list as held there, or
    one a delivered row stands for (reconciliation's to find gone)."""


class HeldKeysMixin:
    """Part of `Ledger`: the keys destinations hold documents under."""

    def _has_held_keys(self) -> bool:
        return self.conn.execute("PRAGMA user_version").fetchone()[0] >= HELD_KEYS_SCHEMA

    def held_keys(self, doc_id: int) -> list[dict[str, Any]]:
        """Every key a destination holds the document under, as far as the
        ledger knows, by destination then since: destination, key, since,
        seen_at, old (not the document's key), row_state (its row's state)
        and by_row (its row stands for this key). Empty on a ledger older
        than the table (a read-only one)."""
        if not self._has_held_keys():
            return []
        return [{**dict(r), "old": bool(r["old"]), "by_row": bool(r["by_row"])} for r in self.conn.execute(
            "SELECT h.destination, h.key, h.since, h.seen_at, h.old, d.state AS row_state, "
            "d.delivered_key IS h.key AS by_row FROM held_keys h LEFT JOIN deliveries d "
            "ON d.document_id = h.document_id AND d.destination = h.destination "
            "WHERE h.document_id = ? ORDER BY h.destination, h.since, h.id", (doc_id,))]

    def old_keys_held(self, *, limit: int = 20) -> dict[str, Any]:
        """Documents a destination holds under an old key (module docstring):
        `count`, `by_destination` ({name: documents}), and the first `limit`
        by id, each with `document_id`, `state` and `at` ([{destination, key,
        since}]). Empty on a ledger older than the table."""
        out: dict[str, Any] = {"count": 0, "by_destination": {}, "documents": []}
        if not self._has_held_keys():
            return out
        docs: dict[int, dict] = {}
        by_destination: dict[str, set[int]] = {}
        for r in self.conn.execute(_LISTED):
            doc = docs.setdefault(r["document_id"], {"document_id": r["document_id"], "state": r["state"], "at": []})
            doc["at"].append({"destination": r["destination"], "key": r["key"], "since": r["since"]})
            by_destination.setdefault(r["destination"], set()).add(r["document_id"])
        out.update(count=len(docs), documents=list(docs.values())[:limit],
                   by_destination={n: len(ids) for n, ids in sorted(by_destination.items())})
        return out

    def old_key_candidates(self, *, destination: str, since: str | None = None, after_id: int = 0,
                           limit: int | None = None) -> list[dict]:
        """The old keys `destination` holds documents under that no row of
        theirs stands for as delivered there (a superseded row does; a row
        delivered under the new key does not), first held at or after
        `since`, in held_keys id order after `after_id`: held_id,
        lookup_key (the old key), delivered_at (when first held), the row
        (delivery_id, state, delivered_key) and the document's key, number,
        date and total, as `reconcile_candidates` gives rows."""
        sql = ("SELECT h.id AS held_id, h.document_id, h.destination, h.key AS lookup_key, h.since AS delivered_at, "
               "d.id AS delivery_id, d.state, d.delivered_key, doc.invoice_key, doc.invoice_number, "
               f"doc.invoice_date, doc.total_cents {_CANDIDATES} AND h.id > ?"
               + (" AND h.since >= ?" if since else "") + " ORDER BY h.id" + (f" LIMIT {int(limit)}" if limit else ""))
        return [dict(r) for r in self.conn.execute(sql, (destination, after_id, *([since] if since else [])))]

    def count_old_key_candidates(self, *, destination: str, since: str | None = None) -> int:
        """How many keys `old_key_candidates` would give (for a progress bar)."""
        return self.conn.execute(f"SELECT count(*) {_CANDIDATES}" + (" AND h.since >= ?" if since else ""),
                                 (destination, *([since] if since else []))).fetchone()[0]

    def held_key_holder(self, destination: str, key: str, *, other_than: int) -> int | None:
        """The id of another document `destination` holds under `key` as an
        old key (its row has moved on to another), or None."""
        row = self.conn.execute("SELECT document_id FROM held_keys INDEXED BY held_keys_old WHERE old "
                                "AND destination = ? AND key = ? AND document_id != ? ORDER BY id LIMIT 1",
                                (destination, key, other_than)).fetchone() if self._has_held_keys() else None
        return row[0] if row else None

    def record_held_key_lookup(self, held_id: int, *, key: str, found: dict | None, now: str,
                               actor: str) -> str | None:
        """Record a reconciliation lookup of an old key no row stands for
        (`old_key_candidates`), in one transaction. Found: it stays, seen
        now ("superseded": there under an old key). Gone: forgotten, with
        an event; a row requeued after its delivery under it (queued,
        failed, quarantined) forgets it too, with an attempts line
        ("forgotten"). None when it changed meanwhile (forgotten, or a row
        stands for it now): nothing is written then."""
        with self.transaction() as c:
            r = c.execute("SELECT h.document_id, h.destination, d.id AS delivery_id, d.state, d.delivered_key "
                          "FROM held_keys h JOIN deliveries d ON d.document_id = h.document_id "
                          "AND d.destination = h.destination WHERE h.id = ? AND h.key = ?", (held_id, key)).fetchone()
            if r is None or (r["delivered_key"] == key and r["state"] in (*_ROW_HOLDS, "superseded")):
                return None
            if found is not None:
                c.execute("UPDATE held_keys SET seen_at = ? WHERE id = ?", (now, held_id))
                return "superseded"
            self._forget_key(r["document_id"], r["destination"], key, now=now, actor=actor, by="reconcile",
                             why="reconciliation found it gone")
            if r["delivered_key"] == key:
                self._row_forgets(r["delivery_id"], key, now=now, why=f"{r['destination']} does not hold it under "
                                                                      f"its old key {key}")
            return "forgotten"

    def forget_held_key(self, doc_id: int, destination: str, key: str, *, now: str, actor: str,
                        reason: str) -> dict[str, Any]:
        """A person says `destination` no longer holds the document under
        `key` (removed there by hand): forgotten, in one transaction, with
        an event by `actor` carrying `reason`. A row superseded under it
        becomes `missing` (the destination holds nothing of it: `requeue`
        sends it under its key; a rejected one is never sent), and one
        requeued after its delivery under it forgets it.

        Idempotent: a key forgotten before (by a person or reconciliation),
        or whose row is missing under it, changes nothing and says when
        (`already`). Raises KeyNotHeld for a key never held there, and for
        the key a delivered, confirmed or in-flight row stands for
        (reconciliation finds that one gone). Returns document_id,
        destination, key, forgotten, already ({at, actor, by} or None),
        row_state (its row's state after) and held (the keys still held there)."""
        with self.transaction() as c:
            doc = self.get(doc_id)
            held = c.execute("SELECT id, old FROM held_keys WHERE document_id = ? AND destination = ? AND key = ?",
                             (doc_id, destination, key)).fetchone() if self._has_held_keys() else None
            row = c.execute("SELECT id, state, delivered_key, updated_at FROM deliveries WHERE document_id = ? "
                            "AND destination = ?", (doc_id, destination)).fetchone()
            out: dict[str, Any] = {"document_id": doc_id, "destination": destination, "key": key,
                                   "forgotten": False, "already": None, "row_state": row["state"] if row else None}
            if held is None:
                out["already"] = self._forgotten_before(doc_id, destination, key, row)
                if out["already"] is None:
                    others = [h["key"] for h in self.held_keys(doc_id) if h["destination"] == destination]
                    raise KeyNotHeld(
                        f"document {doc_id} is not held at {destination} under key {key}, as far as the ledger "
                        "knows: nothing forgotten; " + (f"it is held there under {', '.join(others)}" if others else
                                                        f"the ledger lists no key of it at {destination}")
                        + f" (`fapiao-agent show {doc_id}`)")
                out["held"] = [h["key"] for h in self.held_keys(doc_id) if h["destination"] == destination]
                return out
            if row is not None and row["delivered_key"] == key and row["state"] in ("delivered", "confirmed",
                                                                                   "delivering"):
                raise KeyNotHeld(
                    f"{destination} holds document {doc_id} under {key} as its delivery there ({row['state']}), not "
                    f"as a key left behind: nothing forgotten. Once it is removed there, `fapiao-agent reconcile "
                    f"--destination {destination}` looks it up and finds it gone")
            self._forget_key(doc_id, destination, key, now=now, actor=actor, by="operator", why=reason)
            if row is not None and row["delivered_key"] == key:
                said = f"{destination} does not hold it under its old key {key} (said by {actor}: {reason})"
                if row["state"] == "superseded":
                    c.execute("UPDATE deliveries SET state = 'missing', confirmed_at = NULL, updated_at = ? "
                              "WHERE id = ?", (now, row["id"]))
                    self._attempt(row["id"], now=now, outcome="absent", error=said, next_attempt_at=None)
                    self._summarise(doc_id, now=now, actor=actor,
                                    reason=f"{destination}: its old key {key} gone there, said by {actor}: it holds "
                                           f"nothing of it now (its key is {doc.invoice_key or '(none)'})")
                else:
                    self._row_forgets(row["id"], key, now=now, why=said)
            out["forgotten"] = True
            out["row_state"] = self.conn.execute("SELECT state FROM deliveries WHERE id = ?",
                                                 (row["id"],)).fetchone()[0] if row else None
            out["held"] = [h["key"] for h in self.held_keys(doc_id) if h["destination"] == destination]
            return out

    # -- internals ------------------------------------------------------------------

    def _forget_key(self, doc_id: int, destination: str, key: str, *, now: str, actor: str, by: str, why: str,
                    event: bool = True) -> bool:
        # Inside the caller's transaction: the key no longer held there, and
        # (`event`) the document's event saying so, `forgot_key` in its details
        # (what `forget-key` reads back to be idempotent). False: it was not held.
        if not self._has_held_keys():
            return False
        held = self.conn.execute("SELECT h.old FROM held_keys h WHERE h.document_id = ? AND h.destination = ? "
                                 "AND h.key = ?", (doc_id, destination, key)).fetchone()
        if held is None:
            return False
        self.conn.execute("DELETE FROM held_keys WHERE document_id = ? AND destination = ? AND key = ?",
                          (doc_id, destination, key))
        if event:
            which = "its old key" if held["old"] else "key"
            self._event(doc_id, now=now, actor=actor, from_state=None, to_state=None,
                        reason=f"{destination} no longer holds it under {which} {key} ({why}): forgotten",
                        details={"forgot_key": {"destination": destination, "key": key, "by": by, "why": why}})
        return True

    def _row_forgets(self, delivery_id: int, key: str, *, now: str, why: str) -> None:
        # A row requeued after its delivery under `key` (its delivered_key
        # kept): the destination holds nothing under it, as a row back from
        # `missing` says (requeue_deliveries).
        self.conn.execute("UPDATE deliveries SET delivered_key = NULL, updated_at = ? WHERE id = ? "
                          "AND delivered_key = ?", (now, delivery_id, key))
        self._attempt(delivery_id, now=now, outcome="absent", error=why, next_attempt_at=None)

    def _forgotten_before(self, doc_id: int, destination: str, key: str, row) -> dict | None:
        # When `key` was forgotten at `destination` before (its event), or
        # its row was found missing under it: {at, actor, by}; else None.
        for e in self.conn.execute("SELECT at, actor, details FROM events WHERE document_id = ? "
                                   "AND details LIKE '%\"forgot_key\"%' ORDER BY id DESC", (doc_id,)):
            try:
                said = (json.loads(e["details"]) or {}).get("forgot_key") or {}
            except (ValueError, AttributeError):
                continue
            if said.get("destination") == destination and said.get("key") == key:
                return {"at": e["at"], "actor": e["actor"], "by": said.get("by"), "why": said.get("why")}
        if row is not None and row["state"] == "missing" and row["delivered_key"] == key:
            return {"at": row["updated_at"], "actor": None, "by": "reconcile", "why": "its row is missing there"}
        return None
