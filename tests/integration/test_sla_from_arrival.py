"""The 24 h SLA is counted from a document's ARRIVAL (its capture), not from
when it was queued: an invoice held in quarantine, or queued only after a
person fixed it, is late once it arrived more than sla_hours ago. Real
ledger and vault, the real CLI and the delivery loop's warning."""

from __future__ import annotations

import datetime as dt
import json
import logging

from click.testing import CliRunner

from agent.config import parse_config
from agent.ledger import Ledger, utc
from agent.model import State
from agent.vault import Vault
from service.cli import main
from service.delivery import DeliveryService
from tests.support.queued import queue_invoice, store_file

UTC = dt.timezone.utc


def _arrived(ledger: Ledger, vault: Vault, i: int, at: dt.datetime) -> int:
    stored = store_file(vault, i)
    with ledger.transaction():
        doc_id, _ = ledger.add_document(sha256=stored.sha256, size=stored.size, media_type="application/pdf",
                                        source_kind="ingest", source="test", original_name=f"{i}.pdf",
                                        original_path=None, now=utc(at), actor="test")
    return doc_id


def test_late_is_counted_from_arrival_and_quarantine_counts(tmp_path, caplog):
    config = tmp_path / "agent.toml"
    config.write_text('[agent]\nstate_dir = "state"\n[delivery]\nsla_hours = 2\n[health]\nsla_warn_fraction = 0.5\n'
                      '[[destination]]\nname = "erp"\nurl = "folder://out"\n')
    (tmp_path / "out").mkdir()
    now = dt.datetime.now(UTC)
    three_hours_ago = now - dt.timedelta(hours=3)
    ledger, vault = Ledger(tmp_path / "state" / "ledger.sqlite3"), Vault(tmp_path / "state" / "vault")
    # Arrived 3 h ago, quarantined, fixed by a person and queued only now.
    fixed = _arrived(ledger, vault, 1, three_hours_ago)
    ledger.transition(fixed, State.QUARANTINED, now=utc(three_hours_ago), actor="test",
                      problems=[{"code": "x", "severity": "error", "message": "m"}])
    ledger.transition(fixed, State.VALID, now=utc(now), actor="test", problems=[])
    ledger.queue_deliveries(fixed, ["erp"], now=utc(now), actor="test")
    # Arrived 3 h ago and still quarantined.
    held = _arrived(ledger, vault, 2, three_hours_ago)
    ledger.transition(held, State.QUARANTINED, now=utc(three_hours_ago), actor="test",
                      problems=[{"code": "x", "severity": "error", "message": "m"}])
    # Arrived 90 min ago, queued: near the SLA (over 1 h), not late.
    queue_invoice(ledger, vault, 3, destinations=["erp"], now=utc(now - dt.timedelta(minutes=90)))
    # Arrived now: neither.
    queue_invoice(ledger, vault, 4, destinations=["erp"], now=utc(now))

    run = CliRunner().invoke
    delivery = json.loads(run(main, ["--config", str(config), "status", "--json"]).output)["delivery"]
    assert delivery["sla_breaches"] == 2
    assert delivery["late_by_state"] == {"quarantined": 1, "queued": 1}
    assert delivery["near_sla"] == 1
    assert delivery["destinations"][0]["sla_breaches"] == 1   # the row of the one queued now
    check = run(main, ["--config", str(config), "status", "--check"])
    assert check.exit_code == 2
    assert "2 invoices past the 2 h SLA (1 quarantined, 1 queued)" in check.output
    assert "1 invoice near the 2 h SLA (waiting over 1 h)" in check.output

    cfg = parse_config({"agent": {"state_dir": "state"}, "delivery": {"sla_hours": 2},
                        "destination": [{"name": "erp", "url": "folder://out"}]}, base_dir=tmp_path)
    service = DeliveryService(cfg)
    with caplog.at_level(logging.WARNING, logger="fapiao.delivery"):
        service.warn_sla(ledger)
        service.warn_sla(ledger)  # nothing new: nothing logged twice
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("SLA")]
    assert lines == [f"SLA: document {fixed} ({None}) not delivered to erp within 2 h of its arrival",
                     "SLA: 1 documents not delivered within 2 h of their arrival are held before delivery "
                     "(1 quarantined); see `fapiao-agent list --state quarantined`"]
    ledger.close()


def site(tmp_path, destination: str):
    """(config with one folder destination, its ledger, its vault)."""
    config = tmp_path / "agent.toml"
    config.write_text(f'[agent]\nstate_dir = "state"\n[[destination]]\nname = "{destination}"\n'
                      'url = "folder://out"\n')
    (tmp_path / "out").mkdir()
    return config, Ledger(tmp_path / "state" / "ledger.sqlite3"), Vault(tmp_path / "state" / "vault")


def test_deliveries_waiting_for_a_destination_the_config_dropped_are_critical_at_once(tmp_path):
    # A destination renamed in a reload: its queued rows keep the old name,
    # and no loop will ever deliver them. status --check says so now, not
    # at the SLA a day later.
    config, ledger, vault = site(tmp_path, "erp-new")
    now = dt.datetime.now(UTC)
    for i in (1, 2):
        queue_invoice(ledger, vault, i, destinations=["erp"], now=utc(now))
    queue_invoice(ledger, vault, 3, destinations=["erp-new"], now=utc(now))
    ledger.close()
    run = CliRunner().invoke
    delivery = json.loads(run(main, ["--config", str(config), "status", "--json"]).output)["delivery"]
    assert delivery["unknown_destinations"] == {"erp": 2}
    check = run(main, ["--config", str(config), "status", "--check"])
    assert check.exit_code == 2
    assert "2 deliveries wait for destination erp, which the config no longer has" in check.output


def test_a_delivery_held_past_its_lease_is_a_warning_long_before_the_sla(tmp_path):
    # A worker that hangs on an answer that never ends (or died) keeps its
    # row `delivering`; the SLA would say so only a day later.
    config, ledger, vault = site(tmp_path, "erp")
    now = dt.datetime.now(UTC)
    for i in (1, 2, 3):
        queue_invoice(ledger, vault, i, destinations=["erp"], now=utc(now - dt.timedelta(minutes=30)))
    ago = now - dt.timedelta(minutes=20)
    hung = ledger.claim_deliveries("erp", now=utc(ago), lease_until=utc(ago + dt.timedelta(minutes=5)),
                                   token="hung", actor="test", limit=2)
    assert len(hung) == 2
    ledger.close()
    run = CliRunner().invoke
    delivery = json.loads(run(main, ["--config", str(config), "status", "--json"]).output)["delivery"]
    assert delivery["destinations"][0]["overdue_leases"] == 2
    check = run(main, ["--config", str(config), "status", "--check"])
    assert "WARNING: destination erp: 2 deliveries still being sent past the lease" in check.output
