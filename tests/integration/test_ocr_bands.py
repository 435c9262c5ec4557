"""OCR of only the bands a scan's QR leaves open (`ocr.read_regions`): on
the generated scans it reads what the whole page reads, right, or gives
way to the whole page; never a different value."""

from __future__ import annotations

import datetime as dt
import io
import random
from decimal import Decimal
from functools import lru_cache

import pypdfium2
import pytest
import segno
from PIL import Image, ImageDraw

from agent.extract import ocr
from agent.extract.ocr_frame import LEGACY, QrFrame
from agent.extract.ocr_layout import find_qr, upright
from agent.extract.pdf_images import decode_pdf_image, image_candidates
from tests.corpus.generate import make_invoice

TODAY = dt.date(2026, 11, 29)
STYLES = ("scan-jpg", "scan-png", "scan-pdf")
COUNT = 12  # the scans of test_ocr_scans: four of each style
PRINTED_ONLY = ("buyer_name", "buyer_tax_id", "seller_name", "seller_tax_id", "amount", "tax", "total",
                "total_in_words")


def page_image(g) -> Image.Image:
    if g.ext != "pdf":
        img = Image.open(io.BytesIO(g.data))
        img.load()
        return img
    page = pypdfium2.PdfDocument(g.data)[0]
    image, width, height = max(image_candidates(page), key=lambda c: c[1] * c[2])
    return decode_pdf_image(image, width, height)


def as_printed(value) -> str:
    return f"{value:.2f}" if isinstance(value, Decimal) else str(value)


@lru_cache(maxsize=None)
def readings():
    out = []
    for i in range(COUNT):
        g = make_invoice(random.Random(1000 + i), STYLES[i % 3], TODAY)
        img = page_image(g)
        qr = find_qr(img)
        out.append((f"{i:02d}-{g.style}", g, ocr.read_regions(img, qr), ocr.read_whole_page(upright(img, qr))))
    return tuple(out)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_the_bands_read_the_fields_the_whole_page_reads_and_nothing_else():
    by_bands, wrong, lost = 0, [], []
    for name, g, bands, whole in readings():
        if bands is None:
            continue  # the whole page is read instead (read_page)
        by_bands += 1
        assert bands.path == "regions"
        for key in PRINTED_ONLY:
            truth = g.truth[key]
            if key in bands.fields and as_printed(bands.fields[key]) != truth:
                wrong.append(f"{name} {key}: {bands.fields[key]!r} != {truth!r}")
            elif key not in bands.fields and whole.fields.get(key) is not None \
                    and as_printed(whole.fields[key]) == truth:
                lost.append(f"{name} {key}: the whole page reads {truth!r}")
        # What the QR carries is not what the bands are read for.
        assert not set(bands.fields) - set(PRINTED_ONLY), name
    assert not wrong, "\n".join(wrong)
    assert not lost, "\n".join(lost)
    assert by_bands >= COUNT * 3 // 4, f"only {by_bands} of {COUNT} scans were read by their bands"


def test_read_page_takes_the_bands_of_a_scan_whose_qr_reads_and_gets_its_parties_right():
    g = make_invoice(random.Random(1001), "scan-png", TODAY)  # a 数电 face: parties side by side
    reading = ocr.read_page(page_image(g))
    assert reading.path == "regions" and reading.error is None
    for key in ("buyer_name", "buyer_tax_id", "seller_name", "seller_tax_id", "total_in_words"):
        assert reading.fields[key] == g.truth[key], key


def test_a_band_that_does_not_read_sends_the_page_to_the_whole_page_pass():
    g = make_invoice(random.Random(1000), "scan-jpg", TODAY)  # an old face
    img = page_image(g).convert("RGB")
    qr = find_qr(img)
    corners = qr.position
    frame = QrFrame.of(*((p.x, p.y) for p in (corners.top_left, corners.top_right, corners.bottom_left)))
    # Paper over the seller's block: its name and tax id are gone.
    box = [frame.page_point(LEGACY, x, y) for x, y in ((25, 276), (350, 276), (350, 310), (25, 310))]
    ImageDraw.Draw(img).polygon(box, fill=(255, 255, 255))
    assert ocr.read_regions(img, qr) is None
    reading = ocr.read_page(img)
    assert reading.path == "page" and reading.fields["buyer_name"] == g.truth["buyer_name"]
    assert "seller_tax_id" not in reading.fields


def test_a_qr_of_a_face_without_known_bands_is_read_whole():
    # A railway ticket's QR (type 51): its face is not a VAT layout.
    qr = segno.make_qr("01,51,,26429165800001234567,58.00,20261101,,1F2E,", error="m")
    img = Image.new("L", (1600, 1000), 255)
    buf = io.BytesIO()
    qr.save(buf, kind="png", scale=8, border=2)
    img.paste(Image.open(buf).convert("L"), (60, 40))
    assert ocr.read_regions(img) is None


def test_the_frame_follows_a_turned_and_scaled_symbol():
    # A symbol 104 px across (2 px a pt), turned a quarter clockwise: the
    # face's x axis runs down the page.
    frame = QrFrame.of((500, 100), (500, 100 + 104), (500 - 104, 100))
    assert frame is not None
    x, y = frame.page_point(LEGACY, LEGACY.symbol_x + 10, LEGACY.symbol_y + 20)
    assert abs(frame.px_per_pt - 104 / 51.8) < 1e-9
    assert abs(x - (500 - 20 * frame.px_per_pt)) < 1e-6 and abs(y - (100 + 10 * frame.px_per_pt)) < 1e-6
    assert QrFrame.of((0, 0), (100, 0), (0, 40)) is None  # no symbol is that shape
