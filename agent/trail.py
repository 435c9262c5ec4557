"""The hash chain over the audit events: its canonical form and its check.

Every event row stores `prev_hash` (the `hash` of the event before it, or
GENESIS for the first) and `hash`:

    hash = SHA-256( prev_hash  "\\n"  canonical(event) )   (hex, lower case)

    canonical(event) = JSON of exactly the columns id, document_id, at,
        actor, from_state, to_state, reason, details; keys sorted, no
        spaces (separators "," and ":"), non-ASCII kept as UTF-8
        (ensure_ascii off), NULL as null, id and document_id as integers,
        `details` as the very text stored in the column (not re-parsed).

The ledger also keeps the last event's id and hash in `trail_head`, written
in the same transaction as the event. `verify_chain` walks the events in id
order and reports every place where the stored trail disagrees with itself
or with the head. The hash is not keyed: someone who can write the ledger
and recomputes every later hash *and* the head goes unnoticed here, unless
a hash kept elsewhere (an `--anchor` taken from an earlier verify or an
export) disagrees. Pure: no SQL, no clock, no I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping

GENESIS = "0" * 64
CONTENT_COLUMNS = ("id", "document_id", "at", "actor", "from_state", "to_state", "reason", "details")

# Break codes and what each says about the ledger.
BREAKS = {
    "edited": "the event's content or stored hash was changed after it was written",
    "unlinked": "the event does not follow the one before it: an event was deleted, inserted or moved here",
    "gap": "event ids are missing before this event: events were deleted",
    "unchained": "the event carries no hash: it was written around the ledger (e.g. with sqlite3)",
    "head": "the last event is not the one the trail head records: the tail was cut or events were appended",
    "anchor": "the event's hash differs from the one kept elsewhere: the trail was rewritten",
    "untraced": "a document or 补录 application has no event at all: its history was deleted",
}


def canonical(event: Mapping[str, Any]) -> bytes:
    """The exact bytes an event's hash covers (see the module docstring);
    two events give the same bytes only if every content column is equal."""
    content = {k: event.get(k) for k in CONTENT_COLUMNS}
    return json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def event_hash(prev_hash: str, event: Mapping[str, Any]) -> str:
    """The hash an event must carry after `prev_hash`."""
    import hashlib   # here: importing it loads OpenSSL, and reading the ledger hashes nothing

    return hashlib.sha256(prev_hash.encode("ascii", "replace") + b"\n" + canonical(event)).hexdigest()


@dataclass(frozen=True)
class Break:
    """One place where the trail is not what was written: the event id
    (None for the head itself), a code of BREAKS, and the detail."""

    event_id: int | None
    code: str
    message: str

    def line(self) -> str:
        """One line for the terminal: `event 12  edited  ...`."""
        where = (f"event {self.event_id}" if self.event_id is not None
                 else "ledger" if self.code == "untraced" else "trail head")
        return f"{where}  {self.code}  {self.message}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"event": self.event_id, "code": self.code, "message": self.message}


@dataclass
class Walked:
    """What a walk saw: how many events, and the last one's id and hash."""

    events: int = 0
    last_id: int | None = None
    last_hash: str | None = None


def verify_chain(events: Iterable[Mapping[str, Any]], head: Mapping[str, Any] | None,
                 anchors: Mapping[int, str] | None = None, walked: Walked | None = None) -> Iterator[Break]:
    """Every Break in `events` (rows in id order with the content columns,
    `prev_hash` and `hash`) against `head` (event_id, hash; None when the
    ledger has no head row) and `anchors` (event id -> hash kept elsewhere).
    Holds one row at a time. Guarantees: an event whose content, id or hash
    was changed is `edited`; the event after a deleted, inserted or moved one
    is `unlinked` (and a deleted id leaves a `gap`); an event without a hash
    is `unchained`; a cut or extended tail is `head`. Fills `walked`."""
    walked = walked if walked is not None else Walked()
    anchors = dict(anchors or {})
    expected_prev, last_id = GENESIS, 0
    for row in events:
        eid = row["id"]
        walked.events += 1
        if eid != last_id + 1:
            missing = f"{last_id + 1}" if eid == last_id + 2 else f"{last_id + 1}..{eid - 1}"
            yield Break(eid, "gap", f"event ids {missing} are missing before it")
        stored, prev = row.get("hash"), row.get("prev_hash")
        if stored is None:
            yield Break(eid, "unchained", BREAKS["unchained"])
        else:
            if prev != expected_prev:
                yield Break(eid, "unlinked", f"its prev_hash {_short(prev)} is not the hash {_short(expected_prev)} "
                                             f"of the event before it (id {last_id or 'none'})")
            if event_hash(prev or "", row) != stored:
                yield Break(eid, "edited", BREAKS["edited"])
        if eid in anchors and anchors.pop(eid) != stored:
            yield Break(eid, "anchor", BREAKS["anchor"])
        # Go on from what is stored, so one edit is one break, not a cascade.
        expected_prev, last_id = stored or "", eid
        walked.last_id, walked.last_hash = eid, stored
    for eid in sorted(anchors):
        yield Break(eid, "anchor", "the anchored event is gone")
    yield from _check_head(head, walked)


def untraced_breaks(documents: Iterable[int], applications: Iterable[str]) -> Iterator[Break]:
    """One `untraced` Break per document id and application number given
    (those no event names). Every document is created with its `captured`
    event and every application with its `filed` event, so one without any
    is history deleted: catches emptying the whole trail (events and head),
    which leaves a chain with nothing to break, and a cut tail whose head
    was moved back, when the tail held a document's or application's events."""
    for doc_id in documents:
        yield Break(None, "untraced", f"document {doc_id} has no event: {BREAKS['untraced']}")
    for number in applications:
        yield Break(None, "untraced", f"application {number} has no event: {BREAKS['untraced']}")


def _check_head(head: Mapping[str, Any] | None, walked: Walked) -> Iterator[Break]:
    if head is None:
        if walked.events:
            yield Break(None, "head", "the trail head row is missing")
        return
    if walked.last_id is None:
        yield Break(None, "head", f"the head records event {head['event_id']} but there are no events")
    elif head["event_id"] != walked.last_id:
        how = "the tail was cut" if head["event_id"] > walked.last_id else "events were appended after it"
        yield Break(walked.last_id, "head", f"the head records event {head['event_id']} as the last, "
                                            f"but the last is {walked.last_id}: {how}")
    elif head["hash"] != walked.last_hash:
        yield Break(walked.last_id, "head", "the head's hash is not the last event's hash")


def _short(h: str | None) -> str:
    return (h[:12] + "…") if h else "none"
