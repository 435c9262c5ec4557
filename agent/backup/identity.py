"""A backup target's identity: the marker object that tells our target from
an empty mount point or another disk under the same path.

At first use the agent puts `.fapiao-agent-target` (a random id) on the
target and the ledger remembers the id (`backup_targets.identity`). Before
anything is written to the target (a mirror round, a snapshot, a
verification's repairs) the marker must be there and name that id. A NAS
that is not mounted leaves an empty folder, which the file target could
otherwise fill with a fresh backup (and `backup verify` "repair" the whole
backup onto the local disk) while status said all was well. Written through
the BackupTarget interface, so every kind of target has it, with the key
layout of the target (a fleet site's marker lives under its sites/<site>/).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets

from agent.backup.base import LEDGER_PREFIX, OBJECTS_PREFIX, BackupTarget, TargetUnrecognised
from agent.errors import NotFound
from agent.ledger import Ledger, utc

MARKER_KEY = ".fapiao-agent-target"
# In every TargetUnrecognised message: the pause it causes is lifted by a
# later check that passes, and only that pause.
UNRECOGNISED = "not the backup target this agent wrote to"
_ACCEPT = "If the backup moved to a new disk on purpose, run `fapiao-agent backup accept --target {name}`."


def read_marker(target: BackupTarget) -> str | None:
    """The id the target's marker names, None when it has none; a marker
    that is not ours (unparsable) reads as "" (matches no id)."""
    try:
        body = target.get(MARKER_KEY)
    except NotFound:
        return None
    try:
        found = json.loads(body)["fapiao_agent_target"]
    except (ValueError, TypeError, KeyError):
        return ""
    return found if isinstance(found, str) else ""


def write_marker(target: BackupTarget, identity: str, *, now: dt.datetime) -> None:
    """Put the marker naming `identity` on `target`."""
    body = json.dumps({"fapiao_agent_target": identity, "target": target.name, "written_at": utc(now),
                       "note": "written by fapiao-agent: it writes backups here only while this id is "
                               "the one its ledger remembers"}, indent=1).encode("utf-8")
    target.put(MARKER_KEY, body, hashlib.sha256(body).hexdigest())


def new_identity() -> str:
    """A fresh random target id."""
    return secrets.token_hex(16)


def check_identity(ledger: Ledger, target: BackupTarget, *, now: dt.datetime) -> bool:
    """Make sure `target` is the one the ledger's rows describe before
    anything is written to it; True when this lifted a pause it had caused.

    Guarantees: it returns only when the target carries the marker naming
    the id the ledger remembers. First use (no id remembered) adopts the
    marker found, or writes a new one when the target has none and either
    the ledger counts nothing as held on it or the target already holds
    objects (an agent upgraded to this version). It raises
    `TargetUnrecognised` when the marker names another id, or is missing
    while the ledger counts objects or a snapshot as held there (for a first
    use: while the target is empty): nothing is written then. Target errors
    (`Transient`: a folder gone, a store down) propagate.
    """
    known, paused = ledger.target_identity(target.name)
    found = read_marker(target)
    stamp = utc(now)
    if found is None:
        held = ledger.target_holds_anything(target.name)
        if held and (known is not None or not _holds_objects(target)):
            raise TargetUnrecognised(
                f"backup target {target.name!r} is {UNRECOGNISED}: its marker {MARKER_KEY} is missing, "
                f"though the ledger counts backups as held there (a disk not mounted, leaving an empty "
                f"mount point, or another folder or bucket?). Nothing is written to it. "
                + _ACCEPT.format(name=target.name))
        write_marker(target, ledger.remember_target_identity(target.name, known or new_identity(), now=stamp),
                     now=now)
    elif known is None:
        ledger.remember_target_identity(target.name, found, now=stamp)
    elif found != known:
        raise TargetUnrecognised(
            f"backup target {target.name!r} is {UNRECOGNISED}: its marker {MARKER_KEY} names another "
            f"target ({found[:12] or 'unreadable'}, expected {known[:12]}): another disk or bucket "
            f"under the same name? Nothing is written to it. " + _ACCEPT.format(name=target.name))
    return bool(paused) and UNRECOGNISED in paused and \
        ledger.resume_unrecognised_target(target.name, UNRECOGNISED, now=stamp)


def accept_target(ledger: Ledger, target: BackupTarget, *, now: dt.datetime) -> int | None:
    """An operator's word that `target` as it is now is the backup target
    (the backup moved to a new disk on purpose): a new marker is put, the
    ledger remembers it, and everything the ledger counted as held there is
    due again (puts skip objects already there). Returns how many objects
    are due again; None, changing nothing, when the target already carries
    the marker the ledger remembers. Target errors propagate; nothing is
    recorded then."""
    known = ledger.target_identity(target.name)[0]
    if known is not None and read_marker(target) == known:
        return None
    identity = new_identity()
    write_marker(target, identity, now=now)
    return ledger.accept_target(target.name, identity, now=utc(now))


def _holds_objects(target: BackupTarget) -> bool:
    # An agent upgraded from a version without markers: the target it used
    # holds originals or snapshots; an empty mount point holds neither.
    return any(True for _ in _first(target, OBJECTS_PREFIX)) or any(True for _ in _first(target, LEDGER_PREFIX))


def _first(target: BackupTarget, prefix: str):
    for info in target.list(prefix):
        yield info
        return
