"""amend / accept / reject / quarantined over a real temporary ledger."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given, settings, strategies as st

from agent.amend import (AMENDABLE, AmbiguousReference, AmendError, accept, amend, parse_assignments,
                         parse_value, quarantined, reject, resolve)
from agent.errors import IllegalTransition, NotFoundInLedger
from agent.judgement import judge
from agent.ledger import Ledger
from agent.model import FIELD_NAMES, MONEY_FIELDS, Invoice, State
from agent.pipeline import invoice_columns
from agent.validate import ValidationSettings

T0 = "2024-06-01T00:00:00.000000Z"
T1 = "2024-06-01T01:00:00.000000Z"
TODAY = dt.date(2024, 6, 1)
SETTINGS = ValidationSettings()
DESTS = ("outbox", "erp")
SELLER = "91110108MA01ABCD2H"       # valid 统一社会信用代码
BAD_SELLER = "91110108MA01ABCD2X"   # same with a wrong check character
BUYER = "91310115MA1K3XY40A"
WHO = "cli:alice"

GOOD = dict(kind="32", number="24110000000012345678", date=dt.date(2024, 5, 6),
            amount=Decimal("100.00"), tax=Decimal("13.00"), total=Decimal("113.00"),
            total_in_words="壹佰壹拾叁圆整", seller_name="北京某某科技有限公司", seller_tax_id=SELLER,
            buyer_name="上海某某有限公司", buyer_tax_id=BUYER)


def invoice(**changes) -> Invoice:
    inv = Invoice()
    for name, value in {**GOOD, **changes}.items():
        inv.offer(name, value, "xml")
    return inv


def add_doc(ledger: Ledger, inv: Invoice | None, sha: str, *, destinations=DESTS) -> int:
    """A document captured, read as `inv` and judged, as the pipeline does it."""
    doc_id, _ = ledger.add_document(sha256=sha * 64, size=10, media_type="xml", source_kind="ingest",
                                    source="/in", original_name=f"{sha}.xml", original_path=f"/in/{sha}.xml",
                                    now=T0, actor="daemon:1")
    if inv is None:  # unreadable, as pipeline.apply records it
        ledger.transition(doc_id, State.QUARANTINED, now=T0, actor="daemon:1", reason="corrupt",
                          problems=[{"code": "unreadable", "severity": "error", "field": None,
                                     "message": "corrupt: bad bytes"}])
        return doc_id
    ledger.transition(doc_id, State.EXTRACTED, now=T0, actor="daemon:1", **invoice_columns(inv))
    judge(ledger, doc_id, inv, settings=SETTINGS, destinations=destinations, today=TODAY, now=T0,
          actor="daemon:1")
    return doc_id


def do_amend(ledger, doc_id, values, *, reason="typed from the paper copy", destinations=DESTS):
    return amend(ledger, doc_id, values, reason=reason, settings=SETTINGS, destinations=destinations,
                 today=TODAY, now=T1, actor=WHO)


def do_reject(ledger, doc_id, reason):
    return reject(ledger, doc_id, reason=reason, settings=SETTINGS, destinations=DESTS, today=TODAY,
                  now=T1, actor=WHO)


@pytest.fixture
def ledger(tmp_path):
    with Ledger(tmp_path / "ledger.sqlite3") as led:
        yield led


def snapshot(ledger: Ledger, doc_id: int):
    doc = ledger.get(doc_id)
    return doc.state, doc.fields, doc.problems, len(ledger.events(doc_id))


# -- amend ----------------------------------------------------------------------


def test_amend_fixes_a_quarantined_document_and_logs_who_and_what(ledger):
    doc_id = add_doc(ledger, invoice(seller_tax_id=BAD_SELLER), "a")
    assert ledger.get(doc_id).state == "quarantined"
    assert [p["code"] for p in ledger.get(doc_id).problems] == ["tax-id-check-digit"]

    assert do_amend(ledger, doc_id, {"seller_tax_id": SELLER.lower()}) is State.QUEUED

    doc = ledger.get(doc_id)
    assert doc.state == "queued" and doc.problems == []
    assert doc.fields["seller_tax_id"] == SELLER and doc.fields["sources"]["seller_tax_id"] == "manual"
    assert doc.fields["sources"]["number"] == "xml"
    assert [d["destination"] for d in ledger.deliveries_of(doc_id)] == list(DESTS)
    mine = [e for e in ledger.events(doc_id) if e.actor == WHO]
    assert [(e.from_state, e.to_state) for e in mine] == [
        ("quarantined", "extracted"), ("extracted", "valid"), ("valid", "queued")]
    assert mine[0].at == T1
    assert mine[0].details == {"source": "manual", "reason": "typed from the paper copy", "fields": {
        "seller_tax_id": {"old": BAD_SELLER, "old_source": "xml", "new": SELLER}}}
    assert f"seller_tax_id {BAD_SELLER} -> {SELLER}" in mine[0].reason


def test_amend_that_still_fails_stays_quarantined_with_fresh_reasons(ledger):
    doc_id = add_doc(ledger, invoice(number="2411000000001234567"), "a")  # 19 digits
    assert ledger.get(doc_id).problems[0]["code"] == "number-format"
    state = do_amend(ledger, doc_id, {"number": "24110000000012345678", "total": "114"})
    assert state is State.QUARANTINED
    doc = ledger.get(doc_id)
    assert doc.state == "quarantined" and doc.invoice_number == "24110000000012345678"
    assert doc.total_cents == 11400
    codes = {p["code"] for p in doc.problems}
    assert "number-format" not in codes and {"amount-sum", "words-mismatch"} <= codes


def test_amend_without_destinations_ends_valid(ledger):
    doc_id = add_doc(ledger, invoice(date=dt.date(2023, 1, 5), number="23110000000012345678"), "a",
                     destinations=())
    assert {p["code"] for p in ledger.get(doc_id).problems} == {"expired"}
    assert do_amend(ledger, doc_id, {"date": "2024-05-06", "number": "24110000000012345678"},
                    destinations=()) is State.VALID
    assert ledger.get(doc_id).invoice_date == "2024-05-06"
    assert ledger.deliveries_of(doc_id) == []


@pytest.mark.parametrize("name,value", [
    ("bogus", "1"), ("total", "12.345"), ("total", "abc"), ("amount", "1e5"), ("date", "2024-02-30"),
    ("date", "20240506"), ("date", "6/5/2024"), ("number", "12AB5678"), ("code", "０１２"),
    ("kind", "99"), ("seller_tax_id", "123"), ("buyer_tax_id", "9131-0115"), ("seller_name", "a\nb"),
    ("title", "x" * 501),
])
def test_bad_field_or_value_names_the_field_and_changes_nothing(ledger, name, value):
    doc_id = add_doc(ledger, invoice(seller_tax_id=BAD_SELLER), "a")
    before = snapshot(ledger, doc_id)
    with pytest.raises(AmendError, match=f"--set {name}") as err:
        do_amend(ledger, doc_id, {"number": "24110000000012345679", name: value})
    assert err.value.field == name
    assert snapshot(ledger, doc_id) == before


def test_empty_amend_is_refused(ledger):
    doc_id = add_doc(ledger, invoice(seller_tax_id=BAD_SELLER), "a")
    with pytest.raises(AmendError, match="nothing to amend"):
        do_amend(ledger, doc_id, {})


def test_values_are_parsed_to_their_types():
    assert parse_value("total", " ¥1,234.5 ") == Decimal("1234.50")
    assert parse_value("tax", "-10") == Decimal("-10.00")
    assert parse_value("date", "2024-03-15") == dt.date(2024, 3, 15)
    assert parse_value("check_code", "16630 28298 09915 10014") == "16630282980991510014"
    assert parse_value("seller-tax-id", " 91110108ma01abcd2h ") == SELLER
    assert parse_value("kind", "32") == "32"
    assert parse_value("buyer_name", "  示例 公司 ") == "示例 公司"
    assert parse_value("code", "") is None


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(FIELD_NAMES), raw=st.text(max_size=40))
def test_any_text_gives_a_typed_value_or_an_amend_error(name, raw):
    try:
        value = parse_value(name, raw)
    except AmendError as e:
        assert e.field == name and name in str(e)
        return
    if value is None:
        assert not raw.strip()
    elif name in MONEY_FIELDS:
        assert isinstance(value, Decimal) and value == value.quantize(Decimal("0.01"))
    elif name == "date":
        assert isinstance(value, dt.date)
    else:
        assert isinstance(value, str) and value == value.strip() and value


def test_pipeline_states_are_not_amendable():
    assert State.QUARANTINED in AMENDABLE
    assert not {State.CAPTURED, State.EXTRACTED} & set(AMENDABLE)


def test_assignments_parse_and_refuse_malformed_pairs():
    assert parse_assignments(["number=123", "Buyer-Name=甲=乙", "code="]) == {
        "number": "123", "buyer_name": "甲=乙", "code": ""}
    with pytest.raises(AmendError, match="expected name=value"):
        parse_assignments(["number"])
    with pytest.raises(AmendError, match="given twice"):
        parse_assignments(["seller_tax_id=1", "seller-tax-id=2"])


def test_amend_can_clear_a_field(ledger):
    # A 数电 invoice misread with a 发票代码: clearing the code lets it pass.
    doc_id = add_doc(ledger, invoice(code="011001900111"), "a")
    assert ledger.get(doc_id).state == "quarantined"
    assert do_amend(ledger, doc_id, {"code": ""}) is State.QUEUED
    doc = ledger.get(doc_id)
    assert doc.fields["code"] is None and doc.invoice_key == GOOD["number"]
    assert ledger.events(doc_id)[-3].details["fields"]["code"] == {
        "old": "011001900111", "old_source": "xml", "new": None}


@pytest.mark.parametrize("state", [s for s in State if s not in AMENDABLE])
def test_amend_from_other_states_is_refused_and_changes_nothing(ledger, state):
    doc_id = add_doc(ledger, invoice(seller_tax_id=BAD_SELLER), "a")
    ledger.conn.execute("UPDATE documents SET state = ? WHERE id = ?", (state.value, doc_id))
    before = snapshot(ledger, doc_id)
    with pytest.raises(IllegalTransition, match=f"is {state.value}; amend works on"):
        do_amend(ledger, doc_id, {"seller_tax_id": SELLER})
    assert snapshot(ledger, doc_id) == before


@pytest.mark.parametrize("state", AMENDABLE)
def test_amend_works_from_every_amendable_state(ledger, state):
    doc_id = add_doc(ledger, invoice(seller_tax_id=BAD_SELLER), "a")
    ledger.conn.execute("UPDATE documents SET state = ? WHERE id = ?", (state.value, doc_id))
    assert do_amend(ledger, doc_id, {"seller_tax_id": SELLER}) is State.QUEUED
    assert ledger.events(doc_id)[-3].from_state == state.value


def test_amend_into_an_earlier_invoice_makes_a_duplicate_and_back_out(ledger):
    first = add_doc(ledger, invoice(), "a")
    misread = add_doc(ledger, invoice(number="24110000000012345670", seller_tax_id=BAD_SELLER), "b")
    assert ledger.get(misread).state == "quarantined"
    assert do_amend(ledger, misread, {"number": GOOD["number"], "seller_tax_id": SELLER}) is State.DUPLICATE
    doc = ledger.get(misread)
    assert doc.duplicate_of == first and doc.problems[0]["code"] == "duplicate"
    # An operator who finds it was a different invoice after all amends it out.
    assert do_amend(ledger, misread, {"number": "24110000000012345670"}) is State.QUEUED
    assert ledger.get(misread).duplicate_of is None


def test_amend_a_not_invoice_makes_it_an_invoice(ledger):
    doc_id, _ = ledger.add_document(sha256="c" * 64, size=1, media_type="pdf", source_kind="ingest",
                                    source=None, original_name="trip.pdf", original_path=None,
                                    now=T0, actor="daemon:1")
    ledger.transition(doc_id, State.NOT_INVOICE, now=T0, actor="daemon:1", reason="trip list",
                      fields=Invoice(is_invoice=False, not_invoice_reason="trip list").to_dict())
    # Only a number typed in: validation must now run and find what is missing.
    assert do_amend(ledger, doc_id, {"number": GOOD["number"]}) is State.QUARANTINED
    doc = ledger.get(doc_id)
    assert doc.fields["is_invoice"] is True
    assert {"date-invalid", "amount-sum"} <= {p["code"] for p in doc.problems}
    assert ledger.events(doc_id)[-2].details["was_not_invoice"] == "trip list"


def test_an_unreadable_document_can_be_typed_in_whole(ledger):
    doc_id = add_doc(ledger, None, "d")
    values = {k: (v.isoformat() if isinstance(v, dt.date) else str(v)) for k, v in GOOD.items()}
    assert do_amend(ledger, doc_id, values) is State.QUEUED
    doc = ledger.get(doc_id)
    assert set(doc.fields["sources"].values()) == {"manual"} and doc.problems == []


# -- accept and reject ----------------------------------------------------------


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_accept_and_reject_need_a_reason(ledger, reason):
    doc_id = add_doc(ledger, invoice(seller_tax_id=BAD_SELLER), "a")
    before = snapshot(ledger, doc_id)
    with pytest.raises(AmendError, match="accept needs a reason"):
        accept(ledger, doc_id, reason=reason, destinations=DESTS, now=T1, actor=WHO)
    with pytest.raises(AmendError, match="reject needs a reason"):
        reject(ledger, doc_id, reason=reason, settings=SETTINGS, destinations=DESTS, today=TODAY, now=T1, actor=WHO)
    assert snapshot(ledger, doc_id) == before


def test_accept_overrides_errors_with_an_audit_entry(ledger):
    doc_id = add_doc(ledger, invoice(seller_tax_id=BAD_SELLER), "a")
    assert accept(ledger, doc_id, reason=" vendor confirmed by phone ", destinations=DESTS,
                  now=T1, actor=WHO) is State.QUEUED
    doc = ledger.get(doc_id)
    assert doc.state == "queued" and [p["code"] for p in doc.problems] == ["tax-id-check-digit"]
    assert len(ledger.deliveries_of(doc_id)) == 2
    event = [e for e in ledger.events(doc_id) if e.to_state == "valid"][0]
    assert event.actor == WHO and event.from_state == "quarantined"
    assert event.reason == "accepted over tax-id-check-digit: vendor confirmed by phone"
    assert event.details["reason"] == "vendor confirmed by phone"
    assert [p["field"] for p in event.details["overridden"]] == ["seller_tax_id"]


def test_accept_without_destinations_ends_valid(ledger):
    doc_id = add_doc(ledger, invoice(seller_tax_id=BAD_SELLER), "a")
    assert accept(ledger, doc_id, reason="ok", destinations=(), now=T1, actor=WHO) is State.VALID


def test_accept_refuses_other_states_and_unreadable_documents(ledger):
    valid = add_doc(ledger, invoice(), "a")
    with pytest.raises(IllegalTransition, match="is queued; only quarantined"):
        accept(ledger, valid, reason="x", destinations=DESTS, now=T1, actor=WHO)
    unreadable = add_doc(ledger, None, "b")
    before = snapshot(ledger, unreadable)
    with pytest.raises(AmendError, match="no invoice fields.*amend"):
        accept(ledger, unreadable, reason="x", destinations=DESTS, now=T1, actor=WHO)
    assert snapshot(ledger, unreadable) == before


def test_reject_ends_the_document(ledger):
    doc_id = add_doc(ledger, invoice(seller_tax_id=BAD_SELLER), "a")
    assert do_reject(ledger, doc_id, "demo invoice") is State.REJECTED
    last = ledger.events(doc_id)[-1]
    assert (last.from_state, last.to_state, last.actor, last.details) == (
        "quarantined", "rejected", WHO, {"reason": "demo invoice"})
    for act in (lambda: do_reject(ledger, doc_id, "again"),
                lambda: do_amend(ledger, doc_id, {"seller_tax_id": SELLER}),
                lambda: accept(ledger, doc_id, reason="x", destinations=DESTS, now=T1, actor=WHO)):
        with pytest.raises(IllegalTransition, match="is rejected"):
            act()
    assert ledger.get(doc_id).state == "rejected"


def test_reject_refuses_a_valid_document(ledger):
    doc_id = add_doc(ledger, invoice(), "a", destinations=())
    with pytest.raises(IllegalTransition, match="is valid; only .*quarantined"):
        do_reject(ledger, doc_id, "x")


# -- listing and finding ----------------------------------------------------------


def test_quarantined_sorts_and_limits(ledger):
    small = add_doc(ledger, invoice(seller_tax_id=BAD_SELLER, number="24110000000000000001",
                                    date=dt.date(2024, 5, 20)), "a")
    big = add_doc(ledger, invoice(seller_tax_id=BAD_SELLER, number="24110000000000000002",
                                  amount=Decimal("1000.00"), tax=Decimal("130.00"), total=Decimal("1130.00"),
                                  total_in_words="壹仟壹佰叁拾圆整", date=dt.date(2024, 5, 1)), "b")
    add_doc(ledger, invoice(number="24110000000000000003"), "c")  # valid: not listed
    assert [d.id for d in quarantined(ledger, sort="amount", limit=10)] == [big, small]
    assert [d.id for d in quarantined(ledger, sort="date", limit=10)] == [small, big]
    assert [d.id for d in quarantined(ledger, sort="received", limit=0)] == [big, small]
    assert [d.id for d in quarantined(ledger, sort="amount", limit=1)] == [big]
    assert quarantined(ledger, sort="amount")[0].problems[0]["message_zh"]
    with pytest.raises(AmendError, match="sort must be one of"):
        quarantined(ledger, sort="id")


def test_resolve_refuses_ambiguous_references(ledger):
    a = add_doc(ledger, invoice(), "a")
    b = add_doc(ledger, invoice(), "b")  # same number: a duplicate of a
    assert resolve(ledger, str(b)).id == b
    assert resolve(ledger, "b" * 8).id == b
    with pytest.raises(AmbiguousReference, match="matches 2 documents") as err:
        resolve(ledger, GOOD["number"])
    assert [d.id for d in err.value.candidates] == [a, b]
    with pytest.raises(NotFoundInLedger):
        resolve(ledger, "99")


@pytest.mark.parametrize("typed", ["12,50", "1,234,56", "2,12", "1,2,3.4", "٣٤.٥", "12 50", "1,2345.00"])
def test_an_amount_whose_commas_are_no_thousands_groups_is_refused_never_multiplied(typed):
    # "12,50" is a decimal comma typed by mistake: stored as 1250.00 it
    # would be a wrong value a hundred times the paper's.
    with pytest.raises(AmendError, match="commas only between groups of three"):
        parse_value("total", typed)


def test_grouped_and_full_width_amounts_are_read():
    assert parse_value("total", "1,234,567.80") == Decimal("1234567.80")
    assert parse_value("total", "1 234.50") == Decimal("1234.50")
    assert parse_value("amount", "￥１２３.４") == Decimal("123.40")
