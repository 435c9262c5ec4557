"""Text a PDF page holds but no viewer shows is not read (pdf_painted).

A forger, or a 'searchable scan' tool, can put a value on a page that no
viewer shows: drawn white on white or fully transparent, at a size too small
to see, clipped away, or under an opaque rectangle or image drawn after it.
Read as print, that value would be trusted. Each such glyph is left out of
the page's text, as the invisible render modes are (test_pdf_hidden_text);
what a viewer does show is read as before: white print on a dark band, text
under a seal (drawn with a soft mask), the part of a text left uncovered.
"""

from __future__ import annotations

import io

import pypdfium2
import pytest
from PIL import Image, ImageDraw
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen import canvas

from agent.extract.pdf import read_pdf
from agent.extract.pdf_fonts import pdf_file
from agent.extract.pdf_geometry import page_glyphs
from tests.unit.test_pdf_image import QR_B, qr_image

SHOWN, HIDDEN = "看得见", "看不见"


def _page(draw, size=(400, 300)) -> bytes:
    """A page printing SHOWN at the top, then whatever `draw(canvas)` adds."""
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=size)
    c.setFont("STSong-Light", 12)
    c.drawString(20, 260, SHOWN)
    draw(c)
    c.save()
    return buf.getvalue()


def _text(data: bytes) -> str:
    page = pypdfium2.PdfDocument(data)[0]
    return "".join(g[0] for g in page_glyphs(page.get_textpage()))


def _word(c, word: str = HIDDEN, x: float = 20, y: float = 200, size: float = 12) -> None:
    c.setFont("STSong-Light", size)
    c.drawString(x, y, word)


def _white(c):
    c.setFillColorRGB(1, 1, 1)
    _word(c)


def _white_gray(c):
    c.setFillGray(1)
    _word(c)


def _white_cmyk(c):
    c.setFillColorCMYK(0, 0, 0, 0)
    _word(c)


def _near_white(c):
    c.setFillColorRGB(0.98, 0.98, 0.98)
    _word(c)


def _alpha_zero(c):
    c.setFillAlpha(0)
    _word(c)


def _tiny(c):
    _word(c, size=0.1)


def _flat(c):
    t = c.beginText(20, 200)
    t.setFont("STSong-Light", 12)
    t.setHorizScale(1)  # 1 %: each glyph a hair wide
    t.textOut(HIDDEN)
    c.drawText(t)


def _scaled_away(c):
    c.saveState()
    c.transform(0.01, 0, 0, 0.01, 20, 200)  # the CTM, not the font size, makes it a speck
    _word(c, x=0, y=0)
    c.restoreState()


def _white_stroke(c):
    # Render mode 1 paints only the stroke: a black fill shows nothing.
    c.setFillColorRGB(0, 0, 0)
    c.setStrokeColorRGB(1, 1, 1)
    t = c.beginText(20, 200)
    t.setTextRenderMode(1)
    t.setFont("STSong-Light", 12)
    t.textOut(HIDDEN)
    c.drawText(t)


def _clipped_away(c):
    c.saveState()
    p = c.beginPath()
    p.rect(200, 20, 100, 50)
    c.clipPath(p, stroke=0, fill=0)
    _word(c)
    c.restoreState()


def _clipped_form(c):
    # The clip a form is drawn under bounds its text too.
    c.beginForm("hidden")
    _word(c)
    c.endForm()
    c.saveState()
    p = c.beginPath()
    p.rect(200, 20, 100, 50)
    c.clipPath(p, stroke=0, fill=0)
    c.doForm("hidden")
    c.restoreState()


def _under_white_box(c):
    _word(c)
    c.setFillColorRGB(1, 1, 1)
    c.rect(15, 190, 120, 30, stroke=0, fill=1)


@pytest.mark.parametrize("hide", [_white, _white_gray, _white_cmyk, _near_white, _alpha_zero, _tiny, _flat,
                                  _scaled_away, _white_stroke, _clipped_away, _clipped_form, _under_white_box])
def test_text_no_viewer_shows_is_not_read(hide):
    assert _text(_page(hide)) == SHOWN


def test_a_box_drawn_over_part_of_a_text_hides_only_what_it_covers():
    def draw(c):
        _word(c, "左边右边")
        c.setFillColorRGB(1, 1, 1)
        c.rect(20 + 24 + 1, 190, 200, 30, stroke=0, fill=1)  # over the last two of four 12 pt glyphs

    assert _text(_page(draw)) == SHOWN + "左边"


def test_white_print_shows_on_a_dark_band_and_only_there():
    def draw(c):
        c.setFillColorRGB(0.55, 0.1, 0.1)  # a header band, drawn first
        c.rect(15, 190, 120, 30, stroke=0, fill=1)
        c.setFillColorRGB(1, 1, 1)
        _word(c, "表头")
        _word(c, HIDDEN, y=150)  # the same white, off the band

    assert _text(_page(draw)) == SHOWN + "表头"


def test_transparent_text_shows_on_no_band():
    def draw(c):
        c.setFillColorRGB(0.55, 0.1, 0.1)
        c.rect(15, 190, 120, 30, stroke=0, fill=1)
        c.setFillAlpha(0)
        _word(c)

    assert _text(_page(draw)) == SHOWN


def test_white_text_on_an_image_shows_where_the_image_is_dark():
    band = Image.new("RGB", (120, 30), "white")
    ImageDraw.Draw(band).rectangle((0, 0, 59, 29), fill=(20, 30, 80))  # dark left half, white right half

    def draw(c):
        c.drawImage(ImageReader(band), 20, 190, 120, 30)
        c.setFillColorRGB(1, 1, 1)
        _word(c, "深色", x=25)
        _word(c, HIDDEN, x=85)

    assert _text(_page(draw)) == SHOWN + "深色"


def test_text_partly_inside_its_clip_is_read():
    def draw(c):
        c.saveState()
        p = c.beginPath()
        p.rect(0, 190, 44, 40)  # shows the first two of four glyphs
        c.clipPath(p, stroke=0, fill=0)
        _word(c, "一半可见")
        c.restoreState()
        _clipped_away(c)

    assert _text(_page(draw)) == SHOWN + "一半可见"


def test_white_reported_for_a_shading_pattern_is_told_by_the_drawing():
    # PDFium reports a shading pattern's fill as white; drawn, the text is black.
    def page(pattern: bytes) -> bytes:
        content = (b"BT /F1 12 Tf 20 260 Td (SHOWN) Tj ET /Pattern cs /P0 scn "
                   b"BT /F1 12 Tf 20 200 Td (PATTERN) Tj ET")
        resources = (b"<< /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> /Pattern << /P0 "
                     b"<< /PatternType 2 /Shading << /ShadingType 2 /ColorSpace /DeviceRGB /Coords [0 0 400 0] "
                     b"/Function << /FunctionType 2 /Domain [0 1] /C0 " + pattern + b" /C1 " + pattern
                     + b" /N 1 >> >> >> >> >>")
        return pdf_file([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                         b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 400 300] /Resources " + resources
                         + b" /Contents 4 0 R >>",
                         b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream"])

    assert _text(page(b"[0 0 0]")) == "SHOWNPATTERN"
    assert _text(page(b"[1 1 1]")) == "SHOWN"


# --- read as an invoice: the hidden value never becomes a field ------------------

FORGED = "深圳市伪造有限公司"
PRINTED = ["发票代码:044032599411  发票号码:05286503", "开票日期:2026年06月01日",
           "销售方名称:湖北武汉石油分公司", "价税合计（大写） 贰仟玖佰伍拾玖圆壹角整 （小写）¥2959.10"]


def _invoice(hide) -> bytes:
    """An invoice page (QR_B, its printed lines) and a buyer's name line
    drawn by `hide(canvas, line)`."""
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=(680, 400))
    c.drawImage(ImageReader(qr_image(QR_B, 3)), 20, 290, 90, 90)
    c.setFont("STSong-Light", 10)
    for i, line in enumerate(PRINTED):
        c.drawString(130, 370 - 16 * i, line)
    hide(c, "购买方名称:" + FORGED)
    c.save()
    return buf.getvalue()


def _line(c, line, size=10):
    c.setFont("STSong-Light", size)
    c.drawString(130, 290, line)


def _line_white(c, line):
    c.setFillColorRGB(1, 1, 1)
    _line(c, line)


def _line_alpha_zero(c, line):
    c.setFillAlpha(0)
    _line(c, line)


def _line_tiny(c, line):
    _line(c, line, size=0.1)


def _line_clipped_away(c, line):
    c.saveState()
    p = c.beginPath()
    p.rect(400, 20, 100, 50)
    c.clipPath(p, stroke=0, fill=0)
    _line(c, line)
    c.restoreState()


def _line_under_white_box(c, line):
    _line(c, line)
    c.setFillColorRGB(1, 1, 1)
    c.rect(125, 280, 300, 25, stroke=0, fill=1)


def _line_under_image(c, line):
    _line(c, line)
    c.drawImage(ImageReader(Image.new("RGB", (150, 12), (250, 250, 245))), 125, 280, 300, 25)


@pytest.mark.parametrize("hide", [_line_white, _line_alpha_zero, _line_tiny, _line_clipped_away,
                                  _line_under_white_box, _line_under_image])
def test_a_value_no_viewer_shows_is_not_read_from_an_invoice(hide):
    (inv,) = read_pdf(_invoice(hide))
    assert FORGED not in repr(inv.to_dict())
    assert inv.get("buyer_name") is None
    # What the page shows is read as before.
    assert inv.get("number") == "05286503" and inv.fields["number"].source == "qr"
    assert inv.get("seller_name") == "湖北武汉石油分公司" and inv.fields["seller_name"].source == "pdf-text"


def test_white_print_on_a_dark_band_is_read_and_white_off_it_is_not():
    def band(c, line):
        c.setFillColorRGB(0.1, 0.15, 0.4)
        c.rect(125, 280, 300, 25, stroke=0, fill=1)
        c.setFillColorRGB(1, 1, 1)
        _line(c, "购买方名称:深圳市食品有限公司")
        c.drawString(130, 40, "纳税人识别号:91440300MA5FAKE0XX")  # white on the page: not seen

    (inv,) = read_pdf(_invoice(band))
    assert inv.get("buyer_name") == "深圳市食品有限公司" and inv.fields["buyer_name"].source == "pdf-text"
    assert "MA5FAKE0XX" not in repr(inv.to_dict())


def _seal() -> Image.Image:
    seal = Image.new("RGBA", (200, 130), (0, 0, 0, 0))
    draw = ImageDraw.Draw(seal)
    draw.ellipse((4, 4, 196, 126), outline=(220, 30, 30, 255), width=8)
    draw.ellipse((60, 40, 140, 90), fill=(220, 30, 30, 200))
    return seal


def test_text_under_a_seal_with_a_soft_mask_is_read_and_under_an_opaque_image_is_not():
    # The tax-disk software stamps its seal (发票专用章) over the seller's
    # name after the text, as an image with a soft mask: the name shows through.
    def stamped(c, line):
        _line(c, "购买方名称:深圳市食品有限公司")
        c.drawImage(ImageReader(_seal()), 150, 260, 200, 60, mask="auto")
        c.setFont("STSong-Light", 10)
        c.drawString(130, 40, "纳税人识别号:91440300MA5FAKE0XX")
        c.drawImage(ImageReader(Image.new("RGB", (100, 8), "white")), 125, 30, 300, 25)

    (inv,) = read_pdf(_invoice(stamped))
    assert inv.get("buyer_name") == "深圳市食品有限公司" and inv.fields["buyer_name"].source == "pdf-text"
    assert "MA5FAKE0XX" not in repr(inv.to_dict())


def test_an_image_with_a_colour_key_mask_or_drawn_half_opaque_covers_nothing_the_same_opaque_does():
    # Three images, so that each has its own stream (one stream under two
    # dictionaries, one masked, is not plainly opaque under either).
    def white(width):
        return ImageReader(Image.new("RGB", (width, 8), "white"))

    def covered(c, line):
        _line(c, "购买方名称:深圳市食品有限公司")
        # White keyed out (/Mask [255 255 255 255 255 255]): see-through where white.
        c.drawImage(white(100), 125, 280, 300, 25, mask=[255, 255, 255, 255, 255, 255])
        c.setFont("STSong-Light", 10)
        c.drawString(130, 80, "销售方纳税人识别号:91420100679122898X")
        c.saveState()
        c.setFillAlpha(0.5)  # /ca 0.5: an image half opaque
        c.drawImage(white(101), 125, 70, 300, 25)
        c.restoreState()
        c.drawString(130, 40, "纳税人识别号:91440300MA5FAKE0XX")
        c.drawImage(white(102), 125, 30, 300, 25)  # opaque

    (inv,) = read_pdf(_invoice(covered))
    assert inv.get("buyer_name") == "深圳市食品有限公司"
    assert inv.get("seller_tax_id") == "91420100679122898X"
    assert "MA5FAKE0XX" not in repr(inv.to_dict())


def test_a_page_of_too_many_white_text_and_underlay_pairs_is_refused(monkeypatch):
    # As a page of too many objects is (pdf_shown.MAX_OBJECTS): a crafted
    # page of thousands of white texts on thousands of bands is not walked
    # for seconds.
    from agent.errors import ExtractError
    from agent.extract import pdf_shown

    def band(c, line):
        c.setFillColorRGB(0.1, 0.15, 0.4)
        c.rect(125, 280, 300, 25, stroke=0, fill=1)
        c.setFillColorRGB(1, 1, 1)
        _line(c, line)

    monkeypatch.setattr(pdf_shown, "MAX_PAIRS", 0)
    with pytest.raises(ExtractError) as e:
        read_pdf(_invoice(band))
    assert e.value.reason == "limit-exceeded"


def test_a_searchable_scan_with_a_white_text_layer_is_a_scan():
    # Some tools write the OCR layer in white over the page image rather
    # than invisible: on the scan's paper it shows no more than mode 3 does.
    from tests.unit.test_pdf_image import jpeg, scan

    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=(680, 400))
    c.drawImage(ImageReader(io.BytesIO(jpeg(scan(QR_B, angle=3.0), 90))), 0, 0, 680, 400)
    c.setFillColorRGB(1, 1, 1)
    c.setFont("STSong-Light", 10)
    for i, line in enumerate(PRINTED + ["购买方名称:" + FORGED]):
        c.drawString(130, 370 - 16 * i, line)
    c.save()
    (inv,) = read_pdf(buf.getvalue(), ocr=False)
    assert inv.get("number") == "05286503"
    assert {f.source for f in inv.fields.values()} == {"qr"}
    assert FORGED not in repr(inv.to_dict())


def test_an_image_whose_dictionary_reads_opaque_covers_only_if_drawn_opaque():
    # A string holding " obj" after the /SMask entry cuts what a plain look
    # at the dictionary sees: it reads opaque, PDFium draws it see-through.
    import zlib

    from agent.extract.pdf_painted import unshown_text

    pixels = zlib.compress(b"\xcc\x22\x22" * 64)  # 8 x 8 red
    mask = zlib.compress(bytes(64))  # all transparent
    content = (b"BT /F1 12 Tf 20 260 Td (SHOWN) Tj ET BT /F1 12 Tf 20 200 Td (UNDER) Tj ET "
               b"1 g BT /F1 12 Tf 20 150 Td (WHITE) Tj ET q 120 0 0 40 10 190 cm /Im0 Do Q")
    data = pdf_file([
        b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 400 300] /Resources << /Font << /F1 << /Type /Font "
        b"/Subtype /Type1 /BaseFont /Helvetica >> >> /XObject << /Im0 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /SMask 6 0 R /Note ( obj) /Type /XObject /Subtype /Image /Width 8 /Height 8 /ColorSpace /DeviceRGB "
        b"/BitsPerComponent 8 /Filter /FlateDecode /Length %d >>\nstream\n" % len(pixels) + pixels
        + b"\nendstream",
        b"<< /Type /XObject /Subtype /Image /Width 8 /Height 8 /ColorSpace /DeviceGray /BitsPerComponent 8 "
        b"/Filter /FlateDecode /Length %d >>\nstream\n" % len(mask) + mask + b"\nendstream"])
    page = pypdfium2.PdfDocument(data)[0]
    glyphs = page_glyphs(page.get_textpage(), None, unshown_text(page, data=data))
    assert "".join(g[0] for g in glyphs) == "SHOWNUNDER"


def test_a_page_of_too_many_text_and_cover_pairs_is_refused(monkeypatch):
    from agent.errors import ExtractError
    from agent.extract import pdf_shown

    monkeypatch.setattr(pdf_shown, "MAX_PAIRS", 2)
    with pytest.raises(ExtractError) as e:
        read_pdf(_invoice(_line_under_white_box))
    assert e.value.reason == "limit-exceeded"
