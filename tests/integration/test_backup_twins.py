"""Two agents with one site name (a copied config) never share a backup
(attackF finding 3). The second agent used to adopt the first one's
identity marker, both put the same snapshot key, and a restore at the
second returned the first one's ledger while `status --check` said OK.

Now the marker names the ledger that wrote it: the second agent stops at
it (paused, the reason naming the copied config), and nothing of it is
written; snapshot names carry the ledger's id, so even an agent that takes
the target on purpose (`backup accept`) never overwrites the other's
snapshot, and a restore takes the snapshots of the ledger the marker names.
An upgrade from a version without markers, or with markers that name no
ledger, still works.

Real SeaweedFS (one bucket, one prefix, the fleet layout sites/<site>/)
and real folders.
"""

from __future__ import annotations

import json
import random

import pytest

from agent.backup.base import TargetUnrecognised
from agent.backup.mirror import mirror_step, snapshot_step
from agent.config import load_config
from agent.ledger import Ledger, utc
from agent.vault import Vault
from service.backup import open_backup
from tests.integration.test_backup_ledger import T0, cli, drain, ingest
from tests.integration.test_backup_trust import alive
from tests.integration.test_shared_backups import keys, site_config
from tests.support.seaweed import seaweed  # noqa: F401  (fixture)

MARKER_KEY = ".fapiao-agent-target"


@pytest.fixture
def twins(tmp_path, seaweed, samples_dir):
    bucket = seaweed.make_bucket()
    backups = [seaweed.target_config(bucket, prefix="fleet", name="s3")]
    agents = {}
    for name, invoices in (("first", range(1, 4)), ("copy", range(4, 6))):
        (tmp_path / name).mkdir()
        config = site_config(tmp_path / name, "bj", backups)     # the same [fleet] site: a copied config
        ingest(config, samples_dir, invoices, tmp_path / name / "in")
        cfg = load_config(config)
        agents[name] = {"config": config, "cfg": cfg, "target": open_backup(cfg, cfg.backups[0]),
                        "vault": Vault(cfg.vault_dir)}
    return {"bucket": bucket, "root": tmp_path, **agents}


def marker(seaweed, bucket: str) -> dict:
    body = seaweed.client().get_object(Bucket=bucket, Key=f"fleet/sites/bj/{MARKER_KEY}")["Body"].read()
    return json.loads(body)


def ledger_id(agent) -> str:
    with Ledger(agent["cfg"].ledger_path) as ledger:
        return ledger.ledger_id(now=utc(T0))


def test_the_second_agent_with_one_site_name_stops_at_the_first_ones_marker(twins, seaweed):
    first, copy, bucket = twins["first"], twins["copy"], twins["bucket"]
    with Ledger(first["cfg"].ledger_path) as ledger:
        drain(ledger, first["vault"], first["target"])
        first_key = snapshot_step(ledger, first["target"], now=T0)
    assert marker(seaweed, bucket)["ledger"] == ledger_id(first)
    before = keys(seaweed, bucket, "fleet/")
    with Ledger(copy["cfg"].ledger_path) as ledger:
        out = mirror_step(ledger, copy["vault"], copy["target"], now=T0, rng=random.Random(1))
        assert out.paused and out.newly_paused and out.put == 0, out
        assert "two agents with one site name (a copied config?)" in out.paused
        assert "not the backup target this agent wrote to" in out.paused
        with pytest.raises(TargetUnrecognised, match="two agents with one site name"):
            snapshot_step(ledger, copy["target"], now=T0)      # the same second: it would have been one key
        assert ledger.target_identity("s3")[0] is None         # the first one's identity is not adopted
    assert keys(seaweed, bucket, "fleet/") == before           # nothing of the copy was written
    alive(copy["cfg"])
    check = cli(copy["config"], "status", "--check")
    assert check.exit_code >= 1 and "backup target s3 paused for" in check.output, check.output
    assert "two agents with one site name" in check.output
    # The first agent goes on as before; a restore from it is its own ledger.
    with Ledger(first["cfg"].ledger_path) as ledger:
        assert mirror_step(ledger, first["vault"], first["target"], now=T0, rng=random.Random(2)).paused is None
    out = twins["root"] / "restored"
    r = cli(first["config"], "backup", "restore", "--from", "s3", "--to", str(out), "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["snapshot"] == first_key


def test_markers_from_before_ledger_ids_are_taken_over_by_one_ledger_only(twins, seaweed, samples_dir):
    first, copy, bucket = twins["first"], twins["copy"], twins["bucket"]
    with Ledger(first["cfg"].ledger_path) as ledger:
        drain(ledger, first["vault"], first["target"])
        identity = ledger.target_identity("s3")[0]
    # What the previous version left: a marker naming no ledger, adopted by both agents.
    old = json.dumps({"fapiao_agent_target": identity}).encode()
    seaweed.client().put_object(Bucket=bucket, Key=f"fleet/sites/bj/{MARKER_KEY}", Body=old)
    with Ledger(copy["cfg"].ledger_path) as ledger:
        ledger.remember_target_identity("s3", identity, now=utc(T0))
    ingest(first["config"], samples_dir, range(7, 8), twins["root"] / "first" / "in2")
    with Ledger(first["cfg"].ledger_path) as ledger:        # the first to check names itself in it
        out = mirror_step(ledger, first["vault"], first["target"], now=T0, rng=random.Random(1))
        assert out.paused is None and out.put == 1, out
    assert marker(seaweed, bucket) | {"written_at": ""} == marker(seaweed, bucket) | {
        "fapiao_agent_target": identity, "ledger": ledger_id(first), "written_at": ""}
    with Ledger(copy["cfg"].ledger_path) as ledger:        # and the other one stops there
        out = mirror_step(ledger, copy["vault"], copy["target"], now=T0, rng=random.Random(1))
        assert out.paused and "two agents with one site name" in out.paused, out


def test_an_upgrade_from_a_version_without_markers_still_adopts_its_target(twins, seaweed, samples_dir):
    first, bucket = twins["first"], twins["bucket"]
    with Ledger(first["cfg"].ledger_path) as ledger:
        drain(ledger, first["vault"], first["target"])
        ledger.forget_target_identity("s3", now=utc(T0))     # as a version without markers left it
    seaweed.client().delete_object(Bucket=bucket, Key=f"fleet/sites/bj/{MARKER_KEY}")
    ingest(first["config"], samples_dir, range(7, 8), twins["root"] / "first" / "in2")
    with Ledger(first["cfg"].ledger_path) as ledger:
        out = mirror_step(ledger, first["vault"], first["target"], now=T0, rng=random.Random(1))
        assert out.paused is None and out.put == 1, out
        assert marker(seaweed, bucket) == marker(seaweed, bucket) | {
            "fapiao_agent_target": ledger.target_identity("s3")[0], "ledger": ledger_id(first)}


def test_an_agent_that_takes_the_target_on_purpose_never_overwrites_the_others_snapshot(twins, seaweed):
    first, copy, bucket = twins["first"], twins["copy"], twins["bucket"]
    with Ledger(first["cfg"].ledger_path) as ledger:
        drain(ledger, first["vault"], first["target"])
        first_key = snapshot_step(ledger, first["target"], now=T0)
        first_sha = ledger.backup_target("s3")["last_snapshot_sha256"]
    accepted = cli(copy["config"], "backup", "accept", "--target", "s3")
    assert accepted.exit_code == 0, accepted.output
    with Ledger(copy["cfg"].ledger_path) as ledger:
        drain(ledger, copy["vault"], copy["target"])
        copy_key = snapshot_step(ledger, copy["target"], now=T0)    # the very same second
    assert copy_key != first_key and ledger_id(copy) in copy_key and ledger_id(first) in first_key
    assert copy["target"].head(first_key).sha256 == first_sha        # the first one's snapshot is intact
    # Even a newer snapshot of the other ledger is not what a restore at the copy takes.
    newer = first_key.replace("T080000Z", "T090000Z")
    copy["target"].put(newer, copy["target"].get(first_key), first_sha)
    out = twins["root"] / "restored"
    r = cli(copy["config"], "backup", "restore", "--from", "s3", "--to", str(out), "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["snapshot"] == copy_key
    # The first agent now meets the copy's marker: paused, never writing over it.
    with Ledger(first["cfg"].ledger_path) as ledger:
        with pytest.raises(TargetUnrecognised, match="two agents with one site name"):
            snapshot_step(ledger, first["target"], now=T0)


def test_a_site_name_another_live_agent_uses_is_critical_in_status_check_at_both(twins):
    from service.fleet import FleetService

    first, copy = twins["first"], twins["copy"]
    services = {n: FleetService(twins[n]["cfg"]) for n in ("first", "copy")}
    for name in ("first", "copy", "first"):      # each meets the other's fresh status.json
        with Ledger(twins[name]["cfg"].ledger_path) as ledger:
            services[name].publish(ledger)
    for agent in (first, copy):
        alive(agent["cfg"])
        check = cli(agent["config"], "status", "--check")
        assert check.exit_code == 2, check.output
        assert "CRITICAL: site name used by another agent: another agent also publishes as site 'bj'" \
            in check.output, check.output
    # The copy stops: the next publish that meets no other agent's status clears it.
    for _ in range(2):
        with Ledger(first["cfg"].ledger_path) as ledger:
            services["first"].publish(ledger)
    assert "site name used by another agent" not in cli(first["config"], "status", "--check").output
