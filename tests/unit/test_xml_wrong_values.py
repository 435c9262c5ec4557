"""XML an attacker shaped so that a reader would store a value the invoice
does not carry: each is left empty with an error instead (a wrong value is
worse than an empty one). Built from the real 数电 XML sample."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from agent.extract import extract_bytes
from agent.model import Invoice
from agent.validate import ValidationSettings, has_errors, validate
from agent.validate.uscc import check_char
from tests.conftest import SAMPLES

TODAY = dt.date(2026, 11, 29)


def _sample() -> str:
    text = (SAMPLES / "kaihu8766-netizen__invoice-precheck" / "official-gd-special.xml").read_text(encoding="utf-8")
    # The sample's tax ids fail their check digit on purpose; these pass, so
    # an invoice read right is valid and an error below is the attack's.
    for bad, head in (("91440000000000000X", "91440000000000000"), ("91440000000000001Y", "91440000000000001")):
        text = text.replace(bad, head + check_char(head))
    return text


def _judged(text: str) -> tuple[Invoice, list]:
    [inv] = extract_bytes(text.encode("utf-8"))
    return inv, validate(inv, ValidationSettings(max_age_days=100_000), today=TODAY)


def test_the_untouched_sample_is_a_valid_special_invoice():
    inv, problems = _judged(_sample())
    assert (inv.get("kind"), inv.get("date"), inv.get("total")) == ("31", dt.date(2023, 2, 23), Decimal("2.12"))
    assert problems == []


@pytest.mark.parametrize("first, second", [("普通发票", "增值税专用发票"), ("增值税专用发票", "普通发票")])
def test_two_type_labels_naming_different_types_give_no_kind(first, second):
    # The first label was taken: a 普票 with a second label saying 专用 (or
    # the other way round) read as whichever came first, and valid.
    text = _sample().replace(
        "<GeneralOrSpecialVAT>",
        f"<GeneralOrSpecialVAT><LabelCode>0</LabelCode><LabelName>{first}</LabelName></GeneralOrSpecialVAT>"
        "<GeneralOrSpecialVAT>", 1).replace("<LabelName>增值税专用发票</LabelName>\n",
                                            f"<LabelName>{second}</LabelName>\n", 1)
    inv, problems = _judged(text)
    assert inv.get("kind") is None
    assert [(p.code, p.field) for p in problems if p.severity == "error"] == [("xml-conflicting-elements", "kind")]


def test_two_type_labels_saying_the_same_read_as_one():
    text = _sample().replace(
        "<GeneralOrSpecialVAT>",
        "<GeneralOrSpecialVAT><LabelCode>01</LabelCode><LabelName>增值税专用发票</LabelName></GeneralOrSpecialVAT>"
        "<GeneralOrSpecialVAT>", 1)
    inv, problems = _judged(text)
    assert inv.get("kind") == "31" and problems == []


@pytest.mark.parametrize("written", ["2023-02-230 10:08:05", "12023-02-23 10:08:05", "2023-022-23", "2023年02月231日"])
def test_a_date_with_a_digit_glued_on_is_not_read_as_the_date_inside_it(written):
    # `search` found 2023-02-23 inside "2023-02-230": another day than the
    # text says was stored, and the invoice was valid.
    inv, problems = _judged(_sample().replace("2023-02-23 10:08:05", written))
    assert inv.get("date") is None
    assert [p.code for p in problems if p.field == "date"] == ["date-impossible"]


@pytest.mark.parametrize("written", ["2023-02-23 10:08:05", "2023年2月23日", "2023/02/23", "20230223",
                                     " 2023-02-23T10:08:05 "])
def test_dates_as_issuers_write_them_still_read(written):
    inv, _ = _judged(_sample().replace("2023-02-23 10:08:05", written))
    assert inv.get("date") == dt.date(2023, 2, 23)


def test_amounts_with_a_part_of_a_fen_are_left_empty_not_rounded():
    # 2.004 + 0.121 = 2.125, all agreeing: stored to two places as 2.00,
    # 0.12 and 2.12 (half-even), an invoice for an amount it does not say.
    text = (_sample().replace("<TotalAmWithoutTax>2.00", "<TotalAmWithoutTax>2.004")
            .replace("<TotalTaxAm>0.12", "<TotalTaxAm>0.121")
            .replace("<TotalTax-includedAmount>2.12", "<TotalTax-includedAmount>2.125")
            .replace("<TotalTax-includedAmountInChinese>贰圆壹角贰分</TotalTax-includedAmountInChinese>", "")
            .replace("<Amount>2.00</Amount>", "<Amount>2.004</Amount>")
            .replace("<ComTaxAm>0.120000", "<ComTaxAm>0.121"))
    inv, problems = _judged(text)
    assert (inv.get("amount"), inv.get("tax"), inv.get("total")) == (None, None, None)
    assert sorted(p.field for p in problems if p.code == "amount-sub-cent") == ["amount", "tax", "total"]
    assert has_errors(problems)
    # Said in Chinese as the invoice names the field, for whoever fills in 补录.
    zh = {p.field: p.message_zh for p in problems if p.code == "amount-sub-cent"}
    assert zh["total"].startswith("价税合计 2.125 ") and zh["tax"].startswith("税额 0.121 ")
    assert not any("total" in m or "tax" in m or "amount" in m for m in zh.values())
    # What the ledger keeps says so too: no rounded amount comes back.
    again = Invoice.from_dict(inv.to_dict())
    assert again.get("total") is None


def test_trailing_zeros_past_the_fen_are_whole_fen():
    text = _sample().replace("<TotalTax-includedAmount>2.12", "<TotalTax-includedAmount>2.120000")
    inv, problems = _judged(text)
    assert inv.get("total") == Decimal("2.12") and problems == []
