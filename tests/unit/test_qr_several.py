"""A page or image never yields a value that may be another invoice's: the QR
codes of several invoices on one page are an error with no field read, and
a code laid out as an invoice QR that does not parse is shown, not dropped."""

from __future__ import annotations

import io

from PIL import Image

from agent.extract.image import read_image
from agent.extract.pdf import read_pdf
from agent.extract.qr import apply_qr, crc16_umts, malformed_reason, parse_qr
from agent.model import Invoice
from tests.unit.test_pdf_image import QR_A, QR_B, QR_C, pdf_of, qr_image, scan

FACE = ["电子发票（普通发票）  发票号码：25317000002856140513", "开票日期：2025年11月08日",
        "购买方名称：武汉物图科技有限公司", "销售方名称：上海滴滴畅行科技有限公司",
        "价税合计（大写）柒拾叁圆贰角整  （小写）¥73.20"]


def signed(fields: str) -> str:
    """An invoice QR text with its CRC right, so only its fields are wrong."""
    return f"{fields},{crc16_umts(fields.encode() + b','):X}"


def two_slips(first: str, second: str) -> Image.Image:
    # Two scanned slips stacked on one sheet, as a scanner's A4 page holds them.
    top, bottom = scan(first, seed=1), scan(second, seed=2)
    sheet = Image.new("L", (max(top.width, bottom.width), top.height + bottom.height), 238)
    sheet.paste(top, (0, 0))
    sheet.paste(bottom, (0, top.height))
    return sheet


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def problem_codes(invoice: Invoice) -> set[str]:
    return {p.code for p in invoice.problems}


def test_two_slips_in_one_png_scan_are_an_error_and_no_value_is_read():
    # Big enough for the top-rows fast path, which finds only the first QR.
    sheet = two_slips(QR_C, QR_B)
    assert sheet.width * sheet.height >= 1_500_000
    (inv,) = read_image(png(sheet), ocr=False)
    assert "several-invoices-on-page" in problem_codes(inv)
    assert inv.is_invoice and not inv.fields
    message = next(p.message for p in inv.problems if p.code == "several-invoices-on-page")
    assert "24112000000048542163" in message and "05286503" in message


def test_two_slips_on_one_scanned_pdf_page_are_an_error_and_no_value_is_read():
    data = pdf_of([{"image": two_slips(QR_A, QR_B), "image_box": (0, 0, 680, 400)}])
    (inv,) = read_pdf(data)
    assert "several-invoices-on-page" in problem_codes(inv)
    assert not inv.fields


def face_with_qr_images(*texts: str) -> bytes:
    """One PDF page: the invoice face's text and one embedded QR image per text."""
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=(680, 400))
    c.setFont("STSong-Light", 10)
    for i, line in enumerate(FACE):
        c.drawString(20, 380 - 14 * i, line)
    for text, y in zip(texts, (280, 20)):
        c.drawImage(ImageReader(io.BytesIO(png(qr_image(text, 4)))), 560, y, 100, 100)
    c.showPage()
    c.save()
    return buf.getvalue()


def test_a_second_invoice_qr_beside_a_face_on_a_text_page_is_an_error():
    # A ticket printed beside an invoice: its face text labels one number,
    # but the page carries two invoices' QR codes.
    (alone,) = read_pdf(face_with_qr_images(QR_A))
    assert alone.get("number") == "25317000002856140513"
    assert "several-invoices-on-page" not in problem_codes(alone)
    (inv,) = read_pdf(face_with_qr_images(QR_A, QR_C))
    assert "several-invoices-on-page" in problem_codes(inv)
    assert not inv.fields, "no value of the face may be kept: it may be either invoice's"


def test_the_same_qr_twice_is_one_invoice():
    (inv,) = read_pdf(face_with_qr_images(QR_A, QR_A))
    assert inv.get("number") == "25317000002856140513"
    assert "several-invoices-on-page" not in problem_codes(inv)


def test_two_codes_of_one_invoice_that_disagree_are_an_error_and_no_value_is_read():
    # A decoy pasted beside the genuine code: the same 代码 + 号码, its CRC
    # right, another date (an expired invoice made current) or amount.
    # Whichever the decoder met first won; now neither does.
    later = signed("01,10,044032599411,05286503,2959.10,20270601,14709567756825065566")
    dearer = signed("01,10,044032599411,05286503,9959.10,20260601,14709567756825065566")
    for decoy in (later, dearer):
        for first, second in ((QR_B, decoy), (decoy, QR_B)):
            (inv,) = read_image(png(two_slips(first, second)), ocr=False)
            assert "several-invoices-on-page" in problem_codes(inv)
            assert not inv.fields, (first, second)
            message = next(p.message for p in inv.problems if p.code == "several-invoices-on-page")
            assert "QR codes of invoice 05286503 that disagree" in message
        (page,) = read_pdf(face_with_qr_images(QR_A, signed("01,32,,25317000002856140513,73.20,20261108,")))
        assert "several-invoices-on-page" in problem_codes(page) and not page.fields
    # The same code read with another spacing is one invoice still.
    (inv,) = read_pdf(face_with_qr_images(QR_A, QR_A.replace(",,", ", ,", 1)))
    assert inv.get("number") == "25317000002856140513"


def test_an_invoice_qr_that_does_not_parse_is_named_and_not_used():
    for fields, why in (("01,32,,25317000002856140513,73.20,20260230,", "date"),
                        ("01,32,,25317000002856140513,73.205,20251108,", "amount"),
                        ("01,32,,25317000002856140513,73.20,20251108,,5F2A,extra", "fields")):
        text = fields if why == "fields" else signed(fields)
        assert parse_qr(text) is None
        assert why in malformed_reason(text)
        page = {"lines": FACE, "image": qr_image(text, 4), "image_box": (560, 280, 100, 100), "jpeg": False}
        (inv,) = read_pdf(pdf_of([page]))
        assert "qr-malformed" in problem_codes(inv), text
        assert inv.get("number") == "25317000002856140513"  # the print still reads; the QR adds nothing
        assert inv.fields["number"].source == "pdf-text"
        (img,) = read_image(png(qr_image(text, 4)))
        assert img.is_invoice and "qr-malformed" in problem_codes(img) and not img.fields


def test_codes_that_are_not_invoice_qrs_are_not_called_malformed():
    for text in ("https://v.didi.cn/p/x", "hello", "1,2,3", QR_A, QR_B, "WIFI:S:x;T:WPA;P:y;;"):
        assert malformed_reason(text) is None


def test_a_type_08_qr_amount_is_the_tax_exclusive_amount():
    # 08 is the 电子专票's 查验 type; a QR that carries it gives 金额, not 价税合计.
    inv = Invoice()
    apply_qr(inv, parse_qr(signed("01,08,033002100413,05145054,2399.90,20260629,52691493742469259050")))
    assert str(inv.get("amount")) == "2399.90"
    assert inv.get("total") is None
