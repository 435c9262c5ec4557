"""A destination's "already there" is delivered only when what is there is
this document's content (issue 12, red-team item 4): a second document under
a key another document's file holds is a conflict, quarantined with the
holder named, never `delivered`; and `audit ledger` reports two documents
delivered under one key at one destination."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from agent.audit import audit_ledger
from agent.audit_rules import AuditSettings
from agent.deliver import open_destination
from agent.deliver.base import Receipt
from agent.deliver.loop import Gate, Outcome, claim, deliver_step, record
from agent.deliver.retry import DeliveryPolicy
from agent.ledger import Ledger, utc
from agent.vault import Vault
from tests.support.http_destination import http_destination  # noqa: F401
from tests.support.queued import number_of, queue_invoice

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 3, 4, 10, 0, tzinfo=UTC)


@pytest.fixture(params=["folder", "http"])
def setup(request, tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    vault = Vault(tmp_path / "vault")
    if request.param == "folder":
        (tmp_path / "out").mkdir()
        cfg = {"name": "erp", "url": f"folder://{tmp_path / 'out'}"}
    else:
        cfg = {"name": "erp", "url": request.getfixturevalue("http_destination").url, "timeout_s": 2}
    yield ledger, vault, cfg
    ledger.close()


def _step(ledger, vault, cfg, at):
    policy = DeliveryPolicy.from_config(cfg)
    return deliver_step(ledger, open_destination(cfg), policy, Gate.fresh(policy, tz=UTC), vault=vault, now=at,
                        rng=random.Random(1), lease_s=60, token="w1", actor="test", tz=UTC)


def test_other_content_under_a_held_key_is_a_conflict_not_delivered(setup):
    ledger, vault, cfg = setup
    a = queue_invoice(ledger, vault, 5, destinations=["erp"], now=utc(T0))
    assert _step(ledger, vault, cfg, T0).row_state == "delivered"
    # Another document under the same key, other bytes (a damaged copy re-judged as its own document).
    other = vault.put_bytes(b"%PDF-1.4 truncated copy " + number_of(5).encode())
    b = queue_invoice(ledger, vault, 5, destinations=["erp"], now=utc(T0), stored=other)
    result = _step(ledger, vault, cfg, T0 + dt.timedelta(seconds=1))
    assert result.outcome == "conflict" and result.row_state == "quarantined", result
    (row,) = ledger.deliveries_of(b)
    assert row["state"] == "quarantined"
    assert row["last_error"].startswith("delivery-conflict: erp already holds another file under key ")
    assert f"(document {a})" in row["last_error"]
    doc = ledger.get(b)
    assert doc.state == "quarantined" and any(p["code"] == "delivery-conflict" for p in doc.problems)
    assert [r["state"] for r in ledger.deliveries_of(a)] == ["delivered"]
    # The same document put again (its own content) is still simply delivered.
    c = queue_invoice(ledger, vault, 6, destinations=["erp"], now=utc(T0))
    assert _step(ledger, vault, cfg, T0 + dt.timedelta(seconds=2)).row_state == "delivered"
    assert [r["state"] for r in ledger.deliveries_of(c)] == ["delivered"]


def test_audit_reports_two_documents_delivered_under_one_key_at_one_destination(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    vault = Vault(tmp_path / "vault")
    try:
        a = queue_invoice(ledger, vault, 7, destinations=["erp"], now=utc(T0))
        b = queue_invoice(ledger, vault, 7, destinations=["erp"], now=utc(T0),
                          stored=vault.put_bytes(b"%PDF-1.4 another file " + number_of(7).encode()))
        with ledger.transaction():
            claims = claim(ledger, "erp", now=T0, lease_s=60, token="w1", actor="test", limit=10)
        assert {c.document_id for c in claims} == {a, b}
        policy = DeliveryPolicy.from_config({"name": "erp", "url": "http://127.0.0.1:9"})
        for c in claims:   # what the loop recorded before it compared contents
            receipt = Receipt(destination="erp", key=number_of(7), remote_id=None, location="x", raw={})
            with ledger.transaction():
                record(ledger, c, Outcome("delivered", receipt=receipt), policy, now=T0, rng=random.Random(1),
                       actor="test", tz=UTC)
        found = [v for v in audit_ledger(ledger, tmp_path / "vault", AuditSettings(), now=T0)
                 if v.code == "key-delivered-twice"]
        assert len(found) == 1 and found[0].document == min(a, b)
        assert f"documents {min(a, b)}, {max(a, b)}" in found[0].message
    finally:
        ledger.close()
