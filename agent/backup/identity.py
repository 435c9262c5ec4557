"""A backup target's identity: the marker object that tells our target from
an empty mount point or another disk under the same path.

At first use the agent puts `.fapiao-agent-target` (a random id, and the
id of the ledger that wrote it) on the target and the ledger remembers the
id (`backup_targets.identity`). A marker another ledger wrote is never
adopted: two agents with one site name (a copied config) would otherwise
share one target and overwrite each other's backups. Before
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
    return _read(target)[0]


def marker_ledger(target: BackupTarget) -> str | None:
    """The id of the ledger that wrote the target's marker: the one agent
    that may write there. None without a marker or one from before ledger
    ids. Target errors propagate."""
    return _read(target)[1]


def _read(target: BackupTarget) -> tuple[str | None, str | None]:
    # (the target id, the id of the ledger that wrote the marker): a marker
    # of a version before ledger ids names none.
    try:
        body = target.get(MARKER_KEY)
    except NotFound:
        return None, None
    try:
        data = json.loads(body)
        found, writer = data["fapiao_agent_target"], data.get("ledger")
    except (ValueError, TypeError, KeyError, AttributeError):
        return "", None
    return (found if isinstance(found, str) else ""), (writer if isinstance(writer, str) else None)


def write_marker(target: BackupTarget, identity: str, *, now: dt.datetime, ledger: str | None = None) -> None:
    """Put the marker naming `identity`, written by the ledger whose id is `ledger`, on `target`."""
    body = json.dumps({"fapiao_agent_target": identity, "target": target.name, "written_at": utc(now),
                       **({"ledger": ledger} if ledger else {}),
                       "note": "written by fapiao-agent: it writes backups here only while this id is "
                               "the one its ledger remembers, and this ledger id its own"},
                      indent=1).encode("utf-8")
    target.put(MARKER_KEY, body, hashlib.sha256(body).hexdigest())


def new_identity() -> str:
    """A fresh random target id."""
    return secrets.token_hex(16)


def check_identity(ledger: Ledger, target: BackupTarget, *, now: dt.datetime) -> bool:
    """Make sure `target` is the one the ledger's rows describe before
    anything is written to it; True when this lifted a pause it had caused.

    Guarantees: it returns only when the target carries the marker naming
    the id the ledger remembers, written by this ledger (`Ledger.ledger_id`)
    or by a version before ledger ids (such a marker is then rewritten
    naming this ledger). First use (no id remembered) adopts the marker
    found unless another ledger wrote it, or writes a new one when the
    target has none and either the ledger counts nothing as held on it or
    the target already holds objects (an agent upgraded from a version
    without markers). It raises `TargetUnrecognised` when the marker names
    another id, was written by another ledger (two agents with one site
    name, a copied config: each would overwrite the other's backups), or is
    missing while the ledger counts objects or a snapshot as held there
    (for a first use: while the target is empty): nothing is written then.
    Target errors (`Transient`: a folder gone, a store down) propagate.
    """
    known, paused = ledger.target_identity(target.name)
    stamp = utc(now)
    me = ledger.ledger_id(now=stamp)
    found, writer = _read(target)
    if found is None:
        held = ledger.target_holds_anything(target.name)
        if held and (known is not None or not _holds_objects(target)):
            raise TargetUnrecognised(
                f"backup target {target.name!r} is {UNRECOGNISED}: its marker {MARKER_KEY} is missing, "
                f"though the ledger counts backups as held there (a disk not mounted, leaving an empty "
                f"mount point, or another folder or bucket?). Nothing is written to it. "
                + _ACCEPT.format(name=target.name))
        write_marker(target, ledger.remember_target_identity(target.name, known or new_identity(), now=stamp),
                     now=now, ledger=me)
    elif writer is not None and writer != me:
        raise TargetUnrecognised(
            f"backup target {target.name!r} is {UNRECOGNISED}: its marker {MARKER_KEY} was written by another "
            f"agent's ledger ({writer[:12]}; this one is {me[:12]}): two agents with one site name (a copied "
            f"config?) back up to the same place and would overwrite each other's backups. Nothing is "
            f"written to it. Give each agent its own [fleet] site, or its own bucket or folder.")
    elif known is None or found == known:
        if known is None:
            ledger.remember_target_identity(target.name, found, now=stamp)
        if writer is None:
            # A marker from before ledger ids: it names this ledger from now
            # on, so a second agent sharing the target stops at it.
            write_marker(target, found, now=now, ledger=me)
    else:
        raise TargetUnrecognised(
            f"backup target {target.name!r} is {UNRECOGNISED}: its marker {MARKER_KEY} names another "
            f"target ({found[:12] or 'unreadable'}, expected {known[:12]}): another disk or bucket "
            f"under the same name? Nothing is written to it. " + _ACCEPT.format(name=target.name))
    return bool(paused) and UNRECOGNISED in paused and \
        ledger.resume_unrecognised_target(target.name, UNRECOGNISED, now=stamp)


def accept_target(ledger: Ledger, target: BackupTarget, *, now: dt.datetime) -> int | None:
    """An operator's word that `target` as it is now is the backup target
    (the backup moved to a new disk on purpose): a new marker is put, naming
    this ledger, the ledger remembers it, and everything the ledger counted
    as held there is due again (puts skip objects already there). Returns
    how many objects are due again; None, changing nothing, when the target
    already carries the marker the ledger remembers, not written by another
    ledger. Target errors propagate; nothing is recorded then."""
    known = ledger.target_identity(target.name)[0]
    me = ledger.ledger_id(now=utc(now))
    found, writer = _read(target)
    if known is not None and found == known and writer in (None, me):
        return None
    identity = new_identity()
    write_marker(target, identity, now=now, ledger=me)
    return ledger.accept_target(target.name, identity, now=utc(now))


def _holds_objects(target: BackupTarget) -> bool:
    # An agent upgraded from a version without markers: the target it used
    # holds originals or snapshots; an empty mount point holds neither.
    return any(True for _ in _first(target, OBJECTS_PREFIX)) or any(True for _ in _first(target, LEDGER_PREFIX))


def _first(target: BackupTarget, prefix: str):
    for info in target.list(prefix):
        yield info
        return
