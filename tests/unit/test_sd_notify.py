"""sd_notify against a real AF_UNIX datagram socket, as systemd would listen."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from service import systemd


@pytest.fixture
def listener(tmp_path: Path, monkeypatch) -> Iterator[socket.socket]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def receive(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def test_ready_status_watchdog_stopping_arrive_as_datagrams(listener):
    assert systemd.ready("queued=0 extracting=0")
    assert receive(listener) == "READY=1\nSTATUS=queued=0 extracting=0\n"
    assert systemd.ready()
    assert receive(listener) == "READY=1\n"
    assert systemd.status("queued=12 failed=1")
    assert receive(listener) == "STATUS=queued=12 failed=1\n"
    assert systemd.watchdog()
    assert receive(listener) == "WATCHDOG=1\n"
    assert systemd.stopping("draining 3")
    assert receive(listener) == "STOPPING=1\nSTATUS=draining 3\n"
    assert systemd.stopping()
    assert receive(listener) == "STOPPING=1\n"


def test_notify_sends_any_fields_in_one_datagram_without_newline_injection(listener):
    assert systemd.notify(status="a\nREADY=1", errno=5)
    assert receive(listener) == "STATUS=a READY=1\nERRNO=5\n"


def test_unicode_status_is_sent_as_utf8(listener):
    assert systemd.status("发票 12 张")
    assert receive(listener) == "STATUS=发票 12 张\n"


def test_abstract_namespace_socket(monkeypatch):
    name = f"fapiao-agent-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert systemd.watchdog()
        assert receive(sock) == "WATCHDOG=1\n"


def test_nothing_happens_without_notify_socket(monkeypatch, tmp_path):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.ready() is False
    assert systemd.watchdog() is False
    assert systemd.notify(env={}, READY=1) is False


@pytest.mark.parametrize("value", ["", "relative/path", "@", "vsock:2:1234"])
def test_unusable_socket_addresses_are_ignored(value):
    assert systemd.notify(env={"NOTIFY_SOCKET": value}, READY=1) is False


def test_a_socket_nobody_listens_on_does_not_raise(tmp_path):
    gone = tmp_path / "gone.sock"
    assert systemd.notify(env={"NOTIFY_SOCKET": str(gone)}, READY=1) is False


def test_explicit_env_overrides_the_process_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    path = tmp_path / "explicit.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(2)
        assert systemd.notify(env={"NOTIFY_SOCKET": str(path)}, READY=1)
        assert receive(sock) == "READY=1\n"


@pytest.mark.parametrize("env,expected", [
    ({}, None),
    ({"WATCHDOG_USEC": "30000000"}, 30.0),
    ({"WATCHDOG_USEC": "1500000", "WATCHDOG_PID": str(os.getpid())}, 1.5),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "-5"}, None),
    ({"WATCHDOG_USEC": "soon"}, None),
])
def test_watchdog_interval(env, expected):
    assert systemd.watchdog_interval(env) == expected


def test_watchdog_interval_reads_the_process_environment(monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "20000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert systemd.watchdog_interval() == 20.0
