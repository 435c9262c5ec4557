"""OCR's rules for what it may add to an invoice, and the page geometry it
rebuilds rows from. The rules run on readings built here (no engine); the
geometry on boxes as the engine returns them. The engine itself is exercised
on real and generated scans in tests/integration/test_ocr_scans.py."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
import segno
from PIL import Image

from agent.extract import ocr, ocr_engine, ocr_layout
from agent.extract.ocr import OcrReading, apply_reading
from agent.extract.ocr_layout import EngineLine, TextBox, brackets_as_printed, layout_text
from agent.model import Invoice

BUYER_ID = "91370500751784897P"     # valid check digit (a real sample's)
SELLER_ID = "92522726MA7GNHJ07M"


def qr_invoice(**fields) -> Invoice:
    invoice = Invoice()
    for name, value in fields.items():
        invoice.offer(name, value, "qr")
    return invoice


def codes(invoice: Invoice) -> list[tuple[str, str | None]]:
    return [(p.code, p.field) for p in invoice.problems]


def test_ocr_fills_what_the_qr_lacks_and_marks_the_source():
    invoice = qr_invoice(number="00008006", amount=Decimal("100.00"))
    apply_reading(invoice, OcrReading({
        "tax": Decimal("13.00"), "total": Decimal("113.00"), "total_in_words": "壹佰壹拾叁圆整",
        "buyer_name": "某某公司", "buyer_tax_id": BUYER_ID, "seller_tax_id": SELLER_ID}))
    assert invoice.get("total") == Decimal("113.00")
    assert invoice.get("buyer_tax_id") == BUYER_ID
    assert {invoice.fields[n].source for n in ("tax", "total", "total_in_words", "buyer_name")} == {"ocr"}
    assert invoice.fields["number"].source == "qr"
    assert invoice.problems == [] and invoice.conflicts == []


def test_a_disagreement_with_the_qr_is_a_warning_and_the_qr_value_stays():
    invoice = qr_invoice(number="00008006", date="2022-05-05")
    apply_reading(invoice, OcrReading({"number": "00008066"}))
    assert invoice.get("number") == "00008006"
    assert invoice.conflicts == []
    (problem,) = invoice.problems
    assert (problem.code, problem.severity, problem.field) == ("ocr-disagrees", "warning", "number")
    assert "00008066" in problem.message and "00008006" in problem.message


def test_a_tax_id_with_a_wrong_check_digit_is_dropped_with_a_warning():
    invoice = qr_invoice(number="1")
    apply_reading(invoice, OcrReading({"buyer_tax_id": BUYER_ID[:-1] + "Q", "seller_tax_id": SELLER_ID}))
    assert invoice.get("buyer_tax_id") is None
    assert invoice.get("seller_tax_id") == SELLER_ID
    assert codes(invoice) == [("ocr-unverified", "buyer_tax_id")]
    assert "补录" in invoice.problems[0].message


@pytest.mark.parametrize("tax_id,digit,letter", [
    (SELLER_ID, "0", "O"), (BUYER_ID, "1", "I"), (BUYER_ID, "5", "S"), (SELLER_ID, "2", "Z"),
])
def test_letters_no_tax_id_holds_are_read_as_their_digit_lookalikes(tax_id, digit, letter):
    invoice = qr_invoice(number="1")
    apply_reading(invoice, OcrReading({"seller_tax_id": tax_id.replace(digit, letter)}))
    assert invoice.get("seller_tax_id") == tax_id
    assert invoice.problems == []


def test_a_w_read_as_two_vs_is_joined_when_the_check_digit_then_holds():
    tax_id = "91420106394949007W"
    from agent.validate.uscc import is_valid_uscc
    assert is_valid_uscc(tax_id)
    invoice = qr_invoice(number="1")
    apply_reading(invoice, OcrReading({"seller_tax_id": tax_id.replace("W", "VV")}))
    assert invoice.get("seller_tax_id") == tax_id


def test_a_truncated_tax_id_is_not_taken():
    invoice = qr_invoice(number="1")
    apply_reading(invoice, OcrReading({"seller_tax_id": SELLER_ID[:16]}))
    assert invoice.get("seller_tax_id") is None
    assert codes(invoice) == [("ocr-unverified", "seller_tax_id")]


def test_money_that_does_not_add_up_is_dropped_but_a_total_its_words_confirm_stays():
    invoice = qr_invoice(number="1", amount=Decimal("11783.51"))
    apply_reading(invoice, OcrReading({
        "amount": Decimal("11783.51"), "tax": Decimal("153186.00"), "total": Decimal("13315.37"),
        "total_in_words": "壹万叁仟叁佰壹拾伍圆叁角柒分"}))
    assert invoice.get("tax") is None
    assert invoice.get("total") == Decimal("13315.37")
    assert invoice.fields["total"].source == "ocr"
    assert ("ocr-unverified", "tax") in codes(invoice)


def test_money_that_does_not_add_up_without_confirming_words_is_all_dropped():
    invoice = qr_invoice(number="1", amount=Decimal("100.00"))
    apply_reading(invoice, OcrReading({"tax": Decimal("31.00"), "total": Decimal("113.00")}))
    assert invoice.get("tax") is None and invoice.get("total") is None
    assert invoice.get("amount") == Decimal("100.00")  # the QR's stays
    assert {f for c, f in codes(invoice)} == {"tax", "total"}


def test_words_that_do_not_spell_the_total_are_dropped():
    invoice = qr_invoice(number="1", total=Decimal("85.34"))
    apply_reading(invoice, OcrReading({"total_in_words": "捌拾伍圆"}))
    assert invoice.get("total_in_words") is None
    assert codes(invoice) == [("ocr-unverified", "total_in_words")]


def test_words_with_san_read_as_its_lookalike_are_mended_before_parsing():
    assert ocr._fix_words("价税合计(大写) 壹佰伍拾参圆肆角捌分 参考") == "价税合计(大写) 壹佰伍拾叁圆肆角捌分 参考"


def test_an_engine_failure_keeps_the_qr_reading_and_says_so():
    invoice = qr_invoice(number="00008006")
    apply_reading(invoice, OcrReading({}, error="onnxruntime: out of memory"))
    assert invoice.get("number") == "00008006"
    (problem,) = invoice.problems
    assert problem.code == "ocr-failed" and "out of memory" in problem.message


def test_read_page_never_raises(monkeypatch):
    def broken(img):
        raise RuntimeError("engine exploded")
    monkeypatch.setattr(ocr, "read_boxes", broken)
    reading = ocr.read_page(Image.new("L", (40, 40), 255))
    assert reading.fields == {} and reading.error == "engine exploded"


def test_line_items_are_kept_only_when_they_sum_to_the_totals():
    from agent.model import LineItem
    items = [LineItem("*服务*费", amount=Decimal("60.00"), tax=Decimal("3.60")),
             LineItem("*服务*费", amount=Decimal("40.00"), tax=Decimal("2.40"))]
    good = qr_invoice(number="1", amount=Decimal("100.00"))
    apply_reading(good, OcrReading({"tax": Decimal("6.00"), "total": Decimal("106.00")}, items))
    assert len(good.items) == 2
    bad = qr_invoice(number="1", amount=Decimal("100.00"))
    misread = [items[0], LineItem("*服务*费", amount=Decimal("46.00"), tax=Decimal("2.40"))]
    apply_reading(bad, OcrReading({"tax": Decimal("6.00"), "total": Decimal("106.00")}, misread))
    assert bad.items == []


def test_a_missed_total_row_takes_the_lines_tax_only_when_three_readings_agree():
    # A real screenshot (imethanlee__OCR/invoice.png): OCR reads the goods line
    # and the 价税合计 but not the 合计 row's 税额.
    from agent.model import LineItem
    line = [LineItem("*经纪代理服务*代订机票款", amount=Decimal("37990.57"), tax=Decimal("2279.43"))]
    printed = {"total": Decimal("40270.00"), "total_in_words": "肆万零贰佰柒拾圆整"}
    good = qr_invoice(number="37820761", amount=Decimal("37990.57"))
    apply_reading(good, OcrReading(dict(printed), line))
    assert (good.get("tax"), good.fields["tax"].source, len(good.items)) == (Decimal("2279.43"), "ocr", 1)
    # The line's 税额 misread: 金额 + 税额 is not the 价税合计.
    misread = [LineItem("*经纪代理服务*代订机票款", amount=Decimal("37990.57"), tax=Decimal("2279.48"))]
    bad = qr_invoice(number="37820761", amount=Decimal("37990.57"))
    apply_reading(bad, OcrReading(dict(printed), misread))
    assert bad.get("tax") is None and bad.items == []
    # A 价税合计 that nothing confirms (no 大写, no QR) confirms no tax.
    alone = qr_invoice(number="37820761", amount=Decimal("37990.57"))
    apply_reading(alone, OcrReading({"total": Decimal("40270.00")}, line))
    assert alone.get("tax") is None


# -- a print with no QR: the identity by its structure alone ---------------------

def taxi(**fields) -> OcrReading:
    # What OCR reads off a photo of a 北京 taxi invoice: 代码 and 号码 with no label.
    return OcrReading({"code": "111001981004", "number": "24698650", **fields}, says_invoice=True)


def test_a_print_with_a_sound_code_and_number_is_an_invoice_read_by_ocr_alone():
    invoice = ocr.invoice_from_print(taxi())
    assert (invoice.get("code"), invoice.get("number")) == ("111001981004", "24698650")
    assert {f.source for f in invoice.fields.values()} == {"ocr"}
    assert codes(invoice) == [("ocr-only", None)]


@pytest.mark.parametrize("reading", [
    taxi(code="991001981004"),                       # no such region
    taxi(number="2469865"),                          # 7 digits under a 代码
    taxi(code=None),                                 # an 8-digit 号码 alone is no identity
    OcrReading({"code": "111001981004", "number": "24698650"}),  # nothing says 发票
    OcrReading({"number": "25997000002856140513"}, says_invoice=True),  # 数电: province 99
    OcrReading({}, error="engine failed", says_invoice=True),
])
def test_a_print_without_a_sound_identity_is_no_invoice(reading):
    assert ocr.invoice_from_print(reading) is None


def test_money_from_the_print_alone_stays_only_when_a_second_reading_confirms_it():
    fare = ocr.invoice_from_print(taxi(total=Decimal("53.88")))  # 53.80 misread, nothing to check it by
    assert fare.get("total") is None and ("ocr-unverified", "total") in codes(fare)
    confirmed = ocr.invoice_from_print(taxi(total=Decimal("113.00"), total_in_words="壹佰壹拾叁圆整",
                                            amount=Decimal("100.00"), tax=Decimal("13.00")))
    assert (confirmed.get("total"), confirmed.get("amount"), confirmed.get("tax")) == (
        Decimal("113.00"), Decimal("100.00"), Decimal("13.00"))
    partial = ocr.invoice_from_print(taxi(total=Decimal("113.00"), total_in_words="壹佰壹拾叁圆整",
                                          amount=Decimal("100.00")))
    assert partial.get("total") == Decimal("113.00") and partial.get("amount") is None
    shudian = ocr.invoice_from_print(OcrReading(
        {"number": "25317000002856140513", "date": __import__("datetime").date(2025, 11, 8)}, says_invoice=True))
    assert shudian.get("number") == "25317000002856140513" and shudian.get("code") is None


def test_a_printed_date_before_its_codes_stock_year_is_left_empty():
    """A 10-digit 代码 of 2024 stock (digits 5-6) and a 0-led 12-digit one of
    2023 (digits 6-7): no invoice is written on paper not yet printed, so
    an earlier date is a misread, left for 补录; a later one is kept."""
    import datetime as dt

    def read(code, date):
        return ocr.invoice_from_print(OcrReading({"code": code, "number": "04571234", "date": date},
                                                 says_invoice=True))

    early = read("3100241130", dt.date(2021, 3, 1))
    assert early.get("date") is None and ("ocr-unverified", "date") in codes(early)
    assert early.get("code") == "3100241130"
    assert read("3100241130", dt.date(2024, 3, 1)).get("date") == dt.date(2024, 3, 1)
    assert read("044002300111", dt.date(2022, 12, 31)).get("date") is None
    assert read("044002300111", dt.date(2023, 1, 2)).get("date") == dt.date(2023, 1, 2)


# -- geometry -----------------------------------------------------------------

def box(text, left, top, width=200, height=20) -> TextBox:
    return TextBox(text, left, top, left + width, top + height)


def test_layout_text_rows_are_top_to_bottom_and_columns_left_to_right():
    boxes = [box("名称:卖方", 600, 103), box("名称:买方", 10, 100), box("价税合计", 10, 200)]
    assert layout_text(boxes) == "名称:买方  名称:卖方\n价税合计"


def test_layout_text_of_nothing_is_empty():
    assert layout_text([]) == ""


def quad(x, y, width, height, angle):
    """Corners (clockwise from top left) of a box turned by `angle` radians."""
    c, s = math.cos(angle), math.sin(angle)
    return [(x + dx * c - dy * s, y + dx * s + dy * c)
            for dx, dy in ((0, 0), (width, 0), (width, height), (0, height))]


def test_skew_is_the_median_slope_of_long_lines_and_short_boxes_do_not_vote():
    angle = math.radians(4)
    quads = [quad(10, 100 + 40 * i, 400, 20, angle) for i in range(5)]
    quads.append(quad(500, 100, 20, 20, math.radians(40)))   # one glyph: no vote
    assert ocr_layout.skew(quads) == pytest.approx(angle)
    assert ocr_layout.skew([]) == 0.0


def test_turning_back_by_the_skew_puts_a_crooked_row_on_one_line():
    angle = math.radians(4)
    left, right = quad(10, 100, 300, 20, angle), quad(700, 100 + 690 * math.tan(angle), 300, 20, angle)
    turn = ocr_layout.skew([left, right])

    def straightened(q, text):
        pts = [ocr_layout.rotate(p, turn) for p in q]
        return TextBox(text, min(p[0] for p in pts), min(p[1] for p in pts),
                       max(p[0] for p in pts), max(p[1] for p in pts))

    # Uncorrected, the right box sits 48 px lower: a row of its own.
    assert layout_text([straightened(left, "买方"), straightened(right, "卖方")]) == "买方  卖方"


def char_boxes(advances: list[float]) -> list:
    out, x = [], 0.0
    for a in advances:
        out.append([[x, 0], [x + a * 0.9, 0], [x + a * 0.9, 16], [x, 16]])
        x += a
    return out


def ctc_line(text: str, advances: list[float]) -> EngineLine:
    return EngineLine([(0, 0), (sum(advances), 0), (sum(advances), 16), (0, 16)], text,
                      char_boxes(advances), list(text))


def test_without_pixels_brackets_follow_the_recognisers_positions():
    text = "中粮工科（山东）有限公司"
    half = [16, 16, 16, 16, 11, 16, 16, 10, 16, 16, 16, 16]
    assert brackets_as_printed(None, ctc_line(text, half)) == "中粮工科(山东)有限公司"
    assert brackets_as_printed(None, ctc_line("中粮工科(山东)有限公司", [16] * 12)) == text


def test_brackets_are_left_alone_when_characters_do_not_line_up_with_the_text():
    line = EngineLine([(0, 0), (128, 0), (128, 16), (0, 16)], "价税合计 (大写)", char_boxes([16] * 8),
                      list("价税合计(大写)"))
    assert brackets_as_printed(None, line) == "价税合计 (大写)"


WQY = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"


def printed_line(text: str, cells: list[float], font_px: int = 20) -> tuple[Image.Image, EngineLine]:
    """`text` drawn glyph by glyph, each centred in a cell of the given width.
    The recogniser's character boxes are faked as evenly spaced, so only the
    ink can tell a narrow bracket cell from a full one."""
    from PIL import ImageDraw, ImageFont

    img = Image.new("L", (int(sum(cells)) + 20, font_px + 12), 255)
    draw = ImageDraw.Draw(img)
    font = ImageFont.truetype(WQY, font_px)
    x, boxes = 10.0, []
    for i, (ch, cell) in enumerate(zip(text, cells)):
        glyph = "(" if ch in "（(" else ")" if ch in "）)" else ch
        draw.text((x + (cell - draw.textlength(glyph, font=font)) / 2, 4), glyph, font=font, fill=0)
        even = 10 + i * sum(cells) / len(cells)
        boxes.append([[even, 4], [even + 14, 4], [even + 14, 4 + font_px], [even, 4 + font_px]])
        x += cell
    right = 10 + sum(cells)
    corners = [(10, 4), (right, 4), (right, 4 + font_px), (10, 4 + font_px)]
    return img, EngineLine(corners, text, boxes, list(text))


@pytest.mark.skipif(not __import__("os").path.exists(WQY),
                    reason="needs the WenQuanYi font (make test installs fonts-wqy-microhei)")
@pytest.mark.parametrize("bracket_cell,expected", [(22, "（）"), (13, "()")])
def test_the_ink_between_a_brackets_neighbours_decides_its_width(bracket_cell, expected):
    text = "中粮工科（山东）有限公司"
    cells = [20.0] * len(text)
    cells[4] = cells[7] = bracket_cell
    img, line = printed_line(text, cells)
    got = brackets_as_printed(img, line)
    assert got[4] + got[7] == expected


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_a_page_fed_sideways_or_upside_down_is_turned_upright_by_its_qr(degrees):
    page = Image.new("L", (600, 400), 255)
    qr = segno.make("01,10,044002657011,34897244,82.85,20261123,21812614008682285412,FF53,", error="m")
    code = qr.to_pil(scale=4, border=2) if hasattr(qr, "to_pil") else _qr_image(qr)
    page.paste(code, (20, 20))
    marker = (580, 380)
    page.putpixel(marker, 0)
    turned = page.rotate(degrees, expand=True)
    upright = ocr_layout.upright(turned)
    assert upright.size == page.size
    assert upright.getpixel(marker) == 0


def _qr_image(qr) -> Image.Image:
    import io
    buf = io.BytesIO()
    qr.save(buf, kind="png", scale=4, border=2)
    buf.seek(0)
    return Image.open(buf).convert("L")


def test_an_engine_that_fails_to_load_is_reported_not_raised(monkeypatch):
    import sys
    import types

    class Broken:
        def __init__(self, **kwargs):
            raise RuntimeError("model file is corrupt")

    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime", types.SimpleNamespace(RapidOCR=Broken))
    monkeypatch.setattr(ocr_engine, "_engine", None)
    monkeypatch.setattr(ocr_engine, "_engine_error", None)
    assert "model file is corrupt" in ocr.unavailable_reason()
    # Installed but broken: each scan says so (not installed at all: None, QR only).
    reading = ocr.read_page_if_available(Image.new("L", (40, 40), 255))
    assert reading is not None and "model file is corrupt" in reading.error
    monkeypatch.setattr(ocr, "engine_installed", lambda: False)
    assert ocr.read_page_if_available(Image.new("L", (40, 40), 255)) is None
