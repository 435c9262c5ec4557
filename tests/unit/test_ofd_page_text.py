"""OFDs that carry their data only as page text or in other attachments
(issue 13, class 3): text objects without an ID, XBRL attachments."""

from __future__ import annotations

from decimal import Decimal

from agent.extract import extract_bytes
from agent.extract.ofd import read_ofd
from tests.unit.test_xml_ofd import OFD_NS, make_ofd


def _page(objects: list[tuple[float, float, str]], with_ids: bool) -> bytes:
    ids = [f' ID="{i + 1}"' if with_ids else "" for i in range(len(objects))]
    body = "".join(
        f'<ofd:TextObject{ids[i]} Boundary="{x} {y} 80 5" Size="3">'
        f'<ofd:TextCode X="0" Y="3">{t}</ofd:TextCode></ofd:TextObject>' for i, (x, y, t) in enumerate(objects))
    return (f'<?xml version="1.0" encoding="UTF-8"?><ofd:Page xmlns:ofd="{OFD_NS}"><ofd:Content>'
            f'<ofd:Layer ID="60">{body}</ofd:Layer></ofd:Content></ofd:Page>').encode()


# The labels of an invoice face whose values are drawn as paths (no text).
LABELS_ONLY = [(69, 8, "电子发票（普通发票）"), (155, 11.5, "发票号码："), (155, 17.5, "开票日期："),
               (17, 99, "价税合计（大写）"), (59.5, 110, "ⓧ 肆佰伍拾陆圆整")]


def test_text_objects_without_an_id_are_read():
    for with_ids in (True, False):
        data = make_ofd(tag=None, page_texts={}, template_texts={},
                        extra={"Doc_0/Pages/Page_0/Content.xml": _page(LABELS_ONLY, with_ids)})
        [inv] = read_ofd(data)
        assert inv.is_invoice, with_ids
        assert inv.get("title") == "电子发票（普通发票）" and inv.fields["title"].source == "ofd"
        assert inv.get("total_in_words") == "肆佰伍拾陆圆整"


XBRL = f"""<?xml version="1.0" encoding="UTF-8"?>
<xbrli:xbrl xmlns:xbrli="http://www.xbrl.org/2003/instance" xmlns:inv="http://xbrl.mof.gov.cn/taxonomy/inv">
  <inv:TypeOfInvoice contextRef="c">增值税专用发票</inv:TypeOfInvoice>
  <inv:CodeOfInvoice contextRef="c">3300232130</inv:CodeOfInvoice>
  <inv:NumberOfInvoice contextRef="c">02630221</inv:NumberOfInvoice>
  <inv:UniqueCodeOfInvoice contextRef="c">330023213002630221</inv:UniqueCodeOfInvoice>
  <inv:DateOfIssue contextRef="c">2023-09-26</inv:DateOfIssue>
  <inv:IdentifyingCode contextRef="c">69995434391259060960</inv:IdentifyingCode>
  <inv:NameOfPurchaser contextRef="c">浙江皓亮智享信息技术咨询有限公司</inv:NameOfPurchaser>
  <inv:NameOfSeller contextRef="c">诸暨海亮后勤服务有限公司</inv:NameOfSeller>
  <inv:TaxpayerIdentificationNumberUnifiedSocialCreditCodeOfSeller contextRef="c">91320500762844701D</inv:TaxpayerIdentificationNumberUnifiedSocialCreditCodeOfSeller>
  <inv:TotalAmountExcludingTax contextRef="c" unitRef="CNY" decimals="2">9849.06</inv:TotalAmountExcludingTax>
  <inv:TotalTaxAmount contextRef="c" unitRef="CNY" decimals="2">590.94</inv:TotalTaxAmount>
  <inv:TaxIncludedAmountInFigures contextRef="c" unitRef="CNY" decimals="2">10440.00</inv:TaxIncludedAmountInFigures>
  <inv:TaxIncludedAmountInWords contextRef="c">壹万零肆佰肆拾圆整</inv:TaxIncludedAmountInWords>
</xbrli:xbrl>""".encode()


def test_an_xbrl_attachment_gives_the_invoice_fields_but_not_its_unique_code():
    data = make_ofd(tag=None, page_texts={}, template_texts={},
                    extra={"Doc_0/Attachs/inv_spcl_issuer_02630221.xml": XBRL})
    [inv] = extract_bytes(data)
    got = inv.to_dict()
    assert {k: got[k] for k in ("code", "number", "date", "check_code", "amount", "tax", "total",
                                "total_in_words", "buyer_name", "seller_name", "seller_tax_id")} == {
        "code": "3300232130", "number": "02630221", "date": "2023-09-26", "check_code": "69995434391259060960",
        "amount": "9849.06", "tax": "590.94", "total": "10440.00", "total_in_words": "壹万零肆佰肆拾圆整",
        "buyer_name": "浙江皓亮智享信息技术咨询有限公司", "seller_name": "诸暨海亮后勤服务有限公司",
        "seller_tax_id": "91320500762844701D"}
    assert got["sources"]["number"] == "xml" and inv.get("amount") == Decimal("9849.06")
