"""OCR slots: at most N pool workers OCR at once ([extract] ocr_workers), and
a worker killed while OCRing does not take its slot with it.

Real forkserver workers and real flocks; the "OCR" is a reader that enters
the same gate `agent.extract.ocr.read_page` enters, and stamps the time.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from service.workers import ExtractionPool, ocr_slot

HOLD_S = 0.6


def gated_reader(vault_root: str, job: str):
    """Runs in a worker: enter the OCR gate, hold it, record when (the
    `vault_root` argument carries the folder for the stamps)."""
    from agent.extract import ocr
    from agent.pipeline import Analysis

    with ocr._gate():
        start = time.monotonic()
        if job == "die":
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(HOLD_S)
        end = time.monotonic()
    Path(vault_root, f"{job}.stamp").write_text(f"{start} {end}")
    return Analysis(error_reason="test", error_message=job)


def run(tmp_path: Path, slots: int, jobs: list[str]) -> list[tuple[float, float]]:
    pool = ExtractionPool(str(tmp_path), workers=2, reader=gated_reader, ocr_slots=slots,
                          slot_dir=str(tmp_path))
    try:
        for n, job in enumerate(jobs):
            assert pool.submit(n, job)
        deadline = time.monotonic() + 60
        done = []
        while len(done) < len(jobs) and time.monotonic() < deadline:
            done += pool.collect(0.5)
        assert len(done) == len(jobs), done
    finally:
        pool.shutdown(5)
    stamps = [Path(tmp_path, f"{job}.stamp") for job in jobs if job != "die"]
    return sorted(tuple(map(float, p.read_text().split())) for p in stamps)


def overlapping(spans: list[tuple[float, float]]) -> bool:
    return any(a_end > b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:]))


def test_one_slot_makes_two_workers_take_turns(tmp_path):
    spans = run(tmp_path, 1, ["a", "b", "c"])
    assert not overlapping(spans), spans


def test_two_slots_let_two_workers_ocr_at_once(tmp_path):
    # The same jobs with a slot per worker do overlap: the test above can fail.
    spans = run(tmp_path, 2, ["a", "b"])
    assert overlapping(spans), spans


def test_a_worker_killed_holding_the_slot_does_not_keep_it(tmp_path):
    # "die" is SIGKILLed inside the gate (twice: the pool retries a suspect
    # alone, then reports it as the culprit). A later worker still gets the
    # only slot; a leaked slot would hang it until the collect deadline.
    assert run(tmp_path, 1, ["die"]) == []
    started = time.monotonic()
    assert len(run(tmp_path, 1, ["a"])) == 1
    assert time.monotonic() - started < 30


def test_a_free_slot_is_taken_without_waiting_and_released_after(tmp_path):
    with ocr_slot(str(tmp_path), 2):
        started = time.monotonic()
        with ocr_slot(str(tmp_path), 2):   # the second slot is free
            pass
        assert time.monotonic() - started < 0.5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ocr-slot-0.lock", "ocr-slot-1.lock"]
