"""The restore drill against real targets: a file:// folder and SeaweedFS.

One site for the module (five invoices ingested, mirrored and snapshotted
to both targets); each test that damages a target puts it back. The drill
is judged on what it records and what `status` and `status --check` say.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from agent.backup.base import object_key, open_target, sidecar_key
from agent.backup.drill import WORK_PREFIX, DrillCancelled, restore_drill
from agent.backup.mirror import snapshot_step
from agent.config import load_config
from agent.ledger import Ledger, utc
from agent.vault import Vault
from service.backup import BackupService
from service.context import now_dt
from tests.integration.test_backup_ledger import T0, cli, drain, ingest, write_config
from tests.support.audit import assert_ledger_sound
from tests.support.seaweed import seaweed  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def site(tmp_path_factory, seaweed, samples_dir):
    root = tmp_path_factory.mktemp("drill")
    (root / "nas").mkdir()
    bucket = seaweed.make_bucket()
    config = write_config(root, [seaweed.target_config(bucket, prefix="site", name="s3a"),
                                 {"name": "nas", "url": "file://nas"}], policy="drill_sample = 20")
    ingest(config, samples_dir, range(1, 6), root / "in")
    cfg = load_config(config)
    targets = {b["name"]: open_target(b) for b in cfg.backups}
    with Ledger(cfg.ledger_path) as ledger:
        vault = Vault(cfg.vault_dir)
        for target in targets.values():
            drain(ledger, vault, target)
            snapshot_step(ledger, target, now=T0)
        shas = sorted(vault.iter_objects())
        lid = ledger.ledger_id(now=utc(T0))   # in the snapshots' names
    assert len(shas) == 5
    yield {"root": root, "config": config, "cfg": cfg, "targets": targets, "shas": shas, "lid": lid}
    assert_ledger_sound(config)   # drills leave the ledger as `audit ledger` wants it


def drill_json(site, *args: str) -> tuple[int, dict]:
    r = cli(site["config"], "backup", "drill", *args, "--json")
    lines = [line for line in r.output.splitlines() if line.startswith("{")]
    return r.exit_code, {d["target"]: d for d in map(json.loads, lines)}


def health_reasons(site) -> list[dict]:
    r = cli(site["config"], "status", "--json")
    return json.loads(r.output)["health"]["reasons"]


def test_a_good_drill_passes_on_both_adapters_and_status_shows_it(site):
    code, drills = drill_json(site)
    assert code == 0, drills
    for name in ("s3a", "nas"):
        d = drills[name]
        assert d["ok"] and d["reason"] is None and d["reasons"] == [], d
        assert d["sampled"] == 5 and d["failed"] == 0 and sorted(d["sample"]) == site["shas"]
        assert d["snapshot"].startswith("ledger/ledger-") and d["snapshot_ok"] is True
        assert d["snapshot"] == f"ledger/ledger-20260501T080000Z-{site['lid']}.sqlite.gz"
        # What we recorded at put time, and what came back, are the same bytes.
        checks = d["snapshot_checks"]
        assert checks["sha256"] == checks["expected_sha256"] and checks["integrity"] == ["ok"]
    detail = drills["nas"]
    assert isinstance(detail["seed"], int)
    # Nothing is left of the temporary folder.
    assert not list(site["cfg"].state_dir.glob(WORK_PREFIX + "*"))
    human = cli(site["config"], "status").output
    assert human.count("restore drill ") == 2 and "OK: 5/5 objects, snapshot ok (seed " in human, human
    backup_status = cli(site["config"], "backup", "status").output
    assert backup_status.count("last drill:") == 2 and "FAILED" not in backup_status
    assert not [r for r in health_reasons(site) if "restore drill" in r["text"]]
    with Ledger(site["cfg"].ledger_path) as ledger:
        last = {d["target"]: d for d in ledger.last_restore_drills()}
    assert last["nas"]["ok"] is True and last["nas"]["last_ok_at"] == last["nas"]["finished_at"]
    assert last["nas"]["detail"]["snapshot"]["integrity"] == ["ok"]
    assert last["nas"]["detail"]["snapshot"]["sha256"] == last["nas"]["detail"]["snapshot"]["expected_sha256"]


def test_the_recorded_seed_draws_the_same_sample_again(site):
    code, first = drill_json(site, "--target", "nas", "--sample", "2")
    assert code == 0
    seed = first["nas"]["seed"]
    code, again = drill_json(site, "--target", "nas", "--sample", "2", "--seed", str(seed))
    assert code == 0 and again["nas"]["seed"] == seed and again["nas"]["sample"] == first["nas"]["sample"]
    assert len(first["nas"]["sample"]) == 2


def test_a_tampered_object_fails_the_drill_naming_it_and_is_critical(site, seaweed):
    sha = site["shas"][1]
    nas_file = site["root"] / "nas" / object_key(sha)
    good = nas_file.read_bytes()
    s3 = site["targets"]["s3a"]
    client = seaweed.client()
    full = "site/" + object_key(sha)
    try:
        nas_file.write_bytes(good.replace(b"00000", b"99999", 1))     # same size, other bytes
        client.put_object(Bucket=s3.bucket, Key=full, Body=good + b"<!-- appended -->")
        code, drills = drill_json(site)
        assert code == 1
        for name in ("nas", "s3a"):
            d = drills[name]
            assert not d["ok"] and d["mismatch"] and d["failed"] == 1, d
            assert d["objects"] == [{"sha256": sha, "verdict": "mismatch", "reason": d["objects"][0]["reason"]}]
            if name == "nas":   # same size, other bytes: fetched and hashed
                assert d["reason"].startswith(f"object {sha}: came back as ") and "not to its name" in d["reason"]
            else:               # grown: judged by its listed size, not fetched
                assert d["reason"].startswith(f"object {sha}: listed as ") and "not fetched" in d["reason"]
            assert d["snapshot_ok"] is True   # the snapshot is not to blame
        critical = [r for r in health_reasons(site) if "restore drill" in r["text"]]
        assert {r["level"] for r in critical} == {"CRITICAL"} and len(critical) == 2, critical
        assert "not what we stored" in critical[0]["text"] and sha in critical[0]["text"]
        check = cli(site["config"], "status", "--check")
        assert check.exit_code == 2 and "restore drill" in check.output
    finally:
        nas_file.write_bytes(good)
        s3.delete(object_key(sha))
        s3.put(object_key(sha), good, sha)
    code, drills = drill_json(site)
    assert code == 0 and all(d["ok"] for d in drills.values())
    assert not [r for r in health_reasons(site) if "restore drill" in r["text"]]


def _batch_of(site, target: str, sha: str) -> str:
    with Ledger(site["cfg"].ledger_path, readonly=True) as ledger:
        return ledger.sidecar_batches(target, [sha])[sha]


def _without(target, key: str, sha: str) -> bytes:
    """Rewrite batch `key` on `target` without `sha`'s entry; returns the old body."""
    body = target.get(key)
    data = json.loads(body)
    data["objects"] = [o for o in data["objects"] if o["sha256"] != sha]
    new = json.dumps(data).encode()
    target.delete(key)
    target.put(key, new, hashlib.sha256(new).hexdigest())
    return body


def test_a_deleted_object_or_sidecar_fails_as_missing_with_a_warning(site):
    sha, other = site["shas"][2], site["shas"][3]
    nas_root = site["root"] / "nas"
    s3, nas = site["targets"]["s3a"], site["targets"]["nas"]
    kept_object = (nas_root / object_key(sha)).read_bytes()
    # Their sidecars: the batch that describes each, rewritten without it.
    nas_key, s3_key = _batch_of(site, "nas", other), _batch_of(site, "s3a", sha)
    kept = {(nas, nas_key): _without(nas, nas_key, other), (s3, s3_key): _without(s3, s3_key, sha)}
    try:
        (nas_root / object_key(sha)).unlink()
        code, drills = drill_json(site)
        assert code == 1
        nas_d, s3_d = drills["nas"], drills["s3a"]
        assert not nas_d["mismatch"] and nas_d["failed"] == 2
        by_sha = {o["sha256"]: o for o in nas_d["objects"]}
        assert by_sha[sha]["verdict"] == "missing" and "missing on the target" in by_sha[sha]["reason"]
        assert by_sha[other]["verdict"] == "missing" and "sidecar" in by_sha[other]["reason"]
        assert s3_d["objects"] == [{"sha256": sha, "verdict": "missing", "reason": s3_d["objects"][0]["reason"]}]
        assert "sidecar" in s3_d["reason"]
        drill_reasons = [r for r in health_reasons(site) if "restore drill" in r["text"]]
        assert {r["level"] for r in drill_reasons} == {"WARNING"} and len(drill_reasons) == 2
        assert any("restore drill failed" in r["text"] and sha in r["text"] for r in drill_reasons)
    finally:
        (nas_root / object_key(sha)).write_bytes(kept_object)
        for (target, key), body in kept.items():
            target.delete(key)
            target.put(key, body, hashlib.sha256(body).hexdigest())


def test_a_deleted_sidecar_of_the_older_layout_fails_as_missing(site, tmp_path):
    # A row described by its own .json (put before batches): the drill still
    # fetches and checks that one.
    sha = site["shas"][1]
    nas = site["targets"]["nas"]
    with Ledger(site["cfg"].ledger_path) as ledger:
        side = json.dumps(ledger.sidecar(sha), default=str).encode()
        ledger.conn.execute("UPDATE backups SET sidecar_batch = NULL WHERE target = 'nas' AND sha256 = ?", (sha,))
    try:
        code, drills = drill_json(site, "--target", "nas")
        assert code == 1 and drills["nas"]["objects"][0]["sha256"] == sha
        assert "its sidecar (what the documents were) is missing" in drills["nas"]["reason"]
        nas.put(sidecar_key(sha), side, hashlib.sha256(side).hexdigest())
        code, drills = drill_json(site, "--target", "nas")
        assert code == 0 and drills["nas"]["ok"], drills
    finally:
        nas.delete(sidecar_key(sha))
        with Ledger(site["cfg"].ledger_path) as ledger:
            ledger.conn.execute("UPDATE backups SET sidecar_batch = (SELECT sidecar_batch FROM backups b "
                                "WHERE b.target = 'nas' AND b.sha256 != backups.sha256 LIMIT 1) "
                                "WHERE target = 'nas' AND sha256 = ?", (sha,))


def test_a_truncated_or_corrupt_snapshot_fails_with_its_reason(site):
    nas = site["root"] / "nas"
    recorded = nas / "ledger" / f"ledger-20260501T080000Z-{site['lid']}.sqlite.gz"
    good = recorded.read_bytes()
    newer = nas / "ledger" / "ledger-20260502T080000Z.sqlite.gz"
    try:
        recorded.write_bytes(good[: len(good) // 2])
        code, drills = drill_json(site, "--target", "nas", "--sample", "1")
        d = drills["nas"]
        assert code == 1 and d["snapshot_ok"] is False and d["mismatch"], d
        assert any("is not the" in r and "recorded when it was put" in r for r in d["reasons"]), d["reasons"]
        assert any("not a complete gzip file" in r for r in d["reasons"]), d["reasons"]
        recorded.write_bytes(good)

        # A newer snapshot, unknown to this ledger: a restore would take it.
        # Valid gzip of a damaged database: the integrity check says so.
        db = bytearray(gzip.decompress(good))
        page = int.from_bytes(db[16:18], "big")
        db[page * 2 + 8: page * 4] = b"\xa5" * (page * 4 - page * 2 - 8)
        newer.write_bytes(gzip.compress(bytes(db)))
        code, drills = drill_json(site, "--target", "nas", "--sample", "1")
        d = drills["nas"]
        assert code == 1 and d["snapshot"] == "ledger/" + newer.name and not d["snapshot_ok"], d
        assert not d["mismatch"]   # nothing recorded to compare with: damaged, not swapped
        assert any("integrity_check" in r for r in d["reasons"]), d["reasons"]

        # A sound SQLite file that is not a ledger.
        plain = site["root"] / "plain.sqlite"
        with sqlite3.connect(plain) as conn:
            conn.execute("CREATE TABLE t (x)")
        conn.close()
        newer.write_bytes(gzip.compress(plain.read_bytes()))
        code, drills = drill_json(site, "--target", "nas", "--sample", "1")
        assert code == 1 and any("not a ledger: table(s) documents" in r for r in drills["nas"]["reasons"])
    finally:
        recorded.write_bytes(good)
        newer.unlink(missing_ok=True)
    code, drills = drill_json(site, "--target", "nas", "--sample", "1")
    assert code == 0, drills


def test_a_recorded_snapshot_gone_from_the_target_fails_the_drill(site):
    recorded = site["root"] / "nas" / "ledger" / f"ledger-20260501T080000Z-{site['lid']}.sqlite.gz"
    good = recorded.read_bytes()
    try:
        recorded.unlink()
        code, drills = drill_json(site, "--target", "nas", "--sample", "0")
        d = drills["nas"]
        assert code == 1 and d["snapshot"] is None and d["snapshot_ok"] is False
        assert "recorded as stored, is missing on the target" in d["reason"], d
    finally:
        recorded.write_bytes(good)


def test_an_unreachable_target_records_a_failed_drill_and_the_loop_lives(site, tmp_path):
    # A third target, held since T0 and never drilled: the daemon's drill is
    # due at once. Its disk is then unmounted.
    lost = tmp_path / "lost"
    lost.mkdir()
    config = write_config(tmp_path, [{"name": "lost", "url": f"file://{lost}"}],
                          policy="probe_interval_s = 1\nretry_max_s = 1")
    text = config.read_text().replace('state_dir = "state"', f'state_dir = "{site["cfg"].state_dir}"')
    config.write_text(text)
    cfg = load_config(config)
    target = open_target(cfg.backups[0])
    with Ledger(cfg.ledger_path) as ledger:
        drain(ledger, Vault(cfg.vault_dir), target)
        snapshot_step(ledger, target, now=T0)
    lost.rename(tmp_path / "unmounted")
    service = BackupService(cfg).start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with Ledger(cfg.ledger_path, readonly=True) as ledger:
                drills = ledger.last_restore_drills(["lost"])
            if drills:
                break
            time.sleep(0.2)
        assert drills, "no drill recorded by the backup loop"
        d = drills[0]
        assert d["ok"] is False and d["actor"].startswith("daemon:")
        assert d["reason"].startswith("target lost could not be read: ") and "lost" in d["reason"], d
        assert all(t.is_alive() for t in service.threads()), "a failed drill must not end the loop"
        assert not list(Path(cfg.state_dir).glob(WORK_PREFIX + "*"))
    finally:
        service.stop()
        service.join(10)
    assert not any(t.is_alive() for t in service.threads())


def test_a_cancelled_drill_records_nothing_and_old_leftovers_are_swept(site):
    state = site["cfg"].state_dir
    stale, fresh = state / (WORK_PREFIX + "killed"), state / (WORK_PREFIX + "running")
    for folder in (stale, fresh):
        folder.mkdir()
        (folder / "object").write_bytes(b"x")
    two_days_ago = time.time() - 2 * 86400
    os.utime(stale, (two_days_ago, two_days_ago))
    try:
        with Ledger(site["cfg"].ledger_path) as ledger:
            before = ledger.last_restore_drills(["nas"])
            with pytest.raises(DrillCancelled):
                restore_drill(ledger, site["targets"]["nas"], now=now_dt, work_parent=state,
                              cancelled=lambda: True)
            assert ledger.last_restore_drills(["nas"]) == before   # stopping: due again at the next start
        assert not stale.exists() and fresh.is_dir()   # a drill running beside it is left alone
        assert [p.name for p in state.glob(WORK_PREFIX + "*")] == [fresh.name]
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
        shutil.rmtree(stale, ignore_errors=True)


def test_a_giant_object_or_snapshot_on_the_target_is_judged_without_fetching_it(site):
    # Nothing from the target is trusted, its sizes neither: an object or a
    # snapshot grown huge (sparse here: 512 MiB / 257 MiB listed, nothing on
    # disk) must fail the drill without being copied into the local work folder.
    sha = site["shas"][0]
    nas = site["root"] / "nas"
    obj = nas / object_key(sha)
    good = obj.read_bytes()
    newer = nas / "ledger" / "ledger-20260509T080000Z.sqlite.gz"
    try:
        os.truncate(obj, 512 << 20)
        newer.touch()
        os.truncate(newer, (257 << 20))
        code, drills = drill_json(site, "--target", "nas", "--sample", "5")
        d = drills["nas"]
        assert code == 1 and not d["ok"] and d["failed"] == 1, d
        (bad,) = [o for o in d["objects"] if o["verdict"] != "ok"] or [None]
        assert bad["sha256"] == sha and bad["verdict"] == "mismatch" and "not fetched" in bad["reason"], d
        assert d["snapshot_ok"] is False and any("not fetched" in r for r in d["reasons"]), d["reasons"]
    finally:
        obj.write_bytes(good)
        newer.unlink(missing_ok=True)
    code, drills = drill_json(site, "--target", "nas", "--sample", "5")
    assert code == 0, drills
