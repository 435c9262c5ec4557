"""The daemon's reading stage while intake is busy (service/reading.py):
results wait in memory and are recorded a chunk at a time, keeping a share
of the main thread for capture; none is handed out twice, lost or recorded
twice, and a stop records every one that waits."""

from __future__ import annotations

import contextlib
import os
import time
from collections import Counter
from pathlib import Path

import pytest

from agent.capture import capture_bytes
from agent.ledger import Ledger
from agent.pipeline import Analysis
from agent.validate import ValidationSettings
from agent.vault import Vault
from service import reading as reading_mod
from service.reading import Reading
from service.workers import ExtractionPool

NOW = "2026-12-01T08:00:00.000000Z"


def counting_reader(vault_root: str, sha256: str) -> Analysis:
    # In the worker: note each reading (one line a call), then say "not an invoice".
    with open(Path(vault_root).parent / "calls.log", "a") as f:
        f.write(sha256 + "\n")
    return Analysis(invoices=[{"is_invoice": False, "not_invoice_reason": "test"}])


def long_list_reader(vault_root: str, sha256: str) -> Analysis:
    # In the worker: a reading that lists 500 lines (what holding it costs).
    return Analysis(invoices=[{"is_invoice": False, "not_invoice_reason": "test",
                               "items": [{"name": f"line {i}"} for i in range(500)]}])


class Clock:
    """Stands still but for `on_read`, called inside each recorded chunk:
    every chunk takes one second to record."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.read: list[int] = []

    def __call__(self) -> float:
        return self.t

    def on_read(self, ids: list[int]) -> None:
        self.read += ids
        self.t += 1.0


@pytest.fixture
def site(tmp_path):
    vault = Vault(tmp_path / "vault")
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    ids = [capture_bytes(ledger, vault, b"%PDF-1.4\n" + os.urandom(400), name=f"f{i}.pdf", source_kind="email",
                         source="test", now=NOW, actor="test").document_id for i in range(150)]
    pool = ExtractionPool(str(vault.root), workers=2, reader=counting_reader)
    yield tmp_path, ledger, pool, ids
    pool.shutdown(2)
    ledger.close()


def until_unrecorded(reading: Reading, n: int, *, intake_busy: bool) -> list:
    # Feed and collect (real workers) until `n` results wait unrecorded.
    done: list = []
    deadline = time.monotonic() + 60
    while reading.unrecorded < n and time.monotonic() < deadline:
        reading.feed()
        done += reading.collect(0.1, intake_busy=intake_busy)
    assert reading.unrecorded >= n, "the workers did not answer"
    return done


def states(ledger: Ledger, ids: list[int]) -> Counter:
    marks = ",".join("?" * len(ids))
    return Counter(r[0] for r in ledger.conn.execute(f"SELECT state FROM documents WHERE id IN ({marks})", ids))


@contextlib.contextmanager
def own_reading(tmp_path: Path):
    """A fresh ledger, vault and pool of two real workers, and a Reading on
    them with the test Clock: (ledger, vault, reading, clock)."""
    vault, ledger = Vault(tmp_path / "vault"), Ledger(tmp_path / "ledger.sqlite3")
    pool = ExtractionPool(str(vault.root), workers=2, reader=counting_reader)
    try:
        clock = Clock()
        reading = Reading(ledger, pool, actor="test", on_read=clock.on_read, clock=clock)
        reading.configure(ValidationSettings(), ["out"])
        yield ledger, vault, reading, clock
    finally:
        pool.shutdown(2)
        ledger.close()


def test_while_intake_is_busy_results_wait_and_are_recorded_a_chunk_per_paid_back_share(site, monkeypatch):
    tmp, ledger, pool, ids = site
    monkeypatch.setattr(reading_mod, "RECORD_CHUNK", 10)
    monkeypatch.setattr(reading_mod, "BUFFER_MAX", 40)
    clock = Clock()
    reading = Reading(ledger, pool, actor="test", on_read=clock.on_read, clock=clock)
    reading.configure(ValidationSettings(), ["out"])

    # The first chunk is recorded at once; then nothing until its time is
    # paid back three times over (the clock moves only while recording).
    first = until_unrecorded(reading, 15, intake_busy=True)
    assert 1 <= len(first) <= 10
    assert states(ledger, ids)["not_invoice"] == len(first)
    held = reading.unrecorded
    assert reading.collect(0, intake_busy=True) == []
    assert states(ledger, ids)["not_invoice"] == len(first)

    # Never more than BUFFER_MAX wait: the workers are no longer fed.
    until_unrecorded(reading, 40, intake_busy=True)
    assert reading.feed() == 0
    waiting = {doc_id for doc_id, _ in reading._results}
    assert not waiting & pool.in_flight_ids()
    assert held <= reading.unrecorded <= 40 + pool.capacity

    # Once the share is paid back: one more chunk, and only one.
    clock.t += 3600
    assert len(reading.collect(0, intake_busy=True)) == 10
    assert states(ledger, ids)["not_invoice"] == len(first) + 10

    # Intake quiet: everything waiting is recorded, a chunk to a transaction.
    left = reading.unrecorded
    assert len(reading.collect(0)) >= left
    assert reading.unrecorded == 0
    assert len(clock.read) == len(set(clock.read)) == states(ledger, ids)["not_invoice"]  # each reported once


def test_a_stop_records_every_waiting_result_and_no_document_is_read_or_recorded_twice(site):
    tmp, ledger, pool, ids = site
    clock = Clock()
    reading = Reading(ledger, pool, actor="test", on_read=clock.on_read, clock=clock)
    reading.configure(ValidationSettings(), ["out"])
    until_unrecorded(reading, 30, intake_busy=True)
    deadline = time.monotonic() + 120
    while (states(ledger, ids)["captured"] > reading.unrecorded or pool.in_flight) and time.monotonic() < deadline:
        reading.feed()
        reading.collect(0.1, intake_busy=True)  # the clock stands still: only the first chunk is recorded
    assert reading.unrecorded == states(ledger, ids)["captured"] > 30  # all read, waiting
    reading.drain(30)
    assert reading.unrecorded == 0
    assert states(ledger, ids) == Counter({"not_invoice": len(ids)})
    calls = Counter((tmp / "calls.log").read_text().split())
    assert len(calls) == len(ids) and set(calls.values()) == {1}
    events = Counter(r[0] for r in ledger.conn.execute(
        "SELECT document_id FROM events WHERE from_state = 'captured' AND to_state = 'not_invoice'"))
    assert set(events) == set(ids) and set(events.values()) == {1}


def test_workers_yield_the_cpu_to_capture(site):
    # A worker runs at WORKER_NICE above the daemon: on as many workers as
    # cores, the main thread capturing a burst keeps a core.
    tmp, ledger, pool, ids = site
    from service.worker_process import WORKER_NICE

    mine = os.getpriority(os.PRIO_PROCESS, 0)
    want = {pid: min(19, mine + WORKER_NICE) for pid in pool.worker_pids()}
    deadline = time.monotonic() + 30  # each worker sets it once it has started
    while time.monotonic() < deadline:
        seen = {pid: os.getpriority(os.PRIO_PROCESS, pid) for pid in want}
        if seen == want:
            break
        time.sleep(0.1)
    assert seen == want


def test_an_invoice_is_handed_out_and_recorded_ahead_of_a_backlog_of_junk_results(tmp_path, monkeypatch):
    # Junk read ahead fills the buffer while intake is busy; an invoice that
    # arrives then is still handed out, and is recorded in the next chunk,
    # first, ahead of every junk result that waited before it.
    monkeypatch.setattr(reading_mod, "RECORD_CHUNK", 10)
    monkeypatch.setattr(reading_mod, "BUFFER_MAX", 40)
    with own_reading(tmp_path) as (ledger, vault, reading, clock):
        junk = [capture_bytes(ledger, vault, b"%%PDF-1.4 cut %d" % i, name=f"j{i}.pdf", source_kind="scan",
                              source="test", now=NOW, actor="test").document_id for i in range(120)]
        until_unrecorded(reading, 40, intake_busy=True)
        assert reading.feed() == 0, "junk is not read further ahead than BUFFER_MAX"
        recorded_junk = set(clock.read)

        invoice = capture_bytes(ledger, vault, b"%PDF-1.4\n" + os.urandom(400), name="invoice.pdf",
                                source_kind="scan", source="test", now=NOW, actor="test").document_id
        assert reading.feed() == 1, "the invoice waits for no junk result to be recorded"
        deadline = time.monotonic() + 60
        while invoice not in {d for d, _ in reading._results} and time.monotonic() < deadline:
            reading.collect(0.1, intake_busy=True)  # the clock stands still: nothing more is recorded
        assert invoice in {d for d, _ in reading._results}
        assert set(clock.read) == recorded_junk
        junk_waiting = [d for d, _ in reading._results if d != invoice]
        assert len(junk_waiting) >= 40

        clock.t += 3600  # the share is paid back: one chunk, the invoice first
        chunk = [d for d, _ in reading.collect(0, intake_busy=True)]
        assert chunk[0] == invoice and len(chunk) == 10
        assert ledger.get(invoice).state == "not_invoice"
        assert all(ledger.get(d).state == "captured" for d in junk_waiting[9:])
        # Nothing is lost or recorded twice on the way.
        deadline = time.monotonic() + 60
        while states(ledger, junk)["captured"] and time.monotonic() < deadline:
            reading.feed()
            reading.collect(0.1)
        reading.drain(30)
        assert states(ledger, junk + [invoice]) == Counter({"not_invoice": len(junk) + 1})
        assert len(clock.read) == len(set(clock.read)) == len(junk) + 1


def reading_backlog(pace) -> bool:
    # A backup round would wait now (a short probe of the real wait).
    import threading

    return pace.yield_to_intake(threading.Event(), max_s=0.2) >= 0.15


def collect_a_burst_after(site, monkeypatch, idle_s: float):
    """Results of a burst waiting in memory, the backlog marks cleared,
    `idle_s` seconds since the last collect, then one collect recording them
    all (each chunk takes a second of the clock). Returns service.pace."""
    from service import pace

    tmp, ledger, pool, ids = site
    clock = Clock()
    reading = Reading(ledger, pool, actor="test", on_read=clock.on_read, clock=clock)
    reading.configure(ValidationSettings(), ["out"])
    until_unrecorded(reading, 2 * reading_mod.BUSY_RECORDED, intake_busy=True)
    monkeypatch.setattr(pace, "_busy_until", 0.0)
    monkeypatch.setattr(pace, "_reading_until", 0.0)
    clock.t += idle_s
    assert len(reading.collect(0)) >= 2 * reading_mod.BUSY_RECORDED
    return pace


def test_recording_that_takes_the_main_thread_is_a_backlog_backup_waits_for(site, monkeypatch):
    # service/pace.py: a backup round waits while a burst's results take the
    # main thread on their way to `queued`, not only while it is captured;
    # delivery does not.
    pace = collect_a_burst_after(site, monkeypatch, idle_s=0.5)
    assert reading_backlog(pace), "recording took the main thread: backup waits"
    assert not pace.busy(), "delivery goes on while a burst is read"


def test_results_trickling_in_are_no_backlog(site, monkeypatch):
    # Slow scans: the main thread mostly waits for the workers (an hour
    # since the last call here), recording now and then.
    pace = collect_a_burst_after(site, monkeypatch, idle_s=3600)
    assert not reading_backlog(pace)


def test_a_few_documents_are_no_backlog(tmp_path, monkeypatch):
    from service import pace

    monkeypatch.setattr(pace, "_busy_until", 0.0)
    monkeypatch.setattr(pace, "_reading_until", 0.0)
    with own_reading(tmp_path) as (ledger, vault, reading, clock):
        for i in range(3):
            capture_bytes(ledger, vault, b"%PDF-1.4\n" + os.urandom(400), name=f"f{i}.pdf", source_kind="scan",
                          source="test", now=NOW, actor="test")
        assert reading.feed() == 3
        deadline = time.monotonic() + 60
        while states(ledger, [1, 2, 3])["captured"] and time.monotonic() < deadline:
            reading.collect(0.1)  # each takes a second of the clock: all of the time
        assert states(ledger, [1, 2, 3]) == Counter({"not_invoice": 3})
        assert not reading_backlog(pace)


def test_results_listing_many_lines_fill_the_buffer_sooner(tmp_path, monkeypatch):
    # A burst of invoices of 1,000 lines each is ~0.7 MB a result: counted
    # by results alone, BUFFER_MAX of them would hold gigabytes.
    monkeypatch.setattr(reading_mod, "RECORD_CHUNK", 2)
    monkeypatch.setattr(reading_mod, "BUFFER_MAX", 1000)
    monkeypatch.setattr(reading_mod, "BUFFER_WEIGHT_MAX", 2000)
    vault, ledger = Vault(tmp_path / "vault"), Ledger(tmp_path / "ledger.sqlite3")
    pool = ExtractionPool(str(vault.root), workers=2, reader=long_list_reader, depth=1)
    try:
        ids = [capture_bytes(ledger, vault, b"%PDF-1.4\n" + os.urandom(400), name=f"f{i}.pdf", source_kind="email",
                             source="test", now=NOW, actor="test").document_id for i in range(40)]
        clock = Clock()
        reading = Reading(ledger, pool, actor="test", on_read=clock.on_read, clock=clock)
        reading.configure(ValidationSettings(), ["out"])
        until_unrecorded(reading, 4, intake_busy=True)
        deadline = time.monotonic() + 30
        while pool.in_flight and time.monotonic() < deadline:  # what the workers hold, answered
            reading.collect(0.1, intake_busy=True)
        # 501 each: once four wait (2,004) no more is handed out, room or not.
        assert pool.has_room() and reading.feed() == 0
        assert 4 <= reading.unrecorded <= 4 + pool.capacity
        clock.t += 3600
        while reading.unrecorded or pool.in_flight:  # intake quiet: all recorded, each once
            reading.feed()
            reading.collect(0.1)
        assert states(ledger, ids) == Counter({"not_invoice": 40}) and sorted(clock.read) == sorted(ids)
    finally:
        pool.shutdown(2)
        ledger.close()
