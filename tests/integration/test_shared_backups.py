"""Shared backups (issue 16): two sites of a fleet back up into one SeaweedFS
prefix and one file:// folder. Originals are stored once for the fleet;
each site's snapshots, sidecars and manifests live under sites/<site>/;
`backup restore --site` rebuilds one site with its documents only; retention,
verify and the drill each touch only their own site. Without [fleet] the
layout is the one it always was.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from pathlib import Path

import pytest

from agent.backup.base import object_key, open_target
from agent.backup.sidecars import sidecars_on
from agent.backup.mirror import snapshot_step
from agent.backup.sites import SiteTarget, check_site, sites_on
from agent.config import load_config
from agent.errors import ConfigError
from agent.ledger import Ledger
from agent.vault import Vault
from service.backup import TargetRunner, open_backup
from tests.integration.test_backup_ledger import T0, cli, drain, invoice_xml, write_config
from tests.support.audit import assert_ledger_sound
from tests.support.seaweed import seaweed  # noqa: F401  (fixture)

SITES = {"bj": range(1, 5), "sh": range(3, 7)}    # invoices 3 and 4 reach both sites, byte for byte


def site_config(root: Path, site: str | None, backups: list[dict]) -> Path:
    config = write_config(root, backups)
    if site:
        (root.parent / "fleet").mkdir(exist_ok=True)
        with open(config, "a", encoding="utf-8") as f:
            f.write(f'\n[fleet]\nurl = "file://{root.parent / "fleet"}"\nsite = "{site}"\n')
    return config


def ingest(config: Path, samples_dir: Path, numbers, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in numbers:
        (folder / f"inv-{n}.xml").write_bytes(invoice_xml(samples_dir, n))
    r = cli(config, "ingest", str(folder))
    assert r.exit_code == 0, r.output


def keys(seaweed, bucket: str, prefix: str) -> list[str]:
    pages = seaweed.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"][len(prefix):] for p in pages for o in p.get("Contents", []))


def numbers(ledger_path: Path) -> dict[str, str]:
    with Ledger(ledger_path, readonly=True) as ledger:
        return {d.sha256: d.invoice_number for d in ledger.list_documents(limit=0)}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, seaweed, samples_dir):
    root = tmp_path_factory.mktemp("shared")
    (root / "nas").mkdir()
    bucket = seaweed.make_bucket()
    backups = [seaweed.target_config(bucket, prefix="fleet", name="s3"),
               {"name": "nas", "url": f"file://{root / 'nas'}"}]
    sites = {}
    for name, invoices in SITES.items():
        (root / name).mkdir()
        config = site_config(root / name, name, backups)
        ingest(config, samples_dir, invoices, root / name / "in")
        cfg = load_config(config)
        with Ledger(cfg.ledger_path) as ledger:
            for entry in cfg.backups:
                target = open_backup(cfg, entry)
                assert isinstance(target, SiteTarget) and target.site == name
                drain(ledger, Vault(cfg.vault_dir), target)
                snapshot_step(ledger, target, now=T0)
        sites[name] = {"config": config, "cfg": cfg, "docs": numbers(cfg.ledger_path)}
    return {"root": root, "bucket": bucket, "sites": sites, "backups": backups}


def test_originals_are_stored_once_and_each_site_keeps_its_own_ledger_and_sidecars(fleet, seaweed):
    bj, sh = fleet["sites"]["bj"]["docs"], fleet["sites"]["sh"]["docs"]
    assert len(bj) == 4 and len(sh) == 4 and len(set(bj) & set(sh)) == 2
    every = set(bj) | set(sh)
    nas = fleet["root"] / "nas"
    for listing in (keys(seaweed, fleet["bucket"], "fleet/"),
                    sorted(str(p.relative_to(nas)) for p in nas.rglob("*") if p.is_file())):
        originals = [k for k in listing if k.startswith("objects/")]
        assert sorted(originals) == sorted(object_key(s) for s in every)   # 6, not 8: stored once
        for name, docs in (("bj", bj), ("sh", sh)):
            mine = [k for k in listing if k.startswith(f"sites/{name}/")]
            # Its sidecars: in batches under its own prefix, none beside the originals.
            assert not [k for k in mine if "/objects/" in k]
            assert [k for k in mine if k.startswith(f"sites/{name}/sidecars/")]
            nas_site = SiteTarget(open_target({"name": "nas", "url": f"file://{nas}"}), name)
            assert sorted(sidecars_on(nas_site)) == sorted(docs)
            assert len([k for k in mine if k.startswith(f"sites/{name}/ledger/")]) == 1
            assert [k for k in mine if "/manifests/" in k] == [f"sites/{name}/manifests/2026-05-01.json"]
        assert not [k for k in listing if k.startswith(("ledger/", "manifests/"))]
    nas_target = open_target({"name": "nas", "url": f"file://{nas}"})
    assert sites_on(nas_target) == ["bj", "sh"]
    # The shared sidecar of invoice 3 is two files: each describes its own site's document.
    shared = sorted(set(bj) & set(sh))[0]
    side = {n: sidecars_on(SiteTarget(nas_target, n))[shared] for n in ("bj", "sh")}
    for n in ("bj", "sh"):
        with Ledger(fleet["sites"][n]["cfg"].ledger_path, readonly=True) as ledger:
            assert side[n] == json.loads(json.dumps(ledger.sidecar(shared), default=str))
    assert side["bj"] != side["sh"]


def test_restore_site_rebuilds_that_site_only_and_passes_the_audit(fleet, tmp_path):
    bj_config = fleet["sites"]["bj"]["config"]
    for site in ("sh", "bj"):   # sh restored with bj's config: under another site's name
        out = tmp_path / site
        r = cli(bj_config, "backup", "restore", "--from", "s3", "--to", str(out), "--site", site, "--json")
        assert r.exit_code == 0, r.output
        report = json.loads(r.output.splitlines()[-1])
        assert report["site"] == site and report["other_sites"] == 2 and not report["problems"]
        assert report["snapshot"].startswith("ledger/ledger-")
        assert numbers(out / "state" / "ledger.sqlite3") == fleet["sites"][site]["docs"]
        vault = Vault(out / "state" / "vault")
        assert sorted(vault.iter_objects()) == sorted(fleet["sites"][site]["docs"])
        assert f"site = {json.dumps(site)}" in (out / "restored.toml").read_text()
        assert_ledger_sound(out / "restored.toml")
    # Without --site, a fleet config restores its own site.
    r = cli(bj_config, "backup", "restore", "--from", "nas", "--to", str(tmp_path / "own"), "--json")
    assert r.exit_code == 0, r.output
    assert numbers(tmp_path / "own" / "state" / "ledger.sqlite3") == fleet["sites"]["bj"]["docs"]


def test_restore_refuses_an_unknown_or_hostile_site_name(fleet, tmp_path):
    bj_config = fleet["sites"]["bj"]["config"]
    r = cli(bj_config, "backup", "restore", "--from", "s3", "--to", str(tmp_path / "x"), "--site", "gz")
    assert r.exit_code != 0 and "no ledger snapshot of site 'gz'" in r.output and "sites found: bj, sh" in r.output
    for hostile in ("../sh", "sh/../bj", "", "SH", "a" * 64):
        r = cli(bj_config, "backup", "restore", "--from", "s3", "--to", str(tmp_path / "y"), "--site", hostile)
        assert r.exit_code == 2 and "not a fleet site name" in r.output, (hostile, r.output)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y" / "state").exists()
    with pytest.raises(ConfigError):
        check_site("../x")
    # A config without [fleet] does not guess which site a shared target means.
    lone = tmp_path / "lone"
    lone.mkdir()
    config = site_config(lone, None, fleet["backups"])
    r = cli(config, "backup", "restore", "--from", "nas", "--to", str(tmp_path / "z"))
    assert r.exit_code != 0 and "shared by the sites bj, sh: name the one to rebuild with --site" in r.output


def test_verify_and_drill_pass_per_site_and_leave_the_shared_originals(fleet, seaweed):
    before = keys(seaweed, fleet["bucket"], "fleet/objects/")
    for name in ("bj", "sh"):
        config = fleet["sites"][name]["config"]
        r = cli(config, "backup", "verify", "--full", "--json")
        assert r.exit_code == 0, r.output
        assert [json.loads(line)["ok"] for line in r.output.splitlines() if line.startswith("{")] == [4, 4]
        r = cli(config, "backup", "drill", "--json")
        assert r.exit_code == 0, r.output
        drills = [json.loads(line) for line in r.output.splitlines() if line.startswith("{")]
        assert [(d["ok"], d["sampled"], d["snapshot_ok"]) for d in drills] == [(True, 4, True)] * 2
    assert keys(seaweed, fleet["bucket"], "fleet/objects/") == before


def test_retention_prunes_only_this_sites_snapshots(fleet, seaweed):
    cfgs = {n: fleet["sites"][n]["cfg"] for n in ("bj", "sh")}
    for hours in (1, 2, 3):
        for name, cfg in cfgs.items():
            with Ledger(cfg.ledger_path) as ledger:
                snapshot_step(ledger, open_backup(cfg, cfg.backups[0]), now=T0 + dt.timedelta(hours=hours),
                              retention={"hourly_days": 1, "daily_days": 1, "monthly_years": 1})
    sh_before = keys(seaweed, fleet["bucket"], "fleet/sites/sh/ledger/")
    assert len(sh_before) == 4
    with Ledger(cfgs["bj"].ledger_path) as ledger:   # 90 days on: bj keeps only its newest
        snapshot_step(ledger, open_backup(cfgs["bj"], cfgs["bj"].backups[0]), now=T0 + dt.timedelta(days=90),
                      retention={"hourly_days": 0, "daily_days": 0, "monthly_years": 0})
        lid = ledger.ledger_id(now="")
    assert keys(seaweed, fleet["bucket"], "fleet/sites/bj/ledger/") == [f"ledger-20260730T080000Z-{lid}.sqlite.gz"]
    assert keys(seaweed, fleet["bucket"], "fleet/sites/sh/ledger/") == sh_before
    assert len(keys(seaweed, fleet["bucket"], "fleet/objects/")) == 6


def test_without_fleet_the_layout_is_unchanged_and_restores(tmp_path, samples_dir):
    (tmp_path / "nas").mkdir()
    config = site_config(tmp_path, None, [{"name": "nas", "url": "file://nas"}])
    ingest(config, samples_dir, range(1, 4), tmp_path / "in")
    cfg = load_config(config)
    target = open_backup(cfg, cfg.backups[0])
    assert not isinstance(target, SiteTarget)
    with Ledger(cfg.ledger_path) as ledger:
        drain(ledger, Vault(cfg.vault_dir), target)
        snapshot_step(ledger, target, now=T0)
    docs = numbers(cfg.ledger_path)
    nas = tmp_path / "nas"
    assert sorted(p.name for p in nas.iterdir()) == [".fapiao-agent-target", "ledger", "manifests", "objects", "sidecars"]
    assert not list((nas / "objects").rglob("*.json"))
    assert sorted(sidecars_on(target)) == sorted(docs)
    r = cli(config, "backup", "restore", "--from", "nas", "--to", str(tmp_path / "out"), "--json")
    assert r.exit_code == 0, r.output
    assert numbers(tmp_path / "out" / "state" / "ledger.sqlite3") == docs
    # The same pre-fleet backup, asked for by site: refused, saying what it holds.
    (tmp_path / "other").mkdir()
    fleet_config = site_config(tmp_path / "other", "bj", [{"name": "nas", "url": f"file://{nas}"}])
    r = cli(fleet_config, "backup", "restore", "--from", "nas", "--to", str(tmp_path / "out2"))
    assert r.exit_code != 0 and "sites found: none" in r.output and "pre-fleet backup" in r.output


def test_an_original_already_there_with_other_bytes_is_replaced_not_trusted(seaweed):
    bucket = seaweed.make_bucket()
    target = open_target(seaweed.target_config(bucket, prefix="fleet"))
    data = b"an original"
    sha = hashlib.sha256(data).hexdigest()
    seaweed.client().put_object(Bucket=bucket, Key="fleet/" + object_key(sha), Body=b"something else")
    SiteTarget(target, "bj").put(object_key(sha), data, sha)
    assert target.get(object_key(sha)) == data
    SiteTarget(target, "sh").put(object_key(sha), data, sha)   # the other site: kept, not put twice
    assert keys(seaweed, bucket, "fleet/") == [object_key(sha)]


def test_a_site_joining_the_fleet_puts_its_backup_again_under_its_prefix(tmp_path, samples_dir):
    nas = tmp_path / "nas"
    nas.mkdir()
    backups = [{"name": "nas", "url": f"file://{nas}"}]
    (tmp_path / "gz").mkdir()
    config = site_config(tmp_path / "gz", None, backups)
    ingest(config, samples_dir, range(1, 4), tmp_path / "gz" / "in")
    cfg = load_config(config)
    runner_target = open_backup(cfg, cfg.backups[0])
    TargetRunner(cfg, runner_target, threading.Event())       # a lone agent: "flat"
    with Ledger(cfg.ledger_path) as ledger:
        drain(ledger, Vault(cfg.vault_dir), runner_target)
        snapshot_step(ledger, runner_target, now=T0)
    docs = numbers(cfg.ledger_path)
    # The same agent (same state) joins the fleet as site gz.
    config = site_config(tmp_path / "gz", "gz", backups)
    cfg = load_config(config)
    target = open_backup(cfg, cfg.backups[0])
    TargetRunner(cfg, target, threading.Event())
    with Ledger(cfg.ledger_path) as ledger:
        assert ledger.backup_target("nas")["last_snapshot"] is None   # a snapshot is due at once
        drain(ledger, Vault(cfg.vault_dir), target, now=T0 + dt.timedelta(hours=1))
        snapshot_step(ledger, target, now=T0 + dt.timedelta(hours=1))
        lid = ledger.ledger_id(now="")
    mine = sorted(str(p.relative_to(nas / "sites" / "gz")) for p in (nas / "sites" / "gz").rglob("*") if p.is_file())
    assert sorted(sidecars_on(target)) == sorted(docs)   # described again under sites/gz/
    assert [k for k in mine if k.startswith("sidecars/")]
    assert [k for k in mine if k.startswith(("ledger/", "manifests/"))] == [
        f"ledger/ledger-20260501T090000Z-{lid}.sqlite.gz", "manifests/2026-05-01.json"]
    r = cli(config, "backup", "drill", "--json")
    assert r.exit_code == 0 and json.loads(r.output.splitlines()[-1])["ok"], r.output
    # A second site shares the folder; the pre-fleet backup, restored as it is
    # by a config without [fleet], brings back gz's documents only.
    (tmp_path / "sz").mkdir()
    other = site_config(tmp_path / "sz", "sz", backups)
    ingest(other, samples_dir, range(3, 6), tmp_path / "sz" / "in")
    ocfg = load_config(other)
    with Ledger(ocfg.ledger_path) as ledger:   # a new site has nothing to move
        assert not ledger.adopt_backup_layout("nas", "site:sz", now="2026-05-01T08:00:00Z")
        drain(ledger, Vault(ocfg.vault_dir), open_backup(ocfg, ocfg.backups[0]))
    (tmp_path / "flat").mkdir()
    r = cli(site_config(tmp_path / "flat", None, backups), "backup", "restore", "--from", "nas",
            "--to", str(tmp_path / "out"), "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output.splitlines()[-1])["other_sites"] == 2
    assert numbers(tmp_path / "out" / "state" / "ledger.sqlite3") == docs
