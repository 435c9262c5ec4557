"""A worker that has OCRed a page hands the engine's memory back once idle
for `[extract] ocr_idle_unload_s`: it is replaced by a fresh process
without the engine, which OCRs the next scan as well."""

from __future__ import annotations

import datetime as dt
import random
import time

import pytest

from agent.vault import Vault
from service.workers import ExtractionPool
from tests.corpus.generate import make_invoice

TODAY = dt.date(2026, 11, 29)


def resident_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS"))


def read_one(pool: ExtractionPool, doc_id: int, sha: str, timeout: float = 240):
    assert pool.submit(doc_id, sha)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for got_id, analysis in pool.collect(0.2):
            assert got_id == doc_id
            return analysis
    raise AssertionError("no result")


@pytest.mark.timeout(600)
def test_an_idle_worker_gives_its_ocr_memory_back_and_its_successor_still_ocrs(tmp_path):
    vault = Vault(tmp_path / "vault")
    scans = [make_invoice(random.Random(1000 + i), "scan-png", TODAY) for i in (1, 4)]
    shas = [vault.put_bytes(g.data).sha256 for g in scans]
    pool = ExtractionPool(str(vault.root), workers=1, timeout_s=240, ocr_idle_unload_s=1.0)
    try:
        first = read_one(pool, 1, shas[0])
        assert first.invoices[0]["sources"]["seller_name"] == "ocr"
        (pid,) = pool.worker_pids()
        loaded = resident_mb(pid)
        deadline = time.monotonic() + 30
        while pool.worker_pids() == [pid] and time.monotonic() < deadline:
            pool.collect(0.2)  # what the daemon's loop does, idle or not
            time.sleep(0.2)
        (fresh,) = pool.worker_pids()
        assert fresh != pid, "the idle worker was not replaced"
        time.sleep(0.5)
        assert resident_mb(fresh) < loaded - 60, (resident_mb(fresh), loaded)
        second = read_one(pool, 2, shas[1])
        assert second.invoices[0]["sources"]["seller_name"] == "ocr"
        assert second.invoices[0]["seller_name"] == scans[1].truth["seller_name"]
    finally:
        pool.shutdown(1)


@pytest.mark.timeout(600)
def test_a_worker_that_never_ocred_is_kept(tmp_path):
    vault = Vault(tmp_path / "vault")
    g = make_invoice(random.Random(7), "digital", TODAY)  # a text PDF: no OCR
    sha = vault.put_bytes(g.data).sha256
    pool = ExtractionPool(str(vault.root), workers=1, ocr_idle_unload_s=0.5)
    try:
        assert read_one(pool, 1, sha).invoices[0]["number"] == g.expected["number"]
        pids = pool.worker_pids()
        for _ in range(10):
            pool.collect(0.2)
            time.sleep(0.1)
        assert pool.worker_pids() == pids
    finally:
        pool.shutdown(1)
