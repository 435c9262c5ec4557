"""The synthetic invoice generator keeps the invariants of real invoices.

If the generator lied (a wrong sum, a bad CRC, an invalid tax id), the
accuracy test built on it would reward readers for copying its mistakes.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import random
import re
from decimal import ROUND_HALF_UP, Decimal

import pytest
import zxingcpp
from PIL import Image
from pypdf import PdfReader

from agent.extract.qr import TAX_EXCLUSIVE_KINDS, parse_qr
from agent.validate.amounts import parse_words
from agent.validate.regions import PROVINCES
from agent.validate.uscc import is_valid_org_code, is_valid_uscc
from tests.corpus import STYLES, make_corpus, make_invoice
from tests.corpus.__main__ import main as corpus_cli
from tests.corpus.content import make_content

TODAY = dt.date(2026, 11, 29)
KINDS = ("01", "04", "10", "20", "31", "32")


def _contents(n: int = 300):
    rng = random.Random(20261129)
    return [make_content(rng, KINDS[i % len(KINDS)], TODAY) for i in range(n)]


def _text(data: bytes, mode: str = "layout") -> str:
    page = PdfReader(io.BytesIO(data)).pages[0]
    return page.extract_text(extraction_mode=mode) if mode == "layout" else page.extract_text()


def test_line_items_sum_to_the_totals_and_tax_is_rate_times_amount():
    for c in _contents():
        assert c.amount == sum(i.amount for i in c.items)
        assert c.tax == sum(i.tax for i in c.items)
        assert c.total == c.amount + c.tax
        for it in c.items:
            assert it.rate in ("13", "9", "6", "3", "1")
            want = (it.amount * Decimal(it.rate) / 100).quantize(Decimal("0.01"), ROUND_HALF_UP)
            assert it.tax == want, it


def test_total_in_words_reads_back_as_the_total():
    for c in _contents():
        assert parse_words(c.words) == c.total, (c.words, c.total)


def test_every_tax_id_is_a_valid_uscc_with_a_valid_organisation_code():
    seen = 0
    for c in _contents():
        for party in (c.buyer, c.seller):
            if party.tax_id is None:
                assert party.name == "个人" or len(party.name) <= 3  # natural persons only
                continue
            seen += 1
            assert is_valid_uscc(party.tax_id), party
            assert is_valid_org_code(party.tax_id[8:17]), party
    assert seen > 500


def test_qr_payload_parses_with_correct_crc_and_matches_the_fields():
    for c in _contents():
        qr = parse_qr(c.qr)
        assert qr is not None, c.qr
        # Platform-issued 数电 (DiDi) may leave the check field empty; otherwise it must match.
        assert qr.crc_ok() is True or (qr.crc is None and c.kind in ("31", "32")), c.qr
        assert (qr.kind, qr.code, qr.number, qr.date) == (c.kind, c.code, c.number, c.date)
        assert qr.check_code == c.check_code
        assert qr.amount == (c.amount if c.kind in TAX_EXCLUSIVE_KINDS else c.total)


def test_most_qr_payloads_carry_a_check_field():
    missing = sum(parse_qr(c.qr).crc is None for c in _contents())
    assert 0 < missing < 30


def test_numbers_codes_and_dates_have_the_real_shapes():
    for c in _contents():
        assert TODAY - dt.timedelta(days=299) <= c.date <= TODAY
        if c.kind in ("31", "32"):
            assert re.fullmatch(r"\d{20}", c.number) and c.code is None and c.check_code is None
            assert c.number[:2] == f"{c.date.year % 100:02d}"
            assert c.number[2:4] in PROVINCES
            assert c.title == {"31": "电子发票（增值税专用发票）", "32": "电子发票（普通发票）"}[c.kind]
            continue
        assert re.fullmatch(r"\d{8}", c.number)
        if len(c.code) == 12:
            assert c.code[0] == "0" and c.code[1:5] == c.region.code_region
            assert c.code[10:] in {"10": ("11",), "20": ("13",), "04": ("04", "05")}[c.kind]
        else:
            assert len(c.code) == 10 and c.code[:4] == c.region.code_region
            assert c.code[7] in ("15" if c.kind == "01" else "36")
        assert (c.check_code is None) == (c.kind == "01")
        assert c.check_code is None or re.fullmatch(r"\d{20}", c.check_code)


def test_same_seed_gives_the_same_files_and_a_different_seed_does_not():
    styles = {s: 1 for s in STYLES if not s.startswith("scan")}
    a = make_corpus(11, 12, TODAY, styles)
    b = make_corpus(11, 12, TODAY, styles)
    assert [(g.data, g.expected) for g in a] == [(g.data, g.expected) for g in b]
    c = make_corpus(12, 12, TODAY, styles)
    assert [g.expected for g in a] != [g.expected for g in c]


def test_scans_are_deterministic_too():
    one = make_invoice(random.Random(5), "scan-jpg", TODAY)
    two = make_invoice(random.Random(5), "scan-jpg", TODAY)
    assert one.data == two.data


def test_pdf_text_carries_the_expected_values():
    rng = random.Random(3)
    for style in ("digital", "legacy", "digital-spaced", "legacy-spaced"):
        g = make_invoice(rng, style, TODAY)
        text = _text(g.data)
        for key in ("number", "seller_name", "seller_tax_id", "total_in_words", "total"):
            assert g.expected[key] in text, (style, key)
        if g.expected["check_code"]:
            cc = g.expected["check_code"]
            assert " ".join(cc[i:i + 5] for i in range(0, 20, 5)) in text


def test_spaced_styles_space_the_labels():
    rng = random.Random(4)
    legacy = _text(make_invoice(rng, "legacy-spaced", TODAY).data)
    assert "价 税 合 计" in legacy and "发 票 号 码" in legacy
    plain = _text(make_invoice(rng, "legacy", TODAY).data)
    assert "价税合计" in plain and "价 税 合 计" not in plain


def test_labels_first_draws_every_label_before_any_value():
    rng = random.Random(6)
    g = make_invoice(rng, "digital-labels-first", TODAY)
    stream = _text(g.data, mode="plain")
    assert stream.index("开票人") < stream.index(g.expected["number"])
    g = make_invoice(rng, "digital", TODAY)
    stream = _text(g.data, mode="plain")
    assert stream.index(g.expected["number"]) < stream.index("开票人")


@pytest.mark.parametrize("style", ["scan-jpg", "scan-png", "scan-pdf"])
def test_scans_are_200_to_300_dpi_images_whose_qr_decodes(style):
    g = make_invoice(random.Random(8), style, TODAY)
    if g.ext == "pdf":
        reader = PdfReader(io.BytesIO(g.data))
        assert reader.pages[0].extract_text().strip() == ""
        img = reader.pages[0].images[0].image
    else:
        img = Image.open(io.BytesIO(g.data))
        assert 200 <= round(img.info["dpi"][0]) <= 300
    found = zxingcpp.read_barcodes(img, formats=zxingcpp.BarcodeFormat.QRCode)
    assert [r.text for r in found] == [g.truth["qr"]]
    # Without OCR only the QR's fields are determinable; the truth keeps the rest.
    assert g.expected["buyer_name"] is None and g.truth["buyer_name"]
    assert g.expected["number"] == g.truth["number"]


def test_trip_list_is_not_an_invoice_and_its_qr_is_a_url():
    g = make_invoice(random.Random(9), "trip-list", TODAY)
    assert g.expected["is_invoice"] is False
    assert g.expected["qr"].startswith("https://") and parse_qr(g.expected["qr"]) is None
    assert all(v is None for k, v in g.expected.items() if k not in ("is_invoice", "qr"))
    assert "行程" in _text(g.data)


def test_unknown_style_is_refused():
    with pytest.raises(ValueError, match="unknown corpus style"):
        make_invoice(random.Random(1), "fax", TODAY)


def test_cli_writes_files_and_expected_jsonl(tmp_path, capsys):
    assert corpus_cli([str(tmp_path), "--count", "5", "--seed", "2", "--today", "2026-11-29",
                       "--styles", "digital,legacy,trip-list"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "expected.jsonl").read_text("utf-8").splitlines()]
    assert len(rows) == 5
    for row in rows:
        data = (tmp_path / row["file"]).read_bytes()
        assert data.startswith(b"%PDF")
        assert row["style"] in ("digital", "legacy", "trip-list")
    assert "wrote 5 files" in capsys.readouterr().out


def test_scanner_batch_holds_one_scanned_invoice_per_page():
    g = make_invoice(random.Random(10), "scan-batch", TODAY)
    reader = PdfReader(io.BytesIO(g.data))
    assert 2 <= len(g.pages) == len(reader.pages) and g.records == g.pages
    for page, want in zip(reader.pages, g.pages):
        assert page.extract_text().strip() == ""
        found = zxingcpp.read_barcodes(page.images[0].image, formats=zxingcpp.BarcodeFormat.QRCode)
        assert [r.text for r in found] == [want["qr"]]
    assert len({p["number"] for p in g.pages}) == len(g.pages)


def test_text_pdfs_embed_the_qr_beside_seal_images():
    for style in ("digital", "legacy"):
        g = make_invoice(random.Random(12), style, TODAY)
        images = PdfReader(io.BytesIO(g.data)).pages[0].images
        decoded = []
        for im in images:
            # Issuers embed QRs as small as 2 px per module; scale up before decoding.
            big = im.image.convert("L").resize((im.image.width * 3, im.image.height * 3), Image.NEAREST)
            decoded += [r.text for r in zxingcpp.read_barcodes(big, formats=zxingcpp.BarcodeFormat.QRCode)]
        assert len(images) >= 2 and decoded == [g.expected["qr"]], style


def test_expected_fields_have_the_keys_and_formats_of_the_real_expected_json(expected_fields):
    real_keys = set(next(iter(expected_fields.values()))) - {"notes", "source"}
    for style in ("digital", "legacy", "scan-jpg", "trip-list"):
        g = make_invoice(random.Random(13), style, TODAY)
        assert set(g.expected) == real_keys, style
        for key in ("amount", "tax", "total"):
            assert g.expected[key] is None or re.fullmatch(r"-?\d+\.\d\d", g.expected[key])
        assert g.expected["date"] is None or dt.date.fromisoformat(g.expected["date"])
