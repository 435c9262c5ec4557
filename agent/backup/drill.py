"""The restore drill: prove that a backup target gives back what we stored.

`backup verify` re-reads objects to repair them; a drill does what a
restore would do, without touching the target or the live state: a random
sample of the originals the ledger says the target holds (with the sidecar
batches that describe them, or their own JSON sidecars in the older layout) and the newest ledger snapshot are fetched into a temporary
folder, each original is hashed against its content address, each sidecar
must be a JSON object naming that address, and the snapshot must hash to
the SHA-256 recorded when it was put, decompress, pass SQLite's
`PRAGMA integrity_check` read-only and hold the ledger's tables. The
folder is deleted afterwards. Nothing from the target is trusted: a key,
a size, a byte stream or a JSON body that is wrong is a failed drill with
a one-line reason, never an exception. Pure: `now` and the seed come in,
no threads, no sleeps; the caller schedules (`drill_due`) and reports.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import random
import secrets
import shutil
import sqlite3
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from agent.backup.base import LEDGER_PREFIX, BackupTarget, CorruptObject, object_key, sidecar_key
from agent.backup.sidecars import batch_problem
from agent.backup.snapshot import snapshot_for_restore, snapshots_of
from agent.backup.verify import reservoir_sample
from agent.config_sections import WEEKDAYS, drill_clock as _clock
from agent.errors import AgentError, NotFound
from agent.ledger import Ledger, utc
from agent.ledger.rows import parse_utc
from agent.ledger.schema import LATEST

WORK_PREFIX = ".restore-drill-"     # the temporary folder, in the caller's `work_parent`
STALE_WORK_S = 86400.0              # a drill killed half-way leaves its folder; swept after a day
# Tables every ledger has had since its first backup (migrations 1 to 7):
# a file without them is some SQLite database, not a ledger a restore can use.
LEDGER_TABLES = ("documents", "sources", "events", "deliveries", "backups", "backup_targets")
MAX_SIDECAR_BYTES = 16 << 20        # a sidecar is a few KB; a target's giant one is refused, not parsed
# A snapshot is a copy of this ledger: one that inflates past this many times
# the live file (plus room for a young ledger) is a bomb, not a ledger.
SNAPSHOT_GROWTH_LIMIT = 4
SNAPSHOT_MIN_LIMIT = 256 << 20
RETRY_FAILED_S = 3600.0             # a failed drill runs again after an hour, not a week
CLOCK_SLACK_S = 1.0


class DrillCancelled(Exception):
    """`cancelled()` said stop (the daemon is stopping): nothing was recorded."""


@dataclass
class DrillReport:
    """One drill of one target. `reasons` are one line each, the first is
    the drill's `reason`; `sample` is every original drawn, `objects` only
    those that failed."""

    target: str
    started_at: str
    seed: int
    finished_at: str | None = None
    sampled: int = 0
    failed: int = 0
    mismatch: bool = False
    snapshot: str | None = None
    snapshot_ok: bool | None = None
    reasons: list[str] = field(default_factory=list)
    objects: list[dict] = field(default_factory=list)
    sample: list[str] = field(default_factory=list)
    snapshot_checks: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return not self.reasons

    def to_row(self) -> dict:
        """The `restore_drills` row (`Ledger.record_restore_drill`)."""
        return {"target": self.target, "started_at": self.started_at, "finished_at": self.finished_at,
                "ok": self.ok, "sampled": self.sampled, "failed": self.failed, "mismatch": self.mismatch,
                "seed": self.seed, "snapshot": self.snapshot, "snapshot_ok": self.snapshot_ok,
                "reason": self.reasons[0] if self.reasons else None,
                "detail": {"reasons": self.reasons, "objects": self.objects, "sample": self.sample,
                           "snapshot": self.snapshot_checks}}

    def to_dict(self) -> dict:
        """JSON-ready form for `backup drill --json`."""
        row = self.to_row()
        return {**{k: v for k, v in row.items() if k != "detail"}, "reasons": self.reasons,
                "objects": self.objects, "sample": self.sample, "snapshot_checks": self.snapshot_checks}


def restore_drill(ledger: Ledger, target: BackupTarget, *, now: Callable[[], dt.datetime],
                  work_parent: str | Path, sample: int = 20, seed: int | None = None,
                  progress: Callable[[int, int], None] | None = None,
                  cancelled: Callable[[], bool] | None = None, actor: str = "system") -> DrillReport:
    """Drill `target` and record the result in the ledger; returns it.

    Guarantees: `sample` originals are drawn uniformly from what the ledger
    says `target` holds, by `random.Random(seed)` (a fresh seed when None,
    recorded either way, so the same seed over the same holdings draws the
    same sample); each is fetched, hashed against its name and its recorded
    size, and its sidecar checked when the ledger has one for it; the
    snapshot a restore would take (`snapshot_for_restore`; one dated after
    now fails the drill, named) is fetched, compared with the SHA-256
    recorded when it was put (when it is that one), decompressed within a
    bound, opened read-only and checked (`integrity_check`, the ledger's
    tables, a schema this code knows). A snapshot this ledger recorded but
    the target no longer lists fails the drill. Everything is fetched into
    a fresh folder under `work_parent`, deleted before returning (also
    sweeping folders of killed drills older than a day). Any failure of the
    target or of its bytes is a reason in the report (`mismatch` when bytes
    came back that are not what we stored); the drill is recorded exactly
    once, and raises only `DrillCancelled` (nothing recorded) when
    `cancelled()` turns true. `progress(done, total)` follows the objects
    and then the snapshot. `now()` is read at the start and the end.
    """
    seed = secrets.randbits(63) if seed is None else int(seed)
    report = DrillReport(target=target.name, started_at=utc(now()), seed=seed)
    work = None
    try:
        _sweep_stale(Path(work_parent), now().timestamp())
        work = Path(tempfile.mkdtemp(prefix=WORK_PREFIX, dir=work_parent))   # 0700: originals are private
        _drill(ledger, target, work, sample, report, progress, cancelled or (lambda: False))
    except DrillCancelled:
        raise
    except Exception as e:  # noqa: BLE001  a bug or a local fault still ends as a recorded, failed drill
        report.reasons.append(f"the drill itself failed: {type(e).__name__}: {e}")
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    report.finished_at = utc(now())
    ledger.record_restore_drill(report.to_row(), actor=actor)
    return report


def _drill(ledger: Ledger, target: BackupTarget, work: Path, sample: int, report: DrillReport,
           progress: Callable[[int, int], None] | None, cancelled: Callable[[], bool]) -> None:
    shas = reservoir_sample(ledger.done_backups(target.name), max(0, sample), random.Random(report.seed))
    sizes = ledger.backup_sizes(target.name, shas)
    batches = ledger.sidecar_batches(target.name, shas)
    fetched: dict[str, dict | tuple] = {}   # batch key -> its entries, or (verdict, why not)
    report.sampled, report.sample = len(shas), list(shas)
    total = len(shas) + 1
    try:
        for i, sha in enumerate(shas, 1):
            if cancelled():
                raise DrillCancelled(f"drill of {target.name} cancelled")
            problem = (_check_original(ledger, target, work, sha, sizes.get(sha), batches.get(sha) is None)
                       or batch_problem(target, sha, batches.get(sha), fetched, lambda s=sha: ledger.sidecar(s)))
            if problem:
                verdict, reason = problem
                report.failed += 1
                report.mismatch |= verdict == "mismatch"
                report.objects.append({"sha256": sha, "verdict": verdict, "reason": reason})
                report.reasons.append(f"object {sha}: {reason}")
            if progress:
                progress(i, total)
        if cancelled():
            raise DrillCancelled(f"drill of {target.name} cancelled")
        _check_snapshot(ledger, target, work, report)
    except DrillCancelled:
        raise
    except AgentError as e:  # the target as a whole: down, wrong keys, no bucket
        report.reasons.append(f"target {target.name} could not be read: {e}")
    if progress:
        progress(total, total)
    if report.failed:
        report.reasons.append(f"{report.failed} of {report.sampled} sampled objects failed; "
                              f"`fapiao-agent backup verify --full --target {target.name}` re-uploads them")


def _check_original(ledger: Ledger, target: BackupTarget, work: Path, sha: str,
                    size: int | None, own_sidecar: bool = True) -> tuple[str, str] | None:
    """None when the original (and, with `own_sidecar`, its `.json` sidecar
    of the layout before batches) came back right, else (verdict, reason)."""
    # Sizes as the target lists them (one cheap listing of the object's own
    # prefix, its sidecar included): an object grown far past what was
    # stored is judged without fetching it, so a target cannot fill the
    # local disk through the drill.
    listed = {info.key: info.size for info in target.list(object_key(sha))}
    got_listed = listed.get(object_key(sha))
    if size is not None and got_listed is not None and got_listed != size:
        return "mismatch", f"listed as {got_listed} bytes, {size} were stored (not fetched)"
    side_listed = listed.get(sidecar_key(sha))
    if side_listed is not None and side_listed > MAX_SIDECAR_BYTES:
        return "unreadable", f"its sidecar is listed as {side_listed} bytes, not a sidecar (not fetched)"
    dest = work / "object"
    try:
        target.get(object_key(sha), dest=dest)
    except NotFound:
        return "missing", "missing on the target (the ledger says it holds it)"
    except CorruptObject as e:
        return "mismatch", f"the store's own checksum fails: {e}"
    try:
        with open(dest, "rb") as f:
            got = hashlib.file_digest(f, "sha256").hexdigest()
        got_size = dest.stat().st_size
    finally:
        dest.unlink(missing_ok=True)
    if got != sha:
        return "mismatch", f"came back as {got_size} bytes hashing to {got[:16]}…, not to its name"
    if size is not None and got_size != size:
        return "mismatch", f"came back as {got_size} bytes, {size} were stored"
    if not own_sidecar or ledger.sidecar(sha) is None:
        return None  # described by a batch (checked apart), or nothing to describe it was ever put
    side_path = work / "sidecar.json"
    try:
        target.get(sidecar_key(sha), dest=side_path)
    except NotFound:
        return "missing", "its sidecar (what the documents were) is missing on the target"
    except CorruptObject as e:
        return "mismatch", f"its sidecar fails the store's own checksum: {e}"
    try:
        if side_path.stat().st_size > MAX_SIDECAR_BYTES:
            return "unreadable", f"its sidecar is {side_path.stat().st_size} bytes, not a sidecar"
        body = json.loads(side_path.read_bytes())
    except (ValueError, RecursionError) as e:
        return "unreadable", f"its sidecar is not JSON: {str(e)[:120]}"
    finally:
        side_path.unlink(missing_ok=True)
    if not isinstance(body, dict) or body.get("sha256") != sha:
        named = body.get("sha256") if isinstance(body, dict) else type(body).__name__
        return "mismatch", f"its sidecar describes another object ({str(named)[:80]!r})"
    return None


def _check_snapshot(ledger: Ledger, target: BackupTarget, work: Path, report: DrillReport) -> None:
    state = ledger.backup_target(target.name)
    recorded, recorded_sha = state.get("last_snapshot"), state.get("last_snapshot_sha256")
    sizes = {info.key: info.size for info in target.list(LEDGER_PREFIX)}
    names = snapshots_of(list(sizes), ledger.ledger_id(now=report.started_at))   # never another agent's
    # What a restore would take: the drill started `now`, and so would it.
    chosen, future = snapshot_for_restore(names, parse_utc(report.started_at))
    checks: dict = report.snapshot_checks
    checks["recorded"] = recorded
    for name in future:
        # Retention keeps it (it cannot tell a stale one from a genuine one
        # when the clock is behind), so only a person can end it.
        report.reasons.append(f"ledger snapshot {name} is dated after now (taken while a clock was ahead?): "
                              "restores pass it over and retention never deletes it; delete it from the "
                              "target if it is stale")
    if recorded and recorded not in names:
        report.snapshot_ok = False
        report.reasons.append(f"ledger snapshot {recorded}, recorded as stored, is missing on the target"
                              + (f"; a restore would take the older {chosen}" if chosen else ""))
    if chosen is None:
        report.snapshot_ok = False
        report.reasons.append("no ledger snapshot on the target: a restore would rebuild documents "
                              "from sidecars alone")
        return
    report.snapshot = chosen
    limit = _inflate_limit(ledger.path)
    if (sizes.get(chosen) or 0) > limit:   # compressed past what it may inflate to: not a ledger
        report.snapshot_ok = False
        report.reasons.append(f"ledger snapshot {chosen} is listed as {sizes[chosen]} bytes, more than a "
                              f"snapshot of this ledger can be ({limit}); not fetched")
        return
    gz = work / "snapshot.gz"
    try:
        target.get(chosen, dest=gz)
    except NotFound:
        report.snapshot_ok = False
        report.reasons.append(f"ledger snapshot {chosen} is listed but cannot be fetched")
        return
    except CorruptObject as e:
        report.snapshot_ok, report.mismatch = False, True
        report.reasons.append(f"ledger snapshot {chosen}: the store's own checksum fails: {e}")
        return
    problems = _snapshot_problems(gz, work / "snapshot.sqlite", ledger.path, checks,
                                  recorded_sha if chosen == recorded else None)
    if recorded and chosen != recorded:
        checks["note"] = "newer than the snapshot this ledger recorded; its hash is not known here"
    if any(p.startswith("hash") for p in problems):
        report.mismatch = True
    report.snapshot_ok = report.snapshot_ok is not False and not problems
    report.reasons += [f"ledger snapshot {chosen}: {p}" for p in problems]


def _snapshot_problems(gz: Path, db: Path, live: Path, checks: dict, expected_sha: str | None) -> list[str]:
    """What is wrong with the fetched snapshot `gz` (empty: nothing); `checks` gets the figures."""
    with open(gz, "rb") as f:
        got = hashlib.file_digest(f, "sha256").hexdigest()
    checks.update(sha256=got, bytes=gz.stat().st_size, expected_sha256=expected_sha)
    problems = []
    if expected_sha and got != expected_sha:
        problems.append(f"hash {got} is not the {expected_sha} recorded when it was put")
    limit = _inflate_limit(live)
    try:
        written = _gunzip(gz, db, limit)
    except (OSError, EOFError, zlib.error) as e:
        return problems + [f"not a complete gzip file ({e})"]
    except ValueError as e:
        return problems + [str(e)]
    finally:
        gz.unlink(missing_ok=True)
    checks["ledger_bytes"] = written
    try:
        conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
        try:
            rows = conn.execute("PRAGMA integrity_check").fetchall()
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        return problems + [f"integrity_check cannot run: {e}"]
    checks.update(integrity=[str(r[0]) for r in rows[:5]], schema_version=version)
    if rows != [("ok",)]:
        problems.append(f"integrity_check: {'; '.join(str(r[0]) for r in rows[:3])}")
    missing = [t for t in LEDGER_TABLES if t not in tables]
    if missing:
        problems.append(f"not a ledger: table(s) {', '.join(missing)} missing")
    if not 1 <= version <= LATEST:
        problems.append(f"schema version {version} is not one this agent knows (1 to {LATEST})")
    return problems


def _gunzip(src: Path, dest: Path, limit: int) -> int:
    """Decompress `src` into `dest` in chunks; ValueError past `limit` bytes."""
    written = 0
    with gzip.open(src, "rb") as f, open(dest, "wb") as out:
        while chunk := f.read(1 << 20):
            written += len(chunk)
            if written > limit:
                raise ValueError(f"inflates past {limit} bytes ({SNAPSHOT_GROWTH_LIMIT}x the live ledger): "
                                 "not a snapshot of it")
            out.write(chunk)
    return written


def _inflate_limit(live: Path) -> int:
    # The most bytes a snapshot of the live ledger may inflate to.
    return max(SNAPSHOT_MIN_LIMIT, SNAPSHOT_GROWTH_LIMIT * _size(live))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size + sum(p.stat().st_size for p in path.parent.glob(path.name + "-wal"))
    except OSError:
        return 0


def _sweep_stale(parent: Path, now_s: float) -> None:
    # Folders of drills killed half-way (a drill running now is younger).
    if not parent.is_dir():
        raise FileNotFoundError(f"no folder {parent} for the drill's temporary files")
    for p in parent.glob(WORK_PREFIX + "*"):
        try:
            if p.is_dir() and not p.is_symlink() and now_s - p.stat().st_mtime > STALE_WORK_S:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            continue


# -- the schedule ---------------------------------------------------------------------------------

# WEEKDAYS and the HH:MM reading are agent/config_sections.py's, which checks
# the schedule at config load without importing this module.


def last_scheduled(now: dt.datetime, weekday: str, at: str, tz: dt.tzinfo | None = None) -> dt.datetime:
    """The latest moment at or before `now` that is `weekday` `at` o'clock
    in `tz` (None: this host's local time)."""
    local = now.astimezone(tz)
    day = local.date() - dt.timedelta(days=(local.weekday() - WEEKDAYS.index(weekday)) % 7)
    moment = dt.datetime.combine(day, _clock(at), tzinfo=local.tzinfo)
    return moment if moment <= local else moment - dt.timedelta(days=7)


def drill_due(last: dict | None, first_backup_at: str | None, *, now: dt.datetime, weekday: str, at: str,
              tz: dt.tzinfo | None = None) -> bool:
    """Whether a target's scheduled drill should run now. `last`: its latest
    drill (`Ledger.last_restore_drills`), `first_backup_at`: when its
    oldest held object was put. Due when the latest scheduled moment passed
    since the last drill started; a failed drill again after RETRY_FAILED_S
    (an outage at drill time does not leave a week's warning); never
    drilled: once a scheduled moment passed while it held backups (a new
    install is drilled at its first weekly moment, an upgraded one at once).
    A last drill dated in the future (the clock went back) is due now.
    `weekday` "off": never."""
    if weekday == "off":
        return False
    moment = last_scheduled(now, weekday, at, tz)
    if last is None:
        return first_backup_at is not None and parse_utc(first_backup_at) <= moment
    started = parse_utc(last["started_at"])
    if (started - now).total_seconds() > CLOCK_SLACK_S or started < moment:
        return True
    finished = parse_utc(last.get("finished_at") or last["started_at"])
    return not last.get("ok") and (now - finished).total_seconds() >= RETRY_FAILED_S
