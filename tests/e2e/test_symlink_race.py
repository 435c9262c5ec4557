"""An attacker with write access to a watched folder races a real daemon:
the subfolder holding a noticed file is swapped again and again
(renameat2 RENAME_EXCHANGE) with a symlink to the state folder or to the
folder holding the config. The live ledger and the config are never read,
moved or deleted. Also: processed/ gets the vault's modes under umask 022."""

from __future__ import annotations

import hashlib
import os
import threading
import time

import pytest

from tests.e2e.daemon_harness import DaemonUnderTest
from tests.integration.test_symlink_swap import exchange, exchange_supported

SAMPLE = "renoyuan__easyofd/original_invoice.xml"


@pytest.mark.parametrize("after", ["keep", "move", "delete"])
def test_a_daemon_raced_with_symlink_swaps_touches_nothing_outside(tmp_path, samples_dir, after):
    if not exchange_supported(tmp_path):
        pytest.skip("this filesystem has no RENAME_EXCHANGE")
    invoice = (samples_dir / SAMPLE).read_bytes()
    d = DaemonUnderTest(tmp_path, settle=0.2, scan_extra=f'after = "{after}"')
    d.start()
    state, site = tmp_path / "state", tmp_path
    ledger_file = state / "ledger.sqlite3"
    config_bytes = d.config.read_bytes()
    dept = tmp_path / "scan" / "dept"
    dept.mkdir()
    links = {"ledger.sqlite3": tmp_path / "scan" / "to-state", "agent.toml": tmp_path / "scan" / "to-site"}
    links["ledger.sqlite3"].symlink_to(state, target_is_directory=True)
    links["agent.toml"].symlink_to(site, target_is_directory=True)
    stop = threading.Event()
    swaps = [0]

    def attack():
        n = 0
        while not stop.is_set():
            name = "ledger.sqlite3" if n % 2 == 0 else "agent.toml"
            n += 1
            try:
                (dept / name).write_bytes(invoice.replace(b"00008006", f"{n:08d}".encode()))
            except OSError:
                continue  # dept is the symlink right now (a previous swap not undone)
            exchange(dept, links[name])
            swaps[0] += 1
            time.sleep(0.001 * (n % 7))
            exchange(dept, links[name])

    attacker = threading.Thread(target=attack)
    attacker.start()
    try:
        time.sleep(6)
    finally:
        stop.set()
        attacker.join()
    try:
        time.sleep(2)
        assert d.proc.poll() is None, "the daemon died"
        assert swaps[0] > 50
        assert ledger_file.is_file(), "the live ledger was deleted or moved"
        assert d.config.read_bytes() == config_bytes
        vault = {p.name for p in (state / "vault" / "objects").glob("*/*/*")}
        assert hashlib.sha256(config_bytes).hexdigest() not in vault, "the config was read into the vault"
        assert not (state / "processed").exists() and not (site / "processed").exists()
        with d.ledger() as led:
            assert led.integrity_check() == "ok"
            assert led.list_documents(limit=0), "the attack files themselves were taken"
            for doc in led.list_documents(limit=0):
                assert b"SQLite format 3" not in (state / "vault" / "objects" / doc.sha256[:2] / doc.sha256[2:4]
                                                  / doc.sha256).read_bytes()[:16], "the ledger was read"
    finally:
        d.stop()


def test_processed_folders_and_files_get_the_vault_modes_under_umask_022(tmp_path, samples_dir):
    d = DaemonUnderTest(tmp_path, scan_extra='after = "move"')
    old = os.umask(0o022)
    try:
        d.start()
    finally:
        os.umask(old)
    try:
        (tmp_path / "scan" / "a").mkdir()
        src = tmp_path / "scan" / "a" / "inv.xml"
        src.write_bytes((samples_dir / SAMPLE).read_bytes())
        os.chmod(src, 0o644)
        d.wait_until(lambda: not src.exists(), 20, "the invoice moved")
        (moved,) = (tmp_path / "scan" / "a" / "processed").glob("*/inv.xml")
        assert oct(moved.parent.parent.stat().st_mode & 0o777) == oct(0o750)
        assert oct(moved.parent.stat().st_mode & 0o777) == oct(0o750)
        assert oct(moved.stat().st_mode & 0o777) == oct(0o640)
    finally:
        d.stop()
