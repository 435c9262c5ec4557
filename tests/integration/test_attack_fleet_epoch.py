"""An object under epoch/ whose name merely ends like a generation's
(`copy-of-gen-00000009`: a copy an operator or a sync tool left there) is
no generation. It was read as generation 9, the top: the look found it
listed and not readable under `gen-00000009`, looked again six times and
ended `ContendedEpoch` at every pass. The fleet loop drops such an error
silently (no doubt recorded, nothing in `status`), the gate treated every
claim from nothing as doubted ("not known": six LISTs and looks each), and
`fleet acknowledge` could never end it ("kept changing; run it again").
Real SeaweedFS, real ledgers, a real folder destination."""

from __future__ import annotations

import pytest

from agent.fleet.epoch import read_head
from agent.fleet.trust import acknowledge_loss
from tests.integration.test_fleet_epoch import Fleet, fleet, loop_pass, now, outcomes, step  # noqa: F401
from tests.integration.test_fleet_epoch_loss import deliver
from tests.support.seaweed import seaweed  # noqa: F401  (fixture)


@pytest.mark.parametrize("name", ["copy-of-gen-00000009", "gen-00000001.bak-gen-00000002"], ids=["copy", "bak"])
def test_a_name_ending_like_a_generation_is_no_generation(fleet: Fleet, name):
    bj, sh = fleet.make("beijing"), fleet.make("shanghai")
    deliver(bj, 70, fleet.store)
    fleet.client.put_object(Bucket=fleet.bucket, Key=f"fleet/epoch/{name}", Body=b"{}")
    assert loop_pass(bj, fleet.store) is None and bj.ledger.fleet_doubt() is None
    said = acknowledge_loss(bj.ledger, fleet.store, site="beijing", now=now(), actor="cli:a", reason="r")
    assert (said["acknowledged"], said["epoch"]["generation"]) == (False, 1)
    # Another site's claim from nothing goes as usual: no look-up first.
    doc = sh.add(71, now())
    assert [s.kind for s in step(sh, fleet.store)] == ["go"] and outcomes(sh, doc) == ["delivered"]
    assert read_head(fleet.store)[0].generation == 1
    assert bj.audit(now()) == [] and sh.audit(now()) == []


def test_an_acknowledged_new_chain_below_the_generation_joined_is_followed(fleet: Fleet):
    # The fleet acknowledged a loss once (both sites joined generation 3).
    # Then the bucket is emptied: the chain begins anew, `lost` at 1 (naming
    # generation 3's epoch) and acknowledged at 2. Beijing, still on 3, read
    # the acknowledgement as "older than the one joined", wrote `lost` at 3,
    # and every site doubted again: the operator's acknowledgement undone.
    bj, sh = fleet.make("beijing"), fleet.make("shanghai")
    deliver(bj, 70, fleet.store)
    deliver(sh, 71, fleet.store)
    fleet.delete("claims/")
    assert loop_pass(bj, fleet.store)
    assert acknowledge_loss(bj.ledger, fleet.store, site="beijing", now=now(), actor="cli:a",
                            reason="claims/ deleted")["acknowledged"]
    assert loop_pass(sh, fleet.store) is None
    assert bj.ledger.fleet_epoch()["generation"] == sh.ledger.fleet_epoch()["generation"] == 3
    fleet.remake_bucket()
    assert "holds no epoch" in loop_pass(sh, fleet.store)
    said = acknowledge_loss(sh.ledger, fleet.store, site="shanghai", now=now(), actor="cli:b",
                            reason="bucket made anew (CHG-7)")
    assert said["acknowledged"] and said["epoch"]["generation"] == 2
    assert loop_pass(bj, fleet.store) is None, bj.ledger.fleet_doubt()
    assert loop_pass(sh, fleet.store) is None
    head = read_head(fleet.store)[0]
    assert (head.generation, head.kind) == (2, "acknowledged")
    doc = bj.add(72, now())
    assert [s.kind for s in step(bj, fleet.store)] == ["go"] and outcomes(bj, doc) == ["delivered"]
    assert bj.audit(now()) == [] and sh.audit(now()) == []
