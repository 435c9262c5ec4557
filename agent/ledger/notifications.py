"""Notification rows (migration 21): the durable outbox of [[notify]]
messages, the faults each entry was told about, and each entry's
quarantine digest cursor. The rules of when to notify are agent/notify/;
here only their SQL.

Guarantees: a message enqueued is a `pending` row when the call returns (so
a crash, a dead SMTP server or a restart loses none); its retry state is
columns (attempts, next_attempt_at, last_error); a fault opened or resolved,
a message sent or given up writes its trail event in the same transaction.
Rows hold no secrets: they are written from our own texts, and errors come
redacted (agent/errors.py AdapterError).
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Sequence

from agent.ledger.trail import append_event

NOTIFY_SCHEMA = 21           # the migration that added these tables
_MESSAGE_COLUMNS = ("entry", "event", "key", "kind", "subject", "body", "html", "attachments")


class NotificationsMixin:
    """Part of `Ledger`: the notify outbox, open faults and digest cursors."""

    # -- the outbox ---------------------------------------------------------------

    def enqueue_notifications(self, messages: Sequence[dict[str, Any]], *, now: str) -> list[int]:
        """Insert `messages` (dicts with entry, event, key, kind, subject,
        body, and optional html and attachments: a JSON-ready list) as
        pending rows due now, in one transaction; returns their ids."""
        with self.transaction():
            return self._insert_notifications(messages, now)

    def _insert_notifications(self, messages: Iterable[dict[str, Any]], now: str) -> list[int]:
        ids = []
        for m in messages:
            values = [m.get(c) for c in _MESSAGE_COLUMNS]
            values[-1] = json.dumps(m["attachments"]) if m.get("attachments") else None
            cur = self.conn.execute(
                f"INSERT INTO notifications ({', '.join(_MESSAGE_COLUMNS)}, state, next_attempt_at, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
                (*values, now, now, now))
            ids.append(cur.lastrowid)
        return ids

    def due_notifications(self, *, now: str, limit: int = 20) -> list[dict]:
        """Pending rows due at `now`, oldest due first, attachments parsed."""
        rows = self.conn.execute("SELECT * FROM notifications WHERE state = 'pending' AND next_attempt_at <= ? "
                                 "ORDER BY next_attempt_at, id LIMIT ?", (now, limit)).fetchall()
        return [self._notification(r) for r in rows]

    def notification(self, notification_id: int) -> dict | None:
        """One row as a dict (attachments parsed), or None."""
        row = self.conn.execute("SELECT * FROM notifications WHERE id = ?", (notification_id,)).fetchone()
        return self._notification(row) if row else None

    def notifications(self, *, entry: str | None = None, limit: int = 100) -> list[dict]:
        """The latest rows (of `entry`), newest first, attachments parsed."""
        rows = self.conn.execute("SELECT * FROM notifications WHERE ? IS NULL OR entry = ? "
                                 "ORDER BY id DESC LIMIT ?", (entry, entry, limit)).fetchall()
        return [self._notification(r) for r in rows]

    @staticmethod
    def _notification(row) -> dict:
        d = dict(row)
        d["attachments"] = json.loads(d["attachments"]) if d["attachments"] else []
        return d

    def notification_sent(self, notification_id: int, *, now: str, actor: str) -> None:
        """Mark a pending row sent (attempts + 1) with its trail event."""
        with self.transaction() as c:
            row = c.execute("UPDATE notifications SET state = 'sent', attempts = attempts + 1, sent_at = ?, "
                            "next_attempt_at = NULL, updated_at = ? WHERE id = ? AND state = 'pending' "
                            "RETURNING entry, key, kind, attempts", (now, now, notification_id)).fetchone()
            if row:
                append_event(c, None, now=now, actor=actor, from_state=None, to_state=None,
                             reason=f"notification {notification_id} sent to {row['entry']}",
                             details={"notify": row["entry"], "key": row["key"], "kind": row["kind"],
                                      "attempts": row["attempts"]})

    def notification_retry(self, notification_id: int, *, error: str, now: str, next_attempt_at: str) -> None:
        """Record a failed try of a pending row: attempts + 1, the (already
        redacted) error, and when to try again."""
        with self.transaction() as c:
            c.execute("UPDATE notifications SET attempts = attempts + 1, last_error = ?, last_error_at = ?, "
                      "next_attempt_at = ?, updated_at = ? WHERE id = ? AND state = 'pending'",
                      (error[:500], now, next_attempt_at, now, notification_id))

    def notification_failed(self, notification_id: int, *, error: str, now: str, actor: str) -> None:
        """Give a pending row up (a permanent error, or retried too long),
        with its trail event; `status` counts it against its entry."""
        with self.transaction() as c:
            row = c.execute("UPDATE notifications SET state = 'failed', attempts = attempts + 1, last_error = ?, "
                            "last_error_at = ?, next_attempt_at = NULL, updated_at = ? "
                            "WHERE id = ? AND state = 'pending' RETURNING entry, key, kind, attempts",
                            (error[:500], now, now, notification_id)).fetchone()
            if row:
                append_event(c, None, now=now, actor=actor, from_state=None, to_state=None,
                             reason=f"notification {notification_id} to {row['entry']} given up: {error[:200]}",
                             details={"notify": row["entry"], "key": row["key"], "kind": row["kind"],
                                      "attempts": row["attempts"]})

    def record_notification(self, message: dict[str, Any], *, sent: bool, error: str | None, now: str,
                            actor: str) -> int:
        """A message already tried outside the outbox (`notify test`): one row,
        sent or failed, with its trail event, in one transaction."""
        with self.transaction():
            (nid,) = self._insert_notifications([message], now)
            if sent:
                self.notification_sent(nid, now=now, actor=actor)
            else:
                self.notification_failed(nid, error=error or "failed", now=now, actor=actor)
            return nid

    def notify_summary(self, entries: Sequence[str]) -> list[dict]:
        """Per entry: pending, sent and failed counts, the last success, the
        last error and when, and `failing` (its latest try failed and nothing
        was sent since). On a ledger the daemon has not yet brought to
        NOTIFY_SCHEMA (read-only), every count is None."""
        if self.schema_version < NOTIFY_SCHEMA:
            return [{"name": n, "pending": None, "sent": None, "failed": None, "last_sent_at": None,
                     "last_error": None, "last_error_at": None, "failing": False} for n in entries]
        out = []
        for name in entries:
            counts = dict(self.conn.execute("SELECT state, count(*) FROM notifications WHERE entry = ? "
                                            "GROUP BY state", (name,)).fetchall())
            last_sent = self.conn.execute("SELECT max(sent_at) FROM notifications WHERE entry = ?",
                                          (name,)).fetchone()[0]
            err = self.conn.execute("SELECT last_error, last_error_at FROM notifications WHERE entry = ? "
                                    "AND last_error_at IS NOT NULL ORDER BY last_error_at DESC LIMIT 1",
                                    (name,)).fetchone()
            last_error, last_error_at = (err[0], err[1]) if err else (None, None)
            out.append({"name": name, "pending": counts.get("pending", 0), "sent": counts.get("sent", 0),
                        "failed": counts.get("failed", 0), "last_sent_at": last_sent,
                        "last_error": last_error, "last_error_at": last_error_at,
                        "failing": bool(last_error_at and (not last_sent or last_error_at > last_sent))})
        return out

    # -- faults and digests -------------------------------------------------------

    def notify_faults(self, entry: str) -> dict[str, dict]:
        """The faults `entry` was told about and not yet told resolved, by key."""
        return {r["key"]: dict(r) for r in self.conn.execute("SELECT * FROM notify_faults WHERE entry = ?",
                                                              (entry,))}

    def notify_cursor(self, entry: str) -> dict | None:
        """`entry`'s digest cursor (quarantine_event_id, digest_at), or None."""
        row = self.conn.execute("SELECT * FROM notify_cursors WHERE entry = ?", (entry,)).fetchone()
        return dict(row) if row else None

    def last_event_id(self) -> int:
        """The highest event id (0 on an empty ledger)."""
        return self.conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]

    def quarantines_after(self, event_id: int, *, limit: int = 200) -> list[dict]:
        """Documents moved to quarantined by events after `event_id`, oldest
        first: event_id, at, document_id, original_name, received_at, the
        error codes of its problems (each once, in order), and its state now."""
        rows = self.conn.execute(
            "SELECT e.id AS event_id, e.at, e.reason, d.id AS document_id, d.original_name, d.received_at, "
            "d.state, d.problems FROM events e JOIN documents d ON d.id = e.document_id "
            "WHERE e.id > ? AND e.to_state = 'quarantined' ORDER BY e.id LIMIT ?", (event_id, limit)).fetchall()
        out = []
        for r in rows:
            d = dict(r)
            problems = json.loads(d.pop("problems") or "[]")
            # Each code once, in order: amount-range on two fields is one reason.
            d["codes"] = list(dict.fromkeys(p.get("code") for p in problems if p.get("severity") == "error"))
            out.append(d)
        return out

    def quarantines_count_after(self, event_id: int) -> tuple[int, int | None]:
        """How many moves to quarantined came after `event_id`, and the id of
        the last of them (None: none): a digest counts them all, however
        many it lists by name."""
        n, last = self.conn.execute("SELECT count(*), max(id) FROM events WHERE id > ? AND to_state = 'quarantined'",
                                    (event_id,)).fetchone()
        return n, last

    def save_notify_round(self, entry: str, *, opened: Sequence[dict], reminded: Sequence[str],
                          seen_again: Sequence[str], clearing: Sequence[str], resolved: Sequence[str],
                          cursor: tuple[int, str] | None, messages: Sequence[dict], now: str, actor: str) -> None:
        """One round of `entry`'s fault bookkeeping, in one transaction:
        faults `opened` (dicts: key, event, subject) inserted, `reminded`
        touched, `seen_again` no longer clearing, `clearing` marked clear
        since now, `resolved` deleted; the digest `cursor` (event id, digest
        time) moved; `messages` enqueued; an event for each opened and
        resolved fault."""
        with self.transaction() as c:
            for f in opened:
                c.execute("INSERT OR REPLACE INTO notify_faults (entry, key, event, subject, opened_at, "
                          "notified_at) VALUES (?, ?, ?, ?, ?, ?)", (entry, f["key"], f["event"], f["subject"],
                                                                       now, now))
                append_event(c, None, now=now, actor=actor, from_state=None, to_state=None,
                             reason=f"notify {entry}: {f['key']} opened", details={"notify": entry, "key": f["key"]})
            for key in reminded:
                c.execute("UPDATE notify_faults SET notified_at = ? WHERE entry = ? AND key = ?", (now, entry, key))
            for key in seen_again:
                c.execute("UPDATE notify_faults SET clear_since = NULL WHERE entry = ? AND key = ?", (entry, key))
            for key in clearing:
                c.execute("UPDATE notify_faults SET clear_since = ? WHERE entry = ? AND key = ?", (now, entry, key))
            for key in resolved:
                c.execute("DELETE FROM notify_faults WHERE entry = ? AND key = ?", (entry, key))
                append_event(c, None, now=now, actor=actor, from_state=None, to_state=None,
                             reason=f"notify {entry}: {key} resolved", details={"notify": entry, "key": key})
            if cursor is not None:
                c.execute("INSERT INTO notify_cursors (entry, quarantine_event_id, digest_at) VALUES (?, ?, ?) "
                          "ON CONFLICT(entry) DO UPDATE SET quarantine_event_id = excluded.quarantine_event_id, "
                          "digest_at = excluded.digest_at", (entry, *cursor))
            self._insert_notifications(messages, now)
