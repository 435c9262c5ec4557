"""`audit ledger`: prove the ledger's promises and list every break of them.

The promise is "no silent path": every file that lands ends delivered or
explained. Seven checks (`audit_rules.CHECKS`) make it concrete, each
broken promise a Violation with a stable rule code (`audit_rules.RULES`).
The rules about states are derived from `model.TRANSITIONS`, so a state
added there is judged without a change here: its end states are those from
which no move made by the machine leads to delivery (`END_STATES`), and
they must carry a reason.

Here: the audit's walk, and the checks made one document at a time (3 to 7)
and per key; the sources and the vault (checks 1 and 2) are in
`audit_files`. Pure over its inputs: the ledger (read in one snapshot), the
vault folder, the settings and `now`. It writes nothing.
"""

from __future__ import annotations

import datetime as dt
import itertools
import sys
from pathlib import Path
from typing import Iterable, Iterator

from agent.amend import AMENDABLE
from agent.applications import HELD_STATES
from agent.audit_files import source_violations, walk_vault
from agent.audit_rules import AuditSettings, Progress, Violation, violation
from agent.ledger import Ledger, utc
from agent.ledger.audit import LedgerAudit
from agent.ledger.deliveries import ACTIVE_DOCUMENT_STATES, summary_state
from agent.ledger.documents import NOT_COUNTED
from agent.ledger.rejections import held_there, where_held
from agent.ledger.rows import TimeText
from agent.model import TRANSITIONS, State
from agent.watched import unhandled_files


# The operator's commands (docs/states.md, "Moving documents by hand"): reject,
# reopen, amend (back to extracted), accept, retry / requeue. They are no way forward.
def _operator_move(old: State, new: State) -> bool:
    return (new == State.REJECTED or (new == State.EXTRACTED and old in AMENDABLE)
            or (old == State.REJECTED and new == State.QUARANTINED)      # reopen
            or (old == State.QUARANTINED and new == State.VALID)
            or (new == State.QUEUED and old in (State.FAILED, State.MISSING, State.DELIVERED,
                                                State.CONFIRMED)))


# Done: what a document's rows add up to once every destination holds it.
GOAL_STATES = frozenset({summary_state(["delivered"]), summary_state(["confirmed"])})


def _reaches_goal(start: State) -> bool:
    seen, todo = {start}, [start]
    while todo:
        s = todo.pop()
        if s in GOAL_STATES:
            return True
        for t in TRANSITIONS.get(s, ()):
            if t not in seen and not _operator_move(s, t):
                seen.add(t)
                todo.append(t)
    return False


# End states: no move the machine makes by itself leads from them to delivery.
END_STATES = frozenset(s for s in State if s not in GOAL_STATES and not _reaches_goal(s))
# Not live: never "the" copy of an invoice, or nothing can follow but reject.
DEAD_STATES = frozenset(NOT_COUNTED) | frozenset(s for s in State if TRANSITIONS[s] <= {State.REJECTED})
_DEAD_VALUES = frozenset(s.value for s in DEAD_STATES)
_STATES = {s.value: s for s in State}
_STATE_VALUES = frozenset(_STATES)


def audit_ledger(ledger: Ledger, vault_root: str | Path, settings: AuditSettings, *, now: dt.datetime,
                 progress: Progress | None = None) -> Iterator[Violation]:
    """Every violation of the seven checks, as they are found. Reads the
    ledger in one snapshot (consistent while a daemon writes) and then walks
    the vault; an object found unreferenced or a reference found missing is
    checked once more against the ledger and disk of that moment, so a
    capture in flight is not reported. Writes nothing."""
    q = LedgerAudit(ledger)
    with q.snapshot():
        yield from source_violations(q, settings)
        yield from _documents(q, settings, now, progress)
        yield from _keys(q)
        yield from _applications_not_held(q)
        yield from _keys_delivered_twice(q)
        yield from _held_keys_misjudged(q)
        referenced = q.referenced_objects()
    found: set[str] = set()
    unreferenced: list[Violation] = []
    for v in walk_vault(Path(vault_root), referenced, found, hash_objects=settings.hash_objects,
                         progress=progress):
        if v.code == "object-unreferenced":
            unreferenced.append(v)
        else:
            yield v
    if unreferenced:
        referenced = q.referenced_objects()  # a capture may have committed meanwhile
        yield from (v for v in unreferenced if v.object not in referenced)
    missing = referenced - found
    if missing:
        objects_dir = Path(vault_root) / "objects"
        by_document = {r["sha256"]: r["document_id"] for r in q.document_objects() if r["sha256"] in missing}
        for sha in sorted(missing):
            if not (objects_dir / sha[:2] / sha[2:4] / sha).is_file():
                yield violation("object-missing", "the original is not in the vault", document=by_document.get(sha),
                         object=sha)
    for found_there in unhandled_files(ledger, list(settings.watched), now=now,
                                       older_than_s=settings.unhandled_after_s, known_objects=referenced):
        yield violation(found_there.code, f"{found_there.path}: {found_there.why}")


# -- checks 3 to 7, one document at a time ---------------------------------------------

def _documents(q: LedgerAudit, settings: AuditSettings, now: dt.datetime,
               progress: Progress | None) -> Iterator[Violation]:
    cutoff = utc(now - dt.timedelta(hours=settings.sla_hours))
    late = q.late_in_status(arrived_before=cutoff)
    total = q.count_documents() if progress else None
    rows = itertools.groupby(q.deliveries(), key=lambda r: r["document_id"])
    pending: tuple[int, list] | None = None
    n = 0
    for doc in q.documents(tuple(s.value for s in END_STATES)):
        n += 1
        if progress and n % 5000 == 0:
            progress("documents", n, total)
        # Merge join: both streams are in document id order.
        while pending is None or pending[0] < doc["id"]:
            nxt = next(rows, None)
            if nxt is None:
                pending = (sys.maxsize, [])
                break
            pending = (nxt[0], list(nxt[1]))
        mine = pending[1] if pending[0] == doc["id"] else []
        yield from _document(doc, mine, settings, cutoff, late)
    if progress:
        progress("documents", n, total)


def _document(doc: dict, rows: list[dict], settings: AuditSettings, cutoff: str,
              late: set[int]) -> Iterable[Violation]:
    doc_id = doc["id"]
    state = _STATES.get(doc["state"])
    if state is None:
        yield violation("unknown-state", f"state {doc['state']!r} is not in the model", document=doc_id)
        return
    if state in END_STATES:
        reason = doc["state_reason"]
        if reason is None or not reason.strip():
            yield violation("end-without-reason", f"{state.value}, but "
                     + ("no event records how it became so" if reason is None else
                        "the event that made it so gives no reason"), document=doc_id)
    if state == State.QUARANTINED and not doc["has_problems"]:
        yield violation("quarantined-without-problem", "quarantined with no problem for `quarantine` to show",
                 document=doc_id)
    if state == State.DUPLICATE and doc["fleet_site"] is None:
        yield from _duplicate(doc)
    if doc["fleet_site"] is not None:
        yield from _fleet_duplicate(doc, rows)
    if state.value in ACTIVE_DOCUMENT_STATES:
        summary = summary_state(r["state"] for r in rows)
        if summary is None:
            yield violation("no-delivery-rows", f"{state.value}, but it has no delivery row", document=doc_id)
        elif summary != state:
            said = ", ".join(f"{r['destination']} {r['state']}" for r in rows)
            yield violation("rows-disagree", f"{state.value}, but its deliveries ({said}) say {summary.value}",
                     document=doc_id)
        for r in rows:
            yield from _waiting_row(doc_id, r, settings)
    if state == State.VALID and settings.destinations:
        yield violation("valid-not-queued", f"valid since {settings.time_text(doc['updated_at'])}, not queued for "
                 + ", ".join(settings.destinations), document=doc_id)
    for r in rows:
        yield from _delivered_row(doc, r, settings.time_text)
    if state == State.REJECTED:
        yield from _rejected_there(doc, rows)
    if (state not in END_STATES and state not in GOAL_STATES and doc["updated_at"] < cutoff
            and doc_id not in late):
        yield violation("late-silent", f"{state.value} since {settings.time_text(doc['updated_at'])}, past the SLA of "
                 f"{settings.sla_hours:g} h, and `status` does not count it late", document=doc_id)


def _fleet_duplicate(doc: dict, rows: list[dict]) -> Iterable[Violation]:
    # Another site of the fleet holds the key: its original is there, and
    # nothing of this copy may be (or be on its way to) a destination.
    # A person may end it here (rejected): nothing of it goes anywhere then.
    doc_id = doc["id"]
    if doc["state"] not in (State.DUPLICATE.value, State.REJECTED.value):
        yield violation("fleet-lost-live", f"site {doc['fleet_site']} holds its invoice key, but it is "
                        f"{doc['state']}, not a duplicate", document=doc_id)
    for r in rows:
        # Delivered rows may stand: this site put it before its lease ran out
        # and another site took over (and found it there). Open rows may not.
        if r["state"] in ("queued", "delivering", "failed", "missing", "quarantined"):
            yield violation("fleet-lost-live", f"site {doc['fleet_site']} holds its invoice key, but its "
                            f"delivery to {r['destination']} is {r['state']}", document=doc_id)


def _duplicate(doc: dict) -> Iterable[Violation]:
    doc_id, original = doc["id"], doc["duplicate_of"]
    if original is None or doc["original_id"] is None:
        yield violation("duplicate-without-original", "duplicate of " + (f"document {original}, which does not exist"
                                                                 if original else "no document"),
                 document=doc_id)
        return
    if doc["original_state"] in _DEAD_VALUES or doc["original_state"] not in _STATE_VALUES:
        yield violation("duplicate-of-dead", f"duplicate of document {original}, which is {doc['original_state']}: "
                 "neither of them will be delivered", document=doc_id)
    if doc["invoice_key"] is None or doc["invoice_key"] != doc["original_key"]:
        yield violation("duplicate-key-differs", f"key {doc['invoice_key']} but its original {original} has key "
                 f"{doc['original_key']}", document=doc_id)


def _waiting_row(doc_id: int, r: dict, settings: AuditSettings) -> Iterable[Violation]:
    if r["state"] in ("queued", "delivering") and r["destination"] not in settings.destinations:
        yield violation("unknown-destination", f"{r['state']} for {r['destination']}, which is not configured "
                 f"(configured: {', '.join(settings.destinations) or 'none'})", document=doc_id)
    if r["state"] == "failed" and not (r["last_error"] or "").strip():
        yield violation("failed-without-error", f"delivery to {r['destination']} failed with no error recorded",
                 document=doc_id)


def _delivered_row(doc: dict, r: dict, time_text: TimeText) -> Iterable[Violation]:
    doc_id, where = doc["id"], r["destination"]
    if r["state"] in ("delivered", "confirmed"):
        if r["delivered_key"] is not None and r["delivered_key"] != doc["invoice_key"]:
            yield violation("delivered-key-changed", f"{where} holds it as {r['delivered_key']}, but its key is now "
                     f"{doc['invoice_key']}", document=doc_id)
        if r["last_outcome"] == "absent":
            yield violation("lookup-disagrees", f"{where} is {r['state']}, but its last lookup did not find it",
                     document=doc_id)
    if r["state"] == "confirmed" and (not r["confirmed_at"]
                                      or (r["delivered_at"] and r["confirmed_at"] < r["delivered_at"])):
        yield violation("confirmed-stale", f"{where} confirmed at {time_text(r['confirmed_at'])}, before its "
                 f"delivery at {time_text(r['delivered_at'])}", document=doc_id)
    if r["state"] == "missing" and r["last_outcome"] == "found":
        yield violation("lookup-disagrees", f"{where} is missing, but its last lookup found it", document=doc_id)
    # Every key a row says its destination holds is listed among the keys
    # held there (agent/ledger/held_keys.py): what `show`, `status` and
    # reconciliation name once the row moves on to another key.
    if r["key_held"] is not None and bool(r["key_held"]) != (r["state"] != "missing"):
        yield violation("held-keys-disagree", f"{where} is {r['state']} under key {r['delivered_key']}, but the keys "
                        f"it holds it under {'list' if r['key_held'] else 'do not list'} that key", document=doc_id)


def _rejected_there(doc: dict, rows: list[dict]) -> Iterable[Violation]:
    # A rejection takes nothing back from a destination: the ledger says
    # "not booked" while the finance system holds it, until a person removes it.
    held = [{"destination": r["destination"], "state": r["state"], "key": r["delivered_key"] or doc["invoice_key"]}
            for r in rows if held_there(r)]
    if held:
        yield violation("rejected-at-destination", f"rejected, but it is at {where_held(held)}: remove it there "
                        "by hand; `fapiao-agent reconcile` then finds it gone", document=doc["id"])


def _keys(q: LedgerAudit) -> Iterator[Violation]:
    for k in q.keys_held_twice(tuple(s.value for s in DEAD_STATES)):
        ids = sorted(int(i) for i in k["ids"].split(","))
        yield violation("key-twice", f"invoice {k['invoice_key']} is carried by live documents "
                 f"{', '.join(map(str, ids))}", document=ids[0])


def _applications_not_held(q: LedgerAudit) -> Iterator[Violation]:
    for a in q.pending_not_held(HELD_STATES):
        yield violation("application-not-held", f"{a['number']} is pending, but the document is {a['state']}: "
                        "it could move on before the application is decided", document=a["document_id"])


def _held_keys_misjudged(q: LedgerAudit) -> Iterator[Violation]:
    for h in q.held_keys_misjudged():
        where = f"{h['destination']} holds it under key {h['key']}"
        if not h["has_row"]:
            yield violation("held-keys-disagree", f"{where}, but it has no delivery to {h['destination']}",
                            document=h["document_id"])
        else:
            yield violation("held-keys-disagree", f"{where}, marked {'old' if h['old'] else 'its own'}, but its key "
                            f"is {h['invoice_key']}", document=h["document_id"])


def _keys_delivered_twice(q: LedgerAudit) -> Iterator[Violation]:
    for k in q.keys_delivered_twice():
        ids = sorted(int(i) for i in k["ids"].split(","))
        yield violation("key-delivered-twice", f"{k['destination']} holds invoice {k['key']} for documents "
                 f"{', '.join(map(str, ids))}, but only one file can be there under that key",
                 document=ids[0])
