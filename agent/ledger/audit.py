"""The queries behind `audit ledger`: streams over the whole ledger, read only.

Each query reads one table (or one table and its index-backed neighbours)
in id order and yields plain dicts, so the checker in `agent/audit.py`
holds one row at a time, plus a few sets of hashes and paths. Nothing here
writes. Run them inside `snapshot()` so every query sees the same commit,
even while a daemon is writing.
"""

from __future__ import annotations

from typing import Any, Iterator

from agent.ledger.applications import APPLICATIONS_SCHEMA
from agent.ledger.delivery_reports import LATE_DOCUMENT_STATES
from agent.ledger.schema import LATEST
from agent.ledger.rows import CONTAINER_SHA256, CONTAINER_SOURCES, SnapshotReader

# The audit reads tables and columns of the latest schema (mail_taken,
# deliveries.delivered_key); older files are refused, never migrated.
AUDIT_SCHEMA = LATEST
_FETCH = 2000


class LedgerAudit(SnapshotReader):
    """Read-only queries over one open Ledger connection."""

    def _stream(self, sql: str, params: tuple = ()) -> Iterator[dict[str, Any]]:
        cur = self.conn.execute(sql, params)
        while rows := cur.fetchmany(_FETCH):
            for r in rows:
                yield dict(r)

    def count_documents(self) -> int:
        """How many documents there are (for a progress bar)."""
        return self.conn.execute("SELECT count(*) FROM documents").fetchone()[0]

    def documents(self, end_states: tuple[str, ...]) -> Iterator[dict[str, Any]]:
        """Every document in id order with what the checker judges it by:
        state, key, whether it has problems and a source row, the reason of
        the last event that put it in its state (only for `end_states`:
        None without such an event, '' when it had no reason), and the
        state and key of the document it is a duplicate of."""
        marks = ",".join("?" * len(end_states)) or "NULL"
        return self._stream(
            "SELECT d.id, d.sha256, d.part, d.state, d.updated_at, d.invoice_key, d.duplicate_of, "
            "(d.problems IS NOT NULL AND d.problems NOT IN ('', '[]', 'null')) AS has_problems, "
            "(d.part != 1 OR EXISTS (SELECT 1 FROM sources s WHERE s.document_id = d.id)) AS has_source, "
            f"CASE WHEN d.state IN ({marks}) THEN (SELECT coalesce(e.reason, '') FROM events e "
            "  WHERE e.document_id = d.id AND e.to_state = d.state ORDER BY e.id DESC LIMIT 1) END "
            "  AS state_reason, "
            "t.id AS original_id, t.state AS original_state, t.invoice_key AS original_key, "
            "(SELECT f.remote_site FROM fleet_claims f WHERE f.document_id = d.id AND f.state = 'lost' "
            "  AND f.invoice_key IS d.invoice_key) "
            "  AS fleet_site "
            "FROM documents d LEFT JOIN documents t ON t.id = d.duplicate_of ORDER BY d.id",
            tuple(end_states))

    def deliveries(self) -> Iterator[dict[str, Any]]:
        """Every delivery row in (document id, row id) order, with the key
        it was delivered under, whether the keys its destination holds the
        document under list that key (`key_held`, None without one), and the
        outcome of its last attempt."""
        return self._stream(
            "SELECT r.id, r.document_id, r.destination, r.state, r.last_error, r.queued_at, "
            "r.delivered_at, r.confirmed_at, r.delivered_key, "
            "CASE WHEN r.delivered_key IS NOT NULL THEN EXISTS (SELECT 1 FROM held_keys h "
            "  WHERE h.document_id = r.document_id AND h.destination = r.destination AND h.key = r.delivered_key) "
            "  END AS key_held, "
            "(SELECT a.outcome FROM attempts a WHERE a.delivery_id = r.id ORDER BY a.id DESC LIMIT 1) "
            "  AS last_outcome "
            "FROM deliveries r ORDER BY r.document_id, r.id")

    def held_keys_misjudged(self) -> Iterator[dict[str, Any]]:
        """Keys held at a destination whose `old` mark disagrees with the
        document's key now (held_keys.old: the key is not the document's),
        or whose document has no row for that destination."""
        return self._stream(
            "SELECT h.document_id, h.destination, h.key, h.old, doc.invoice_key, "
            "EXISTS (SELECT 1 FROM deliveries r WHERE r.document_id = h.document_id "
            "  AND r.destination = h.destination) AS has_row "
            "FROM held_keys h JOIN documents doc ON doc.id = h.document_id "
            "WHERE h.old IS NOT (h.key IS NOT doc.invoice_key) OR NOT has_row ORDER BY h.document_id, h.id")

    def keys_held_twice(self, not_counted: tuple[str, ...]) -> Iterator[dict[str, Any]]:
        """Invoice keys carried by more than one document that counts as the
        invoice's copy (state not in `not_counted`), with their ids."""
        marks = ",".join("?" * len(not_counted)) or "NULL"
        return self._stream(
            "SELECT invoice_key, group_concat(id) AS ids FROM documents "
            f"WHERE invoice_key IS NOT NULL AND state NOT IN ({marks}) "
            "GROUP BY invoice_key HAVING count(*) > 1 ORDER BY min(id)", tuple(not_counted))

    def pending_not_held(self, held_states: tuple[str, ...]) -> Iterator[dict[str, Any]]:
        """Pending applications whose document is in none of `held_states`
        (number, document_id, state); none on a ledger older than them."""
        if self.conn.execute("PRAGMA user_version").fetchone()[0] < APPLICATIONS_SCHEMA:
            return iter(())
        marks = ",".join("?" * len(held_states))
        return self._stream(
            "SELECT a.number, a.document_id, d.state FROM applications a JOIN documents d ON d.id = a.document_id "
            f"WHERE a.state = 'pending' AND d.state NOT IN ({marks}) ORDER BY a.id", tuple(held_states))

    def keys_delivered_twice(self) -> Iterator[dict[str, Any]]:
        """(destination, key, ids) where more than one document has a
        delivered or confirmed row under the same key (its delivered_key, else
        its invoice key) at the same destination."""
        return self._stream(
            "SELECT r.destination, COALESCE(r.delivered_key, doc.invoice_key) AS key, "
            "group_concat(DISTINCT r.document_id) AS ids FROM deliveries r "
            "JOIN documents doc ON doc.id = r.document_id "
            "WHERE r.state IN ('delivered', 'confirmed') AND COALESCE(r.delivered_key, doc.invoice_key) IS NOT NULL "
            "GROUP BY r.destination, key HAVING count(DISTINCT r.document_id) > 1 ORDER BY min(r.document_id)")

    def late_in_status(self, *, arrived_before: str) -> set[int]:
        """Ids of the documents `status` counts as late (its SLA line): not
        yet delivered nor ended, and arrived before `arrived_before`."""
        marks = ",".join("?" * len(LATE_DOCUMENT_STATES))
        return {r[0] for r in self.conn.execute(
            f"SELECT id FROM documents WHERE state IN ({marks}) AND received_at < ?",
            (*LATE_DOCUMENT_STATES, arrived_before))}

    def referenced_objects(self) -> set[str]:
        """Every vault hash the ledger names: documents' originals, the raw
        e-mails and zip archives they came out of, and the objects of refusals."""
        out: set[str] = set()
        for sql in ("SELECT DISTINCT sha256 FROM documents",
                    f"SELECT DISTINCT {CONTAINER_SHA256} FROM sources WHERE {CONTAINER_SOURCES}",
                    "SELECT DISTINCT sha256 FROM refusals"):
            out.update(r[0] for r in self.conn.execute(sql) if r[0])
        return out

    def document_objects(self) -> Iterator[dict[str, Any]]:
        """(sha256, first document id) of every original a document is made from."""
        return self._stream("SELECT sha256, min(id) AS document_id FROM documents GROUP BY sha256")

    def seen_files(self) -> Iterator[dict[str, Any]]:
        """Every file the watcher remembered as handled: path and outcome."""
        return self._stream("SELECT path, outcome FROM seen_files ORDER BY path")

    def source_paths(self) -> Iterator[str]:
        """The path of every recorded arrival from a file."""
        for r in self._stream("SELECT DISTINCT original_path FROM sources WHERE original_path IS NOT NULL"):
            yield r["original_path"]

    def refused_names(self) -> Iterator[dict[str, Any]]:
        """(source, name) of every refusal."""
        return self._stream("SELECT DISTINCT source, name FROM refusals")

    def mails_taken(self) -> Iterator[dict[str, Any]]:
        """Every e-mail marked as taken (by the sha256 of its bytes), with
        its Message-ID, when it was first taken and how many attachments."""
        return self._stream("SELECT sha256, message_id, first_at AS at, document_count FROM mail_taken "
                            "ORDER BY first_at")

    def orphan_sources(self) -> Iterator[dict[str, Any]]:
        """Source rows whose document does not exist."""
        return self._stream("SELECT s.id, s.document_id, s.original_path, s.original_name FROM sources s "
                            "WHERE NOT EXISTS (SELECT 1 FROM documents d WHERE d.id = s.document_id)")
