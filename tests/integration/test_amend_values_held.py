"""An amend after delivery that keeps the invoice key: the destination keeps
the values it got, and the ledger says so.

Attack finding 6 (c08): a delivered invoice requeued, its buyer name amended
and approved by another person; the finance system answered that it had the
invoice already (same key) and kept the old buyer name, while the row was
recorded `delivered` with no word anywhere. Exactly-once stays (nothing is
sent twice, the row is delivered); the approve output warns, an event on the
document (`show`) names the destination, and the re-send answered "already
there" is recorded as what it is: the destination keeps the earlier values.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from agent.model import State
from agent.reconcile import reconcile
from tests.support.audit import assert_ledger_sound
from tests.support.http_destination import http_destination  # noqa: F401
from tests.support.judged import NUMBER, Site, invoice

OLD_BUYER, NEW_BUYER = "上海某某有限公司", "更正后的公司名称有限公司"


@pytest.fixture
def site(tmp_path, http_destination):
    s = Site(tmp_path, [{"name": "erp", "url": http_destination.url, "timeout_s": 5}])
    yield s
    s.close()


def delivered(site: Site) -> int:
    doc = site.add(invoice(dt.date.today()), "invoice")
    site.deliver()
    assert site.state(doc) == "delivered"
    return doc


def held_digest(site: Site, doc: int) -> str | None:
    return json.loads(site.rows(doc)["erp"]["receipt"]).get("held_values_sha256")


def test_a_field_amend_after_delivery_is_never_shown_as_delivered_to_the_destination(site, http_destination):
    doc = delivered(site)
    first = held_digest(site, doc)
    assert first is not None
    assert site.cli("requeue", str(doc)).exit_code == 0

    approved = site.amend_approved(str(doc), "--set", f"buyer_name={NEW_BUYER}", "--reason", "OCR misread")
    assert approved.exit_code == 0, approved.output
    assert (f"warning: document {doc} was already delivered to erp under invoice key {NUMBER}; erp keeps the "
            "values it got and sending it again under the same key does not change them: correct buyer_name "
            "in erp by hand") in approved.stderr
    [note] = [e for e in site.ledger.events(doc) if (e.details or {}).get("values_held")]
    assert f"buyer_name {OLD_BUYER} -> {NEW_BUYER}" in note.reason and "erp holds invoice" in note.reason

    site.deliver()
    # Once at the destination, with the values it had; delivered, but not as if the new ones were.
    assert dict(http_destination.accepted) == {NUMBER: 1}
    assert http_destination.fields[NUMBER]["buyer_name"] == OLD_BUYER
    assert site.state(doc) == State.DELIVERED
    row = site.rows(doc)["erp"]
    assert row["state"] == "delivered" and held_digest(site, doc) == first and row["last_error"] is None
    assert "erp already held invoice" in row["attempts_log"][-1]["error"]
    assert "it keeps the values it was first delivered with" in site.ledger.events(doc)[-1].reason
    shown = site.cli("show", str(doc)).stdout
    assert "changed after delivery" in shown and "erp already held invoice" in shown

    # Reconciliation's lookup keeps the digest of what erp holds.
    report = reconcile(site.ledger, site.dests, now=dt.datetime.now(dt.timezone.utc), actor="test",
                       requeue_missing=True)
    assert [c.result for c in report.checks] == ["confirmed"] and held_digest(site, doc) == first
    assert_ledger_sound(site.config_path)


def test_a_requeue_without_a_change_and_an_amend_back_say_nothing(site, http_destination):
    doc = delivered(site)
    assert site.cli("requeue", str(doc)).exit_code == 0
    site.deliver()
    assert "already held" not in (site.rows(doc)["erp"]["attempts_log"][-1]["error"] or "")

    assert site.cli("requeue", str(doc)).exit_code == 0
    changed = site.amend_approved(str(doc), "--set", f"buyer_name={NEW_BUYER}")
    assert "keeps the values it got" in changed.stderr
    site.deliver()
    assert site.cli("requeue", str(doc)).exit_code == 0
    back = site.amend_approved(str(doc), "--set", f"buyer_name={OLD_BUYER}", "--reason", "it was right")
    assert back.exit_code == 0 and "warning" not in back.stderr    # erp holds exactly these values
    site.deliver()
    assert site.state(doc) == "delivered" and dict(http_destination.accepted) == {NUMBER: 1}
    assert "already held" not in (site.rows(doc)["erp"]["attempts_log"][-1]["error"] or "")
    assert_ledger_sound(site.config_path)
