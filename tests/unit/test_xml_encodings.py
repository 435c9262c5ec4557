"""Invoice XML in the encodings Chinese issuers use, and amounts with commas
(outside review A, findings 11 and 12).

An XML declared GBK, GB2312 or GB18030 (or an OFD part so declared) reads
exactly as its UTF-8 original; an encoding that cannot be decoded is refused
with a reason naming it, never "corrupt". A comma in an amount is read only
as thousands grouping: anything else leaves the field empty with a warning
naming the raw text, never a guessed value.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from agent.errors import ExtractError
from agent.extract import extract_bytes
from agent.extract.ofd import read_ofd
from agent.extract.xml import parse_money, read_xml
from agent.extract.xml_parse import MAX_XML_BYTES, xml_text
from tests.support.zips import rezip

SHUDIAN = "kaihu8766-netizen__invoice-precheck/official-gd-special.xml"
FP = "renoyuan__easyofd/original_invoice.xml"
OFD = "CoderWanFeng__poocr/suzhou.ofd"
PAGE = "Doc_0/Pages/Page_0/Content.xml"
FIELDS = ["number", "date", "kind", "amount", "tax", "total", "total_in_words", "buyer_name", "buyer_tax_id",
          "seller_name", "seller_tax_id"]


@pytest.fixture(scope="module")
def shudian(samples_dir: Path) -> str:
    text = (samples_dir / SHUDIAN).read_text(encoding="utf-8")
    assert 'encoding="utf-8"' in text
    return text


def _declared(text: str, encoding: str) -> str:
    return text.replace('encoding="utf-8"', f'encoding="{encoding}"', 1)


def _fields(inv) -> dict:
    d = inv.to_dict()
    return {f: d[f] for f in FIELDS}


# --- the GB family ----------------------------------------------------------

@pytest.mark.parametrize("declared,codec", [
    ("GBK", "gbk"), ("gbk", "gbk"), ("GB2312", "gb2312"), ("GB2312", "gb18030"), ("GB18030", "gb18030"),
    ("cp936", "gbk"), ("UTF-8", "utf-8"), ("ISO-8859-1", "latin-1"),
])
def test_a_declared_gb_encoding_reads_as_the_utf8_original(shudian, declared, codec):
    original = read_xml(shudian.encode("utf-8"))
    # What the codec lacks (Chinese in Latin-1, the comment's — in strict
    # GB2312) is written as a character reference, as XML allows.
    data = _declared(shudian, declared).encode(codec, "xmlcharrefreplace")
    if codec != "latin-1":
        assert "示例制造集团有限公司".encode(codec) in data
    inv = read_xml(data)
    assert _fields(inv) == _fields(original)
    assert inv.get("seller_name") == "示例制造集团有限公司" and inv.get("total") == Decimal("2.12")


def test_a_byte_order_mark_wins_over_the_declaration(shudian):
    original = _fields(read_xml(shudian.encode("utf-8")))
    gbk_declared = _declared(shudian, "GBK")
    assert _fields(read_xml(b"\xef\xbb\xbf" + gbk_declared.encode("utf-8"))) == original
    assert _fields(read_xml(gbk_declared.encode("utf-16"))) == original  # UTF-16 with its mark
    assert _fields(read_xml(_declared(shudian, "UTF-16").encode("utf-16-le"))) == original  # no mark


@pytest.mark.parametrize("declared", ["ISO-8859-1", "GBK"])
def test_a_second_byte_order_mark_still_lets_the_first_win(shudian, declared):
    # Saved twice with a mark: the second U+FEFF hid the declaration from the
    # rewrite, and expat read the UTF-8 names as Latin-1 (outside attack).
    original = _fields(read_xml(shudian.encode("utf-8")))
    twice = b"\xef\xbb\xbf\xef\xbb\xbf" + _declared(shudian, declared).encode("utf-8")
    assert _fields(read_xml(twice)) == original
    assert read_xml(twice).get("seller_name") == "示例制造集团有限公司"


def test_gb2312_labelled_text_written_in_gbk_reads_whole():
    # Issuers label GBK text GB2312: 镕 is not in GB2312, and its middle dot
    # is the U+00B7 a UTF-8 invoice prints in a foreign name.
    name = "朱镕基·约翰贸易有限公司"
    data = (f'<?xml version="1.0" encoding="GB2312"?><EInvoice><SellerInformation><SellerName>{name}'
            f"</SellerName></SellerInformation></EInvoice>").encode("gbk")
    assert read_xml(data).get("seller_name") == name


def test_a_gbk_declared_xml_is_still_refused_for_a_dtd_and_its_size():
    evil = ('<?xml version="1.0" encoding="GBK"?><!DOCTYPE EInvoice [<!ENTITY x "发票">]>'
            "<EInvoice><SellerName>&x;</SellerName></EInvoice>").encode("gbk")
    with pytest.raises(ExtractError) as e:
        read_xml(evil)
    assert e.value.reason == "unsafe-xml"
    huge = '<?xml version="1.0" encoding="GBK"?><EInvoice>'.encode() + "发".encode("gbk") * (MAX_XML_BYTES // 2)
    with pytest.raises(ExtractError) as e:
        read_xml(huge)
    assert e.value.reason == "limit-exceeded"


# --- encodings that cannot be decoded ----------------------------------------

@pytest.mark.parametrize("declared,body,says", [
    ("UTX-8", b"a", "'UTX-8', which is not a character set"),
    ("base64", b"a", "'base64', which is not a character set"),  # a bytes-to-bytes codec
    ("unicode_escape", b"\\u4e2d", "'unicode_escape', which is not a character set"),  # reads \u as a char
    ("UTF-16", b"a", "'UTF-16'"),  # declared over 8-bit bytes
    ("cp500", b"a", "'cp500' but is not written in it"),  # EBCDIC: the declaration itself does not read back
    ("GBK", b"\x81 ", "not valid 'GBK', the encoding it declares: bytes 81 at offset"),
    ("UTF-8", b"\xff", "not valid 'UTF-8', the encoding it declares: bytes ff at offset"),
])
def test_an_encoding_that_cannot_be_decoded_is_refused_by_name_not_as_corrupt(declared, body, says):
    data = (f'<?xml version="1.0" encoding="{declared}"?><EInvoice><SellerName>'.encode()
            + body + b"</SellerName></EInvoice>")
    for read in (read_xml, lambda d: extract_bytes(d, name="x.xml")):
        with pytest.raises(ExtractError) as e:
            read(data)
        assert e.value.reason == "unsupported-format" and says in e.value.message, e.value.message


def test_an_undeclared_xml_is_utf8_and_says_so_when_it_is_not():
    with pytest.raises(ExtractError) as e:
        xml_text(b"<EInvoice>\xd6\xd0</EInvoice>")  # 中 in GBK, no declaration
    assert e.value.reason == "unsupported-format"
    assert "not valid UTF-8 (no encoding is declared)" in e.value.message


# --- OFD parts in the GB family ----------------------------------------------

def _ofd(samples_dir: Path, change: dict[str, callable]) -> bytes:
    return rezip((samples_dir / OFD).read_bytes(), change)


def _regbk(declared: str):
    def change(data: bytes) -> bytes:
        text = data.decode("utf-8")
        assert 'encoding="UTF-8"' in text
        # ¥ (U+00A5) has no GB18030 two-byte form; the page prints ￥ then.
        return text.replace('encoding="UTF-8"', f'encoding="{declared}"', 1).replace("\xa5", "\uffe5").encode(
            "gb18030")
    return change


def test_an_ofd_with_a_gbk_ofd_xml_or_a_gb18030_page_reads_as_the_original(samples_dir):
    [original] = read_ofd((samples_dir / OFD).read_bytes())
    expected = _fields(original)
    assert expected["buyer_name"] == "苏州交投物产有限公司"
    [ofd_xml_gbk] = read_ofd(_ofd(samples_dir, {"OFD.xml": _regbk("GBK")}))
    assert _fields(ofd_xml_gbk) == expected
    [page_gb18030] = read_ofd(_ofd(samples_dir, {PAGE: _regbk("GB18030")}))
    assert _fields(page_gb18030) == expected
    assert not [p for p in page_gb18030.problems if p.severity == "error"]


def test_an_ofd_whose_ofd_xml_cannot_be_decoded_is_refused_by_name(samples_dir):
    data = _ofd(samples_dir, {"OFD.xml": lambda d: d.replace(b'encoding="UTF-8"', b'encoding="UTX-8"', 1)})
    with pytest.raises(ExtractError) as e:
        read_ofd(data)
    assert e.value.reason == "unsupported-format" and "'UTX-8'" in e.value.message


# --- commas in amounts -------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("1,234.50", Decimal("1234.50")), ("¥1,234,567.00", Decimal("1234567.00")), ("1,000", Decimal("1000.00")),
    ("-1,060.00", Decimal("-1060.00")), ("1，234.50", Decimal("1234.50")), ("25,254.62", Decimal("25254.62")),
    ("2,00", None), ("0,12", None), ("0,060", None), ("2,12", None), ("1,2345", None), ("12,34,567", None),
    ("1,234,56", None), (",123", None), ("123,", None), ("1.234,50", None), ("0,000", None),
])
def test_a_comma_is_read_only_as_thousands_grouping(text, expected):
    assert parse_money(text) == expected


def test_no_comma_is_grouping_in_a_document_that_writes_decimal_commas():
    assert parse_money("1,000", grouping=False) is None
    assert parse_money("1000.00", grouping=False) == Decimal("1000.00")


def _commas(shudian: str, amount: str, tax: str, total: str, item_price: str | None = None) -> bytes:
    text = (shudian.replace("<TotalAmWithoutTax>2.00<", f"<TotalAmWithoutTax>{amount}<")
            .replace("<TotalTaxAm>0.12<", f"<TotalTaxAm>{tax}<")
            .replace("<TotalTax-includedAmount>2.12<", f"<TotalTax-includedAmount>{total}<"))
    if item_price is not None:
        text = text.replace("<UnPrice>1</UnPrice>", f"<UnPrice>{item_price}</UnPrice>")
        text = text.replace("<Amount>2.00</Amount>", f"<Amount>{amount}</Amount>")
    assert text.count(amount) >= 1 and text != shudian
    return text.encode("utf-8")


def _unreadable(inv) -> dict[str, str]:
    return {p.field: p.message for p in inv.problems if p.code == "unreadable-amount"}


def test_decimal_comma_sums_leave_the_fields_empty_and_say_which_text(shudian):
    inv = read_xml(_commas(shudian, "2,00", "0,12", "2,12"))  # finding 11, X4: was 200 / 12 / 212
    assert (inv.get("amount"), inv.get("tax"), inv.get("total")) == (None, None, None)
    msgs = _unreadable(inv)
    assert set(msgs) == {"amount", "tax", "total"}
    assert "'2,00'" in msgs["amount"] and "'2,12'" in msgs["total"] and "thousands grouping" in msgs["amount"]


def test_good_grouping_is_not_trusted_where_the_same_xml_writes_a_decimal_comma(shudian):
    # Finding 11, X5: 2 x 0,5 = 1,000 is 1.000; read as grouping it was 1000,
    # and 1000 + 60 = 1060 added up to a VALID invoice of the wrong amount.
    inv = read_xml(_commas(shudian, "1,000", "0,060", "1,060", item_price="0,5"))
    assert (inv.get("amount"), inv.get("tax"), inv.get("total")) == (None, None, None)
    assert inv.items[0].amount is None
    msgs = _unreadable(inv)
    assert "'1,000'" in msgs["amount"] and "decimal comma" in msgs["amount"] and "'0,060'" in msgs["amount"]


def test_thousands_grouping_alone_still_reads(shudian, samples_dir):
    inv = read_xml(_commas(shudian, "1,002.00", "60.12", "1,062.12"))
    assert (inv.get("amount"), inv.get("tax"), inv.get("total")) == (
        Decimal("1002.00"), Decimal("60.12"), Decimal("1062.12"))
    assert _unreadable(inv) == {}
    fp = (samples_dir / FP).read_text(encoding="utf-8").replace(">25254.62<", ">25,254.62<")
    assert read_xml(fp.encode()).get("total") == Decimal("25254.62")


def test_an_fp_invoice_with_decimal_commas_leaves_its_sums_empty(samples_dir):
    fp = (samples_dir / FP).read_text(encoding="utf-8")
    fp = fp.replace(">25254.62<", ">25254,62<").replace("<fp:TaxTotalAmount>735.57<", "<fp:TaxTotalAmount>735,57<")
    inv = read_xml(fp.encode())
    assert inv.get("total") is None and inv.get("tax") is None
    assert inv.get("amount") == Decimal("24519.05")  # no comma: nothing to doubt
    assert "'25254,62'" in _unreadable(inv)["total"]


# --- the parser's two paths, its lookups, and trees no invoice has -----------------

def test_entities_without_a_dtd_are_refused_and_a_doctype_anywhere_goes_to_defusedxml():
    from agent.extract.xml_parse import parse_xml
    assert parse_xml(b"<a>&#x41;&amp;&lt;</a>").text == "A&<"
    with pytest.raises(ExtractError) as e:
        parse_xml(b"<a>&ext;</a>")  # no DTD: expat knows no such entity
    assert e.value.reason == "corrupt" and "undefined entity" in e.value.message
    with pytest.raises(ExtractError) as e:
        parse_xml(b'<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>')
    assert e.value.reason == "unsafe-xml"
    # The text "<!DOCTYPE" where it declares nothing is read, as before.
    assert parse_xml(b"<a><!-- <!DOCTYPE x> --><b>1</b></a>").find("b").text == "1"
    assert parse_xml(b"<a><![CDATA[<!DOCTYPE]]></a>").text == "<!DOCTYPE"


def test_long_tag_names_are_not_remembered_by_a_worker():
    from agent.extract import xml_parse
    before = xml_parse._local_name.cache_info().currsize
    tag = "x" * 1_000_000
    assert xml_parse.local_name("{urn:a}" + tag) == tag
    assert xml_parse._local_name.cache_info().currsize == before


def test_a_reader_asking_for_a_tag_it_did_not_declare_fails_loudly():
    from agent.extract.xml_parse import Tags, parse_xml
    tags = Tags(parse_xml(b"<r><A>1</A><B>2</B><A>3</A></r>"), frozenset({"A"}))
    assert [el.text for el in tags.named("A")] == ["1", "3"]
    with pytest.raises(LookupError):
        tags.named("B")  # would read as absent: a field silently empty


def test_out_of_memory_is_read_again_later_not_quarantined_as_corrupt(monkeypatch, shudian):
    import agent.extract.xml as xml_reader
    from agent.pipeline import RETRYABLE_REASONS, analyse

    def exhausted(root, source="xml"):
        raise MemoryError()
    monkeypatch.setattr(xml_reader, "read_shudian", exhausted)
    result = analyse(shudian.encode("utf-8"))
    assert result.error_reason in RETRYABLE_REASONS and "MemoryError" in result.error_message


def test_fields_or_items_nested_inside_one_another_are_refused_not_read(shudian):
    # Read whole, each nested element's text cost the square of the depth
    # (minutes at this depth, holding a worker until its timeout).
    deep = 20_000
    sole = ("<EInvoice><InvoiceNumber>1</InvoiceNumber>" + "<SellerName>x" * deep + "</SellerName>" * deep
            + "</EInvoice>").encode()
    items = ("<EInvoice>" + "<IssuItemInformation><Amount>1</Amount>" * deep + "</IssuItemInformation>" * deep
             + "</EInvoice>").encode()
    inv = read_xml(sole)
    assert inv.get("seller_name") is None and inv.get("number") == "1"
    assert [(p.code, p.field) for p in inv.problems] == [("xml-conflicting-elements", "seller_name")]
    inv = read_xml(items)
    assert inv.items == [] and [(p.code, p.field) for p in inv.problems] == [("xml-conflicting-elements", "items")]
    # A wrapper of the same name and text reads as before; differing texts conflict.
    wrapped = "<EInvoice><SellerName><SellerName>{}</SellerName></SellerName></EInvoice>"
    assert read_xml(wrapped.format("X").encode()).get("seller_name") == "X"
    inv = read_xml(wrapped.replace("<SellerName><SellerName>", "<SellerName>Y<SellerName>").format("X").encode())
    assert inv.get("seller_name") is None and inv.problems[0].code == "xml-conflicting-elements"
    # Side by side, every item is still read.
    original = read_xml(shudian.encode("utf-8"))
    assert original.items and not [p for p in original.problems if p.code == "xml-conflicting-elements"]


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_without_a_mark_is_taken_as_the_xml_it_is_not_refused_as_another_format(shudian, codec):
    # The reader took it; the format sniffer alone refused it, with the
    # wrong reason ("not a PDF, OFD, invoice XML or image").
    data = _declared(shudian, "UTF-16").encode(codec)
    assert _fields(extract_bytes(data)[0]) == _fields(read_xml(shudian.encode("utf-8")))


@pytest.mark.parametrize("text", ["2_0.00", "1_000.00", "2E0", "212E-2", "1e2", "Infinity", "0x10"])
def test_an_amount_decimal_reads_but_no_invoice_writes_is_unreadable(text):
    assert parse_money(text) is None
    assert parse_money("-20.00") == Decimal("-20.00") and parse_money("１２３.４５") == Decimal("123.45")


def test_a_moment_written_with_its_offset_is_dated_as_in_china():
    from agent.extract.xml import parse_date

    assert str(parse_date("2023-02-22T23:30:00-08:00")) == "2023-02-23"
    assert str(parse_date("2023-02-22T17:00:00Z")) == "2023-02-23"
    assert str(parse_date("2023-02-23T01:00:00+08:00")) == "2023-02-23"
    assert str(parse_date("2023-02-23 10:08:05")) == "2023-02-23"   # China's own time, as 数电 XML writes it
