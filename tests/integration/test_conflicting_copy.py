"""A second copy of an invoice number that reads otherwise (another
seller's tax id, another total, another date) is no mere duplicate (attack
C, finding 6): it stays a duplicate of the copy received first (one live
copy a key, nothing delivered twice), but with the error `conflicting-copy`
naming both readings, shown by `show` and `list`, so a person compares the
two instead of the second being filed away as finished.

Real ledger, vault and CLI; delivery to a folder destination.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from tests.support.audit import assert_ledger_sound
from tests.support.judged import inbox_site, invoice


@pytest.fixture
def site(tmp_path):
    yield from inbox_site(tmp_path)


def test_a_copy_with_another_seller_and_total_is_a_conflicting_duplicate(site):
    today = dt.date.today()
    first = site.add(invoice(today), "x")
    assert site.state(first) == "queued"
    forged = site.add(invoice(today, seller_tax_id="91420100MA7HTDC99N", total=Decimal("9540.00")), "x-other")
    assert site.state(forged) == "duplicate"
    found = {p["code"]: p for p in site.ledger.get(forged).problems}
    assert found["duplicate"]["severity"] == "error"
    clash = found["conflicting-copy"]
    assert clash["severity"] == "error" and f"document {first}" in clash["message"]
    assert "91420100MA7HTDC99N" in clash["message"] or "9540.00" in clash["message"]
    assert "conflicting-copy" in site.cli("show", str(forged)).stdout
    assert "conflicting-copy" in site.cli("list", "--state", "duplicate").stdout
    # The copy that reads the same is a plain duplicate.
    same = site.add(invoice(today), "x-again")
    assert site.state(same) == "duplicate"
    assert "conflicting-copy" not in {p["code"] for p in site.ledger.get(same).problems}
    assert_ledger_sound(site.config_path)
