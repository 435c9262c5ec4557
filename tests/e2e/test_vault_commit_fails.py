"""The vault takes a group's bytes into tmp/ but cannot give them their
final names (objects/ cannot take a new folder: its mode here, a full inode
table or a failing sync in the field). That is the vault's disk, as much as
a write that fails: intake pauses with the vault's reason, the heartbeat and
`status` go on (the daemon is alive), no file is lost or half recorded, and
once the vault can take them the files come in and are delivered."""

from __future__ import annotations

import json

from tests.e2e.test_extract_limits import drop, good_invoice
from tests.e2e.test_status_check import cli
from tests.e2e.test_unreadable_folder import daemon_without_dac, pytestmark  # noqa: F401 - root and setpriv
from tests.support.audit import assert_ledger_sound


def test_a_vault_that_cannot_name_its_objects_pauses_intake_and_says_so(tmp_path, samples_dir):
    d = daemon_without_dac(tmp_path, rescan_s=300)
    d.start()
    objects = tmp_path / "state" / "vault" / "objects"
    try:
        objects.chmod(0o555)
        drop(tmp_path / "scan", "a.xml", good_invoice(samples_dir, 7201))

        def paused() -> str | None:
            r = cli(d, "status", "--json")
            return json.loads(json.loads(r.stdout)["daemon"]["details"] or "{}").get("intake_paused")

        why = d.wait_until(paused, 30, "intake paused")
        assert "vault write failed: Permission denied" in why, why
        check = cli(d, "status", "--check")
        assert check.returncode == 2 and "intake paused" in check.stdout, check.stdout
        assert "heartbeat is stale" not in check.stdout and "not running" not in check.stdout
        assert not any("main loop step failed" in line for line in d.lines), "\n".join(d.lines[-10:])
        assert d.documents() == []
        assert (tmp_path / "scan" / "a.xml").exists()

        objects.chmod(0o755)
        d.wait_documents(1, timeout=60, settled=True)
        d.wait_until(lambda: list((tmp_path / "out").rglob("*.xml")), 30, "the invoice delivered")
        d.wait_until(lambda: paused() is None, 15, "intake resumed")
        resumed = [line for line in d.lines if "intake resumed" in line]
        assert len(resumed) == 1, resumed   # no flapping between paused and resumed
    finally:
        objects.chmod(0o755)
        assert d.stop() == 0
    assert_ledger_sound(d.config)
