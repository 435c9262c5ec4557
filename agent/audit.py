"""`audit ledger`: prove the ledger's promises and list every break of them.

The promise is "no silent path": every file that lands ends delivered or
explained. Seven checks (CHECKS) make it concrete, each broken promise a
Violation with a stable rule code (RULES). The rules about states are
derived from `model.TRANSITIONS`, so a state added there is judged without
a change here: its end states are those from which no move made by the
machine leads to delivery (`END_STATES`), and they must carry a reason.

Pure over its inputs: the ledger (read in one snapshot), the vault folder,
the settings and `now`. It writes nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterable, Iterator

from agent.amend import AMENDABLE
from agent.ledger import Ledger, utc
from agent.ledger.audit import LedgerAudit
from agent.ledger.deliveries import ACTIVE_DOCUMENT_STATES, summary_state
from agent.ledger.documents import NOT_COUNTED
from agent.model import TRANSITIONS, State
from agent.watched import unhandled_files

CHECKS = {
    1: "every source file the ledger has seen became a document or a refusal",
    2: "every vault object is referenced, and its hash matches its name",
    3: "every document is in a state with a way forward, or in an end state with its reason",
    4: "every duplicate points at a live document with the same key",
    5: "every valid document is delivered, queued or paused with a reason",
    6: "every delivered key was confirmed at its last reconciliation, or is marked missing",
    7: "no document has been waiting past the SLA without a line in `status`",
}
# code -> (check, what it means). Codes are stable: scripts grep for them.
RULES: dict[str, tuple[int, str]] = {
    "seen-not-recorded": (1, "a watched file marked handled has no arrival (source row) and no refusal"),
    "mail-not-recorded": (1, "an e-mail marked taken (Message-ID) gave no document and no refusal"),
    "file-not-taken": (1, "a file in a watched folder, unchanged for longer than a rescan and the grace of a "
                          "temporary name, that was never taken nor refused"),
    "source-orphan": (1, "an arrival (source row) names a document that does not exist"),
    "object-unreferenced": (2, "a vault object no document, e-mail arrival or refusal names"),
    "object-corrupt": (2, "a vault object whose content does not hash to its name"),
    "object-missing": (2, "an object the ledger names is not in the vault"),
    "vault-stray": (2, "a file in vault/objects that is neither an object nor its sidecar"),
    "unknown-state": (3, "a document in a state the model does not know"),
    "end-without-reason": (3, "a document in an end state without an event giving the reason"),
    "quarantined-without-problem": (3, "a quarantined document whose problems are empty"),
    "no-delivery-rows": (3, "a document in a delivery state without any delivery row"),
    "rows-disagree": (3, "a document whose state is not what its delivery rows add up to"),
    "duplicate-without-original": (4, "a duplicate that names no document, or one that does not exist"),
    "duplicate-of-dead": (4, "a duplicate of a document that is not live (rejected, duplicate ...)"),
    "duplicate-key-differs": (4, "a duplicate whose invoice key is not its original's"),
    "key-twice": (4, "two live documents carry the same invoice key (one would be delivered twice)"),
    "key-delivered-twice": (4, "two documents hold delivered/confirmed rows under one key at one destination"),
    "valid-not-queued": (5, "a valid document not queued although destinations are configured"),
    "unknown-destination": (5, "a delivery waiting for a destination that is not configured"),
    "failed-without-error": (5, "a failed delivery without its last error"),
    "delivered-key-changed": (6, "a delivery holds the invoice under a key the document no longer has"),
    "confirmed-stale": (6, "a delivery marked confirmed without a lookup after its last delivery"),
    "lookup-disagrees": (6, "a delivery whose last lookup contradicts its state (absent but "
                            "delivered, found but missing)"),
    "late-silent": (7, "a document waiting for the machine longer than [delivery] sla_hours that "
                       "`status` does not count as LATE"),
}


@dataclass(frozen=True)
class Violation:
    """One broken promise: a rule code, the document or vault object, and what is wrong."""

    code: str
    message: str
    document: int | None = None
    object: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: code, check number, document, object, message."""
        return {"code": self.code, "check": RULES[self.code][0], "document": self.document,
                "object": self.object, "message": self.message}

    def line(self) -> str:
        """One line: the code, what it concerns, the message."""
        what = (f"document {self.document}" if self.document is not None
                else f"object {self.object}" if self.object else "ledger")
        return f"{self.code}  {what}: {self.message}"


@dataclass(frozen=True)
class AuditSettings:
    """What the audit needs from the config."""

    destinations: tuple[str, ...] = ()
    mail_roots: tuple[str, ...] = ()     # e-mail watch folders: their files map to message objects
    sla_hours: float = 24.0
    hash_objects: bool = True
    watched: tuple[tuple[str, str], ...] = ()  # (folder, after) of every watch: walked for files never taken
    unhandled_after_s: float = 1200.0          # younger files may still be settling or waiting out their grace


Progress = Callable[[str, int, int | None], None]


# The operator's commands (docs/states.md, "Moving documents by hand"): reject,
# amend (back to extracted), accept, retry / requeue. They are no way forward.
def _operator_move(old: State, new: State) -> bool:
    return (new == State.REJECTED or (new == State.EXTRACTED and old in AMENDABLE)
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
        yield from _sources(q, settings)
        yield from _documents(q, settings, now, progress)
        yield from _keys(q)
        yield from _keys_delivered_twice(q)
        referenced = q.referenced_objects()
    found: set[str] = set()
    unreferenced: list[Violation] = []
    for v in _walk_vault(Path(vault_root), referenced, found, hash_objects=settings.hash_objects,
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
                yield _v("object-missing", "the original is not in the vault", document=by_document.get(sha),
                         object=sha)
    for path in unhandled_files(ledger, list(settings.watched), now=now, older_than_s=settings.unhandled_after_s):
        yield _v("file-not-taken", f"{path}: in a watched folder, never taken nor refused")


def _v(code: str, message: str, *, document: int | None = None, object: str | None = None) -> Violation:
    if code not in RULES:
        raise ValueError(f"unknown audit rule {code!r}")
    return Violation(code, message, document, object)


# -- check 1 -----------------------------------------------------------------------

_UNREADABLE = re.compile(r"(?:\\x[0-9a-fA-F]{2}|\ufffd)+")


def comparable(text: str) -> str:
    """A file name as stored in any of the ledger's tables: the bytes that are
    not UTF-8 appear as \\xNN in some and as U+FFFD in others; both become one
    U+FFFD per run, so the two spellings compare equal."""
    if "\\x" not in text and "\ufffd" not in text:
        return text
    return _UNREADABLE.sub("\ufffd", text)


def _sources(q: LedgerAudit, settings: AuditSettings) -> Iterator[Violation]:
    arrived = {comparable(p) for p in q.source_paths()}
    refused = {comparable(r["name"]) for r in q.refused_names() if r["name"]}
    mail_roots = tuple(str(PurePosixPath(r)) for r in settings.mail_roots)
    for f in q.seen_files():
        path = comparable(f["path"])
        if f["outcome"] == "refused":
            if PurePosixPath(path).name not in refused:
                yield _v("seen-not-recorded", f"{f['path']}: marked refused, but no refusal names it")
        elif path not in arrived and not any(_under(path, root) for root in mail_roots):
            yield _v("seen-not-recorded", f"{f['path']}: marked captured, but no arrival has this path")
    # A taken e-mail is named by its bytes' hash from an arrival of one of
    # its attachments or from a refusal (of a part, or of the whole message).
    recorded = q.referenced_objects()
    for m in q.mails_taken():
        if m["sha256"] not in recorded:
            yield _v("mail-not-recorded", f"e-mail {m['message_id'] or m['sha256'][:12]} taken at {m['at']} "
                     f"({m['document_count']} attachments) left no arrival and no refusal")
    for s in q.orphan_sources():
        yield _v("source-orphan", f"arrival {s['id']} ({s['original_path'] or s['original_name']}) names "
                 f"document {s['document_id']}, which does not exist")


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


# -- checks 3 to 7, one document at a time ---------------------------------------------

def _documents(q: LedgerAudit, settings: AuditSettings, now: dt.datetime,
               progress: Progress | None) -> Iterator[Violation]:
    cutoff = utc(now - dt.timedelta(hours=settings.sla_hours))
    late = q.late_in_status(queued_before=cutoff)
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
        yield _v("unknown-state", f"state {doc['state']!r} is not in the model", document=doc_id)
        return
    if state in END_STATES:
        reason = doc["state_reason"]
        if reason is None or not reason.strip():
            yield _v("end-without-reason", f"{state.value}, but "
                     + ("no event records how it became so" if reason is None else
                        "the event that made it so gives no reason"), document=doc_id)
    if state == State.QUARANTINED and not doc["has_problems"]:
        yield _v("quarantined-without-problem", "quarantined with no problem for `quarantine` to show",
                 document=doc_id)
    if state == State.DUPLICATE:
        yield from _duplicate(doc)
    if state.value in ACTIVE_DOCUMENT_STATES:
        summary = summary_state(r["state"] for r in rows)
        if summary is None:
            yield _v("no-delivery-rows", f"{state.value}, but it has no delivery row", document=doc_id)
        elif summary != state:
            said = ", ".join(f"{r['destination']} {r['state']}" for r in rows)
            yield _v("rows-disagree", f"{state.value}, but its deliveries ({said}) say {summary.value}",
                     document=doc_id)
        for r in rows:
            yield from _waiting_row(doc_id, r, settings)
    if state == State.VALID and settings.destinations:
        yield _v("valid-not-queued", f"valid since {doc['updated_at']}, not queued for "
                 + ", ".join(settings.destinations), document=doc_id)
    for r in rows:
        yield from _delivered_row(doc, r)
    if (state not in END_STATES and state not in GOAL_STATES and doc["updated_at"] < cutoff
            and doc_id not in late):
        yield _v("late-silent", f"{state.value} since {doc['updated_at']}, past the SLA of "
                 f"{settings.sla_hours:g} h, and `status` does not count it late", document=doc_id)


def _duplicate(doc: dict) -> Iterable[Violation]:
    doc_id, original = doc["id"], doc["duplicate_of"]
    if original is None or doc["original_id"] is None:
        yield _v("duplicate-without-original", "duplicate of " + (f"document {original}, which does not exist"
                                                                 if original else "no document"),
                 document=doc_id)
        return
    if doc["original_state"] in _DEAD_VALUES or doc["original_state"] not in _STATE_VALUES:
        yield _v("duplicate-of-dead", f"duplicate of document {original}, which is {doc['original_state']}: "
                 "neither of them will be delivered", document=doc_id)
    if doc["invoice_key"] is None or doc["invoice_key"] != doc["original_key"]:
        yield _v("duplicate-key-differs", f"key {doc['invoice_key']} but its original {original} has key "
                 f"{doc['original_key']}", document=doc_id)


def _waiting_row(doc_id: int, r: dict, settings: AuditSettings) -> Iterable[Violation]:
    if r["state"] in ("queued", "delivering") and r["destination"] not in settings.destinations:
        yield _v("unknown-destination", f"{r['state']} for {r['destination']}, which is not configured "
                 f"(configured: {', '.join(settings.destinations) or 'none'})", document=doc_id)
    if r["state"] == "failed" and not (r["last_error"] or "").strip():
        yield _v("failed-without-error", f"delivery to {r['destination']} failed with no error recorded",
                 document=doc_id)


def _delivered_row(doc: dict, r: dict) -> Iterable[Violation]:
    doc_id, where = doc["id"], r["destination"]
    if r["state"] in ("delivered", "confirmed"):
        if r["delivered_key"] is not None and r["delivered_key"] != doc["invoice_key"]:
            yield _v("delivered-key-changed", f"{where} holds it as {r['delivered_key']}, but its key is now "
                     f"{doc['invoice_key']}", document=doc_id)
        if r["last_outcome"] == "absent":
            yield _v("lookup-disagrees", f"{where} is {r['state']}, but its last lookup did not find it",
                     document=doc_id)
    if r["state"] == "confirmed" and (not r["confirmed_at"]
                                      or (r["delivered_at"] and r["confirmed_at"] < r["delivered_at"])):
        yield _v("confirmed-stale", f"{where} confirmed at {r['confirmed_at']}, before its delivery at "
                 f"{r['delivered_at']}", document=doc_id)
    if r["state"] == "missing" and r["last_outcome"] == "found":
        yield _v("lookup-disagrees", f"{where} is missing, but its last lookup found it", document=doc_id)


# -- check 2: the vault ------------------------------------------------------------------

_HEX2 = re.compile(r"[0-9a-f]{2}")
_SHA = re.compile(r"[0-9a-f]{64}")


def _walk_vault(root: Path, referenced: set[str], found: set[str], *, hash_objects: bool,
                progress: Progress | None) -> Iterator[Violation]:
    """Walk vault/objects/ab/cd/: each object's name is its content's hash
    (re-hashed unless `hash_objects` is off) and in `referenced`; only
    objects and their sidecars live there. Adds every object to `found`."""
    objects = root / "objects"
    if not objects.is_dir():
        return
    n = 0
    for top in _entries(objects):
        if not (top.is_dir(follow_symlinks=False) and _HEX2.fullmatch(top.name)):
            yield _v("vault-stray", f"{top.path}: not an object folder", object=top.name)
            continue
        for mid in _entries(top.path):
            if not (mid.is_dir(follow_symlinks=False) and _HEX2.fullmatch(mid.name)):
                yield _v("vault-stray", f"{mid.path}: not an object folder", object=mid.name)
                continue
            names = {e.name: e for e in _entries(mid.path)}
            for name, entry in names.items():
                sha = name[:-5] if name.endswith(".json") else name
                if not (_SHA.fullmatch(sha) and sha.startswith(top.name + mid.name)
                        and entry.is_file(follow_symlinks=False)):
                    yield _v("vault-stray", f"{entry.path}: not an object of this folder", object=name)
                elif name != sha:
                    if sha not in names:
                        yield _v("vault-stray", f"{entry.path}: a sidecar without its object", object=sha)
                else:
                    found.add(sha)
                    n += 1
                    if progress and n % 1000 == 0:
                        progress("vault objects", n, None)
                    if hash_objects and not _hash_matches(Path(entry.path), sha):
                        yield _v("object-corrupt", "its content does not hash to its name", object=sha)
                    if sha not in referenced:
                        yield _v("object-unreferenced", "no document, e-mail arrival or refusal names it",
                                 object=sha)
    if progress:
        progress("vault objects", n, n)


def _entries(path) -> list:
    with os.scandir(path) as it:
        return list(it)


def _hash_matches(path: Path, sha: str) -> bool:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except OSError:
        return False
    return digest.hexdigest() == sha


def _keys(q: LedgerAudit) -> Iterator[Violation]:
    for k in q.keys_held_twice(tuple(s.value for s in DEAD_STATES)):
        ids = sorted(int(i) for i in k["ids"].split(","))
        yield _v("key-twice", f"invoice {k['invoice_key']} is carried by live documents "
                 f"{', '.join(map(str, ids))}", document=ids[0])


def _keys_delivered_twice(q: LedgerAudit) -> Iterator[Violation]:
    for k in q.keys_delivered_twice():
        ids = sorted(int(i) for i in k["ids"].split(","))
        yield _v("key-delivered-twice", f"{k['destination']} holds invoice {k['key']} for documents "
                 f"{', '.join(map(str, ids))}, but only one file can be there under that key",
                 document=ids[0])
