"""Resource faults on a real daemon: the vault disk fills up, the ledger
disk turns read-only. Both use a small tmpfs mounted by the test (root
only; skipped with the reason elsewhere)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.vault import Vault
from tests.e2e.daemon_harness import DaemonUnderTest
from tests.e2e.test_state_not_ready import NotifyListener


def _mount(*args: str) -> None:
    r = subprocess.run(["mount", *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise OSError(r.stderr.strip() or f"mount {' '.join(args)} failed")


@pytest.fixture
def tmpfs():
    """mount(path, size) mounts a tmpfs there; all are unmounted at the end."""
    mounted: list[Path] = []

    def mount(path: Path, size: str) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        try:
            _mount("-t", "tmpfs", "-o", f"size={size},mode=0750", "tmpfs", str(path))
        except (OSError, FileNotFoundError) as e:
            pytest.skip(f"cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN): {e}")
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _heartbeat(d: DaemonUnderTest) -> dict:
    r = subprocess.run([sys.executable, "-m", "service", "--config", str(d.config), "status", "--json"],
                       capture_output=True, text=True, timeout=30, cwd=d.root)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["daemon"] or {}


def test_full_vault_disk_pauses_intake_leaves_nothing_partial_and_resumes(tmp_path, tmpfs):
    d = DaemonUnderTest(tmp_path, settle=0.3)
    vault_dir = tmpfs(tmp_path / "state" / "vault", "2m")
    blobs = [b"%PDF-1.4\n" + os.urandom(700 * 1024) for _ in range(3)]
    d.start()
    try:
        for i, blob in enumerate(blobs[:2]):
            (tmp_path / "scan" / f"fits{i}.pdf").write_bytes(blob)
        d.wait_documents(2, timeout=30)
        mark = len(d.lines)
        (tmp_path / "scan" / "too-big-for-the-disk.pdf").write_bytes(blobs[2])
        line = d.wait_for_line("intake paused", start=mark, timeout=30)
        assert "No space left on device" in line and "level=error" in line

        beat = d.wait_until(lambda: (b := _heartbeat(d)).get("activity") == "intake paused" and b, 20,
                            "the heartbeat to show the pause")
        assert "No space left on device" in json.loads(beat["details"])["intake_paused"]

        vault = Vault(vault_dir)
        assert list(vault.tmp.iterdir()) == [], "a partial temp file was left behind"
        objects = list(vault.iter_objects())
        assert len(objects) == 2 and all(vault.verify(sha) for sha in objects)
        assert not vault.exists(hashlib.sha256(blobs[2]).hexdigest())
        assert (tmp_path / "scan" / "too-big-for-the-disk.pdf").read_bytes() == blobs[2]
        assert d.proc.poll() is None

        _mount("-o", "remount,size=16m", str(vault_dir))  # space returns
        d.wait_for_line("intake resumed", start=mark, timeout=60)
        docs = d.wait_documents(3, timeout=30)
        assert {doc.sha256 for doc in docs} == {hashlib.sha256(b).hexdigest() for b in blobs}
        assert all(vault.verify(doc.sha256) for doc in docs)
        d.wait_until(lambda: _heartbeat(d).get("activity") != "intake paused", 20, "the pause to clear")
    finally:
        d.stop()


def test_read_only_ledger_disk_is_a_clear_error_and_no_crash_loop(tmp_path, tmpfs, monkeypatch):
    # A tmpfs cannot be remounted read-only while SQLite holds files open for
    # writing ("mount point is busy"), so the daemon is started on a state
    # disk that is already read-only, as after an ext4 errors=remount-ro and
    # a restart: the case where exiting would become a systemd restart loop.
    d = DaemonUnderTest(tmp_path, settle=0.3)
    state = tmpfs(tmp_path / "state", "32m")
    d.start()
    (tmp_path / "scan" / "before.pdf").write_bytes(b"%PDF-1.4\n% before\n%%EOF\n")
    d.wait_documents(1, timeout=30, settled=True)
    d.stop()
    _mount("-o", "remount,ro", str(state))
    for i in range(3):
        (tmp_path / "scan" / f"during{i}.pdf").write_bytes(f"%PDF-1.4\n% during {i}\n%%EOF\n".encode())
    mark = len(d.lines)
    notify = NotifyListener(tmp_path / "notify.sock")  # as systemd's Type=notify
    monkeypatch.setenv("NOTIFY_SOCKET", str(notify.path))
    d.start(wait_ready=False)
    try:
        d.wait_for_line("read-only", start=mark, timeout=30)
        fields = [f for m in notify.drain(10) for f in m.splitlines()]  # long enough for a spin or crash loop
        assert d.proc.poll() is None, "the daemon exited on a read-only ledger disk"
        assert "READY=1" not in fields, "READY=1 while the state cannot be opened"
        assert any(f.startswith("EXTEND_TIMEOUT_USEC=") for f in fields), fields
        window = d.lines[mark:]
        failures = [l for l in window if "the ledger's disk is read-only" in l]
        assert failures and all("remount the state folder read-write" in l for l in failures)
        assert len(failures) <= 5, f"{len(failures)} failures in ~10 s is a spin, not a backoff"
        assert len(window) < 30, "\n".join(window[-20:])
        assert not any("Traceback" in l for l in window)

        _mount("-o", "remount,rw", str(state))
        notify.wait_for("READY=1", timeout=90)
        docs = d.wait_documents(4, timeout=90, settled=True)
        assert sorted(doc.original_name for doc in docs) == ["before.pdf", "during0.pdf", "during1.pdf",
                                                            "during2.pdf"]
        with d.ledger() as led:
            assert led.integrity_check() == "ok"
    finally:
        d.stop()
        notify.close()
