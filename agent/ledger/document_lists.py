"""What the ledger says of many documents at once: counts per state, the
lists `list` and `status` show, and the briefs and labels a batch of
log lines or a table row needs. Part of `Ledger` through DocumentsMixin;
apart from documents.py, which writes documents and reads them one by one.
"""

from __future__ import annotations

import json

from agent.errors import AgentError
from agent.ledger.rows import Document
from agent.states import State

# States in which a document still owes work before it is in the finance system.
UNFINISHED = (State.CAPTURED, State.EXTRACTED, State.VALID, State.QUARANTINED, State.QUEUED,
              State.DELIVERING, State.MISSING, State.FAILED)
SORTS = {"received": "received_at DESC, id DESC", "date": "invoice_date DESC, id DESC",
         "amount": "total_cents DESC, id DESC", "id": "id"}


class DocumentListsMixin:
    """Part of `Ledger`: expects `self.conn`."""

    def counts(self) -> dict[str, int]:
        """Documents per state, every state present (zeros included). O(states)."""
        out = {s.value: 0 for s in State}
        for state, n in self.conn.execute("SELECT state, n FROM state_counts"):
            out[state] = n
        return out

    def oldest_unfinished(self) -> str | None:
        """`received_at` of the oldest document not yet delivered or ended."""
        oldest = None
        for s in UNFINISHED:
            row = self.conn.execute("SELECT min(received_at) FROM documents WHERE state = ?",
                                    (s.value,)).fetchone()
            if row[0] and (oldest is None or row[0] < oldest):
                oldest = row[0]
        return oldest

    def last_activity(self) -> str | None:
        """Time of the newest event, or None for an empty ledger."""
        row = self.conn.execute("SELECT at FROM events ORDER BY id DESC LIMIT 1").fetchone()
        return row[0] if row else None

    def list_documents(self, *, state: str | None = None, since: str | None = None,
                       sort: str = "received", limit: int | None = 50) -> list[Document]:
        """Documents filtered by state and `received_at >= since`, sorted by
        received time, invoice date or amount (newest/largest first)."""
        if sort not in SORTS:
            raise AgentError(f"sort must be one of {', '.join(SORTS)}")
        where, params = _document_filter(state, since)
        sql = f"SELECT * FROM documents{where} ORDER BY {SORTS[sort]}"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [Document.from_row(r) for r in self.conn.execute(sql, params)]

    def count_documents(self, *, state: str | None = None, since: str | None = None) -> int:
        """How many documents `list_documents` would return without a limit."""
        where, params = _document_filter(state, since)
        return self.conn.execute(f"SELECT count(*) FROM documents{where}", params).fetchone()[0]

    def labels_of(self, ids: list[int]) -> dict[int, str]:
        """The label (department subfolder or watched folder's label) of each
        document in `ids` that has one: its first arrival's that carries one."""
        out: dict[int, str] = {}
        for start in range(0, len(ids), 500):   # SQLite's bound-parameter limit
            chunk = ids[start:start + 500]
            rows = self.conn.execute(
                "SELECT document_id, json_extract(details, '$.label') FROM sources WHERE document_id IN "
                f"({','.join('?' * len(chunk))}) AND json_valid(details) "
                "AND json_extract(details, '$.label') IS NOT NULL ORDER BY id", chunk)
            for doc_id, label in rows:
                if label:
                    out.setdefault(doc_id, label)
        return out

    def briefs(self, ids: list[int]) -> dict[int, tuple[str, str | None, list[str]]]:
        """(state, invoice number, problem codes) of each document in `ids`
        that exists, by one query per 500: what a log line of a recorded
        batch says, without decoding every row."""
        out: dict[int, tuple[str, str | None, list[str]]] = {}
        for start in range(0, len(ids), 500):   # SQLite's bound-parameter limit
            chunk = ids[start:start + 500]
            rows = self.conn.execute(
                "SELECT id, state, invoice_number, problems FROM documents WHERE id IN "
                f"({','.join('?' * len(chunk))})", chunk)
            for doc_id, state, number, problems in rows:
                out[doc_id] = (state, number, [p.get("code", "?") for p in _json_list(problems)])
        return out


def _document_filter(state: str | None, since: str | None) -> tuple[str, list]:
    """The WHERE clause (with its leading space, or empty) and parameters of
    `list_documents` and `count_documents`."""
    where, params = [], []
    if state:
        where.append("state = ?")
        params.append(State(state).value)
    if since:
        where.append("received_at >= ?")
        params.append(since)
    return (" WHERE " + " AND ".join(where) if where else ""), params


def _json_list(text: str | None) -> list[dict]:
    # A column of JSON objects as Document decodes it; anything else: none.
    try:
        value = json.loads(text) if text else []
    except ValueError:
        return []
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []
