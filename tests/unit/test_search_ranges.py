"""`search --amount` / `--date` ranges and the day `list --since` takes:
what a person typed is read as meant or refused with BadSearch, never
misread (agent/search.py's promise)."""

from __future__ import annotations

import datetime as dt

import pytest

from agent.search import BadSearch, parse_amount_range, parse_date_range, parse_day


@pytest.mark.parametrize("typed, says", [
    ("0...50", "two dots, not 3"),        # was 0 to 0.50: the third dot made `.50` of the high end
    ("...5", "two dots, not 3"),          # was "up to 0.50"
    ("0....50", "two dots, not 4"),
    ("100...", "two dots, not 3"),
    ("...", "two dots, not 3"),
    ("1..2..3", "one `..` at most"),
    (".50", "a digit on each side of the point"),
    ("50.", "a digit on each side of the point"),
    ("..50.", "a digit on each side of the point"),
    (".5..2", "a digit on each side of the point"),
    ("1 00..200", "at most two decimals"),
    ("100. .200", "at most two decimals"),
    ("١٠٠", "U+0661"),                    # Arabic-Indic digits are no digits here
    ("100。。200", "U+3002"),             # the ideographic full stop is no dot
    ("100\u00a0..200", "U+00A0"),
])
def test_an_amount_range_it_cannot_read_is_refused(typed, says):
    with pytest.raises(BadSearch) as e:
        parse_amount_range(typed)
    assert says in str(e.value) and repr(typed) in str(e.value)


@pytest.mark.parametrize("typed, read", [
    ("0..50", (0, 5000)),
    ("..5", (None, 500)),
    ("0.50..", (50, None)),
    (" 100 .. 200 ", (10000, 20000)),     # spaces around an end
    ("１００．．２００", (10000, 20000)),    # full-width forms of an input method: the ASCII they stand for
    ("－１００..０", (-10000, 0)),
    ("-1..+1", (-100, 100)),
])
def test_an_amount_range_is_read_as_meant(typed, read):
    assert parse_amount_range(typed) == read


@pytest.mark.parametrize("typed, says", [
    ("2026-11-01...2026-11-30", "two dots, not 3"),
    ("...2026-11", "two dots, not 3"),
    ("2026-11-05...", "two dots, not 3"),
    (".2026-11-05", "YYYY-MM-DD or YYYY-MM"),
    ("2026-11-05.", "YYYY-MM-DD or YYYY-MM"),
    ("2026-11 -05", "YYYY-MM-DD or YYYY-MM"),
    ("20261105", "YYYY-MM-DD or YYYY-MM"),
    ("2026-W45", "YYYY-MM-DD or YYYY-MM"),
    ("٢٠٢٦-١١-٠٥", "U+0662"),
    ("2026-13", "no such date"),
])
def test_a_date_range_it_cannot_read_is_refused(typed, says):
    with pytest.raises(BadSearch) as e:
        parse_date_range(typed)
    assert says in str(e.value)


def test_a_date_range_in_full_width_is_read_as_meant():
    # Before, `\d` let the full-width digits through to fromisoformat, which
    # refused them as "no such date": the wrong reason.
    assert parse_date_range("２０２６－１１－０１．．２０２６－１１") == ("2026-11-01", "2026-11-30")
    assert parse_date_range(" 2026-11-05 .. ") == ("2026-11-05", None)


@pytest.mark.parametrize("typed", ["", " ", "2026-W49", "20261205", "2026-12", "2026-12-05..", "2026-12-05.",
                                   "2026-12-05T00:00", "٢٠٢٦-١٢-٠٥"])
def test_a_day_is_only_what_search_reads_as_a_day(typed):
    with pytest.raises(BadSearch):
        parse_day(typed)


def test_a_day_is_read_as_search_reads_it():
    assert parse_day("2026-12-05") == dt.date(2026, 12, 5)
    assert parse_day(" ２０２６－１２－０５ ") == dt.date(2026, 12, 5)
    with pytest.raises(BadSearch, match="no such date"):
        parse_day("2026-02-30")
