"""Documents, their arrivals (sources) and their audit events."""

from __future__ import annotations

import json
import re
from typing import Any, NamedTuple, Sequence

from agent.errors import IllegalTransition, NotFoundInLedger
from agent.filenames import storable_value
from agent.ledger.document_lists import DocumentListsMixin
from agent.ledger.rows import Document, Event, Source, parse_utc
from agent.ledger.trail import TrailEntry, append_event, append_events
from agent.states import State, check_transition

# Documents in these states do not count as "the" copy of an invoice.
NOT_COUNTED = (State.DUPLICATE, State.REJECTED, State.NOT_INVOICE, State.SUPERSEDED)
# A document whose delivery may have reached a destination under its key
# (a row requeued after delivery keeps the key it went under).
_SENT = ("(doc.state IN ('delivering', 'delivered', 'confirmed', 'missing') OR EXISTS (SELECT 1 FROM deliveries d "
         "WHERE d.document_id = doc.id AND (d.state IN ('delivering', 'delivered', 'confirmed', 'missing') "
         "OR d.delivered_key = doc.invoice_key)))")
# A document a pending 补录 application holds (agent/applications.py).
_HELD = "EXISTS (SELECT 1 FROM applications a WHERE a.document_id = doc.id AND a.state = 'pending')"
# The order documents are read in (0 first): of a format invoices come in and
# at least 128 bytes, or not. A zip counts: an OFD whose first member is not
# OFD.xml and whose directory lies past the 4 KiB capture sniffs is stored as
# one. The very text of the index of migration 29.
EXTRACT_RANK = ("(CASE WHEN media_type IN ('pdf', 'ofd', 'xml', 'zip', 'png', 'jpeg', 'tiff', 'bmp', 'gif', "
                "'webp') AND size >= 128 THEN 0 ELSE 1 END)")
_UPDATABLE = frozenset({"fields", "problems", "invoice_key", "invoice_number", "invoice_date",
                        "total_cents", "duplicate_of", "media_type"})


# A document id as typed: ASCII digits, no leading zero, within SQLite's integers.
_ID = re.compile(r"[1-9][0-9]{0,17}")


class Due(NamedTuple):
    """A `captured` document due for reading: its id, its object in the
    vault, and whether it is likely an invoice (EXTRACT_RANK 0)."""

    id: int
    sha256: str
    likely_invoice: bool


class Step(NamedTuple):
    """One move of a document's state machine, as `Ledger.advance` takes
    it: the state it goes to, the event's reason and details, and the
    columns it sets (`_UPDATABLE` only)."""

    to: State
    reason: str | None = None
    details: dict[str, Any] | None = None
    columns: dict[str, Any] | None = None


class KeyHolder(NamedTuple):
    """The live copy of an invoice key: its id, state, whether any of its
    deliveries may have reached a destination, and whether a pending 补录
    application holds it."""

    id: int
    state: str
    sent: bool
    held: bool = False

    @property
    def replaceable(self) -> bool:
        """True when a copy that passes validation should take its place:
        it is quarantined or unjudged, nothing of it was sent, and no pending
        application holds it (the application decides about it first)."""
        return self.state in (State.QUARANTINED.value, State.EXTRACTED.value) and not self.sent and not self.held


class DocumentsMixin(DocumentListsMixin):
    """Part of `Ledger`: expects `self.conn` and `self.transaction()`."""

    def add_document(self, *, sha256: str, size: int, media_type: str | None, source_kind: str,
                     source: str | None, original_name: str | None, original_path: str | None,
                     now: str, actor: str, details: dict[str, Any] | None = None) -> tuple[int, bool]:
        """Record an arrival of the bytes `sha256`, idempotently.

        New bytes give a new `captured` document; known bytes add a source row
        to the existing document. Returns (document id, created). Texts
        made of a path (`source`, the names, `details`) holding a file
        name's bytes that are no UTF-8 are stored as \\xNN
        (`filenames.storable_value`): never refused by SQLite, which would
        leave the file uncaptured. Callers choose the spelling (readable,
        exact); this only keeps a missed one from failing."""
        source, original_name, original_path, details = storable_value(
            (source, original_name, original_path, details))
        with self.transaction() as c:
            row = c.execute("SELECT id FROM documents WHERE sha256 = ? AND part = 1", (sha256,)).fetchone()
            created = row is None
            if created:
                doc_id = c.execute(
                    "INSERT INTO documents (sha256, part, size, media_type, source_kind, source, "
                    "original_name, original_path, received_at, updated_at, state) "
                    "VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (sha256, size, media_type, source_kind, source, original_name, original_path,
                     now, now, State.CAPTURED.value)).lastrowid
            else:
                doc_id = row[0]
            c.execute("INSERT INTO sources (document_id, at, source_kind, source, original_name, "
                      "original_path, details) VALUES (?, ?, ?, ?, ?, ?, ?)",
                      (doc_id, now, source_kind, source, original_name, original_path,
                       json.dumps(details, ensure_ascii=False) if details else None))
            self._event(doc_id, now=now, actor=actor,
                        from_state=None if created else None,
                        to_state=State.CAPTURED.value if created else None,
                        reason="captured" if created else f"same bytes arrived again from {source_kind}",
                        details={"name": original_name, "source": source})
            return doc_id, created

    def add_part(self, parent_id: int, part: int, *, now: str, actor: str) -> int:
        """A further invoice found in the parent's file (a scanner batch):
        a new `captured` document sharing the parent's bytes. Idempotent."""
        with self.transaction() as c:
            parent = self.get(parent_id)
            row = c.execute("SELECT id FROM documents WHERE sha256 = ? AND part = ?",
                            (parent.sha256, part)).fetchone()
            if row:
                return row[0]
            doc_id = c.execute(
                "INSERT INTO documents (sha256, part, parent_id, size, media_type, source_kind, source, "
                "original_name, original_path, received_at, updated_at, state) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (parent.sha256, part, parent_id, parent.size, parent.media_type, parent.source_kind,
                 parent.source, parent.original_name, parent.original_path, parent.received_at, now,
                 State.CAPTURED.value)).lastrowid
            self._event(doc_id, now=now, actor=actor, from_state=None, to_state=State.CAPTURED.value,
                        reason=f"invoice {part} of a multi-invoice file (document {parent_id})")
            return doc_id

    def transition(self, doc_id: int, to: State | str, *, now: str, actor: str,
                   reason: str | None = None, details: dict[str, Any] | None = None,
                   expect: State | str | None = None, **columns: Any) -> None:
        """Move a document to state `to`, updating `columns`, and log the event,
        all in one transaction. Raises IllegalTransition (changing nothing)
        when the machine forbids it or the state is no longer `expect`, and
        NotFoundInLedger for no such document."""
        self.advance(doc_id, [Step(State(to), reason, details, columns)], now=now, actor=actor, expect=expect)

    def advance(self, doc_id: int, steps: Sequence[Step], *, now: str, actor: str,
                expect: State | str | None = None) -> None:
        """Move a document through `steps` in order, in one transaction: each
        move checked against the state machine from the state before it, the
        columns of all of them written by ONE update (a later step's value
        of a column wins), and one event per step, chained in order: the
        document's trail reads exactly as if each step had been its own
        `transition`.
        (A document read, judged and queued costs one update of its many
        indexes, not three.) Raises IllegalTransition (changing nothing)
        when a move is forbidden or the state is no longer `expect`, and
        NotFoundInLedger for no such document."""
        if not steps:
            raise ValueError("advance needs at least one step")
        merged: dict[str, Any] = {}
        for step in steps:
            merged.update(step.columns or {})
        bad = set(merged) - _UPDATABLE
        if bad:
            raise ValueError(f"not updatable: {sorted(bad)}")
        with self.transaction() as c:
            current = self.state_of(doc_id)
            if expect is not None and current != State(expect).value:
                raise IllegalTransition(f"document {doc_id} is {current}, not {State(expect).value}")
            entries, state = [], current
            for step in steps:
                to = State(step.to)
                check_transition(state, to)
                entries.append(TrailEntry(doc_id, state, to.value, step.reason, step.details))
                state = to.value
            values = {k: (json.dumps(v, ensure_ascii=False, default=str)
                          if k in ("fields", "problems") and v is not None else v)
                      for k, v in merged.items()}
            assignments = "".join(f", {k} = :{k}" for k in values)
            c.execute(f"UPDATE documents SET state = :state, updated_at = :now{assignments} WHERE id = :id",
                      {**values, "state": state, "now": now, "id": doc_id})
            append_events(c, entries, now=now, actor=actor)

    def note(self, doc_id: int | None, *, now: str, actor: str, reason: str,
             details: dict[str, Any] | None = None) -> None:
        """An event without a state change (a retry scheduled, a source moved...)."""
        with self.transaction():
            self._event(doc_id, now=now, actor=actor, from_state=None, to_state=None,
                        reason=reason, details=details)

    def _event(self, doc_id: int | None, *, now: str, actor: str, from_state: str | None,
               to_state: str | None, reason: str | None, details: dict[str, Any] | None = None) -> None:
        # The one way an event is written: chained, in the caller's transaction.
        append_event(self.conn, doc_id, now=now, actor=actor, from_state=from_state, to_state=to_state,
                     reason=reason, details=details)

    # -- reading ------------------------------------------------------------------

    def state_of(self, doc_id: int) -> str:
        """The document's state alone (no columns decoded); raises NotFoundInLedger."""
        row = self.conn.execute("SELECT state FROM documents WHERE id = ?", (doc_id,)).fetchone()
        if row is None:
            raise NotFoundInLedger(f"no document {doc_id}")
        return row[0]

    def get(self, doc_id: int) -> Document:
        """The document with this id; raises NotFoundInLedger."""
        row = self.conn.execute("SELECT * FROM documents WHERE id = ?", (doc_id,)).fetchone()
        if row is None:
            raise NotFoundInLedger(f"no document {doc_id}")
        return Document.from_row(row)

    def find(self, ref: str) -> list[Document]:
        """Documents matching an id, a SHA-256 prefix (6+ hex chars) or an
        invoice number, in id order: every document `ref` names in any of
        those readings (123456 may be an id and a hash's first characters),
        so a caller wanting one (`amend.resolve`) sees the ambiguity, never
        one reading picked over another. An id never has a leading zero;
        "#123" is the id alone. Raises NotFoundInLedger when none match."""
        ref = ref.strip()
        # ASCII digits only: str.isdigit() and int() take full-width (０),
        # Arabic-Indic and superscript digits too, which would make "０１"
        # an id while "01" is a hash prefix.
        digits = ref.isascii() and ref.isdigit()
        one_id = ref.startswith("#") and _ID.fullmatch(ref[1:]) is not None
        rows: dict[int, Any] = {}
        if one_id or _ID.fullmatch(ref) and len(ref) < 8:
            rows.update((r["id"], r) for r in self.conn.execute(
                "SELECT * FROM documents WHERE id = ?", (int(ref.lstrip("#")),)))
        if digits:
            rows.update((r["id"], r) for r in self.conn.execute(
                "SELECT * FROM documents WHERE invoice_number = ?", (ref,)))
        if re.fullmatch(r"[0-9a-fA-F]{6,64}", ref):
            rows.update((r["id"], r) for r in self.conn.execute(
                "SELECT * FROM documents WHERE sha256 >= ? AND sha256 < ?", (ref.lower(), ref.lower() + "g")))
        if not rows:
            raise NotFoundInLedger(f"no document matches {ref!r} (an id, #id, a SHA-256 prefix or an invoice "
                                   "number)")
        return [Document.from_row(rows[i]) for i in sorted(rows)]

    def events(self, doc_id: int) -> list[Event]:
        """The document's full history, oldest first."""
        rows = self.conn.execute("SELECT * FROM events WHERE document_id = ? ORDER BY id", (doc_id,))
        return [Event.from_row(r) for r in rows]

    def sources(self, doc_id: int) -> list[Source]:
        """Every arrival of the document's bytes, oldest first."""
        rows = self.conn.execute("SELECT * FROM sources WHERE document_id = ? ORDER BY id", (doc_id,))
        return [Source.from_row(r) for r in rows]

    def ids_in_state(self, state: State | str, limit: int = 1000) -> list[int]:
        """Oldest-first ids of documents in `state` (work for a stage)."""
        rows = self.conn.execute("SELECT id FROM documents WHERE state = ? ORDER BY received_at, id LIMIT ?",
                                 (State(state).value, limit))
        return [r[0] for r in rows]

    def key_holder(self, invoice_key: str, *, exclude_id: int | None = None) -> KeyHolder | None:
        """The live document that is "the" copy of `invoice_key`, other than
        `exclude_id`: not a duplicate, rejected, non-invoice or unread one,
        whatever its id. When several are live (a ledger from before this
        rule), the one that got furthest wins: one whose delivery may have
        reached a destination, then one on its way (valid, queued, failed),
        then a quarantined one, then an unjudged one; ties go to the lowest id."""
        # `state IN` the live states, not `NOT IN` the others: the index on
        # (invoice_key, state) then seeks past a key's thousand duplicates.
        live = [s.value for s in State if s not in (*NOT_COUNTED, State.CAPTURED)]
        marks = ",".join("?" * len(live))
        row = self.conn.execute(
            f"SELECT id, state, {_SENT} AS sent, {_HELD} AS held, CASE WHEN {_SENT} THEN 4 "
            "WHEN state IN ('valid', 'queued', 'failed') THEN 3 WHEN state = 'quarantined' THEN 2 "
            "ELSE 1 END AS rank "
            f"FROM documents doc WHERE invoice_key = ? AND state IN ({marks}) AND id IS NOT ? "
            "ORDER BY rank DESC, id LIMIT 1", (invoice_key, *live, exclude_id)).fetchone()
        return KeyHolder(row["id"], row["state"], bool(row["sent"]), bool(row["held"])) if row else None

    def documents_with_key(self, invoice_key: str | None) -> list[Document]:
        """Every document carrying `invoice_key` (none for None), in id order."""
        rows = self.conn.execute("SELECT * FROM documents WHERE invoice_key = ? ORDER BY id", (invoice_key,))
        return [Document.from_row(r) for r in rows]

    def has_duplicates(self, invoice_key: str) -> bool:
        """True when any `duplicate` document carries `invoice_key` (one
        indexed probe: most keys have none)."""
        return self.conn.execute("SELECT 1 FROM documents WHERE invoice_key = ? AND state = ? LIMIT 1",
                                 (invoice_key, State.DUPLICATE.value)).fetchone() is not None

    def duplicates_with_key(self, invoice_key: str, *, not_of: int | None = None) -> list[Document]:
        """The `duplicate` documents carrying `invoice_key`, in id order; with
        `not_of`, only those pointing elsewhere than that document (None: all)."""
        # A fleet duplicate (its key claimed by another site) has its
        # original elsewhere: never one of these (agent/ledger/fleet.py).
        rows = self.conn.execute("SELECT * FROM documents WHERE invoice_key = ? AND state = ? "
                                 "AND duplicate_of IS NOT ? AND id NOT IN "
                                 "(SELECT document_id FROM fleet_claims WHERE state = 'lost') ORDER BY id",
                                 (invoice_key, State.DUPLICATE.value, not_of))
        return [Document.from_row(r) for r in rows]

    def stray_duplicate_keys(self, limit: int = 1000) -> list[str]:
        """Keys of duplicates that point at no live document with their key
        (it was rejected, amended to another key, or is a duplicate itself):
        the work `judgement.settle_duplicates` does."""
        dead = [s.value for s in (*NOT_COUNTED, State.CAPTURED)]
        marks = ",".join("?" * len(dead))
        rows = self.conn.execute(
            "SELECT DISTINCT d.invoice_key FROM documents d LEFT JOIN documents t ON t.id = d.duplicate_of "
            f"WHERE d.state = ? AND d.invoice_key IS NOT NULL AND (t.id IS NULL OR t.state IN ({marks}) "
            "OR t.invoice_key IS NOT d.invoice_key) "
            "AND d.id NOT IN (SELECT document_id FROM fleet_claims WHERE state = 'lost') LIMIT ?", (State.DUPLICATE.value, *dead, limit))
        return [r[0] for r in rows]

    # -- extraction attempts ----------------------------------------------------

    def due_for_extraction(self, *, now: str, latest: str, limit: int) -> list[Due]:
        """`captured` documents due for reading: never failed, or retry time
        at or before `now`, or after `latest` (a retry time that far ahead
        means the clock went back). Likely invoices (EXTRACT_RANK 0) come
        first, then oldest first: a flood of junk captured earlier never
        delays an invoice. Served by the index documents_extract_order."""
        rows = self.conn.execute(
            f"SELECT id, sha256, {EXTRACT_RANK} = 0 FROM documents WHERE state = ? AND (extract_next_at IS NULL "
            f"OR extract_next_at <= ? OR extract_next_at > ?) ORDER BY {EXTRACT_RANK}, received_at, id LIMIT ?",
            (State.CAPTURED.value, now, latest, limit))
        return [Due(r[0], r[1], bool(r[2])) for r in rows]

    def extraction_attempts(self, doc_id: int) -> tuple[str, int]:
        """(state, failed extraction attempts so far) of a document; raises
        NotFoundInLedger."""
        row = self.conn.execute("SELECT state, extract_attempts FROM documents WHERE id = ?",
                                (doc_id,)).fetchone()
        if row is None:
            raise NotFoundInLedger(f"no document {doc_id}")
        return row[0], row[1]

    def extraction_retry(self, doc_id: int) -> dict[str, Any]:
        """The extraction retry columns: attempts, next_at, error."""
        row = self.conn.execute("SELECT extract_attempts AS attempts, extract_next_at AS next_at, "
                                "extract_error AS error FROM documents WHERE id = ?", (doc_id,)).fetchone()
        if row is None:
            raise NotFoundInLedger(f"no document {doc_id}")
        return dict(row)

    def note_extract_failure(self, doc_id: int, *, attempt: int, error: str, retry_at: str | None,
                             now: str, actor: str, max_attempts: int) -> None:
        """Store failed attempt number `attempt` with its error and the time
        it is due again (None: no more tries), and log it, in one transaction."""
        with self.transaction() as c:
            c.execute("UPDATE documents SET extract_attempts = ?, extract_next_at = ?, extract_error = ?, "
                      "updated_at = ? WHERE id = ?", (attempt, retry_at, error[:2000], now, doc_id))
            # The wait, not the moment: a stored stamp would read as raw UTC in
            # `show`; the moment is extract_next_at and the event's details.
            wait = (parse_utc(retry_at) - parse_utc(now)).total_seconds() if retry_at else 0
            then = f"tried again in {wait:.0f} s" if retry_at else "no more tries"
            self._event(doc_id, now=now, actor=actor, from_state=None, to_state=None,
                        reason=f"reading failed (attempt {attempt} of {max_attempts}; {then}): {error[:500]}",
                        details={"attempt": attempt, "retry_at": retry_at})
