"""Lease renewal from the fleet loop (issue 16): a live site whose destination
is down longer than `lease_s` keeps its claim, so the other site's copy
waits instead of taking the key over; a failed or delivered document's claim
is not renewed."""

from __future__ import annotations

import datetime as dt
import socket

from agent.config import load_config
from agent.deliver import open_destination
from agent.deliver.retry import DeliveryPolicy
from agent.fleet.claims import acquire, head
from agent.fleet.gate import renew_leases
from agent.ledger import Ledger, utc
from agent.vault import Vault
from service.fleet import FleetService
from tests.integration.test_fleet_claims import T0, at, shared  # noqa: F401  (fixture)
from tests.support.queued import number_of, queue_invoice


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def down(site) -> None:
    """Point the site's destination at a port nobody listens on: every put is Transient."""
    site.cfg = {"name": "erp", "url": f"http://127.0.0.1:{closed_port()}/invoices"}
    site.dest = open_destination(site.cfg)
    site.policy = DeliveryPolicy.from_config(site.cfg)


def test_a_live_site_whose_destination_is_down_keeps_its_claim_past_the_lease(shared):
    make, out, store = shared
    bj, sh = make("beijing", lease_s=20), make("shanghai", lease_s=20)
    down(bj)
    a, b = bj.add(8, T0), sh.add(8, T0)
    assert bj.step(at(1)) == ["go"]                     # claimed (lease to 21 s), the put failed
    assert bj.ledger.get(a).state in ("queued", "delivering")
    # Not yet half the lease gone: nothing to renew.
    assert renew_leases(bj.ledger, store, bj.settings, now=at(5), actor="t") == []
    assert head(store, number_of(8)).generation == 1
    kinds = []
    for t in range(12, 60, 5):                       # the fleet loop's passes, long past the first lease
        assert renew_leases(bj.ledger, store, bj.settings, now=at(t), actor="t") == []
        kinds += sh.step(at(t + 1))                  # before: taken over ("go") at 22 s
    assert kinds.count("wait") >= 3 and "go" not in kinds, kinds
    claim = head(store, number_of(8))
    assert claim.site == "beijing" and claim.state == "claimed" and claim.generation > 3
    row = bj.ledger.fleet_claim(a)
    assert row["state"] == "won" and row["generation"] == claim.generation
    assert row["lease_until"] == utc(dt.datetime.fromisoformat(claim.lease_until.replace("Z", "+00:00")))
    assert sh.ledger.deliveries_of(b)[0]["attempts"] == 0


def test_failed_or_other_sites_claims_are_not_renewed(shared):
    make, out, store = shared
    bj, sh = make("beijing", lease_s=20), make("shanghai", lease_s=20)
    down(bj)
    a = bj.add(9, T0)
    assert bj.step(at(1)) == ["go"]
    bj.ledger.conn.execute("UPDATE documents SET state = 'failed' WHERE id = ?", (a,))
    bj.ledger.conn.commit()
    assert renew_leases(bj.ledger, store, bj.settings, now=at(15), actor="t") == []
    assert head(store, number_of(9)).generation == 1       # a person must act: the lease may run out
    # Another site took the key over while this one was away: the pass says so, and changes nothing.
    c = bj.add(10, T0)
    assert bj.step(at(1)) == ["go"]
    assert acquire(store, number_of(10), site="shanghai", sha256="0" * 64, document_id=1, now=at(30),
                   lease_s=20).kind == "won"
    lines = renew_leases(bj.ledger, store, bj.settings, now=at(31), actor="t")
    assert lines == [f"!the claim on {number_of(10)} is site shanghai's now (this site's lease ran out)"]
    assert bj.ledger.fleet_claim(c)["state"] == "won" and head(store, number_of(10)).site == "shanghai"


def test_the_fleet_loop_renews_a_lease_running_out(tmp_path):
    (tmp_path / "store").mkdir()
    config = tmp_path / "agent.toml"
    config.write_text(f'[agent]\nstate_dir = "state"\n[fleet]\nurl = "file://{tmp_path / "store"}"\n'
                      'site = "beijing"\nlease_s = 10\n', encoding="utf-8")
    cfg = load_config(config)
    svc = FleetService(cfg)
    now = dt.datetime.now(dt.timezone.utc)
    with Ledger(cfg.ledger_path) as ledger:
        doc = queue_invoice(ledger, Vault(cfg.vault_dir), 11, destinations=["erp"], now=utc(now))
        key = number_of(11)
        v = acquire(svc.store, key, site="beijing", sha256=ledger.get(doc).sha256, document_id=doc,
                    now=now - dt.timedelta(seconds=8), lease_s=10)          # 2 s of its lease left
        ledger.set_fleet_claim(doc, invoice_key=key, state="won", now=utc(now), actor="t",
                               generation=v.record.generation, lease_until=utc(now + dt.timedelta(seconds=2)))
        svc.step(ledger)
        renewed = head(svc.store, key)
        assert renewed.generation == 2 and renewed.site == "beijing"
        assert ledger.fleet_claim(doc)["generation"] == 2
        assert (dt.datetime.fromisoformat(renewed.lease_until.replace("Z", "+00:00")) - now).total_seconds() >= 9


def test_show_names_the_other_sites_part_in_a_claim_by_its_state(tmp_path):
    # remote_site on a claim this site won is the site it was taken over
    # from, not one that holds it; on a lost one, the holder.
    from click.testing import CliRunner

    from service.cli import main

    config = tmp_path / "agent.toml"
    config.write_text('[agent]\nstate_dir = "state"\n', encoding="utf-8")
    cfg = load_config(config)
    now = dt.datetime.now(dt.timezone.utc)
    with Ledger(cfg.ledger_path) as ledger:
        vault = Vault(cfg.vault_dir)
        won = queue_invoice(ledger, vault, 12, destinations=["erp"], now=utc(now))
        lost = queue_invoice(ledger, vault, 13, destinations=["erp"], now=utc(now))
        ledger.set_fleet_claim(won, invoice_key=number_of(12), state="won", now=utc(now), actor="t", generation=2,
                               remote_site="beijing", remote_at=utc(now - dt.timedelta(minutes=5)),
                               reason="taken over from site beijing (its lease ran out)")
        ledger.set_fleet_claim(lost, invoice_key=number_of(13), state="waiting", now=utc(now), actor="t",
                               generation=1, remote_site="shanghai", remote_at=utc(now))

    def claim_line(doc: int) -> str:
        out = CliRunner().invoke(main, ["--config", str(config), "show", str(doc)]).output
        return next(line for line in out.splitlines() if "fleet claim" in line)
    assert f"fleet claim on {number_of(12)}: won: taken over from site beijing (its claim of " in claim_line(won)
    assert "held by" not in claim_line(won)
    assert f"fleet claim on {number_of(13)}: waiting: held by site shanghai since " in claim_line(lost)
