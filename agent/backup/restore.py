"""Rebuild a vault and a ledger from one backup target.

Order: the ledger snapshot first (the newest not dated in the future, or
the newest at or before `at`), then every original with its sidecar (from
the newest sidecar batch naming it, agent/backup/sidecars.py, else from its
own `.json` of the older layout), each checked against the SHA-256 it is
named after. Objects the snapshot does not know (captured after it was
taken) come back as documents the daemon reads again: a sidecar is a file
anyone with the target's keys can write, so its states and fields are not
ledger truth. What the snapshot, sidecars and manifests describe but the
target does not give back whole is named, never dropped. Pure: `now` comes
in, progress is a callback, and nothing is written outside `state_dir` and
its hidden work folder beside it.

A restore is built in `.<state>.restoring` beside `state_dir` and renamed
into place only when complete, so a restore killed half-way never leaves a
folder that looks like a whole agent. Run again, it resumes: originals
already in the work folder that hash to their names are kept, and the ledger
is rebuilt from the snapshot (a half-written one is never trusted). The
snapshot's heartbeat is replaced by one saying "restored": it came from the
live agent and must not make `status` report a running daemon.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from agent.backup.base import (LEDGER_PREFIX, MANIFESTS_PREFIX, OBJECTS_PREFIX, BackupTarget, CorruptObject,
                               object_key, sha256_of_object_key, sidecar_key)
from agent.backup.identity import marker_ledger
from agent.backup.sidecars import BatchUnreadable, read_batch, sidecar_index
from agent.backup.sites import SITES_PREFIX
from agent.backup.snapshot import restore_sqlite, snapshot_for_restore, snapshots_of
from agent.errors import NotFound, Permanent
from agent.ledger.audit import LedgerAudit
from agent.fsutil import fsync_dir
from agent.ledger import Ledger, utc
from agent.ledger.rows import RESTORED_ACTIVITY, parse_utc
from agent.vault import DIR_MODE, FILE_MODE, Vault

LEDGER_NAME = "ledger.sqlite3"
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
VAULT_NAME = "vault"


class RestoreRefused(Permanent):
    """The destination already holds a ledger or vault objects: a restore
    never overwrites a live agent's state."""


@dataclass
class RestoreReport:
    """What a restore did. `problems` are one line each (an original
    described but missing or corrupt, an unreadable sidecar, a sidecar the
    restore would not believe); a restore with problems is not whole."""

    snapshot: str | None = None
    resumed: bool = False
    reused: int = 0
    objects: int = 0
    bytes: int = 0
    sidecars: int = 0
    recovered_documents: int = 0
    skipped_after_at: int = 0
    site: str | None = None
    other_sites: int = 0      # originals in a shared target that belong to other sites: left out
    missing: int = 0          # originals described (snapshot, sidecars, manifests) that did not come back
    future_snapshots: list[str] = field(default_factory=list)   # dated after `now`: passed over
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-ready form for `backup restore --json`."""
        return dict(vars(self))


def work_folder(state_dir: str | Path) -> Path:
    """Where a restore into `state_dir` is built until it is complete."""
    state = Path(state_dir)
    return state.parent / f".{state.name}.restoring"


def restore(target: BackupTarget, state_dir: str | Path, *, now: dt.datetime, actor: str,
            at: dt.datetime | None = None,
            progress: Callable[[int, int], None] | None = None) -> RestoreReport:
    """Rebuild `state_dir/ledger.sqlite3` and `state_dir/vault` from `target`.

    Guarantees: every original written to the vault hashes to its name; the
    ledger is the chosen snapshot of the ledger the target's marker names
    (`snapshots_of`, `snapshot_for_restore`: the newest, or
    the newest at or before `at`, passing over snapshots dated after `now`,
    listed in `future_snapshots`), migrated to the current schema, plus one
    document for each object it does not know, rebuilt from its sidecar as
    `captured`, so the daemon reads it again (`Ledger.restore_documents`:
    a sidecar is not trusted; sidecar batches dated after `now` are ignored
    and named). Every original the snapshot, a sidecar or a manifest
    describes but that did not come back whole (missing, or bytes that do
    not match) is named in `problems` and still has a document (the
    snapshot's, or a quarantined one without its original), so `audit
    ledger` on the copy reports it. With `at`, objects whose sidecar says
    they arrived after `at` get no document. The ledger's heartbeat says
    `restored`, never a running daemon. `state_dir` appears only once all
    of this is done (it is built in `work_folder(state_dir)`, which a new
    run resumes); folders are 0750 and files 0640 whatever the umask.
    `progress(done, total)` follows the objects. When `target` is one site
    of a shared target (`sites.SiteTarget`), only that site's originals
    come back: those its snapshot knows, or that its own sidecars or
    manifests name; the other sites' are counted in `other_sites`. The same
    holds for a target used as it is that also holds sites' backups (the
    pre-fleet agent's part of it). Raises `RestoreRefused` when `state_dir`
    already holds a ledger or anything else, and the target's own errors
    (`Transient`, `Permanent`).
    """
    state = Path(state_dir)
    work = work_folder(state)
    unfinished = (f" (an unfinished restore waits in {work}: move {state} away and run the restore "
                  "again to finish it)" if work.is_dir() else "")
    if (state / LEDGER_NAME).exists():
        raise RestoreRefused(f"{state / LEDGER_NAME} already exists; restore into an empty folder{unfinished}")
    if state.exists() and (not state.is_dir() or any(state.iterdir())):
        raise RestoreRefused(f"{state} is not empty; restore into an empty folder{unfinished}")
    report = RestoreReport(resumed=work.is_dir(), site=getattr(target, "site", None))
    _make_dir(work)
    _sweep_temp(work)
    ledger_path = work / LEDGER_NAME
    for p in work.glob(LEDGER_NAME + "*"):
        p.unlink()  # a killed run's ledger is half-made: rebuilt from the snapshot below
    # Only the snapshots of the ledger the marker names: another agent that
    # wrote here (one site name twice) left its ledger, not this site's.
    marked_by = marker_ledger(target)
    snapshots = snapshots_of([info.key for info in target.list(LEDGER_PREFIX)], marked_by)
    chosen, report.future_snapshots = snapshot_for_restore(snapshots, now, at)
    if chosen is not None:
        restore_sqlite(target.get(chosen), ledger_path)
        report.snapshot = chosen
    elif at is not None and snapshots:
        raise NotFound(f"{target.name} has no ledger snapshot at or before {at.isoformat()}")
    vault = Vault(work / VAULT_NAME)
    for folder in (vault.root, vault.objects, vault.tmp):
        os.chmod(folder, DIR_MODE)  # Vault's mkdir modes pass through the umask
    originals: dict[str, int] = {}
    sidecars: set[str] = set()
    for info in target.list(OBJECTS_PREFIX):
        sha = sha256_of_object_key(info.key)
        if sha is None:
            continue
        if info.key.endswith(".json"):
            sidecars.add(sha)
        else:
            originals[sha] = info.size
    batches = sidecar_index(target, report.problems, now=now)   # sha256 -> the newest batch describing it
    manifested = _manifested(target, report)
    site = getattr(target, "site", None)
    shared = site is not None or any(True for _ in target.list(SITES_PREFIX))
    with Ledger(ledger_path) as ledger:
        if marked_by and not ledger.get_value("ledger.id"):
            # A snapshot taken before the ledger had its id (an older
            # version's, or one taken before the first marker): the ledger
            # restored is the one the marker names, and must be known as it,
            # or its own targets would be paused as another agent's.
            ledger.set_value("ledger.id", marked_by, now=utc(now))
        ledger.beat(pid=0, now=utc(now), activity=RESTORED_ACTIVITY,
                    details=json.dumps({"from": target.name, "snapshot": chosen, "by": actor,
                                        **({"site": site} if site else {})}))
        known = LedgerAudit(ledger).referenced_objects()   # every original the snapshot names
        if shared:
            # A shared target holds every site's originals: only this site's
            # (or, restored as it is, the pre-fleet agent's) come back.
            mine = sidecars | set(batches) | set(manifested)
            report.other_sites = sum(1 for sha in originals if sha not in mine and sha not in known)
            originals = {sha: n for sha, n in originals.items() if sha in mine or sha in known}
        # Every original something describes comes back or is named: one the
        # target no longer holds would otherwise vanish without a trace.
        described = known | set(batches) | sidecars | set(manifested)
        absent = sorted(described - set(originals))
        # Batch by batch (each fetched once), then those described by their
        # own older sidecar or not at all.
        by_batch: dict[str, list[str]] = {}
        for sha in sorted(originals) + absent:
            by_batch.setdefault(batches.get(sha, ""), []).append(sha)
        done, total = 0, len(originals) + len(absent)
        for key in sorted(by_batch, key=lambda k: (k == "", k)):
            entries = _batch_entries(target, key, report) if key else {}
            for sha in by_batch[key]:
                if sha in entries:
                    side = entries[sha]["sidecar"]
                else:
                    side = _legacy_sidecar(target, sha, report) if sha in sidecars else None
                if sha in originals:
                    _restore_object(ledger, vault, target, sha, originals[sha], side, report=report, now=now,
                                    at=at, actor=actor, batch=key if sha in entries else None,
                                    known=sha in known)
                else:
                    size = entries.get(sha, {}).get("size") or manifested.get(sha, (0, None))[0]
                    _restore_missing(ledger, target, sha, size if isinstance(size, int) else 0, side,
                                     "not on the target", report=report, now=now, at=at, actor=actor,
                                     known=sha in known, manifest_at=manifested.get(sha, (0, None))[1])
                done += 1
                if progress:
                    progress(done, total)
    _sweep_temp(work)
    if state.is_dir():
        state.rmdir()  # empty (checked above); rename cannot replace it otherwise on every system
    os.rename(work, state)
    fsync_dir(state.parent)
    return report


def _manifested(target: BackupTarget, report: RestoreReport) -> dict[str, tuple[int, str | None]]:
    """{sha256: (size, when put)} of the originals the daily manifests list
    (among them objects that carry no sidecar, e.g. a refused file kept, put
    after the snapshot)."""
    out: dict[str, tuple[int, str | None]] = {}
    for info in target.list(MANIFESTS_PREFIX):
        try:
            body = json.loads(target.get(info.key))
            for o in body["objects"]:
                sha = o.get("sha256")
                if isinstance(sha, str) and _SHA256_RE.fullmatch(sha):
                    size, at = o.get("size"), o.get("at")
                    out[sha] = (size if isinstance(size, int) else 0, at if isinstance(at, str) else None)
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as e:
            report.problems.append(f"{info.key}: unreadable manifest ({e}); its objects count only "
                                   "when the snapshot or a sidecar knows them")
    return out


def _make_dir(path: Path) -> None:
    """mkdir -p with DIR_MODE set on each folder made, whatever the umask.
    Each is made 0700 first: a run killed between the mkdir and the chmod
    leaves it closed, never open to others (the next run's `_sweep_temp`
    sets its mode)."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for p in reversed(missing):
        try:
            p.mkdir(mode=0o700)
        except FileExistsError:
            continue
        os.chmod(p, DIR_MODE)


def _sweep_temp(work: Path) -> None:
    """Remove the temp files a killed run left half-written: objects and the
    snapshot (`.tmp-*` beside their final names) and sidecars (in the vault's
    own tmp folder, which nothing else writes to while the restore builds);
    every folder it made gets DIR_MODE (one it was killed making has 0700)."""
    sidecars = work / VAULT_NAME / "tmp"
    for p in [work, *work.rglob("*")]:  # one walk: a resumed vault can hold many thousand files
        if p.is_dir() and not p.is_symlink():
            if stat.S_IMODE(p.lstat().st_mode) != DIR_MODE:
                os.chmod(p, DIR_MODE)
        elif p.is_file() and (p.name.startswith(".tmp-") or p.parent == sidecars):
            p.unlink(missing_ok=True)


def _batch_entries(target: BackupTarget, key: str, report: RestoreReport) -> dict[str, dict]:
    """The entries of batch `key` ({} when it cannot be read: named in `problems`)."""
    try:
        return read_batch(target, key)
    except (BatchUnreadable, NotFound) as e:
        report.problems.append(f"{key}: unreadable sidecar batch ({e}); its objects' documents are read again")
        return {}


def _legacy_sidecar(target: BackupTarget, sha: str, report: RestoreReport) -> dict | None:
    """The sidecar at `objects/ab/cd/<sha>.json` (the layout before batches);
    None when it cannot be read (named in `problems`)."""
    try:
        sidecar = json.loads(target.get(sidecar_key(sha)))
        if not isinstance(sidecar, dict):
            raise ValueError("not a JSON object")
        return sidecar
    except (ValueError, UnicodeDecodeError) as e:
        report.problems.append(f"{sha}: unreadable sidecar ({e}); its document is read again")
        return None


def _restore_object(ledger: Ledger, vault: Vault, target: BackupTarget, sha: str, size: int,
                    sidecar: dict | None, *, report: RestoreReport, now: dt.datetime,
                    at: dt.datetime | None, actor: str, batch: str | None, known: bool) -> None:
    dest = vault.path(sha)
    kept = dest.exists() and vault.verify(sha)   # from the run this one resumes
    if kept:
        report.reused += 1
    else:
        _make_dir(dest.parent)
        try:
            target.get(object_key(sha), dest=dest)
            os.chmod(dest, FILE_MODE)
        except NotFound:   # listed a moment ago, gone now
            return _restore_missing(ledger, target, sha, size, sidecar, "gone from the target while restoring",
                                    report=report, now=now, at=at, actor=actor, batch=batch,
                                    known=known)
        except CorruptObject:
            pass   # the store's own checksum fails: as bytes that do not match, below
    if not kept and not vault.verify(sha):
        dest.unlink(missing_ok=True)
        return _restore_missing(ledger, target, sha, size, sidecar, "its bytes on the target do not match "
                                "their SHA-256", report=report, now=now, at=at, actor=actor, batch=batch,
                                    known=known)
    report.objects += 1
    report.bytes += dest.stat().st_size
    if sidecar is not None:
        vault.write_sidecar(sha, sidecar)
        report.sidecars += 1
    if ledger.has_object(sha):
        return
    if at is not None and sidecar and _arrived_after(sidecar, at):
        report.skipped_after_at += 1
        return
    report.recovered_documents += ledger.restore_documents(sha, size, sidecar, target=target.name,
                                                           now=utc(now), actor=actor, batch=batch,
                                                           notes=report.problems)


def _restore_missing(ledger: Ledger, target: BackupTarget, sha: str, size: int, sidecar: dict | None,
                     why: str, *, report: RestoreReport, now: dt.datetime, at: dt.datetime | None, actor: str,
                     known: bool, batch: str | None = None, manifest_at: str | None = None) -> None:
    # An original the snapshot, a sidecar or a manifest describes that did
    # not come back whole: named, and kept as a quarantined document whose
    # object is missing (unless the snapshot already has its documents),
    # so `audit ledger` on the restored copy reports it too.
    report.missing += 1
    if known:
        report.problems.append(f"{sha}: the ledger snapshot names this original, but it did not come back "
                               f"from {target.name} ({why})")
        return
    if at is not None and ((sidecar and _arrived_after(sidecar, at))
                           or (not sidecar and manifest_at and _after(manifest_at, at))):
        report.missing -= 1
        report.skipped_after_at += 1
        return
    report.problems.append(f"{sha}: described on {target.name} but did not come back ({why}); kept as a "
                           "quarantined document without its original")
    report.recovered_documents += ledger.restore_documents(sha, size, sidecar, target=target.name, now=utc(now),
                                                           actor=actor, batch=batch, missing=why,
                                                           notes=report.problems)


def _after(stamp: str, at: dt.datetime) -> bool:
    try:
        return parse_utc(stamp) > (at if at.tzinfo else at.replace(tzinfo=dt.timezone.utc))
    except ValueError:
        return False


def _arrived_after(sidecar: dict, at: dt.datetime) -> bool:
    # When its first document arrived; for an object that is no document
    # (a raw e-mail, a zip archive, a refused file), when it was first refused.
    docs, refusals = sidecar.get("documents"), sidecar.get("refusals")
    times = [d.get("received_at") for d in (docs if isinstance(docs, list) else []) if isinstance(d, dict)] or [
        r.get("at") for r in (refusals if isinstance(refusals, list) else []) if isinstance(r, dict)]
    try:
        first = min(parse_utc(t) for t in times if isinstance(t, str))
    except ValueError:
        return False
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.timezone.utc)
    return first > at
