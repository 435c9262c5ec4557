"""Issue 17 attacked from outside: results the workers have read wait in
memory (service/reading.py) and are recorded a chunk at a time while a burst
is taken in. A real daemon gets a burst, reloads (SIGHUP) while results
wait, is stopped (SIGTERM: `drain`) and killed (SIGKILL) with results still
unrecorded, then started again: every file is one document read once
(one transition out of `captured`), none lost, every source gone only once
recorded, and `audit ledger` passes."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.e2e.daemon_harness import OUT_AND_NAS, DaemonUnderTest
from tests.e2e.test_group_commit import invoices
from tests.support.audit import assert_ledger_sound

BURST = 400


def _read_counts(d: DaemonUnderTest) -> tuple[int, int, dict]:
    # (documents, documents no longer captured, documents read more than once)
    with d.ledger() as led:
        docs = led.conn.execute("SELECT count(*), sum(state != 'captured') FROM documents").fetchone()
        twice = dict(led.conn.execute("SELECT document_id, count(*) FROM events WHERE from_state = 'captured' "
                                      "GROUP BY document_id HAVING count(*) > 1").fetchall())
    return docs[0], docs[1] or 0, twice


@pytest.mark.slow
def test_reload_stop_and_kill_while_results_wait_read_each_document_once(tmp_path, samples_dir):
    (tmp_path / "out").mkdir()
    (tmp_path / "nas").mkdir()
    d = DaemonUnderTest(tmp_path, scan_extra='after = "delete"', extra=OUT_AND_NAS)
    files = invoices(samples_dir, BURST, 50_000_000)
    staging, scan = tmp_path / "staging", tmp_path / "scan"
    staging.mkdir()
    for name, data in files.items():
        (staging / name).write_bytes(data)
    try:
        d.start()
        for name in files:
            os.rename(staging / name, scan / name)
        d.wait_until(lambda: _read_counts(d)[1] >= 20, 120, "the first documents read")
        for _ in range(3):                       # reloads in the middle of the burst
            d.signal(signal.SIGHUP)
            time.sleep(0.3)
        n, read, _ = _read_counts(d)
        assert read < BURST, "the burst was over before the reloads: they test nothing"
        assert d.stop(timeout=60) == 0           # drain: results waiting are recorded, not dropped
        d.start()
        d.wait_until(lambda: _read_counts(d)[1] >= read + 20, 120, "more documents read after the restart")
        d.kill()                                  # SIGKILL: whatever waits in memory is gone
        d.start()
        d.wait_until(lambda: _read_counts(d)[:2] == (BURST, BURST) and not any(scan.iterdir()), 300,
                     "every file read and its source deleted")
        n, read, twice = _read_counts(d)
        assert (n, read) == (BURST, BURST)
        assert twice == {}, f"documents recorded as read more than once: {twice}"
        assert d.stop(timeout=60) == 0
        assert_ledger_sound(d.config)
    finally:
        d.ensure_gone()
