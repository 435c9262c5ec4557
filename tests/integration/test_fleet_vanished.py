"""A key's whole claim chain vanishes from the shared store (an expiry rule
on claims/, the bucket deleted and made anew, claims/ wiped, another fleet
prefix). Every site that had the invoice as a fleet duplicate reopened it
within a minute and delivered it again, logged at info, `status --check` OK
(attackF, finding 1). A vanished chain is no release: a duplicate of another
site's delivery stays one, with a WARNING; a copy waiting on another site's
claim looks every destination up before it puts. Real SeaweedFS."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from agent.fleet.claims import claim_prefix, head
from agent.fleet.gate import recheck_lost, renew_leases, screen, settle_claims
from agent.deliver.loop import claim, send
from agent.health import Thresholds, evaluate
from agent.fleet.store import open_store
from agent.ledger.fleet import VANISHED
from agent.model import State
from tests.integration.test_fleet_claims import Site, delivered_files
from tests.support.queued import number_of
from tests.support.seaweed import seaweed  # noqa: F401  (fixture)


# The store's clock judges each site's (a quarter lease at most): times near
# the real one, set again as each test starts (`fleet`), not at import.
T0 = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def at(s: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=s)


@pytest.fixture
def fleet(tmp_path, seaweed):
    """(make a site, the outbox, the store, wipe(key): the key's claims deleted, as an expiry rule does)."""
    global T0
    T0 = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    bucket = seaweed.make_bucket()
    cfg = seaweed.target_config(bucket, prefix="fleet")
    cfg.pop("name")
    store, client = open_store(cfg), seaweed.client()
    (tmp_path / "out").mkdir()
    sites = []

    def make(name, **kw):
        sites.append(Site(tmp_path, name, store, tmp_path / "out", **kw))
        return sites[-1]

    def wipe(key: str) -> dict[str, bytes]:
        gone = {}
        for o in client.list_objects_v2(Bucket=bucket, Prefix="fleet/" + claim_prefix(key)).get("Contents", []):
            gone[o["Key"]] = client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
            client.delete_object(Bucket=bucket, Key=o["Key"])
        assert gone and head(store, key) is None
        return gone

    def put_back(objects: dict[str, bytes]) -> None:
        for k, body in objects.items():
            client.put_object(Bucket=bucket, Key=k, Body=body)
    yield make, tmp_path / "out", store, wipe, put_back
    for s in sites:
        s.ledger.close()


def warnings(site) -> list[str]:
    report = {"daemon": {"activity": "running", "age_s": 1}, "fleet": site.ledger.fleet_summary()}
    return [r.text for r in evaluate(report, Thresholds(), now=T0).reasons]


def test_a_duplicate_whose_claims_vanished_stays_a_duplicate_with_a_warning(fleet):
    make, out, store, wipe, put_back = fleet
    bj, sh = make("beijing", lease_s=100), make("shanghai", lease_s=100)
    bj.add(31, T0)
    b = sh.add(31, T0)
    key = number_of(31)
    assert bj.step(at(1)) == ["go"]
    settle_claims(bj.ledger, store, bj.settings, now=at(2), actor="t")
    assert sh.step(at(3)) == ["lost"]
    assert sh.ledger.get(b).state == State.DUPLICATE.value
    assert not any("lost the claims" in w for w in warnings(sh))
    objects = wipe(key)                                           # gen 1 and 2 were written within a second
    assert recheck_lost(sh.ledger, store, now=at(100), actor="t") == []   # was: reopened, delivered again
    assert sh.ledger.get(b).state == State.DUPLICATE.value
    row = sh.ledger.fleet_claim(b)
    assert row["state"] == "lost" and row["reason"].startswith(VANISHED + key), row
    assert "site beijing delivered it" in row["reason"]
    assert any("fleet claim on" in (e.reason or "") and VANISHED in (e.reason or "") for e in sh.ledger.events(b))
    assert sh.ledger.fleet_summary()["vanished"] == 1
    assert any("the fleet store lost the claims of 1 invoice" in w for w in warnings(sh)), warnings(sh)
    assert sh.step(at(200)) == [] and recheck_lost(sh.ledger, store, now=at(300), actor="t") == []
    assert delivered_files(out) == [f"{key}.pdf"]
    assert head(store, key) is None                               # nothing written in another site's name
    # The claims come back (the bucket restored from a copy): the warning goes.
    put_back(objects)
    assert recheck_lost(sh.ledger, store, now=at(400), actor="t") == []
    assert sh.ledger.fleet_claim(b)["reason"] is None and sh.ledger.fleet_summary()["vanished"] == 0
    assert not any("lost the claims" in w for w in warnings(sh))
    assert bj.audit(at(401)) == [] and sh.audit(at(401)) == []


def test_a_copy_waiting_on_a_claim_that_vanished_looks_up_before_it_puts(fleet):
    make, out, store, wipe, _ = fleet
    bj, sh = make("beijing"), make("shanghai")
    bj.add(32, T0)
    b = sh.add(32, T0)
    key = number_of(32)
    claims = claim(bj.ledger, "erp", now=at(1), lease_s=60, token="dead", actor="bj")
    (s,) = screen(bj.ledger, store, bj.settings, claims, now=at(1), actor="bj")
    assert send(bj.dest, s.claim, bj.vault).kind == "delivered"  # put, then SIGKILLed before recording it
    assert sh.step(at(5)) == ["wait"]
    wipe(key)
    assert sh.step(at(30)) == ["go"]                              # the lease has not run out: only the loss lets it go
    (row,) = sh.ledger.deliveries_of(b)
    assert row["state"] == "delivered" and row["attempts_log"][-1]["outcome"] == "found", row   # was: put again
    claim_row = sh.ledger.fleet_claim(b)
    assert claim_row["reason"].startswith(VANISHED + key) and claim_row["remote_site"] == "beijing", claim_row
    assert "looked up before any put" in claim_row["reason"]
    assert any("lost the claims" in w for w in warnings(sh))
    assert len(delivered_files(out)) == 1
    settle_claims(sh.ledger, store, sh.settings, now=at(31), actor="t")
    assert head(store, key).state == "delivered" and head(store, key).site == "shanghai"
    assert sh.ledger.fleet_summary()["vanished"] == 0             # delivered once, after a look-up: settled


def test_a_live_claim_of_this_site_that_vanished_is_claimed_again_and_said(fleet):
    make, out, store, wipe, _ = fleet
    # A 10 s lease: renewal is due after 5 s, and each clock must be within
    # 2.5 s of the store's (whose Date has whole seconds): claimed 1.5 s
    # behind, renewed 1.2 s ahead, 2.5 s later.
    bj = make("beijing", lease_s=10)
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1.5)
    doc = bj.add(33, start)
    key = number_of(33)
    claims = claim(bj.ledger, "erp", now=start, lease_s=60, token="w", actor="bj")
    assert [s.kind for s in screen(bj.ledger, store, bj.settings, claims, now=start, actor="bj")] == ["go"]
    wipe(key)                                                      # its destination is down; the claim vanishes
    time.sleep(2.5)
    renew_at = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1.2)
    (line,) = renew_leases(bj.ledger, store, bj.settings, now=renew_at, actor="t")
    assert line.startswith("!" + VANISHED + key) and "this site's own claim" in line, line
    assert head(store, key).site == "beijing" and head(store, key).generation == 1
    assert bj.ledger.fleet_claim(doc)["reason"].startswith(VANISHED)
    assert any("lost the claims" in w for w in warnings(bj))
