"""Text-layer normalisation and label/shape parsing (agent/extract/text.py)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from agent.extract.text import looks_like_invoice, normalize_text, parse_invoice_text, parse_text
from agent.model import Invoice


def parsed(text: str) -> dict:
    return parse_text(normalize_text(text)).fields


def test_nfkc_fixes_colon_yen_digits_and_kangxi_radicals():
    # U+2F64 is the Kangxi radical 用, U+FF1A the full-width colon, U+FFE5 ￥.
    assert normalize_text("⽤户\uff1a１２３ \uffe5５") == "用户:123 ¥5"


def test_nbsp_and_ideographic_space_become_spaces():
    assert normalize_text("名称:\u00a0甲\u3000乙") == "名称: 甲 乙"


def test_full_width_brackets_are_kept_as_printed():
    assert normalize_text("道达尔能源销售（湖北）有限公司") == "道达尔能源销售（湖北）有限公司"


def test_spaces_inside_labels_are_removed():
    text = "校 验 码: 1\n价 税 合 计 （ 大 写 ）\n开  票  日  期:\n合        计"
    assert normalize_text(text) == "校验码: 1\n价税合计 （ 大写 ）\n开票日期:\n合计"


def test_letter_spaced_page_is_joined_but_columns_stay_apart():
    line = "信   统 一 社 会 信 用 代 码 / 纳 税 人 识 别 号 ： 9 1 5 1 0 0 0 0 7 6 5 0 5 5 9 9 4 P            1"
    text = "\n".join([line] * 3)
    out = normalize_text(text).split("\n")[0]
    assert out == "信统一社会信用代码/纳税人识别号:91510000765055994P  1"


def test_gb1_label_glyphs_without_unicode_map_are_repaired():
    # What pypdf returns for 发票号码： / 开票日期： drawn in an Identity-H
    # Adobe-GB1 font with no ToUnicode map (chr(CID)), CID 1 being a space.
    text = "ؿௐݼ઒ğ50440169\nषௐರ௹\x01ğ2023年08月11日"
    assert normalize_text(text) == "发票号码:50440169\n开票日期 :2023年08月11日"
    f = parsed(text)
    assert f["number"] == "50440169"
    assert f["date"] == dt.date(2023, 8, 11)


DIGITAL = """
      成品油          电子发票（普通发票）                    发票号码：26427000000145889304
                                                         开票日期：2026年01月08日
购 名称：安徽燕之坊食品有限公司                  销 名称：中国石化销售股份有限公司湖北武汉石油分公司
信 统一社会信用代码/纳税人识别号：91340100728526312J    信 统一社会信用代码/纳税人识别号：914201006791228986
    项目名称     规格型号   单 位    数 量     单 价        金 额  税率/征收率     税 额
*乙醇汽油*92号车用乙醇  92号   升    37.78337531  7.02663533     265.49   13%     34.51
汽油(E10)(VIB)
      合        计                                  ¥265.49            ¥34.51
     价税合计（大写）      叁佰圆整                         （小写）¥300.00
"""


def test_digital_invoice_fields():
    f = parsed(DIGITAL)
    assert f == {
        "title": "电子发票（普通发票）", "number": "26427000000145889304",
        "date": dt.date(2026, 1, 8), "total_in_words": "叁佰圆整", "total": Decimal("300.00"),
        "amount": Decimal("265.49"), "tax": Decimal("34.51"),
        "buyer_name": "安徽燕之坊食品有限公司", "buyer_tax_id": "91340100728526312J",
        "seller_name": "中国石化销售股份有限公司湖北武汉石油分公司",
        "seller_tax_id": "914201006791228986",
    }


def test_line_items_join_wrapped_names_and_read_quantity_and_price():
    items = parse_text(normalize_text(DIGITAL)).items
    assert len(items) == 1
    item = items[0]
    assert item.name == "*乙醇汽油*92号车用乙醇汽油(E10)(VIB)"
    assert (item.amount, item.tax, item.rate, item.rate_text) == (
        Decimal("265.49"), Decimal("34.51"), Decimal("0.13"), "13%")
    assert (item.quantity, item.unit_price) == (Decimal("37.78337531"), Decimal("7.02663533"))


OLD = """
                                                        发票代码:042002200411
                                                         发票号码:成品油 湖北增值税电子普通发票51905150
                                         2023  04  05
                      开票日期:     年
                    校 验 码:机器编号:661803697516北湖省税务局77428  31244  08441  90734
     名        称:  个人                                     *<+8<2207817597468/60+5--25
     纳税人识别号:                                            <<2080>43*235->>+4/+4>+1581
     合       计                                      187.61¥          24.39¥
     价税合计(大写)                (小写)贰佰壹拾贰圆整      212.00 ¥
销  名        称:中国石化销售股份有限公司湖北武汉石油分公司          备
售    纳税人识别号:914201006791228986
"""


def test_old_invoice_with_interleaved_labels_and_yen_after_numbers():
    f = parsed(OLD)
    assert f["code"] == "042002200411"
    assert f["number"] == "51905150"
    assert f["title"] == "湖北增值税电子普通发票"  # the 成品油 label is not part of it
    assert f["date"] == dt.date(2023, 4, 5)
    assert f["check_code"] == "77428312440844190734"
    assert (f["amount"], f["tax"], f["total"]) == (Decimal("187.61"), Decimal("24.39"), Decimal("212.00"))
    assert f["total_in_words"] == "贰佰壹拾贰圆整"


def test_buyer_without_tax_id_does_not_take_the_sellers():
    f = parsed(OLD)
    assert f["buyer_name"] == "个人"
    assert "buyer_tax_id" not in f
    assert f["seller_name"] == "中国石化销售股份有限公司湖北武汉石油分公司"
    assert f["seller_tax_id"] == "914201006791228986"


def test_tax_exempt_total_row_gives_no_tax():
    text = "开票日期:2020年04月20日\n发票号码:04875996\n 合  计   ¥57.00    ***\n价税合计(大写) 伍拾柒圆整 (小写)¥57.00"
    f = parsed(text)
    assert f["amount"] == Decimal("57.00")
    assert "tax" not in f
    assert f["total"] == Decimal("57.00")


def test_half_width_labels_and_iso_dates():
    f = parsed("发票号码: 25317000002856140513\n开票日期 : 2025-11-08\n价税合计(大写) 柒拾叁圆贰角整 (小写) ¥ 73.20")
    assert f["number"] == "25317000002856140513"
    assert f["date"] == dt.date(2025, 11, 8)
    assert f["total"] == Decimal("73.20")
    assert f["total_in_words"] == "柒拾叁圆贰角整"


def test_unlabelled_values_are_found_by_shape():
    # Labels unreadable: the 合计 row is the pair that adds up to 价税合计,
    # tax ids are the USCC-shaped tokens in order, the check code is 4x5 digits.
    text = ("??:042002200411\n??:50440169\n??:01366 23285 53999 48930\n"
            "?? 91420116MA7MHFG051\n  ¥ 272.25   ¥ 35.39\n  叁佰零柒圆陆角肆分   ¥ 307.64\n"
            "?? 91420100616424442Y\n")
    f = parsed(text)
    assert f["code"] == "042002200411"
    assert f["number"] == "50440169"
    assert f["check_code"] == "01366232855399948930"
    assert (f["amount"], f["tax"], f["total"]) == (Decimal("272.25"), Decimal("35.39"), Decimal("307.64"))
    assert (f["buyer_tax_id"], f["seller_tax_id"]) == ("91420116MA7MHFG051", "91420100616424442Y")


def test_machine_number_is_not_taken_for_the_code():
    f = parsed("机器编号:499098845604\n??:50440169\n??:042002200411\n")
    assert f.get("code") == "042002200411"


def test_parse_invoice_text_offers_with_source_and_keeps_conflicts():
    inv = Invoice()
    inv.offer("number", "26427000000145889305", "qr")
    parse_invoice_text(DIGITAL, inv)
    assert inv.fields["title"].source == "pdf-text"
    assert inv.get("number") == "26427000000145889305"
    assert [c.field for c in inv.conflicts] == ["number"]
    assert len(inv.items) == 1


def test_looks_like_invoice():
    assert looks_like_invoice(DIGITAL)
    assert looks_like_invoice("发 票 号 码：1\n开 票 日 期：2")
    assert not looks_like_invoice("滴滴出行-行程单\n申请日期：2025-11-08\n共5笔行程， 合计73.20元")
    assert not looks_like_invoice("")


def test_garbage_never_raises():
    for text in ("", "\x00\x01\x02", "¥¥¥ 1.2.3 ¥", "发票号码:" * 1000, "名称:\n" * 50, "ğ" * 100):
        inv = Invoice()
        parse_invoice_text(text, inv)


def test_amount_glued_to_rate_splits_at_the_rate():
    text = """货物或应税劳务、服务名称    规格型号   单位   数量      单价        金额      税率      税额
*电子元件*集成电路     ESP32    个      2       42.81       85.6213%            11.13
*谷物*大米            5kg      袋      1       56.03       56.039%             5.04
*餐饮服务*餐费                                            100.001.5%          1.50
"""
    items = parse_text(normalize_text(text)).items
    assert [(str(i.amount), i.rate_text, str(i.tax)) for i in items] == [
        ("85.62", "13%", "11.13"), ("56.03", "9%", "5.04"), ("100.00", "1.5%", "1.50")]
    assert (items[0].quantity, items[0].unit_price) == (Decimal("2"), Decimal("42.81"))


def test_spaced_labels_do_not_glue_number_columns():
    # Labels printed "项 目 名 称" make many one-character tokens, but the
    # numbers are whole: the page is not letter-spaced.
    text = "\n".join(["项 目 名 称   规 格 型 号   单 位   数 量   单 价   金 额   税 率 / 征 收 率   税 额",
                      "*信息技术服务*软件开发     项     2     39784.74     79569.48 6%     4774.17"] * 10)
    items = parse_text(normalize_text(text)).items
    assert str(items[0].amount) == "79569.48"
    assert (items[0].quantity, items[0].unit_price) == (Decimal("2"), Decimal("39784.74"))


def test_the_mark_before_the_words_total_is_left_out():
    text = "价税合计（大写）   ⊗ 叁佰圆整          （小写）¥300.00\n发票号码:26427000000145889304"
    assert parse_text(normalize_text(text)).fields["total_in_words"] == "叁佰圆整"
    glued = "价税合计（大写）   ⊗叁佰圆整          （小写）¥300.00"
    assert parse_text(normalize_text(glued)).fields["total_in_words"] == "叁佰圆整"
    negative = "价税合计（大写）   ⊗负叁佰圆整          （小写）¥-300.00"
    assert parse_text(normalize_text(negative)).fields["total_in_words"] == "负叁佰圆整"


def test_a_unit_price_glued_to_the_amount_is_split_by_the_tax_or_not_at_all():
    # Real layouts: 深圳's blockchain invoice and a 数电 invoice print the
    # unit price and the amount with no gap; only amount × rate = tax tells
    # where the amount starts. Without a usable tax the amount stays empty.
    text = """货物或应税劳务、服务名称   规格型号   单位   数量    单价    金额    税率    税额
*住宿服务*住宿费                    间      1.00        907.54716981907.55          6%    54.45
*移动通信设备*智能电话华为 WATCH      台         11582.300884955751582.30 13%               205.70
*住宿服务*住宿费                    间      2           300.00600.00         免税   ***
*餐饮服务*餐费                              11.0011.00    13%    1.43
*出口*样品                                  15.0015.00    0%     0.00
"""
    items = parse_text(normalize_text(text)).items
    assert [str(i.amount) for i in items] == ["907.55", "1582.30", "None", "11.00", "None"]


def test_blockchain_title_and_five_hex_check_code_only_under_a_local_code():
    face = "深圳电子普通发票        发票代码:144032309110\n发票号码:09826096\n校验码:10a19\n"
    f = parse_text(normalize_text(face)).fields
    assert (f["title"], f["check_code"]) == ("深圳电子普通发票", "10a19")
    # Under a 总局 code, 5 characters are only part of a 20-digit code the
    # layout broke: never a 校验码.
    vat = "发票代码:044031900211\n发票号码:37820761\n校验码:05660 2359x 79008 26015\n"
    assert "check_code" not in parse_text(normalize_text(vat)).fields
    spaced = "发票代码:144032309110\n校验码:05660 23597 9008\n"
    assert "check_code" not in parse_text(normalize_text(spaced)).fields


# --- amounts printed without a ¥ (or with one drawn as strokes) ------------------

_NO_YEN_FACE = """\
        货物或应税劳务、服务名称        规格型号    单位     数量           单价              金额        税率                税额
    *住宿服务*住宿费         大床房              天      3       210.04         630.13       6%                       37.81
    *餐饮服务*餐费                                                                 1326.41       6%                       79.58
                 合   计                                                          1956.54                              117.39
             价税合计(大写)                   贰仟零柒拾叁圆玖角叁分                                (小写)  2073.93
"""


def test_amounts_without_a_yen_are_read_from_the_sum_row_and_the_small_letters():
    fields = parse_text(normalize_text(_NO_YEN_FACE)).fields
    assert (fields["amount"], fields["tax"], fields["total"]) == (
        Decimal("1956.54"), Decimal("117.39"), Decimal("2073.93"))


def test_a_sum_row_without_a_yen_that_does_not_add_up_is_not_read():
    # Two bare numbers on the 合计 row that do not make the 价税合计: not its
    # 金额 and 税额 (a column of another box, a quantity): left empty.
    face = _NO_YEN_FACE.replace("1956.54", "1956.45")
    fields = parse_text(normalize_text(face)).fields
    assert fields["total"] == Decimal("2073.93")
    assert "amount" not in fields and "tax" not in fields


def test_a_printed_amount_reads_commas_only_as_thousands_grouping():
    # "¥2,00" (a decimal comma) read as 200.00 would be a wrong value: it is
    # not read at all. "¥5,662.54" is grouping; "¥100," ends a phrase.
    face = "发票号码:26427000000145889304\n价税合计（大写）伍仟陆佰陆拾贰圆伍角肆分  （小写）¥{}\n"
    assert parse_text(normalize_text(face.format("5,662.54"))).fields["total"] == Decimal("5662.54")
    assert "total" not in parse_text(normalize_text(face.format("2,00"))).fields
    assert "total" not in parse_text(normalize_text(face.format("5,66,2.54"))).fields
    assert parse_text(normalize_text(face.format("100,税额¥13"))).fields["total"] == Decimal("100.00")
    # Digits split by a stray space are no "¥1" (a review's F7: read as 1.00).
    assert "total" not in parse_text(normalize_text(face.format("1, 234.56"))).fields
    assert "total" not in parse_text(normalize_text(face.format("1 234.56"))).fields


def test_an_impossible_printed_date_is_named_not_called_missing():
    parsed = parse_text(normalize_text("发票号码:26427000000145889304\n开票日期:2026年02月30日\n"))
    assert "date" not in parsed.fields
    [problem] = [p for p in parsed.problems if p.code == "date-impossible"]
    assert problem.severity == "error" and "2026-02-30" in problem.message
    fine = parse_text(normalize_text("发票号码:26427000000145889304\n开票日期:2026年02月28日\n"))
    assert fine.fields["date"] == dt.date(2026, 2, 28) and not fine.problems
    # Another date on the page (a 备注's period) is not taken in its place.
    other = parse_text(normalize_text("开票日期:2026年02月30日\n备注: 服务期 2026年03月01日\n"))
    assert "date" not in other.fields and [p.code for p in other.problems] == ["date-impossible"]
    # Bare digits are too weak a sign to name.
    assert not parse_text(normalize_text("编号 2023 13 45\n")).problems
