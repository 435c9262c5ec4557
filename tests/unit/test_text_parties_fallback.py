"""Tax ids whose label is unreadable or printed without a colon go to the
party whose box holds them, never by page order alone (attack A, finding 3:
with an individual (个人) buyer, the seller's id was stored as the buyer's)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random

import pypdfium2
import pytest

from agent.extract import extract_bytes
from agent.extract.pdf_geometry import page_text
from agent.extract.text import normalize_text, parse_text
from tests.corpus.content import InvoiceContent, make_content
from tests.corpus.face import Face, Text
from tests.corpus.layouts import Variant, cipher_rows, digital_face, legacy_face
from tests.corpus.parties import private_person
from tests.corpus.render_pdf import face_pdf

TODAY = dt.date(2026, 11, 29)


def _content(seed: int, kind: str, private_buyer: bool) -> InvoiceContent:
    """An invoice of `kind` whose buyer is an individual (个人 or a name, no
    tax id) or a company, as asked."""
    while True:
        c = make_content(random.Random(seed), kind, TODAY)
        if private_buyer:
            c.buyer = private_person(random.Random(seed))
        if (c.buyer.tax_id is None) == private_buyer:
            return c
        seed += 1000


def _face(c: InvoiceContent, seed: int) -> Face:
    rng = random.Random(seed)
    v = Variant.pick(rng, False, c.is_digital)
    return digital_face(c, v) if c.is_digital else legacy_face(c, v, cipher_rows(rng))


def _edit_labels(face: Face, edit) -> Face:
    """`face` with each label run passed through `edit` (None drops it)."""
    ops = []
    for op in face.ops:
        if isinstance(op, Text) and op.role == "label":
            text = edit(op.text)
            if text is None:
                continue
            op = dataclasses.replace(op, text=text)
        ops.append(op)
    return dataclasses.replace(face, ops=ops)


def _no_colon(label: str) -> str:
    return label.replace("识别号：", "识别号").replace("识别号:", "识别号")


def _page_fields(data: bytes) -> dict:
    """The fields `text.parse_text` reads from the PDF's text laid out by position."""
    doc = pypdfium2.PdfDocument(data)
    try:
        page = doc[0]
        textpage = page.get_textpage()
        try:
            return parse_text(normalize_text(page_text(textpage))).fields
        finally:
            textpage.close()
            page.close()
    finally:
        doc.close()


@pytest.mark.parametrize("kind", ["10", "32"])
@pytest.mark.parametrize("private_buyer", [True, False])
def test_tax_id_labels_without_a_colon_are_read_as_labels(kind, private_buyer):
    c = _content(11, kind, private_buyer)
    data = face_pdf(_edit_labels(_face(c, 11), _no_colon))
    [inv] = extract_bytes(data, name="nocolon.pdf", ocr=False)
    assert inv.get("buyer_tax_id") == c.buyer.tax_id
    assert inv.get("seller_tax_id") == c.seller.tax_id


@pytest.mark.parametrize("kind", ["10", "32"])
@pytest.mark.parametrize("seed", [3, 4, 5])
def test_an_unlabelled_id_goes_to_the_box_that_holds_it(kind, seed):
    # The 名称 labels are readable, the tax-id labels are not: each id is
    # its box's, and the individual buyer's box holds none.
    c = _content(seed, kind, private_buyer=True)
    face = _edit_labels(_face(c, seed), lambda t: None if "识别号" in t else t)
    f = _page_fields(face_pdf(face))
    assert "buyer_tax_id" not in f
    assert f.get("seller_tax_id") == c.seller.tax_id
    company = _content(seed, kind, private_buyer=False)
    face = _edit_labels(_face(company, seed), lambda t: None if "识别号" in t else t)
    f = _page_fields(face_pdf(face))
    assert (f.get("buyer_tax_id"), f.get("seller_tax_id")) == (company.buyer.tax_id, company.seller.tax_id)


@pytest.mark.parametrize("kind", ["10", "32"])
def test_with_no_label_at_all_a_lone_id_is_nobodys_and_two_are_one_each(kind):
    c = _content(6, kind, private_buyer=True)
    f = _page_fields(face_pdf(_edit_labels(_face(c, 6), lambda t: None)))
    assert "buyer_tax_id" not in f and "seller_tax_id" not in f
    company = _content(6, kind, private_buyer=False)
    f = _page_fields(face_pdf(_edit_labels(_face(company, 6), lambda t: None)))
    assert (f.get("buyer_tax_id"), f.get("seller_tax_id")) == (company.buyer.tax_id, company.seller.tax_id)


BUYER_ID, SELLER_ID, OTHER_ID = "91420116MA7MHFG051", "91420100616424442Y", "91440300MA5FPRG28K"


def test_an_id_in_the_remarks_beside_the_sellers_box_is_not_the_buyers():
    # Old layout, 个人 buyer, the tax-id labels unreadable; the 备注 to the
    # right of the seller's rows prints another company's id.
    text = (f"  购  名称:个人{' ' * 60}密  4283><>*63>0*/0<873+0000\n"
            f"  买  ??{' ' * 70}07<>7-77<90/3593+/699>*1>7*\n"
            "  价税合计(大写)  壹佰圆整   (小写)¥100.00\n"
            f"  销  名称:某某科技有限公司{' ' * 50}备  代开企业税号 {OTHER_ID}\n"
            f"  售  ??  {SELLER_ID}\n")
    f = parse_text(normalize_text(text)).fields
    assert "buyer_tax_id" not in f
    assert f["seller_tax_id"] == SELLER_ID


def test_two_ids_in_one_box_leave_that_party_empty():
    text = (f"  名称:甲公司{' ' * 30}名称:乙公司\n"
            f"  ??  {BUYER_ID}{' ' * 18}??  {SELLER_ID}\n"
            f"      {OTHER_ID}\n")
    f = parse_text(normalize_text(text)).fields
    assert "buyer_tax_id" not in f
    assert f["seller_tax_id"] == SELLER_ID


def test_three_ids_and_no_label_are_left_empty():
    text = f"?? {BUYER_ID}\n?? {SELLER_ID}\n?? {OTHER_ID}\n"
    f = parse_text(normalize_text(text)).fields
    assert "buyer_tax_id" not in f and "seller_tax_id" not in f


def test_one_readable_id_label_goes_to_the_box_it_is_printed_in():
    # OCR garbled the buyer's label (识别导); the seller's reads, and its
    # place, not its being the first one read, makes it the seller's.
    text = ("  购  名称:个人\n  买  纳税人识别导:\n  价税合计(大写)  壹佰圆整   (小写)¥100.00\n"
            f"  销  名称:某某科技有限公司\n  售  纳税人识别号:{SELLER_ID}\n")
    f = parse_text(normalize_text(text)).fields
    assert "buyer_tax_id" not in f
    assert f["seller_tax_id"] == SELLER_ID


def test_a_colon_less_label_in_running_text_is_no_box_label():
    text = (f"名称:甲公司\n纳税人识别号:{BUYER_ID}\n名称:乙公司\n纳税人识别号:{SELLER_ID}\n"
            f"备注:请核对纳税人识别号 {OTHER_ID}\n")
    f = parse_text(normalize_text(text)).fields
    assert (f["buyer_tax_id"], f["seller_tax_id"]) == (BUYER_ID, SELLER_ID)
