"""Backup rows: one per vault object and backup target, and each target's health.

A row is `pending` until the object and a sidecar batch describing it
are on the target (`done`, `sidecar_batch` naming the batch), or `failed` when retrying cannot help (the vault copy is gone or
corrupt). One thread works on a target at a time, so rows need no lease:
a row caught mid-put by a crash is simply still `pending`, and puts are
idempotent. Documents reach the table through `enqueue_backups`, which
remembers the last document id it saw per target, so it never rescans.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Iterator, Sequence

from agent.ledger.backup_reports import BackupReportsMixin
from agent.ledger.drills import RestoreDrillsMixin
from agent.ledger.restores import RestoresMixin
from agent.ledger.sidecars import SidecarsMixin
from agent.ledger.rows import CONTAINER_SHA256, CONTAINER_SOURCES, parse_utc, utc

# Threads take `now` at slightly different moments; a row due this much past
# the longest wait is not yet taken for one set before a jump of the clock.
_CLOCK_SLACK_S = 1.0


# The target took a write: an outage or a pause is over, and the error that
# began it is no longer its state (left behind, `backup status` would go on
# showing it as the last error). An error met while it was answering stays.
_ANSWERS = ("last_error = CASE WHEN unreachable_since IS NULL AND paused_error IS NULL THEN last_error END, "
            "last_error_at = CASE WHEN unreachable_since IS NULL AND paused_error IS NULL THEN last_error_at END, "
            "unreachable_since = NULL, paused_error = NULL, paused_at = NULL")


class BackupsMixin(BackupReportsMixin, RestoreDrillsMixin, RestoresMixin, SidecarsMixin):
    """Part of `Ledger`: backup state per object per target."""

    # -- the mirror step ---------------------------------------------------------

    def enqueue_backups(self, target: str, *, now: str) -> int:
        """Give every object of documents added since the last call a
        `pending` row for `target` (due now). Objects that already have a row
        keep it. Returns how many rows were created."""
        with self.transaction() as c:
            self._target_row(target, now)
            seen = c.execute("SELECT enqueued_doc_id FROM backup_targets WHERE name = ?",
                             (target,)).fetchone()[0]
            self._stale_sidecars(target, now)
            added = self._enqueue_messages(target, now)
            top = c.execute("SELECT coalesce(max(id), 0) FROM documents").fetchone()[0]
            if top <= seen:
                return added
            added += c.execute("INSERT OR IGNORE INTO backups (sha256, target, state, next_attempt_at, "
                              "updated_at, size, queued_at) SELECT sha256, ?, 'pending', ?, ?, max(size), ? "
                              "FROM documents WHERE id > ? AND id <= ? GROUP BY sha256",
                              (target, now, now, now, seen, top)).rowcount
            c.execute("UPDATE backup_targets SET enqueued_doc_id = ?, updated_at = ? WHERE name = ?",
                      (top, now, target))
            return added

    def _enqueue_messages(self, target: str, now: str) -> int:
        # Inside enqueue's transaction: the raw e-mails and zip archives
        # (kept in the vault) named by source rows, or by refusals when no
        # document came of them, added since the last look.
        return (self._enqueue_since(target, now, "enqueued_source_id", "sources", CONTAINER_SHA256,
                                    CONTAINER_SOURCES)
                + self._enqueue_since(target, now, "enqueued_refusal_id", "refusals", "sha256", "1"))

    def _enqueue_since(self, target: str, now: str, cursor: str, table: str, sha256: str, where: str) -> int:
        # `cursor` (a backup_targets column) is the last id of `table` looked at.
        seen = self.conn.execute(f"SELECT {cursor} FROM backup_targets WHERE name = ?", (target,)).fetchone()[0]
        top = self.conn.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]
        if top <= seen:
            return 0
        added = self.conn.execute(
            "INSERT OR IGNORE INTO backups (sha256, target, state, next_attempt_at, updated_at, queued_at) "
            f"SELECT DISTINCT {sha256}, ?, 'pending', ?, ?, ? FROM {table} "
            f"WHERE id > ? AND id <= ? AND {where} AND {sha256} IS NOT NULL",
            (target, now, now, now, seen, top)).rowcount
        self.conn.execute(f"UPDATE backup_targets SET {cursor} = ? WHERE name = ?", (top, target))
        return added

    def _stale_sidecars(self, target: str, now: str) -> None:
        # Inside enqueue's transaction: rows already done whose documents had
        # an event since the last look get their sidecar due again.
        seen = self.conn.execute("SELECT enqueued_event_id FROM backup_targets WHERE name = ?",
                                 (target,)).fetchone()[0]
        top = self.conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
        if top <= seen:
            return
        # Driven from the new events, each row found through its unique
        # (sha256, target) key (CROSS JOIN fixes that order: starting from the
        # target's done rows, as the planner would, reads all it holds).
        self.conn.execute("UPDATE backups SET next_attempt_at = ? WHERE id IN (SELECT b.id FROM events e "
                          "CROSS JOIN documents d ON d.id = e.document_id CROSS JOIN backups b ON b.sha256 = d.sha256 "
                          "AND b.target = ? WHERE e.id > ? AND e.id <= ? AND b.state = 'done' "
                          "AND b.next_attempt_at IS NULL)", (now, target, seen, top))
        self.conn.execute("UPDATE backup_targets SET enqueued_event_id = ? WHERE name = ?", (top, target))

    def due_backups(self, target: str, *, now: str, limit: int = 32,
                    shard: tuple[int, int] = (0, 1), max_wait_s: float | None = None) -> list[dict]:
        """Up to `limit` rows of `target` due at `now`, oldest due first: dicts
        with sha256, size, attempts (before this try) and state: `pending`
        (put the object and its sidecar) or `done` (only its sidecar is stale).
        `shard` (index, count) keeps only objects whose first hex digit modulo
        count is index, so `count` workers never take the same row. With
        `max_wait_s` (the longest retry delay), a row due further ahead than
        that was set before the wall clock went back and is due now too."""
        index, count = shard
        where = ("FROM backups WHERE target = ? AND state IN ('pending', 'done') AND {due} "
                 "AND (instr('0123456789abcdef', substr(sha256, 1, 1)) - 1) % ? = ? ")
        rows = [dict(r) for r in self.conn.execute(
            "SELECT sha256, size, attempts, state " + where.format(due="next_attempt_at <= ?")
            + "ORDER BY next_attempt_at, id LIMIT ?", (target, now, max(count, 1), index, limit))]
        if len(rows) < limit and max_wait_s is not None:
            far = utc(parse_utc(now) + dt.timedelta(seconds=max(max_wait_s, 0.0) + _CLOCK_SLACK_S))
            rows += [dict(r) for r in self.conn.execute(
                "SELECT sha256, size, attempts, state " + where.format(due="next_attempt_at > ?")
                + "ORDER BY next_attempt_at DESC, id LIMIT ?",
                (target, far, max(count, 1), index, limit - len(rows)))]
        return rows

    def backups_done(self, target: str, done: Sequence[tuple[str, int]], *, now: str, day: str,
                     batch: str | None = None, refreshed: Sequence[str] = ()) -> bool:
        """Mark each (sha256, size) of `done` as held by `target`, and each
        `done` row of `refreshed` as described again, all in one commit;
        `batch` is the key of the sidecar batch that describes them (the
        caller put it first). Note `now` as the last successful put, `day`
        (YYYY-MM-DD) as a day whose manifest must be rewritten, and the
        target as answering (outage over, pause lifted). True when the
        target was paused until now."""
        if not done and not refreshed:
            return False
        with self.transaction() as c:
            self._target_row(target, now)
            c.executemany("UPDATE backups SET state = 'done', attempts = attempts + 1, size = ?, "
                          "last_error = NULL, next_attempt_at = NULL, done_at = ?, updated_at = ?, "
                          "sidecar_batch = ? WHERE target = ? AND sha256 = ?",
                          [(size, now, now, batch, target, sha) for sha, size in done])
            c.executemany("UPDATE backups SET next_attempt_at = NULL, sidecar_batch = coalesce(?, sidecar_batch) "
                          "WHERE target = ? AND sha256 = ? AND state = 'done'",
                          [(batch, target, sha) for sha in refreshed])
            days = set(json.loads(c.execute("SELECT coalesce(manifest_days, '[]') FROM backup_targets "
                                            "WHERE name = ?", (target,)).fetchone()[0]))
            if done:
                days.add(day)
            paused = c.execute("SELECT paused_error IS NOT NULL FROM backup_targets WHERE name = ?",
                               (target,)).fetchone()[0]
            c.execute("UPDATE backup_targets SET last_put_at = CASE WHEN ? THEN ? ELSE last_put_at END, "
                      f"manifest_days = ?, updated_at = ?, {_ANSWERS} WHERE name = ?",
                      (bool(done), now, json.dumps(sorted(days)) if days else None, now, target))
            return bool(paused)

    def backup_retry(self, target: str, sha256: str, *, now: str, error: str,
                     next_attempt_at: str | None, failed: bool = False, unreachable: bool = False) -> None:
        """Count a failed attempt: the row stays `pending`, due at
        `next_attempt_at`, or becomes `failed` when `failed`; the error is
        also the target's last error. `unreachable` (the target did not
        answer) also starts the target's outage unless one is running."""
        with self.transaction() as c:
            self._target_row(target, now)
            c.execute("UPDATE backups SET state = ?, attempts = attempts + 1, last_error = ?, "
                      "next_attempt_at = ?, updated_at = ? WHERE target = ? AND sha256 = ?",
                      ("failed" if failed else "pending", error, None if failed else next_attempt_at,
                       now, target, sha256))
            c.execute("UPDATE backup_targets SET last_error = ?, last_error_at = ?, updated_at = ?, "
                      "unreachable_since = CASE WHEN ? THEN coalesce(unreachable_since, ?) "
                      "ELSE unreachable_since END WHERE name = ?", (error, now, now, unreachable, now, target))

    def backup_unreachable(self, target: str, error: str, *, now: str) -> None:
        """`target` did not answer (a sidecar, snapshot or verify met a
        `Transient`): `error` is its last error, and its outage starts at
        `now` unless one is already running (see `unreachable_since`)."""
        with self.transaction() as c:
            self._target_row(target, now)
            c.execute("UPDATE backup_targets SET last_error = ?, last_error_at = ?, updated_at = ?, "
                      "unreachable_since = coalesce(unreachable_since, ?) WHERE name = ?",
                      (error, now, now, now, target))

    def retry_backups_now(self, target: str, *, now: str) -> int:
        """Make every pending row of `target` waiting out a retry delay due now
        (the target answers again after an outage). Returns how many."""
        with self.transaction() as c:
            return c.execute("UPDATE backups SET next_attempt_at = ?, updated_at = ? WHERE target = ? "
                             "AND state = 'pending' AND next_attempt_at > ?", (now, now, target, now)).rowcount

    def requeue_backup(self, target: str, sha256: str, *, now: str, size: int | None = None) -> None:
        """Make the object due for `target` now, whatever its row says (a
        verification found it missing or corrupt on the target)."""
        with self.transaction() as c:
            c.execute("INSERT INTO backups (sha256, target, state, next_attempt_at, updated_at, size, "
                      "queued_at) VALUES (?, ?, 'pending', ?, ?, ?, ?) ON CONFLICT(sha256, target) DO "
                      "UPDATE SET state = 'pending', next_attempt_at = excluded.next_attempt_at, "
                      "attempts = 0, done_at = NULL, queued_at = excluded.queued_at, "
                      "updated_at = excluded.updated_at", (sha256, target, now, now, size, now))

    def manifest_days(self, target: str) -> list[str]:
        """The days (YYYY-MM-DD) whose manifest on `target` is stale, oldest first."""
        row = self.conn.execute("SELECT manifest_days FROM backup_targets WHERE name = ?", (target,)).fetchone()
        return sorted(json.loads(row[0])) if row and row[0] else []

    def clear_manifest_days(self, target: str, days: Sequence[str], *, now: str) -> None:
        """Forget `days` as stale (their manifests were just written); days
        added meanwhile stay."""
        with self.transaction() as c:
            left = sorted(set(self.manifest_days(target)) - set(days))
            c.execute("UPDATE backup_targets SET manifest_days = ?, updated_at = ? WHERE name = ?",
                      (json.dumps(left) if left else None, now, target))

    def manifest_json(self, target: str, day: str) -> bytes:
        """The manifest of `day` (YYYY-MM-DD, UTC) for `target` as UTF-8 JSON:
        {"day", "target", "objects": [{"sha256", "size", "at"}, ...]}, every
        object it received that day in the order received. Built by SQLite
        (its JSON functions, which hold no Python lock) from the day's range
        of the (target, state, done_at) index."""
        row = self.conn.execute(
            "SELECT json_object('day', ?, 'target', ?, 'objects', json_group_array("
            "json_object('sha256', sha256, 'size', size, 'at', done_at))) FROM (SELECT sha256, size, "
            "done_at FROM backups WHERE target = ? AND state = 'done' AND done_at >= ? AND done_at < ? "
            "ORDER BY done_at, sha256)", (day, target, target, day, day + "T99")).fetchone()
        return row[0].encode("utf-8")

    def done_backups(self, target: str, *, page: int = 1000) -> Iterator[str]:
        """The SHA-256 of every object the ledger believes `target` holds, in
        hash order, read `page` rows at a time (memory stays flat at millions
        of objects, and no read stays open while the caller writes)."""
        after = ""
        while True:
            rows = self.conn.execute("SELECT sha256 FROM backups WHERE sha256 > ? AND target = ? "
                                     "AND state = 'done' ORDER BY sha256 LIMIT ?",
                                     (after, target, page)).fetchall()
            for r in rows:
                yield r[0]
            if len(rows) < page:
                return
            after = rows[-1][0]

    # -- target health -------------------------------------------------------------

    def pause_backup_target(self, target: str, error: str, *, now: str) -> bool:
        """Pause `target` with the error a person must fix. True when it was
        not paused before (the caller logs the error once)."""
        with self.transaction() as c:
            self._target_row(target, now)
            was = c.execute("SELECT paused_error FROM backup_targets WHERE name = ?", (target,)).fetchone()[0]
            c.execute("UPDATE backup_targets SET paused_error = ?, paused_at = coalesce(paused_at, ?), "
                      "last_error = ?, last_error_at = ?, updated_at = ? WHERE name = ?",
                      (error, now, error, now, now, target))
            return was is None

    def record_backup_verify(self, target: str, result: dict, *, now: str) -> None:
        """Remember the last verification of `target` and its counts."""
        with self.transaction() as c:
            self._target_row(target, now)
            c.execute("UPDATE backup_targets SET last_verify_at = ?, last_verify = ?, updated_at = ?, "
                      "unreachable_since = NULL WHERE name = ?",
                      (now, json.dumps(result, sort_keys=True), now, target))

    def record_backup_snapshot(self, target: str, key: str, *, now: str, event_id: int | None = None,
                               sha256: str | None = None) -> None:
        """Remember the last ledger snapshot put on `target`, its SHA-256 (the
        restore drill compares what it gets back with it), and the last
        event it holds (`event_id`, read before the snapshot was taken).
        The put worked, so the target answers: its outage and pause end."""
        with self.transaction() as c:
            self._target_row(target, now)
            c.execute("UPDATE backup_targets SET last_snapshot_at = ?, last_snapshot = ?, updated_at = ?, "
                      f"snapshot_event_id = coalesce(?, snapshot_event_id), {_ANSWERS}, "
                      "last_snapshot_sha256 = ? WHERE name = ?",
                      (now, key, now, event_id, sha256, target))

    def adopt_backup_layout(self, target: str, layout: str, *, now: str) -> bool:
        """Record `layout` ("flat" or "site:<name>") as the key layout of
        `target`. When the rows were put under another one (NULL counts as
        "flat"), in the same transaction: every done row's sidecar is due
        again, every day's manifest stale, and the last snapshot forgotten
        (one is due at once and none is recorded as held), so the new layout
        soon holds all the target needs; the originals are not put again
        (their keys are the same in every layout). True when it changed and
        the target held something under the old layout."""
        with self.transaction() as c:
            self._target_row(target, now)
            old = c.execute("SELECT coalesce(layout, 'flat') FROM backup_targets WHERE name = ?",
                            (target,)).fetchone()[0]
            c.execute("UPDATE backup_targets SET layout = ? WHERE name = ?", (layout, target))
            held = c.execute("SELECT EXISTS (SELECT 1 FROM backups WHERE target = ? AND state = 'done') "
                             "OR EXISTS (SELECT 1 FROM backup_targets WHERE name = ? AND last_snapshot IS NOT NULL)",
                             (target, target)).fetchone()[0]
            if old == layout or not held:
                return False   # the same layout, or nothing put yet under the old one
            c.execute("UPDATE backups SET next_attempt_at = ? WHERE target = ? AND state = 'done'",
                      (now, target))
            days = [r[0] for r in c.execute("SELECT DISTINCT substr(done_at, 1, 10) FROM backups "
                                            "WHERE target = ? AND state = 'done' AND done_at IS NOT NULL",
                                            (target,))]
            c.execute("UPDATE backup_targets SET manifest_days = ?, last_snapshot_at = NULL, "
                      "last_snapshot = NULL, last_snapshot_sha256 = NULL, snapshot_event_id = 0, "
                      "updated_at = ? WHERE name = ?", (json.dumps(sorted(days)) if days else None, now, target))
            return True

    def _target_row(self, target: str, now: str) -> None:
        self.conn.execute("INSERT OR IGNORE INTO backup_targets (name, updated_at) VALUES (?, ?)", (target, now))

