"""Group commit under SIGKILL: a real daemon (and a real `ingest`) killed
while a burst is being taken in groups. Whatever moment the kill hits (a
group gathering its files, writing its rows, committing, or carrying out
source steps after the commit), every source that was deleted has a durable
vault object and its ledger rows, every file is either still in place or
recorded, and after a restart everything is taken and `audit ledger` passes."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from agent.ledger import Ledger
from agent.vault import Vault
from tests.e2e.daemon_harness import OUT_AND_NAS, DaemonUnderTest
from tests.support.audit import assert_ledger_sound

INVOICE = "renoyuan__easyofd/original_invoice.xml"  # a real 数电 XML that passes validation
BURST = 1_500


def invoices(samples_dir: Path, n: int, first: int) -> dict[str, bytes]:
    """`n` distinct copies of a real XML invoice, numbered from `first`."""
    template = (samples_dir / INVOICE).read_bytes()
    return {f"x{i:05d}.xml": template.replace(b"00008006", b"%08d" % (first + i)) for i in range(n)}


def recorded(ledger_path: Path, vault: Vault, folder: Path, files: dict[str, bytes]) -> tuple[set, set]:
    """(names with a committed arrival naming their path and a document of
    their bytes whose vault object is whole, names whose source is gone)."""
    with Ledger(ledger_path, readonly=True) as led:
        rows = led.conn.execute("SELECT s.original_path, d.sha256 FROM sources s JOIN documents d "
                                "ON d.id = s.document_id").fetchall()
    by_path = {path: sha for path, sha in rows}
    ok = {name for name, data in files.items()
          if by_path.get(str(folder / name)) == hashlib.sha256(data).hexdigest()
          and vault.verify(hashlib.sha256(data).hexdigest())}
    gone = {name for name in files if not (folder / name).exists()}
    return ok, gone


@pytest.mark.slow
def test_a_daemon_killed_in_the_middle_of_a_group_loses_no_source(tmp_path, samples_dir):
    (tmp_path / "out").mkdir()
    (tmp_path / "nas").mkdir()
    d = DaemonUnderTest(tmp_path, scan_extra='after = "delete"', extra=OUT_AND_NAS)
    files = invoices(samples_dir, BURST, 30_000_000)
    staging = tmp_path / "staging"
    staging.mkdir()
    for name, data in files.items():
        (staging / name).write_bytes(data)
    scan = tmp_path / "scan"
    ledger_path, vault = tmp_path / "state" / "ledger.sqlite3", Vault(tmp_path / "state" / "vault")
    try:
        d.start()
        for name in files:
            os.rename(staging / name, scan / name)  # the burst at once, as a copy tool would

        def deleting() -> bool:
            # Groups are back to back now: captures committed, some sources
            # already deleted, most still to take.
            ok, gone = recorded(ledger_path, vault, scan, files)
            return len(gone) >= 20 and len(ok) < BURST // 2
        d.wait_until(deleting, 120, "the burst's first sources to be deleted")
        d.kill()  # SIGKILL, mid-burst: inside a group, between groups, or after a COMMIT
        ok, gone = recorded(ledger_path, vault, scan, files)
        assert gone, "the kill came before any source was deleted: it tests nothing"
        assert gone <= ok, f"sources deleted without a durable vault object and row: {sorted(gone - ok)[:5]}"
        assert ok | {n for n in files if (scan / n).exists()} == set(files), "files neither in place nor recorded"
        assert len(ok) < BURST, "the kill came after the whole burst was taken"

        d.start()
        d.wait_until(lambda: recorded(ledger_path, vault, scan, files)[1] == set(files), 300,
                     "every source to be taken and deleted after the restart")
        ok, _ = recorded(ledger_path, vault, scan, files)
        assert ok == set(files)
        assert d.stop(timeout=60) == 0
        assert_ledger_sound(d.config)
    finally:
        d.ensure_gone()


@pytest.mark.slow
def test_an_ingest_killed_in_the_middle_of_a_group_leaves_a_sound_ledger(tmp_path, samples_dir):
    d = DaemonUnderTest(tmp_path)  # only its config and folders: ingest runs alone
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    files = invoices(samples_dir, BURST, 40_000_000)
    for name, data in files.items():
        (inbox / name).write_bytes(data)
    ledger_path, vault = tmp_path / "state" / "ledger.sqlite3", Vault(tmp_path / "state" / "vault")
    cmd = [sys.executable, "-m", "service", "--config", str(d.config), "ingest", "--no-process", "-q", str(inbox)]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        def some_recorded() -> bool:
            try:
                return len(recorded(ledger_path, vault, inbox, files)[0]) >= 100
            except sqlite3.Error:  # not made yet, or not migrated yet
                return False
        d.wait_until(some_recorded, 120, "ingest's first groups")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        ok, gone = recorded(ledger_path, vault, inbox, files)
        assert not gone, "ingest never moves or deletes a source"
        assert 100 <= len(ok) < BURST, "the kill came after the whole folder was taken"
        with Ledger(ledger_path) as led:
            assert led.integrity_check() == "ok"
        again = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stdout + again.stderr
        assert recorded(ledger_path, vault, inbox, files)[0] == set(files)
        assert_ledger_sound(d.config)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
