"""`audit ledger` checks 1 and 2: the sources the ledger has seen and the
vault folder walked object by object.

Apart from the per-document checks (`audit`) because these read other
things: the arrivals, refusals and taken e-mails, and files on disk
(re-hashed). Pure over its inputs; writes nothing.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path, PurePosixPath
from typing import Iterator

from agent.audit_rules import AuditSettings, Progress, Violation, violation
from agent.ledger.audit import LedgerAudit


# -- check 1 -----------------------------------------------------------------------

_UNREADABLE = re.compile(r"(?:\\x[0-9a-fA-F]{2}|\ufffd)+")


def comparable(text: str) -> str:
    """A file name as stored in any of the ledger's tables: the bytes that are
    not UTF-8 appear as \\xNN in some and as U+FFFD in others; both become one
    U+FFFD per run, so the two spellings compare equal."""
    if "\\x" not in text and "\ufffd" not in text:
        return text
    return _UNREADABLE.sub("\ufffd", text)


def source_violations(q: LedgerAudit, settings: AuditSettings) -> Iterator[Violation]:
    """Check 1: every watched file marked handled has an arrival or a refusal,
    every taken e-mail left one, and every arrival names a document."""
    arrived = {comparable(p) for p in q.source_paths()}
    refused = {comparable(r["name"]) for r in q.refused_names() if r["name"]}
    mail_roots = tuple(str(PurePosixPath(r)) for r in settings.mail_roots)
    for f in q.seen_files():
        path = comparable(f["path"])
        if f["outcome"] == "refused":
            # Refusals name the file in its exact spelling, as seen files do.
            if PurePosixPath(path).name not in refused:
                yield violation("seen-not-recorded", f"{f['path']}: marked refused, but no refusal names it")
        elif path not in arrived and not any(_under(path, root) for root in mail_roots):
            yield violation("seen-not-recorded", f"{f['path']}: marked captured, but no arrival has this path")
    # A taken e-mail is named by its bytes' hash from an arrival of one of
    # its attachments or from a refusal (of a part, or of the whole message).
    recorded = q.referenced_objects()
    for m in q.mails_taken():
        if m["sha256"] not in recorded:
            yield violation("mail-not-recorded", f"e-mail {m['message_id'] or m['sha256'][:12]} taken at {m['at']} "
                     f"({m['document_count']} attachments) left no arrival and no refusal")
    for s in q.orphan_sources():
        yield violation("source-orphan", f"arrival {s['id']} ({s['original_path'] or s['original_name']}) names "
                 f"document {s['document_id']}, which does not exist")


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


# -- check 2: the vault ------------------------------------------------------------------

_HEX2 = re.compile(r"[0-9a-f]{2}")
_SHA = re.compile(r"[0-9a-f]{64}")


def walk_vault(root: Path, referenced: set[str], found: set[str], *, hash_objects: bool,
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
            yield violation("vault-stray", f"{top.path}: not an object folder", object=top.name)
            continue
        for mid in _entries(top.path):
            if not (mid.is_dir(follow_symlinks=False) and _HEX2.fullmatch(mid.name)):
                yield violation("vault-stray", f"{mid.path}: not an object folder", object=mid.name)
                continue
            names = {e.name: e for e in _entries(mid.path)}
            for name, entry in names.items():
                sha = name[:-5] if name.endswith(".json") else name
                if not (_SHA.fullmatch(sha) and sha.startswith(top.name + mid.name)
                        and entry.is_file(follow_symlinks=False)):
                    yield violation("vault-stray", f"{entry.path}: not an object of this folder", object=name)
                elif name != sha:
                    if sha not in names:
                        yield violation("vault-stray", f"{entry.path}: a sidecar without its object", object=sha)
                else:
                    found.add(sha)
                    n += 1
                    if progress and n % 1000 == 0:
                        progress("vault objects", n, None)
                    if hash_objects and not _hash_matches(Path(entry.path), sha):
                        yield violation("object-corrupt", "its content does not hash to its name", object=sha)
                    if sha not in referenced:
                        yield violation("object-unreferenced", "no document, e-mail arrival or refusal names it",
                                 object=sha)
    if progress:
        progress("vault objects", n, n)


def _entries(path) -> list:
    with os.scandir(path) as it:
        return list(it)


def _hash_matches(path: Path, sha: str) -> bool:
    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest() == sha
    except OSError:
        return False
