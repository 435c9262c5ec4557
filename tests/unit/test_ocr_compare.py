"""The print against its QR (agent/extract/ocr_compare.py): a smudge is a
warning, another invoice's print or a forged QR amount a conflict."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from agent.extract.ocr_compare import compare_with_qr, money_confirmed_by_print
from agent.extract.qr import apply_qr, parse_qr
from agent.model import Invoice

QR = "01,10,044031900211,37820761,37990.57,20200706,05660235979008260151,EF5B,"
PRINT = {"code": "044031900211", "number": "37820761", "date": dt.date(2020, 7, 6),
         "check_code": "05660235979008260151", "amount": Decimal("37990.57"), "tax": Decimal("2279.43"),
         "total": Decimal("40270.00"), "total_in_words": "肆万零贰佰柒拾圆整"}


def _invoice() -> Invoice:
    invoice = Invoice()
    apply_qr(invoice, parse_qr(QR))
    return invoice


def test_one_misread_identity_value_is_a_warning():
    invoice = _invoice()
    assert not compare_with_qr(invoice, PRINT | {"number": "37820767"})
    assert invoice.conflicts == []
    assert [(p.code, p.severity, p.field) for p in invoice.problems
            if p.code.startswith("ocr")] == [("ocr-disagrees", "warning", "number")]


def test_two_identity_values_make_the_print_another_invoices():
    invoice = _invoice()
    assert compare_with_qr(invoice, PRINT | {"number": "04616346", "date": dt.date(2019, 7, 17)})
    assert {c.field for c in invoice.conflicts} == {"number", "date"}
    assert invoice.get("number") == "37820761"  # the QR's, in conflict
    assert [p.code for p in invoice.problems if p.severity == "error"] == ["ocr-other-invoice"]


def test_an_amount_the_print_confirms_is_a_conflict_a_misread_is_not():
    invoice = _invoice()
    assert not compare_with_qr(invoice, PRINT | {"amount": Decimal("37990.51")})  # sum fails: a smudge
    assert invoice.conflicts == []
    forged = _invoice()
    forged.fields["amount"] = type(forged.fields["amount"])(Decimal("47990.57"), "qr")
    assert not compare_with_qr(forged, PRINT)
    assert [(c.field, c.values["ocr"]) for c in forged.conflicts] == [("amount", Decimal("37990.57"))]


def test_money_is_confirmed_only_by_its_sum_and_its_words():
    assert money_confirmed_by_print(PRINT) == {"amount", "tax", "total"}
    assert money_confirmed_by_print(PRINT | {"total_in_words": "肆万零贰佰柒拾壹圆整"}) == frozenset()
    assert money_confirmed_by_print(PRINT | {"tax": Decimal("2279.48")}) == frozenset()
    assert money_confirmed_by_print({k: v for k, v in PRINT.items() if k != "total_in_words"}) == frozenset()
