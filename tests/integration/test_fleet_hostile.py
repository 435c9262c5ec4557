"""Garbage and hostile objects in the fleet store (issue 16): anyone who can
write to the shared bucket can put anything where a claim or a site's status
should be. Each object here is put with boto3 straight into a real SeaweedFS;
a site must never deliver twice because of it, never hold without saying
why, never read a huge object whole, and `fleet repair` must let the key go."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from agent.deliver import open_destination
from agent.deliver.loop import claim, record, send
from agent.deliver.retry import DeliveryPolicy
from agent.fleet.claims import CLAIM_MAX_BYTES, acquire, claim_prefix, head
from agent.fleet.repair import repair
from agent.fleet.gate import FleetSettings, renew_leases, screen
from agent.fleet.status import find, publish_status, read_sites
from agent.fleet.store import TooLarge, open_store
from agent.ledger import Ledger, utc
from agent.vault import Vault
from tests.support.queued import number_of, queue_invoice
from tests.support.seaweed import seaweed  # noqa: F401  (fixture)

UTC = dt.timezone.utc
REPO = Path(__file__).resolve().parent.parent.parent


def good_claim(gen: int, **change) -> dict:
    now = dt.datetime.now(UTC)
    body = {"site": "beijing", "holder": "", "sha256": "a" * 64, "document_id": 1, "generation": gen,
            "at": now.isoformat(timespec="seconds"), "state": "claimed",
            "lease_until": (now + dt.timedelta(seconds=300)).isoformat(timespec="seconds")}
    body.update(change)
    return body


@pytest.fixture
def bucket(seaweed):
    """(fleet store, boto3 client, bucket, the store's config) on a fresh bucket."""
    name = seaweed.make_bucket()
    cfg = seaweed.target_config(name, prefix="fleet")
    cfg.pop("name")
    return open_store(cfg), seaweed.client(), name, cfg


def put(client, bucket: str, key: str, body) -> None:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    client.put_object(Bucket=bucket, Key="fleet/" + key, Body=data)


class Site:
    """One site: a real ledger and vault, one folder destination, the shared store."""

    def __init__(self, root: Path, name: str, store, **fleet):
        self.ledger = Ledger(root / name / "ledger.sqlite3")
        self.vault = Vault(root / name / "vault")
        self.store, self.name = store, name
        self.settings = FleetSettings(site=name, **fleet)
        (root / "out").mkdir(exist_ok=True)
        self.out = root / "out"
        self.dest = open_destination({"name": "erp", "url": f"folder://{self.out}"})
        self.policy = DeliveryPolicy.from_config({"name": "erp", "url": f"folder://{self.out}"})

    def step(self, now: dt.datetime) -> list[str]:
        kinds = []
        claims = claim(self.ledger, "erp", now=now, lease_s=60, token="w", actor=self.name, limit=8)
        for s in screen(self.ledger, self.store, self.settings, claims, now=now, actor=self.name):
            kinds.append(s.kind)
            if s.kind == "go":
                record(self.ledger, s.claim, send(self.dest, s.claim, self.vault), self.policy, now=now,
                       rng=random.Random(1), actor=self.name, tz=UTC)
        return kinds

    def delivered(self) -> list[str]:
        return sorted(p.name for p in self.out.glob("*") if p.suffix != ".json" and not p.name.startswith("."))


@pytest.fixture
def shanghai(tmp_path, bucket):
    site = Site(tmp_path, "shanghai", bucket[0], on_unreachable="deliver")
    yield site
    site.ledger.close()


# Each: (what is at claims/<key>/, why a site must not trust it). `deliver` mode,
# the most permissive: the old code delivered on some (a claim it could not
# parse was "unreachable"), took others for a live claim of another site and
# waited on them for ever (a lease in year 9999), became a duplicate of a
# forged delivered claim nobody made (so the invoice went nowhere), or raised
# out of the gate (a time stamp without a zone) and retried the row for ever.
HOSTILE = {
    "not-json": {"gen-00000001": b"\x00\xff this is not a claim"},
    "empty-object": {"gen-00000001": b""},
    "json-list": {"gen-00000001": [1, 2, 3]},
    "missing-fields": {"gen-00000001": {"site": "beijing"}},
    "lease-in-year-9999": {"gen-00000001": good_claim(1, lease_until="9999-12-31T23:59:59+00:00")},
    "stamp-without-zone": {"gen-00000001": good_claim(1, lease_until="2030-01-01T00:00:00")},
    "negative-generation": {"gen-00000001": good_claim(1, generation=-1)},
    "unknown-state": {"gen-00000001": good_claim(1, state="stolen")},
    "document-id-not-a-number": {"gen-00000001": good_claim(1, document_id="1; DROP TABLE")},
    "site-not-a-site-name": {"gen-00000001": good_claim(1, site="../../etc")},
    "lone-generation-far-up": {"gen-00000500": good_claim(500, state="delivered")},
    # gen 1's lease has run out: a live claim under the gap would be restored
    # by `repair` (its holder may be putting it: test_attack16b_repair.py).
    "gap-below-the-head": {"gen-00000001": good_claim(1, lease_until="2020-01-01T00:00:00+00:00"),
                           "gen-00000007": good_claim(7, state="delivered")},
    "claim-shaped-but-4-mib": {"gen-00000001": json.dumps(good_claim(1, pad="x" * (4 << 20))).encode()},
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_an_invalid_claim_holds_the_key_with_its_reason_even_in_deliver_mode(case, bucket, shanghai):
    store, client, name, _cfg = bucket
    now = dt.datetime.now(UTC)
    doc = queue_invoice(shanghai.ledger, shanghai.vault, 1, destinations=["erp"], now=utc(now))
    for gen, body in HOSTILE[case].items():
        put(client, name, f"{claim_prefix(number_of(1))}{gen}", body)
    assert shanghai.step(now) == ["held"]
    assert shanghai.delivered() == []
    claim_row = shanghai.ledger.fleet_claim(doc)
    assert claim_row["state"] == "held" and "fleet claim invalid" in claim_row["reason"], claim_row
    assert f"fleet repair {number_of(1)}" in claim_row["reason"]
    summary = shanghai.ledger.fleet_summary()          # what `status` and `status --check` print
    assert summary["claims"]["held"] == summary["invalid"] == 1 and "invalid" in summary["held_reason"]
    (row,) = shanghai.ledger.deliveries_of(doc)
    assert row["state"] == "queued" and row["attempts"] == 0 and "invalid" in row["last_error"]
    # The operator's way out: repair writes `released` above it (the object
    # stays); the site takes the key over and looks the destination up first.
    done = repair(store, number_of(1), site="shanghai", now=now)
    assert done["repaired"] and number_of(1) in done["why"] and done["why"] in claim_row["reason"], done
    assert head(store, number_of(1), now=now).state == "released"
    assert shanghai.step(now + dt.timedelta(seconds=20)) == ["go"]
    assert shanghai.delivered() == [f"{number_of(1)}.pdf"]
    outcomes = [r[0] for r in shanghai.ledger.conn.execute("SELECT outcome FROM attempts")]
    assert outcomes[-1] == "delivered" and "fleet-held" in outcomes, outcomes
    assert "released" in (shanghai.ledger.fleet_claim(doc)["reason"] or "")
    # Repairing a valid claim does nothing.
    assert not repair(store, number_of(1), site="shanghai", now=now)["repaired"]


def test_a_generation_above_the_chain_is_no_claim_and_does_not_stop_a_delivery(bucket, shanghai):
    # A forged "delivered" at gen-99999999 made the old code's site a
    # duplicate of a claim nobody made: the invoice was delivered nowhere.
    store, client, name, _cfg = bucket
    now = dt.datetime.now(UTC)
    queue_invoice(shanghai.ledger, shanghai.vault, 2, destinations=["erp"], now=utc(now))
    put(client, name, f"{claim_prefix(number_of(2))}gen-99999999", good_claim(99_999_999, state="delivered"))
    assert shanghai.step(now) == ["go"]
    assert shanghai.delivered() == [f"{number_of(2)}.pdf"]
    assert head(store, number_of(2), now=now).site == "shanghai"


def test_a_huge_object_is_never_read_whole(bucket):
    # 32 MiB where a claim should be: the old read took all of it into memory.
    store, client, name, _cfg = bucket
    put(client, name, "claims/24442000000000000099/gen-00000001", b"{" + b" " * (32 << 20) + b"}")
    tracemalloc.start()
    try:
        v = acquire(store, "24442000000000000099", site="shanghai", sha256="b" * 64, document_id=1,
                    now=dt.datetime.now(UTC), lease_s=300)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 << 20, f"{peak} bytes taken to judge a 32 MiB claim"
    assert v.kind == "unreachable" and v.invalid and "limit" in v.error, v
    with pytest.raises(TooLarge, match="over the 16384-byte limit"):
        store.read("claims/24442000000000000099/gen-00000001", max_bytes=CLAIM_MAX_BYTES)
    assert store.read("claims/24442000000000000099/gen-00000001", max_bytes=64 << 20)[0].startswith(b"{ ")


def test_renewal_goes_on_past_a_key_whose_claim_turned_invalid(tmp_path, bucket):
    # One key's claim overwritten with garbage stopped the old renewal pass at
    # that key: every other key's lease ran out and was taken over.
    # Real time (the store's clock judges leases): a 10 s lease, renewed once
    # less than half of it is left.
    store, client, name, _cfg = bucket
    site = Site(tmp_path, "beijing", store, lease_s=10)
    try:
        for i in (3, 4):
            queue_invoice(site.ledger, site.vault, i, destinations=["erp"], now=utc(dt.datetime.now(UTC)))
        first, second = claim(site.ledger, "erp", now=dt.datetime.now(UTC), lease_s=60, token="w", actor="t", limit=8)
        for c in (first, second):      # the first key's lease ends a second sooner: renewed first
            assert [s.kind for s in screen(site.ledger, store, site.settings, [c], now=dt.datetime.now(UTC),
                                           actor="t")] == ["go"]
            time.sleep(1.1)
        bad = site.ledger.fleet_claim(first.document_id)["invoice_key"]
        good = site.ledger.fleet_claim(second.document_id)["invoice_key"]
        put(client, name, f"{claim_prefix(bad)}gen-00000002", b"garbage")
        time.sleep(5.2)                       # both leases have less than half (5 s) left, neither ended
        now = dt.datetime.now(UTC)
        lines = renew_leases(site.ledger, store, site.settings, now=now, actor="t")
        assert any("cannot be renewed" in line and "invalid" in line for line in lines), lines
        assert head(store, good, now=now).generation == 2             # renewed all the same
    finally:
        site.ledger.close()


def test_one_sites_garbage_or_huge_status_is_marked_and_the_others_are_shown(tmp_path, bucket):
    store, client, name, cfg = bucket
    now = dt.datetime.now(UTC)
    report = {"states": {"queued": 2, "delivered": 5}, "health": {"summary": "ok"}}
    publish_status(store, "beijing", "aaaa", report, now=now, interval_s=60)
    put(client, name, "sites/shanghai/status.json", {"written_at": now.isoformat(), "states": [1, 2],
                                                     "health": {"summary": ["x"]}})
    put(client, name, "sites/shenzhen/status.json",
        json.dumps({**report, "written_at": now.isoformat(), "pad": "x" * (2 << 20)}).encode())
    put(client, name, "sites/wuhan/status.json", b"\xff\xfe not json")
    sites = {s["site"]: s for s in read_sites(store, now=now)}
    assert sorted(sites) == ["beijing", "shanghai", "shenzhen", "wuhan"]
    assert not sites["beijing"]["stale"] and sites["beijing"]["states"]["delivered"] == 5
    for bad in ("shanghai", "shenzhen", "wuhan"):
        assert sites[bad]["stale"] and sites[bad]["error"], sites[bad]
    assert "limit" in sites["shenzhen"]["error"]
    # The table of `fleet status` (from Beijing's config) shows every site.
    config = tmp_path / "agent.toml"
    keys = "".join(f"{k} = {json.dumps(v)}\n" for k, v in cfg.items() if v is not None)
    config.write_text(f'[agent]\nstate_dir = "{tmp_path / "state"}"\n\n[fleet]\nsite = "beijing"\n{keys}',
                      encoding="utf-8")
    config.chmod(0o600)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    r = subprocess.run([sys.executable, "-m", "service", "--config", str(config), "fleet", "status"],
                       capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = {line.split()[0]: line for line in r.stdout.splitlines()[1:] if line and not line.startswith(" ")}
    assert sorted(lines) == ["beijing", "shanghai", "shenzhen", "wuhan"], r.stdout
    assert "STALE" not in lines["beijing"] and all("STALE" in lines[s] for s in ("shanghai", "shenzhen", "wuhan"))
    # Repair from the command line, as an operator would.
    put(client, name, "claims/24442000000000000077/gen-00000001", b"garbage")
    (found,) = find(store, "24442000000000000077", now=now)              # `fleet find` says why
    assert "not a claim any site writes" in found["error"], found
    rep = subprocess.run([sys.executable, "-m", "service", "--config", str(config), "fleet", "repair",
                          "24442000000000000077", "--json"], capture_output=True, text=True, timeout=60,
                         env=env, cwd=tmp_path)
    assert rep.returncode == 0 and json.loads(rep.stdout)["repaired"], (rep.stdout, rep.stderr)
    assert head(store, "24442000000000000077", now=now).state == "released"


def test_a_folder_store_reads_no_further_than_its_bound(tmp_path):
    # The file:// store (one host) bounds its reads too: 8 MiB where a claim
    # should be is refused from its size, and the key is held as invalid.
    from agent.fleet.store import FileStore

    store = FileStore(tmp_path)
    path = tmp_path / claim_prefix("24442000000000000055") / "gen-00000001"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"[" + b"0," * (4 << 20) + b"0]")
    tracemalloc.start()
    try:
        v = acquire(store, "24442000000000000055", site="shanghai", sha256="b" * 64, document_id=1,
                    now=dt.datetime.now(UTC), lease_s=300)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f"{peak} bytes taken to judge an 8 MiB claim"
    assert v.kind == "unreachable" and v.invalid and "limit" in v.error, v
