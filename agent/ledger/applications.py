"""补录 applications: their rows, their numbers and their decisions.

Guarantees:
- `file_application` takes the next sequence number of its filing day from
  the rows themselves, inside the caller's BEGIN IMMEDIATE transaction, so
  two filers (threads or processes) never get the same number and the
  numbers of a day have no gaps; a restored ledger goes on from its rows.
- `decide_application` is a compare-and-set on `pending`: an application is
  decided once, whoever is faster.
The rules (who may decide what) are `agent/applications.py`'s.
"""

from __future__ import annotations

import json
from typing import Any

from agent.errors import AgentError

PENDING, APPROVED, DECLINED = "pending", "approved", "declined"
APPLICATIONS_SCHEMA = 19   # the migration that added the table; read-only ledgers may be older
APPLICATION_STATES = (PENDING, APPROVED, DECLINED)
_JSON_COLUMNS = ("changes", "held_problems")


class ApplicationNotFound(AgentError):
    """No application has this number."""


class ApplicationsMixin:
    """Part of `Ledger`: expects `self.conn` and `self.transaction()`."""

    def file_application(self, *, day: str, document_id: int, kind: str, approval: str, filed_at: str,
                         filed_by: str, filer: str, reason: str, doc_state: str, fields_sha256: str,
                         changes: dict | None = None, held_problems: list | None = None) -> str:
        """Record a pending application and return its number
        `BL-<day>-<seq:04d>`, the next of `day` (YYYYMMDD)."""
        with self.transaction() as c:
            seq = c.execute("SELECT coalesce(max(seq), 0) + 1 FROM applications WHERE day = ?",
                            (day,)).fetchone()[0]
            number = f"BL-{day}-{seq:04d}"
            c.execute("INSERT INTO applications (number, day, seq, document_id, kind, state, approval, filed_at, "
                      "filed_by, filer, reason, doc_state, fields_sha256, changes, held_problems) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      (number, day, seq, document_id, kind, PENDING, approval, filed_at, filed_by, filer, reason,
                       doc_state, fields_sha256, _dumps(changes), _dumps(held_problems)))
            return number

    def decide_application(self, number: str, *, state: str, at: str, by: str, decider: str,
                           reason: str | None) -> bool:
        """Mark a pending application approved or declined; False (and
        nothing changed) when it is not pending any more."""
        if state not in (APPROVED, DECLINED):
            raise ValueError(f"not a decision: {state!r}")
        with self.transaction() as c:
            return c.execute("UPDATE applications SET state = ?, decided_at = ?, decided_by = ?, decider = ?, "
                             "decision_reason = ? WHERE number = ? AND state = ?",
                             (state, at, by, decider, reason, number, PENDING)).rowcount == 1

    def set_application_outcome(self, number: str, outcome: str) -> None:
        """Record the document's state once the decision was carried out."""
        with self.transaction() as c:
            c.execute("UPDATE applications SET outcome = ? WHERE number = ?", (outcome, number))

    def set_held_problems(self, number: str, problems: list[dict]) -> None:
        """The problems a pending application shows on the document it holds."""
        with self.transaction() as c:
            c.execute("UPDATE applications SET held_problems = ? WHERE number = ?", (_dumps(problems), number))

    def application(self, number: str) -> dict[str, Any]:
        """The application `number` (case-insensitive); raises ApplicationNotFound."""
        row = self.conn.execute("SELECT * FROM applications WHERE number = ?", (number.strip().upper(),)).fetchone()
        if row is None:
            raise ApplicationNotFound(f"no application {number!r} (numbers look like BL-20261203-0007; "
                                      "`fapiao-agent requests` lists them)")
        return _row(row)

    def pending_application(self, doc_id: int) -> dict[str, Any] | None:
        """The document's pending application, or None."""
        row = self.conn.execute("SELECT * FROM applications WHERE document_id = ? AND state = ? ORDER BY id LIMIT 1",
                                (doc_id, PENDING)).fetchone()
        return _row(row) if row else None

    def applications_of(self, doc_id: int) -> list[dict[str, Any]]:
        """Every application about the document, oldest first."""
        if self.schema_version < APPLICATIONS_SCHEMA:
            return []
        rows = self.conn.execute("SELECT * FROM applications WHERE document_id = ? ORDER BY id", (doc_id,))
        return [_row(r) for r in rows]

    def list_applications(self, *, state: str | None = None, limit: int | None = 50) -> list[dict[str, Any]]:
        """Applications, newest first, with the document's invoice number and
        state; only `state` when given; at most `limit` (None: all)."""
        if self.schema_version < APPLICATIONS_SCHEMA:
            return []
        where, params = ("WHERE a.state = ?", [state]) if state else ("", [])
        sql = ("SELECT a.*, d.invoice_number, d.state AS doc_state_now FROM applications a "
               f"JOIN documents d ON d.id = a.document_id {where} ORDER BY a.id DESC")
        if limit:
            sql += " LIMIT ?"
            params.append(limit)
        return [_row(r) for r in self.conn.execute(sql, params)]

    def application_events(self, number: str, doc_id: int) -> list[dict[str, Any]]:
        """The events of the document that carry this application number."""
        rows = self.conn.execute(
            "SELECT id, at, actor, from_state, to_state, reason, details FROM events WHERE document_id = ? "
            "AND json_valid(details) AND json_extract(details, '$.application') = ? ORDER BY id",
            (doc_id, number))
        return [{**dict(r), "details": json.loads(r["details"])} for r in rows]

    def pending_summary(self, *, filed_before: str | None = None) -> dict[str, Any]:
        """How many applications are pending (`pending`), when the oldest was
        filed (`oldest_filed_at`), how many were filed before `filed_before`
        (`overdue`; 0 without it) and the documents they hold by the state
        each is in now (`held`, e.g. {"quarantined": 2, "duplicate": 1}: a
        held duplicate is waiting for a person too, though its state counts
        as finished). One read; zeros on a ledger older than the table."""
        if self.schema_version < APPLICATIONS_SCHEMA:
            return {"pending": 0, "oldest_filed_at": None, "overdue": 0, "held": {}}
        n, oldest, overdue = self.conn.execute(
            "SELECT count(*), min(filed_at), count(CASE WHEN filed_at < ? THEN 1 END) FROM applications "
            "WHERE state = ?", (filed_before or "", PENDING)).fetchone()
        held = {state: count for state, count in self.conn.execute(
            "SELECT d.state, count(DISTINCT d.id) FROM applications a JOIN documents d ON d.id = a.document_id "
            "WHERE a.state = ? GROUP BY d.state ORDER BY d.state", (PENDING,))}
        return {"pending": n, "oldest_filed_at": oldest, "overdue": overdue, "held": held}

    def pending_applications(self, *, filed_before: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """The pending applications, OLDEST first (the longest wait leads),
        only those filed before `filed_before` when given, at most `limit`:
        number, document_id, kind, filer, filed_at, reason, the document's
        state now (`doc_state_now`), invoice_number and original_name."""
        if self.schema_version < APPLICATIONS_SCHEMA:
            return []
        where, params = "a.state = ?", [PENDING]
        if filed_before:
            where += " AND a.filed_at < ?"
            params.append(filed_before)
        rows = self.conn.execute(
            "SELECT a.number, a.document_id, a.kind, a.filer, a.filed_at, a.reason, d.state AS doc_state_now, "
            f"d.invoice_number, d.original_name FROM applications a JOIN documents d ON d.id = a.document_id "
            f"WHERE {where} ORDER BY a.filed_at, a.id LIMIT ?", (*params, limit))
        return [dict(r) for r in rows]

def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)


def _row(row) -> dict[str, Any]:
    out = dict(row)
    for k in _JSON_COLUMNS:
        if out.get(k):
            out[k] = json.loads(out[k])
    return out
