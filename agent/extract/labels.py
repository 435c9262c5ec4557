"""The printed vocabulary of Chinese invoices: labels, titles, value shapes.

Kept apart from text.py so the parser reads as logic and this file as data.
Every pattern here runs on text already normalised by `text.normalize_text`
(NFKC except full-width brackets, labels de-spaced, `：` turned into `:`).
"""

from __future__ import annotations

import re

# Labels as printed, without the spaces layouts put inside them ("价 税 合 计").
# Longest first, so "价税合计" is de-spaced before "合计" can take part of it.
LABELS: tuple[str, ...] = tuple(sorted({
    "统一社会信用代码/纳税人识别号", "货物或应税劳务、服务名称", "项目名称", "规格型号",
    "税率/征收率", "发票代码", "发票号码", "开票日期", "校验码", "机器编号", "纳税人识别号",
    "地址、电话", "开户行及账号", "价税合计", "合计", "大写", "小写", "名称", "单价", "数量",
    "单位", "金额", "税率", "税额", "密码区", "备注", "收款人", "复核人", "复核", "开票人",
    "销售方", "购买方",
}, key=len, reverse=True))

# Labels that only an invoice prints; two of them make a page an invoice.
INVOICE_LABELS: tuple[str, ...] = (
    "发票代码", "发票号码", "开票日期", "校验码", "价税合计", "纳税人识别号", "开票人",
)


def _spaced(label: str) -> str:
    # Layouts pad labels to a fixed width with spaces between characters;
    # brackets and colons may be half or full width.
    return "[ ]*".join(re.escape(c) for c in label)


LABEL_SPACING_RE = re.compile("|".join(_spaced(l) for l in LABELS if len(l) > 1))

# Some PDFs draw labels in an Identity-H Adobe-GB1 font with no ToUnicode map;
# pypdf then returns chr(CID) (Arabic, Indic, Tibetan... code points). This is
# the Adobe-GB1 CID -> character table for the label characters only, taken
# from Adobe's Adobe-GB1-UCS2 CMap: values never use such fonts in the wild.
_GB1_PAIRS = (
    "č（Ď）ğ：ȿ、ɀ：Ʉ（Ʌ）̼/С备щ编љ别ӫ称ն大ս代ֆ单ֹ地\u05c8电ح额ؿ发ٚ方ڛ服گ复۬格ܓ购"
    "ܿ规ݼ号ނ核ކ合\u07bc户߅话߶会ࠇ或ࠊ货ࠏ机ࠣ及࠹计ࡎ价ࣁ金ष开ॻ款স劳ਈ量ੱ率\u0a92码ઙ买ૡ密"
    "\u0b00名ଢ目ବ纳ௐ票௹期ఖ器\u0c75区ದ人ರ日ഠ社്识൬收൲售ඔ数ඥ税\u0e64统໊位\u0efe物ༀ务"
    "༏息ཛ项ཧ销ཬ小\u0f6e校ཿ写ྐ信\u0f98型ྛ行ဒ验၂一ႋ应Ⴈ用ᅣ章ᅬ账ᆘ征ᆶ址ᇿ注"
)
GB1_LABEL_CIDS: dict[int, str] = {
    ord(_GB1_PAIRS[i]): _GB1_PAIRS[i + 1] for i in range(0, len(_GB1_PAIRS), 2)
}
# CIDs 1-95 are ASCII 0x20-0x7E; those below 0x20 arrive as control characters
# (CID 1, the space, pads such labels). Tab, newline and CR stay what they are.
GB1_LABEL_CIDS.update({cid: chr(cid + 31) for cid in range(1, 32) if cid not in (9, 10, 13)})
# Code points where chr(CID) of a GB1 label glyph lands; real invoice text has
# no Latin-Extended, Cyrillic, Arabic or Indic letters.
CID_MOJIBAKE_RE = re.compile("[\u0100-\u1fff]")

# Province (and 计划单列市) names, used to anchor the old-style title and to
# name the region of a 发票代码.
REGIONS: dict[str, str] = {
    "11": "北京", "12": "天津", "13": "河北", "14": "山西", "15": "内蒙古", "21": "辽宁",
    "22": "吉林", "23": "黑龙江", "31": "上海", "32": "江苏", "33": "浙江", "34": "安徽",
    "35": "福建", "36": "江西", "37": "山东", "41": "河南", "42": "湖北", "43": "湖南",
    "44": "广东", "45": "广西", "46": "海南", "50": "重庆", "51": "四川", "52": "贵州",
    "53": "云南", "54": "西藏", "61": "陕西", "62": "甘肃", "63": "青海", "64": "宁夏",
    "65": "新疆",
}
CITY_REGIONS: dict[str, str] = {
    "2102": "大连", "3302": "宁波", "3502": "厦门", "3702": "青岛", "4403": "深圳",
}
_PLACE = "|".join(sorted({*REGIONS.values(), *CITY_REGIONS.values()}, key=len, reverse=True))
_OPEN, _CLOSE = "[(（]", "[)）]"

# The 成品油 / 旅客运输服务 / 通行费 special labels print beside the title and
# are not part of it, so the title is anchored on its own words.
TITLE_RE = re.compile(
    rf"电子发票{_OPEN}(?:普通发票|增值税专用发票|铁路电子客票|航空运输电子客票行程单"
    rf"|机动车销售统一发票|二手车销售统一发票){_CLOSE}"
    rf"|(?:{_PLACE})?增值税电子(?:普通|专用)发票(?:{_OPEN}通行费{_CLOSE})?"
    rf"|(?:{_PLACE})增值税(?:普通|专用)发票(?:{_OPEN}卷式{_CLOSE})?"
    r"|(?:机动车|二手车)销售统一发票"
    rf"|(?:{_PLACE})电子普通发票"  # 深圳电子普通发票: the blockchain e-invoice
)

# Value shapes. Digits never touch other digits: a 20-digit 数电 number is
# not an 8-digit 号码 plus twelve more.
NUMBER_20_RE = re.compile(r"(?<!\d)\d{20}(?!\d)")
NUMBER_8_RE = re.compile(r"(?<!\d)\d{8}(?!\d)")
CODE_RE = re.compile(r"(?<!\d)(?:\d{12}|\d{10})(?!\d)")
CHECK_CODE_RE = re.compile(r"(?<!\d)(\d{5})[ ]{0,3}(\d{5})[ ]{0,3}(\d{5})[ ]{0,3}(\d{5})(?!\d)")
_USCC_CHAR = "[0-9A-HJ-NPQRTUWXY]"
USCC_RE = re.compile(rf"(?<![0-9A-Z]){_USCC_CHAR}{{2}}\d{{6}}{_USCC_CHAR}{{10}}(?![0-9A-Z])")
# 15-digit legacy ids, 18-character USCC, 20-character 身份证+2; 17 occurs on test invoices.
TAX_ID_RE = re.compile(r"(?<![0-9A-Z])[0-9A-Z]{15,20}(?![0-9A-Z])")
DATE_CN_RE = re.compile(r"(?<!\d)(\d{4})[ ]*年[ ]*(\d{1,2})[ ]*月[ ]*(\d{1,2})[ ]*日")
DATE_ISO_RE = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)")
# A date whose 年/月/日 glyphs were placed elsewhere by the layout: "2023  04  05".
DATE_BARE_RE = re.compile(r"(?<![\d.])(20\d{2})[ ]{1,6}(\d{2})[ ]{1,6}(\d{2})(?![\d.])")
# The whole yuan of an amount: commas only as thousands grouping. "2,00"
# (a decimal comma) or "1,2,3" is no amount: read as 200 or 123 it would be
# a wrong value, so it is not read at all.
YUAN = r"(?:\d{1,3}(?:,\d{3})+|\d+)"
# ¥ before or after the number, an optional minus on either side of the ¥.
# Whole yuan with no decimals must not be followed by more digits across a
# space or comma ("¥1, 234.56", "¥1 234.56"): read as 1.00 it is a wrong value.
MONEY_RE = re.compile(
    r"(-?)[ ]*¥[ ]*(-?" + YUAN + r"(?:\.\d{1,2}(?!\.?\d|,\d)|(?![ ]*[,，.]?[ ]*\d)))"
    r"|(?<![\d.,])(-?" + YUAN + r"\.\d{2})[ ]*¥"
)
# An amount without its ¥: exactly two decimals, no rate, date or longer number around it.
BARE_MONEY_RE = re.compile(r"(?<![\d.,/\-\w])(-?" + YUAN + r"\.\d{2})(?![\d.,%\w])")
_WORD_DIGIT = "零壹贰叁肆伍陆柒捌玖"
# Issuers print a ⊗ (U+2297) or ⓧ (U+24E7) before the 大写: a mark, not part
# of the value, so it is matched and left out of `words_value`.
WORDS_MARKS = "⊗ⓧ"
# A 红字 (negative) invoice prints its 大写 after a sign: "（负数）" as the tax
# system and agent.validate.amounts.to_words write it, "(负数)", or 负数 / 负
# alone. A bare 负 counts only where no other word runs into it (负责人 is no
# sign), or right after the 大写 label. The sign is part of the value: a 大写
# stored without it says the opposite amount.
_WORDS_SIGN = (r"[(（][ ]*负数[ ]*[)）]"
               r"|(?:(?<=大写)|(?<=价税合计)|(?<![\u3400-\u9fff]))负数?")
# Group "words" holds the numerals; "sign" the sign, when only spaces or a
# mark part it from them (a layout may set the two apart; left out, it
# would turn the 大写 positive). Marks and spaces are in neither group.
WORDS_RE = re.compile(
    rf"(?:[{WORDS_MARKS}][ ]*)?(?:(?P<sign>{_WORDS_SIGN})[ ]*(?:[{WORDS_MARKS}][ ]*)?)?"
    rf"(?P<words>[{_WORD_DIGIT}][{_WORD_DIGIT}拾佰仟万亿圆元角分整正]+)")
# Every WORDS_RE match holds one of these: a line without one is skipped by
# a plain character search (WORDS_RE's optional mark makes it try every position).
WORD_DIGIT_RE = re.compile(f"[{_WORD_DIGIT}]")
# What a whole printed 大写 ends with: 整/正 after 圆 or 角, or its 角 or 分.
WORDS_END_RE = re.compile("[整正角分]$")
# A character that makes a 大写-like run part of a longer word when it
# touches the run: 杭州壹元优选, 伍拾元充值卡, VIP壹元. Digits do not: a
# layout may glue the 小写 to its 大写 ("壹佰圆整100.00").
WORD_CHAR_RE = re.compile(r"[\u3400-\u9fffA-Za-z]")


def words_value(m: re.Match) -> str:
    """The 大写 a WORDS_RE match stands for, as printed: its sign (without
    inner spaces; mixed brackets as "（负数）"), then its numerals."""
    sign = "".join((m.group("sign") or "").split())
    if sign[:1] in ("(", "（") and sign not in ("（负数）", "(负数)"):
        sign = "（负数）"
    return sign + m.group("words")


def words_alone(text: str) -> str | None:
    """`words_value` of `text` when it is one 大写 amount and nothing else
    (the ⊗/ⓧ marks, a 红字 sign and whitespace allowed around it), else None."""
    m = WORDS_RE.fullmatch(" ".join(text.split()))
    return words_value(m) if m else None


def strip_words_marks(text: str) -> str:
    """`text` without surrounding whitespace and the ⊗/ⓧ marks printed before a 大写."""
    return text.strip().lstrip(WORDS_MARKS).strip()


WORDS_UNIT_RE = re.compile("[圆元角分]")

LABEL_VALUE_RE = {
    # The value may be preceded on its line by stray glyphs the layout put
    # there (a special label, the title): the shape decides.
    "number": re.compile(r"发票号码[ ]*:?[^\d\n]{0,40}?(\d{20}|\d{8})(?!\d)"),
    "code": re.compile(r"发票代码[ ]*:?[^\d\n]{0,20}?(\d{12}|\d{10})(?!\d)"),
    "check_code": re.compile(r"校验码[ ]*:?[^\n]{0,60}?" + CHECK_CODE_RE.pattern),
    # 深圳's blockchain invoices (a local 1… 代码) print the last 5 hex digits
    # of their hash; never the first group of a 20-digit code.
    "check_code_hex": re.compile(r"校验码[ ]*:?[ ]*([0-9a-f]{5})(?![0-9A-Za-z])(?![ ]*\d)"),
    "date": re.compile(r"开票日期[ ]*:?[ ]*" + DATE_CN_RE.pattern[len("(?<!\\d)"):]
                       + r"|开票日期[ ]*:?[ ]*" + DATE_ISO_RE.pattern[len("(?<!\\d)"):]),
}
NAME_LABEL_RE = re.compile(r"名称[ ]*:")
NAME_VALUE_RE = re.compile(r"[ ]*(\S+(?: \S+)*)")
# Some faces print the tax-id label without its colon ("纳税人识别号   9144…"):
# the label then ends where a space, the line's end or the value follows
# ("统一社会信用代码/" is the front half of the 数电 label, not a label).
TAX_ID_LABEL_RE = re.compile(r"(?:纳税人识别号|统一社会信用代码)(?:[ ]*:|(?=[ \n0-9A-Z]|\Z))")
TAX_ID_VALUE_RE = re.compile(r"[ ]*([0-9A-Z]{15,20})(?![0-9A-Z])")
# Rates have at most one decimal (1.5%): that is what splits an amount glued
# to its rate ("85.6213%" is 85.62 at 13%).
RATE_RE = re.compile(r"\d{1,2}(?:\.\d)?%|免税|不征税|出口零税率|普通零税率")
