"""Backup end to end: a real daemon backs up to real SeaweedFS (two buckets
standing for two locations, access keys enforced) and a file:// folder;
the state is deleted and restored from each target in turn; an outage of
SeaweedFS leaves a backlog that drains by itself."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.backup.base import object_key
from agent.ledger import Ledger
from agent.ledger.rows import parse_utc
from agent.vault import Vault
from service.cli import main
from service.context import now_dt
from tests.e2e.daemon_harness import DaemonUnderTest
from tests.support.audit import assert_ledger_sound
from tests.support.seaweed import seaweed  # noqa: F401  (fixture)

SAMPLE = "renoyuan__easyofd/original_invoice.xml"
POLICY = """
[backup_policy]
retry_max_s = 600.0
probe_interval_s = 1.0
snapshot_interval_s = 2
"""


def backup_toml(entries: list[dict]) -> str:
    return POLICY + "".join("\n[[backup]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in e.items())
                            for e in entries)


def drop_invoices(samples_dir: Path, folder: Path, numbers: range) -> None:
    xml = (samples_dir / SAMPLE).read_bytes()
    for n in numbers:
        tmp = folder.parent / f".inv-{n}.xml"
        tmp.write_bytes(xml.replace(b"00008006", f"{n:08d}".encode()))
        tmp.rename(folder / f"inv-{n}.xml")


def cli(config: Path, *args: str):
    result = CliRunner().invoke(main, ["--config", str(config), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def target_states(ledger_path: Path, names: list[str]) -> dict[str, dict]:
    with Ledger(ledger_path) as ledger:
        return {n: ledger.backup_target(n) for n in names}


def wait_until(check, timeout: float, what: str, daemon: DaemonUnderTest):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        ok, last = check()
        if ok:
            return last
        time.sleep(0.2)
    raise AssertionError(f"{what} not reached within {timeout}s: {last}\n" + "\n".join(daemon.lines[-20:]))


@pytest.mark.slow
def test_disaster_recovery_from_each_target(tmp_path, seaweed, samples_dir):
    buckets = [seaweed.make_bucket(), seaweed.make_bucket()]
    nas = tmp_path / "nas"
    nas.mkdir()
    good = [seaweed.target_config(buckets[0], prefix="agent", name="site-a"),
            seaweed.target_config(buckets[1], name="site-b"),
            {"name": "nas", "url": f"file://{nas}"}]
    bad = {**seaweed.target_config(buckets[0], name="bad-keys"), "secret_access_key": "wrong"}
    names = [g["name"] for g in good]
    site = tmp_path / "site"
    d = DaemonUnderTest(site, extra=backup_toml(good + [bad]))
    d.config.chmod(0o600)
    d.start()
    try:
        drop_invoices(samples_dir, site / "scan", range(1, 201))
        d.wait_documents(200, timeout=60, settled=True)
        settled = now_dt()

        def all_backed_up():
            states = target_states(site / "state" / "ledger.sqlite3", names)
            # The sampled verification runs after a round that found nothing
            # more to put: the last put alone may come before it.
            ok = all(s["objects"] == 200 and s["backlog"] == 0 and s["stale_sidecars"] == 0
                     and s["last_snapshot_at"] and parse_utc(s["last_snapshot_at"]) > settled
                     and s["last_verify_at"] for s in states.values())
            return ok, {n: (s["objects"], s["backlog"], s["last_snapshot_at"], s["last_verify_at"])
                        for n, s in states.items()}

        wait_until(all_backed_up, 60, "every target holding 200 objects, a fresh snapshot and a verification", d)
        before = json.loads(cli(d.config, "status", "--json").stdout)
        backup = json.loads(cli(d.config, "backup", "status", "--json").stdout)
    finally:
        d.stop()
    # Wrong keys: one clear error line, a visible pause, and nothing failed.
    paused_lines = [line for line in d.lines if "backup paused: backup target 'bad-keys'" in line]
    assert len(paused_lines) == 1, paused_lines
    assert buckets[0] in paused_lines[0] and "wrong" not in paused_lines[0].split("paused", 1)[1]
    bad_status = next(t for t in backup["targets"] if t["name"] == "bad-keys")
    assert bad_status["paused_error"] and bad_status["failed"] == 0 and bad_status["backlog"] == 200

    # The scheduled sampled verification ran on each working target and found nothing wrong.
    for t in backup["targets"]:
        if t["name"] in names:
            assert t["last_verify_at"] and t["last_verify"]["checked"] >= 1, t
            assert t["last_verify"]["missing"] == t["last_verify"]["mismatch"] == 0
    assert backup["backed_up"] == 0  # min_copies = all four targets, and one is paused
    assert sum(before["states"].values()) == 200 and before["states"]["valid"] == 200
    original = {sha: Vault(site / "state" / "vault").path(sha).read_bytes()
                for sha in Vault(site / "state" / "vault").iter_objects()}
    assert len(original) == 200
    assert_ledger_sound(d.config)
    shutil.rmtree(site / "state")

    for name in names:
        dest = tmp_path / f"restored-{name}"
        report = json.loads(cli(d.config, "backup", "restore", "--from", name, "--to", str(dest),
                                "--json").stdout)
        assert report["objects"] == 200 and not report["problems"] and report["snapshot"]
        vault = Vault(dest / "state" / "vault")
        assert sorted(vault.iter_objects()) == sorted(original)
        assert all(vault.verify(sha) and vault.read(sha) == original[sha] for sha in original)
        after = json.loads(cli(dest / "restored.toml", "status", "--json").stdout)
        assert after["states"] == before["states"], name
        assert_ledger_sound(dest / "restored.toml")


def test_outage_builds_a_backlog_that_drains_when_seaweed_returns(tmp_path, seaweed, samples_dir):
    bucket = seaweed.make_bucket()
    nas = tmp_path / "nas"
    nas.mkdir()
    site = tmp_path / "site"
    d = DaemonUnderTest(site, extra=backup_toml([seaweed.target_config(bucket, name="s3"),
                                                 {"name": "nas", "url": f"file://{nas}"}]))
    d.config.chmod(0o600)
    ledger_path = site / "state" / "ledger.sqlite3"
    d.start()
    try:
        seaweed.stop()
        try:
            drop_invoices(samples_dir, site / "scan", range(1001, 1051))
            d.wait_documents(50, timeout=60, settled=True)

            def nas_done():
                s = target_states(ledger_path, ["s3", "nas"])
                return s["nas"]["objects"] == 50 and s["s3"]["last_error"] is not None, s

            during = wait_until(nas_done, 30, "the file target holding all 50", d)
            assert during["s3"]["objects"] == 0 and during["s3"]["backlog"] == 50
            assert during["s3"]["failed"] == 0 and during["s3"]["paused_error"] is None
            shown = cli(d.config, "backup", "status").stdout
            assert "backlog:       50" in shown
            # Not "ok": unreachable since its first failure, the file target fine.
            assert during["s3"]["unreachable_since"] and during["nas"]["unreachable_since"] is None
            from service.display import local_time   # shown local, with its offset; --json keeps UTC

            assert f"UNREACHABLE since {local_time(during['s3']['unreachable_since'])}" in cli(d.config, "status").stdout
        finally:
            seaweed.start()

        def drained():
            s = target_states(ledger_path, ["s3"])["s3"]
            return s["objects"] == 50 and s["backlog"] == 0, s

        # Objects tried during the outage were put off for up to 600 s; they
        # are due again as soon as the target answers, so this takes seconds.
        after = wait_until(drained, 30, "the S3 backlog drained", d)
        assert after["unreachable_since"] is None
    finally:
        d.stop()
    shas = list(Vault(site / "state" / "vault").iter_objects())
    assert len(shas) == 50
    client = seaweed.client()
    for sha in shas:
        assert client.head_object(Bucket=bucket, Key=object_key(sha))["ContentLength"] > 0
        body = client.get_object(Bucket=bucket, Key=object_key(sha))["Body"].read()
        assert body == Vault(site / "state" / "vault").read(sha)
    assert_ledger_sound(d.config)
