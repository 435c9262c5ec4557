"""What a second look accepts as a date reading and as a date label
(agent/extract/ocr_regions.py): stray glyphs at a window's edges are
tolerated, a reading that could be two dates is none, and another date's
label (有效日期) is never taken for the invoice date's."""

from __future__ import annotations

import datetime as dt

import pytest

from agent.extract.ocr_regions import _DATE_LABEL_RE, _dates_in


@pytest.mark.parametrize("text,date", [
    ("2021-12-04", dt.date(2021, 12, 4)),
    ("F2021-12-0470", dt.date(2021, 12, 4)),  # the window's edges read as stray glyphs
    ("开票日期:2023年11月30日", dt.date(2023, 11, 30)),
    ("2023年4月5日", dt.date(2023, 4, 5)),
    ("2021.12.04", dt.date(2021, 12, 4)),
])
def test_a_date_reading(text, date):
    assert _dates_in(text) == [date]


@pytest.mark.parametrize("text", [
    "2026年05月209日37569",  # the 日 fences the day: 05-20 is not read into it
    "52021512-040", "2621-12-04", "2021-13-04", "2021-02-30", "13:02-13:34", "",
])
def test_not_a_date_reading(text):
    assert _dates_in(text) == []


@pytest.mark.parametrize("text,is_label", [
    ("日期", True), ("开票日期:", True), ("开票0期：2026年", True), ("Date", True), ("乘车日期", True),
    ("有效日期", False), ("出生日期", False), ("Update", False), ("时间", False),
])
def test_a_date_label(text, is_label):
    assert bool(_DATE_LABEL_RE.search(text)) is is_label
