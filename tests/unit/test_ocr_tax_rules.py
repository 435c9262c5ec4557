"""A 价税合计 OCR read under a QR that carries the 金额: the 税额 it implies
(价税合计 − the QR's 金额) must be a tax of that 金额 that something read
confirms. A forger changes the 小写 and its 大写 together, so the 大写 alone
confirms nothing (`agent/extract/ocr_tax.py`). Readings are built here, as
the engine gives them; the engine on forged scans of a real sample is in
tests/integration/test_ocr_forged_words.py."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest

from agent.extract.ocr import OcrReading, apply_reading
from agent.model import Invoice, LineItem

QR_AMOUNT = D("100.00")  # a 13 % invoice: 价税合计 113.00, 壹佰壹拾叁圆整


def under_qr(fields: dict, items=(), taxes_again=(), date=dt.date(2023, 4, 4), amount=QR_AMOUNT) -> Invoice:
    invoice = Invoice()
    for name, value in (("number", "45396125"), ("amount", amount), ("date", date)):
        invoice.offer(name, value, "qr")
    again = {"taxes_again": tuple(taxes_again)} if taxes_again else {}
    apply_reading(invoice, OcrReading(fields, list(items), **again))
    return invoice


def money(invoice: Invoice) -> list:
    return [invoice.get(n) for n in ("tax", "total", "total_in_words")]


def refused(invoice: Invoice) -> dict[str, str]:
    return {p.field: p.message_zh for p in invoice.problems if p.code == "ocr-unverified" and p.field == "total"}


FORGED = {"total": D("1130.00"), "total_in_words": "壹仟壹佰叁拾圆整"}  # 113.00 and its 大写, both altered


@pytest.mark.parametrize("tax", [None, D("13.00"), D("130.00"), D("1030.00")],
                         ids=["tax-unread", "tax-left", "tax-of-another-amount", "tax-altered-to-add-up"])
def test_a_forged_total_and_its_words_are_not_kept_when_the_tax_they_imply_is_none(tax):
    # 1130.00 − 100.00 = 1030.00: no rate gives that tax of 100.00, whatever the
    # paper prints as 税额 (unread; the real 13.00; 130.00, 13 % of 1000.00; or
    # 1030.00, altered so that 金额 + 税额 = 价税合计 holds).
    invoice = under_qr(FORGED | ({"tax": tax} if tax is not None else {}))
    assert money(invoice) == [None, None, None]
    assert invoice.get("amount") == QR_AMOUNT  # the QR's stays
    (why,) = refused(invoice).values()
    assert "1030.00" in why and "税率" in why
    message = next(p.message for p in invoice.problems if p.field == "total")
    assert "no tax of that 金额" in message and "补录" in message


def test_a_total_below_the_qr_amount_is_not_kept_one_equal_to_it_stays():
    invoice = under_qr({"total": D("90.00"), "total_in_words": "玖拾圆整"})
    assert money(invoice) == [None, None, None]
    assert "小于二维码金额" in refused(invoice)["total"]
    # An issuer who wrote the 价税合计 into the QR (代开): the QR's own number,
    # whatever the 税额 reads (`plausible` sorts out which field it is).
    same = under_qr({"total": D("103.00"), "tax": D("3.00"), "total_in_words": "壹佰零叁圆整"}, amount=D("103.00"))
    assert same.get("total") == D("103.00")


def test_a_total_at_a_valid_rate_stays_only_when_something_besides_its_words_confirms_it():
    words = {"total": D("113.00"), "total_in_words": "壹佰壹拾叁圆整"}
    # 13.00 is a tax of 100.00 at 13 %, but a 3 % invoice (103.00) made 113.00
    # implies it too: with the 税额 unread (or misread: 18.00 is a tax at no
    # rate) and no line read, only the 大写, which the forger wrote, says so.
    for fields in ({}, {"tax": D("18.00")}):
        invoice = under_qr(words | fields)
        assert money(invoice) == [None, None, None]
        assert "无其他识别内容可以确认" in refused(invoice)["total"]
    # The page's 税额 read right, or with its point lost (13.00's digits).
    for tax in (D("13.00"), D("1300.00")):
        kept = under_qr(words | {"tax": tax})
        assert kept.get("total") == D("113.00") and kept.get("total_in_words") == "壹佰壹拾叁圆整"
        assert refused(kept) == {}


def test_the_tax_read_twice_alike_confirms_or_denies_the_total():
    words = {"total": D("113.00"), "total_in_words": "壹佰壹拾叁圆整"}
    # The page pass read nothing (or 18.00); the closer look reads 13.00 twice.
    for fields in ({}, {"tax": D("18.00")}):
        kept = under_qr(words | fields, taxes_again=(D("13.00"), D("13.00")))
        assert kept.get("total") == D("113.00") and refused(kept) == {}
    # Once is not twice alike.
    assert under_qr(dict(words), taxes_again=(D("13.00"), None)).get("total") is None
    # The paper prints 3.00, a tax of 100.00 at 3 %: the 113.00 is another's.
    for again in ((), (D("3.00"), D("3.00")), (D("13.00"), None), (D("13.00"), D("3.00"))):
        denied = under_qr(words | {"tax": D("3.00")}, taxes_again=again)
        assert money(denied) == [None, None, None], again
        assert "印刷的税额 3.00" in refused(denied)["total"]
    # A page misread as 3.00 that the closer look reads 13.00 twice: a misread.
    misread = under_qr(words | {"tax": D("3.00")}, taxes_again=(D("13.00"), D("13.00")))
    assert misread.get("total") == D("113.00")


def line(rate_text: str | None, tax: D | None, amount: D = QR_AMOUNT) -> LineItem:
    rate = D(rate_text.rstrip("%")) / 100 if rate_text and rate_text.endswith("%") else None
    return LineItem("*电子元件*模块", amount=amount, tax=tax, rate=rate, rate_text=rate_text)


def test_the_lines_rates_and_taxes_confirm_or_deny_the_total():
    words = {"total": D("113.00"), "total_in_words": "壹佰壹拾叁圆整"}
    assert under_qr(dict(words), [line("13%", None)]).get("total") == D("113.00")
    assert under_qr(dict(words), [line(None, D("13.00"))]).get("total") == D("113.00")
    # The lines print 3 % (or a 税额 of 3.00): 113.00 is not this invoice's.
    for lines in ([line("3%", None)], [line(None, D("3.00"))], [line("3%", D("3.00"))]):
        denied = under_qr(dict(words), lines)
        assert money(denied) == [None, None, None] and denied.items == []
        assert refused(denied)
    # A misread line 税额 (13.80: no tax of 100.00) neither confirms nor denies.
    assert under_qr(words | {"tax": D("13.00")}, [line(None, D("13.80"))]).get("total") == D("113.00")


def test_lines_at_several_rates_and_a_margin_scheme_are_judged_by_their_lines():
    words = {"total": D("119.00"), "total_in_words": "壹佰壹拾玖圆整"}
    mixed = [line("13%", D("6.50"), D("50.00")), line("9%", D("4.50"), D("50.00"))]
    assert under_qr(words | {"tax": D("11.00")}, mixed).get("total") is None  # 11.00 ≠ 6.50 + 4.50
    blended = {"total": D("111.00"), "total_in_words": "壹佰壹拾壹圆整"}
    assert under_qr(blended | {"tax": D("11.00")}, mixed).get("total") == D("111.00")
    assert under_qr(dict(blended), mixed).get("total") == D("111.00")  # the lines alone
    # With the lines unread, a 税额 read alike may be any blend up to 13 %;
    # under one line at 6 % it must be 6 % of the 金额.
    assert under_qr(blended | {"tax": D("11.00")}).get("total") == D("111.00")
    assert under_qr(blended | {"tax": D("11.00")}, [line("6%", None)]).get("total") is None
    margin = [line("***", D("2.00"))]  # 差额征税: tax on part of the 金额
    assert under_qr({"total": D("102.00"), "tax": D("2.00")}, margin).get("total") == D("102.00")
    assert under_qr({"total": D("150.00"), "tax": D("50.00")}, margin).get("total") is None


def test_the_old_rates_hold_only_for_invoices_before_april_2019():
    old = {"total": D("117.00"), "tax": D("17.00"), "total_in_words": "壹佰壹拾柒圆整"}
    assert under_qr(dict(old), date=dt.date(2018, 3, 1)).get("total") == D("117.00")
    assert under_qr(dict(old), date=dt.date(2020, 3, 1)).get("total") is None
