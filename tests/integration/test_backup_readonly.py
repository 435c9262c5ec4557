"""A read-only backup disk is a pause a person must fix, not an outage that
may pass (attackF finding 5): `status --check` warns at once instead of
after backup_unreachable_warn_minutes, and once the disk takes writes again
the pause lifts and its error no longer shows as the target's last error.

A real read-only mount (a bind mount of the target folder remounted ro),
so the errno is the kernel's; it needs root, and is skipped without.
"""

from __future__ import annotations

import os
import random
import subprocess

import pytest

from agent.backup.base import open_target
from agent.backup.mirror import mirror_step, snapshot_step
from agent.ledger import Ledger
from agent.vault import Vault
from tests.integration.test_backup_ledger import cli, ingest
from tests.integration.test_backup_trust import alive, nassite, now  # noqa: F401  (fixture)


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@pytest.fixture
def readonly(nassite):
    root, config, cfg = nassite
    nas = root / "nas"
    if os.geteuid() != 0:
        pytest.skip("a read-only bind mount needs root")
    if not _mount("--bind", str(nas), str(nas)):
        pytest.skip("mount --bind is not permitted here (a container without CAP_SYS_ADMIN?)")
    try:
        assert _mount("-o", "remount,bind,ro", str(nas)), "remount read-only failed"
        yield root, config, cfg
    finally:
        subprocess.run(["umount", str(nas)], capture_output=True)


def test_a_read_only_disk_pauses_the_target_and_the_pause_and_its_error_go_once_it_is_writable(
        readonly, samples_dir):
    root, config, cfg = readonly
    nas = open_target(cfg.backups[0])
    vault = Vault(cfg.vault_dir)
    ingest(config, samples_dir, range(30, 31), root / "in2")
    with Ledger(cfg.ledger_path) as ledger:
        out = mirror_step(ledger, vault, nas, now=now(), rng=random.Random(1))
        assert out.paused and out.newly_paused and out.put == 0 and out.unavailable is None, out
        assert "Read-only file system" in out.paused
        t = ledger.backup_target("nas")
        assert t["paused_error"] == out.paused and t["unreachable_since"] is None and t["backlog"] == 1
    status = cli(config, "backup", "status").output
    assert "PAUSED since" in status and "UNREACHABLE" not in status, status
    alive(cfg)
    check = cli(config, "status", "--check")
    assert check.exit_code == 1 and "backup target nas paused for" in check.output, check.output

    assert subprocess.run(["umount", str(root / "nas")]).returncode == 0   # writable again
    with Ledger(cfg.ledger_path) as ledger:
        out = mirror_step(ledger, vault, nas, now=now(), rng=random.Random(2))
        assert out.paused is None and out.resumed and out.put == 1, out
        t = ledger.backup_target("nas")
        assert t["paused_error"] is None and t["last_error"] is None, t
    assert "last error" not in cli(config, "backup", "status").output


def test_a_pause_lifts_when_a_snapshot_is_the_first_write_that_works(readonly):
    root, config, cfg = readonly
    nas = open_target(cfg.backups[0])
    with Ledger(cfg.ledger_path) as ledger:
        with pytest.raises(Exception, match="Read-only file system") as raised:
            snapshot_step(ledger, nas, now=now())
        ledger.pause_backup_target("nas", str(raised.value), now=now().isoformat())
    assert subprocess.run(["umount", str(root / "nas")]).returncode == 0
    with Ledger(cfg.ledger_path) as ledger:
        # Nothing is due: only the next snapshot tells that the disk takes writes again.
        snapshot_step(ledger, nas, now=now())
        t = ledger.backup_target("nas")
        assert t["paused_error"] is None and t["last_error"] is None, t
