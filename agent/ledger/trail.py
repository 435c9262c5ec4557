"""The audit trail's SQL: the one event writer, the chaining of events
written before the chain existed, and the streams `audit verify` and
`audit export` read. The chain itself (canonical form, hash, check) is
`agent/trail.py`.

Guarantee: every row of `events` is written by `append_event`, inside the
caller's BEGIN IMMEDIATE transaction, with `prev_hash` read from
`trail_head` in that same transaction and `trail_head` moved to it; so two
writers can never chain onto the same event, and a rolled-back state
change leaves neither its event nor a moved head.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Iterator, NamedTuple, Sequence

from agent.filenames import storable_value
from agent.ledger.rows import SnapshotReader

# agent.trail (the chain's form, and its check with dataclasses) is imported
# by the functions that write or read the chain: every command imports the
# ledger, and the read commands touch no event hash (issue 17: start-up).

TRAIL_SCHEMA = 16          # the migration that added prev_hash, hash and trail_head
_FETCH = 2000


def _columns() -> str:
    from agent.trail import CONTENT_COLUMNS

    return ", ".join(CONTENT_COLUMNS)


def append_event(conn: sqlite3.Connection, doc_id: int | None, *, now: str, actor: str,
                 from_state: str | None, to_state: str | None, reason: str | None,
                 details: dict[str, Any] | None) -> int:
    """Write one chained event and move the trail head to it; returns its
    id. Must run inside the ledger's write transaction (raises otherwise).
    The id is one past both the highest id and the head's, so a deleted
    tail's ids are never reused, and the new event links to the head's
    hash: a cut tail stays visible to `audit verify` after new writes."""
    return append_events(conn, [TrailEntry(doc_id, from_state, to_state, reason, details)],
                         now=now, actor=actor)[-1]


class TrailEntry(NamedTuple):
    """What one event says, as `append_events` takes it."""

    document_id: int | None
    from_state: str | None
    to_state: str | None
    reason: str | None
    details: dict[str, Any] | None = None


def append_events(conn: sqlite3.Connection, entries: Sequence[TrailEntry], *, now: str,
                  actor: str) -> list[int]:
    """`append_event` for several events at once, in order: each chained
    to the one before it exactly as if written one by one (same ids, same
    hashes), with the head read and moved once. Returns their ids. A
    reason, actor or details text holding a file name's bytes that are no
    UTF-8 is written \\xNN (`filenames.storable_value`): an event naming
    such a path is never refused by SQLite or the hash's UTF-8."""
    from agent.trail import CONTENT_COLUMNS, GENESIS, event_hash

    if not conn.in_transaction:
        raise RuntimeError("an event is written only inside the ledger's transaction")
    if not entries:
        return []
    head = conn.execute("SELECT event_id, hash FROM trail_head WHERE id = 1").fetchone()
    top = conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
    prev = head[1] if head else GENESIS
    next_id = max(top, head[0] if head else 0) + 1
    ids, rows = [], []
    for e in entries:
        row = {"id": next_id, "document_id": e.document_id, "at": now, "actor": storable_value(actor),
               "from_state": e.from_state, "to_state": e.to_state, "reason": storable_value(e.reason),
               "details": json.dumps(storable_value(e.details), ensure_ascii=False, default=str)
               if e.details else None}
        digest = event_hash(prev, row)
        rows.append((*(row[k] for k in CONTENT_COLUMNS), prev, digest))
        ids.append(next_id)
        prev, next_id = digest, next_id + 1
    conn.executemany(f"INSERT INTO events ({_columns()}, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     rows)
    _move_head(conn, ids[-1], prev, now)
    return ids


def chain_existing_events(conn: sqlite3.Connection) -> None:
    """Migration 17's step: chain every event written before the chain, in
    id order, and set the head, inside the migration's transaction; an
    upgraded ledger then verifies clean. Streams: one row at a time."""
    from agent.trail import CONTENT_COLUMNS, GENESIS, event_hash

    prev, last, at = GENESIS, 0, None
    while batch := conn.execute(f"SELECT {_columns()} FROM events WHERE id > ? ORDER BY id LIMIT ?",
                                (last, _FETCH)).fetchall():
        updates = []
        for r in batch:
            row = dict(zip(CONTENT_COLUMNS, tuple(r)))
            digest = event_hash(prev, row)
            updates.append((prev, digest, row["id"]))
            prev, last, at = digest, row["id"], row["at"]
        conn.executemany("UPDATE events SET prev_hash = ?, hash = ? WHERE id = ?", updates)
    if at is not None:
        _move_head(conn, last, prev, at)


def _move_head(conn: sqlite3.Connection, event_id: int, digest: str, now: str) -> None:
    conn.execute("INSERT INTO trail_head (id, event_id, hash, updated_at) VALUES (1, ?, ?, ?) "
                 "ON CONFLICT(id) DO UPDATE SET event_id = excluded.event_id, hash = excluded.hash, "
                 "updated_at = excluded.updated_at", (event_id, digest, now))


class TrailMixin:
    """Part of `Ledger`: what the backup threads ask of the trail."""

    def last_event_id(self) -> int:
        """The id of the newest event (0: none)."""
        return self.conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]

    def snapshot_behind(self, target: str) -> bool:
        """Whether any event (the machine's or an operator's) is newer than
        `target`'s last ledger snapshot: False once that snapshot holds the
        whole trail."""
        row = self.conn.execute("SELECT snapshot_event_id FROM backup_targets WHERE name = ?", (target,)).fetchone()
        return bool(self.conn.execute("SELECT EXISTS (SELECT 1 FROM events WHERE id > ?)",
                                      (row[0] if row else 0,)).fetchone()[0])

    def actions_since_snapshot(self, target: str, *, machine_actor_prefix: str, after: int = 0) -> int:
        """How many events not written by the machine (actor not starting
        with `machine_actor_prefix`: an operator's amend, accept, reject,
        ingest...) are newer than `target`'s last ledger snapshot and than
        event `after` (those up to it the caller has already looked at).
        Reads only the events after both, by id."""
        row = self.conn.execute("SELECT snapshot_event_id FROM backup_targets WHERE name = ?", (target,)).fetchone()
        return self.conn.execute("SELECT count(*) FROM events WHERE id > ? AND substr(actor, 1, ?) != ?",
                                 (max(row[0] if row else 0, after), len(machine_actor_prefix),
                                  machine_actor_prefix)).fetchone()[0]


class TrailReader(SnapshotReader):
    """Read-only streams over one open Ledger connection, for `audit
    verify` and `audit export`. Use inside `snapshot()` so the head and the
    events come from the same commit, even beside a writing daemon."""

    def head(self) -> dict[str, Any] | None:
        """The trail head (event_id, hash, updated_at), or None."""
        row = self.conn.execute("SELECT event_id, hash, updated_at FROM trail_head WHERE id = 1").fetchone()
        return dict(row) if row else None

    def chain(self) -> Iterator[dict[str, Any]]:
        """Every event in id order with its content columns and hashes."""
        return self._stream(f"SELECT {_columns()}, prev_hash, hash FROM events ORDER BY id")

    def untraced_documents(self) -> Iterator[int]:
        """Ids of documents that no event names (every document is created
        with one), in id order."""
        return (r["id"] for r in self._stream(
            "SELECT d.id FROM documents d WHERE NOT EXISTS "
            "(SELECT 1 FROM events e WHERE e.document_id = d.id) ORDER BY d.id"))

    def untraced_applications(self) -> Iterator[str]:
        """Numbers of 补录 applications that no event's details name (each
        is filed with one), in filing order."""
        return (r["number"] for r in self._stream(
            "SELECT a.number FROM applications a WHERE a.number NOT IN "
            "(SELECT json_extract(e.details, '$.application') FROM events e "
            "WHERE json_valid(e.details) AND json_extract(e.details, '$.application') IS NOT NULL) ORDER BY a.id"))

    def export(self, *, since: str | None, until: str | None) -> Iterator[dict[str, Any]]:
        """The events with `since <= at < until` (ledger timestamp text;
        None: open) in id order, each with the document's invoice number and
        the application number its details carry (`details.application`)."""
        where, params = ["1 = 1"], []
        if since:
            # Start the id-order scan at the first event of the window,
            # found by the `at` index: no event of the window has a lower id.
            where.append("e.id >= coalesce((SELECT min(id) FROM events WHERE at >= ?), 0)")
            params.append(since)
            where.append("e.at >= ?")
            params.append(since)
        if until:
            where.append("e.at < ?")
            params.append(until)
        return self._stream(
            "SELECT e.id, e.at, e.actor, e.document_id, d.invoice_number, e.from_state, e.to_state, e.reason, "
            "CASE WHEN json_valid(e.details) THEN json_extract(e.details, '$.application') END AS application, "
            "e.details, e.prev_hash, e.hash FROM events e LEFT JOIN documents d ON d.id = e.document_id "
            f"WHERE {' AND '.join(where)} ORDER BY e.id", tuple(params))

    def _stream(self, sql: str, params: tuple = ()) -> Iterator[dict[str, Any]]:
        cur = self.conn.execute(sql, params)
        while rows := cur.fetchmany(_FETCH):
            for r in rows:
                yield dict(r)
