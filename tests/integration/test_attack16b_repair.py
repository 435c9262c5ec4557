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
import random

from agent.deliver.loop import claim, record, send
from agent.fleet.claims import claim_prefix, head, repair
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
