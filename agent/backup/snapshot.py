"""Consistent, compressed ledger snapshots, their names, and their retention.

A snapshot is taken with SQLite's online backup API, which copies a single
consistent state of the database while the agent keeps writing (WAL
readers do not block the writer). Names carry the UTC time, so sorting the
names sorts the snapshots. Retention is a pure function of the names and
`now`: the job that deletes old snapshots can be tested without a clock.
"""

from __future__ import annotations

import datetime as dt
import gzip
import os
import re
import sqlite3
import tempfile
import zlib
from pathlib import Path

from agent.errors import ConfigError, Permanent, Transient
from agent.fsutil import fsync_dir

# The ledger id after the time (`Ledger.ledger_id`) keeps two agents that
# write to one target (a copied config) from putting one snapshot key; names
# from before it (no id) stay readable.
_NAME_RE = re.compile(r"(?:.*/)?ledger-(\d{8}T\d{6}Z)(?:-([0-9a-f]{1,64}))?\.sqlite\.gz")
_NAME_FORMAT = "%Y%m%dT%H%M%SZ"


class SnapshotError(Permanent):
    """The ledger file is missing, not SQLite, or fails its integrity check."""


def snapshot_sqlite(db_path: str | os.PathLike) -> bytes:
    """A gzip-compressed copy of the SQLite database at `db_path`, consistent
    as of one instant even while other connections write.

    The copy is made through the online backup API into a temp file, passes
    `PRAGMA quick_check`, and is returned as gzip bytes (mtime 0, so equal
    databases give equal bytes). The database is never created or modified.
    Raises `SnapshotError` for a missing or non-SQLite file, `Transient`
    when it stays locked by a writer in rollback-journal mode.
    """
    path = Path(db_path)
    if not path.is_file():
        raise SnapshotError(f"ledger {path} does not exist")
    with tempfile.TemporaryDirectory(prefix="ledger-snapshot-") as tmpdir:
        copy_path = Path(tmpdir) / "ledger.sqlite"
        try:
            src = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=10)
            try:
                dst = sqlite3.connect(copy_path)
                try:
                    src.backup(dst)
                    _quick_check(dst, f"snapshot of {path}")
                    # The copy stays a single self-contained file.
                    dst.execute("PRAGMA journal_mode=DELETE")
                finally:
                    dst.close()
            finally:
                src.close()
        except sqlite3.OperationalError as e:
            if "locked" in str(e) or "busy" in str(e):
                raise Transient(f"ledger {path} is locked: {e}") from e
            raise SnapshotError(f"cannot snapshot ledger {path}: {e}") from e
        except sqlite3.DatabaseError as e:
            raise SnapshotError(f"cannot snapshot ledger {path}: {e}") from e
        return gzip.compress(copy_path.read_bytes(), compresslevel=6, mtime=0)


def restore_sqlite(snapshot: bytes, dest_path: str | os.PathLike) -> None:
    """Write the database inside `snapshot` (from `snapshot_sqlite`) to `dest_path`.

    All or nothing: decompressed to a temp file beside `dest_path`, checked
    with `PRAGMA quick_check`, fsynced, then renamed over `dest_path`, mode 0640.
    Raises `SnapshotError` when the bytes are not a gzip'd, sound database.
    """
    dest = Path(dest_path)
    try:
        raw = gzip.decompress(snapshot)
    except (OSError, EOFError, zlib.error) as e:
        raise SnapshotError(f"ledger snapshot is not valid gzip: {e}") from e
    fd, tmp_name = tempfile.mkstemp(prefix=f".tmp-{dest.name}.", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, 0o640)  # like the live ledger: the agent's group may read it
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        try:
            conn = sqlite3.connect(tmp)
            try:
                _quick_check(conn, "restored ledger snapshot")
            finally:
                conn.close()
        except sqlite3.DatabaseError as e:
            raise SnapshotError(f"restored ledger snapshot is not a database: {e}") from e
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(dest.parent)


def _quick_check(conn: sqlite3.Connection, what: str) -> None:
    rows = conn.execute("PRAGMA quick_check").fetchall()
    if rows != [("ok",)]:
        raise SnapshotError(f"{what} fails quick_check: {rows[:3]}")


def _utc(moment: dt.datetime) -> dt.datetime:
    """`moment` in UTC; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(dt.timezone.utc)


def snapshot_name(now: dt.datetime, ledger: str | None = None) -> str:
    """`ledger-YYYYMMDDTHHMMSSZ-<ledger>.sqlite.gz` for `now` in UTC (naive =
    UTC) and the id of the ledger it is a snapshot of (lowercase hex; without
    one, the name of versions before ledger ids).

    Names sort in time order; `parse_snapshot_time` inverts this, and
    `snapshot_ledger` gives the ledger back. No two ledgers share a name.
    """
    if ledger is not None and not re.fullmatch(r"[0-9a-f]{1,64}", ledger):
        raise ValueError(f"a ledger id is lowercase hex, not {ledger!r}")
    return f"ledger-{_utc(now).strftime(_NAME_FORMAT)}{'-' + ledger if ledger else ''}.sqlite.gz"


def snapshot_ledger(name: str) -> str | None:
    """The ledger id in a snapshot name or key; None for a name without one
    (from before ledger ids) or not a snapshot name."""
    m = _NAME_RE.fullmatch(name)
    return m.group(2) if m else None


def snapshots_of(names: list[str], ledger: str | None) -> list[str]:
    """`names` without the snapshots of ledgers other than `ledger`, in their
    order (names without a ledger id, from before ids, were written by the
    one agent the target's marker let write, and stay); all of them when
    `ledger` is None. Another agent's snapshots sharing the folder are then
    never restored, drilled or deleted by retention in its place."""
    if ledger is None:
        return list(names)
    return [n for n in names if snapshot_ledger(n) in (None, ledger)]


def parse_snapshot_time(name: str) -> dt.datetime | None:
    """The UTC time in a snapshot name or key (`ledger/...` allowed), else None."""
    m = _NAME_RE.fullmatch(name)
    if not m:
        return None
    d = m.group(1)
    try:  # slicing, not strptime: retention parses every name on every run
        return dt.datetime(int(d[0:4]), int(d[4:6]), int(d[6:8]), int(d[9:11]), int(d[11:13]),
                           int(d[13:15]), tzinfo=dt.timezone.utc)
    except ValueError:
        return None


def snapshot_at(names: list[str], at: dt.datetime | None = None) -> str | None:
    """The newest snapshot name taken at or before `at` (the newest of all
    when `at` is None); None when there is none. Other names are ignored."""
    limit = _utc(at) if at is not None else None
    best: tuple[dt.datetime, str] | None = None
    for name in names:
        t = parse_snapshot_time(name)
        if t is None or (limit is not None and t > limit):
            continue
        if best is None or t > best[0]:
            best = (t, name)
    return best[1] if best else None


# A snapshot dated more than this after `now` was taken while some clock was
# ahead (a bad RTC, an NTP step): restores pass it over. The slack covers a
# restore host whose clock is a little behind the daemon's.
FUTURE_SLACK = dt.timedelta(hours=1)


def future_snapshots(names: list[str], now: dt.datetime,
                     slack: dt.timedelta = FUTURE_SLACK) -> list[str]:
    """The snapshot names dated more than `slack` after `now` (naive = UTC),
    in their input order. Retention keeps them (`snapshots_to_delete`) and
    `snapshot_for_restore` passes them over: callers name them to a person."""
    limit = _utc(now) + slack
    return [n for n in names if (t := parse_snapshot_time(n)) is not None and t > limit]


def snapshot_for_restore(names: list[str], now: dt.datetime, at: dt.datetime | None = None,
                         slack: dt.timedelta = FUTURE_SLACK) -> tuple[str | None, list[str]]:
    """(the snapshot a restore takes, the future-dated ones it passed over).

    With `at`: the newest at or before `at`, whatever `now` is (a person
    asked for that time). Without: the newest, leaving out those
    `future_snapshots` names whenever another one exists: a single
    snapshot taken while the clock was years ahead would otherwise be
    every later restore's source, older than all genuine ones. When only
    future-dated ones exist, the newest is taken and none is reported
    passed over (this host's clock may be the one behind)."""
    if at is not None:
        return snapshot_at(names, at), []
    future = future_snapshots(names, now, slack)
    chosen = snapshot_at([n for n in names if n not in future])
    if chosen is None:
        return snapshot_at(names), []
    return chosen, future


def snapshots_to_delete(names: list[str], now: dt.datetime, hourly_days: int = 2,
                        daily_days: int = 60, monthly_years: int = 2) -> list[str]:
    """The snapshot names retention no longer needs, in their input order.

    Kept: the newest snapshot not after `now`; for snapshots younger than
    `hourly_days`, the newest of each UTC hour; younger than `daily_days`,
    the newest of each UTC day; younger than `monthly_years` calendar years,
    the newest of each UTC month. Snapshots dated after `now` (clock skew)
    and names that are not snapshot names are never returned: whether such
    a snapshot is genuine (this clock is behind) or stale (it was taken
    while a clock was ahead) cannot be told from names; `future_snapshots`
    names them for a person, and restores pass them over. Because the
    newest of a month is also the newest of its day and hour, a snapshot
    kept by a coarser rule is never deleted by an earlier run.
    Raises `ConfigError` for a negative period.
    """
    for label, value in (("hourly_days", hourly_days), ("daily_days", daily_days),
                         ("monthly_years", monthly_years)):
        if value < 0:
            raise ConfigError(f"snapshot retention {label} must not be negative, not {value}")
    now = _utc(now)
    dated = [(t, n) for n in names if (t := parse_snapshot_time(n)) is not None]
    if not dated:
        return []
    past = [(t, n) for t, n in dated if t <= now]
    # The newest snapshot that is not from the future is the one a restore needs.
    keep: set[str] = {max(past)[1]} if past else set()
    months_limit = 12 * monthly_years
    newest_in: dict[tuple, tuple[dt.datetime, str]] = {}
    for t, name in dated:
        if t > now:
            keep.add(name)
            continue
        age = now - t
        months_old = (now.year - t.year) * 12 + (now.month - t.month)
        buckets = []
        if age < dt.timedelta(days=hourly_days):
            buckets.append(("h", t.year, t.month, t.day, t.hour))
        if age < dt.timedelta(days=daily_days):
            buckets.append(("d", t.year, t.month, t.day))
        if months_old < months_limit:
            buckets.append(("m", t.year, t.month))
        for b in buckets:
            if b not in newest_in or t > newest_in[b][0]:
                newest_in[b] = (t, name)
    keep.update(name for _, name in newest_in.values())
    ours = {n for _, n in dated}
    return [n for n in names if n in ours and n not in keep]
