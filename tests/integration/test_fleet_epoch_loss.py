"""The fleet store loses claims while its epoch stays (claims/ deleted, the
bucket restored from an older copy): each site's marks (the newest and the
oldest claim generation it recorded) show it, the site that finds one gone
writes a `lost` epoch, and every site then looks up before it puts a key it
claims from nothing. A store that does not answer keeps today's behaviour.
And what an operator sees and types: `status`, `status --check`, `fleet
status`, `fleet epoch`, `fleet acknowledge`, the notification, the gauge.
Real ledgers, a real folder destination, a real SeaweedFS, the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from prometheus_client import generate_latest

from agent.config import parse_config
from agent.errors import Transient
from agent.fleet.epoch import WHY_MAX, read_head
from agent.fleet.store import open_store
from agent.fleet.trust import DOUBTED, acknowledge_loss, doubt
from agent.ledger import Ledger
from agent.notify import open_faults
from service.metrics import registry_for
from tests.integration.test_fleet_claims import delivered_files
from tests.integration.test_fleet_epoch import (Fleet, fleet, loop_pass, now, outcomes, step,  # noqa: F401
                                                 warnings)
from tests.support.monitoring import exported_names
from tests.support.queued import number_of
from tests.support.seaweed import seaweed  # noqa: F401  (fixture)
from tests.integration.test_fleet_hostile import REPO


def deliver(site, i: int, store) -> int:
    """Invoice `i` at `site`, delivered (no look-up: the store is trusted) and `delivered` on its claim."""
    doc = site.add(i, now())
    assert [s.kind for s in step(site, store)] == ["go"] and outcomes(site, doc) == ["delivered"]
    assert loop_pass(site, store) is None
    return doc


def test_claims_deleted_with_the_epoch_kept_a_mark_of_this_site_shows_it(fleet: Fleet):
    bj, sh = fleet.make("beijing"), fleet.make("shanghai")
    deliver(sh, 50, fleet.store)                               # Shanghai's own mark: generation 2 of 50
    deliver(bj, 51, fleet.store)
    fleet.delete("claims/")                                    # epoch/ stays: the epoch cannot show it
    b = sh.add(51, now())
    (s,) = step(sh, fleet.store)
    assert s.kind == "go" and s.claim.recovering and outcomes(sh, b) == ["found"], (s, outcomes(sh, b))
    assert f"generation 2 of the claim on {number_of(50)}" in s.note and s.note.startswith(DOUBTED), s.note
    head = read_head(fleet.store)[0]
    assert (head.generation, head.kind, head.made_by) == (2, "lost", "shanghai")
    assert loop_pass(bj, fleet.store).startswith("site shanghai found it: generation 2 of the claim on")
    assert len(delivered_files(fleet.out)) == 2
    assert bj.audit(now()) == [] and sh.audit(now()) == []


@pytest.mark.parametrize("who", ["the-site-that-lost-its-claim-tells", "its-own-newer-mark"])
def test_a_store_restored_from_an_older_copy_is_doubted(fleet: Fleet, who):
    bj, sh = fleet.make("beijing"), fleet.make("shanghai")
    deliver(sh, 60, fleet.store)
    deliver(bj, 61, fleet.store)
    copy = fleet.objects()                                     # the copy the store is restored from later
    deliver(bj, 62, fleet.store)                               # after the copy: lost with the restore
    if who == "its-own-newer-mark":
        deliver(sh, 63, fleet.store)
    fleet.put_back(copy)
    assert read_head(fleet.store)[0].kind == "new"             # the same epoch: it cannot show the restore
    if who == "the-site-that-lost-its-claim-tells":
        # Beijing's fleet loop: its newest mark (62's `delivered`) is gone.
        assert f"generation 2 of the claim on {number_of(62)}" in loop_pass(bj, fleet.store)
    b = sh.add(62, now())
    (s,) = step(sh, fleet.store)
    assert s.kind == "go" and s.claim.recovering and outcomes(sh, b) == ["found"], (s, outcomes(sh, b))
    gone = 62 if who == "the-site-that-lost-its-claim-tells" else 63
    assert f"generation 2 of the claim on {number_of(gone)}" in s.note, s.note
    assert read_head(fleet.store)[0].kind == "lost"
    assert [f for f in delivered_files(fleet.out) if number_of(62) in f] == [f"{number_of(62)}.pdf"]
    assert bj.audit(now()) == [] and sh.audit(now()) == []


def test_an_epoch_older_than_the_one_joined_and_garbage_under_epoch_are_doubted(fleet: Fleet):
    bj, sh = fleet.make("beijing"), fleet.make("shanghai")
    deliver(sh, 70, fleet.store)
    deliver(bj, 71, fleet.store)
    copy = fleet.objects()
    fleet.delete("claims/")
    assert loop_pass(bj, fleet.store)                          # lost (generation 2), then acknowledged (3)
    assert acknowledge_loss(bj.ledger, fleet.store, site="beijing", now=now(), actor="cli:alice",
                            reason="claims/ deleted by a sync tool")["acknowledged"]
    assert loop_pass(sh, fleet.store) is None and sh.ledger.fleet_epoch()["generation"] == 3
    fleet.put_back(copy)                                       # an older copy: its epoch is generation 1
    why = loop_pass(sh, fleet.store)
    assert "generation 1 (made by site shanghai), not generation 3" in why, why
    assert read_head(fleet.store)[0].generation == 2           # `lost`, above the copy's generation 1
    # Garbage where a generation should be: doubted, never trusted or a crash.
    fleet.client.put_object(Bucket=fleet.bucket, Key="fleet/epoch/gen-00000003", Body=b"\x00not json")
    assert "not one a site writes" in loop_pass(sh, fleet.store)
    assert read_head(fleet.store)[0].generation == 4 and sh.ledger.fleet_doubt()
    assert bj.audit(now()) == [] and sh.audit(now()) == []


class EpochUnreadable:
    """The real store, whose epoch listing fails (a store that answered the claim, then did not)."""

    def __init__(self, store):
        self._store = store

    def __getattr__(self, name):
        return getattr(self._store, name)

    def list_tagged(self, prefix):
        raise Transient("fleet store: list 'epoch/': cannot reach it (ConnectionError)")


def test_a_store_that_does_not_answer_keeps_todays_behaviour(fleet: Fleet, seaweed):
    down = {**fleet.cfg, "endpoint_url": "http://127.0.0.1:9"}   # nothing listens there
    held, loose = fleet.make("beijing"), fleet.make("shanghai", on_unreachable="deliver")
    held.store = loose.store = open_store(down)
    a, b = held.add(80, now()), loose.add(81, now())
    assert held.step(now()) == ["held"] and loose.step(now()) == ["go"]
    assert outcomes(loose, b) == ["delivered"] and loose.ledger.fleet_claim(b)["state"] == "unclaimed"
    assert held.ledger.fleet_claim(a)["state"] == "held" and "unreachable" in held.ledger.fleet_claim(a)["reason"]
    assert held.ledger.fleet_doubt() is None and loose.ledger.fleet_doubt() is None   # no doubt made up
    # A store that answered the claim but not the look at its epoch: looked up all the same.
    sz = fleet.make("shenzhen")
    c = sz.add(82, now())
    (s,) = step(sz, EpochUnreadable(fleet.store))
    assert s.kind == "go" and s.claim.recovering and "epoch could not be read" in s.note, s
    assert outcomes(sz, c) == ["delivered"] and sz.ledger.fleet_doubt() is None
    for site in (held, loose, sz):
        assert site.audit(now()) == []


def cli(fleet: Fleet, site: str, *args: str) -> subprocess.CompletedProcess:
    """The real CLI on a config whose state is the site's folder."""
    config = fleet.tmp / f"{site}.toml"
    keys = "".join(f"{k} = {json.dumps(v)}\n" for k, v in fleet.cfg.items() if v is not None)
    config.write_text(f'[agent]\nstate_dir = "{fleet.tmp / site}"\n\n[fleet]\nsite = "{site}"\n{keys}\n'
                      f'[[destination]]\nname = "erp"\nurl = "folder://{fleet.out}"\n', encoding="utf-8")
    config.chmod(0o600)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "service", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=60, env=env, cwd=fleet.tmp)


def test_an_operator_is_told_and_acknowledges_with_the_cli(fleet: Fleet):
    bj, sh = fleet.make("beijing"), fleet.make("shanghai")
    deliver(bj, 90, fleet.store)
    assert loop_pass(sh, fleet.store) is None
    fleet.remake_bucket()
    assert "holds no epoch" in loop_pass(sh, fleet.store)
    r = cli(fleet, "shanghai", "status")
    assert "CLAIMS MAY BE LOST since" in r.stdout and "fleet acknowledge" in r.stdout, r.stdout
    r = cli(fleet, "shanghai", "status", "--check")
    assert "the fleet store may have lost its claims" in r.stdout and "holds no epoch" in r.stdout, r.stdout
    r = cli(fleet, "beijing", "fleet", "status")
    assert r.returncode == 0 and "  fleet store epoch: generation 1 (written as lost by site shanghai)" in r.stdout
    r = cli(fleet, "shanghai", "fleet", "epoch", "--json")
    shown = json.loads(r.stdout)
    assert r.returncode == 1 and shown["store"]["kind"] == "lost" and "holds no epoch" in shown["doubt"], r
    # The notification and the gauge say it too.
    cfg = parse_config({"agent": {"state_dir": str(fleet.tmp / "shanghai")}, "fleet": {
        "site": "shanghai", **fleet.cfg}, "destination": [{"name": "erp", "url": f"folder://{fleet.out}"}]},
        base_dir=fleet.tmp)
    metrics = generate_latest(registry_for(cfg)).decode()
    assert "fapiao_fleet_store_doubted 1.0" in metrics and "fapiao_fleet_claims_vanished" in exported_names(metrics)
    report = {"fleet": {"site": "shanghai", **sh.ledger.fleet_summary()}}
    fault = open_faults(report, {"events": ["fleet-claims-lost"]}, now=now())["fleet-claims-lost"]
    assert "holds no epoch" in fault.text and "fleet acknowledge" in fault.text, fault
    assert open_faults(report, {"events": ["sla-breached"]}, now=now()) == {}
    # --help teaches; a reason is required; --json; the actor in the trail.
    r = cli(fleet, "shanghai", "fleet", "acknowledge", "--help")
    assert "Before you acknowledge" in r.stdout and "Exit status" in r.stdout, r.stdout
    assert cli(fleet, "shanghai", "fleet", "acknowledge", "--reason", " ").returncode == 2
    r = cli(fleet, "shanghai", "fleet", "acknowledge", "--reason", "bucket made anew (CHG-2041)", "--json")
    done = json.loads(r.stdout)
    assert r.returncode == 0 and done["acknowledged"] and done["epoch"]["kind"] == "acknowledged", r
    assert done["epoch"]["actor"].startswith("cli:") and "CHG-2041" in done["epoch"]["why"]
    assert sh.ledger.fleet_doubt() is None
    r = cli(fleet, "shanghai", "audit", "export", "--since", "2000-01-01", "--json")
    (ack,) = [e for e in json.loads(r.stdout)["events"] if "acknowledged here by" in (e["reason"] or "")]
    assert ack["actor"].startswith("cli:") and "CHG-2041" in ack["reason"] and ack["document"] is None, ack
    r = cli(fleet, "shanghai", "fleet", "acknowledge", "--reason", "again")
    assert r.returncode == 1 and "nothing to acknowledge" in r.stdout, r
    assert loop_pass(bj, fleet.store) is None                  # Beijing follows the acknowledgement
    assert cli(fleet, "beijing", "fleet", "epoch").returncode == 0
    assert warnings(bj) == [] and warnings(sh) == []
    metrics = generate_latest(registry_for(cfg)).decode()
    assert "fapiao_fleet_store_doubted 0.0" in metrics
    assert bj.audit(now()) == [] and sh.audit(now()) == []


@pytest.mark.parametrize("kind", ["file", "s3"])
def test_a_long_reason_reads_back_and_a_huge_epoch_object_is_doubted_unread(kind, tmp_path, seaweed):
    if kind == "file":
        (tmp_path / "shared").mkdir()
        store = open_store({"url": f"file://{tmp_path / 'shared'}"})
    else:
        cfg = seaweed.target_config(seaweed.make_bucket(), prefix="fleet")
        cfg.pop("name")
        store = open_store(cfg)
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    try:
        assert doubt(ledger, store, site="beijing", now=now(), actor="t") is None      # a new fleet
        store.put("epoch/gen-00000002", b"{" + b" " * (2 << 20) + b"}")      # a hand's huge object
        why = doubt(ledger, store, site="beijing", now=now(), actor="t")
        assert "not one a site writes" in why and "limit" in why, why
        # Four bytes a character, longer than any text is kept: cut, and still read back.
        done = acknowledge_loss(ledger, store, site="beijing", now=now(), actor="cli:alice",
                                reason="𠮷" * (WHY_MAX * 2))
        assert done["acknowledged"] and read_head(store)[0].why.startswith("𠮷" * 100)
        assert doubt(ledger, store, site="beijing", now=now(), actor="t") is None
    finally:
        ledger.close()


def test_the_whole_store_put_back_from_a_copy_ends_the_doubt_without_acknowledging(fleet: Fleet):
    bj, sh = fleet.make("beijing"), fleet.make("shanghai")
    deliver(bj, 95, fleet.store)
    assert loop_pass(sh, fleet.store) is None
    copy = fleet.objects()
    fleet.delete()                                             # the bucket emptied by mistake
    assert "holds no epoch" in loop_pass(sh, fleet.store)
    assert "site shanghai found it" in loop_pass(bj, fleet.store)
    fleet.put_back(copy)                                       # made again what the copy holds, epoch/ too
    assert loop_pass(sh, fleet.store) is None and loop_pass(bj, fleet.store) is None
    assert warnings(bj) == [] and warnings(sh) == [] and read_head(fleet.store)[0].kind == "new"
    b = sh.add(95, now())
    assert [s.kind for s in step(sh, fleet.store)] == ["lost"]  # Beijing's claim is back: a duplicate here
    assert sh.ledger.get(b).state == "duplicate" and len(delivered_files(fleet.out)) == 1
    assert bj.audit(now()) == [] and sh.audit(now()) == []
