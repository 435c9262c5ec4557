"""The fleet store loses its claims (the bucket emptied, made anew): a site
that never saw an invoice's key claimed it from nothing and put it, though
another site had delivered it before the loss: a duplicate at finance, with
no warning at all. The store now carries an epoch (agent/fleet/epoch.py);
a site whose epoch is gone doubts the store, says so, writes a `lost`
epoch for the others, and looks every destination up before it puts a key
claimed from nothing, until an operator acknowledges. Two real ledgers, a
real folder destination, a real SeaweedFS; time is the real clock (the
store's judges each site's)."""

from __future__ import annotations

import datetime as dt
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.deliver.loop import claim, record, send
from agent.fleet.epoch import read_head
from agent.fleet.gate import Screened, screen, settle_claims
from agent.fleet.store import open_store
from agent.fleet.trust import DOUBTED, acknowledge_loss, doubt
from agent.health import Thresholds, evaluate
from agent.ledger import Ledger
from agent.ledger.trail import TrailReader
from tests.integration.test_fleet_claims import Site, delivered_files
from tests.support.queued import number_of
from tests.support.seaweed import seaweed  # noqa: F401  (fixture)

UTC = dt.timezone.utc


def now() -> dt.datetime:
    return dt.datetime.now(UTC)


@dataclass
class Fleet:
    """Sites sharing one store on a bucket of their own, and the hands that break it."""

    tmp: Path
    out: Path
    store: object
    client: object
    bucket: str
    cfg: dict
    sites: list

    def make(self, name: str, **fleet) -> Site:
        self.sites.append(Site(self.tmp, name, self.store, self.out, **fleet))
        return self.sites[-1]

    def objects(self, under: str = "") -> dict[str, bytes]:
        """Every object under fleet/<under>, with its bytes (a copy of the store)."""
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix="fleet/" + under)
        return {o["Key"]: self.client.get_object(Bucket=self.bucket, Key=o["Key"])["Body"].read()
                for page in pages for o in page.get("Contents", [])}

    def delete(self, under: str = "") -> None:
        """Every object under fleet/<under> deleted (all of them: the bucket emptied)."""
        for key in self.objects(under):
            self.client.delete_object(Bucket=self.bucket, Key=key)
        assert self.objects(under) == {}

    def remake_bucket(self) -> None:
        """The bucket deleted and made anew under the same name (SeaweedFS
        deletes a bucket with objects in it; on AWS it is emptied first)."""
        self.client.delete_bucket(Bucket=self.bucket)
        self.client.create_bucket(Bucket=self.bucket)
        assert self.objects() == {}

    def put_back(self, copy: dict[str, bytes]) -> None:
        """The store made what `copy` holds: everything else deleted, the copy put back."""
        self.delete()
        for key, body in copy.items():
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body)


@pytest.fixture
def fleet(tmp_path, seaweed):
    bucket = seaweed.make_bucket()
    cfg = seaweed.target_config(bucket, prefix="fleet")
    cfg.pop("name")
    (tmp_path / "out").mkdir()
    f = Fleet(tmp_path, tmp_path / "out", open_store(cfg), seaweed.client(), bucket, cfg, [])
    yield f
    for s in f.sites:
        s.ledger.close()


def loop_pass(site: Site, store) -> str | None:
    """What the site's fleet loop does each pass (service/fleet.py): settle
    its claims, then look at the store's epoch and its marks."""
    settle_claims(site.ledger, store, site.settings, now=now(), actor=f"{site.name}:fleet")
    return doubt(site.ledger, store, site=site.name, now=now(), actor=f"{site.name}:fleet", oldest_mark=True)


def step(site: Site, store) -> list[Screened]:
    """Site.step, keeping what the gate said of each row (its log line)."""
    claims = claim(site.ledger, "erp", now=now(), lease_s=60, token="w", actor=site.name)
    said = screen(site.ledger, store, site.settings, claims, now=now(), actor=site.name)
    for s in said:
        if s.kind == "go":
            record(site.ledger, s.claim, send(site.dest, s.claim, site.vault), site.policy, now=now(),
                   rng=random.Random(1), actor=site.name, tz=UTC)
    return said


def warnings(site: Site) -> list[str]:
    """What `status --check` says of the fleet store at the site."""
    report = {"daemon": {"activity": "running", "age_s": 1}, "fleet": site.ledger.fleet_summary()}
    return [r.text for r in evaluate(report, Thresholds(), now=now()).reasons if "fleet store" in r.text]


def outcomes(site: Site, doc: int) -> list[str]:
    return [a["outcome"] for r in site.ledger.deliveries_of(doc) for a in r["attempts_log"]]


def trail(site: Site) -> list[dict]:
    """The site's document-less events (the fleet store's epoch and doubt)."""
    return [e for e in TrailReader(site.ledger).export(since=None, until=None) if e["document_id"] is None]


def test_a_new_fleet_makes_one_epoch_without_a_word(fleet):
    bj, sh = fleet.make("beijing"), fleet.make("shanghai")
    a, b = bj.add(1, now()), sh.add(2, now())
    assert bj.step(now()) == ["go"] and sh.step(now()) == ["go"]
    head, invalid = read_head(fleet.store)
    assert invalid is None and (head.generation, head.kind, head.made_by) == (1, "new", "beijing")
    assert fleet.store.list("epoch/") == ["epoch/gen-00000001"]
    for site, doc in ((bj, a), (sh, b)):
        assert site.ledger.fleet_epoch()["epoch"] == head.epoch and site.ledger.fleet_doubt() is None
        assert outcomes(site, doc) == ["delivered"] and site.ledger.fleet_claim(doc)["reason"] is None
        assert warnings(site) == [] and loop_pass(site, fleet.store) is None
        (event,) = trail(site)
        assert "fleet store epoch generation 1 (made by site beijing) trusted" in event["reason"], event
    assert len(delivered_files(fleet.out)) == 2
    assert bj.audit(now()) == [] and sh.audit(now()) == []


def test_sites_making_the_epoch_at_once_end_with_one(fleet, tmp_path):
    ledgers = [Ledger(tmp_path / f"race{i}.sqlite3") for i in range(8)]
    stores = [open_store(fleet.cfg) for _ in ledgers]
    try:
        with ThreadPoolExecutor(8) as pool:
            said = list(pool.map(lambda i: doubt(ledgers[i], stores[i], site=f"site-{i}", now=now(), actor="t"),
                                 range(8)))
        assert said == [None] * 8                              # nobody doubts a new fleet
        assert fleet.store.list("epoch/") == ["epoch/gen-00000001"]
        head = read_head(fleet.store)[0]
        assert {led.fleet_epoch()["epoch"] for led in ledgers} == {head.epoch} and head.kind == "new"
    finally:
        for led in ledgers:
            led.close()


@pytest.mark.parametrize("loss", ["objects-deleted", "bucket-made-anew"])
def test_a_site_that_never_saw_the_key_looks_up_before_it_puts_after_the_store_lost_its_claims(fleet, loss):
    bj, sh = fleet.make("beijing"), fleet.make("shanghai")
    assert loop_pass(sh, fleet.store) is None                  # Shanghai's fleet loop ran: it joined the fleet
    bj.add(41, now())
    assert bj.step(now()) == ["go"] and loop_pass(bj, fleet.store) is None   # delivered, `delivered` claimed
    key = number_of(41)
    fleet.delete() if loss == "objects-deleted" else fleet.remake_bucket()
    b = sh.add(41, now())                                      # a copy Shanghai never saw the claim of
    (screened,) = step(sh, fleet.store)
    # Was: claimed from nothing and put (a second file at finance, no warning).
    assert screened.kind == "go" and screened.claim.recovering, screened
    assert screened.note.startswith(DOUBTED) and "holds no epoch" in screened.note, screened.note
    assert outcomes(sh, b) == ["found"]                        # looked up: already there, no put
    assert delivered_files(fleet.out) == [f"{key}.pdf"]
    row = sh.ledger.fleet_claim(b)
    assert row["reason"].startswith(DOUBTED) and "looked up before any put" in row["reason"], row
    # Said without being asked: the doubt, its event, the health warning.
    assert "holds no epoch" in sh.ledger.fleet_doubt()["why"]
    assert any("the fleet store may have lost its claims" in w for w in warnings(sh)), warnings(sh)
    assert any(e["reason"].startswith("fleet store in doubt") for e in trail(sh))
    head = read_head(fleet.store)[0]
    assert (head.generation, head.kind, head.made_by) == (1, "lost", "shanghai")   # for every other site
    assert loop_pass(bj, fleet.store).startswith("site shanghai found it: the fleet store holds no epoch")
    assert any("may have lost its claims" in w for w in warnings(bj))
    # An operator acknowledges at one site; the other follows at its next look.
    done = acknowledge_loss(sh.ledger, fleet.store, site="shanghai", now=now(), actor="cli:alice",
                            reason="bucket made anew after the NAS failure")
    assert done["acknowledged"] and done["epoch"]["generation"] == 2 and "holds no epoch" in done["was"]
    assert sh.ledger.fleet_doubt() is None and warnings(sh) == []
    (ack,) = [e for e in trail(sh) if "acknowledged here by cli:alice" in e["reason"]]
    assert ack["actor"] == "cli:alice" and "bucket made anew after the NAS failure" in ack["reason"], ack
    assert loop_pass(bj, fleet.store) is None and bj.ledger.fleet_doubt() is None
    assert any("acknowledged by cli:alice at site shanghai" in e["reason"] for e in trail(bj))
    # Claims go on as usual: a new invoice is claimed and put without a look-up.
    c = sh.add(42, now())
    assert sh.step(now()) == ["go"] and outcomes(sh, c) == ["delivered"]
    assert sh.ledger.fleet_claim(c)["reason"] is None
    assert acknowledge_loss(sh.ledger, fleet.store, site="shanghai", now=now(), actor="cli:alice",
                            reason="again")["acknowledged"] is False    # nothing left to acknowledge
    assert len(delivered_files(fleet.out)) == 2
    assert bj.audit(now()) == [] and sh.audit(now()) == []
