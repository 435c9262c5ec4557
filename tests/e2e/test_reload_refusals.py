"""A reload (SIGHUP) never leaves a silent path: the periodic rescan goes on
with the new watcher, and a config the running daemon cannot take (its
state folder moved, no folder watched: an empty or cut-off file) is
refused, said each time, and the old one kept working."""

from __future__ import annotations

import hashlib
import signal

from tests.e2e.daemon_harness import OUT_AND_NAS, DaemonUnderTest
from tests.support.audit import assert_ledger_sound


def junk(i: int) -> bytes:
    return b"%PDF-1.4\n%" + hashlib.sha256(str(i).encode()).hexdigest().encode() * 20 + b"\n%%EOF\n"


def reload(d: DaemonUnderTest, expect: str) -> str:
    mark = len(d.lines)
    d.signal(signal.SIGHUP)
    return d.wait_for_line(expect, start=mark)


def daemon_on_state_symlink(tmp_path) -> DaemonUnderTest:
    """A daemon (not started) whose state folder is a symlink to state-a,
    state-b beside it, with a folder destination and a backup target."""
    (tmp_path / "state-a").mkdir()
    (tmp_path / "state-b").mkdir()
    d = DaemonUnderTest(tmp_path, extra=OUT_AND_NAS)
    (tmp_path / "state").rmdir()
    (tmp_path / "state").symlink_to(tmp_path / "state-a")
    (tmp_path / "out").mkdir()
    (tmp_path / "nas").mkdir()
    return d


def test_the_periodic_rescan_goes_on_after_a_reload(tmp_path):
    d = DaemonUnderTest(tmp_path)
    d.config.write_text(d.config.read_text().replace("rescan_interval_s = 300", "rescan_interval_s = 1"))
    d.start()
    try:
        d.wait_for_line("msg=rescan", timeout=10)
        reload(d, "config reloaded")
        mark = len(d.lines)
        d.wait_for_line("msg=rescan", timeout=10, start=mark)  # the job rescans with the new watcher
        assert d.stop() == 0
    finally:
        d.stop()
    assert_ledger_sound(d.config)


def test_a_reload_that_moves_the_state_folder_or_watches_nothing_is_refused(tmp_path):
    d = DaemonUnderTest(tmp_path)
    good = d.config.read_text()
    d.start()
    try:
        d.config.write_text(good.replace('state_dir = "state"', 'state_dir = "state2"'))
        line = reload(d, "config reload failed; keeping the old config")
        assert "not the folder the daemon opened" in line and "restart" in line
        d.config.write_text("")  # an editor's save cut short
        line = reload(d, "config reload failed; keeping the old config")  # said again, within the minute
        assert "no [[watch]] folder" in line
        (d.root / "scan" / "after.pdf").write_bytes(junk(1))
        docs = d.wait_documents(1)
        assert docs[0].original_name == "after.pdf"
        assert not (d.root / "state2").exists()
        d.config.write_text(good)
        reload(d, "config reloaded")
        assert d.stop() == 0
    finally:
        d.stop()
    assert_ledger_sound(d.config)


def test_a_reload_through_a_re_pointed_state_symlink_or_without_destinations_is_refused(tmp_path):
    # state_dir is a symlink an admin re-points before the reload: the same
    # name, another folder. And a cut-off file that kept its [[watch]]
    # entries but lost the destinations and backups after them.
    d = daemon_on_state_symlink(tmp_path)
    good = d.config.read_text()
    d.start()
    try:
        (tmp_path / "state").unlink()
        (tmp_path / "state").symlink_to(tmp_path / "state-b")
        line = reload(d, "config reload failed; keeping the old config")
        assert "not the folder the daemon opened" in line
        (tmp_path / "state").unlink()
        (tmp_path / "state").symlink_to(tmp_path / "state-a")
        d.config.write_text(good[:good.index("[[destination]]")])
        line = reload(d, "config reload failed; keeping the old config")
        assert "no [[destination]]" in line
        d.config.write_text(good)
        reload(d, "config reloaded")
        (d.root / "scan" / "after.pdf").write_bytes(junk(2))
        d.wait_documents(1)
        assert not any((tmp_path / "state-b").iterdir()), "nothing may be opened in the other folder"
        assert d.stop() == 0
    finally:
        d.stop()
    assert_ledger_sound(d.config)


def test_a_state_symlink_re_pointed_while_running_splits_nothing_and_is_said(tmp_path):
    # No reload at all: an admin re-points the state folder's symlink under
    # a running daemon. It keeps the folder it locked (ledger, vault,
    # delivery threads) and says, in its log, that the name leads elsewhere.
    d = daemon_on_state_symlink(tmp_path)
    d.start()
    try:
        (tmp_path / "state").unlink()
        (tmp_path / "state").symlink_to(tmp_path / "state-b")
        mark = len(d.lines)
        (d.root / "scan" / "after.pdf").write_bytes(junk(3))
        line = d.wait_for_line("the state folder name leads elsewhere now", start=mark, timeout=15)
        assert "state-a" in line
        (tmp_path / "state").unlink()
        (tmp_path / "state").symlink_to(tmp_path / "state-a")
        docs = d.wait_documents(1, settled=True)
        assert [doc.original_name for doc in docs] == ["after.pdf"]
        assert not any((tmp_path / "state-b").iterdir()), "the daemon wrote into the re-pointed folder"
        assert d.stop() == 0
    finally:
        d.stop()
    assert_ledger_sound(d.config)


def test_a_state_folder_renamed_under_the_daemon_is_said_with_what_to_do(tmp_path):
    d = DaemonUnderTest(tmp_path)
    d.start()
    try:
        (tmp_path / "state").rename(tmp_path / "state.old")
        (tmp_path / "state").mkdir()
        line = d.wait_for_line("the state folder name leads elsewhere now", timeout=15)
        assert "moved, renamed or replaced" in line and "put it back, or restart" in line
        (tmp_path / "state").rmdir()
        (tmp_path / "state.old").rename(tmp_path / "state")   # put back: intake goes on
        (d.root / "scan" / "back.pdf").write_bytes(junk(5))
        d.wait_documents(1)
        assert d.stop() == 0
    finally:
        d.stop()
    assert_ledger_sound(d.config)
