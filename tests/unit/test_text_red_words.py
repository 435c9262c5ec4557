"""The 价税合计大写 as printed: a 红字 (negative) invoice's keeps its sign
（负数）, and a 大写-like run inside a name or an item is never taken for it
(attack A, findings 9 and 10: every genuine red invoice was quarantined with
words-mismatch, and 杭州壹元优选 gave a 大写 of 壹元)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random

import pytest

from agent.extract import extract_bytes
from agent.extract.text import normalize_text, parse_text
from agent.model import Invoice
from agent.validate import ValidationSettings, validate
from agent.validate.amounts import to_words
from tests.corpus.content import InvoiceContent, make_content, qr_payload
from tests.corpus.face import Face, Text, text_width
from tests.corpus.layouts import Variant, cipher_rows, digital_face, legacy_face
from tests.corpus.layouts_extra import face_ofd
from tests.corpus.render_pdf import face_pdf

TODAY = dt.date(2026, 11, 29)


def _red(seed: int, kind: str) -> InvoiceContent:
    """A 红字 invoice: every amount negative, its 大写 （负数）…, its QR signed for them."""
    c = make_content(random.Random(seed), kind, TODAY)
    c.items = [dataclasses.replace(i, amount=-i.amount, tax=-i.tax,
                                   quantity=f"-{i.quantity}" if i.quantity else "") for i in c.items]
    c.amount, c.tax, c.total = -c.amount, -c.tax, -c.total
    c.words = to_words(c.total)
    c.qr = qr_payload(random.Random(seed), kind, c.code, c.number,
                      c.total if c.is_digital else c.amount, c.date, c.check_code)
    return c


def _face(c: InvoiceContent, seed: int) -> Face:
    rng = random.Random(seed)
    v = Variant.pick(rng, False, c.is_digital)
    return digital_face(c, v) if c.is_digital else legacy_face(c, v, cipher_rows(rng))


def _with_words(face: Face, old: str, new: str) -> Face:
    ops = [dataclasses.replace(op, text=new) if isinstance(op, Text) and op.text == old else op for op in face.ops]
    return dataclasses.replace(face, ops=ops)


def _read(data: bytes, name: str) -> Invoice:
    [inv] = extract_bytes(data, name=name, ocr=False)
    return inv


def _codes(inv: Invoice) -> set[str]:
    return {p.code for p in validate(inv, ValidationSettings(), today=TODAY)}


@pytest.mark.parametrize("kind,seed", [("32", 1), ("10", 2), ("31", 3), ("20", 4)])
def test_a_red_invoice_pdf_keeps_the_sign_of_its_words(kind, seed):
    c = _red(seed, kind)
    assert c.words.startswith("（负数）")
    inv = _read(face_pdf(_face(c, seed)), f"red_{kind}.pdf")
    assert inv.get("total_in_words") == c.words
    assert "words-mismatch" not in _codes(inv)


@pytest.mark.parametrize("sign", ["(负数)", "负数", "负"])
def test_other_printed_signs_are_kept_as_printed(sign):
    c = _red(5, "32")
    printed = sign + c.words.removeprefix("（负数）")
    inv = _read(face_pdf(_with_words(_face(c, 5), c.words, printed)), "red.pdf")
    assert inv.get("total_in_words") == printed
    assert "words-mismatch" not in _codes(inv)


@pytest.mark.parametrize("kind,seed", [("32", 6), ("10", 7)])
def test_a_red_ofd_keeps_the_sign_of_its_words(kind, seed):
    c = _red(seed, kind)
    inv = _read(face_ofd(_face(c, seed), c.words, with_ids=True, with_qr=True), "red.ofd")
    assert inv.get("total_in_words") == c.words
    assert "words-mismatch" not in _codes(inv)


def test_a_red_ofd_whose_sign_is_its_own_text_object_never_stores_the_unsigned_words():
    c = _red(8, "32")
    face = _face(c, 8)
    [run] = [op for op in face.ops if isinstance(op, Text) and op.text == c.words]
    digits = c.words.removeprefix("（负数）")
    sign = dataclasses.replace(run, text="（负数）")
    rest = dataclasses.replace(run, text=digits, x=run.x + text_width("（负数）", run.size))
    face = dataclasses.replace(face, ops=[o for o in face.ops if o is not run] + [sign, rest])
    inv = _read(face_ofd(face, c.words, with_ids=True, with_qr=True), "red.ofd")
    assert inv.get("total_in_words") in (c.words, None)


def test_ofd_words_alone_keep_their_sign_and_marks_are_left_out():
    from agent.extract.labels import words_alone

    assert words_alone("ⓧ （负数）肆佰伍拾陆圆整") == "（负数）肆佰伍拾陆圆整"
    assert words_alone(" ⊗ 负 肆佰伍拾陆圆整 ") == "负肆佰伍拾陆圆整"
    assert words_alone("( 负数 )肆佰伍拾陆圆整") == "(负数)肆佰伍拾陆圆整"
    assert words_alone("肆佰伍拾陆圆整") == "肆佰伍拾陆圆整"
    assert words_alone("肆佰伍拾陆圆整（负数）") is None
    assert words_alone("伍拾元充值卡") is None


def test_a_positive_words_total_with_a_negative_word_elsewhere_stays_positive():
    row = "价税合计（大写）  {}壹佰圆整  （小写）¥100.00  负责人:王五"
    assert parse_text(normalize_text(row.format(""))).fields["total_in_words"] == "壹佰圆整"
    # 负 ending another word (欺负) is no sign, even with a space before the 大写.
    assert parse_text(normalize_text(row.format("欺负 "))).fields["total_in_words"] == "壹佰圆整"
    # A 负 glued to the 大写 label is the sign.
    glued = "价税合计(大写)负壹佰圆整 (小写)¥-100.00"
    assert parse_text(normalize_text(glued)).fields["total_in_words"] == "负壹佰圆整"


def test_a_sign_set_apart_from_the_words_by_the_layout_is_still_their_sign():
    row = "价税合计（大写）  （负数）      壹佰圆整  （小写）¥-100.00"
    assert parse_text(normalize_text(row)).fields["total_in_words"] == "（负数）壹佰圆整"


def test_words_inside_a_seller_name_or_an_item_are_not_the_total():
    c = make_content(random.Random(1), "32", TODAY)
    c.seller = dataclasses.replace(c.seller, name="杭州壹元优选商贸有限公司")
    inv = _read(face_pdf(_face(c, 1)), "yiyuan.pdf")
    assert inv.get("total_in_words") == c.words
    assert inv.get("seller_name") == "杭州壹元优选商贸有限公司"
    assert "words-mismatch" not in _codes(inv)
    c = make_content(random.Random(2), "10", TODAY)
    c.items[0] = dataclasses.replace(c.items[0], name="*预付卡销售*伍拾元充值卡")
    inv = _read(face_pdf(_face(c, 2)), "wushiyuan.pdf")
    assert inv.get("total_in_words") == c.words
    assert "words-mismatch" not in _codes(inv)


def test_without_the_words_label_only_a_single_standalone_amount_is_taken():
    # No readable 价税合计 label: a 大写 alone on its row is taken ...
    one = "*餐饮服务*餐费   1   100.00   ¥100.00\n   壹佰圆整     ¥100.00\n"
    assert parse_text(normalize_text(one)).fields["total_in_words"] == "壹佰圆整"
    # ... but not when an item prints another: which one is the total is unsure.
    two = "*预付卡*伍拾元整   2   50.00   ¥100.00\n   壹佰圆整     ¥100.00\n"
    assert "total_in_words" not in parse_text(normalize_text(two)).fields
    # A run inside words is no 大写 at all, even alone on the page.
    inside = "销售方:杭州壹元优选商贸有限公司\n*预付卡销售*伍拾元充值卡  ¥50.00\n"
    assert "total_in_words" not in parse_text(normalize_text(inside)).fields
