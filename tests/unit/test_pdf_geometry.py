"""Text by position (PDFium char boxes): rows as printed, columns kept apart,
seal lettering left out, whatever order the content stream has."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pypdf
import pytest

from agent.extract.pdf import read_pdf
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


# --- the 密码区 written right after the buyer's name ------------------------------

_CIPHER = ["0*3152067<+0*1>15/++*-86*2>", "<+>/34/-66*>/-9>40+34->7100", "77+69<115-605/<18*74//3*5-8",
           "0392>*59*-8<9/38-*600093><*"]
_CIPHER_X = 372.0


def _hex(text: str) -> str:
    return "<" + text.encode("utf-16-be").hex() + ">"


def cipher_after_name_pdf(name: str, tax_id: str, gap: float) -> bytes:
    """An old-layout buyer block whose content stream writes each party row
    and the 密码区 row beside it in one TJ (value, jump, ciphertext), as some
    issuers' software does. The name is sized to end `gap` points before the
    密码区; the four cipher rows are left-aligned at x=372 as printed."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    song = "STSong-Light"
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=(609, 394), invariant=1)
    c.setFont(song, 9)
    c.drawString(428, 362, "发票号码:05286503")
    c.drawString(428, 348, "开票日期:2026年06月01日")
    rows = [("名称:", name, song), ("纳税人识别号:", tax_id, "Courier"), ("地址、电话:", "", song),
            ("开户行及账号:", "", song)]
    for i, (label, value, font) in enumerate(rows):
        y = 300 - 14 * i
        x = 34 + pdfmetrics.stringWidth(label, song, 9)
        size = (_CIPHER_X - gap - x) / pdfmetrics.stringWidth(value, font, 1) if font == song and value else 9
        text = c.beginText(34, y)
        text.setFont(song, 9)
        text.textOut(label)
        text.setFont(font, size)
        enc = _hex if font == song else (lambda v: f"({v})")
        if value:
            jump = (_CIPHER_X - x - pdfmetrics.stringWidth(value, font, size)) * 1000 / size
            text._code.append(f"[{enc(value)} {-jump:.1f} {enc(_CIPHER[i])}] TJ")
        else:
            text._code.append(f"{_CIPHER_X - 34:.2f} 0 Td {_hex(_CIPHER[i])} Tj")
        c.drawText(text)
    c.setFont(song, 9)
    c.drawString(34, 194, "价税合计(大写) 贰仟玖佰伍拾玖圆壹角整   (小写)¥2959.10")
    c.drawString(34, 134, "名称:深圳市某某科技有限公司")
    c.drawString(34, 120, "纳税人识别号:91440300MA5FPRG28K")
    c.showPage()
    c.save()
    return buf.getvalue()


@pytest.mark.parametrize("gap", [0.5, 2.0, 4.0])
@pytest.mark.parametrize("name", ["中国石化销售股份有限公司湖北武汉石油分公司江汉区加油站",
                                  "中国石化销售股份有限公司湖北武汉石油分公司加油站第3站"])
def test_a_name_written_just_before_the_cipher_area_is_never_glued_to_it(name, gap):
    # Stream order glued the ciphertext onto the name ("…加油站0*3152067<+0*1>…").
    tax_id = "91520000MA6DKWDM90"
    (inv,) = read_pdf(cipher_after_name_pdf(name, tax_id, gap))
    assert inv.get("buyer_name") in (name, None)
    assert inv.get("buyer_tax_id") in (tax_id, None)
    assert (inv.get("buyer_name"), inv.get("buyer_tax_id")) == (name, tax_id)
    assert (inv.get("seller_name"), inv.get("seller_tax_id")) == ("深圳市某某科技有限公司", "91440300MA5FPRG28K")


# --- the 密码区 printed right after a value, no gap -----------------------------

def _cipher_block(first_rows: list[tuple[float, float]]) -> list[_Glyph]:
    """A 27-character-a-row 密码区: the first rows at the given (left,
    baseline), two more left-aligned at x=372."""
    rows = ["0/494+35-2/4<+<2>/3/95*7379", "0/22+*61*3-8/7-527*/99+>->>",
            "*16/44+<<47*6104/17-4>45>>3", "<<09164+9/79>+4+-5-02014-63"]
    out: list[_Glyph] = []
    for i, row in enumerate(rows):
        left, baseline = first_rows[i] if i < len(first_rows) else (372, 260 - 14 * i)
        out += glyphs(row, left, baseline, size=6.3)
    return out


def test_ciphertext_glued_to_a_tax_id_ending_in_digits_is_cut_at_the_blocks_row_length():
    # The run of cipher-alphabet characters starts at the tax id's last
    # digits; the block's rows are 27 characters, so the last 27 are cipher.
    name = glyphs("名称:某某有限公司", 40, 300, size=6.3)
    tax_id = glyphs("纳税人识别号:91440304MA5M0PUM55", 40, 286, size=6.3)
    block = _cipher_block([(40 + 6.3 * 9, 300), (40 + 6.3 * 25, 286)])
    lines = layout_glyphs(name + tax_id + block).split("\n")
    fields = parse_text(normalize_text("\n".join(lines))).fields
    assert (fields.get("buyer_name"), fields.get("buyer_tax_id")) == ("某某有限公司", "91440304MA5M0PUM55"), lines


def test_a_label_printed_across_glued_ciphertext_does_not_hide_where_it_starts():
    name = glyphs("名称:某某有限公司", 40, 300, size=6.3)
    block = _cipher_block([(40 + 6.3 * 9, 300)])
    mi = _Glyph("密", 40 + 6.3 * 30 + 3, 300 - 2, 40 + 6.3 * 30 + 12, 300 + 8)  # over the cipher
    lines = layout_glyphs(name + block + [mi]).split("\n")
    fields = parse_text(normalize_text("\n".join(lines))).fields
    assert fields.get("buyer_name") == "某某有限公司", lines


def test_glued_ciphertext_without_an_aligned_block_is_not_cut_at_a_guess():
    # Only one row at the block's edge: its row length is unknown, the glued
    # run stays whole (and the name fails its plausibility check: empty).
    name = glyphs("名称:某某有限公司", 40, 300, size=6.3)
    row = glyphs("1*><3*04-51<*64/7*0/54+4-65", 40 + 6.3 * 9, 300, size=6.3)
    lines = layout_glyphs(name + row + glyphs("0/22+*61*3-8/7-527*/99+>->>", 372, 260, size=6.3)).split("\n")
    assert "某某有限公司1*><3*04" in lines[0]
