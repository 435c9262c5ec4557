"""What `status` and `backup status` say about backups: per target, and copies held.

Read-only queries over the rows `agent/ledger/backups.py` writes.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from agent.ledger.rows import CONTAINER_SHA256, CONTAINER_SOURCES


class BackupReportsMixin:
    """Part of `Ledger` (through BackupsMixin): the backup figures commands print."""

    def backup_target(self, target: str) -> dict:
        """`target`'s health row (all None before its first use) plus its rows:
        objects and bytes held, backlog count and oldest, failed count.
        `unreachable_since` is the start of a running outage (None while
        the target answers)."""
        row = self.conn.execute("SELECT * FROM backup_targets WHERE name = ?", (target,)).fetchone()
        out: dict[str, Any] = dict(row) if row else {"name": target}
        for key in ("paused_error", "paused_at", "last_put_at", "last_error", "last_error_at",
                    "last_verify_at", "last_snapshot_at", "last_snapshot", "last_snapshot_sha256",
                    "unreachable_since"):
            out.setdefault(key, None)
        out["last_verify"] = json.loads(out["last_verify"]) if out.get("last_verify") else None
        out.pop("manifest_days", None)
        out.pop("enqueued_event_id", None)
        out.pop("snapshot_event_id", None)
        out.pop("updated_at", None)
        # Counts and bytes per state are kept by triggers (migration 28): O(1)
        # however many rows; the rest reads only the backlog and new documents.
        counts = {r[0]: (r[1], r[2]) for r in self.conn.execute(
            "SELECT state, n, bytes FROM backup_counts WHERE target = ?", (target,))}
        held = counts.get("done", (0, 0))
        backlog = (counts.get("pending", (0, 0))[0], self.conn.execute(
            "SELECT min(queued_at) FROM backups WHERE target = ? AND state = 'pending'", (target,)).fetchone()[0])
        failed = counts.get("failed", (0, 0))[0]
        stale = self.conn.execute("SELECT count(*) FROM backups WHERE target = ? AND state = 'done' "
                                  "AND next_attempt_at IS NOT NULL", (target,)).fetchone()[0]
        # Documents the backup thread has not queued yet (never ran, or is
        # behind) are backlog too: looked up one by one by their hash (NOT IN
        # would list every row of the target first).
        waiting = self.conn.execute("SELECT count(DISTINCT d.sha256), min(d.received_at) FROM documents d "
                                    "WHERE d.id > ? AND NOT EXISTS (SELECT 1 FROM backups b "
                                    "WHERE b.sha256 = d.sha256 AND b.target = ?)",
                                    (out.get("enqueued_doc_id") or 0, target)).fetchone()
        oldest = min((t for t in (backlog[1], waiting[1]) if t), default=None)
        out.update(objects=held[0], bytes=held[1], backlog=backlog[0] + waiting[0], backlog_oldest=oldest,
                   failed=failed, stale_sidecars=stale)
        out.pop("enqueued_doc_id", None)
        out.pop("enqueued_source_id", None)
        out.pop("identity", None)
        # Objects a verification found not kept: not held (their rows are
        # pending), and the target is not ok until each reads back whole.
        out["unverified"] = self.unverified_counts(target)
        return out

    def backed_up_count(self, targets: Sequence[str], min_copies: int) -> dict[str, int]:
        """How many originals are held by at least `min_copies` of `targets`
        (0: all of them), counted apart: `objects`/`backed_up` over every
        original the vault keeps for the ledger (documents' files, the raw
        e-mails they came in, refused files kept), `documents`/
        `documents_backed_up` over documents' files only. So held never
        exceeds its total (an e-mail is never counted against documents)."""
        need = len(targets) if min_copies <= 0 else min(min_copies, len(targets))
        marks = ",".join("?" * len(targets)) or "NULL"
        documents = self.conn.execute("SELECT n FROM ledger_counts WHERE name = 'originals'").fetchone()[0]
        # Raw e-mails and refused files kept that are no document's file (few),
        # and how many of them are held: looked up one by one.
        others, others_held = self.conn.execute(
            "SELECT count(*), coalesce(sum((SELECT count(*) FROM backups b WHERE b.sha256 = o.sha256 "
            f"AND b.state = 'done' AND b.target IN ({marks})) >= ?), 0) FROM ("
            f"SELECT {CONTAINER_SHA256} AS sha256 FROM sources "
            f"WHERE {CONTAINER_SOURCES} UNION SELECT sha256 FROM refusals) o "
            "WHERE o.sha256 IS NOT NULL AND NOT EXISTS (SELECT 1 FROM documents d WHERE d.sha256 = o.sha256)",
            (*targets, need if targets else 1)).fetchone()
        if not targets:
            return {"objects": documents + others, "backed_up": 0, "documents": documents, "documents_backed_up": 0}
        # Rows exist only for originals (enqueue_backups, requeue_backup,
        # restore_documents). When every copy held is on one of `targets`
        # (no rows of a target since removed from the config), the copies
        # per original kept by triggers answer in O(1).
        holding = {r[0] for r in self.conn.execute("SELECT target FROM backup_counts WHERE state = 'done' "
                                                   "AND n > 0")}
        if holding <= set(targets):
            held = self.conn.execute("SELECT coalesce(sum(n), 0) FROM backup_copies_count WHERE copies >= ?",
                                     (need,)).fetchone()[0]
            return {"objects": documents + others, "backed_up": held, "documents": documents,
                    "documents_backed_up": held - others_held}
        held = self.conn.execute(f"SELECT count(*) FROM (SELECT sha256 FROM backups WHERE state = 'done' "
                                 f"AND target IN ({marks}) GROUP BY sha256 HAVING count(*) >= ?)",
                                 (*targets, need)).fetchone()[0]
        return {"objects": documents + others, "backed_up": held, "documents": documents,
                "documents_backed_up": held - others_held}
