"""A watched folder swapped for another while the daemon is reloaded or down
is refused, not pinned afresh (issue 12 item 1; found by the second outside
attack: the in-memory pin followed the swapped-in folder after SIGHUP or a
restart, and the daemon emptied a folder outside the watched ones)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tests.e2e.daemon_harness import DaemonUnderTest

def _victim(root):
    victim = root / "victim"
    victim.mkdir()
    files = {f"v{i}.xml": f'<?xml version="1.0"?><kept n="{i}"/>'.encode() for i in range(3)}
    for name, data in files.items():
        (victim / name).write_bytes(data)
    return victim, files


def _swap_for_symlink(root, victim):
    (root / "scan").rename(root / "scan.real")
    os.symlink(victim, root / "scan")


def _assert_victim_untouched(victim, files):
    assert sorted(p.name for p in victim.iterdir()) == sorted(files), "a file outside was moved or deleted"
    for name, data in files.items():
        assert (victim / name).read_bytes() == data


def _status(d: DaemonUnderTest) -> str:
    out = subprocess.run([sys.executable, "-m", "service", "--config", str(d.config), "status"],
                         capture_output=True, text=True, cwd=d.root, timeout=60)
    return out.stdout


def test_a_root_swapped_before_a_reload_is_refused_not_repinned(tmp_path):
    d = DaemonUnderTest(tmp_path, scan_extra='after = "delete"')
    victim, files = _victim(tmp_path)
    d.start()
    try:
        _swap_for_symlink(tmp_path, victim)
        mark = len(d.lines)
        d.signal(signal.SIGHUP)
        line = d.wait_for_line("not watched", start=mark, timeout=30)
        assert "is not the folder it was when first watched" in line
        d.wait_for_line("config reloaded", start=mark, timeout=30)
        time.sleep(3)  # settle time and more: nothing may be taken from the swapped-in folder
        _assert_victim_untouched(victim, files)
        assert d.documents() == []
        assert "NOT WATCHED" in _status(d)
    finally:
        d.stop()
    _assert_victim_untouched(victim, files)


def test_a_root_swapped_while_the_daemon_is_down_is_refused_until_repinned(tmp_path):
    d = DaemonUnderTest(tmp_path, scan_extra='after = "delete"')
    victim, files = _victim(tmp_path)
    d.start()
    d.stop()
    _swap_for_symlink(tmp_path, victim)
    d.start()
    try:
        assert "is not the folder it was when first watched" in d.wait_for_line("not watched", timeout=30)
        time.sleep(3)
        _assert_victim_untouched(victim, files)
        assert d.documents() == []
    finally:
        d.stop()
    assert "NOT WATCHED" in _status(d), "a stopped daemon's status still says which folder it refused"
    # The operator says the new folder is meant: it is watched from the next start.
    out = subprocess.run([sys.executable, "-m", "service", "--config", str(d.config), "config", "repin",
                          str(tmp_path / "scan")], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert out.returncode == 0, out.stderr
    os.unlink(tmp_path / "scan")
    (tmp_path / "scan.real").rename(tmp_path / "scan")
    (tmp_path / "scan" / "new.xml").write_bytes(b'<?xml version="1.0"?><taken/>')
    d.start()
    try:
        d.wait_documents(1, timeout=30)
    finally:
        d.stop()


def test_a_root_replaced_while_running_shows_in_status_until_it_is_back(tmp_path):
    # Deleting and recreating the scan folder is an everyday act: the new
    # folder is not the pinned one, so nothing is taken there, and status
    # must say so without waiting for a reload; once it is back, it clears.
    d = DaemonUnderTest(tmp_path)
    d.config.write_text(d.config.read_text().replace("rescan_interval_s = 300", "rescan_interval_s = 1"))
    d.start()
    try:
        (tmp_path / "scan").rename(tmp_path / "scan.away")
        (tmp_path / "scan").mkdir()
        d.wait_for_line("was replaced", timeout=30)
        deadline = time.monotonic() + 30
        while "NOT WATCHED" not in (shown := _status(d)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert "NOT WATCHED" in shown and "config repin" in shown, shown
        (tmp_path / "scan").rmdir()
        (tmp_path / "scan.away").rename(tmp_path / "scan")
        d.wait_for_line("watched folder is back", timeout=30)
        deadline = time.monotonic() + 30
        while "NOT WATCHED" in (shown := _status(d)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert "NOT WATCHED" not in shown, shown
        assert d.stop() == 0
    finally:
        d.stop()
