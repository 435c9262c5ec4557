"""Folder watching helpers: ignore rules, network-share detection, settling."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from agent.config import WatchConfig
from service.watch import FolderWatcher
from service.watch_names import mount_fs_type, should_poll, system_name, temporary_name

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:35 / /srv/scans rw,relatime shared:20 - cifs //nas/scans rw,vers=3.0
41 22 0:36 / /srv/scans/local rw,relatime shared:21 - ext4 /dev/sdb1 rw
42 22 0:37 / /mnt/my\\040share rw,relatime - nfs4 nas:/export rw
"""


@pytest.mark.parametrize("name", ["~$report.pdf", ".~lock.a.pdf#", "a.part", "a.tmp", "a.crdownload",
                                  ".hidden.pdf"])
def test_temporary_looking_names_are_recognised(name):
    assert temporary_name(name) and not system_name(name)


@pytest.mark.parametrize("name", [".DS_Store", "Thumbs.db", "desktop.ini"])
def test_system_files_are_recognised(name):
    assert system_name(name) and not temporary_name(name)


@pytest.mark.parametrize("name", ["发票.pdf", "scan 001.PDF", "a.ofd", "invoice.xml", "IMG_1.jpg"])
def test_invoice_files_are_neither(name):
    assert not temporary_name(name) and not system_name(name)


def test_mount_type_uses_the_longest_matching_mount_point():
    assert mount_fs_type(Path("/srv/scans/dept/a.pdf"), MOUNTINFO) == "cifs"
    assert mount_fs_type(Path("/srv/scans/local/x"), MOUNTINFO) == "ext4"
    assert mount_fs_type(Path("/srv/scansX"), MOUNTINFO) == "ext4"
    assert mount_fs_type(Path("/mnt/my share/in"), MOUNTINFO) == "nfs4"


def test_network_shares_are_polled_unless_config_says_otherwise():
    poll, why = should_poll(WatchConfig(path=Path("/srv/scans")), MOUNTINFO)
    assert poll and "network share (cifs)" in why
    assert should_poll(WatchConfig(path=Path("/srv/scans"), poll=False), MOUNTINFO)[0] is False
    assert should_poll(WatchConfig(path=Path("/srv/scans/local")), MOUNTINFO)[0] is False
    assert should_poll(WatchConfig(path=Path("/srv/scans/local"), poll=True), MOUNTINFO)[0] is True


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_a_file_is_ready_only_after_settling_or_closing(tmp_path):
    clock = FakeClock()
    w = FolderWatcher([WatchConfig(path=tmp_path, settle_seconds=2.0)], wake=lambda: None, clock=clock)
    f = tmp_path / "a.pdf"
    f.write_bytes(b"1")
    w.note(f)
    assert w.ready() == []          # first sight: size recorded
    clock.t = 1.0
    with open(f, "ab") as out:
        out.write(b"2")
    os.utime(f, ns=(1, 10**9))
    assert w.ready() == []          # changed: the clock restarts
    clock.t = 2.5
    assert w.ready() == []
    clock.t = 3.1
    assert w.ready() == [f]
    w.done(f)
    g = tmp_path / "b.pdf"
    g.write_bytes(b"x")
    w.note(g, closed=True)
    assert w.ready() == [g]          # closed after writing: ready at once


def test_scan_skips_only_the_agents_own_processed_folders(tmp_path):
    rels = ["a.pdf", "dept/b.pdf", "@eaDir/c.pdf", ".stversions/d.pdf", "processed/2026-01-01/e.pdf",
            "processed/f.pdf", "tmp/g.pdf", "cur/h.pdf", "i.tmp", "dept/.j.pdf"]
    for rel in rels:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    (tmp_path / "link").symlink_to(tmp_path / "dept", target_is_directory=True)
    for after, skipped in (("keep", []), ("delete", []), ("move", ["processed/2026-01-01/e.pdf"])):
        watch = WatchConfig(path=tmp_path, after=after)
        names = sorted(p.relative_to(tmp_path).as_posix() for p in FolderWatcher.files_under(tmp_path, watch))
        assert names == sorted(set(rels) - set(skipped) | {"link"}), after


def test_likely_invoices_come_before_junk_and_folders_take_turns(tmp_path):
    # Names lie, so this only orders: every file is still handed out.
    w = FolderWatcher([WatchConfig(path=tmp_path)], wake=lambda: None, clock=FakeClock())
    files = {"flood/e1.pdf": b"", "flood/e2.pdf": b"", "flood/tiny.pdf": b"x" * 10,
             "flood/notes.dat": b"n" * 500, "flood/a.pdf": b"%PDF" * 100, "flood/b.pdf": b"%PDF" * 100,
             "dept/c.ofd": b"PK" * 100}
    for rel, data in files.items():
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        (tmp_path / rel).write_bytes(data)
        w.note(tmp_path / rel, closed=True)
    got = [p.relative_to(tmp_path).as_posix() for p in w.ready()]
    assert got[:3] == ["flood/a.pdf", "dept/c.ofd", "flood/b.pdf"]  # one folder's backlog does not hold up another
    assert got[3] == "flood/notes.dat"
    assert sorted(got[4:]) == ["flood/e1.pdf", "flood/e2.pdf", "flood/tiny.pdf"]


def test_a_file_handed_out_and_not_done_is_handed_out_again_first(tmp_path):
    w = FolderWatcher([WatchConfig(path=tmp_path)], wake=lambda: None, clock=FakeClock())
    paths = [tmp_path / f"{i}.pdf" for i in range(5)]
    for p in paths:
        p.write_bytes(b"%PDF" * 100)
        w.note(p, closed=True)
    first = w.ready(2)
    assert first == paths[:2]
    w.done(first[0])
    assert w.ready(2) == [paths[1], paths[2]]  # intake stopped before paths[1]: it comes first
    assert w.pending_count == 4


def test_a_rescan_does_not_push_a_waiting_file_back(tmp_path):
    clock = FakeClock()
    w = FolderWatcher([WatchConfig(path=tmp_path, settle_seconds=1.0)], wake=lambda: None, clock=clock)
    a, b = tmp_path / "a.pdf", tmp_path / "b.pdf"
    for p in (a, b):
        p.write_bytes(b"%PDF" * 100)
    w.scan()
    assert w.ready() == []
    clock.t = 1.1
    w.scan()  # the files are known: nothing restarts
    assert sorted(w.ready()) == [a, b]


def test_a_file_noted_by_many_events_is_looked_at_once(tmp_path, monkeypatch):
    # A file written in many chunks raises an event for each: only its
    # latest note is looked at (one lstat), not every stale one.
    w = FolderWatcher([WatchConfig(path=tmp_path)], wake=lambda: None, clock=FakeClock())
    f = tmp_path / "a.pdf"
    f.write_bytes(b"%PDF-1.4 " + b"x" * 200)
    looked: list[Path] = []
    real_lstat = os.lstat

    def counting_lstat(path, *args, **kwargs):
        looked.append(Path(path))
        return real_lstat(path, *args, **kwargs)
    monkeypatch.setattr(os, "lstat", counting_lstat)
    for _ in range(100):
        w.note(f)
    w.note(f, closed=True)
    assert w.ready() == [f]
    assert looked.count(f) == 1


def test_a_held_file_comes_back_once_unchanged_for_the_hold_or_settles_anew_when_it_changes(tmp_path):
    clock = FakeClock()
    w = FolderWatcher([WatchConfig(path=tmp_path, kind="email", settle_seconds=0.5)], wake=lambda: None,
                      clock=clock)
    f = tmp_path / "a.eml"
    f.write_bytes(b"half")
    w.note(f, closed=True)
    assert w.ready() == [f]
    w.hold(f, 30.0)                      # intake: not complete yet
    assert w.pending_count == 1
    clock.t = 1.0
    assert w.ready() == []               # not handed out again at once, closed or not
    clock.t = 29.0
    assert w.ready() == []
    clock.t = 31.0
    assert w.ready() == [f]              # unchanged for the hold: taken as it is
    w.hold(f, 30.0)
    clock.t = 32.0
    f.write_bytes(b"half and the rest")  # its writer is back: the hold ends, the file settles anew
    w.note(f, closed=True)
    assert w.ready() == [f]


def grow(w: FolderWatcher, clock: FakeClock, path: Path, seconds) -> None:
    """At each of `seconds`, append to `path` (its mtime that second) and
    let `w` look; whatever it hands out meanwhile is done."""
    for t in seconds:
        clock.t = float(t)
        with open(path, "ab") as out:
            out.write(b"2")
        os.utime(path, ns=(t * 10**9, t * 10**9))
        for ready in w.ready():
            w.done(ready)


def test_a_file_that_never_settles_is_named_with_how_long_and_why(tmp_path):
    # A writer that never stops (a file growing, or touched, forever) never
    # makes its file ready: the watcher must be able to say so, and how long.
    clock = FakeClock()
    w = FolderWatcher([WatchConfig(path=tmp_path, settle_seconds=2.0)], wake=lambda: None, clock=clock,
                      temp_grace_s=600.0)
    growing, done, temporary = tmp_path / "growing.pdf", tmp_path / "done.pdf", tmp_path / "scan.pdf.part"
    for f in (growing, done, temporary):
        f.write_bytes(b"1")
        w.note(f)
    w.ready()
    grow(w, clock, growing, range(1, 400))   # done.pdf settles and is taken on the way
    assert w.waiting_long(300.0) == [
        (growing, 399.0, "still being written or changed (last changed 0 s ago): taken once unchanged for 2 s"),
        (temporary, 399.0, "a temporary name: taken once unchanged for 10 min (or renamed to its final name)")]
    assert w.waiting_long(400.0) == []          # only those waiting longer than asked
    # A change restarts the settle clock, never the wait: the file is still
    # the one that landed 399 s ago. Once it stops changing it is taken.
    clock.t = 402.5
    assert w.ready() == [growing]
    w.done(growing)
    assert [p for p, _, _ in w.waiting_long(300.0)] == [temporary]
    # A file intake holds (an unfinished e-mail) is said as held, not here.
    w.hold(temporary, 30.0)
    assert w.waiting_long(300.0) == [] and list(w.waits()["files_held"]) == [str(temporary)]


def test_files_not_looked_at_again_are_not_said_to_be_written(tmp_path):
    # While intake is paused (the vault's disk full) the main loop asks for
    # no ready files, so nothing is looked at: those files wait for intake
    # (said on its own), and "still being written" would be a wrong reason.
    clock = FakeClock()
    w = FolderWatcher([WatchConfig(path=tmp_path, settle_seconds=2.0)], wake=lambda: None, clock=clock)
    files = [tmp_path / f"f{i}.pdf" for i in range(3)]
    temporary = tmp_path / "scan.pdf.part"     # past its 10 min grace, so not waiting for it either
    for f in (*files, temporary):
        f.write_bytes(b"x")
        w.note(f)
    w.ready()                            # first looks only: sizes recorded
    with open(files[0], "ab") as out:    # changes once more, then the loop stops asking
        out.write(b"y")
    w.note(files[0])
    clock.t = 3600.0
    assert w.waiting_long(300.0) == [] and w.waits() == {}
    assert w.pending_count == 4          # still pending: taken once intake resumes
    assert sorted(w.ready()) == sorted([*files[1:], temporary])   # f0's change is seen now: it settles anew
    for f in (*files[1:], temporary):
        w.done(f)
    clock.t += 2.5
    assert w.ready() == files[:1]


def test_a_file_changed_while_it_was_taken_stays_pending_and_is_taken_again(tmp_path):
    # A writer appending in several opens: its next write lands while the
    # main loop captures the bytes it saw. `done` must not forget the
    # change, or the final bytes wait for the next rescan, minutes away.
    clock = FakeClock()
    w = FolderWatcher([WatchConfig(path=tmp_path, settle_seconds=2.0)], wake=lambda: None, clock=clock)
    f, g = tmp_path / "a.pdf", tmp_path / "b.pdf"
    for path in (f, g):
        path.write_bytes(b"part one")
        w.note(path, closed=True)
    assert sorted(w.ready()) == [f, g]
    with open(f, "ab") as out:                 # while f is captured
        out.write(b", part two")
    w.note(f, closed=True)
    w.done(f)
    w.done(g)
    assert w.pending_count == 1                # g is forgotten, f is not
    assert w.ready() == [f]                    # closed again: taken again at once
    w.done(f)
    assert w.pending_count == 0


def test_a_file_held_with_backoff_waits_twice_as_long_each_time_until_it_changes(tmp_path):
    clock = FakeClock()
    w = FolderWatcher([WatchConfig(path=tmp_path, settle_seconds=2.0)], wake=lambda: None, clock=clock)
    f = tmp_path / "locked.pdf"
    f.write_bytes(b"x")
    w.note(f, closed=True)
    waits = []
    assert w.ready() == [f]
    for _ in range(7):
        w.hold(f, 30.0, why="cannot be read just now: locked", backoff=True)
        start = clock.t
        while not (got := w.ready()):
            clock.t += 1.0
        assert got == [f]
        waits.append(clock.t - start)
    assert waits == [30.0, 60.0, 120.0, 240.0, 480.0, 600.0, 600.0]
    w.hold(f, 30.0, why="cannot be read just now: locked", backoff=True)
    assert w.waits()["files_held"][str(f)].startswith("cannot be read just now: locked; tried again in 600 s")
    with open(f, "ab") as out:       # written again: it settles anew, its backoff starts over
        out.write(b"y")
    w.note(f)
    clock.t += 2.5
    w.ready()
    clock.t += 2.5
    assert w.ready() == [f]
    w.hold(f, 30.0, why="cannot be read just now: locked", backoff=True)
    assert "tried again in 30 s" in w.waits()["files_held"][str(f)]


def watching_one_file(tmp_path):
    """A fake clock, a config watching `tmp_path`, a watcher and the file it noted at 0."""
    clock = FakeClock()
    config = [WatchConfig(path=tmp_path, settle_seconds=2.0)]
    w = FolderWatcher(config, wake=lambda: None, clock=clock)
    f = tmp_path / "growing.pdf"
    f.write_bytes(b"1")
    w.note(f)
    return clock, config, w, f


def test_a_reload_keeps_how_long_a_file_has_waited(tmp_path):
    # A reload builds a new watcher: a file still being written keeps the age
    # the old one gave it, or an open alert would resolve and open again.
    clock, config, old, f = watching_one_file(tmp_path)
    clock.t = 1900.0
    new = FolderWatcher(config, wake=lambda: None, clock=clock)
    new.scan()
    grow(new, clock, f, range(1901, 1905))
    assert [round(age) for _, age, _ in new.waiting_long(300.0)] == []   # the new watcher's own age: 4 s
    new.keep_ages_of(old)
    assert [round(age) for _, age, _ in new.waiting_long(300.0)] == [1904]
    assert new.waits()["files_stuck_oldest_s"] == 1904


def test_a_restart_keeps_how_long_a_file_has_waited_through_the_heartbeat(tmp_path):
    # A restart starts a new process: only the last heartbeat carries when
    # each waiting file was first seen. Without it, an open intake-stuck
    # alert resolved at the restart and opened again 30 min later.
    clock, config, old, f = watching_one_file(tmp_path)
    grow(old, clock, f, range(1890, 1900))
    beat = json.loads(json.dumps(old.waits()))   # as the ledger stores it
    assert beat["files_stuck_oldest_s"] == 1899
    at, ino = beat["files_first_seen"][str(f)]
    assert abs(time.time() - at - 1899) < 5 and ino == f.stat().st_ino

    restarted = FakeClock()   # another process: its own monotonic clock
    new = FolderWatcher(config, wake=lambda: None, clock=restarted)
    new.scan()
    grow(new, restarted, f, range(1, 5))
    assert "files_stuck_count" not in new.waits()
    assert new.carry_first_seen(beat["files_first_seen"], time.time()) == 1
    assert new.waits()["files_stuck_oldest_s"] >= 1899
    # A first-seen time in the future (the clock set back) is now, never a negative wait.
    later = FolderWatcher(config, wake=lambda: None, clock=FakeClock())
    later.scan()
    later.carry_first_seen({str(f): [time.time() + 3600, ino]}, time.time())
    assert [round(age) for _, age, _ in later.waiting_long(-1.0)] in ([], [0])
    # Only that very file: another one under its name, and times that are
    # no number of seconds since 1970 (a damaged row), carry nothing.
    for entry in ([at, ino + 1], [10 ** 400, ino], [float("-inf"), ino], [float("nan"), ino], [at], at, [True, ino]):
        other = FolderWatcher(config, wake=lambda: None, clock=FakeClock())
        other.scan()
        assert other.carry_first_seen({str(f): entry}, time.time()) == 0, entry
        assert "files_stuck_count" not in other.waits()


def test_a_held_file_deleted_meanwhile_is_no_longer_said_to_wait(tmp_path):
    clock, _, w, f = watching_one_file(tmp_path)
    clock.t += 2.5
    w.ready()
    clock.t += 2.5
    assert w.ready() == [f]
    w.hold(f, 600.0, why="cannot be read just now: locked")
    assert str(f) in w.waits()["files_held"]
    f.unlink()   # its next look is 300 s away
    assert "files_held" not in w.waits()
