"""发票代码 and 发票号码 structure, and the region an invoice was issued in.

A code says where and what: region digits (2–5 of 12, 1–4 of 10) and type
digits (11–12 of 12, 8 of 10). A 20-digit 数电 number carries its year and
province instead. An invoice from another region is not in the local
tax system: one real cause of "the invoice is not in the system".
"""

from __future__ import annotations

from agent.validate.regions import CITY_REGIONS, PROVINCES, SHUDIAN_CITY_CODES

# Codes issued outside the usual scheme (区块链 and early pilot e-invoices);
# each is an ordinary electronic 普票 (查验 type 10).
SPECIAL_CODES = frozenset({"144031539110", "131001570151", "133011501118", "111001571071"})

# A 12-digit code's first digit is the issuing office: 0 the 总局 (every VAT
# invoice), 1 a 国税局 and 2 a 地税局, whose local codes are still printed on
# paper taxi and fixed-amount invoices (北京出租车 111001981004) and on
# 深圳's blockchain e-invoices (144032309110). Their digits 11–12 are not
# the 总局 type digits below.
LOCAL_CODE_LEADS = "12"

# 12-digit code digits 11–12 -> 查验 type (codes starting with 0).
TYPE_OF_12 = {"11": "10", "04": "04", "05": "04", "06": "11", "07": "11",
              "12": "14", "13": "08", "17": "15"}
# 10-digit code digit 8 -> 查验 type.
TYPE_OF_10 = {"1": "01", "5": "01", "3": "04", "6": "04", "2": "02", "7": "02"}

# 查验 type -> QR types that agree with it. The QR writes 20 for 电子专票
# (查验 08); a 通行费 e-invoice is an electronic 普票 too, so 10 is allowed.
QR_KINDS_OF_TYPE: dict[str, frozenset[str]] = {
    "10": frozenset({"10"}), "04": frozenset({"04"}), "11": frozenset({"11"}),
    "14": frozenset({"14", "10"}), "08": frozenset({"20", "08"}), "15": frozenset({"15"}),
    "01": frozenset({"01"}), "02": frozenset({"02"}),
}
# QR types that never have a 发票代码: the 20-digit number stands alone.
NUMBER_ONLY_KINDS = frozenset({"31", "32", "51", "61", "81", "82", "83", "84", "85", "86", "87", "88"})
# QR types that always have one.
CODED_KINDS = frozenset({"01", "02", "03", "04", "10", "11", "14", "15", "20"})

def is_digits(s: object, length: int | None = None) -> bool:
    """True when `s` is a str of ASCII digits (of `length` when given)."""
    return (isinstance(s, str) and s.isascii() and s.isdigit()
            and (length is None or len(s) == length))


def code_region_digits(code: str | None) -> str | None:
    """The 4 region digits of a 10- or 12-digit code, None for anything else."""
    if is_digits(code, 12):
        return code[1:5]
    if is_digits(code, 10):
        return code[0:4]
    return None


def code_type(code: str | None) -> str | None:
    """The 查验 type a code implies ("10", "04", "11", "14", "08", "15",
    "01", "02"), or None when the code is malformed or its type digits are
    not a known type."""
    if not isinstance(code, str):
        return None
    if code in SPECIAL_CODES:
        return "10"
    if is_digits(code, 12):
        return TYPE_OF_12.get(code[10:12]) if code[0] == "0" else None
    if is_digits(code, 10):
        return TYPE_OF_10.get(code[7])
    return None


def code_defects(code: str) -> list[tuple[str, str]]:
    """Why `code` is not a well-formed 发票代码, as (English, 中文) pairs;
    empty when it is well formed.

    Checks: 10 or 12 ASCII digits; a 12-digit code starts with 0, 1 or 2;
    the region digits name a known province.
    """
    if not is_digits(code) or len(code) not in (10, 12):
        return [(f"发票代码 {code!r} must be 10 or 12 digits", f"发票代码 {code} 应为10位或12位数字")]
    defects = []
    if len(code) == 12 and code[0] not in LOCAL_CODE_LEADS + "0":
        defects.append((f"a 12-digit 发票代码 starts with 0, 1 or 2, not {code[0]}",
                        f"12位发票代码应以0、1或2开头，实为{code[0]}"))
    region = code_region_digits(code)
    if region and region[:2] not in PROVINCES:
        defects.append((f"region digits {region} name no province", f"地区代码 {region} 不是已知省份"))
    return defects


def shudian_number_defects(number: str, year: int | None) -> list[tuple[str, str]]:
    """Why a 20-digit 数电 number is malformed, as (English, 中文) pairs;
    empty when sound.

    Digits 1–2 must equal `year`'s last two (when the year is known) and
    digits 3–4 must be a province or 计划单列市 code.
    """
    if not is_digits(number, 20):
        return [(f"数电 number {number!r} must be 20 digits", f"数电发票号码 {number} 应为20位数字")]
    defects = []
    if year is not None and number[:2] != f"{year % 100:02d}":
        defects.append((f"number starts with {number[:2]} but the invoice is dated {year}",
                        f"发票号码前两位 {number[:2]} 与开票年份 {year} 不符"))
    if number[2:4] not in PROVINCES and number[2:4] not in SHUDIAN_CITY_CODES:
        defects.append((f"digits 3–4 ({number[2:4]}) are not a province code",
                        f"发票号码第3–4位 {number[2:4]} 不是已知省份代码"))
    return defects


def region_of(code: str | None, number: str | None) -> tuple[str, str] | None:
    """The issuing region as (code, name): ("11", "北京") for a province,
    ("3502", "厦门") for a 计划单列市. Taken from the 发票代码 when there is
    one, else from a 20-digit 数电 number. None when neither says; never raises.
    """
    region = code_region_digits(code)
    if region is not None:
        if region in CITY_REGIONS:
            return region, CITY_REGIONS[region]
        if region[:2] in PROVINCES:
            return region[:2], PROVINCES[region[:2]]
        return None
    if is_digits(number, 20):
        province = number[2:4]
        if province in PROVINCES:
            return province, PROVINCES[province]
        if province in SHUDIAN_CITY_CODES:
            return SHUDIAN_CITY_CODES[province]
    return None


def region_matches(region: tuple[str, str], expected: str) -> bool:
    """True when `expected` (a code such as "11" or "3502", or a name such
    as "北京") names `region`. A 计划单列市 is its own region: 深圳 is not 44."""
    expected = expected.strip()
    return expected in region


def known_region(expected: str) -> bool:
    """True when `expected` is a province or 计划单列市 code or name."""
    expected = expected.strip()
    return (expected in PROVINCES or expected in CITY_REGIONS
            or expected in PROVINCES.values() or expected in CITY_REGIONS.values())
