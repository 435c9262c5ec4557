"""Text by position (PDFium char boxes): rows as printed, columns kept apart,
seal lettering left out, whatever order the content stream has."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pypdf

from agent.extract.pdf_geometry import _Glyph, layout_glyphs, page_text
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


def test_a_face_whose_stream_has_every_label_first_is_read_by_position():
    data = (SAMPLES / "mxvc__invoice/深圳_962_907.55.pdf").read_bytes()
    page = pypdf.PdfReader(SAMPLES / "mxvc__invoice/深圳_962_907.55.pdf").pages[0]
    first = parse_text(normalize_text(page.extract_text(extraction_mode="layout")))
    assert first.is_invoice_like and "number" not in first.fields  # pypdf keeps only the labels
    import pypdfium2
    doc = pypdfium2.PdfDocument(data)
    try:
        pdf_page = doc[0]
        textpage = pdf_page.get_textpage()
        got = parse_text(normalize_text(page_text(textpage))).fields
        textpage.close()
        pdf_page.close()
    finally:
        doc.close()
    assert (got["number"], got["code"], got["date"], got["check_code"]) == (
        "09826096", "144032309110", dt.date(2023, 3, 18), "10a19")
    assert (got["total"], got["total_in_words"]) == (Decimal("962.00"), "玖佰陆拾贰元整")
    assert (got["buyer_tax_id"], got["seller_name"]) == ("91520000MA6DKWDM90", "深圳市定军山商业管理有限公司")


def test_a_row_is_its_mean_centre_not_its_first_glyph():
    # A value a little above its label, and a ¥ a little above its digits:
    # each is within half a height of the row, not of the first glyph met.
    row = glyphs("购", 10, 302) + glyphs("名称:", 40, 300) + glyphs("安徽燕之坊食品有限公司", 70, 301) \
        + glyphs("¥", 300, 303.5) + glyphs("187.61", 310, 299)
    (line,) = layout_glyphs(row).split("\n")
    assert line.split() == ["购", "名称:安徽燕之坊食品有限公司", "¥187.61"]


def test_a_font_change_with_a_gap_is_a_column_break():
    # The 密码区 starts a few points after a long buyer name, in another font:
    # two spaces at least, so the name's value ends where the name does.
    name = glyphs("名称:某某有限公司", 40, 300, size=9.0)
    cipher = glyphs("03-028/088<945327", 40 + 9 * 9.0 + 4, 300, size=10.5)
    (line,) = layout_glyphs(name + cipher).split("\n")
    assert "有限公司  03-028" in line
    assert parse_text(normalize_text(line)).fields.get("buyer_name") == "某某有限公司"


def test_a_small_glyph_printed_over_the_title_is_left_out():
    title = glyphs("云南增值税电子普通发票", 190, 352, size=19.0)
    seal_top = [_Glyph("发", 293.7, 357.3, 299.7, 363.3)]
    (line,) = layout_glyphs(title + seal_top).split("\n")
    assert line.strip() == "云南增值税电子普通发票"


def test_a_url_is_the_invoices_qr_only_when_it_names_its_number():
    url = ("https://bcfp.shenzhen.chinatax.gov.cn/verify/scan?hash=01645d47765dd7aec05218801974"
           "7d2b9ff4a734a5a7c45ffec86832c070910a19&bill_num=09826096&total_amount=96200")
    shop = "https://example.com/shop?id=12345"
    assert verification_url_of([shop, url], "09826096") == url
    assert verification_url_of([url], "09826097") is None
    assert verification_url_of([url], None) is None
    assert verification_url_of(["09826096"], "09826096") is None  # not a URL
