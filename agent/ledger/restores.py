"""Documents rebuilt by a restore from what a backup target says of an object.

A restore takes the ledger snapshot as it is; the objects captured after it
come back from their sidecars (agent/backup/sidecars.py). A sidecar is a
file on the target, not ledger truth: anyone who can write there (another
site of a fleet, a person, a faulty tool) can write one, and no snapshot
backs it. So it is kept only where it decides nothing (the ids, where and
when a file arrived, its sources), and every object is read again.
"""

from __future__ import annotations

import json
from typing import Any

from agent.ledger.rows import CONTAINER_KINDS, parse_utc
from agent.states import State

_STATES = frozenset(s.value for s in State)


class RestoresMixin:
    """Part of `Ledger`: documents recreated by `backup restore`."""

    def has_object(self, sha256: str) -> bool:
        """True when some document is made from the object `sha256`."""
        return self.conn.execute("SELECT 1 FROM documents WHERE sha256 = ? LIMIT 1",
                                 (sha256,)).fetchone() is not None

    def restore_documents(self, sha256: str, size: int, sidecar: dict | None, *, target: str,
                          now: str, actor: str, batch: str | None = None, missing: str | None = None,
                          notes: list[str] | None = None) -> int:
        """Recreate an object found on (or described by) a backup target but
        unknown to this ledger, as ONE document (part 1, under the id its
        sidecar names when that id is free, with the sidecar's arrival and
        sources). Returns how many documents were added (0 when the ledger
        already has the object).

        Guarantees: the document is `captured`, with no fields, key or
        problems, so the daemon reads it again and its state, invoice and
        further parts are what the bytes give, never what the sidecar claims
        (one past validation is delivered again; a destination's
        idempotency turns the repeat into "found"). Except:
        - when the sidecar says an operator `rejected` it (a decision no
          reading remakes), it is `quarantined` with no fields and a
          `restored-rejection` problem: delivered only if a person says so;
        - with `missing` (why the original did not come back), it is
          `quarantined` with an `original-missing` problem and the object
          does not count as held by `target`, so `audit ledger` reports it
          (object-missing) instead of the restore dropping it.
        A state the model does not know, and a rejection, are named in
        `notes`. A raw e-mail or zip archive (sidecar `kind`) gets its
        refusals back and, unless missing, no document. Otherwise the object
        counts as held by `target` (`batch`: the sidecar batch it came from).
        """
        sidecar = sidecar if isinstance(sidecar, dict) else {}
        docs = sidecar.get("documents")
        docs = sorted((d for d in (docs if isinstance(docs, list) else []) if isinstance(d, dict)),
                      key=lambda d: d.get("part") if isinstance(d.get("part"), int) else 1)
        said = [_text(d.get("state"))[:40] for d in docs if d.get("state") is not None]
        with self.transaction() as c:
            if self.has_object(sha256):
                return 0
            container = sidecar.get("kind") in CONTAINER_KINDS
            if container:
                # The raw message or archive a document came out of: an
                # original, not a document.
                self._restore_refusals(sha256, sidecar, now)
            unknown = sorted(set(said) - _STATES)
            if unknown and notes is not None:
                notes.append(f"{sha256}: its sidecar names state {', '.join(map(repr, unknown))}, which is no "
                             "document state; read again")
            first = docs[0] if docs else {}
            was = f"; its sidecar said {'/'.join(dict.fromkeys(said))}" if said else ""
            problem = None
            if missing is not None:
                state = State.QUARANTINED.value
                problem = {"code": "original-missing", "severity": "error", "field": None,
                           "message": f"restored from backup {target} without its original: {missing}"}
                reason = f"restored from backup {target} without its original ({missing}){was}"
            elif container:
                state = None
            elif "rejected" in said:
                state = State.QUARANTINED.value
                problem = {"code": "restored-rejection", "severity": "error", "field": None,
                           "message": f"backup {target}'s sidecar says it was rejected, but no ledger snapshot "
                                      "holds that decision: reject it again, or amend it to deliver it"}
                reason = f"restored from backup {target}; its sidecar alone says rejected: held for a person"
                if notes is not None:
                    notes.append(f"{sha256}: its sidecar alone says rejected; quarantined for a person "
                                 "to reject again or amend")
            else:
                state = State.CAPTURED.value
                reason = f"restored from backup {target} (captured after its last ledger snapshot); read again{was}"
            if state is not None:
                self._restored_document(sha256, size, first, state, problem, reason, now=now, actor=actor)
            if missing is None:
                c.execute("INSERT INTO backups (sha256, target, state, updated_at, size, queued_at, done_at, "
                          "sidecar_batch) VALUES (?, ?, 'done', ?, ?, ?, ?, ?) ON CONFLICT(sha256, target) DO "
                          "UPDATE SET state = 'done', done_at = excluded.done_at, "
                          "sidecar_batch = excluded.sidecar_batch", (sha256, target, now, size, now, now, batch))
            return 0 if state is None else 1

    def _restored_document(self, sha256: str, size: int, d: dict, state: str, problem: dict | None,
                           reason: str, *, now: str, actor: str) -> None:
        # Inside restore_documents' transaction. The id it had, so references
        # to it (applications, exports, people's notes) stay true; a new one
        # only when that is taken. Every value is checked for its kind: a
        # sidecar's field of the wrong kind is text or dropped, never a
        # failed restore.
        c = self.conn
        old_id = d.get("id") if isinstance(d.get("id"), int) and not isinstance(d.get("id"), bool) else None
        if old_id is not None and (old_id <= 0 or c.execute("SELECT 1 FROM documents WHERE id = ?",
                                                            (old_id,)).fetchone()):
            old_id = None
        doc_id = c.execute(
            "INSERT INTO documents (id, sha256, part, parent_id, size, media_type, source_kind, source, "
            "original_name, original_path, received_at, updated_at, state, problems) "
            "VALUES (?, ?, 1, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (old_id, sha256, size, _text(d.get("media_type")), _text(d.get("source_kind")) or "restore",
             _text(d.get("source")), _text(d.get("original_name")), _text(d.get("original_path")),
             _time(d.get("received_at")) or now, now, state,
             json.dumps([problem], ensure_ascii=False) if problem else None)).lastrowid
        sources = d.get("sources")
        for s in sources if isinstance(sources, list) else []:
            if isinstance(s, dict):
                c.execute("INSERT INTO sources (document_id, at, source_kind, source, original_name, "
                          "original_path, details) VALUES (?, ?, ?, ?, ?, ?, ?)",
                          (doc_id, _time(s.get("at")) or now, _text(s.get("source_kind")) or "restore",
                           _text(s.get("source")), _text(s.get("original_name")), _text(s.get("original_path")),
                           _json(s.get("details"))))
        self._event(doc_id, now=now, actor=actor, from_state=None, to_state=state, reason=reason)

    def _restore_refusals(self, sha256: str, sidecar: dict, now: str) -> None:
        # Inside restore_documents' transaction: the refusals a no-document
        # object's sidecar lists (what was refused in a raw e-mail or a zip,
        # or the refused file itself), each once, so `refused` and the audit
        # explain the object again after a restore from an older snapshot.
        # A sidecar is a file on a backup target: a field of the wrong kind
        # is taken as text (or the restore's time), never a failed restore.
        refusals = sidecar.get("refusals")
        for r in refusals if isinstance(refusals, list) else []:
            if not isinstance(r, dict) or r.get("reason") is None:
                continue
            at, row = _text(r.get("at")), (_text(r.get("source")), _text(r.get("name")), _text(r["reason"]))
            # Without a time of its own it is matched without one (a second
            # restore gives it another `now`).
            if not self.conn.execute("SELECT 1 FROM refusals WHERE sha256 = ? AND source IS ? AND name IS ? "
                                     "AND reason = ? AND (? IS NULL OR at = ?)", (sha256, *row, at, at)).fetchone():
                self.conn.execute("INSERT INTO refusals (at, source, name, reason, sha256) VALUES (?, ?, ?, ?, ?)",
                                  (at or now, *row, sha256))


def _text(value: Any) -> str | None:
    # A sidecar's field as the ledger's TEXT column holds it: at most 1,000
    # characters of its text, or its JSON when it is not text.
    if value is None:
        return None
    return (value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str))[:1000]


def _time(value: Any) -> str | None:
    # A stored time only when it reads as one: the daemon parses these (a
    # document's arrival decides its dates), and a sidecar is not trusted.
    if not isinstance(value, str):
        return None
    try:
        parse_utc(value)
    except ValueError:
        return None
    return value


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, default=str)
