"""CSV the way every command writes it: with no cell a spreadsheet would run.

File names, attachment names and invoice numbers come from strangers. A cell
that begins with `=`, `+`, `-` or `@` (or a tab, CR or LF, which some
spreadsheets skip before looking) is read by Excel and LibreOffice as a
formula: `=HYPERLINK(...)` leaks data, `=1+2+cmd|...` runs a program
(CWE-1236). Spreadsheets skip leading blanks before looking, so the trigger
counts after any leading whitespace (a space, U+3000, a vertical tab...) and
control or invisible format characters. Such a cell is written with a
leading `'`, which spreadsheets show as text and drop. A value that itself
begins with `'` gets one too, so every cell stands for one value: `=1+1` is
`'=1+1` and `'=1+1` is `''=1+1`; a program reading the CSV drops one leading
`'` from any cell that has one. A plain number (`-12.50`, the total of a 红字 credit
note) cannot be a formula and is written as it is, so it stays a number.

Excel also reads a cell of digits as a number: a 20-digit 数电 invoice
number comes out as 2.6317E+19 with only 15 digits kept, a 发票代码 or tax id
loses its leading zero. Such a cell (digits only, more than 15 of them or
a leading zero) is written as `="…"`, a constant Excel, LibreOffice and
Google Sheets show as the very text; shorter digit strings (an 8-digit
number) stay numbers, exact in any spreadsheet.

A cell's control, bidi, format characters and lone surrogates (agent/
textchars.py) other than tab, CR and LF (a quoted cell holds those as
CSV) are written as visible escapes (`\\x1b`, `\\u202e`, `\\u200b`): an ESC
must not reach a terminal that `cat`s the file, an RLO must not show
`q-<RLO>gnp.xml` as `q-lmx.png` in a spreadsheet, a zero-width space must not
hide in a number. A CSV is for people; `--json` keeps such values exact.

Every CSV starts with a UTF-8 byte-order mark: without it Excel reads the
file in the machine's ANSI code page and the Chinese comes out garbled.
`echo_csv` writes UTF-8 bytes to stdout whatever the locale (under
zh_CN.GB18030 the BOM would otherwise come out as GB18030 bytes).
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from typing import Any, Iterable, Mapping, Sequence, TextIO

from agent import textchars

_FORMULA_START = ("=", "+", "-", "@", "\uff1d", "\uff0b", "\uff0d", "\uff20", "\ufe62", "\ufe63", "\ufe66")
_PLAIN_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")


def _skipped(ch: str) -> bool:
    """A character a spreadsheet may pass over before it looks for `=`:
    any Unicode whitespace, a control or an invisible format character."""
    return ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Zs", "Zl", "Zp")


def safe_cell(value: Any) -> Any:
    """`value` as it may go into a CSV cell: a string whose first character
    after leading whitespace and control/format characters is a formula
    trigger (`= + - @`, also full-width), or that begins with a tab, CR, LF
    or `'`, gets a leading `'` (so removing one leading `'` from a cell that
    has one gives back the value, always); a plain number and anything else
    is unchanged."""
    if not isinstance(value, str) or not value:
        return value
    i = 0
    while i < len(value) and _skipped(value[i]):
        i += 1
    rest = value[i:]
    if value.startswith(("\t", "\r", "\n", "'")) or (rest.startswith(_FORMULA_START)
                                                  and not _PLAIN_NUMBER.fullmatch(rest)):
        return "'" + value
    return value


# textchars.UNSAFE without tab, LF and CR.
_HIDDEN = f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{textchars.BIDI_AND_SEPARATORS}{textchars.FORMAT}{textchars.SURROGATES}]"


def visible_cell(value: Any) -> Any:
    """`value` with every control, bidi, format character and lone surrogate
    but tab, CR and LF written as its visible escape (textchars.escaped);
    anything not a str, and a printable str, unchanged."""
    if not isinstance(value, str) or value.isprintable():
        return value
    return re.sub(_HIDDEN, lambda m: textchars.escaped(m.group(0)), value)


_DIGITS = re.compile(r"[0-9]+")  # ASCII digits only: \d also takes other scripts


def spreadsheet_text(value: Any) -> Any:
    """`value` as a spreadsheet keeps it: a string of digits only that is
    longer than 15 digits (past a double's precision) or starts with 0
    becomes `="value"`, shown as that very text; anything else unchanged."""
    if isinstance(value, str) and _DIGITS.fullmatch(value) and (len(value) > 15 or
                                                                   value.startswith("0") and len(value) > 1):
        return f'="{value}"'
    return value


BOM = "\ufeff"


def csv_text(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A BOM, a header row and one row per mapping (only `columns`, in order),
    every cell passed through `visible_cell`, `safe_cell` and
    `spreadsheet_text`. The one CSV writer of the CLI."""
    buf = io.StringIO()
    write_csv(buf, rows, columns)
    return buf.getvalue()


def write_csv(out: TextIO, rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """`csv_text` written to `out` row by row as `rows` yields them, so an
    export of any size holds one row at a time. Starts with the BOM."""
    out.write(BOM)
    writer = csv.DictWriter(out, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: spreadsheet_text(safe_cell(visible_cell(row.get(k)))) for k in columns})


def echo_csv(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """`write_csv` to stdout as UTF-8 bytes (BOM first), whatever the locale's
    encoding; stdout itself stays open."""
    import click   # only the commands that print CSV need it here

    out = io.TextIOWrapper(click.get_binary_stream("stdout"), encoding="utf-8", newline="")
    try:
        write_csv(out, rows, columns)
    finally:
        out.flush()
        out.detach()
