"""A real daemon process on temp folders: capture, restarts, signals, lock."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time

from tests.e2e.daemon_harness import DaemonUnderTest
from tests.support.audit import assert_ledger_sound


def junk(i: int) -> bytes:
    return b"%PDF-1.4\n%" + hashlib.sha256(str(i).encode()).hexdigest().encode() * 20 + b"\n%%EOF\n"


def test_slow_writer_is_captured_once_and_complete(tmp_path):
    daemon = DaemonUnderTest(tmp_path, settle=2.0)  # the default settle_seconds
    daemon.start()
    path = daemon.root / "scan" / "slow.pdf"
    chunks = [junk(i) for i in range(5)]
    with open(path, "wb") as f:
        for chunk in chunks:
            f.write(chunk)
            f.flush()
            time.sleep(0.6)  # 5 chunks over 3 s
    whole = b"".join(chunks)
    docs = daemon.wait_documents(1)
    time.sleep(1.5)  # a second capture, if any, would show up now
    docs = daemon.documents()
    assert len(docs) == 1
    assert docs[0].sha256 == hashlib.sha256(whole).hexdigest()
    assert docs[0].size == len(whole)
    daemon.stop()
    assert_ledger_sound(daemon.config)


def test_polling_folder_captures(tmp_path):
    d = DaemonUnderTest(tmp_path, scan_extra="poll = true")
    d.start()
    try:
        assert "mode=poll" in d.wait_for_line("scan kind=scanner")
        (tmp_path / "scan" / "a.pdf").write_bytes(junk(1))
        docs = d.wait_documents(1, timeout=20)
        assert docs[0].original_name == "a.pdf"
    finally:
        d.stop()
    assert_ledger_sound(d.config)


def test_files_dropped_while_stopped_are_captured_on_start(daemon):
    sub = daemon.root / "scan" / "finance"
    sub.mkdir()
    for i in range(5):
        (sub / f"f{i}.pdf").write_bytes(junk(i))
    (daemon.root / "scan" / "~$lock.docx").write_bytes(b"x")  # ignored temp file
    (daemon.root / "scan" / "x.part").write_bytes(b"x")
    daemon.start()
    docs = daemon.wait_documents(5)
    time.sleep(1)
    assert len(daemon.documents()) == 5
    with daemon.ledger() as led:
        assert {s.details["label"] for d in docs for s in led.sources(d.id)} == {"finance"}
    assert_ledger_sound(daemon.config)


def test_sigkill_mid_burst_then_restart_loses_nothing(daemon):
    daemon.start()
    n = 120
    for i in range(n):
        (daemon.root / "scan" / f"b{i:03d}.pdf").write_bytes(junk(100 + i))
    daemon.wait_documents(10, timeout=30)
    daemon.kill()
    daemon.start()
    docs = daemon.wait_documents(n, timeout=60, settled=True)
    assert len({d.sha256 for d in docs}) == n
    with daemon.ledger() as led:
        assert led.integrity_check() == "ok"
    assert daemon.stop() == 0
    assert_ledger_sound(daemon.config)


def test_sigterm_exits_cleanly_within_the_timeout(daemon):
    daemon.start()
    for i in range(20):
        (daemon.root / "scan" / f"t{i}.pdf").write_bytes(junk(200 + i))
    time.sleep(1)
    t = time.monotonic()
    daemon.signal(signal.SIGTERM)
    daemon.proc.wait(timeout=15)
    assert time.monotonic() - t < 12  # stop_timeout_s = 10 in the harness config
    assert daemon.proc.returncode == 0
    assert not any("Traceback" in l for l in daemon.lines)
    daemon.wait_for_line("msg=stopped")
    assert_ledger_sound(daemon.config)


def test_sighup_applies_a_new_folder_and_keeps_old_config_when_invalid(daemon):
    daemon.start()
    extra_dir = daemon.root / "extra"
    extra_dir.mkdir()
    daemon.config.write_text(daemon.config.read_text() + '\n[[watch]]\npath = "extra"\nkind = "scanner"\nsettle_seconds = 0.5\n')
    mark = len(daemon.lines)
    daemon.signal(signal.SIGHUP)
    daemon.wait_for_line("config reloaded", start=mark)
    (extra_dir / "new.pdf").write_bytes(junk(300))
    docs = daemon.wait_documents(1)
    assert docs[0].original_name == "new.pdf"
    assert_ledger_sound(daemon.config)  # before the config below makes it unreadable
    daemon.config.write_text("[agent]\nbogus = 1\n")
    mark = len(daemon.lines)
    daemon.signal(signal.SIGHUP)
    line = daemon.wait_for_line("config reload failed; keeping the old config", start=mark)
    assert "agent.bogus: unknown key" in line
    (extra_dir / "after.pdf").write_bytes(junk(301))
    daemon.wait_documents(2)


def test_a_second_daemon_is_refused(daemon):
    daemon.start()
    r = subprocess.run([sys.executable, "-m", "service", "--config", str(daemon.config), "run"],
                       capture_output=True, text=True, timeout=30, cwd=daemon.root)
    assert r.returncode == 1
    assert f"another fapiao-agent daemon (pid {daemon.proc.pid}) is already running" in r.stderr
    assert_ledger_sound(daemon.config)


def test_after_move_and_delete(tmp_path, samples_dir):
    d = DaemonUnderTest(tmp_path, scan_extra='after = "move"')
    d.start()
    try:
        invoice = (samples_dir / "renoyuan__easyofd/original_invoice.xml").read_bytes()
        (tmp_path / "scan" / "m.xml").write_bytes(invoice)
        (tmp_path / "scan" / "junk.pdf").write_bytes(junk(400))
        d.wait_documents(2, settled=True)
        d.wait_until(lambda: not (tmp_path / "scan" / "m.xml").exists(), 10, "m.xml moved")
        moved = list((tmp_path / "scan" / "processed").glob("*/m.xml"))
        assert len(moved) == 1 and moved[0].read_bytes() == invoice
        time.sleep(1)
        assert len(d.documents()) == 2  # the processed/ copy is not taken again
        # An unreadable capture is never moved: the file may be a slow writer's half.
        assert (tmp_path / "scan" / "junk.pdf").read_bytes() == junk(400)
    finally:
        d.stop()
    assert_ledger_sound(d.config)


def test_bad_files_are_refused_and_the_daemon_stays_up(daemon):
    daemon.start()
    os.mkfifo(daemon.root / "scan" / "pipe.pdf")
    (daemon.root / "scan" / "empty.pdf").write_bytes(b"")
    (daemon.root / "scan" / "link.pdf").symlink_to("/etc/passwd")
    (daemon.root / "scan" / "ok.pdf").write_bytes(junk(500))
    daemon.wait_documents(1, settled=True)
    with daemon.ledger() as led:
        reasons = " | ".join(r["reason"] for r in led.refusals())
    assert "pipe.pdf: is a FIFO (named pipe), not a regular file" in reasons
    assert "link.pdf: is a symlink; symlinks in watched folders are not followed" in reasons
    # Junk known from its size alone is refused, not stored, and left in place.
    assert "empty.pdf: empty: the file has no bytes" in reasons
    assert (daemon.root / "scan" / "empty.pdf").exists()
    assert [d.original_name for d in daemon.documents()] == ["ok.pdf"]
    assert daemon.proc.poll() is None
    assert_ledger_sound(daemon.config)
