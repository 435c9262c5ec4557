"""A restart, after a crash or a clean stop, keeps how long a file has
waited: the new run starts from the last heartbeat's `files_first_seen`, so a file a writer never stops
changing is still stuck (a WARNING, an open intake-stuck alert) right after
the restart, not resolved and alerted again 30 min later."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

from agent.ledger import Ledger
from tests.e2e.daemon_harness import DaemonUnderTest
from tests.support.audit import assert_ledger_sound


def test_a_file_stuck_before_a_restart_is_still_stuck_after_it(tmp_path):
    d = DaemonUnderTest(tmp_path, settle=1.0)
    growing = tmp_path / "scan" / "endless.pdf"
    growing.write_bytes(b"%PDF-1.4\n")
    forty_min_ago = time.time() - 40 * 60
    # The last run's heartbeat, as it left it when it was stopped.
    with Ledger(tmp_path / "state" / "ledger.sqlite3") as ledger:
        ledger.beat(pid=1, now="2026-12-03T10:00:00.000000Z", activity="working",
                    details=json.dumps({"files_first_seen": {
                        str(growing): [forty_min_ago, growing.stat().st_ino],
                        str(tmp_path / "scan" / "gone.pdf"): [forty_min_ago, 1]}}))
    stop = threading.Event()

    def write_forever() -> None:
        # One open, never closed while the test runs: no close event makes
        # the file ready, and it never stays unchanged for its settle time.
        with open(growing, "ab") as out:
            while not stop.is_set():
                out.write(b"% more\n")
                out.flush()
                time.sleep(0.2)
    writer = threading.Thread(target=write_forever)
    writer.start()
    try:
        d.start()

        def check() -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, "-m", "service", "--config", str(d.config), "status", "--check"],
                                  capture_output=True, text=True, timeout=60, cwd=d.root)
        got = d.wait_until(lambda: (r := check()).returncode == 1 and "endless.pdf" in r.stdout + r.stderr and r,
                           30, "status --check WARNING naming the file stuck since before the restart")
        out = got.stdout + got.stderr
        assert "40 min" in out or "41 min" in out, out
        # A clean restart (systemctl restart, an upgrade): the "stopped"
        # heartbeat carries the waits over too.
        assert d.stop() == 0
        d.start()
        again = d.wait_until(lambda: (r := check()).returncode == 1 and "endless.pdf" in r.stdout + r.stderr and r,
                             30, "still stuck after a clean restart")
        assert "40 min" in again.stdout + again.stderr or "41 min" in again.stdout + again.stderr
    finally:
        stop.set()
        writer.join()
        assert d.stop() == 0
    assert_ledger_sound(d.config)
