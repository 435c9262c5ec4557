"""The reconciliation after every reading (agent/extract/plausible.py): the QR
amount cross-checked with the print, and positional values that fail a
plausibility check left empty with a problem code."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from agent.extract.plausible import drop_dates_after, reconcile
from agent.extract.qr import apply_qr, crc16_umts, parse_qr
from agent.model import Invoice
from agent.validate import ValidationSettings, validate
from agent.validate.rules import RULES

D = Decimal


def _qr(kind: str, amount: str, code: str = "044031900111", number: str = "12345678") -> str:
    fields = ["01", kind, code if kind != "32" else "", number if kind != "32" else "24442000000123456789",
              amount, "20240105", "12345678901234567890" if kind != "32" else ""]
    signed = ",".join(fields) + ","
    return signed + f"{crc16_umts(signed.encode()):04X}"


def _invoice(qr: str, printed: dict, source: str = "pdf-text") -> Invoice:
    inv = Invoice()
    apply_qr(inv, parse_qr(qr))
    for name, value in printed.items():
        inv.offer(name, value, source)
    return inv


def _codes(inv: Invoice) -> list[str]:
    return [p.code for p in inv.problems]


# -- class 5: the QR amount ---------------------------------------------------

def test_a_qr_amount_that_is_the_total_yields_to_the_printed_amount():
    # 代开: the QR of a type-10 invoice carries 价税合计 187.73; the print says 金额 182.26.
    inv = _invoice(_qr("10", "187.73"), {"amount": D("182.26"), "tax": D("5.47"), "total": D("187.73")})
    reconcile(inv)
    assert inv.get("amount") == D("182.26") and inv.fields["amount"].source == "pdf-text"
    assert inv.get("total") == D("187.73") and inv.conflicts == []
    assert "qr-amount-other" in _codes(inv)
    assert not [p for p in validate(inv, ValidationSettings(), today=dt.date(2024, 2, 1))
                if p.severity == "error" and p.code != "expired"]


def test_a_qr_total_with_no_printed_amount_is_not_stored_as_the_amount():
    inv = _invoice(_qr("10", "187.73"), {"tax": D("5.47"), "total": D("187.73")})
    reconcile(inv)
    assert inv.get("amount") is None and "qr-amount-other" in _codes(inv)


def test_a_shudian_qr_amount_that_is_the_pre_tax_amount_yields_to_the_printed_total():
    inv = _invoice(_qr("32", "100.00"), {"amount": D("100.00"), "tax": D("13.00"), "total": D("113.00")})
    reconcile(inv)
    assert inv.get("total") == D("113.00") and inv.conflicts == [] and "qr-amount-other" in _codes(inv)


def test_a_qr_amount_the_print_agrees_with_is_left_alone():
    inv = _invoice(_qr("10", "182.26"), {"amount": D("182.26"), "tax": D("5.47"), "total": D("187.73")})
    reconcile(inv)
    assert inv.fields["amount"].source == "qr" and inv.problems == [] and inv.conflicts == []


def test_a_qr_amount_that_matches_no_printed_value_stays_a_conflict():
    # An altered print (or QR): neither reading is consistent with the other.
    inv = _invoice(_qr("10", "150.00"), {"amount": D("182.26"), "tax": D("5.47"), "total": D("187.73")})
    reconcile(inv)
    assert inv.get("amount") == D("150.00") and [c.field for c in inv.conflicts] == ["amount"]
    assert "qr-amount-other" not in _codes(inv)


def test_no_tax_means_amount_equals_total_and_nothing_moves():
    inv = _invoice(_qr("10", "50.00"), {"amount": D("50.00"), "total": D("50.00")})
    reconcile(inv)
    assert inv.fields["amount"].source == "qr" and inv.problems == []


# -- class 6: positional values -----------------------------------------------

def test_a_name_glued_to_the_cipher_area_is_left_empty():
    inv = Invoice()
    inv.offer("buyer_name", "重庆某某科技有限公司03-028/088‹945327", "pdf-text")
    inv.offer("seller_name", "北京3M中国有限公司", "pdf-text")
    reconcile(inv)
    assert inv.get("buyer_name") is None and inv.get("seller_name") == "北京3M中国有限公司"
    [p] = inv.problems
    assert p.code == "implausible-name" and p.field == "buyer_name" and p.severity == "error"
    assert "03-028/088" in p.message


def test_a_tax_id_failing_its_check_digit_is_left_empty_when_read_by_position():
    for source in ("pdf-text", "ofd-text", "ocr"):
        inv = Invoice()
        inv.offer("seller_tax_id", "91500102563638729E", source)  # check digit should be 8
        inv.offer("buyer_tax_id", "91320500762844701D", source)
        reconcile(inv)
        assert inv.get("seller_tax_id") is None and inv.get("buyer_tax_id") == "91320500762844701D"
        assert _codes(inv) == ["implausible-tax-id"]


def test_structured_values_are_left_for_validation_to_judge():
    inv = Invoice()
    inv.offer("seller_tax_id", "91500102563638729E", "ofd")
    inv.offer("buyer_name", "某某公司03-028/088<945327", "xml")
    reconcile(inv)
    assert inv.get("seller_tax_id") == "91500102563638729E" and inv.get("buyer_name") is not None
    assert inv.problems == []


def test_an_implausible_positional_reading_leaves_a_conflict_and_the_other_reading_stays():
    inv = Invoice()
    inv.offer("number", "24442000000123456789", "qr")
    inv.offer("number", "12005678901234567890", "pdf-text")  # another box's 20 digits: no province 00
    inv.offer("code", "044031900111", "qr")
    inv.offer("code", "9999", "pdf-text")
    inv.offer("check_code", "1234567890", "ocr")
    reconcile(inv)
    assert inv.get("code") == "044031900111" and inv.get("number") == "24442000000123456789"
    assert inv.conflicts == [] and inv.get("check_code") is None
    assert sorted(_codes(inv)) == ["implausible-check-code", "implausible-code", "implausible-number"]


def test_money_that_does_not_add_up_is_left_empty_except_what_something_confirms():
    inv = Invoice()
    inv.offer("amount", D("100.00"), "qr")
    inv.offer("tax", D("31.00"), "pdf-text")
    inv.offer("total", D("113.00"), "pdf-text")
    inv.offer("total_in_words", "壹佰壹拾叁圆整", "pdf-text")
    reconcile(inv)
    assert inv.get("amount") == D("100.00") and inv.get("total") == D("113.00") and inv.get("tax") is None
    assert _codes(inv) == ["implausible-sum"]

    alone = Invoice()
    for name, value in (("amount", D("100.00")), ("tax", D("31.00")), ("total", D("113.00"))):
        alone.offer(name, value, "ocr")
    reconcile(alone)
    assert [alone.get(n) for n in ("amount", "tax", "total")] == [None, None, None]


def test_a_date_after_the_arrival_is_left_empty_but_a_qr_date_stays():
    inv = Invoice()
    inv.offer("date", dt.date(2024, 3, 2), "pdf-text")
    drop_dates_after(inv, dt.date(2024, 3, 1))
    assert inv.get("date") is None and _codes(inv) == ["implausible-date"]
    same_day = Invoice()
    same_day.offer("date", dt.date(2024, 3, 1), "ocr")
    drop_dates_after(same_day, dt.date(2024, 3, 1))
    assert same_day.get("date") == dt.date(2024, 3, 1) and same_day.problems == []
    qr = Invoice()
    qr.offer("date", dt.date(2024, 3, 2), "qr")
    drop_dates_after(qr, dt.date(2024, 3, 1))
    assert qr.get("date") == dt.date(2024, 3, 2)


def test_every_code_reported_is_in_the_rules_table():
    for code in ("qr-amount-other", "implausible-name", "implausible-tax-id", "implausible-code",
                 "implausible-number", "implausible-check-code", "implausible-sum", "implausible-date"):
        assert code in RULES and RULES[code].check is None
