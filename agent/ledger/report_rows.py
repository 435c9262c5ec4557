"""The weekly check's figures (`fapiao-agent report`): read-only queries.

Every number the report prints comes from one of these methods; the report
package (agent/report/) only groups, sorts and formats them. Windows are
half-open, [since, until), in the ledger's UTC timestamp text. A mixin of
the one Ledger class.
"""

from __future__ import annotations

from typing import Any

# Documents the machine has not delivered yet and that are not ended: an
# invoice in one of these states can still run out of its max_age_days.
UNDELIVERED_STATES = ("captured", "extracted", "valid", "quarantined", "queued", "delivering",
                      "failed", "missing")
_SELLER = "json_extract(CASE WHEN json_valid(fields) THEN fields END, '$.seller_name')"


class ReportRowsMixin:
    """Part of `Ledger`: the rows behind each section of the weekly report."""

    def arrivals_by_minute(self, *, since: str, until: str) -> list[dict]:
        """Documents that arrived in the window, counted per UTC minute
        (`minute`: "YYYY-MM-DDTHH:MM") and current state; the caller buckets
        them into days of its own time zone (minutes, so a zone 5:45 off UTC
        is cut right). Uses documents_received."""
        rows = self.conn.execute(
            "SELECT substr(received_at, 1, 16) AS minute, state, count(*) AS n FROM documents "
            "WHERE received_at >= ? AND received_at < ? GROUP BY minute, state ORDER BY minute, state",
            (since, until))
        return [dict(r) for r in rows]

    def refusals_by_minute(self, *, since: str, until: str) -> list[dict]:
        """Files and attachments refused in the window (never a document),
        counted per UTC minute (`minute`, `n`)."""
        rows = self.conn.execute(
            "SELECT substr(at, 1, 16) AS minute, count(*) AS n FROM refusals WHERE at >= ? AND at < ? "
            "GROUP BY minute ORDER BY minute", (since, until))
        return [dict(r) for r in rows]

    def repeat_arrivals(self, *, since: str, until: str) -> int:
        """How many times, in the window, bytes already in the ledger arrived
        again (a source row added to an existing document, not a new one)."""
        return self.conn.execute(
            "SELECT count(*) FROM sources s JOIN documents d ON d.id = s.document_id "
            "WHERE s.at >= ? AND s.at < ? AND s.at <> d.received_at", (since, until)).fetchone()[0]

    def arrival_to_delivery(self, *, since: str, until: str) -> list[dict]:
        """For each document that arrived in the window and is delivered or
        confirmed now: its `received_at`, `delivered_at` (its last
        destination's acceptance) and, when confirmed, `confirmed_at` (its
        last confirmation; else None)."""
        rows = self.conn.execute(
            "SELECT doc.id, doc.state, doc.received_at, max(d.delivered_at) AS delivered_at, "
            "CASE WHEN doc.state = 'confirmed' THEN max(d.confirmed_at) END AS confirmed_at "
            "FROM documents doc JOIN deliveries d ON d.document_id = doc.id "
            "WHERE doc.received_at >= ? AND doc.received_at < ? AND doc.state IN ('delivered', 'confirmed') "
            "AND d.state IN ('delivered', 'confirmed') GROUP BY doc.id ORDER BY doc.id", (since, until))
        return [dict(r) for r in rows]

    def open_quarantine(self, *, oldest: int = 10) -> dict[str, Any]:
        """Every document quarantined now (whenever it arrived): `total`,
        `by_code` (documents per error-level rule code; one with none is
        counted under "-"), and the `oldest` longest-waiting cases (id,
        received_at, invoice_number, seller_name, original_name, codes)."""
        total = self.conn.execute("SELECT count(*) FROM documents WHERE state = 'quarantined'").fetchone()[0]
        codes = ("SELECT group_concat(c, ' ') FROM (SELECT DISTINCT json_extract(p.value, '$.code') AS c "
                 "FROM json_each(CASE WHEN json_valid(documents.problems) THEN documents.problems END) p "
                 "WHERE json_extract(p.value, '$.severity') = 'error' ORDER BY c)")
        by_code: dict[str, int] = {}
        for row in self.conn.execute(f"SELECT coalesce(({codes}), '-') AS codes FROM documents "
                                     "WHERE state = 'quarantined'"):
            for code in row["codes"].split(" "):
                by_code[code] = by_code.get(code, 0) + 1
        cases = self.conn.execute(
            f"SELECT id, received_at, invoice_number, {_SELLER} AS seller_name, original_name, "
            f"coalesce(({codes}), '-') AS codes FROM documents WHERE state = 'quarantined' "
            "ORDER BY received_at, id LIMIT ?", (oldest,))
        return {"total": total, "by_code": dict(sorted(by_code.items(), key=lambda kv: (-kv[1], kv[0]))),
                "oldest": [dict(r) for r in cases]}

    def duplicates_caught(self, *, since: str, until: str, examples: int = 10) -> dict[str, Any]:
        """Documents that arrived in the window and are duplicates of another
        copy of their invoice now: `count`, and the first `examples` (id,
        received_at, invoice_number, seller_name, original_name, duplicate_of)."""
        where = "state = 'duplicate' AND received_at >= ? AND received_at < ?"
        count = self.conn.execute(f"SELECT count(*) FROM documents WHERE {where}", (since, until)).fetchone()[0]
        rows = self.conn.execute(
            f"SELECT id, received_at, invoice_number, {_SELLER} AS seller_name, original_name, duplicate_of "
            f"FROM documents WHERE {where} ORDER BY received_at, id LIMIT ?", (since, until, examples))
        return {"count": count, "examples": [dict(r) for r in rows]}

    def missing_at_reconciliation(self, *, since: str, until: str, limit: int = 50) -> dict[str, Any]:
        """Delivery rows reconciliation did not find at their destination in
        the window: `count` (rows), `resent` (of those, rows delivered again
        after that lookup), and up to `limit` rows (document_id,
        invoice_number, destination, absent_at: the first such lookup,
        resent_at, state: the row's now)."""
        base = ("SELECT a.delivery_id, min(a.at) AS absent_at FROM attempts a WHERE a.outcome = 'absent' "
                "AND a.at >= ? AND a.at < ? GROUP BY a.delivery_id")
        sql = ("SELECT m.delivery_id, d.document_id, doc.invoice_number, d.destination, m.absent_at, d.state, "
               "(SELECT min(r.at) FROM attempts r WHERE r.delivery_id = m.delivery_id "
               "AND r.outcome = 'delivered' AND r.at > m.absent_at) AS resent_at "
               f"FROM ({base}) m JOIN deliveries d ON d.id = m.delivery_id "
               "JOIN documents doc ON doc.id = d.document_id")
        count, resent = self.conn.execute(f"SELECT count(*), count(resent_at) FROM ({sql})",
                                          (since, until)).fetchone()
        rows = self.conn.execute(f"{sql} ORDER BY m.absent_at, m.delivery_id LIMIT ?", (since, until, limit))
        return {"count": count, "resent": resent, "rows": [dict(r) for r in rows]}

    def undelivered_dated_by(self, *, dated_on_or_before: str, limit: int = 50) -> dict[str, Any]:
        """Documents not delivered yet and not ended (UNDELIVERED_STATES)
        whose 开票日期 is on or before `dated_on_or_before` (YYYY-MM-DD):
        `count`, and the `limit` oldest-dated (id, state, invoice_number,
        invoice_date, seller_name, received_at, original_name)."""
        marks = ",".join("?" * len(UNDELIVERED_STATES))
        where = f"state IN ({marks}) AND invoice_date IS NOT NULL AND invoice_date <= ?"
        params = (*UNDELIVERED_STATES, dated_on_or_before)
        count = self.conn.execute(f"SELECT count(*) FROM documents WHERE {where}", params).fetchone()[0]
        rows = self.conn.execute(
            f"SELECT id, state, invoice_number, invoice_date, {_SELLER} AS seller_name, received_at, "
            f"original_name FROM documents WHERE {where} ORDER BY invoice_date, id LIMIT ?", (*params, limit))
        return {"count": count, "rows": [dict(r) for r in rows]}
