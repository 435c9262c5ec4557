"""Delivery keeps only a share of the time while intake works through a
backlog (service/pace.py): the main thread capturing files is what makes
them safe, and the delivery threads' Python and file writes compete with it
for the GIL and the disk. A real DeliveryService with its threads and a
folder destination."""

from __future__ import annotations

import datetime as dt
import time

from agent.config import parse_config
from agent.ledger import Ledger, utc
from agent.vault import Vault
from service import pace
from service.delivery import DeliveryService
from tests.support.queued import queue_invoice


def _delivered(ledger: Ledger, doc_id: int) -> bool:
    return ledger.get(doc_id).state in ("delivered", "confirmed")


def _wait_delivered(ledger: Ledger, doc_id: int, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if _delivered(ledger, doc_id):
            return True
        time.sleep(0.05)
    return False


def test_delivery_goes_on_at_its_share_while_intake_is_busy(tmp_path, monkeypatch):
    # An invoice read while a flood is being taken is delivered at once, not
    # after the flood; each pass is followed by a rest nine times its length.
    (tmp_path / "out").mkdir()
    cfg = parse_config({"agent": {"state_dir": "state"},
                        "destination": [{"name": "erp", "url": "folder://out"}]}, base_dir=tmp_path)
    ledger, vault = Ledger(cfg.ledger_path), Vault(cfg.vault_dir)
    now = utc(dt.datetime.now(dt.timezone.utc))
    docs = [queue_invoice(ledger, vault, i, destinations=["erp"], now=now) for i in range(1, 4)]
    rests: list[tuple[float, float]] = []
    real = pace.step_aside

    def recorded(stopping, took, **kw):
        rests.append((took, real(stopping, took, **kw)))
        return rests[-1][1]
    monkeypatch.setattr(pace, "step_aside", recorded)
    monkeypatch.setattr(pace, "QUIET_S", 60.0)
    pace.intake_busy()  # a backlog is being captured
    service = DeliveryService(cfg).start()
    try:
        service.kick()
        for doc in docs:
            assert _wait_delivered(ledger, doc, 20), "not delivered while intake had a backlog"
        assert rests and all(waited >= min(took * 9 * 0.8, pace.MAX_STEP_ASIDE_S * 0.8) for took, waited in rests)
    finally:
        service.stop()
        service.join(15)
        pace._busy_until = 0.0
        ledger.close()


def test_quiet_intake_does_not_delay_delivery(tmp_path):
    (tmp_path / "out").mkdir()
    cfg = parse_config({"agent": {"state_dir": "state"},
                        "destination": [{"name": "erp", "url": "folder://out"}]}, base_dir=tmp_path)
    ledger, vault = Ledger(cfg.ledger_path), Vault(cfg.vault_dir)
    pace._busy_until = 0.0
    doc = queue_invoice(ledger, vault, 2, destinations=["erp"], now=utc(dt.datetime.now(dt.timezone.utc)))
    service = DeliveryService(cfg).start()
    try:
        service.kick()
        assert _wait_delivered(ledger, doc, 10)
    finally:
        service.stop()
        service.join(15)
        ledger.close()
