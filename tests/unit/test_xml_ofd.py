"""XML and OFD readers on small files built here: fields, fallbacks, and hostile input."""

from __future__ import annotations

import base64
import io
import zipfile
from decimal import Decimal

import pytest
import segno

from agent.errors import ExtractError
from agent.extract import extract_bytes
from agent.extract.ofd import read_ofd
from agent.extract.xml import parse_money, parse_rate, read_xml

FP = "http://www.edrm.org.cn/schema/e-invoice/2019"
QR_10 = "01,10,050001700111,12235358,10000.00,20200805,16630282980991510014,7257"

SHUDIAN_XML = """<?xml version="1.0" encoding="utf-8"?>
<EInvoice>
  <Header><EIid>25317000002856389003</EIid>
    <InherentLabel>
      <EInvoiceType><LabelCode>01</LabelCode><LabelName>电子发票</LabelName></EInvoiceType>
      <GeneralOrSpecialVAT><LabelCode>02</LabelCode><LabelName>普通发票</LabelName></GeneralOrSpecialVAT>
    </InherentLabel>
  </Header>
  <EInvoiceData>
    <SellerInformation><SellerIdNum>91310000MA1FL0000X</SellerIdNum><SellerName>上海某某科技有限公司</SellerName></SellerInformation>
    <BuyerInformation><BuyerIdNum></BuyerIdNum><BuyerName>个人</BuyerName></BuyerInformation>
    <BasicInformation>
      <TotalAmWithoutTax>100.00</TotalAmWithoutTax><TotalTaxAm>13.00</TotalTaxAm>
      <TotalTax-includedAmount>113.00</TotalTax-includedAmount>
      <TotalTax-includedAmountInChinese>壹佰壹拾叁元整</TotalTax-includedAmountInChinese>
    </BasicInformation>
    <IssuItemInformation><ItemName>*软件*授权</ItemName><Quantity>2</Quantity><UnPrice>50</UnPrice>
      <Amount>100.00</Amount><TaxRate>0.13</TaxRate><ComTaxAm>13.000000</ComTaxAm></IssuItemInformation>
  </EInvoiceData>
  <TaxSupervisionInfo><InvoiceNumber>25317000002856389003</InvoiceNumber><IssueTime>2025-11-08 09:10:11</IssueTime></TaxSupervisionInfo>
</EInvoice>""".encode()


def fp_xml(graph_code: str = QR_10, tax: str = "600.00", rate: str = "6%") -> bytes:
    return f"""<?xml version="1.0" encoding="utf-8"?>
<eInvoice xmlns:fp="{FP}" Version="1.0"><fp:InvoiceCode>050001700111</fp:InvoiceCode>
<fp:InvoiceNo>12235358</fp:InvoiceNo><fp:IssueDate>2020年08月05日</fp:IssueDate>
<fp:InvoiceCheckCode>16630282980991510014</fp:InvoiceCheckCode>
<fp:Buyer><fp:BuyerName>个人</fp:BuyerName><fp:BuyerTaxID> </fp:BuyerTaxID></fp:Buyer>
<fp:Seller><fp:SellerName>财天下科技有限公司</fp:SellerName><fp:SellerTaxID>91500102563638729E</fp:SellerTaxID></fp:Seller>
<fp:TaxInclusiveTotalAmount>10600.00</fp:TaxInclusiveTotalAmount><fp:TaxTotalAmount>{tax}</fp:TaxTotalAmount>
<fp:TaxExclusiveTotalAmount>10000.00</fp:TaxExclusiveTotalAmount><fp:GraphCode>{graph_code}</fp:GraphCode>
<fp:GoodsInfos><fp:GoodsInfo><fp:Item>*餐饮服务*餐费</fp:Item><fp:Amount>10000.00</fp:Amount>
<fp:TaxScheme>{rate}</fp:TaxScheme><fp:TaxAmount>{tax}</fp:TaxAmount></fp:GoodsInfo></fp:GoodsInfos></eInvoice>""".encode()


def test_shudian_xml_fields_items_and_kind_from_labels():
    inv = read_xml(SHUDIAN_XML)
    d = inv.to_dict()
    assert d["number"] == "25317000002856389003" and d["date"] == "2025-11-08"
    assert (d["amount"], d["tax"], d["total"]) == ("100.00", "13.00", "113.00")
    assert d["total_in_words"] == "壹佰壹拾叁元整"
    assert d["seller_tax_id"] == "91310000MA1FL0000X" and d["buyer_name"] == "个人"
    assert d["buyer_tax_id"] is None  # empty element gives nothing, not ""
    assert d["kind"] == "32"  # 电子发票 + 普通发票
    assert set(d["sources"].values()) == {"xml"}
    [item] = inv.items
    assert (item.rate, item.rate_text, item.tax, item.quantity) == (Decimal("0.13"), "13%", Decimal("13.00"), 2)


def test_fp_xml_fields_and_graphcode_as_qr():
    inv = read_xml(fp_xml())
    d = inv.to_dict()
    assert (d["code"], d["number"], d["date"]) == ("050001700111", "12235358", "2020-08-05")
    assert d["check_code"] == "16630282980991510014"
    assert (d["amount"], d["tax"], d["total"]) == ("10000.00", "600.00", "10600.00")
    assert d["buyer_tax_id"] is None
    assert d["qr"] == QR_10 and d["sources"]["qr"] == "qr" and d["kind"] == "10"
    assert inv.conflicts == [] and inv.problems == []


def test_fp_xml_tax_exempt_stars_mean_no_tax():
    inv = read_xml(fp_xml(tax="***", rate="免税"))
    assert inv.get("tax") is None
    assert inv.problems == []
    [item] = inv.items
    assert item.rate is None and item.rate_text == "免税" and item.tax is None


def test_fp_xml_graphcode_holding_a_base64_png_is_decoded():
    buf = io.BytesIO()
    segno.make(QR_10, error="m").save(buf, kind="png", scale=4)
    inv = read_xml(fp_xml(graph_code=base64.b64encode(buf.getvalue()).decode()))
    assert inv.get("qr") == QR_10


def test_fp_xml_unreadable_graphcode_is_a_warning():
    inv = read_xml(fp_xml(graph_code="A" * 200))
    assert inv.get("qr") is None
    assert [p.code for p in inv.problems] == ["qr-unreadable"]


def test_qr_disagreeing_with_xml_is_kept_as_a_conflict():
    tampered = QR_10.replace("10000.00", "10001.00")
    inv = read_xml(fp_xml(graph_code=tampered))
    assert [(c.field, c.values) for c in inv.conflicts] == [
        ("amount", {"xml": Decimal("10000.00"), "qr": Decimal("10001.00")})]
    assert "qr-crc" in [p.code for p in inv.problems]


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE EInvoice [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<EInvoice><TaxSupervisionInfo><InvoiceNumber>&xxe;</InvoiceNumber></TaxSupervisionInfo></EInvoice>"""
BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<EInvoice>&lol3;</EInvoice>"""
EXTERNAL_DTD = b"""<?xml version="1.0"?><!DOCTYPE EInvoice SYSTEM "http://127.0.0.1:9/x.dtd"><EInvoice/>"""
PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY % p SYSTEM "http://127.0.0.1:9/p.dtd"> %p;]><EInvoice/>"""


@pytest.mark.parametrize("data", [XXE, BILLION_LAUGHS, EXTERNAL_DTD, PARAMETER_ENTITY],
                         ids=["xxe", "billion-laughs", "external-dtd", "parameter-entity"])
def test_xml_with_dtd_or_entities_is_refused(data):
    with pytest.raises(ExtractError) as e:
        read_xml(data)
    assert e.value.reason == "unsafe-xml"
    with pytest.raises(ExtractError) as e:
        extract_bytes(data, name="evil.xml")
    assert e.value.reason == "unsafe-xml"


def test_malformed_and_foreign_xml():
    with pytest.raises(ExtractError) as e:
        extract_bytes(b"<?xml version='1.0'?><EInvoice><Header></EInvoice>")
    assert e.value.reason == "corrupt"
    with pytest.raises(ExtractError) as e:
        extract_bytes(b"<?xml version='1.0'?><rss><channel/></rss>")
    assert e.value.reason == "unsupported-format"


@pytest.mark.parametrize("text,expected", [
    ("¥1,234.50", Decimal("1234.50")), ("57", Decimal("57.00")), ("0.120000", Decimal("0.12")),
    ("4197.16981132075", Decimal("4197.16981132075")), ("***", None), ("", None), ("abc", None),
    ("NaN", None), ("1e999999", None),
])
def test_parse_money(text, expected):
    assert parse_money(text) == expected


def test_parse_rate():
    assert parse_rate("0.060000") == (Decimal("0.06"), "6%")
    assert parse_rate("1.5%") == (Decimal("0.015"), "1.5%")
    assert parse_rate("不征税") == (None, "不征税")


# --- OFD -------------------------------------------------------------------

OFD_NS = "http://www.ofdspec.org/2016"
MALFORMED_TAG = (b'<?xml version="1.0" encoding="UTF-8"?>\n<:eInvoice xmlns:="">'
                 b'<InvoiceNo><ofd:ObjectRef PageRef="1">70</ofd:ObjectRef></InvoiceNo>'
                 b'<Buyer><BuyerName><ofd:ObjectRef PageRef="1">65</ofd:ObjectRef></BuyerName></Buyer>'
                 b'<TaxInclusiveTotalAmount><ofd:ObjectRef PageRef="1">82</ofd:ObjectRef>'
                 b'<ofd:ObjectRef PageRef="1">83</ofd:ObjectRef></TaxInclusiveTotalAmount></:eInvoice>')


def _text_objects(texts: dict[str, str]) -> str:
    return "".join(f'<ofd:TextObject ID="{i}" Boundary="0 0 10 5"><ofd:TextCode X="0" Y="1">{t}'
                   f"</ofd:TextCode></ofd:TextObject>" for i, t in texts.items())


def make_ofd(custom_datas: dict[str, str] | None = None, tag: bytes | None = MALFORMED_TAG,
             page_texts: dict[str, str] | None = None, attachment: bytes | None = None,
             extra: dict[str, bytes] | None = None,
             template_texts: dict[str, str] | None = None) -> bytes:
    customs = "".join(f'<ofd:CustomData Name="{k}">{v}</ofd:CustomData>' for k, v in (custom_datas or {}).items())
    ofd_xml = (f'<?xml version="1.0" encoding="UTF-8"?><ofd:OFD xmlns:ofd="{OFD_NS}" DocType="OFD" Version="1.1">'
               f"<ofd:DocBody><ofd:DocInfo><ofd:DocID>x</ofd:DocID><ofd:CustomDatas>{customs}</ofd:CustomDatas>"
               f"</ofd:DocInfo><ofd:DocRoot>Doc_0/Document.xml</ofd:DocRoot></ofd:DocBody></ofd:OFD>")
    document = (f'<?xml version="1.0" encoding="UTF-8"?><ofd:Document xmlns:ofd="{OFD_NS}"><ofd:CommonData>'
                f'<ofd:TemplatePage ID="2" BaseLoc="Tpls/Tpl_0/Content.xml"/></ofd:CommonData>'
                f'<ofd:Pages><ofd:Page ID="1" BaseLoc="Pages/Page_0/Content.xml"/></ofd:Pages>'
                f"<ofd:Attachments>Attachs/Attachments.xml</ofd:Attachments>"
                f"<ofd:CustomTags>Tags/CustomTags.xml</ofd:CustomTags></ofd:Document>")
    texts = page_texts if page_texts is not None else {
        "62": "浙江增值税电子普通发票", "65": "江苏京利华新材料有限公司", "70": "83089647",
        "81": "伍佰贰拾陆圆整", "82": "¥", "83": "526.00"}
    page = (f'<?xml version="1.0" encoding="UTF-8"?><ofd:Page xmlns:ofd="{OFD_NS}"><ofd:Template TemplateID="2"/>'
            f'<ofd:Content><ofd:Layer ID="60">{_text_objects(texts)}</ofd:Layer></ofd:Content></ofd:Page>')
    labels = template_texts if template_texts is not None else {"30": "发票代码：", "31": "发票号码："}
    template = (f'<?xml version="1.0" encoding="UTF-8"?><ofd:Page xmlns:ofd="{OFD_NS}"><ofd:Content>'
                f'<ofd:Layer ID="3">{_text_objects(labels)}</ofd:Layer>'
                f"</ofd:Content></ofd:Page>")
    members = {"OFD.xml": ofd_xml.encode(), "Doc_0/Document.xml": document.encode(),
               "Doc_0/Pages/Page_0/Content.xml": page.encode(), "Doc_0/Tpls/Tpl_0/Content.xml": template.encode()}
    if tag is not None:
        members["Doc_0/Tags/CustomTags.xml"] = (
            f'<?xml version="1.0"?><ofd:CustomTags xmlns:ofd="{OFD_NS}"><ofd:CustomTag TypeID="">'
            f"<ofd:FileLoc>CustomTag.xml</ofd:FileLoc></ofd:CustomTag></ofd:CustomTags>").encode()
        members["Doc_0/Tags/CustomTag.xml"] = tag
    if attachment is not None:
        members["Doc_0/Attachs/Attachments.xml"] = (
            f'<?xml version="1.0"?><ofd:Attachments xmlns:ofd="{OFD_NS}"><ofd:Attachment ID="9" Name="original_invoice">'
            f"<ofd:FileLoc>original_invoice.xml</ofd:FileLoc></ofd:Attachment></ofd:Attachments>").encode()
        members["Doc_0/Attachs/original_invoice.xml"] = attachment
    members.update(extra or {})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_malformed_tag_xml_is_read_by_the_regex_fallback():
    [inv] = read_ofd(make_ofd())
    d = inv.to_dict()
    assert d["number"] == "83089647" and d["sources"]["number"] == "ofd"
    assert d["buyer_name"] == "江苏京利华新材料有限公司"
    assert d["total"] == "526.00"  # "¥" and "526.00" are two TextObjects joined
    assert d["title"] == "浙江增值税电子普通发票" and d["total_in_words"] == "伍佰贰拾陆圆整"


def test_well_formed_namespaced_tags_read_the_same():
    tag = (f'<?xml version="1.0"?><ofd:root xmlns:ofd="{OFD_NS}"><ofd:InvoiceNo>'
           f'<ofd:ObjectRef PageRef="1">70</ofd:ObjectRef></ofd:InvoiceNo><ofd:Buyer><ofd:BuyerName>'
           f'<ofd:ObjectRef PageRef="1">65</ofd:ObjectRef></ofd:BuyerName></ofd:Buyer></ofd:root>').encode()
    [inv] = read_ofd(make_ofd(tag=tag))
    assert (inv.get("number"), inv.get("buyer_name")) == ("83089647", "江苏京利华新材料有限公司")


def test_custom_datas_come_first_and_spaced_check_code_is_joined():
    [inv] = read_ofd(make_ofd(custom_datas={"发票号码": "83089647", "校验码": "16197 83356 74145 07415",
                                            "开票日期": "2020年07月23日", "合计金额": "510.68"}))
    assert inv.get("check_code") == "16197833567414507415"
    assert inv.to_dict()["date"] == "2020-07-23" and inv.to_dict()["amount"] == "510.68"
    assert inv.problems == [] and inv.conflicts == []


def test_ofd_disagreeing_with_itself_leaves_the_field_empty_with_an_error():
    # CustomData 83089648 against the tagged text 83089647: the first is
    # no truer than the second (attack 13: it was stored with a warning).
    [inv] = read_ofd(make_ofd(custom_datas={"发票号码": "83089648"}))
    assert inv.get("number") is None
    assert [(p.code, p.severity) for p in inv.problems if p.field == "number"] == [("ofd-inconsistent", "error")]


def test_attachment_and_graphcode_give_xml_and_qr_sources():
    [inv] = read_ofd(make_ofd(tag=None, page_texts={}, attachment=fp_xml()))
    d = inv.to_dict()
    assert d["sources"]["code"] == "xml" and d["sources"]["qr"] == "qr" and d["qr"] == QR_10
    assert d["tax"] == "600.00" and d["items"][0]["rate_text"] == "6%"


def test_qr_png_in_the_package_is_decoded_when_no_xml_gives_it():
    qr = "01,31,,24112000000048542163,4449.00,20240528,,B2B6"
    buf = io.BytesIO()
    segno.make(qr, error="m").save(buf, kind="png", scale=4)
    [inv] = read_ofd(make_ofd(extra={"Doc_0/Res/image_1.png": buf.getvalue()}))
    assert inv.get("qr") == qr and inv.get("kind") == "31"


def test_ofd_attachment_with_entities_is_refused():
    with pytest.raises(ExtractError) as e:
        read_ofd(make_ofd(attachment=XXE))
    assert e.value.reason == "unsafe-xml"


def test_ofd_without_invoice_data_is_not_an_invoice():
    [inv] = read_ofd(make_ofd(tag=None, page_texts={"1": "会议纪要"}, template_texts={"2": "第一季度"}))
    assert not inv.is_invoice and "no invoice data" in inv.not_invoice_reason


def test_ofd_with_invoice_labels_but_no_data_stays_an_invoice_for_validation_to_judge():
    [inv] = read_ofd(make_ofd(tag=None, page_texts={}))
    assert inv.is_invoice and inv.get("number") is None


def test_ofd_zip_bomb_is_refused():
    bomb = make_ofd(extra={"Doc_0/Res/padding.xml": b" " * (8 * 1024 * 1024)})
    assert len(bomb) < 64 * 1024
    with pytest.raises(ExtractError) as e:
        extract_bytes(bomb, name="bomb.ofd")
    assert e.value.reason == "limit-exceeded"


def test_truncated_or_hollow_ofd_is_corrupt():
    good = make_ofd()
    with pytest.raises(ExtractError) as e:
        extract_bytes(good[: len(good) // 2])
    assert e.value.reason == "corrupt"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("OFD.xml", b"<ofd:OFD xmlns:ofd='x'><ofd:DocBody></ofd:OFD>")
    with pytest.raises(ExtractError) as e:
        extract_bytes(buf.getvalue())
    assert e.value.reason == "corrupt"


@pytest.mark.parametrize("data,reason", [
    (b"", "empty"), (b"\x00garbage", "unsupported-format"),
])
def test_extract_bytes_refuses_what_it_cannot_read(data, reason):
    with pytest.raises(ExtractError) as e:
        extract_bytes(data)
    assert e.value.reason == reason


def test_plain_zip_is_unsupported():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.pdf", b"%PDF-1.4")
    with pytest.raises(ExtractError) as e:
        extract_bytes(buf.getvalue())
    assert e.value.reason == "unsupported-format"


def test_an_unknown_xml_encoding_is_named_not_called_corrupt():
    with pytest.raises(ExtractError) as e:
        read_xml(b'<?xml version="1.0" encoding="UTX-8"?><EInvoice/>')
    assert e.value.reason == "unsupported-format" and "'UTX-8'" in str(e.value)


def _mutate(rng, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        i = rng.randrange(len(b)) if b else 0
        op = rng.random()
        if op < 0.4 and b:
            b[i] = rng.randrange(256)
        elif op < 0.7:
            del b[i:i + rng.randint(1, 40)]
        else:
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 12)))
    return bytes(b)


def test_damaged_ofd_parts_never_escape_as_anything_but_extract_error():
    # Damage the XML parts inside a well-formed zip, so the OFD reader's own
    # parsing (not just the zip layer) meets broken input. Seeded: repeatable.
    import random
    rng = random.Random(20240531)
    src = zipfile.ZipFile(io.BytesIO(make_ofd(custom_datas={"发票号码": "83089647"}, attachment=fp_xml())))
    parts = {n: src.read(n) for n in src.namelist()}
    outcomes = set()
    for _ in range(300):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for name, data in parts.items():
                zf.writestr(name, _mutate(rng, data) if rng.random() < 0.4 else data)
        try:
            invoices = read_ofd(buf.getvalue())  # not extract_bytes: it would mask a reader bug
            outcomes.add("read" if invoices[0].is_invoice else "not-invoice")
        except ExtractError as e:
            outcomes.add(e.reason)
    assert "read" in outcomes and "corrupt" in outcomes


def test_extract_path_refuses_what_is_not_a_readable_regular_file(tmp_path):
    import os

    from agent.extract import extract_path
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for path in (tmp_path / "missing.pdf", tmp_path, fifo):
        with pytest.raises(ExtractError) as e:
            extract_path(path)
        assert e.value.reason == "unreadable", path


@pytest.mark.parametrize("mark", ["ⓧ ", "ⓧ", "⊗ ", "\n  ⊗"])
def test_the_mark_printed_before_the_words_total_is_not_part_of_it(mark):
    # nuonuo OFDs print "ⓧ 肆佰伍拾陆圆整" as one TextCode.
    texts = {"62": "电子发票（普通发票）", "70": "83089647", "81": f"{mark}肆佰伍拾陆圆整"}
    [inv] = read_ofd(make_ofd(page_texts=texts))
    assert inv.get("total_in_words") == "肆佰伍拾陆圆整"


def test_an_ofd_without_title_text_takes_the_title_its_qr_implies():
    qr = "01,32,,26427000000173034809,59.00,2026-01-22,,"
    buf = io.BytesIO()
    segno.make(qr, error="m").save(buf, kind="png", scale=4)
    [inv] = read_ofd(make_ofd(tag=None, page_texts={}, extra={"Doc_0/Res/image_1.png": buf.getvalue()}))
    assert (inv.get("title"), inv.to_dict()["sources"]["title"]) == ("电子发票（普通发票）", "qr")


def test_an_impossible_issue_date_in_xml_is_named_not_called_missing():
    inv = read_xml(SHUDIAN_XML.replace(b"2025-11-08 09:10:11", b"2025-02-30 09:10:11"))
    assert inv.get("date") is None
    assert [p.message for p in inv.problems if p.code == "date-impossible"] == [
        "开票日期 '2025-02-30' is not a real date; left empty for 补录"]
