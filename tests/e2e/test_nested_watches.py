"""Two watches on nested folders, which `config check` refuses, are never
run: a reload to them is refused (the old config kept, said in `status`),
and a daemon started with them watches neither (NOT WATCHED, CRITICAL).
Before, the reload said "config reloaded" and a start only logged it: the
inner watch (after = "move") moved a file to sub/processed/DATE/, the outer
one (after = "delete") took it again there and deleted it."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import time

from tests.e2e.daemon_harness import DaemonUnderTest
from tests.support.audit import assert_ledger_sound
from tests.support.cli import run

ONE = """
[agent]
state_dir = "state"
stop_timeout_s = 10
rescan_interval_s = 1
[validation]
max_age_days = 100000
[[watch]]
path = "inbox"
settle_seconds = 0.5
quiet_seconds = 0
"""
# Inner first, after = "move"; outer second, after = "delete".
NESTED = ONE.replace('''[[watch]]
path = "inbox"
settle_seconds = 0.5
''', '''[[watch]]
path = "inbox/sub"
after = "move"
settle_seconds = 0.5
quiet_seconds = 0
[[watch]]
path = "inbox"
after = "delete"
settle_seconds = 0.5
''')


def junk(i: int) -> bytes:
    return b"%PDF-1.4\n%" + hashlib.sha256(str(i).encode()).hexdigest().encode() * 20 + b"\n%%EOF\n"


def files_under(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_nested_watches_are_refused_at_reload_and_not_watched_at_start(tmp_path):
    inbox = tmp_path / "inbox"
    (inbox / "sub").mkdir(parents=True)
    d = DaemonUnderTest(tmp_path)
    d.config.write_text(ONE, encoding="utf-8")
    d.start()
    try:
        d.config.write_text(NESTED, encoding="utf-8")
        mark = len(d.lines)
        d.signal(signal.SIGHUP)
        line = d.wait_for_line("config reload", start=mark)
        assert "config reload failed; keeping the old config" in line and "lies inside" in line, line
        # The old watch goes on (after = "keep"): the file is taken and stays.
        (inbox / "sub" / "a.pdf").write_bytes(junk(1))
        d.wait_documents(1, settled=True)
        report = json.loads(run(d.config, "status", "--json").stdout)
        assert report["config"]["reload_refused"] is True
        assert "lies inside" in report["config"]["reload"]["reason"]
        check = run(d.config, "status", "--check")
        assert check.exit_code == 1 and "was refused" in check.stdout, check.stdout
        assert d.stop() == 0

        # Started with them: neither is watched, each said in status.
        d.start()
        (inbox / "sub" / "b.pdf").write_bytes(junk(2))
        (inbox / "c.pdf").write_bytes(junk(3))
        report = json.loads(run(d.config, "status", "--json").stdout)
        not_watched = json.loads(report["daemon"]["details"])["folders_not_watched"]
        assert set(not_watched) == {str(inbox), str(inbox / "sub")}, not_watched
        check = run(d.config, "status", "--check")
        assert check.exit_code == 2 and "not watched" in check.stdout, check.stdout
        time.sleep(3)   # three rescans: nothing is taken, moved or deleted
        assert files_under(inbox) == ["c.pdf", "sub/a.pdf", "sub/b.pdf"]
        assert len(d.documents()) == 1
        assert d.stop() == 0

        # One watch again: the files left waiting are taken, none lost.
        d.config.write_text(ONE, encoding="utf-8")
        d.start()
        d.wait_until(lambda: len(d.documents()) == 3, 30, "the files left in place taken")
        assert d.stop() == 0
    finally:
        d.stop()
    assert_ledger_sound(d.config)


def test_a_source_step_left_waiting_is_not_carried_out_by_a_watch_now_in_a_nest(tmp_path, samples_dir):
    # The outer folder's delete waits (quiet_seconds) when the daemon stops;
    # it starts again with a watch nested inside: the outer one is not
    # watched, and its waiting delete is never carried out.
    inbox = tmp_path / "inbox"
    (inbox / "sub").mkdir(parents=True)
    d = DaemonUnderTest(tmp_path)
    waiting = ONE.replace('quiet_seconds = 0\n', 'after = "delete"\nquiet_seconds = 3600\n')
    d.config.write_text(waiting, encoding="utf-8")
    d.start()
    try:
        shutil.copy(samples_dir / "ofdrw__ofdrw" / "1.ofd", inbox / "sub" / "a.ofd")   # read: its delete waits
        d.wait_documents(1, settled=True)
        assert d.stop() == 0
        d.config.write_text(NESTED, encoding="utf-8")   # the outer one: after = "delete", quiet_seconds = 0
        d.start()
        d.wait_until(lambda: any("no longer watched" in (e.reason or "") for e in d.ledger().events(1)), 15,
                     "the waiting delete closed")
        assert files_under(inbox) == ["sub/a.ofd"]
        assert d.stop() == 0
    finally:
        d.stop()
    d.config.write_text(ONE, encoding="utf-8")
    assert_ledger_sound(d.config)
