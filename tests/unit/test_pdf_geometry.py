"""Text by position (PDFium char boxes): rows as printed, and how a second
reading completes the stream-order one without ever guessing."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pypdf

from agent.extract.pdf_geometry import GeometryReader, _Glyph, layout_glyphs, merge_readings
from agent.extract.qr import verification_url_of
from agent.extract.text import ParsedText, normalize_text, parse_text
from tests.conftest import SAMPLES


def glyphs(text: str, left: float, baseline: float, size: float = 10.0) -> list[_Glyph]:
    # Loose boxes: every glyph of a line spans the same ascent and descent.
    return [_Glyph(ch, left + i * size, baseline - 0.2 * size, left + (i + 1) * size, baseline + 0.8 * size)
            for i, ch in enumerate(text)]


def test_values_written_after_all_labels_land_on_their_labels_rows():
    # 深圳's blockchain PDFs draw every label, then every value.
    stream = (glyphs("发票号码:", 400, 700) + glyphs("开票日期:", 400, 680)
              + glyphs("名称:", 40, 600) + glyphs("09826096", 460, 700)
              + glyphs("2023年03月18日", 460, 680) + glyphs("深圳市某某有限公司", 80, 600))
    lines = layout_glyphs(stream).split("\n")
    assert [ln.split() for ln in lines] == [["发票号码:", "09826096"], ["开票日期:", "2023年03月18日"],
                                          ["名称:", "深圳市某某有限公司"]]
    fields = parse_text(normalize_text("\n".join(lines))).fields
    assert (fields["number"], fields["date"]) == ("09826096", dt.date(2023, 3, 18))


def test_a_gap_becomes_spaces_and_a_lower_dot_stays_on_its_row():
    row = glyphs("金额", 40, 500) + glyphs("907", 200, 500) + [_Glyph(".", 230, 499, 233, 508)] + glyphs("55", 233, 500)
    (line,) = layout_glyphs(row).split("\n")
    assert line.split() == ["金额", "907.55"]


def test_far_off_glyphs_cannot_blow_up_the_line():
    line = layout_glyphs(glyphs("a", 1e12, 10) + glyphs("b", 3e12, 10))
    assert len(line) < 1000


def test_merge_fills_gaps_and_empties_what_the_readings_disagree_on():
    first = ParsedText(fields={"number": "09826096", "buyer_name": "中铁文化旅游投资集团有限公司03-028"},
                       label_count=4)
    second = ParsedText(fields={"number": "09826096", "buyer_name": "中铁文化旅游投资集团有限公司",
                                "total": Decimal("962.00")}, label_count=4)
    problems: list = []
    merged = merge_readings(first, second, problems)
    assert merged.fields == {"number": "09826096", "total": Decimal("962.00")}
    assert [(p.code, p.field, p.severity) for p in problems] == [("text-readings-differ", "buyer_name", "warning")]


def test_a_face_missing_its_values_is_read_again_by_position():
    data = (SAMPLES / "mxvc__invoice/深圳_962_907.55.pdf").read_bytes()
    page = pypdf.PdfReader(SAMPLES / "mxvc__invoice/深圳_962_907.55.pdf").pages[0]
    first = parse_text(normalize_text(page.extract_text(extraction_mode="layout")))
    assert first.is_invoice_like and "number" not in first.fields  # pypdf keeps only the labels
    reader = GeometryReader(data)
    try:
        problems: list = []
        got = reader.complete(first, 0, problems).fields
    finally:
        reader.close()
    assert problems == []
    assert (got["number"], got["code"], got["date"], got["check_code"]) == (
        "09826096", "144032309110", dt.date(2023, 3, 18), "10a19")
    assert (got["total"], got["total_in_words"]) == (Decimal("962.00"), "玖佰陆拾贰元整")
    assert (got["buyer_tax_id"], got["seller_name"]) == ("91520000MA6DKWDM90", "深圳市定军山商业管理有限公司")


def test_a_complete_face_and_a_broken_file_cost_no_second_reading():
    full = ParsedText(fields={"number": "1", "date": 1, "total": 1, "buyer_name": "a", "seller_name": "b",
                              "seller_tax_id": "c"}, label_count=4)
    broken = GeometryReader(b"%PDF-1.7 not really")
    assert broken.complete(full, 0, []) is full
    partial = ParsedText(fields={"number": "1"}, label_count=4)
    assert broken.complete(partial, 0, []).fields == {"number": "1"}
    assert broken.page_text(0) == "" and broken.page_text(99) == ""
    broken.close()


def test_a_url_is_the_invoices_qr_only_when_it_names_its_number():
    url = ("https://bcfp.shenzhen.chinatax.gov.cn/verify/scan?hash=01645d47765dd7aec05218801974"
           "7d2b9ff4a734a5a7c45ffec86832c070910a19&bill_num=09826096&total_amount=96200")
    shop = "https://example.com/shop?id=12345"
    assert verification_url_of([shop, url], "09826096") == url
    assert verification_url_of([url], "09826097") is None
    assert verification_url_of([url], None) is None
    assert verification_url_of(["09826096"], "09826096") is None  # not a URL
