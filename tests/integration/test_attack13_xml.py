"""Invoice XML built by a hostile or careless issuer (issue 13, attack 13):
an element repeated with another value, a whole party block twice, an
EIid that is not the InvoiceNumber, full-width digits in an id, a name
broken by a pretty-printer, an issue time that does not parse.

The first of two disagreeing elements is no truer than the second: the
field is left empty with an `xml-conflicting-elements` error, never
stored from whichever came first."""

from __future__ import annotations

import pytest

from agent.extract import extract_bytes
from tests.conftest import SAMPLES

SHUDIAN = SAMPLES / "kaihu8766-netizen__invoice-precheck" / "official-gd-special.xml"
FP = SAMPLES / "renoyuan__easyofd" / "original_invoice.xml"


def _read(text: str) -> dict:
    [invoice] = extract_bytes(text.encode(), ocr=False)
    return invoice.to_dict()


def _edit(path, old: str, new: str) -> str:
    text = path.read_bytes().decode()
    assert old in text, f"sample changed: {old!r} not in {path.name}"
    return text.replace(old, new, 1)


@pytest.mark.parametrize(("path", "old", "new", "field"), [
    (SHUDIAN, "<SellerName>示例制造集团有限公司</SellerName>",
     "<SellerName>示例制造集团有限公司</SellerName><SellerName>冒名顶替有限公司</SellerName>", "seller_name"),
    (SHUDIAN, "<SellerInformation>",
     "<SellerInformation><SellerIdNum>91110000000000000A</SellerIdNum><SellerName>冒名顶替有限公司</SellerName>"
     "</SellerInformation><SellerInformation>", "seller_tax_id"),
    (SHUDIAN, "<SellerIdNum>91440000000000000X</SellerIdNum>",
     "<BuyerInformation><BuyerName>假买方有限公司</BuyerName></BuyerInformation>"
     "<SellerIdNum>91440000000000000X</SellerIdNum>", "buyer_name"),
    (SHUDIAN, "<EIid>23440000000000100001</EIid>", "<EIid>23440000000000199999</EIid>", "number"),
    (SHUDIAN, "<TotalTax-includedAmount>2.12</TotalTax-includedAmount>",
     "<TotalTax-includedAmount>2.12</TotalTax-includedAmount><TotalTax-includedAmount>212.00"
     "</TotalTax-includedAmount>", "total"),
    (FP, "<fp:BuyerTaxID>91522701709696623X</fp:BuyerTaxID>",
     "<fp:BuyerTaxID>91522701709696623X</fp:BuyerTaxID><fp:BuyerTaxID>91110000000000000A</fp:BuyerTaxID>",
     "buyer_tax_id"),
    (FP, "<fp:TaxTotalAmount>735.57</fp:TaxTotalAmount>",
     "<fp:TaxTotalAmount>735.57</fp:TaxTotalAmount><fp:TaxTotalAmount>7355.70</fp:TaxTotalAmount>", "tax"),
])
def test_conflicting_elements_leave_the_field_empty_with_an_error(path, old, new, field):
    got = _read(_edit(path, old, new))
    assert got[field] is None, f"{field} stored {got[field]!r} from one of two disagreeing elements"
    assert any(p["code"] == "xml-conflicting-elements" and p["field"] == field and p["severity"] == "error"
               for p in got["problems"]), got["problems"]


def test_a_repeated_element_with_the_same_value_is_no_conflict():
    got = _read(_edit(SHUDIAN, "<SellerName>示例制造集团有限公司</SellerName>",
                      "<SellerName>示例制造集团有限公司</SellerName><SellerName> 示例制造集团有限公司 </SellerName>"))
    assert got["seller_name"] == "示例制造集团有限公司"
    assert not got["problems"]


def test_full_width_digits_in_an_id_are_the_same_id():
    # The key (and so duplicate detection) and validation work on ASCII
    # digits: ２３４４… stored as printed would be a second, different invoice.
    got = _read(_edit(SHUDIAN, "<InvoiceNumber>23440000000000100001</InvoiceNumber>",
                      "<InvoiceNumber>２３４４００００００００００１００００１</InvoiceNumber>"))
    assert got["number"] == "23440000000000100001"
    got = _read(_edit(FP, "<fp:SellerTaxID>92522726MA7GNHJ07M</fp:SellerTaxID>",
                      "<fp:SellerTaxID>９２５２２７２６ＭＡ７ＧＮＨＪ０７Ｍ</fp:SellerTaxID>"))
    assert got["seller_tax_id"] == "92522726MA7GNHJ07M"


def test_a_name_broken_by_a_pretty_printer_is_read_whole():
    got = _read(_edit(SHUDIAN, "<SellerName>示例制造集团有限公司</SellerName>",
                      "<SellerName>示例制造集团\n        有限公司</SellerName>"))
    assert got["seller_name"] == "示例制造集团有限公司"


def test_an_unreadable_issue_time_is_not_replaced_by_the_request_time():
    # RequestTime is when issuing was asked for, not the 开票日期: taking it
    # for an unreadable IssueTime stores a date nobody printed.
    got = _read(_edit(SHUDIAN, "<IssueTime>2023-02-23 10:08:05</IssueTime>",
                      "<IssueTime>2023-13-45 10:08:05</IssueTime>").replace(
                          "<RequestTime>2023-02-23</RequestTime>", "<RequestTime>2023-02-20</RequestTime>"))
    assert got["date"] is None
