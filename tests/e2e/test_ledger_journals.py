"""A burst's capture groups and reading chunks journal their savepoints in
memory (`Ledger.transaction(memory_journals=True)`): each nests a savepoint
a file, and SQLite moves a savepoint journal past 64 KiB into a temporary
file, where every page it journals is two more write calls (~80 pages a
file in a burst). A real daemon, with SQLite's temporary folder
(SQLITE_TMPDIR) watched by inotify, takes a burst in without creating a
single temporary file there."""

from __future__ import annotations

import os
import threading

import pytest
from watchdog.events import FileSystemEventHandler
from watchdog.observers.inotify import InotifyObserver

from tests.e2e.daemon_harness import DaemonUnderTest
from tests.support.audit import assert_ledger_sound

SAMPLE = "renoyuan__easyofd/original_invoice.xml"
BURST = 300


class Created(FileSystemEventHandler):
    def __init__(self) -> None:
        self.paths: list[str] = []
        self.lock = threading.Lock()

    def on_created(self, event) -> None:
        with self.lock:
            self.paths.append(event.src_path)


@pytest.mark.slow
def test_a_burst_creates_no_sqlite_temporary_file(tmp_path, samples_dir, monkeypatch):
    sqlite_tmp = tmp_path / "sqlite-tmp"
    sqlite_tmp.mkdir()
    # The daemon inherits it; SQLite reads it when it first needs a temporary file.
    monkeypatch.setenv("SQLITE_TMPDIR", str(sqlite_tmp))
    created = Created()
    observer = InotifyObserver()
    observer.schedule(created, str(sqlite_tmp))
    observer.start()
    site = tmp_path / "site"
    d = DaemonUnderTest(site)   # no destination and no backup: the main thread is the only writer
    d.start()
    try:
        xml = (samples_dir / SAMPLE).read_bytes()
        staging = tmp_path / "staging"
        staging.mkdir()
        for i in range(BURST):
            (staging / f"x{i:03d}.xml").write_bytes(xml.replace(b"00008006", b"%08d" % (40_000_000 + i)))
        for i in range(BURST):   # moved in at once, as a copy tool would: big groups
            os.rename(staging / f"x{i:03d}.xml", site / "scan" / f"x{i:03d}.xml")
        docs = d.wait_documents(BURST, timeout=120, settled=True)
    finally:
        assert d.stop() == 0
        observer.stop()
        observer.join()
    assert {doc.state for doc in docs} == {"valid"}, {doc.state for doc in docs}   # read and recorded: no destination
    assert created.paths == [], f"SQLite wrote {len(created.paths)} temporary files, e.g. {created.paths[:3]}"
    assert_ledger_sound(site / "agent.toml")
