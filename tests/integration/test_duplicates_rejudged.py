"""Issue 12, items 4 and 5: a duplicate is judged against every live copy of
its invoice key, and judged again whenever the copy it points at goes away.

Real ledger, vault and CLI; deliveries go through the real delivery step to
a folder destination, or to a real SeaweedFS for the S3 case.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest

from agent import pipeline
from agent.model import State
from tests.support.judged import NUMBER, SETTINGS, Site, duplicate_violations, inbox_site, invoice, number
from tests.support.seaweed import seaweed  # noqa: F401  (session fixture)

WRONG_TOTAL = dict(source="ocr", total=Decimal("118.00"))  # a misread scan: amount-sum and words fail


def today() -> dt.date:
    return dt.date.today()


@pytest.fixture
def site(tmp_path):
    yield from inbox_site(tmp_path)


def files_in(folder: Path) -> list[str]:
    """The invoice files a folder destination holds (sidecars and temp files aside)."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".") and p.suffix != ".json")


def show(site: Site, doc_id: int) -> tuple[dict, str]:
    as_json = site.cli("show", str(doc_id), "--json")
    assert as_json.exit_code == 0, as_json.output
    return json.loads(as_json.stdout), site.cli("show", str(doc_id)).stdout


def test_a_good_copy_is_delivered_and_the_damaged_copy_rejected_without_losing_either(site, tmp_path):
    damaged = site.add(invoice(today(), **WRONG_TOTAL), "scan")
    assert site.state(damaged) == "quarantined"
    good = site.add(invoice(today()), "supplier")
    rejected = site.cli("reject", str(damaged), "--reason", "damaged scan of the supplier's invoice", "--yes")
    assert rejected.exit_code == 0, rejected.output
    site.deliver()
    assert site.state(good) == "delivered"
    assert site.state(damaged) == "rejected"
    assert files_in(tmp_path / "import") == [f"{NUMBER}.pdf"]
    assert duplicate_violations(site.ledger) == []


def test_a_copy_that_passes_takes_the_place_of_a_quarantined_one_and_its_duplicates_follow(site):
    damaged = site.add(invoice(today(), **WRONG_TOTAL), "scan")
    other_scan = site.add(invoice(today(), source="ocr", total=Decimal("131.00")), "scan-again")
    assert site.ledger.get(other_scan).duplicate_of == damaged
    good = site.add(invoice(today()), "supplier")
    assert site.state(good) == "queued"
    valid = [e for e in site.ledger.events(good) if e.to_state == "valid"][0]
    assert valid.reason == f"in place of document {damaged} (quarantined): valid"
    # In the trail's order, the good copy is read before the damaged one
    # steps aside for it, and judged after.
    extracted = [e for e in site.ledger.events(good) if e.to_state == "extracted"][0]
    stepped_aside = [e for e in site.ledger.events(damaged) if e.to_state == "duplicate"][0]
    assert extracted.id < stepped_aside.id < valid.id
    for doc_id in (damaged, other_scan):
        assert (site.state(doc_id), site.ledger.get(doc_id).duplicate_of) == ("duplicate", good)
    assert duplicate_violations(site.ledger) == []
    detail, text = show(site, damaged)
    assert f"duplicate of document {good} (queued, invoice key {NUMBER})" in text
    assert f"re-judged: document {good}, a copy of the same invoice that passes validation, takes its place" in text
    assert {"amount-sum", "duplicate"} <= {p["code"] for p in detail["problems"]}  # why it lost stays visible
    _, text = show(site, other_scan)
    assert f"re-judged: document {damaged}, which it duplicated, is now a duplicate of document {good}" in text


def test_rejecting_the_live_copy_judges_its_duplicates_again_the_one_that_passes_first(site, tmp_path):
    first = site.add(invoice(today()), "first")
    bad_copy = site.add(invoice(today(), **WRONG_TOTAL), "bad-copy")
    good_copy = site.add(invoice(today()), "good-copy")
    assert [site.ledger.get(d).duplicate_of for d in (bad_copy, good_copy)] == [first, first]

    rejected = site.cli("reject", str(first), "--reason", "sent to us by mistake", "--yes")
    assert rejected.exit_code == 0
    # The copy that passes becomes the invoice's copy, held for a person: the
    # invoice was just rejected, and no copy of it goes out unseen.
    assert rejected.stdout.splitlines()[1:] == [
        f"document {first}: queued -> rejected",
        f"document {good_copy} (a copy of invoice {NUMBER}): duplicate -> quarantined "
        "(still failing: rejected-before)"]
    assert (site.state(bad_copy), site.ledger.get(bad_copy).duplicate_of) == ("duplicate", good_copy)
    detail, text = show(site, good_copy)
    assert f"re-judged: document {first}, which it duplicated, was rejected" in text
    assert f"document {first}, a copy of this invoice, was rejected" in text and "sent to us by mistake" in text
    moves = [(e["from_state"], e["to_state"]) for e in detail["events"] if e["to_state"]]
    assert moves[-2:] == [("duplicate", "extracted"), ("extracted", "quarantined")]
    rejudged = [e for e in detail["events"] if e["from_state"] == "duplicate"][0]
    assert rejudged["details"] == {"rejudged": f"document {first}, which it duplicated, was rejected",
                                   "was_duplicate_of": first}
    assert rejudged["actor"].startswith("cli:")  # the operator's act, in the same transaction
    assert site.deliver() == []
    accepted = site.cli("accept", str(good_copy), "--reason", "the first was a wrong scan; this one is ours")
    assert accepted.exit_code == 0, accepted.output
    assert site.state(good_copy) == "queued"
    site.deliver()
    assert site.state(good_copy) == "delivered" and files_in(tmp_path / "import") == [f"{NUMBER}.pdf"]
    assert duplicate_violations(site.ledger) == []


def test_amending_the_live_copy_to_another_number_judges_its_duplicates_again(site, tmp_path):
    first = site.add(invoice(today()), "first")
    copy = site.add(invoice(today()), "copy")
    other = number("12345699")
    result = site.amend_approved(str(first), "--set", f"number={other}", "--reason", "misread number")
    assert result.exit_code == 0, result.output
    assert site.state(first) == "queued" and site.state(copy) == "queued"
    _, text = show(site, copy)
    assert f"re-judged: document {first}, which it duplicated, was amended to another invoice key ({other})" in text
    site.deliver()
    assert files_in(tmp_path / "import") == sorted([f"{NUMBER}.pdf", f"{other}.pdf"])
    assert duplicate_violations(site.ledger) == []


def test_amending_a_duplicate_into_a_third_number_and_back_keeps_one_copy_per_key(site):
    first = site.add(invoice(today()), "first")
    copy = site.add(invoice(today()), "copy")
    other = number("12345699")
    assert site.amend_approved(str(copy), "--set", f"number={other}").exit_code == 0
    assert site.state(copy) == "queued" and site.ledger.get(copy).duplicate_of is None
    back = site.amend_approved(str(copy), "--set", f"number={NUMBER}")
    assert back.exit_code == 0 and f"(same invoice as document {first})" in back.stdout
    assert site.state(first) == "queued" and site.state(copy) == "duplicate"
    assert duplicate_violations(site.ledger) == []


def test_a_scan_amended_to_a_number_already_delivered_is_its_duplicate_whatever_came_first(tmp_path, seaweed):
    bucket = seaweed.make_bucket()
    site = Site(tmp_path, [dict(seaweed.target_config(bucket, "inbox", name="s3in"), timeout_s=5)])
    try:
        scan = site.add(invoice(today(), source="ocr", number=None), "scan")   # no number read
        assert site.state(scan) == "quarantined"
        supplier = site.add(invoice(today()), "supplier")
        site.deliver()
        assert site.state(supplier) == "delivered"

        amended = site.amend_approved(str(scan), "--set", f"number={NUMBER}", "--reason", "typed from paper")
        assert amended.exit_code == 0, amended.output
        assert amended.stdout.endswith(f"document {scan}: quarantined -> duplicate (same invoice as document {supplier})\n")
        assert site.deliver() == []
        listed = seaweed.client().list_objects_v2(Bucket=bucket, Prefix=f"inbox/{NUMBER}/").get("Contents", [])
        assert len([o for o in listed if not o["Key"].endswith("/invoice.json")]) == 1
        assert site.ledger.deliveries_of(scan) == []
        assert duplicate_violations(site.ledger) == []
    finally:
        site.close()


def test_accept_refuses_a_second_live_copy_of_a_key(site):
    first = site.add(invoice(today()), "first")
    second = site.add(invoice(today(), **WRONG_TOTAL, number=number("12345611")), "second")
    # Two live copies of one key, as a ledger from before this rule may hold.
    site.ledger.conn.execute("UPDATE documents SET invoice_key = ?, invoice_number = ? WHERE id = ?",
                             (NUMBER, NUMBER, second))
    result = site.cli("accept", str(second), "--reason", "finance says it is fine")
    assert result.exit_code == 1
    assert f"document {first} (queued) is already the copy of invoice {NUMBER}" in result.stderr
    assert site.state(second) == "quarantined" and site.ledger.deliveries_of(second) == []


def test_duplicates_left_pointing_at_a_rejected_document_are_settled_at_start(site):
    first = site.add(invoice(today(), **WRONG_TOTAL), "first")
    copy = site.add(invoice(today(), source="ocr", total=Decimal("131.00")), "copy")
    assert site.ledger.get(copy).duplicate_of == first
    # What the old `reject` left: the copy a duplicate of a rejected document.
    site.ledger.conn.execute("UPDATE documents SET state = 'rejected' WHERE id = ?", (first,))
    assert duplicate_violations(site.ledger)
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    moved = pipeline.resume_stranded(site.ledger, settings=SETTINGS, destinations=site.names, today=today(),
                                     now=now, actor="daemon:1")
    assert moved == 1
    assert site.state(copy) == State.QUARANTINED  # in `quarantine` for a person now, not silent
    assert duplicate_violations(site.ledger) == []
