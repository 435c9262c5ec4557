"""A restart, after a crash or a clean stop, keeps how long a file has
waited: the new run starts from the last heartbeat's `files_first_seen`, so a file a writer never stops
changing is still stuck (a WARNING, an open intake-stuck alert) right after
the restart, not resolved and alerted again 30 min later."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import subprocess
import sys
import threading
import time

import pytest

from agent.ledger import Ledger, utc
from tests.e2e.daemon_harness import DaemonUnderTest
from tests.support.audit import assert_ledger_sound


@contextlib.contextmanager
def kept_growing(path):
    """A writer appending to `path` every 0.2 s through one open, never
    closed while it runs: no close event makes the file ready, and it never
    stays unchanged for its settle time."""
    stop = threading.Event()

    def write_forever() -> None:
        with open(path, "ab") as out:
            while not stop.is_set():
                out.write(b"% more\n")
                out.flush()
                time.sleep(0.2)
    writer = threading.Thread(target=write_forever)
    writer.start()
    try:
        yield
    finally:
        stop.set()
        writer.join()


@pytest.fixture
def daemon_settling_in_1s(tmp_path):
    """A DaemonUnderTest (settle 1 s) in tmp_path, killed if a test leaves it running."""
    d = DaemonUnderTest(tmp_path, settle=1.0)
    yield d
    d.ensure_gone()


def check(d: DaemonUnderTest) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "service", "--config", str(d.config), "status", "--check"],
                          capture_output=True, text=True, timeout=60, cwd=d.root)


def test_a_file_stuck_before_a_restart_is_still_stuck_after_it(tmp_path, daemon_settling_in_1s):
    d = daemon_settling_in_1s
    growing = tmp_path / "scan" / "endless.pdf"
    growing.write_bytes(b"%PDF-1.4\n")
    forty_min_ago = time.time() - 40 * 60
    # The last run's heartbeat, as it left it when it was stopped.
    with Ledger(tmp_path / "state" / "ledger.sqlite3") as ledger:
        ledger.beat(pid=1, now="2026-12-03T10:00:00.000000Z", activity="working",
                    details=json.dumps({"files_first_seen": {
                        str(growing): [forty_min_ago, growing.stat().st_ino],
                        str(tmp_path / "scan" / "gone.pdf"): [forty_min_ago, 1]}}))
    with kept_growing(growing):
        d.start()
        got = d.wait_until(lambda: (r := check(d)).returncode == 1 and "endless.pdf" in r.stdout + r.stderr and r,
                           30, "status --check WARNING naming the file stuck since before the restart")
        out = got.stdout + got.stderr
        assert "40 min" in out or "41 min" in out, out
        # A clean restart (systemctl restart, an upgrade): the "stopped"
        # heartbeat carries the waits over too.
        assert d.stop() == 0
        d.start()
        again = d.wait_until(lambda: (r := check(d)).returncode == 1 and "endless.pdf" in r.stdout + r.stderr and r,
                             30, "still stuck after a clean restart")
        assert "40 min" in again.stdout + again.stderr or "41 min" in again.stdout + again.stderr
        assert d.stop() == 0
    assert_ledger_sound(d.config)


def test_a_new_file_under_a_name_taken_since_does_not_inherit_the_old_wait(tmp_path, daemon_settling_in_1s):
    # The last run named scan.pdf as waiting since 40 min, then took it; the
    # scanner wrote a new scan.pdf while the agent was down, and ext4 gave
    # it the freed inode. The ledger says the name was taken after that
    # first sight: the file there now is new, its wait starts now.
    d = daemon_settling_in_1s
    scan = tmp_path / "scan" / "scan.pdf"
    scan.write_bytes(b"%PDF-1.4\n")
    forty_min_ago = time.time() - 40 * 60
    st = scan.stat()
    with Ledger(tmp_path / "state" / "ledger.sqlite3") as ledger:
        ledger.beat(pid=1, now="2026-12-03T10:00:00.000000Z", activity="working",
                    details=json.dumps({"files_first_seen": {str(scan): [forty_min_ago, st.st_ino]}}))
        taken = dt.datetime.fromtimestamp(forty_min_ago + 60, dt.timezone.utc)
        ledger.remember_file(str(scan), 1, 1, ino=st.st_ino, ctime_ns=1, outcome="captured", now=utc(taken))
    with kept_growing(scan):
        d.start()
        time.sleep(6)   # a heartbeat or two
        r = check(d)
        assert r.returncode == 0, r.stdout + r.stderr
        assert d.stop() == 0
