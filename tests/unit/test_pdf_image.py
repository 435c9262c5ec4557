"""PDF and image readers on bad input, scans, batches and list pages.

Every file here is real: PDFs written by pypdf/ReportLab, QR codes by segno,
scans rendered, rotated, blurred and JPEG-compressed with Pillow.
"""

from __future__ import annotations

import functools
import io
import random
import struct
import zlib
from pathlib import Path

import pypdf
import pytest
import segno
from PIL import Image, ImageDraw, ImageFilter
from reportlab import rl_config
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen import canvas

from agent.errors import ExtractError
from agent.extract import extract_bytes
from agent.extract.image import decode_qr_image, read_image, title_from_qr
from agent.extract.pdf import MAX_PAGES, read_pdf

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "samples"
DIGITAL_PDF = SAMPLES / "kudeerliu48-web__fapiaohezi" / "238bd1f5_26427000000145889304.pdf"
OLD_PDF = SAMPLES / "kudeerliu48-web__fapiaohezi" / "73c00f18_042002200411_51905150.pdf"

QR_A = "01,32,,25317000002856140513,73.20,20251108,,5F2A"
QR_B = "01,10,044032599411,05286503,2959.10,20260601,14709567756825065566,F62F,"
QR_C = "01,31,,24112000000048542163,4449.00,20240528,,B2B6"

pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))


def qr_image(text: str, scale: int) -> Image.Image:
    buf = io.BytesIO()
    segno.make_qr(text, error="m").save(buf, kind="png", scale=scale, border=4)
    buf.seek(0)
    return Image.open(buf).convert("L")


@functools.lru_cache(maxsize=None)
def scan(payload: str | None, dpi: int = 200, angle: float = 1.5, seed: int = 0) -> Image.Image:
    """A paper invoice scanned at `dpi`: a 2 cm QR top left, text lines,
    a slight skew, blur and sensor noise."""
    rng = random.Random(seed)
    w, h = int(9.45 * dpi), int(5.5 * dpi)
    page = Image.new("L", (w, h), 238)
    draw = ImageDraw.Draw(page)
    for i in range(12):
        draw.text((int(dpi * 1.2), int(dpi * (0.8 + i * 0.35))), f"INVOICE LINE {i}  {rng.randrange(10000)}.{rng.randrange(100):02d}", fill=40)
    draw.rectangle((dpi // 4, int(dpi * 1.3), w - dpi // 4, h - dpi // 4), outline=60, width=2)
    if payload:
        module_px = max(1, round(0.79 * dpi / 41))  # 2 cm over ~41 modules with quiet zone
        page.paste(qr_image(payload, module_px), (dpi // 5, dpi // 5))
    page = page.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=238, expand=True)
    page = page.filter(ImageFilter.GaussianBlur(0.7))
    noise = Image.effect_noise(page.size, 12)
    return Image.blend(page, noise, 0.08)  # cached: callers must not draw on it


def jpeg(img: Image.Image, quality: int = 70) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def pdf_of(pages: list[dict], a85: bool = False) -> bytes:
    """A PDF with, per page, optional lines of text and an optional image
    (embedded as JPEG when `jpeg` is set, as scanners do)."""
    buf = io.BytesIO()
    # Scanner PDFs carry binary streams; ReportLab's default ASCII85 wrapping
    # would only measure pypdf's pure-Python ASCII85 decoder.
    old_a85, rl_config.useA85 = rl_config.useA85, int(a85)
    try:
        c = canvas.Canvas(buf, pagesize=(680, 400))
        for page in pages:
            if page.get("image") is not None:
                img = page["image"]
                source = io.BytesIO(jpeg(img)) if page.get("jpeg", True) else img
                c.drawImage(ImageReader(source), *page.get("image_box", (0, 0, 680, 400)))
            c.setFont("STSong-Light", 10)
            for i, line in enumerate(page.get("lines", [])):
                c.drawString(20, 380 - 14 * i, line)
            c.showPage()
        c.save()
    finally:
        rl_config.useA85 = old_a85
    return buf.getvalue()


# --- bad PDFs -----------------------------------------------------------------

def _encrypted(user_password: str) -> bytes:
    writer = pypdf.PdfWriter(clone_from=io.BytesIO(DIGITAL_PDF.read_bytes()))
    writer.encrypt(user_password=user_password, owner_password="owner-secret", algorithm="RC4-128")
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def test_pdf_with_user_password_is_encrypted():
    with pytest.raises(ExtractError) as e:
        read_pdf(_encrypted("secret"))
    assert e.value.reason == "encrypted"


def test_pdf_with_owner_password_only_is_read():
    (inv,) = read_pdf(_encrypted(""))
    assert inv.get("number") == "26427000000145889304"
    assert inv.fields["number"].source == "qr"
    assert inv.get("seller_tax_id") == "914201006791228986"


def test_aes_encrypted_pdf_is_reported_as_encrypted():
    # pypdf writes AES only with the cryptography package, which we do not
    # ship; an RC4 file relabelled AESV2 (same key and O/U values for R4)
    # opens with the empty password and then needs AES for every stream.
    from pypdf.generic import DictionaryObject, NameObject, NumberObject
    writer = pypdf.PdfWriter(clone_from=io.BytesIO(DIGITAL_PDF.read_bytes()))
    writer.encrypt(user_password="", owner_password="owner-secret", algorithm="RC4-128")
    entry = writer._encrypt_entry
    entry.update({NameObject("/V"): NumberObject(4), NameObject("/R"): NumberObject(4),
                  NameObject("/StmF"): NameObject("/StdCF"), NameObject("/StrF"): NameObject("/StdCF"),
                  NameObject("/CF"): DictionaryObject({NameObject("/StdCF"): DictionaryObject({
                      NameObject("/CFM"): NameObject("/AESV2"), NameObject("/Length"): NumberObject(16),
                      NameObject("/AuthEvent"): NameObject("/DocOpen")})})})
    buf = io.BytesIO()
    writer.write(buf)
    with pytest.raises(ExtractError) as e:
        read_pdf(buf.getvalue())
    assert e.value.reason == "encrypted"
    assert "AES" in e.value.message


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_truncated_pdf(cut):
    data = DIGITAL_PDF.read_bytes()
    with pytest.raises(ExtractError) as e:
        read_pdf(data[:int(len(data) * cut)])
    assert e.value.reason == "truncated"


def test_corrupt_pdf():
    with pytest.raises(ExtractError) as e:
        read_pdf(b"%PDF-1.7\n" + b"\x00not a pdf body " * 200 + b"\n%%EOF\n")
    assert e.value.reason == "corrupt"


def test_zero_byte_file_is_refused_by_the_dispatcher():
    with pytest.raises(ExtractError) as e:
        extract_bytes(b"")
    assert e.value.reason == "empty"


def test_too_many_pages():
    writer = pypdf.PdfWriter()
    for _ in range(MAX_PAGES + 1):
        writer.add_blank_page(100, 100)
    buf = io.BytesIO()
    writer.write(buf)
    with pytest.raises(ExtractError) as e:
        read_pdf(buf.getvalue())
    assert e.value.reason == "limit-exceeded"


def test_oversized_image_in_pdf_is_refused_before_decoding():
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject, NumberObject
    writer = pypdf.PdfWriter()
    page = writer.add_blank_page(100, 100)
    img = DecodedStreamObject()
    img.set_data(b"\x00" * 64)
    img.update({NameObject("/Type"): NameObject("/XObject"), NameObject("/Subtype"): NameObject("/Image"),
                NameObject("/Width"): NumberObject(20000), NameObject("/Height"): NumberObject(20000),
                NameObject("/ColorSpace"): NameObject("/DeviceGray"),
                NameObject("/BitsPerComponent"): NumberObject(8)})
    page[NameObject("/Resources")] = DictionaryObject({NameObject("/XObject"): DictionaryObject(
        {NameObject("/Im0"): writer._add_object(img)})})
    # Drawn on the page: an image no page draws is never decoded at all.
    content = DecodedStreamObject()
    content.set_data(b"q 100 0 0 100 0 0 cm /Im0 Do Q")
    page[NameObject("/Contents")] = writer._add_object(content)
    buf = io.BytesIO()
    writer.write(buf)
    with pytest.raises(ExtractError) as e:
        read_pdf(buf.getvalue())
    assert e.value.reason == "limit-exceeded"


def test_blank_pdf_has_no_qr():
    with pytest.raises(ExtractError) as e:
        read_pdf(pdf_of([{}]))
    assert e.value.reason == "no-qr"


def test_pdf_with_url_qr_and_no_labels_is_not_an_invoice():
    data = pdf_of([{"lines": ["行程单 申请日期：2025-11-08", "共5笔行程， 合计73.20元"] * 5,
                    "image": qr_image("https://example.com/p/abc", 4), "jpeg": False,
                    "image_box": (500, 250, 120, 120)}])
    (inv,) = read_pdf(data)
    assert inv.is_invoice is False
    assert inv.get("qr") == "https://example.com/p/abc"
    assert "not an invoice QR" in inv.not_invoice_reason


def test_text_pdf_without_labels_or_qr_is_not_an_invoice():
    # A 20-digit order id has the shape of a 数电 number; without invoice
    # labels or an invoice QR it does not make the page an invoice.
    data = pdf_of([{"lines": ["滴滴出行-行程单", "订单号：25317000002856140513", "共5笔行程， 合计73.20元"] * 3}])
    (inv,) = read_pdf(data)
    assert inv.is_invoice is False
    assert inv.get("number") is None
    assert inv.not_invoice_reason == "no invoice QR code and no invoice labels in its text"


def test_ascii85_wrapped_qr_image_is_read():
    # ReportLab's default: images as ASCII85 + Flate, decoded by our fast path.
    data = pdf_of([{"lines": ["发票号码：24112000000048542163", "开票日期：2024年05月28日"],
                    "image": qr_image(QR_C, 3), "jpeg": False, "image_box": (560, 280, 100, 100)}],
                  a85=True)
    assert b"/ASCII85Decode" in data
    (inv,) = read_pdf(data)
    assert inv.get("qr") == QR_C
    assert inv.fields["number"].source == "qr"
    assert not inv.conflicts


# --- batches, list pages and scans ---------------------------------------------------

def test_merged_invoices_give_one_record_per_invoice_page():
    writer = pypdf.PdfWriter()
    for path in (DIGITAL_PDF, OLD_PDF):
        writer.append(io.BytesIO(path.read_bytes()))
    buf = io.BytesIO()
    writer.write(buf)
    invoices = read_pdf(buf.getvalue())
    assert [(i.page, i.get("number"), i.get("code")) for i in invoices] == [
        (1, "26427000000145889304", None), (2, "51905150", "042002200411")]
    assert all(not i.conflicts for i in invoices)


def test_face_with_list_pages_stays_one_invoice():
    face = {"lines": ["电子发票（普通发票）  发票号码：25317000002856140513", "开票日期：2025年11月08日",
                      "(详见销货清单)      71.07   3%   2.13",
                      "合 计   ¥71.07   ¥2.13", "价税合计（大写） 柒拾叁圆贰角整 （小写）¥73.20"],
            "image": qr_image(QR_A, 3), "jpeg": False, "image_box": (560, 280, 100, 100)}
    listing = {"lines": ["销货清单  发票号码：25317000002856140513", "项目名称       数量    单价     金额    税率    税额",
                         "*运输服务*客运服务费        1     71.07      71.07   3%     2.13", "小计  71.07  2.13"]}
    invoices = read_pdf(pdf_of([face, listing, dict(listing)]))
    assert len(invoices) == 1
    inv = invoices[0]
    assert inv.page is None
    assert inv.get("number") == "25317000002856140513"
    assert str(inv.get("total")) == "73.20"
    assert [i.name for i in inv.items] == ["*运输服务*客运服务费"] * 2


def test_trip_sheet_after_an_invoice_stays_with_it():
    invoice_page = {"lines": ["电子发票（普通发票）  发票号码：25317000002856140513", "开票日期：2025年11月08日",
                              "价税合计（大写） 柒拾叁圆贰角整 （小写）¥73.20"]}
    trip_sheet = {"lines": ["滴滴出行-行程单", "订单号：25317000002856149999", "共5笔行程， 合计73.20元"]}
    (inv,) = read_pdf(pdf_of([invoice_page, trip_sheet]))
    assert inv.get("number") == "25317000002856140513"
    assert inv.page is None


def test_scanner_batch_pdf_gives_one_invoice_per_page():
    pages = [{"image": scan(p, seed=i)} for i, p in enumerate((QR_A, QR_B, QR_C))]
    invoices = read_pdf(pdf_of(pages))
    assert [(i.page, i.get("number")) for i in invoices] == [
        (1, "25317000002856140513"), (2, "05286503"), (3, "24112000000048542163")]
    assert invoices[1].get("title") == "深圳增值税电子普通发票"
    assert all(f.source == "qr" for i in invoices for f in i.fields.values())


def test_searchable_scan_reads_the_qr_in_the_page_image_and_the_ocr_text():
    page = {"image": scan(QR_B, angle=3.0),
            "lines": ["发票代码:044032599411  发票号码:05286503", "开票日期:2026年06月01日"]}
    (inv,) = read_pdf(pdf_of([page]))
    assert inv.fields["number"].source == "qr"
    assert inv.fields["date"].source == "qr"
    assert inv.get("code") == "044032599411"
    assert not inv.conflicts


def test_scan_page_without_qr_is_kept_with_a_warning():
    invoices = read_pdf(pdf_of([{"image": scan(QR_B)}, {"image": scan(None, seed=3)}]))
    assert len(invoices) == 1
    assert [p.code for p in invoices[0].problems] == ["page-unread"]


def test_scanned_pdf_without_qr():
    with pytest.raises(ExtractError) as e:
        read_pdf(pdf_of([{"image": scan(None)}]))
    assert e.value.reason == "no-qr"


# --- images ---------------------------------------------------------------------------

@pytest.mark.parametrize("dpi,angle", [(200, 1.5), (300, -2.0), (200, 90.0), (300, 180.0)])
def test_scanned_jpeg_decodes(dpi, angle):
    (inv,) = read_image(jpeg(scan(QR_B, dpi=dpi, angle=angle)))
    assert inv.get("number") == "05286503"
    assert inv.get("code") == "044032599411"
    assert str(inv.get("amount")) == "2959.10"
    assert inv.get("check_code") == "14709567756825065566"


@pytest.mark.parametrize("angle", [1.5, 180.0])
def test_big_png_scan_decodes_wherever_the_qr_is(angle):
    # The top rows are tried first; a QR elsewhere (an upside-down scan)
    # takes the full decode.
    buf = io.BytesIO()
    scan(QR_C, dpi=200, angle=angle).save(buf, "PNG")
    (inv,) = read_image(buf.getvalue())
    assert inv.get("qr") == QR_C


def test_tiny_qr_needs_the_upscale_retry():
    small = qr_image(QR_C, 1).resize((60, 60), Image.Resampling.BILINEAR)
    assert decode_qr_image(small) == [QR_C]


def test_png_with_url_qr_is_not_an_invoice():
    buf = io.BytesIO()
    qr_image("https://v.didi.cn/p/x", 4).save(buf, "PNG")
    (inv,) = read_image(buf.getvalue())
    assert inv.is_invoice is False
    assert inv.get("qr") == "https://v.didi.cn/p/x"


def test_image_without_qr():
    with pytest.raises(ExtractError) as e:
        read_image(jpeg(scan(None)))
    assert e.value.reason == "no-qr"
    assert "no invoice QR code" in e.value.message


def test_corrupt_and_truncated_images():
    with pytest.raises(ExtractError) as e:
        read_image(b"\x89PNG\r\n\x1a\n" + b"junk" * 50)
    assert e.value.reason == "corrupt"
    data = jpeg(scan(QR_A))
    with pytest.raises(ExtractError) as e:
        read_image(data[:len(data) // 3])
    assert e.value.reason in {"truncated", "corrupt"}


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00")) + chunk(b"IEND", b"")


def test_decompression_bomb_image_is_refused():
    with pytest.raises(ExtractError) as e:
        read_image(_png_header_only(30000, 30000))
    assert e.value.reason == "limit-exceeded"


def test_multi_frame_tiff_batch():
    frames = [scan(p, seed=i).convert("L") for i, p in enumerate((QR_A, QR_C))]
    buf = io.BytesIO()
    frames[0].save(buf, "TIFF", save_all=True, append_images=frames[1:], compression="tiff_deflate")
    invoices = read_image(buf.getvalue())
    assert [(i.page, i.get("number")) for i in invoices] == [
        (1, "25317000002856140513"), (2, "24112000000048542163")]


def test_a_tiff_of_many_frames_is_refused_past_its_pixels_in_all_not_read_for_minutes(monkeypatch):
    # 200 blank 6000 x 6000 group-4 frames (388 KB) kept a reader ~3 minutes:
    # each frame under the per-frame limit, every one searched in full.
    import agent.extract.image as image

    blank = Image.new("1", (400, 300), 1)
    buf = io.BytesIO()
    blank.save(buf, "TIFF", save_all=True, append_images=[blank] * 9, compression="group4")
    with pytest.raises(ExtractError, match="no invoice QR"):
        read_image(buf.getvalue())      # 1.2 million pixels in all: searched
    monkeypatch.setattr(image, "MAX_TOTAL_PIXELS", 5 * 400 * 300)
    with pytest.raises(ExtractError) as e:
        read_image(buf.getvalue())
    assert e.value.reason == "limit-exceeded" and "frames 1 to 6" in e.value.message


@pytest.mark.parametrize("kind,code,title", [
    ("10", "044032599411", "深圳增值税电子普通发票"),
    ("20", "052002100113", "贵州增值税电子专用发票"),
    ("04", "3300153320", "浙江增值税普通发票"),
    ("32", None, "电子发票（普通发票）"),
    ("51", None, "电子发票（铁路电子客票）"),
    ("10", None, None),
    ("99", None, None),
])
def test_title_from_qr(kind, code, title):
    assert title_from_qr(kind, code) == title


def test_a_content_stream_that_inflates_like_a_bomb_is_refused_before_pdfium_reads_it():
    # PDFium inflates a page's content whole (300 MB here would take 600 MB);
    # the file is measured first, 1 MB at a time.
    import resource

    from tests.hostile.pdfs import flate_bomb_content

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ExtractError) as e:
        read_pdf(flate_bomb_content("unit", 300))
    assert e.value.reason == "limit-exceeded"
    assert "inflates" in e.value.message
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 150, grown_mb


@pytest.mark.parametrize("strategy", ["default", "rle"])
def test_no_zlib_stream_inflates_past_the_ratio_the_bomb_check_skips_by(strategy):
    # check_inflation skips a stream with too few bytes after it to inflate
    # past the limit: that rests on deflate's 1,032:1 ceiling, which the
    # densest input (one byte repeated) reaches with either strategy.
    import zlib

    from agent.extract import pdf_bombs

    plain = b"\0" * 20_000_000
    packer = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_RLE if strategy == "rle" else zlib.Z_DEFAULT_STRATEGY)
    packed = packer.compress(plain) + packer.flush()
    assert 1000 < len(plain) / len(packed) < pdf_bombs._DEFLATE_MAX_RATIO


def test_a_bomb_is_refused_wherever_it_sits_in_the_file():
    # A bomb is at least MAX_INFLATED_BYTES / 1,032 bytes long, so it always
    # starts before the tail the check skips, even as the file's last stream.
    import zlib

    from agent.extract import pdf_bombs

    bomb = zlib.compress(b"\0" * (pdf_bombs.MAX_INFLATED_BYTES + 1_000_000), 9)
    data = (b"%PDF-1.4\n1 0 obj\n<< /Length " + str(len(bomb)).encode() + b" /Filter /FlateDecode >>\nstream\n"
            + bomb + b"\nendstream\nendobj\n%%EOF\n")
    with pytest.raises(ExtractError) as e:
        pdf_bombs.check_inflation(data)
    assert e.value.reason == "limit-exceeded"
