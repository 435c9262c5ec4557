"""Log lines reach journald with their priority: a real daemon whose stderr
is a file named by JOURNAL_STREAM (DEVICE:INODE, as systemd sets it) starts
each line with `<3>` (error), `<4>` (warning), `<6>` (info); the same
daemon whose JOURNAL_STREAM names another file writes plain text."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.daemon_harness import DaemonUnderTest
from tests.support.audit import assert_ledger_sound

# A watched folder that does not exist (an error) and an https destination
# without certificate checks (a warning), so one start logs all three levels.
EXTRA = """
[[watch]]
path = "not-there"
kind = "scanner"

[[destination]]
name = "erp"
url = "https://127.0.0.1:9/invoices"
tls_verify = false
"""


def _stream_id(path: Path) -> str:
    st = os.stat(path)
    return f"{st.st_dev}:{st.st_ino}"


def _run_daemon(root: Path, journal_stream: str) -> list[str]:
    d = DaemonUnderTest(root, extra=EXTRA)
    log = root / "stderr.log"
    log.touch()
    env = {**os.environ, "JOURNAL_STREAM": journal_stream if journal_stream != "self" else _stream_id(log)}
    with open(log, "a") as err:
        proc = subprocess.Popen([sys.executable, "-m", "service", "--config", str(d.config), "run"],
                                stdout=subprocess.DEVNULL, stderr=err, cwd=root, env=env)
    try:
        deadline = time.monotonic() + 30
        while "msg=started" not in log.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.1)
        assert "msg=started" in log.read_text(), log.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert_ledger_sound(d.config)
    return log.read_text(encoding="utf-8").splitlines()


def _one(lines: list[str], text: str) -> str:
    found = [l for l in lines if text in l]
    assert found, f"no line with {text!r}:\n" + "\n".join(lines)
    return found[0]


def test_daemon_lines_carry_syslog_priorities_when_stderr_is_the_journal(tmp_path):
    lines = _run_daemon(tmp_path, "self")
    assert lines and all(l[:3] in ("<3>", "<4>", "<6>") for l in lines), "\n".join(lines)
    assert _one(lines, "config problem").startswith("<3>ts=")
    assert "level=error" in _one(lines, "config problem")
    assert _one(lines, "TLS certificate checks are OFF").startswith("<4>ts=")
    assert _one(lines, "msg=started").startswith("<6>ts=")
    assert _one(lines, "msg=stopped").startswith("<6>ts=")


def test_plain_lines_when_journal_stream_names_another_file(tmp_path):
    other = tmp_path / "the-journal-of-a-parent"
    other.write_text("")
    lines = _run_daemon(tmp_path, _stream_id(other))
    assert _one(lines, "config problem").startswith("ts=")
    assert _one(lines, "msg=started").startswith("ts=")
    assert not any(l.startswith("<") for l in lines), "\n".join(lines)


SCRIPT = """
import logging
from service import log
log.setup("json", level=logging.DEBUG)
for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL):
    logging.getLogger("fapiao.probe").log(level, "probe at " + logging.getLevelName(level))
"""


def test_every_level_and_the_json_format(tmp_path):
    log = tmp_path / "stderr.log"
    log.touch()
    with open(log, "a") as err:
        r = subprocess.run([sys.executable, "-c", SCRIPT], stderr=err, timeout=60,
                           env={**os.environ, "JOURNAL_STREAM": _stream_id(log)})
    assert r.returncode == 0
    lines = log.read_text(encoding="utf-8").splitlines()
    assert [l[:4] for l in lines] == ["<7>{", "<6>{", "<4>{", "<3>{", "<2>{"], lines
    assert '"msg": "probe at ERROR"' in lines[3]
