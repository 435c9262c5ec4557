"""A daemon that cannot open its state never says READY=1 (sd_notify): it
exits non-zero with one clear line and tells systemd why (STATUS=, ERRNO=).
A real `fapiao-agent run` talks to a real unix datagram socket named by
NOTIFY_SOCKET, as under systemd's Type=notify."""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import time
from pathlib import Path

import pytest

from tests.e2e.daemon_harness import DaemonUnderTest
from tests.support.audit import assert_ledger_sound


class NotifyListener:
    """The service manager's end of NOTIFY_SOCKET: every datagram received."""

    def __init__(self, path: Path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []

    def drain(self, seconds: float) -> list[str]:
        """Collect datagrams for `seconds`; all received so far."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                self.messages.append(self.sock.recv(65536).decode())
            except socket.timeout:
                pass
        return self.messages

    def wait_for(self, text: str, timeout: float) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for m in self.drain(0.2):
                if text in m.splitlines():
                    return m
        raise AssertionError(f"no {text!r} within {timeout}s; got {self.messages}")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify(tmp_path, monkeypatch):
    listener = NotifyListener(tmp_path / "notify.sock")
    monkeypatch.setenv("NOTIFY_SOCKET", str(listener.path))  # the daemon inherits it
    yield listener
    listener.close()


def _exits(d: DaemonUnderTest, timeout: float = 30) -> int:
    try:
        return d.proc.wait(timeout=timeout)
    except Exception:
        d.kill()
        raise AssertionError("the daemon kept running:\n" + "\n".join(d.lines[-20:]))


def _fields(messages: list[str]) -> list[str]:
    return [line for m in messages for line in m.splitlines()]


def test_good_state_sends_ready(tmp_path, notify):
    d = DaemonUnderTest(tmp_path)
    d.start(wait_ready=False)
    try:
        ready = notify.wait_for("READY=1", timeout=30)
        assert any(f.startswith("STATUS=") for f in ready.splitlines())
        d.wait_for_line("msg=started", timeout=10)
    finally:
        assert d.stop() == 0
    assert_ledger_sound(d.config)


def _assert_refused_start(d: DaemonUnderTest, notify: NotifyListener, *, line_has: str) -> list[str]:
    d.start(wait_ready=False)
    code = _exits(d)
    time.sleep(0.3)  # the stderr reader thread
    fields = _fields(notify.drain(0.5))
    assert code == 1, "\n".join(d.lines)
    assert "READY=1" not in fields, fields
    status = [f for f in fields if f.startswith("STATUS=FAILED: ")]
    assert status and line_has in status[0], fields
    errors = [l for l in d.lines if "level=error" in l and "not started" in l]
    assert len(errors) == 1 and line_has in errors[0], "\n".join(d.lines)
    assert not any("Traceback" in l for l in d.lines)
    return fields


def test_corrupt_ledger_exits_without_ready(tmp_path, notify):
    d = DaemonUnderTest(tmp_path)
    junk = b"this was a ledger before a bad copy\n" * 200
    (tmp_path / "state" / "ledger.sqlite3").write_bytes(junk)
    _assert_refused_start(d, notify, line_has="not a database")
    assert (tmp_path / "state" / "ledger.sqlite3").read_bytes() == junk, "the broken ledger was changed"


def test_lock_held_exits_without_ready(tmp_path, notify):
    d = DaemonUnderTest(tmp_path)
    fd = os.open(tmp_path / "state" / "daemon.lock", os.O_RDWR | os.O_CREAT, 0o640)
    try:
        os.pwrite(fd, b"424242", 0)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        _assert_refused_start(d, notify, line_has="pid 424242")
    finally:
        os.close(fd)


def test_state_folder_that_cannot_be_created_exits_without_ready(tmp_path, notify):
    d = DaemonUnderTest(tmp_path)
    (tmp_path / "blocker").write_text("a file where the state folder's parent should be\n")
    d.config.write_text(d.config.read_text().replace('state_dir = "state"', 'state_dir = "blocker/state"'))
    fields = _assert_refused_start(d, notify, line_has="blocker/state")
    assert f"ERRNO={errno.ENOTDIR}" in fields
