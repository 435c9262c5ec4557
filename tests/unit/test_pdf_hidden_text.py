"""Text a PDF page does not draw is not printed text (attack R, finding 2),
nor is what its CropBox leaves out (finding 4).

A searchable scan is the page as an image with an invisible (render mode 3)
text layer: the scanner's OCR, misreads and all. Read as print, its
misreads were stored as `pdf-text` and passed as VALID. The page is a scan:
its QR comes from its image, its printed-only fields from our OCR (checked
as OCR is) or from nowhere.
"""

from __future__ import annotations

import io

import pypdf
import pytest
import pypdfium2
from PIL import Image
from pypdf.generic import RectangleObject
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen import canvas

from agent.extract.pdf import read_pdf
from agent.extract.pdf_geometry import page_glyphs
from tests.unit.test_pdf_image import DIGITAL_PDF, QR_A, QR_B, jpeg, qr_image, scan

# The misreads attack R put in the layer; the second tax id passes the check digit.
MISREADS = {"食品": "食晶", "武汉": "武汊", "914201006791228986": "914201006891228988"}


def _searchable(image_pdf: bytes | None = None, image=None, lines: list[str] = (), subs: dict | None = None,
                mode: int = 3) -> bytes:
    """A page showing an image, with a text layer in render `mode`: either
    `lines`, or (from `image_pdf`) every character of that PDF's text at its
    own box, with `subs` replaced in the layer only, as scanner software
    writes an OCR layer over the page image."""
    buf = io.BytesIO()
    if image_pdf is not None:
        page = pypdfium2.PdfDocument(image_pdf)[0]
        width, height = page.get_size()
        image = page.render(scale=200 / 72).to_pil().convert("L")
        textpage = page.get_textpage()
        count = textpage.count_chars()
        text = textpage.get_text_range(0, count)
        boxes = [textpage.get_charbox(i) for i in range(count)]
        for old, new in (subs or {}).items():
            assert old in text
            text = text.replace(old, new, 1)
    else:
        width, height = 680, 400
        text, boxes = "", []
    c = canvas.Canvas(buf, pagesize=(width, height))
    c.drawImage(ImageReader(io.BytesIO(jpeg(image, 90))), 0, 0, width, height)
    for ch, (left, bottom, right, top) in zip(text, boxes):
        if ch.isspace() or right <= left:
            continue
        t = c.beginText()
        t.setTextRenderMode(mode)
        t.setFont("STSong-Light", max(top - bottom, 4))
        t.setTextOrigin(left, bottom)
        t.textOut(ch)
        c.drawText(t)
    for i, line in enumerate(lines):
        t = c.beginText()
        t.setTextRenderMode(mode)
        t.setFont("STSong-Light", 10)
        t.setTextOrigin(20, 380 - 14 * i)
        t.textOut(line)
        c.drawText(t)
    c.save()
    return buf.getvalue()


def _glyph_text(data: bytes) -> str:
    page = pypdfium2.PdfDocument(data)[0]
    return "".join(g[0] for g in page_glyphs(page.get_textpage()))


def _draw_word(c, mode: int, y: float, word: str) -> None:
    # One word at (20, y) in text render mode `mode` (reportlab canvas `c`).
    t = c.beginText()
    t.setTextRenderMode(mode)
    t.setFont("STSong-Light", 12)
    t.setTextOrigin(20, y)
    t.textOut(word)
    c.drawText(t)


def test_invisible_and_clip_only_text_are_no_glyphs_but_drawn_text_is():
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=(600, 400))
    for mode, (y, word) in enumerate([(380, "填充"), (360, "描边"), (340, "填描"), (320, "隐形"),
                                      (300, "填裁"), (280, "描裁"), (260, "全裁"), (240, "只裁")]):
        _draw_word(c, mode, y, word)
    c.save()
    # Modes 0-2 and 4-6 paint the glyph; 3 paints nothing, 7 only clips.
    assert _glyph_text(buf.getvalue()) == "填充描边填描填裁描裁全裁"


def test_invisible_text_inside_a_form_is_no_glyph():
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=(600, 400))
    c.beginForm("layer")
    for mode, (y, word) in ((0, (300, "印出")), (3, (280, "隐形"))):
        _draw_word(c, mode, y, word)
    c.endForm()
    c.doForm("layer")
    c.save()
    assert _glyph_text(buf.getvalue()) == "印出"


def test_searchable_scan_without_ocr_gives_the_qr_fields_only():
    lines = ["发票代码:044032599411  发票号码:05286503", "开票日期:2026年06月01日",
             "购买方名称:深圳市食晶有限公司", "纳税人识别号:914201006891228988",
             "销售方名称:湖北武汊石油分公司", "价税合计（大写） 贰仟玖佰伍拾玖圆壹角整 （小写）¥2959.10"]
    (inv,) = read_pdf(_searchable(image=scan(QR_B, angle=3.0), lines=lines), ocr=False)
    assert inv.get("number") == "05286503"  # from the page image's QR, read as a scan's
    assert {f.source for f in inv.fields.values()} == {"qr"}
    for name in ("buyer_name", "buyer_tax_id", "seller_name"):
        assert inv.get(name) is None


def test_the_same_text_drawn_is_read_as_print():
    # The control: a visible layer is printed text, read as before.
    lines = ["发票代码:044032599411  发票号码:05286503", "开票日期:2026年06月01日",
             "购买方名称:深圳市食品有限公司"]
    (inv,) = read_pdf(_searchable(image=scan(QR_B, angle=3.0), lines=lines, mode=0), ocr=False)
    assert inv.fields["code"].source == "qr"
    assert inv.get("buyer_name") == "深圳市食品有限公司"
    assert inv.fields["buyer_name"].source == "pdf-text"


def test_searchable_scan_with_misreads_is_read_from_its_image_by_ocr():
    data = _searchable(image_pdf=DIGITAL_PDF.read_bytes(), subs=MISREADS)
    (inv,) = read_pdf(data, ocr=True)
    assert inv.get("number") == "26427000000145889304"
    assert inv.fields["number"].source == "qr"
    assert "pdf-text" not in {f.source for f in inv.fields.values()}
    # Our OCR of what the page shows, under OCR's checks; never the layer's misreads.
    truth = {"buyer_name": "安徽燕之坊食品有限公司", "seller_name": "中国石化销售股份有限公司湖北武汉石油分公司",
             "seller_tax_id": "914201006791228986"}
    for name, value in truth.items():
        assert inv.get(name) in (None, value), (name, inv.get(name))
        assert inv.get(name) is None or inv.fields[name].source == "ocr"


# --- what a page's CropBox leaves out (attack R, finding 4) ----------------------

OTHER_DIGITAL_PDF = DIGITAL_PDF.with_name("270a4c65_26427000000145891088.pdf")


def _two_up(top: bytes, bottom: bytes) -> bytes:
    """A 2-up sheet holding `top` above `bottom`, as two pages sharing its
    content, each cropped to one of them (how some tools split a sheet)."""
    a, b = (pypdf.PdfReader(io.BytesIO(d)).pages[0] for d in (top, bottom))
    width = float(max(a.mediabox.width, b.mediabox.width))
    split = float(b.mediabox.height)
    writer = pypdf.PdfWriter()
    sheet = writer.add_blank_page(width, split + float(a.mediabox.height))
    sheet.merge_transformed_page(b, pypdf.Transformation().translate(-float(b.mediabox.left), -float(b.mediabox.bottom)))
    sheet.merge_transformed_page(a, pypdf.Transformation().translate(-float(a.mediabox.left),
                                                                     split - float(a.mediabox.bottom)))
    buf = io.BytesIO()
    writer.write(buf)
    return _pages_cropped(buf.getvalue(), [[0, split, width, split + float(a.mediabox.height)], [0, 0, width, split]])


def _pages_cropped(one_page: bytes, boxes: list[list[float]]) -> bytes:
    """The page of `one_page` once per CropBox in `boxes`."""
    writer = pypdf.PdfWriter()
    for box in boxes:
        writer.append(io.BytesIO(one_page))
        writer.pages[-1].cropbox = RectangleObject(box)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_two_up_sheet_split_by_cropbox_reads_one_invoice_a_page():
    data = _two_up(DIGITAL_PDF.read_bytes(), OTHER_DIGITAL_PDF.read_bytes())
    invoices = read_pdf(data)
    assert [(i.page, i.get("number"), str(i.get("total"))) for i in invoices] == [
        (1, "26427000000145889304", "300.00"), (2, "26427000000145891088", "365.42")]
    for inv in invoices:
        assert not inv.conflicts and not inv.problems
        assert inv.fields["amount"].source == "pdf-text"  # each page's own text, nothing of the other
    assert [str(i.get("amount")) for i in invoices] == ["265.49", "323.38"]


def test_two_up_scan_in_one_image_is_read_from_each_page_render():
    # One image holds both scans: its object shows more than either page,
    # so each page is read from what it shows.
    a, b = scan(QR_A, angle=0.5), scan(QR_B, angle=0.5, seed=1)
    sheet = Image.new("L", (max(a.width, b.width), a.height + b.height), 238)
    sheet.paste(a, (0, 0))
    sheet.paste(b, (0, a.height))
    buf = io.BytesIO()
    width, height = 680, 680 * sheet.height / sheet.width
    c = canvas.Canvas(buf, pagesize=(width, height))
    c.drawImage(ImageReader(io.BytesIO(jpeg(sheet, 90))), 0, 0, width, height)
    c.save()
    split = height * b.height / sheet.height
    invoices = read_pdf(_pages_cropped(buf.getvalue(), [[0, split, width, height], [0, 0, width, split]]))
    assert [(i.page, i.get("number")) for i in invoices] == [(1, "25317000002856140513"), (2, "05286503")]


def test_glyphs_outside_the_shown_box_are_not_on_the_page():
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=(600, 400))
    c.setFont("STSong-Light", 12)
    c.drawString(20, 300, "上半")
    c.drawString(20, 100, "下半")
    c.save()
    textpage = pypdfium2.PdfDocument(buf.getvalue())[0].get_textpage()
    assert "".join(g[0] for g in page_glyphs(textpage, (0, 200, 600, 400))) == "上半"
    assert "".join(g[0] for g in page_glyphs(textpage, (0, 0, 600, 200))) == "下半"
    assert "".join(g[0] for g in page_glyphs(textpage)) == "上半下半"


def test_two_up_of_forms_places_each_form_image_by_its_matrix():
    # n-up tools draw each source page as a form: its image's box is in the
    # form's space, and only its matrix says which half of the sheet it is on.
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=(680, 800))
    for name, payload in (("a", QR_A), ("b", QR_B)):
        c.beginForm(name, lowerx=0, lowery=0, upperx=680, uppery=400)
        c.drawImage(ImageReader(qr_image(payload, 3)), 20, 290, 90, 90)
        c.endForm()
    for name, dy in (("a", 400), ("b", 0)):
        c.saveState()
        c.translate(0, dy)
        c.doForm(name)
        c.restoreState()
    c.save()
    invoices = read_pdf(_pages_cropped(buf.getvalue(), [[0, 400, 680, 800], [0, 0, 680, 400]]))
    assert [(i.page, i.get("number")) for i in invoices] == [(1, "25317000002856140513"), (2, "05286503")]


def test_a_page_of_too_many_objects_is_refused_not_walked(monkeypatch):
    from agent.errors import ExtractError
    from agent.extract import pdf_shown

    data = DIGITAL_PDF.read_bytes()
    monkeypatch.setattr(pdf_shown, "MAX_OBJECTS", 50)
    with pytest.raises(ExtractError) as e:
        read_pdf(data)
    assert e.value.reason == "limit-exceeded"
