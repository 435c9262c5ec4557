"""The backup steps the loop repeats: mirror due objects, snapshot the ledger
(and verify a sample: agent/backup/verification.py). Pure: no threads, no
sleeps; `now` and `rng` come in.

The ledger says what each target holds; these steps make it true and
record what happened. A target that is down (`Transient`) stops the batch
so the caller waits; wrong credentials or a missing bucket (`AccessDenied`,
`BucketMissing`) pause the target instead of failing its objects.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from dataclasses import dataclass, field
from typing import Callable, Iterable

from agent.backup.base import (AccessDenied, BackupTarget, BucketMissing, ChecksumMismatch,
                               LEDGER_PREFIX, NotKept, TargetUnrecognised, manifest_key, object_key, snapshot_key)
from agent.backup.descriptions import local_sidecars
from agent.backup.identity import check_identity
from agent.backup.sidecars import put_batch
from agent.backup.snapshot import (future_snapshots, snapshot_name, snapshot_sqlite, snapshots_of,
                                   snapshots_to_delete)
from agent.backup.verification import verify_step
from agent.backup.verify import verify_object
from agent.errors import AgentError, Transient
from agent.ledger import Ledger, utc
from agent.vault import Vault

# What the daemon's backup loop (service/backup.py) imports from here: its
# every step, the verification's (verification.py) too.
__all__ = ["BATCH", "BASE_DELAY_S", "TARGET_ERRORS", "MirrorOutcome", "mirror_step", "put_snapshot", "retry_delay",
           "snapshot_step", "take_snapshot", "verify_step", "write_manifests"]

BATCH = 32
BASE_DELAY_S = 5.0
# Errors that concern the whole target, not one object: a person must act.
TARGET_ERRORS = (AccessDenied, BucketMissing, TargetUnrecognised)


@dataclass
class MirrorOutcome:
    """What one `mirror_step` did. `unavailable` (target down: wait, then call
    again) and `paused` (a person must fix the target) are error lines."""

    put: int = 0
    failed: int = 0
    enqueued: int = 0
    more: bool = False
    unavailable: str | None = None
    paused: str | None = None
    newly_paused: bool = False
    resumed: bool = False
    manifests: list[str] = field(default_factory=list)   # keys of the daily manifests rewritten


def retry_delay(attempts: int, rng: random.Random, max_s: float = 3600.0) -> float:
    """Seconds before the next try of an object after `attempts` failures:
    exponential from BASE_DELAY_S with +-20 % jitter, never above `max_s`
    (so a row due further ahead than `max_s` was set before the wall clock
    went back: `Ledger.due_backups` takes it at once)."""
    return min(max_s, BASE_DELAY_S * 2 ** min(max(attempts - 1, 0), 20) * rng.uniform(0.8, 1.2))


@dataclass
class _Job:
    sha: str                         # "": the job that writes the vault's own sidecars
    row: dict
    sidecar: dict | None             # for that job: {sha256: sidecar} of every row
    put: bool                        # False: a `done` row whose sidecar alone is stale
    size: int | None = None
    error: AgentError | None = None
    missing: bool = False
    skipped: bool = False
    read_back: bool = False          # a verification found it not kept: read it back after the put


def _transfer(vault: Vault, target: BackupTarget, job: _Job, stop: list) -> _Job:
    # One object: safe to run in the caller's threads side by side (it
    # reads the vault and puts to the target, never touches the ledger).
    if not job.sha:
        local_sidecars(vault, job.sidecar)
    elif stop:
        job.skipped = True   # the target is down or refused us: not tried, not counted
    elif job.put:
        path = vault.path(job.sha)
        try:
            job.size = path.stat().st_size
            target.put(object_key(job.sha), path, job.sha)
            if job.read_back:
                # A 200 alone proved nothing the last time for this object.
                verdict = verify_object(target, object_key(job.sha), job.sha)
                if verdict != "ok":
                    raise NotKept(f"backup target {target.name!r}: object {job.sha} put again reads back "
                                  f"{verdict}: the store does not keep what it accepts")
        except FileNotFoundError:
            job.missing = True
        except AgentError as e:
            job.error = e
            if isinstance(e, (Transient, *TARGET_ERRORS)):
                stop.append(e)
    return job


def mirror_step(ledger: Ledger, vault: Vault, target: BackupTarget, *, now: dt.datetime,
                rng: random.Random, limit: int = BATCH, retry_max_s: float = 3600.0,
                shard: tuple[int, int] = (0, 1), manifests: bool = True,
                transfer: Callable[[Callable, Iterable], Iterable] = map) -> MirrorOutcome:
    """Queue new objects for `target`, put up to `limit` due originals, then
    ONE sidecar batch describing them all (agent/backup/sidecars.py), and
    record every outcome in the ledger in one transaction.

    `transfer` is a `map` (the default: one at a time); the daemon passes
    its put pool's, so several originals are in flight. Rows already `done`
    whose documents changed since are described again in the batch (their
    original is not put again). Guarantees: a row becomes `done` only after
    its original's put and then the batch's put returned, so the target
    alone always says what every object the ledger counts as held is; the
    ledger also records which batch describes it. An object missing from or
    corrupt in the vault becomes `failed`; a `Transient` error reschedules
    that object (puts not yet started are skipped, uncounted), starts the
    target's outage (`unreachable_since`, cleared by the next success) and
    ends the step (`unavailable`); `AccessDenied`/`BucketMissing` pause the
    target without counting an attempt (`paused`); the first success
    afterwards resumes it. Originals put whose batch could not be put stay
    due (puts are idempotent, so the next step only describes them). When
    the due rows are all done and `manifests`, stale daily manifests are
    rewritten (by shard 0; the daemon spaces them out, as each rewrite
    lists the whole day: the batches already name every object). Nothing is
    put unless the target carries the identity marker the ledger remembers
    (agent/backup/identity.py): else it is paused (`TargetUnrecognised`), so
    an empty mount point is never filled. With `shard` = (index, count), only that share of the objects
    is worked on. A jump of the wall clock stalls nothing: a row due more
    than `retry_max_s` ahead is due now. Raises nothing but bugs.
    """
    stamp = utc(now)
    out = MirrorOutcome(enqueued=ledger.enqueue_backups(target.name, now=stamp))
    rows = ledger.due_backups(target.name, now=stamp, limit=limit, shard=shard, max_wait_s=retry_max_s)
    if rows or ledger.target_identity(target.name)[1] or (manifests and ledger.manifest_days(target.name)):
        # Only a round that writes, or may lift a pause, reads the marker:
        # an idle round costs nothing on the target.
        try:
            out.resumed = check_identity(ledger, target, now=now)
        except Transient as e:
            # As if the first put had met it: that object waits, the outage starts.
            first = next((r for r in rows if r["state"] != "done"), None)
            if first is None:
                ledger.backup_unreachable(target.name, str(e), now=stamp)
            else:
                delay = retry_delay(first["attempts"] + 1, rng, retry_max_s)
                ledger.backup_retry(target.name, first["sha256"], now=stamp, error=str(e), unreachable=True,
                                    next_attempt_at=utc(now + dt.timedelta(seconds=delay)))
            out.unavailable = str(e)
            return out
        except TARGET_ERRORS as e:
            out.paused = str(e)
            out.newly_paused = ledger.pause_backup_target(target.name, out.paused, now=stamp)
            return out
    unkept = ledger.unverified_among(target.name, [r["sha256"] for r in rows if r["state"] != "done"])
    jobs = [_Job(r["sha256"], r, ledger.sidecar(r["sha256"]), r["state"] != "done", read_back=r["sha256"] in unkept)
            for r in rows]
    # The vault's own sidecars are one more job, the first: written (two
    # filesystem syncs for all) while the originals are in flight.
    local = _Job("", {}, {j.sha: j.sidecar for j in jobs}, put=False)
    stop: list = []
    finished = list(transfer(lambda job: _transfer(vault, target, job, stop), [local, *jobs]))[1:]
    described = [j for j in finished if not (j.skipped or j.missing or j.error)]
    for job in finished:
        if job.missing or isinstance(job.error, ChecksumMismatch):
            why = "not in the vault" if job.missing else f"vault copy is corrupt: {job.error}"
            ledger.backup_retry(target.name, job.sha, now=stamp, error=why, next_attempt_at=None, failed=True)
            out.failed += 1
        elif isinstance(job.error, TARGET_ERRORS):
            out.paused = out.paused or str(job.error)
        elif job.error is not None:
            delay = retry_delay(job.row["attempts"] + 1, rng, retry_max_s)
            down = isinstance(job.error, Transient)
            ledger.backup_retry(target.name, job.sha, now=stamp, error=str(job.error), unreachable=down,
                                next_attempt_at=utc(now + dt.timedelta(seconds=delay)))
            if down:
                out.unavailable = out.unavailable or str(job.error)
            else:
                out.failed += 1
    if described:
        try:
            key = put_batch(target, [(j.sha, j.size if j.put else j.row["size"], j.sidecar)
                                     for j in described], now=now)
        except TARGET_ERRORS as e:
            out.paused = out.paused or str(e)
        except AgentError as e:
            # Not described, so not held: the rows stay due as they were.
            ledger.backup_unreachable(target.name, str(e), now=stamp)
            out.unavailable = out.unavailable or str(e)
        else:
            done = [(j.sha, j.size) for j in described if j.put]
            ledger.clear_unverified(target.name, [j.sha for j in described if j.read_back])
            out.resumed = out.resumed or ledger.backups_done(target.name, done, now=stamp, batch=key,
                                              refreshed=[j.sha for j in described if not j.put],
                                              day=now.astimezone(dt.timezone.utc).date().isoformat())
            out.put = len(done)
    if out.paused:   # after any resume above: a pause met in this step stands
        out.newly_paused = ledger.pause_backup_target(target.name, out.paused, now=stamp)
        out.resumed = False
    if out.paused or out.unavailable:
        return out
    out.more = len(rows) == limit
    if manifests and not out.more and shard[0] == 0:
        out.manifests = write_manifests(ledger, target, now=now)
    return out


def write_manifests(ledger: Ledger, target: BackupTarget, *, now: dt.datetime) -> list[str]:
    """Rewrite `manifests/YYYY-MM-DD.json` for each day the target received
    objects since the last call; returns the keys written. Each manifest
    lists every object added that day (sha256, size, at). Errors from the
    target propagate except `Transient`, which leaves the days stale for
    the next call."""
    days = ledger.manifest_days(target.name)
    written = []
    for day in days:
        body = ledger.manifest_json(target.name, day)
        key = manifest_key(dt.date.fromisoformat(day))
        try:
            target.put(key, body, hashlib.sha256(body).hexdigest())
        except (Transient, *TARGET_ERRORS):
            break
        written.append(day)
    ledger.clear_manifest_days(target.name, written, now=utc(now))
    return [manifest_key(dt.date.fromisoformat(d)) for d in written]


def take_snapshot(ledger: Ledger, *, now: dt.datetime) -> tuple[int, bytes]:
    """(the newest event id it holds at least, gzip bytes of a consistent
    copy of the ledger): the event id is read first, so an event written
    meanwhile is counted for the next snapshot, never lost. It holds the
    ledger's id (made now if none), so even the first snapshot restores as
    the ledger the targets' markers name. Errors propagate (`Transient`, `SnapshotError`)."""
    ledger.ledger_id(now=utc(now))
    held = ledger.last_event_id()
    return held, snapshot_sqlite(ledger.path)


def put_snapshot(ledger: Ledger, target: BackupTarget, held: int, data: bytes, *, now: dt.datetime,
                 retention: dict | None = None, prune: bool = True, future: list[str] | None = None) -> str:
    """Put `data` (from `take_snapshot`) under `ledger/` on `target`, named
    with this ledger's id (never another agent's key), then, with `prune`,
    delete this ledger's snapshots retention no longer needs (`retention`:
    hourly_days, daily_days, monthly_years); record it as the target's last
    snapshot, holding events up to `held`. Returns the key put. Target errors
    propagate (`Transient`, `Permanent`; `TargetUnrecognised` when the target
    is not the one the ledger's rows describe: nothing is put); nothing is recorded then.
    With `prune` and a `future` list, this ledger's snapshots dated after
    now (`future_snapshots`: taken while a clock was ahead, or this clock is
    behind) are appended to it: retention keeps them and restores pass
    them over, so the caller names them to a person."""
    check_identity(ledger, target, now=now)
    key = snapshot_key(snapshot_name(now, me := ledger.ledger_id(now=utc(now))))
    sha256 = hashlib.sha256(data).hexdigest()
    target.put(key, data, sha256)
    if prune:
        names = snapshots_of([info.key for info in target.list(LEDGER_PREFIX)], me)
        for old in snapshots_to_delete(names, now, **(retention or {})):
            target.delete(old)
        if future is not None:
            future += future_snapshots(names, now)
    ledger.record_backup_snapshot(target.name, key, now=utc(now), event_id=held, sha256=sha256)
    return key


def snapshot_step(ledger: Ledger, target: BackupTarget, *, now: dt.datetime,
                  retention: dict | None = None, future: list[str] | None = None) -> str:
    """Put a consistent gzip snapshot of the ledger under `ledger/`, then delete
    the snapshots retention no longer needs (`retention`: hourly_days,
    daily_days, monthly_years; future-dated ones kept are appended to
    `future`, see `put_snapshot`). Returns the key put. Target and snapshot
    errors propagate (`Transient`, `Permanent`)."""
    held, data = take_snapshot(ledger, now=now)   # an event written meanwhile waits for the next one
    return put_snapshot(ledger, target, held, data, now=now, retention=retention, future=future)


