"""A labelled value wrapped onto the next line of its box is read whole
(issue 13): the layout joins the continuation, and never a vertical label's
letter, another field's value or the 密码区 beside it."""

from __future__ import annotations

from agent.extract.pdf_geometry import _Glyph, layout_glyphs
from agent.extract.text import normalize_text, parse_items, parse_text


def glyphs(text: str, left: float, baseline: float, size: float = 10.0) -> list[_Glyph]:
    return [_Glyph(ch, left + i * size, baseline - 0.2 * size, left + (i + 1) * size, baseline + 0.8 * size)
            for i, ch in enumerate(text)]


def _fields(stream: list[_Glyph]) -> tuple[dict, list[str]]:
    lines = layout_glyphs(stream).split("\n")
    return parse_text(normalize_text("\n".join(lines))).fields, lines


def test_a_wrapped_name_is_joined_and_the_vertical_label_letter_left_out():
    stream = (glyphs("买", 10, 300) + glyphs("名称:中国石油天然气股份有限公司江苏", 40, 300)
              + glyphs("方", 10, 289) + glyphs("南京销售分公司第十二加油站", 70, 289)
              + glyphs("信", 10, 278) + glyphs("纳税人识别号:91420502MA2KRCAJ8A", 40, 274))
    fields, lines = _fields(stream)
    assert fields.get("buyer_name") == "中国石油天然气股份有限公司江苏南京销售分公司第十二加油站", lines
    assert fields.get("buyer_tax_id") == "91420502MA2KRCAJ8A", lines
    assert lines[1].split() == ["方"], lines


def test_a_wrapped_latin_name_gets_a_space_at_the_line_break():
    stream = glyphs("名称:Apple Computer", 40, 300) + glyphs("Trading Co., Ltd.", 70, 289)
    fields, lines = _fields(stream)
    assert fields.get("buyer_name") == "Apple Computer Trading Co., Ltd.", lines


def test_the_next_fields_value_aligned_under_the_name_is_never_joined():
    # Labels right-aligned, values in one column: the tax id's value starts
    # at the name's x, but a label's colon is right before it.
    stream = glyphs("名称:某某有限公司", 40, 300) + glyphs("识别号:", 20, 289) + glyphs("91440304MA5M0PUM55", 70, 289)
    fields, lines = _fields(stream)
    assert (fields.get("buyer_name"), fields.get("buyer_tax_id")) == ("某某有限公司", "91440304MA5M0PUM55"), lines


def test_a_lone_letter_or_ciphertext_under_a_name_is_never_joined():
    lone = glyphs("名称:某某有限公司", 40, 300) + glyphs("方", 70, 289)
    fields, lines = _fields(lone)
    assert fields.get("buyer_name") == "某某有限公司", lines
    cipher = glyphs("名称:某某有限公司", 40, 300) + glyphs("03*<5-/81>+9*45>2/1<+-0<*8", 70, 289)
    fields, lines = _fields(cipher)
    assert fields.get("buyer_name") == "某某有限公司", lines


def test_a_row_further_down_than_a_line_is_no_continuation():
    stream = glyphs("名称:某某有限公司", 40, 300) + glyphs("南京销售分公司", 70, 250)
    fields, lines = _fields(stream)
    assert fields.get("buyer_name") == "某某有限公司", lines


def test_an_items_spec_ending_in_a_number_leaves_quantity_and_price_to_their_columns():
    header = "   项目名称   规格型号   单位   数量   单价   金额   税率   税额"
    [item] = parse_items([header, "   *计算机配套产品*笔记本   MateBook 14   台   1   5602.16   5602.16   13%   728.28"])
    assert (str(item.quantity), str(item.unit_price)) == ("1", "5602.16")
    # No unit printed: the spec's 14 is never taken for the quantity.
    [item] = parse_items([header, "   *计算机配套产品*笔记本   MateBook 14   5602.16   5602.16   13%   728.28"])
    assert (item.quantity, item.unit_price) == (None, None)


def test_a_wrapped_name_whose_box_indents_its_second_line_is_joined():
    # The outside review's W_indent: the second line starts a glyph to the
    # right of the first; read row by row the name was cut, and VALID.
    stream = glyphs("名称:中国建筑第八工程局有限公司华东分", 40, 300) + glyphs("公司第三项目经理部", 80, 289)
    fields, lines = _fields(stream)
    assert fields.get("buyer_name") == "中国建筑第八工程局有限公司华东分公司第三项目经理部", lines


def test_text_under_the_label_is_never_joined_to_the_value():
    # A label printed without its colon on the next row starts under the
    # label, not under the value: joined, it would be glued to the name.
    stream = glyphs("名称:某某建筑工程有限公司", 40, 300) + glyphs("纳税人识别号 91440304MA5M0PUM55", 40, 289)
    fields, lines = _fields(stream)
    assert fields.get("buyer_name") == "某某建筑工程有限公司", lines
