"""发票代码 / 数电 number structure and the issuing region."""

from __future__ import annotations

import pytest

from agent.validate.codes import (
    code_defects, code_type, known_region, region_matches, region_of, shudian_number_defects,
)
from agent.validate.regions import PROVINCES


@pytest.mark.parametrize("code,expected", [
    ("042002200411", "10"), ("033002000211", "10"), ("052002100113", "08"),
    ("044031900104", "04"), ("044031900105", "04"), ("044031900106", "11"), ("044031900107", "11"),
    ("044031900112", "14"), ("044031900117", "15"),
    ("144031539110", "10"), ("131001570151", "10"), ("133011501118", "10"), ("111001571071", "10"),
    # 10 digits: region(4) year(2) batch(1) type(1) copies(2)
    ("1100191300", "04"), ("1100191600", "04"), ("1100191400", None),
    ("4400191100", "01"), ("4400191500", "01"), ("4400191200", "02"), ("4400191700", "02"),
    ("011002680026", None),  # unknown type digits 26 (a 百望 test invoice)
    ("111001981004", None), ("144032309110", None),  # local codes: digits 11–12 are not the 总局 type
    ("04200220041", None), ("abc", None), (None, None),
])
def test_code_type(code, expected):
    assert code_type(code) == expected


# 1… and 2… are 国税/地税 local codes: a Beijing taxi invoice, a 深圳 blockchain e-invoice.
@pytest.mark.parametrize("code", ["042002200411", "144031539110", "1100191300", "035021900111",
                                  "111001981004", "144032309110", "244031900104"])
def test_well_formed_codes(code):
    assert code_defects(code) == []


@pytest.mark.parametrize("code,fragment", [
    ("342002200411", "starts with 0, 1 or 2"), ("942002200411", "starts with 0, 1 or 2"), ("099002200411", "no province"),
    ("9900191130", "no province"), ("04200220041", "10 or 12 digits"), ("04200220041X", "10 or 12 digits"),
    ("０４２００２２００４１１", "10 or 12 digits"),
])
def test_malformed_codes(code, fragment):
    defects = code_defects(code)
    assert defects and any(fragment in en for en, _ in defects)
    assert all(zh for _, zh in defects)


def test_shudian_numbers():
    assert shudian_number_defects("24112000000048542163", 2024) == []
    assert shudian_number_defects("25379266878000000370", 2025) == []
    assert shudian_number_defects("25922000000000000001", 2025) == []   # 青岛
    assert shudian_number_defects("24112000000048542163", None) == []
    year = shudian_number_defects("24112000000048542163", 2025)
    assert len(year) == 1 and "dated 2025" in year[0][0]
    province = shudian_number_defects("24992000000048542163", 2024)
    assert len(province) == 1 and "province" in province[0][0]
    assert shudian_number_defects("2411200000004854216", 2024)


@pytest.mark.parametrize("code,number,expected", [
    ("042002200411", "50440169", ("42", "湖北")),
    ("052002100113", "00008006", ("52", "贵州")),
    ("035021900111", "12345678", ("3502", "厦门")),
    ("144031539110", "12345678", ("4403", "深圳")),
    ("2102191130", "12345678", ("2102", "大连")),
    ("044011900111", "12345678", ("44", "广东")),   # 广州 is part of 广东
    (None, "24112000000048542163", ("11", "北京")),
    (None, "25942000000000000001", ("3502", "厦门")),
    (None, "25992000000000000001", None),
    ("099002200411", None, None),
    (None, "50440169", None), (None, None, None), ("garbage", "more garbage", None),
])
def test_region_of(code, number, expected):
    assert region_of(code, number) == expected


def test_every_province_is_named_and_found():
    assert len(PROVINCES) == 31
    for code, name in PROVINCES.items():
        assert region_of(f"0{code}001900011", None) == (code, name)
        assert region_of(None, f"25{code}2000000000000001") == (code, name)


def test_region_matching_by_code_or_name():
    assert region_matches(("11", "北京"), "11") and region_matches(("11", "北京"), "北京")
    assert not region_matches(("44", "广东"), "11")
    assert not region_matches(("4403", "深圳"), "44")  # a 计划单列市 is its own tax region
    assert known_region("3502") and known_region("北京") and not known_region("99")
