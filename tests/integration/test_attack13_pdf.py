"""PDF faces a careful clerk reads and the reader did not (issue 13, attack 13).

- two invoice faces printed on one page: the page's printed values could
  be either face's, and were read from one face and stored with the other
  face's QR; now nothing printed is read, with a `several-invoices-on-page`
  error, while a 红字 invoice whose 备注 names its blue invoice's 号码 is
  still one face;
- a company name with spaces (a foreign buyer) and a long name wrapped onto
  a second line in its box: were stored without its spaces / cut in half;
  now the layout keeps the stream's spaces and joins the wrapped line.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from decimal import Decimal

import pytest

from agent.extract import extract_bytes
from agent.validate.amounts import to_words
from tests.corpus.content import DIGITAL_KINDS, LEGACY_E_KINDS, expected_fields, make_content, qr_payload
from tests.corpus.face import Face, Qr, Text
from tests.corpus.layouts import Variant, cipher_rows, digital_face, legacy_face
from tests.corpus.render_pdf import face_pdf

TODAY = dt.date(2026, 11, 29)
CHECKED = ("code", "number", "date", "check_code", "amount", "tax", "total",
           "buyer_name", "buyer_tax_id", "seller_name", "seller_tax_id")


def _face(seed: int, digital: bool, *, qr: bool = True, change=None):
    rng = random.Random(seed)
    content = make_content(rng, rng.choice(DIGITAL_KINDS if digital else LEGACY_E_KINDS), TODAY)
    if change is not None:
        change(content, rng)
    variant = Variant.pick(rng, False, digital)
    face = digital_face(content, variant) if digital else legacy_face(content, variant, cipher_rows(rng))
    if not qr:
        face.ops = [op for op in face.ops if not isinstance(op, Qr)]
    return content, face


def _below(op, dy: float):
    if hasattr(op, "y1"):
        return dataclasses.replace(op, y1=op.y1 + dy, y2=op.y2 + dy)
    if hasattr(op, "cy"):
        return dataclasses.replace(op, cy=op.cy + dy)
    return dataclasses.replace(op, y=op.y + dy)


def _two_faces_page(digital: bool, qr: bool, lower_first: bool) -> tuple[bytes, list[dict]]:
    top_content, top = _face(7, digital, qr=qr)
    low_content, low = _face(1234, digital, qr=qr)
    page = Face(top.width, top.height * 2)
    lower = [_below(op, top.height) for op in low.ops]
    page.ops = lower + top.ops if lower_first else top.ops + lower
    return face_pdf(page), [expected_fields(top_content), expected_fields(low_content)]


@pytest.mark.parametrize("digital", [True, False], ids=["shudian", "legacy"])
@pytest.mark.parametrize(("qr", "lower_first"), [(False, False), (True, False), (True, True)],
                         ids=["no-qr", "qr", "qr-lower-drawn-first"])
def test_two_faces_on_one_page_are_reported_and_never_mixed(digital, qr, lower_first):
    data, truths = _two_faces_page(digital, qr, lower_first)
    [invoice] = extract_bytes(data, ocr=False)
    got = invoice.to_dict()
    assert any(p["code"] == "several-invoices-on-page" and p["severity"] == "error" for p in got["problems"]), \
        got["problems"]
    # Whatever is stored belongs to one face: the one its 号码 is.
    face = next((t for t in truths if t["number"] == got["number"]), None)
    wrong = [f"{n}: {got[n]!r} is not face {got['number']}'s {face[n] if face else None!r}"
             for n in CHECKED if got[n] is not None and (face is None or got[n] != face[n])]
    assert not wrong, wrong


def _red(content, rng) -> None:
    """A 红字 invoice: negative lines, and the blue invoice's 号码 in the 备注."""
    content.items = [dataclasses.replace(i, amount=-i.amount, tax=-i.tax) for i in content.items]
    content.amount = sum((i.amount for i in content.items), Decimal(0))
    content.tax = sum((i.tax for i in content.items), Decimal(0))
    content.total = content.amount + content.tax
    content.words = to_words(content.total)
    if content.is_digital:
        content.remarks = f"被红冲蓝字数电发票号码：{content.number[:4]}{'7' * 16} 红字发票信息确认单编号：{'1' * 16}"
    else:
        content.remarks = f"对应正数发票代码:{content.code}号码:87654321"
    content.qr = qr_payload(rng, content.kind, content.code, content.number,
                            content.total if content.is_digital else content.amount, content.date,
                            content.check_code)


@pytest.mark.parametrize("digital", [True, False], ids=["shudian", "legacy"])
def test_a_red_invoice_naming_its_blue_invoice_is_one_face(digital):
    content, face = _face(3, digital, qr=False, change=_red)
    [invoice] = extract_bytes(face_pdf(face), ocr=False)
    got, truth = invoice.to_dict(), expected_fields(content)
    assert not [p for p in got["problems"] if p["code"] == "several-invoices-on-page"]
    assert {n: got[n] for n in CHECKED} == {n: truth[n] for n in CHECKED}


def _with_buyer_name(name: str):
    def change(content, rng) -> None:
        content.buyer = dataclasses.replace(content.buyer, name=name)
    return change


@pytest.mark.parametrize("digital", [True, False], ids=["shudian", "legacy"])
def test_a_latin_name_keeps_its_spaces(digital):
    name = "Apple Computer Trading (Shanghai) Co., Ltd."
    content, face = _face(0, digital, qr=False, change=_with_buyer_name(name))
    [invoice] = extract_bytes(face_pdf(face), ocr=False)
    assert invoice.get("buyer_name") == name


def _wrap_buyer_name(face: Face, name: str) -> None:
    out = []
    for op in face.ops:
        if isinstance(op, Text) and op.text == name:
            half = len(name) // 2
            out += [dataclasses.replace(op, text=name[:half]), dataclasses.replace(op, text=name[half:], y=op.y + 10)]
        else:
            out.append(op)
    face.ops = out


def test_a_wrapped_name_is_read_whole_or_not_at_all():
    name = "中国石油天然气股份有限公司江苏南京销售分公司第十二加油站管理处"
    content, face = _face(0, True, qr=False, change=_with_buyer_name(name))
    _wrap_buyer_name(face, name)
    [invoice] = extract_bytes(face_pdf(face), ocr=False)
    assert invoice.get("buyer_name") in (name, None)


@pytest.mark.parametrize("remark", ["项目名称：办公用品采购", "收款方名称：张三", "购买方名称：某某集团有限公司",
                                    "代开企业名称：某某代开有限公司"])
def test_a_remark_naming_something_never_becomes_the_seller(remark):
    # The old layout's 备注 box sits beside the seller's rows; its first
    # line prints above the seller's 名称 row, and a "…名称：" in it was read
    # as the seller's name label (a WRONG seller name).
    def add_remark(face: Face) -> None:
        face.text(372, 282, remark, 8.5)
    for seed in (0, 1):
        content, face = _face(seed, False, qr=False)
        add_remark(face)
        [invoice] = extract_bytes(face_pdf(face), ocr=False)
        got, truth = invoice.to_dict(), expected_fields(content)
        assert {n: got[n] for n in CHECKED} == {n: truth[n] for n in CHECKED}, remark


def test_a_ticket_naming_its_buyer_inline_is_still_read():
    # 铁路电子客票 and 行程单 print "购买方名称：" with no box: a label naming
    # its party is used when no bare box label is printed.
    content, face = _face(5, True, qr=False)
    for op in list(face.ops):
        if isinstance(op, Text) and op.role == "label" and op.text.startswith("名"):
            face.ops[face.ops.index(op)] = dataclasses.replace(
                op, text=("购买方" if op.x < 297 else "销售方") + op.text, x=op.x - 27)
    [invoice] = extract_bytes(face_pdf(face), ocr=False)
    assert (invoice.get("buyer_name"), invoice.get("seller_name")) == (content.buyer.name, content.seller.name)


@pytest.mark.parametrize("digital", [True, False], ids=["shudian", "legacy"])
def test_a_remark_printing_a_tax_id_label_never_gives_the_seller_another_id(digital):
    # "纳税人识别号：<the buyer's id>" in the 备注: on the old layout it prints
    # above the seller's rows and was stored as the seller's id (a valid
    # id, so no check caught it). Three labels for two boxes: the seller's
    # is left empty with a problem, never taken from the wrong one.
    for seed in (0, 2):
        content, face = _face(seed, digital, qr=False)
        if not content.buyer.tax_id:
            continue
        remark = "纳税人识别号：" + content.buyer.tax_id
        face.text(31, 312, remark, 9) if digital else face.text(372, 282, remark, 8.5)
        [invoice] = extract_bytes(face_pdf(face), ocr=False)
        got = invoice.to_dict()
        assert got["seller_tax_id"] in (content.seller.tax_id, None), got["seller_tax_id"]
        assert got["buyer_tax_id"] == content.buyer.tax_id
        if got["seller_tax_id"] is None:
            assert any(p["code"] == "implausible-tax-id" and p["field"] == "seller_tax_id" for p in got["problems"])
