"""A file that kills its worker process: only that document fails, the pool
comes back, and every other document is read."""

from __future__ import annotations

import os
import time

from agent.pipeline import Analysis
from agent.vault import Vault
from service.workers import ExtractionPool


def crash_on_marker(vault_root: str, sha256: str) -> Analysis:
    data = Vault(vault_root).read(sha256)
    if data.startswith(b"CRASH"):
        os._exit(139)  # as a segfaulting native parser would
    return Analysis(invoices=[{"is_invoice": True, "number": data.decode()}])


def collect_all(pool: ExtractionPool, n: int, timeout: float = 60) -> dict[int, Analysis]:
    got: dict[int, Analysis] = {}
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        got.update(pool.collect(0.2))
    return got


def test_crashing_file_is_isolated_and_the_rest_are_read(tmp_path):
    vault = Vault(tmp_path / "vault")
    good = {i: vault.put_bytes(f"{i:08d}".encode()).sha256 for i in range(1, 9)}
    bad = vault.put_bytes(b"CRASH please").sha256
    pool = ExtractionPool(str(vault.root), workers=2, reader=crash_on_marker)
    try:
        jobs = [(i, sha) for i, sha in good.items()]
        jobs.insert(3, (99, bad))
        pending = list(jobs)
        got: dict[int, Analysis] = {}
        deadline = time.monotonic() + 60
        while (pending or pool.in_flight) and time.monotonic() < deadline:
            while pending and pool.submit(*pending[0]):
                pending.pop(0)
            got.update(pool.collect(0.2))
        assert set(got) == set(good) | {99}
        assert got[99].error_reason == "internal" and "crashed" in got[99].error_message
        for i in good:
            assert got[i].error_reason is None and got[i].invoices[0]["number"] == f"{i:08d}"
        # the pool works normally afterwards
        assert pool.submit(100, good[1])
        assert collect_all(pool, 1)[100].invoices[0]["number"] == "00000001"
    finally:
        pool.shutdown(1)
