"""Ledger snapshots are consistent while written to, restorable, and retained by a pure rule."""

from __future__ import annotations

import datetime as dt
import gzip
import random
import sqlite3

import pytest

from agent.backup.base import object_key, sha256_of_object_key, sidecar_key, snapshot_key, manifest_key
from agent.backup.snapshot import (SnapshotError, parse_snapshot_time, restore_sqlite,
                                   snapshot_at, snapshot_ledger, snapshot_name, snapshot_sqlite,
                                   snapshots_of, snapshots_to_delete)
from agent.backup.verify import sample_keys
from agent.errors import ConfigError, Permanent

UTC = dt.timezone.utc


def _ledger(path, rows: int) -> sqlite3.Connection:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE doc (id INTEGER PRIMARY KEY, sha TEXT, state TEXT)")
    conn.executemany("INSERT INTO doc (sha, state) VALUES (?, 'captured')",
                     [(f"{i:064x}",) for i in range(rows)])
    conn.commit()
    return conn


def test_snapshot_sees_committed_rows_and_not_an_open_transaction(tmp_path):
    db = tmp_path / "ledger.sqlite"
    writer = _ledger(db, 500)
    writer.execute("BEGIN")
    writer.execute("DELETE FROM doc WHERE id > 100")
    writer.execute("INSERT INTO doc (sha, state) VALUES ('x', 'uncommitted')")
    snap = snapshot_sqlite(db)
    writer.rollback()
    writer.close()

    restored = tmp_path / "restored.sqlite"
    restore_sqlite(snap, restored)
    conn = sqlite3.connect(restored)
    assert conn.execute("SELECT count(*) FROM doc").fetchone() == (500,)
    assert conn.execute("SELECT count(*) FROM doc WHERE state = 'uncommitted'").fetchone() == (0,)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    conn.close()


def test_snapshot_includes_wal_content_not_yet_checkpointed(tmp_path):
    db = tmp_path / "ledger.sqlite"
    writer = _ledger(db, 10)
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("UPDATE doc SET state = 'delivered' WHERE id <= 7")
    writer.commit()
    assert (tmp_path / "ledger.sqlite-wal").stat().st_size > 0
    restored = tmp_path / "r.sqlite"
    restore_sqlite(snapshot_sqlite(db), restored)
    got = sqlite3.connect(restored).execute(
        "SELECT count(*) FROM doc WHERE state = 'delivered'").fetchone()
    writer.close()
    assert got == (7,)


def test_snapshot_is_gzip_and_deterministic(tmp_path):
    db = tmp_path / "ledger.sqlite"
    _ledger(db, 50).close()
    a, b = snapshot_sqlite(db), snapshot_sqlite(db)
    assert a == b
    assert gzip.decompress(a)[:16] == b"SQLite format 3\x00"


def test_snapshot_never_creates_a_missing_ledger(tmp_path):
    with pytest.raises(SnapshotError, match="does not exist"):
        snapshot_sqlite(tmp_path / "absent.sqlite")
    assert not (tmp_path / "absent.sqlite").exists()


def test_snapshot_of_a_non_database_is_a_snapshot_error(tmp_path):
    bogus = tmp_path / "ledger.sqlite"
    bogus.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(SnapshotError):
        snapshot_sqlite(bogus)


def test_restore_refuses_garbage_and_leaves_the_destination_alone(tmp_path):
    dest = tmp_path / "ledger.sqlite"
    dest.write_bytes(b"keep me")
    with pytest.raises(SnapshotError):
        restore_sqlite(b"not gzip", dest)
    with pytest.raises(SnapshotError):
        restore_sqlite(gzip.compress(b"gzip but not sqlite" * 200), dest)
    assert dest.read_bytes() == b"keep me"
    assert [p.name for p in tmp_path.iterdir()] == ["ledger.sqlite"]


def test_names_sort_by_time_and_parse_back():
    t1 = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    t2 = dt.datetime(2026, 1, 2, 12, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=8)))  # 04:04 UTC
    n1, n2 = snapshot_name(t1), snapshot_name(t2)
    assert n1 == "ledger-20260102T030405Z.sqlite.gz"
    assert n1 < n2
    assert parse_snapshot_time(n2) == t2
    assert parse_snapshot_time(snapshot_key(n1)) == t1
    assert parse_snapshot_time("ledger-garbage.sqlite.gz") is None
    assert parse_snapshot_time("ledger-20261399T000000Z.sqlite.gz") is None
    assert snapshot_name(dt.datetime(2026, 1, 2, 3, 4, 5)) == n1  # naive means UTC


def test_snapshot_at_picks_the_newest_not_after_the_time():
    names = [snapshot_name(dt.datetime(2026, 5, d, tzinfo=UTC)) for d in (1, 3, 2)] + ["junk"]
    assert snapshot_at(names) == snapshot_name(dt.datetime(2026, 5, 3, tzinfo=UTC))
    assert snapshot_at(names, dt.datetime(2026, 5, 2, 12, tzinfo=UTC)) == names[2]
    assert snapshot_at(names, dt.datetime(2026, 4, 30, tzinfo=UTC)) is None


def _hourly(start: dt.datetime, hours: int, every_minutes: int = 60) -> list[str]:
    step = dt.timedelta(minutes=every_minutes)
    return [snapshot_name(start + i * step) for i in range(hours * 60 // every_minutes)]


def test_retention_keeps_hourly_then_daily_then_monthly():
    now = dt.datetime(2026, 11, 29, 12, 30, tzinfo=UTC)
    names = [snapshot_name(now - dt.timedelta(hours=i)) for i in range(800 * 24)]
    doomed = set(snapshots_to_delete(names, now))
    kept = [parse_snapshot_time(n) for n in names if n not in doomed]
    two_days, sixty_days = dt.timedelta(days=2), dt.timedelta(days=60)
    assert len([t for t in kept if now - t < two_days]) == 48  # every hour of the last 2 days
    older = [t for t in kept if now - t >= two_days]
    assert all(t.hour == 23 for t in older)  # the newest of its day
    daily = [t for t in older if now - t < sixty_days]
    assert len({t.date() for t in daily}) == len(daily) == 58
    monthly = [t for t in older if now - t >= sixty_days]
    assert len({(t.year, t.month) for t in monthly}) == len(monthly)
    assert min(monthly) == dt.datetime(2024, 12, 31, 23, 30, tzinfo=UTC)  # 2 calendar years
    assert len(doomed) == len(names) - len(kept)


def test_retention_is_stable_when_run_every_hour():
    start = dt.datetime(2026, 1, 1, tzinfo=UTC)
    alive: list[str] = []
    for hour in range(24 * 70):  # crosses a month end and the 60-day boundary
        now = start + dt.timedelta(hours=hour)
        alive.append(snapshot_name(now))
        doomed = set(snapshots_to_delete(alive, now))
        alive = [n for n in alive if n not in doomed]
    # Running as a job gives the same set as one run over everything.
    everything = _hourly(start, 24 * 70)
    once = set(everything) - set(snapshots_to_delete(everything, now))
    assert set(alive) == once


def test_retention_never_deletes_foreign_names_future_or_the_newest():
    now = dt.datetime(2026, 11, 29, tzinfo=UTC)
    ancient = snapshot_name(now - dt.timedelta(days=5000))
    future = snapshot_name(now + dt.timedelta(days=3))
    names = ["ledger/notes.txt", ancient, future, "other"]
    assert snapshots_to_delete(names, now) == []  # ancient is the newest non-future one
    older = snapshot_name(now - dt.timedelta(days=6000))
    assert snapshots_to_delete(names + [older], now) == [older]
    assert snapshots_to_delete([], now) == []


def test_retention_accepts_keys_and_shorter_periods():
    now = dt.datetime(2026, 11, 29, 12, tzinfo=UTC)
    keys = [snapshot_key(n) for n in _hourly(now - dt.timedelta(days=3), 3 * 24)]
    doomed = snapshots_to_delete(keys, now, hourly_days=0, daily_days=0, monthly_years=0)
    assert doomed == keys[:-1]
    with pytest.raises(ConfigError):
        snapshots_to_delete(keys, now, daily_days=-1)


def test_key_layout():
    digest = "ab" + "cd" + "0" * 60
    assert object_key(digest) == f"objects/ab/cd/{digest}"
    assert sidecar_key(digest) == f"objects/ab/cd/{digest}.json"
    assert manifest_key(dt.date(2026, 11, 9)) == "manifests/2026-11-09.json"
    assert sha256_of_object_key(object_key(digest)) == digest
    assert sha256_of_object_key(sidecar_key(digest)) == digest
    assert sha256_of_object_key(f"objects/ab/ce/{digest}") is None
    assert sha256_of_object_key("ledger/x") is None
    with pytest.raises(Permanent):
        object_key("AB" + "0" * 62)


def test_sample_keys_size_and_uniqueness():
    keys = [f"k{i}" for i in range(5000)]
    got = sample_keys(keys, rng=random.Random(1))
    assert len(got) == 50 and len(set(got)) == 50 and set(got) <= set(keys)
    assert len(sample_keys(keys[:300], rng=random.Random(1))) == 20
    assert sorted(sample_keys(keys[:7])) == sorted(keys[:7])
    assert sample_keys(keys, rng=random.Random(2)) == sample_keys(keys, rng=random.Random(2))
    assert sample_keys([], minimum=20) == []
    with pytest.raises(ConfigError):
        sample_keys(keys, fraction=1.5)


def test_names_carry_the_ledger_id_and_names_without_one_stay_readable():
    t = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    mine, other, old = snapshot_name(t, "ab12"), snapshot_name(t, "cd34"), snapshot_name(t)
    assert mine == "ledger-20260102T030405Z-ab12.sqlite.gz" and old == "ledger-20260102T030405Z.sqlite.gz"
    assert mine != other     # two ledgers never share a key, even in the same second
    assert parse_snapshot_time("ledger/" + mine) == parse_snapshot_time(old) == t
    assert (snapshot_ledger("ledger/" + mine), snapshot_ledger(old), snapshot_ledger("junk")) == ("ab12", None, None)
    names = [mine, other, old, "junk"]
    assert snapshots_of(names, "ab12") == [mine, old, "junk"]   # not a snapshot: callers pass it over
    assert snapshots_of(names, None) == names
    with pytest.raises(ValueError):
        snapshot_name(t, "../x")
    # Retention over one ledger's names never sees the other's.
    later = [snapshot_name(t + dt.timedelta(minutes=m), "cd34") for m in range(1, 4)]
    assert other not in snapshots_to_delete(snapshots_of([mine, other, *later], "ab12"), t)
