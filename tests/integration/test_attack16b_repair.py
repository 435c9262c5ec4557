"""Attack on issue 16 from outside (attack16b): `fleet repair` run by an
operator on a key whose invalid head hides a live claim. Anyone with write
access to the bucket (or a bug) can put garbage ABOVE a claim a live site
holds and is delivering under. The operator sees "fleet claim invalid, held
at every site", runs the repair the reason tells them to, and the old
repair wrote `released` over it: the next site took the key over, looked the
destination up before the live holder's put had landed, found nothing and
put too. The invoice went twice."""

from __future__ import annotations

import datetime as dt
import json
import random

from agent.deliver.loop import claim, record, send
from agent.fleet.claims import claim_prefix, head
from agent.fleet.repair import repair
from agent.fleet.gate import screen
from agent.ledger import utc
from tests.integration.test_fleet_hostile import Site, bucket, put  # noqa: F401
from tests.support.queued import number_of, queue_invoice
from tests.support.seaweed import seaweed  # noqa: F401  (fixture)

UTC = dt.timezone.utc


def test_repair_over_a_live_claim_never_lets_a_second_site_deliver(tmp_path, bucket):
    store, client, name, _cfg = bucket
    now = dt.datetime.now(UTC)
    beijing, shanghai = Site(tmp_path, "beijing", store), Site(tmp_path, "shanghai", store)
    try:
        key = number_of(1)
        queue_invoice(beijing.ledger, beijing.vault, 1, destinations=["erp"], now=utc(now))
        doc = queue_invoice(shanghai.ledger, shanghai.vault, 1, destinations=["erp"], now=utc(now))
        # Beijing wins the claim and starts its put (a slow destination): in flight.
        rows = claim(beijing.ledger, "erp", now=now, lease_s=60, token="w", actor="beijing", limit=8)
        (go,) = screen(beijing.ledger, store, beijing.settings, rows, now=now, actor="beijing")
        assert go.kind == "go" and head(store, key, now=now).site == "beijing"
        # Garbage lands above Beijing's live claim.
        put(client, name, f"{claim_prefix(key)}gen-00000002", b"\x00 not a claim")
        t1 = now + dt.timedelta(seconds=5)
        assert shanghai.step(t1) == ["held"]
        assert "fleet repair" in shanghai.ledger.fleet_claim(doc)["reason"]
        # The operator does what the reason says.
        done = repair(store, key, site="shanghai", now=t1)
        assert done["repaired"], done
        # Shanghai must not deliver while Beijing's claim is live ...
        t2 = now + dt.timedelta(seconds=25)
        assert "go" not in shanghai.step(t2)
        # ... Beijing's put lands, and its claim records `delivered`.
        record(beijing.ledger, go.claim, send(beijing.dest, go.claim, beijing.vault), beijing.policy, now=t2,
               rng=random.Random(1), actor="beijing", tz=UTC)
        from agent.fleet.gate import settle_claims
        settle_claims(beijing.ledger, store, beijing.settings, now=t2, actor="beijing")
        for later in (40, 400, 4000):                       # long past every lease
            shanghai.step(now + dt.timedelta(seconds=later))
        assert beijing.delivered() == [f"{key}.pdf"]
        assert len(list(beijing.out.glob(f"{key}*"))) - len(list(beijing.out.glob("*.json"))) <= 1
        deliveries = [r[0] for r in shanghai.ledger.conn.execute("SELECT outcome FROM attempts")]
        assert "delivered" not in deliveries, deliveries        # was: shanghai put it as well
        assert shanghai.ledger.get(doc).state == "duplicate", shanghai.ledger.get(doc).state
    finally:
        beijing.ledger.close()
        shanghai.ledger.close()


def test_a_forged_delivered_claim_of_a_site_nobody_runs_can_be_forced_away(tmp_path, bucket):
    # A well-formed `delivered` claim of site "ghost" (no such site): every
    # copy became its duplicate, and `fleet repair` answered "its claim is
    # valid": the invoice was delivered nowhere, with no way out but deleting
    # objects in the bucket by hand.
    from agent.fleet.gate import recheck_lost
    from agent.judgement import judge
    from agent.model import Invoice
    from agent.validate import ValidationSettings
    from tests.integration.test_attack16b_stamps import cli
    from tests.integration.test_fleet_hostile import good_claim

    store, client, name, cfg = bucket
    now = dt.datetime.now(UTC)
    shanghai = Site(tmp_path, "shanghai", store, lease_s=3600)   # t + 120 s within a quarter lease of the store clock
    try:
        key = number_of(3)
        doc = queue_invoice(shanghai.ledger, shanghai.vault, 3, destinations=["erp"], now=utc(now))
        put(client, name, f"{claim_prefix(key)}gen-00000001", good_claim(1, site="ghost", state="delivered"))
        assert shanghai.step(now) == ["lost"]
        r = cli(tmp_path, cfg, "fleet", "repair", key)
        assert r.returncode == 1 and "valid" in r.stdout, (r.stdout, r.stderr)
        r = cli(tmp_path, cfg, "fleet", "repair", key, "--force", "--json")
        assert r.returncode == 0 and json.loads(r.stdout)["repaired"], (r.stdout, r.stderr)  # was: no such option
        assert head(store, key, now=now).state == "released"
        # A live claim is never forced (its holder may be putting it).
        put(client, name, f"{claim_prefix(number_of(4))}gen-00000001", good_claim(1, site="ghost"))
        r = cli(tmp_path, cfg, "fleet", "repair", number_of(4), "--force")
        assert r.returncode == 1 and "never forced" in r.stdout, (r.stdout, r.stderr)
        # Shanghai's duplicate is judged again and delivered (looked up first).
        t = now + dt.timedelta(seconds=120)
        ((doc_id, why),) = recheck_lost(shanghai.ledger, store, now=t)
        settings = ValidationSettings.from_config({"max_age_days": 100000, "rules": {"number-format": "off"}},
                                                  {"tax_ids": [], "names": []})
        with shanghai.ledger.transaction():
            shanghai.ledger.fleet_reopen(doc, now=utc(t), actor="t", reason=why)
            judge(shanghai.ledger, doc, Invoice.from_dict(shanghai.ledger.get(doc).fields), settings=settings,
                  destinations=["erp"], today=t.date(), now=utc(t), actor="t")
        assert shanghai.step(t + dt.timedelta(seconds=1)) == ["go"]
        assert shanghai.delivered() == [f"{key}.pdf"]
        assert shanghai.ledger.get(doc).state == "delivered"
    finally:
        shanghai.ledger.close()


def test_a_site_renamed_in_config_settles_its_own_claims(tmp_path, bucket):
    # Beijing delivers, then its operator renames the site to "peking" before
    # the claim records `delivered`. The old code took its own claim for a
    # stranger's: `delivered` was never recorded ("the claim is beijing's
    # now"), the claim stayed `claimed` and lapsed, and Shanghai took the key
    # over and sent its copy again wherever a look-up cannot see it.
    from agent.fleet.gate import FleetSettings, settle_claims

    store, _client, _name, _cfg = bucket
    now = dt.datetime.now(UTC)
    beijing, shanghai = Site(tmp_path, "beijing", store), Site(tmp_path, "shanghai", store)
    try:
        key = number_of(5)
        queue_invoice(beijing.ledger, beijing.vault, 5, destinations=["erp"], now=utc(now))
        doc = queue_invoice(shanghai.ledger, shanghai.vault, 5, destinations=["erp"], now=utc(now))
        assert beijing.step(now) == ["go"]
        beijing.settings = FleetSettings(site="peking")        # renamed in config, same ledger
        lines = settle_claims(beijing.ledger, store, beijing.settings, now=now, actor="peking")
        assert not [line for line in lines if line.startswith("!")], lines
        assert head(store, key, now=now).state == "delivered"         # was: still beijing's `claimed`
        assert shanghai.step(now + dt.timedelta(seconds=2)) == ["lost"]
        assert shanghai.ledger.get(doc).state == "duplicate"
    finally:
        beijing.ledger.close()
        shanghai.ledger.close()


def test_repair_from_a_host_whose_clock_is_ahead_judges_leases_by_the_store(tmp_path, bucket):
    # The operator's laptop is an hour ahead: the old repair saw Beijing's
    # live lease as run out and released the key under its in-flight put.
    store, client, name, _cfg = bucket
    now = dt.datetime.now(UTC)
    beijing = Site(tmp_path, "beijing", store)
    try:
        key = number_of(6)
        queue_invoice(beijing.ledger, beijing.vault, 6, destinations=["erp"], now=utc(now))
        rows = claim(beijing.ledger, "erp", now=now, lease_s=60, token="w", actor="beijing", limit=8)
        assert [s.kind for s in screen(beijing.ledger, store, beijing.settings, rows, now=now, actor="b")] == ["go"]
        put(client, name, f"{claim_prefix(key)}gen-00000002", b"garbage")
        done = repair(store, key, site="shanghai", now=now + dt.timedelta(hours=1))
        assert done["restored"] == "beijing", done
        current = head(store, key, now=now)
        assert current.site == "beijing" and current.state == "claimed" and not current.expired(now)
    finally:
        beijing.ledger.close()
