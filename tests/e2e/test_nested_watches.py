"""Two watches on nested folders, which `config check` refuses, are never
run: a reload to them is refused (the old config kept, said in `status`),
and a daemon started with them watches neither (NOT WATCHED, CRITICAL).
Before, the reload said "config reloaded" and a start only logged it: the
inner watch (after = "move") moved a file to sub/processed/DATE/, the outer
one (after = "delete") took it again there and deleted it."""

from __future__ import annotations

import hashlib
import json
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
