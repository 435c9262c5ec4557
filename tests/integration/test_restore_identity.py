"""A ledger restored from its target is still the ledger the target's
marker names (attack on this session's fixes): restored from a snapshot
taken before the ledger had its id (the first one after an install, or an
older version's), it made a new id, and its own backup target was paused
as "another agent's ledger (a copied config?)" for good."""

from __future__ import annotations

import datetime as dt

from agent.backup.base import open_target
from agent.backup.identity import check_identity
from agent.backup.mirror import put_snapshot, snapshot_step
from agent.backup.restore import restore
from agent.backup.snapshot import snapshot_sqlite
from agent.config import load_config
from agent.ledger import Ledger
from agent.vault import Vault
from tests.integration.test_backup_ledger import drain, ingest, write_config

T0 = dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.timezone.utc)
LATER = T0 + dt.timedelta(hours=1)


def _site(tmp_path, samples_dir):
    (tmp_path / "nas").mkdir()
    config = write_config(tmp_path, [{"name": "nas", "url": "file://nas"}])
    cfg = load_config(config)
    ingest(config, samples_dir, range(1, 3), tmp_path / "in")
    return cfg, open_target(cfg.backups[0])


def _restored_is_recognised(tmp_path, nas, own_id: str) -> None:
    restore(nas, tmp_path / "restored" / "state", now=LATER, actor="test")
    with Ledger(tmp_path / "restored" / "state" / "ledger.sqlite3") as restored:
        assert restored.ledger_id(now="2026-05-01T09:00:00.000000Z") == own_id
        check_identity(restored, nas, now=LATER)   # raises TargetUnrecognised when taken for another's


def test_restored_from_the_first_snapshot_after_an_install_the_ledger_keeps_its_targets(tmp_path, samples_dir):
    cfg, nas = _site(tmp_path, samples_dir)
    with Ledger(cfg.ledger_path) as ledger:
        assert ledger.get_value("ledger.id") is None          # a fresh install: no id yet
        snapshot_step(ledger, nas, now=T0)                     # the daemon's first act on the target
        drain(ledger, Vault(cfg.vault_dir), nas)
        own = ledger.ledger_id(now="2026-05-01T08:00:00.000000Z")
    _restored_is_recognised(tmp_path, nas, own)


def test_restored_from_a_snapshot_without_an_id_the_ledger_takes_the_one_its_marker_names(tmp_path, samples_dir):
    # An older version's snapshot holds no id; the marker (written since) names it.
    cfg, nas = _site(tmp_path, samples_dir)
    with Ledger(cfg.ledger_path) as ledger:
        data = snapshot_sqlite(ledger.path)
        put_snapshot(ledger, nas, ledger.last_event_id(), data, now=T0)
        drain(ledger, Vault(cfg.vault_dir), nas)
        own = ledger.ledger_id(now="2026-05-01T08:00:00.000000Z")
    _restored_is_recognised(tmp_path, nas, own)
