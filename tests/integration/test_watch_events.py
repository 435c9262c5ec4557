"""Which events reach the daemon from a watched folder (service/watch.py):
only those it acts on. Reading a file (capture's own read, a backup tool,
a Samba client browsing the share) raises none, so a burst costs watchdog's
threads one event a file, not three; a file written, renamed in or moved in
is still noted; an inotify overflow asks for a rescan."""

from __future__ import annotations

import logging
import os
import subprocess
import time
from pathlib import Path

import pytest
import watchdog.events

from agent.config import WatchConfig
from service import watch_events
from service.watch import FolderWatcher


@pytest.fixture
def observed(tmp_path, monkeypatch):
    # A real FolderWatcher on a real folder (inotify, or polling), every
    # event its handler receives recorded.
    seen: list = []
    handle = watch_events._Handler.on_any_event

    def recording(self, event):
        seen.append(event)
        handle(self, event)
    monkeypatch.setattr(watch_events._Handler, "on_any_event", recording)
    scan = tmp_path / "scan"
    scan.mkdir()
    started: list[FolderWatcher] = []

    def start(poll: bool) -> FolderWatcher:
        w = FolderWatcher([WatchConfig(path=scan, kind="scanner", settle_seconds=60, poll=poll)],
                          wake=lambda: None)
        w.start()
        started.append(w)
        return w
    yield scan, seen, start
    for w in started:
        w.stop()


def wait_for(check, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def wait_ready(watcher: FolderWatcher, paths: set[Path], timeout: float = 10.0) -> None:
    # Handed out by `ready()` (each of these was closed or moved in: ready
    # at once, without the 60 s settle), as the main loop would take them.
    got: set[Path] = set()
    deadline = time.monotonic() + timeout
    while not paths <= got:
        assert time.monotonic() < deadline, f"never ready: {sorted(paths - got)}"
        for path in watcher.ready():
            got.add(path)
            watcher.done(path)
        time.sleep(0.02)


def test_reading_files_raises_no_event_and_new_files_are_still_noted(observed, tmp_path):
    scan, seen, start = observed
    watcher = start(poll=False)
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "moved.xml").write_bytes(b"<a/>")
    (scan / "written.pdf").write_bytes(b"%PDF-1.4 written")
    (scan / "tmp.part").write_bytes(b"%PDF-1.4 renamed")
    os.rename(scan / "tmp.part", scan / "renamed.pdf")
    os.rename(staging / "moved.xml", scan / "moved.xml")
    wait_ready(watcher, {scan / "written.pdf", scan / "renamed.pdf", scan / "moved.xml"})
    time.sleep(0.3)
    before = len(seen)
    for _ in range(50):  # read as capture, a backup tool or a browsing client would
        for name in ("written.pdf", "renamed.pdf", "moved.xml"):
            (scan / name).read_bytes()
        os.listdir(scan)
    time.sleep(0.5)
    extra = [type(e).__name__ for e in seen[before:]]
    assert extra == [], f"reading raised events: {extra[:5]}"
    assert {type(e).__name__ for e in seen[:before]} <= {
        "FileCreatedEvent", "FileModifiedEvent", "FileClosedEvent", "FileMovedEvent", "DirModifiedEvent"}


@pytest.mark.parametrize("hold", ["fd", "cwd"])
def test_a_subfolder_made_again_while_the_old_one_is_held_is_watched(observed, hold):
    # Removed while something still holds it (an open descriptor, a shell
    # sitting in it), then made again under the same name: a file written
    # there later is noted at once, not left to the periodic rescan.
    scan, _, start = observed
    sub = scan / "dept"
    sub.mkdir()
    watcher = start(poll=False)
    holder = None
    fd = os.open(sub, os.O_RDONLY | os.O_DIRECTORY)
    if hold == "cwd":
        os.close(fd)
        holder = subprocess.Popen(["sleep", "30"], cwd=sub)
    try:
        os.rmdir(sub)
        sub.mkdir()
        time.sleep(1.0)  # after the folder's own events: only a watch on it sees the file
        (sub / "late.xml").write_bytes(b"<a/>")
        wait_ready(watcher, {sub / "late.xml"}, timeout=5)
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
        else:
            os.close(fd)


def test_a_polled_folder_still_notes_new_files(observed):
    scan, _, start = observed
    watcher = start(poll=True)
    (scan / "new.pdf").write_bytes(b"%PDF-1.4 polled")
    wait_for(lambda: watcher.pending_count > 0, timeout=15)


@pytest.mark.skipif(not hasattr(watchdog.events, "EventsLostEvent"), reason="watchdog < 7 reports no lost events")
def test_lost_events_ask_for_a_rescan(tmp_path):
    # The kernel's queue overflowed: nothing tells which files changed, so
    # the whole folder is scanned again.
    scan = tmp_path / "scan"
    scan.mkdir()
    woken: list[bool] = []
    watcher = FolderWatcher([WatchConfig(path=scan, kind="scanner")], wake=lambda: woken.append(True))
    assert not watcher.rescan_requested.is_set()
    watch_events._Handler(watcher).on_any_event(watchdog.events.EventsLostEvent(str(scan)))
    assert watcher.rescan_requested.is_set() and woken


def test_watchdogs_overflow_warning_asks_for_a_rescan(tmp_path):
    # The other report of an overflow: watchdog's log warning, turned into
    # a rescan by the alarm the watcher installs at start.
    scan = tmp_path / "scan"
    scan.mkdir()
    watcher = FolderWatcher([WatchConfig(path=scan, kind="scanner")], wake=lambda: None)
    watch_events._OverflowAlarm.install(watcher)
    try:
        logging.getLogger("watchdog.observers.inotify").warning("Inotify queue overflowed; reconciling")
        assert watcher.rescan_requested.is_set()
    finally:
        watch_events._OverflowAlarm.remove(watcher)
