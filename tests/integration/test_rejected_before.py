"""A copy of an invoice a person rejected is held for a person (attack M,
finding 8): quarantined as `rejected-before`, naming the rejected document
and the reason, listed in `quarantine`, delivered only once a person
accepts it. Rejecting a spare copy (a duplicate) says nothing of the invoice.

Real ledger, vault and CLI; delivery to a folder destination.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest

from tests.support.audit import assert_ledger_sound
from tests.support.judged import NUMBER, inbox_site, invoice

WRONG_TOTAL = dict(source="ocr", total=Decimal("118.00"))  # a misread scan: fails validation on its own
REASON = "假发票, 不得入账"


def today() -> dt.date:
    return dt.date.today()


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".") and p.suffix != ".json")


@pytest.fixture
def site(tmp_path):
    yield from inbox_site(tmp_path)


def test_a_second_download_of_a_rejected_invoice_waits_for_a_person(site, tmp_path):
    first = site.add(invoice(today()), "x")
    assert site.state(first) == "queued"
    assert site.cli("reject", str(first), "--reason", REASON, "--yes").exit_code == 0

    again = site.add(invoice(today()), "x-download2")
    assert site.state(again) == "quarantined"
    [mark, *_] = site.ledger.get(again).problems
    assert (mark["code"], mark["severity"]) == ("rejected-before", "error")
    assert f"document {first}, a copy of this invoice, was rejected (BL-" in mark["message"] and REASON in mark["message"]
    assert REASON in mark["message_zh"]
    assert site.deliver() == [] and files_in(tmp_path / "import") == []

    listed = site.cli("quarantine")
    assert f"document {again}" in listed.stdout and "rejected-before" in listed.stdout and REASON in listed.stdout
    shown = site.cli("show", str(again)).stdout
    assert f"document {first}, a copy of this invoice, was rejected" in shown
    moved = [e for e in json.loads(site.cli("show", str(again), "--json").stdout)["events"] if e["to_state"]][-1]
    assert moved["to_state"] == "quarantined" and moved["details"] == {"rejected_before": first}

    # A third copy is its duplicate: one copy waits for the decision, not each.
    third = site.add(invoice(today()), "x-download3")
    assert (site.state(third), site.ledger.get(third).duplicate_of) == ("duplicate", again)

    accepted = site.cli("accept", str(again), "--reason", "the supplier confirmed this one is genuine")
    assert accepted.exit_code == 0, accepted.output
    assert "accepted over rejected-before" in accepted.stdout
    site.deliver()
    assert site.state(again) == "delivered" and files_in(tmp_path / "import") == [f"{NUMBER}.pdf"]
    assert_ledger_sound(site.config_path)


def test_rejecting_a_spare_copy_holds_no_later_copy(site):
    first = site.add(invoice(today()), "x")
    spare = site.add(invoice(today()), "x-again")
    assert site.state(spare) == "duplicate"
    assert site.cli("reject", str(spare), "--reason", "the same file twice", "--yes").exit_code == 0
    assert site.ledger.rejection_of_key(NUMBER) is None
    # The live copy re-judged (an amend of another field) is judged by its own values only.
    amended = site.amend_approved(str(first), "--set", "buyer_name=上海某某有限公司（分公司）")
    assert amended.exit_code == 0, amended.output
    assert site.state(first) == "queued"
    assert_ledger_sound(site.config_path)


def test_a_passing_copy_takes_the_place_of_a_held_damaged_one_and_is_held_itself(site):
    first = site.add(invoice(today()), "x")
    assert site.cli("reject", str(first), "--reason", REASON, "--yes").exit_code == 0
    damaged = site.add(invoice(today(), **WRONG_TOTAL), "scan")
    assert site.state(damaged) == "quarantined"
    assert {"rejected-before", "amount-sum"} <= {p["code"] for p in site.ledger.get(damaged).problems}
    good = site.add(invoice(today()), "supplier")
    # The better copy is the one a person decides about; still never queued unseen.
    assert site.state(good) == "quarantined"
    assert site.ledger.get(good).problems[0]["code"] == "rejected-before"
    assert (site.state(damaged), site.ledger.get(damaged).duplicate_of) == ("duplicate", good)
    # And a further good copy does not take the place of the held good one.
    another = site.add(invoice(today()), "supplier-again")
    assert (site.state(another), site.ledger.get(another).duplicate_of) == ("duplicate", good)
    assert site.deliver() == []
    assert_ledger_sound(site.config_path)


def test_reopening_the_rejected_document_leaves_its_copy_to_the_person(site):
    first = site.add(invoice(today()), "x")
    assert site.cli("reject", str(first), "--reason", REASON, "--yes").exit_code == 0
    again = site.add(invoice(today()), "x-download2")
    assert site.state(again) == "quarantined"
    assert site.cli("reopen", str(first), "--reason", "rejected the wrong one").exit_code == 0
    assert (site.state(first), site.ledger.get(first).duplicate_of) == ("duplicate", again)
    assert site.ledger.rejection_of_key(NUMBER) is None
    assert site.cli("accept", str(again), "--reason", "it is ours after all").exit_code == 0
    site.deliver()
    assert site.state(again) == "delivered"
    assert_ledger_sound(site.config_path)
