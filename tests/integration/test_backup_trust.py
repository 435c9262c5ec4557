"""A backup target that does not keep what it is given, or is not the one we
wrote to, is never reported as holding our backups (attackB findings 1, 2).

1. A store that answers 200 to every put and keeps nothing: the daily
   verification finds the objects missing, the repair reads back missing
   again. The target is then not ok in `status`/`backup status`, `status
   --check` says so (WARNING; CRITICAL for other bytes), the objects are not
   counted as held, and the next mirror round reads each one back before it
   counts it again.
2. An unmounted NAS (an empty folder where the mount was), or a bucket
   prefix that is not ours: nothing is written there, `backup verify`
   repairs nothing onto it, the target is paused with a reason that says
   why, and it resumes by itself when the real disk is back; `backup
   accept` takes a new empty disk on purpose.

Real folders and a real SeaweedFS; the lying store is a thin wrapper over
a real S3 target (as the attacker's proxy was in front of one).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import shutil

import pytest

from agent.backup.base import object_key, open_target
from agent.backup.mirror import mirror_step
from agent.backup.verification import verify_step
from agent.config import load_config
from agent.ledger import Ledger, utc
from agent.vault import Vault
from tests.integration.test_backup_ledger import cli, ingest, write_config
from tests.support.seaweed import seaweed  # noqa: F401  (fixture)

MARKER_KEY = ".fapiao-agent-target"   # agent/backup/identity.py: named here, so this runs on older code


def now() -> dt.datetime:
    # Real time: `status --check` judges ages against the clock.
    return dt.datetime.now(dt.timezone.utc)


def drain(ledger: Ledger, vault: Vault, target) -> None:
    while True:
        out = mirror_step(ledger, vault, target, now=now(), rng=random.Random(7))
        assert out.unavailable is None and out.paused is None, out
        if not out.more:
            return


def alive(cfg) -> None:
    # A daemon's fresh heartbeat, so `status --check` judges the backups alone.
    with Ledger(cfg.ledger_path) as ledger:
        ledger.beat(pid=os.getpid(), now=utc(now()), activity="working")


def health(config) -> list[dict]:
    return json.loads(cli(config, "status", "--json").output)["health"]["reasons"]


class Forgetful:
    """A real S3 target behind a store that acknowledges every put of an
    original and keeps nothing (`mode` "drop"), or hands back other bytes
    for every original (`mode` "garble")."""

    def __init__(self, inner, mode: str):
        self.inner, self.mode = inner, mode
        self.name, self.url = inner.name, inner.url

    def put(self, key, data, sha256):
        if self.mode == "drop" and key.startswith("objects/"):
            return
        self.inner.put(key, data, sha256)

    def get(self, key, dest=None):
        data = self.inner.get(key, dest)
        if self.mode == "garble" and key.startswith("objects/") and data is not None:
            return b"not what we stored " + data
        return data

    def head(self, key):
        return self.inner.head(key)

    def list(self, prefix=""):
        return self.inner.list(prefix)

    def delete(self, key):
        self.inner.delete(key)


@pytest.fixture
def s3site(tmp_path, seaweed, samples_dir):
    bucket = seaweed.make_bucket()
    config = write_config(tmp_path, [seaweed.target_config(bucket, prefix="site", name="s3a")])
    ingest(config, samples_dir, range(1, 4), tmp_path / "in")
    cfg = load_config(config)
    target = open_target(cfg.backups[0])
    with Ledger(cfg.ledger_path) as ledger:
        drain(ledger, Vault(cfg.vault_dir), target)
    return config, cfg, target, bucket


def test_a_store_that_keeps_nothing_is_not_ok_not_counted_and_warned_of(s3site, seaweed):
    config, cfg, target, bucket = s3site
    vault = Vault(cfg.vault_dir)
    shas = sorted(vault.iter_objects())
    for sha in shas:     # the store lost them, and from now on keeps nothing
        seaweed.client().delete_object(Bucket=bucket, Key="site/" + object_key(sha))
    liar = Forgetful(target, "drop")
    with Ledger(cfg.ledger_path) as ledger:
        report = verify_step(ledger, vault, liar, now=now(), rng=random.Random(1), full=True)
        assert (report.checked, report.missing, report.repaired) == (3, 3, 0)
        # The next mirror round gets a 200 for every put again: it reads
        # them back, finds them missing, and counts none as held.
        out = mirror_step(ledger, vault, liar, now=now() + dt.timedelta(seconds=1), rng=random.Random(2))
        assert out.put == 0 and out.failed == 3, out
        t = ledger.backup_target("s3a")
        assert (t["objects"], t["backlog"]) == (0, 3)
        assert t["unverified"]["missing"] == 3 and t["unverified"]["mismatch"] == 0
        assert "reads back missing" in t["last_error"]
        assert ledger.backed_up_count(["s3a"], 1)["backed_up"] == 0
    alive(cfg)
    check = cli(config, "status", "--check")
    assert check.exit_code == 1, check.output
    assert check.output.startswith("WARNING: backup target s3a: 3 objects missing after a repair, found ")
    status = cli(config, "status").output
    assert "backed up:         0/3 originals" in status and "NOT KEEPING since" in status, status
    assert "s3a  (" in cli(config, "backup", "status").output and \
        "NOT KEEPING since" in cli(config, "backup", "status").output
    assert json.loads(cli(config, "backup", "status", "--json").output)["targets"][0]["reachable"] == "not keeping"

    # The store keeps what it is given again: the read-back passes, the
    # objects count as held, and the warning is gone.
    with Ledger(cfg.ledger_path) as ledger:
        ledger.retry_backups_now("s3a", now=utc(now() + dt.timedelta(hours=2)))
        out = mirror_step(ledger, vault, target, now=now() + dt.timedelta(hours=2), rng=random.Random(3))
        assert out.put == 3 and out.failed == 0, out
        t = ledger.backup_target("s3a")
        assert t["objects"] == 3 and t["unverified"] == {"missing": 0, "mismatch": 0, "since": None}
    alive(cfg)
    check = cli(config, "status", "--check")
    assert check.exit_code == 0, check.output
    assert json.loads(cli(config, "backup", "status", "--json").output)["targets"][0]["reachable"] == "ok"


def test_a_store_that_hands_back_other_bytes_after_a_repair_is_critical(s3site):
    config, cfg, target, _ = s3site
    vault = Vault(cfg.vault_dir)
    with Ledger(cfg.ledger_path) as ledger:
        report = verify_step(ledger, vault, Forgetful(target, "garble"), now=now(), rng=random.Random(1),
                             full=True)
        assert (report.mismatch, report.repaired) == (3, 0)
        assert ledger.backup_target("s3a")["unverified"]["mismatch"] == 3
    alive(cfg)
    check = cli(config, "status", "--check")
    assert check.exit_code == 2, check.output
    assert check.output.startswith("CRITICAL: backup target s3a: 3 objects read back with other bytes than "
                                   "we stored after a repair, found ")


# -- finding 2: an unmounted NAS --------------------------------------------------


@pytest.fixture
def nassite(tmp_path, samples_dir):
    (tmp_path / "nas").mkdir()
    config = write_config(tmp_path, [{"name": "nas", "url": "file://nas"}])
    ingest(config, samples_dir, range(1, 4), tmp_path / "in")
    cfg = load_config(config)
    with Ledger(cfg.ledger_path) as ledger:
        drain(ledger, Vault(cfg.vault_dir), open_target(cfg.backups[0]))
    return tmp_path, config, cfg


def files_under(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_an_empty_mount_point_is_never_written_to_and_pauses_the_target(nassite, samples_dir):
    root, config, cfg = nassite
    nas = open_target(cfg.backups[0])
    (root / "nas").rename(root / "nas.real")      # the NAS unmounted: an empty mount point is left
    (root / "nas").mkdir()
    ingest(config, samples_dir, range(10, 11), root / "in2")
    vault = Vault(cfg.vault_dir)
    with Ledger(cfg.ledger_path) as ledger:
        out = mirror_step(ledger, vault, nas, now=now(), rng=random.Random(1))
        assert out.paused and out.newly_paused and out.put == 0
        assert "not the backup target this agent wrote to" in out.paused and "backup accept" in out.paused
        t = ledger.backup_target("nas")
        assert t["paused_error"] == out.paused and t["objects"] == 3 and t["backlog"] == 1
    verify = cli(config, "backup", "verify", "--target", "nas", "--full")
    assert verify.exit_code == 1 and "not the backup target" in verify.output
    assert files_under(root / "nas") == []          # nothing put, nothing "repaired", no marker
    status = cli(config, "backup", "status").output
    assert "PAUSED since" in status and "marker .fapiao-agent-target is missing" in status, status
    alive(cfg)
    check = cli(config, "status", "--check")
    assert check.exit_code == 1 and "backup target nas paused for" in check.output, check.output

    # Mounted again: the marker matches, the pause lifts and the backlog drains.
    (root / "nas").rmdir()
    (root / "nas.real").rename(root / "nas")
    with Ledger(cfg.ledger_path) as ledger:
        out = mirror_step(ledger, vault, nas, now=now(), rng=random.Random(2))
        assert out.paused is None and out.resumed and out.put == 1
        assert ledger.backup_target("nas")["paused_error"] is None


def test_a_pause_lifts_once_the_disk_is_back_even_with_nothing_to_put(nassite):
    root, config, cfg = nassite
    nas = open_target(cfg.backups[0])
    (root / "nas").rename(root / "nas.real")
    (root / "nas").mkdir()
    assert cli(config, "backup", "verify", "--target", "nas").exit_code == 1
    with Ledger(cfg.ledger_path) as ledger:
        assert ledger.backup_target("nas")["paused_error"]
    (root / "nas").rmdir()
    (root / "nas.real").rename(root / "nas")
    with Ledger(cfg.ledger_path) as ledger:
        out = mirror_step(ledger, Vault(cfg.vault_dir), nas, now=now(), rng=random.Random(2))
        assert out.resumed and out.put == 0 and ledger.backup_target("nas")["paused_error"] is None
        # The pause's reason went with it: `backup status` does not show it as the last error.
        assert ledger.backup_target("nas")["last_error"] is None
    assert "not the backup target" not in cli(config, "backup", "status").output


def test_another_targets_marker_pauses_it_too(nassite, samples_dir):
    root, config, cfg = nassite
    assert (root / "nas" / MARKER_KEY).is_file()   # put at first use
    (root / "nas" / MARKER_KEY).write_text('{"fapiao_agent_target": "someone-else"}')
    ingest(config, samples_dir, range(20, 21), root / "in2")
    before = files_under(root / "nas")
    with Ledger(cfg.ledger_path) as ledger:
        out = mirror_step(ledger, Vault(cfg.vault_dir), open_target(cfg.backups[0]), now=now(),
                          rng=random.Random(1))
        assert out.paused and "names another target (someone-else" in out.paused
    assert files_under(root / "nas") == before


def test_a_new_empty_disk_is_taken_only_when_an_operator_accepts_it(nassite):
    root, config, cfg = nassite
    shutil.rmtree(root / "nas")
    (root / "nas").mkdir()                             # the new disk, mounted where the old one was
    nas = open_target(cfg.backups[0])
    vault = Vault(cfg.vault_dir)
    with Ledger(cfg.ledger_path) as ledger:
        assert ledger.retry_backups_now("nas", now=utc(now())) == 0
        ledger.requeue_backup("nas", sorted(vault.iter_objects())[0], now=utc(now()))   # something to put
        assert mirror_step(ledger, vault, nas, now=now(), rng=random.Random(1)).paused
    accepted = cli(config, "backup", "accept", "--target", "nas")
    assert accepted.exit_code == 0, accepted.output
    assert "nas: accepted as the backup target; 2 object(s) are put again" in accepted.output
    with Ledger(cfg.ledger_path) as ledger:
        drain(ledger, vault, nas)
        t = ledger.backup_target("nas")
        assert t["objects"] == 3 and t["paused_error"] is None and t["last_snapshot"] is None
    for sha in vault.iter_objects():
        assert (root / "nas" / object_key(sha)).is_file()
    again = cli(config, "backup", "accept", "--target", "nas")
    assert again.exit_code == 0 and "already recognised" in again.output
