"""agent.state_dir edited under a running daemon: its reload is refused (it
keeps the state folder it opened), so the config file now names a folder
no daemon serves. A command must not make a second ledger there: `ingest`
used to create one and its vault, print "1 queued", and leave the invoice
where no daemon would ever deliver it, while `status` found no daemon.
Now a write command finding no ledger where a daemon runs from a config in
the same folder fails, creating nothing, and `status` says why."""

from __future__ import annotations

import signal

from tests.e2e.daemon_harness import DaemonUnderTest
from tests.support.audit import assert_ledger_sound
from tests.support.cli import run


def junk() -> bytes:
    return b"%PDF-1.4\n%" + b"state-dir-edit " * 40 + b"\n%%EOF\n"


def test_no_second_ledger_where_the_config_names_a_state_folder_no_daemon_serves(tmp_path):
    d = DaemonUnderTest(tmp_path)
    good = d.config.read_text()
    d.start()
    try:
        d.config.write_text(good.replace('state_dir = "state"', 'state_dir = "state-new"'))
        mark = len(d.lines)
        d.signal(signal.SIGHUP)
        assert "not the folder the daemon opened" in d.wait_for_line("config reload failed", start=mark)
        dropped = tmp_path / "by-hand.pdf"
        dropped.write_bytes(junk())

        r = run(d.config, "ingest", str(dropped))
        assert r.exit_code == 1, r.output
        assert "a daemon is running from a config in" in r.stderr and "Nothing was written" in r.stderr, r.stderr
        assert not (tmp_path / "state-new").exists()
        r = run(d.config, "status")
        assert r.exit_code == 2 and "serves the state folder it opened at its start" in r.stderr, r.stderr
        assert not (tmp_path / "state-new").exists()

        d.config.write_text(good)
        assert d.stop() == 0
    finally:
        d.stop()
    assert_ledger_sound(d.config)
    # No daemon any more: a command may start a ledger where none was (first use, as before).
    moved = tmp_path / "moved.toml"
    moved.write_text(good.replace('state_dir = "state"', 'state_dir = "state-new"'))
    r = run(moved, "ingest", str(tmp_path / "by-hand.pdf"))
    assert r.exit_code in (0, 1) and "Nothing was written" not in r.output and "1 new" in r.output, r.output
    assert (tmp_path / "state-new" / "ledger.sqlite3").exists()
    assert_ledger_sound(moved)
