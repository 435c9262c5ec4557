"""What is still owed to a source file after its capture: a move or delete
that waits until the captured bytes were read, and partial captures that a
later, fuller capture of the same path supersedes."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from agent.filenames import storable_value
from agent.fsutil import storable_ns
from agent.ledger.applications import DECLINED
from agent.ledger.rows import Document
from agent.states import State

if TYPE_CHECKING:   # every command opens a Ledger; only the daemon's intake builds identities
    from agent.beneath import Identity

# A document may be superseded only while nothing downstream has used it.
SUPERSEDABLE = (State.CAPTURED, State.QUARANTINED)


class SourceActionsMixin:
    """Part of `Ledger`: expects `self.conn`, `self.transaction()`, `self.transition()`, `self._event()`."""

    def add_source_action(self, doc_id: int, *, root: bytes, path: bytes, seen_key: str,
                          identity: Identity, now: str, with_documents: Sequence[int] = ()) -> int:
        """Record that the file at `path` (the capture of `doc_id`, with
        `identity`) is to be moved or deleted once the document was read,
        and the documents `with_documents` too (the other attachments of an
        e-mail), and note it in seen_files as `waiting`, in one transaction:
        a restart carries the step out, a rescan does not capture the file
        again."""
        others = json.dumps(list(with_documents)) if with_documents else None
        seen_key = storable_value(seen_key)   # `root` and `path` are the real bytes: the move acts on them
        with self.transaction() as c:
            action_id = c.execute(
                "INSERT INTO source_actions (document_id, root, path, seen_key, dev, ino, size, mtime_ns, "
                "ctime_ns, state, created_at, updated_at, with_documents) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'waiting', ?, ?, ?)",
                (doc_id, root, path, seen_key, identity.dev, identity.ino, identity.size, identity.mtime_ns,
                 identity.ctime_ns, now, now, others)).lastrowid
            self.remember_file(seen_key, identity.size, identity.mtime_ns, ino=identity.ino,
                               ctime_ns=identity.ctime_ns, outcome="waiting", now=now)
            return action_id

    def keep_source(self, seen_key: str, identity: Identity, doc_ids: Iterable[int], *, outcome: str,
                    now: str, actor: str, folder: str, name: str) -> None:
        """A file read in full when taken (an e-mail, a zip archive) whose
        move or delete could not be done: remembered as kept under
        `seen_key` (not taken again until it changes) and a "source kept"
        event, saying why (`outcome`), on each of `doc_ids` (the documents
        it brought), in one transaction. One that brought no document
        (every part refused) gets a refusal row instead (`folder`, `name`,
        "source kept: why"), beside its parts' in `refused`: never only a
        log line."""
        with self.transaction():
            self.remember_file(seen_key, identity.size, identity.mtime_ns, ino=identity.ino,
                               ctime_ns=identity.ctime_ns, outcome="kept", now=now)
            brought = list(doc_ids)
            for doc_id in brought:
                self._event(doc_id, now=now, actor=actor, from_state=None, to_state=None,
                            reason=f"source kept: {outcome}", details={"path": seen_key})
            if not brought:
                self.record_refusal(source=folder, name=name, reason=f"source kept: {outcome}", now=now)

    def due_source_actions(self, doc_ids: Iterable[int] | None = None, limit: int = 500,
                           after_id: int = 0) -> list[dict[str, Any]]:
        """Waiting source actions whose documents (its own and
        `with_documents`) have all left `captured`, oldest first, each with
        `verdict`: "read" (their bytes were read: the action may go ahead),
        "unread" (one capture was unreadable, or failed to be read: the
        source stays) or "superseded". With `doc_ids`, only the actions
        waiting on one of them; only actions numbered above `after_id` (the
        last of the previous page: steps left waiting never hide the ones
        behind them)."""
        first_move = ("(SELECT e.to_state FROM events e WHERE e.document_id = d.id AND e.from_state = 'captured' "
                      "ORDER BY e.id LIMIT 1)")
        sql = (f"SELECT a.*, d.state AS doc_state, {first_move} AS first_move "
               "FROM source_actions a JOIN documents d ON d.id = a.document_id "
               "WHERE a.state = 'waiting' AND a.id > ? AND d.state != 'captured' "
               "AND (a.with_documents IS NULL OR NOT EXISTS "
               "(SELECT 1 FROM json_each(a.with_documents) j JOIN documents o ON o.id = j.value "
               "WHERE o.state = 'captured'))")
        params: list[Any] = [after_id]
        if doc_ids is not None:
            ids = list(doc_ids)
            if not ids:
                return []
            marks = ",".join("?" * len(ids))
            sql += (f" AND (a.document_id IN ({marks}) OR (a.with_documents IS NOT NULL AND EXISTS "
                    f"(SELECT 1 FROM json_each(a.with_documents) j WHERE j.value IN ({marks}))))")
            params += ids + ids
        sql += " ORDER BY a.id LIMIT ?"
        from agent.beneath import Identity

        out = []
        for row in self.conn.execute(sql, (*params, limit)):
            d = dict(row)
            verdicts = {_verdict(d["doc_state"], d["first_move"])}
            if d["with_documents"]:
                others = json.loads(d["with_documents"])
                verdicts.update(_verdict(state, moved) for state, moved in self.conn.execute(
                    f"SELECT d.state, {first_move} FROM documents d WHERE d.id IN ({','.join('?' * len(others))})",
                    others))
            d["verdict"] = next(v for v in ("unread", "superseded", "read") if v in verdicts)
            d["identity"] = Identity(d["dev"], d["ino"], d["size"], d["mtime_ns"], d["ctime_ns"])
            out.append(d)
        return out

    def finish_source_action(self, action_id: int, *, state: str, outcome: str, now: str, actor: str) -> None:
        """Close a waiting action as `done` (moved/deleted), `gone` (no longer
        there) or `kept` (left in place, `outcome` says why), with an event on
        its document, in one transaction. seen_files follows: a file kept
        stays known (not captured again until it changes), a file gone is
        forgotten."""
        if state not in ("done", "gone", "kept"):
            raise ValueError(f"bad source action state {state!r}")
        outcome = storable_value(outcome)   # it names paths: never refused by SQLite
        with self.transaction() as c:
            a = c.execute("SELECT * FROM source_actions WHERE id = ?", (action_id,)).fetchone()
            if a is None or a["state"] != "waiting":
                return
            c.execute("UPDATE source_actions SET state = ?, outcome = ?, updated_at = ? WHERE id = ?",
                      (state, outcome, now, action_id))
            same = "path = ? AND ino = ? AND ctime_ns = ? AND size = ? AND mtime_ns = ?"
            key = (a["seen_key"], a["ino"], a["ctime_ns"], a["size"], a["mtime_ns"])
            if state == "kept":
                c.execute(f"UPDATE seen_files SET outcome = 'kept', at = ? WHERE {same}", (now, *key))
            else:
                c.execute(f"DELETE FROM seen_files WHERE {same}", key)
            verb = {"done": "source", "gone": "source gone", "kept": "source kept"}[state]
            for doc_id in [a["document_id"], *json.loads(a["with_documents"] or "[]")]:
                self._event(doc_id, now=now, actor=actor, from_state=None, to_state=None,
                            reason=f"{verb}: {outcome}", details={"source_action": action_id})

    def source_steps_summary(self) -> dict[str, Any]:
        """How many sources wait to be moved or deleted (their capture not
        read yet, or read and their file not quiet for its folder's
        quiet_seconds, or their share not mounted), and since when the
        oldest waits: for `status`, so a file left in place is never out
        of sight. Read-only."""
        n, oldest = self.conn.execute(
            "SELECT count(*), min(created_at) FROM source_actions WHERE state = 'waiting'").fetchone()
        return {"waiting": n, "oldest_at": oldest}

    def source_actions(self, doc_id: int) -> list[dict[str, Any]]:
        """Every move or delete of a source that waits, or waited, on the
        document: its own captures' and those of an e-mail that brought it
        among others (`with_documents`), oldest first; `path` decoded
        (os.fsdecode). Read-only."""
        rows = self.conn.execute(
            "SELECT * FROM source_actions WHERE document_id = ? UNION SELECT * FROM source_actions "
            "WHERE with_documents IS NOT NULL AND EXISTS (SELECT 1 FROM json_each(with_documents) "
            "WHERE value = ?) ORDER BY id", (doc_id, doc_id))
        return [{**dict(r), "root": os.fsdecode(r["root"]), "path": os.fsdecode(r["path"])} for r in rows]

    def same_file_again(self, original_path: str, ino: int, sha256: str) -> bool:
        """Whether the file at `original_path` is the very one captured there
        before: the inode remembered for the path (seen_files) and bytes
        (`sha256`) recorded arriving from it. A file deleted and dropped
        again, or another file linked in, has another inode: not this."""
        return self.conn.execute(
            "SELECT 1 FROM seen_files f JOIN sources s ON s.original_path = f.path "
            "JOIN documents d ON d.id = s.document_id WHERE f.path = ? AND f.ino = ? "
            "AND f.outcome = 'captured' AND d.sha256 = ? AND d.part = 1 LIMIT 1",
            (original_path, ino, sha256)).fetchone() is not None

    def captured_here_before(self, path: str, *, ino: int, size: int, mtime_ns: int) -> tuple[int, str] | None:
        """(document, the path it was captured from) last captured from a
        file with the inode, size and mtime of the one at `path` now (its
        ctime may differ: a chmod, a chown, a rename, or bytes written over
        it with the mtime kept), under this path if there is one, else
        under another (the file renamed since); None when none was."""
        row = self.conn.execute(
            "SELECT s.document_id, f.path FROM seen_files f JOIN sources s ON s.original_path = f.path "
            "WHERE f.ino = ? AND f.size = ? AND f.mtime_ns = ? AND f.outcome = 'captured' "
            "ORDER BY f.path = ? DESC, s.id DESC LIMIT 1", (ino, size, storable_ns(mtime_ns), path)).fetchone()
        return (row[0], row[1]) if row else None

    def moved_here(self, *, dev: int, ino: int, size: int, mtime_ns: int) -> bool:
        """Whether a file with this device, inode, size and mtime is one the
        agent moved into a processed/ folder (a source action done by a
        move: a rename keeps all four; an inode freed and given to another
        file of the same size keeps only three). Read-only."""
        return self.conn.execute(
            "SELECT 1 FROM source_actions WHERE ino = ? AND dev = ? AND size = ? AND mtime_ns = ? "
            "AND state = 'done' AND outcome LIKE 'moved to %' LIMIT 1",
            (ino, dev, size, storable_ns(mtime_ns))).fetchone() is not None

    def handled_since(self, path: str, at: str) -> bool:
        """Whether a file at `path` was captured or refused at `at` or later
        (an arrival from it, or the watcher's files-seen row)."""
        return self.conn.execute(
            "SELECT 1 FROM sources WHERE original_path = ? AND at >= ? UNION ALL "
            "SELECT 1 FROM seen_files WHERE path = ? AND at >= ? LIMIT 1", (path, at, path, at)).fetchone() is not None

    def same_archive_again(self, original_path: str, ino: int, sha256: str) -> bool:
        """Whether the zip archive at `original_path` is the very one taken
        there before (service/intake_zip.py): the inode remembered for the
        path, and an arrival from it out of the archive `sha256`."""
        return self.conn.execute(
            "SELECT 1 FROM seen_files f JOIN sources s ON s.original_path = f.path WHERE f.path = ? "
            "AND f.ino = ? AND f.outcome = 'captured' AND json_valid(s.details) "
            "AND json_extract(s.details, '$.archive_sha256') = ? LIMIT 1",
            (original_path, ino, sha256)).fetchone() is not None

    def earlier_captures(self, original_path: str, *, exclude_id: int) -> list[Document]:
        """Documents once captured from this path (scanner sources) that are
        still `captured` or `quarantined`: candidates a fuller capture of the
        same path may supersede. Oldest first."""
        states = ",".join("?" * len(SUPERSEDABLE))
        # `+state`: the path's few sources drive the query. Without the
        # unary plus the planner seeks the (state, ...) search index and
        # reads every `captured` document, which a burst makes thousands:
        # each capture cost grew with the burst (quadratic).
        rows = self.conn.execute(
            f"SELECT * FROM documents WHERE id IN (SELECT document_id FROM sources WHERE original_path = ? "
            f"AND source_kind = 'scanner') AND id != ? AND part = 1 AND +state IN ({states}) ORDER BY id",
            (original_path, exclude_id, *[s.value for s in SUPERSEDABLE]))
        return [Document.from_row(r) for r in rows]

    def supersede(self, doc_id: int, by: int, *, why: str, now: str, actor: str) -> None:
        """End `doc_id` as `superseded` by document `by` (reason names it), and
        keep the sources still waiting on it in place, in one transaction.
        A 补录 application still pending on it is declined in the same
        transaction, saying why: nothing it asks can be carried out on a
        superseded capture (left pending, it held nothing and waited for
        ever). Raises IllegalTransition when the document moved on meanwhile."""
        with self.transaction() as c:
            self.transition(doc_id, State.SUPERSEDED, now=now, actor=actor, expect=self.get(doc_id).state,
                            reason=f"superseded by document {by}: {why}", details={"superseded_by": by})
            app = self.pending_application(doc_id)
            if app is not None:
                said = (f"its document {doc_id} was superseded by document {by}, the whole file read on its "
                        "own: nothing is left to decide")
                self.decide_application(app["number"], state=DECLINED, at=now, by=actor, decider=actor,
                                        reason=said)
                self.set_application_outcome(app["number"], State.SUPERSEDED.value)
                self.note(doc_id, now=now, actor=actor, reason=f"{app['number']} declined by the agent: {said}",
                          details={"application": app["number"], "action": "declined", "decider": actor,
                                   "reason": said})
            waiting = [r[0] for r in c.execute(
                "SELECT id FROM source_actions WHERE document_id = ? AND state = 'waiting'", (doc_id,))]
            for action_id in waiting:
                self.finish_source_action(action_id, state="kept", now=now, actor=actor,
                                          outcome=f"its capture was superseded by document {by}")


def _verdict(state: str, first_move: str | None) -> str:
    # A capture read is one that left `captured` for extracted or
    # not_invoice; quarantined straight from captured it was unreadable,
    # failed or timed out.
    if state == State.SUPERSEDED.value:
        return "superseded"
    return "read" if first_move in (State.EXTRACTED.value, State.NOT_INVOICE.value) else "unread"
