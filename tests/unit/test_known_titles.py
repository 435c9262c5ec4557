"""A garbled OCR reading of a title is mapped to a known title only when no
other is nearly as close, and never onto another region's title."""

from __future__ import annotations

import pytest

from agent.extract.known_titles import known_titles, match_title, region_of_code


@pytest.mark.parametrize("reading,region,title", [
    ("北京请出租汽车专用交票", None, "北京市出租汽车专用发票"),  # two characters misread
    ("北京增值税专用发", None, "北京增值税专用发票"),  # the last character lost
    ("上海增值税专用发票", None, "上海增值税专用发票"),  # exact, though 青海's is one edit away
    ("增值税专用发票", "北京", "北京增值税专用发票"),  # no region printed: the 代码's decides
])
def test_a_near_reading_maps_to_its_title(reading, region, title):
    assert match_title(reading, region)[0] == title


@pytest.mark.parametrize("reading,region", [
    ("增值税专用发票", None),  # every region's 专票 is as near
    ("北京韩出租汽拳专用公票", None),  # three edits: too far for an 11-character title
    ("北京市服务业专用发票", "北京"),  # a title not on the list
    ("上海市出租汽车统一发票", "北京"),  # plainly another region's than the 代码's
    ("发票联", None),
    ("", None),
])
def test_a_far_or_ambiguous_reading_maps_to_nothing_and_says_why(reading, region):
    title, why = match_title(reading, region)
    assert title is None
    assert why


def test_the_list_holds_the_real_titles_seen_in_the_samples():
    titles = {t for t, _ in known_titles()}
    assert {"北京市出租汽车专用发票", "深圳电子普通发票", "贵州增值税电子专用发票",
            "电子发票（普通发票）", "电子发票（铁路电子客票）"} <= titles


def test_the_region_of_a_code():
    assert region_of_code("111001981004") == "北京"
    assert region_of_code("044031900111") == "深圳"
    assert region_of_code("3300171130") == "浙江"
    assert region_of_code("99999") is None
    assert region_of_code(None) is None
