"""CSV the way every command writes it: with no cell a spreadsheet would run.

File names, attachment names and invoice numbers come from strangers. A cell
that begins with `=`, `+`, `-` or `@` (or a tab, CR or LF, which some
spreadsheets skip before looking) is read by Excel and LibreOffice as a
formula: `=HYPERLINK(...)` leaks data, `=1+2+cmd|...` runs a program
(CWE-1236). Such a cell is written with a leading `'`, which spreadsheets
show as text and drop. A plain number (`-12.50`, the total of a 红字 credit
note) cannot be a formula and is written as it is, so it stays a number.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any, Iterable, Mapping, Sequence, TextIO

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")
_PLAIN_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")


def safe_cell(value: Any) -> Any:
    """`value` as it may go into a CSV cell: a string that a spreadsheet would
    take as a formula gets a leading `'`; anything else is unchanged."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def csv_text(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A header row and one row per mapping (only `columns`, in order), every
    cell passed through `safe_cell`. The one CSV writer of the CLI."""
    buf = io.StringIO()
    write_csv(buf, rows, columns)
    return buf.getvalue()


def write_csv(out: TextIO, rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """`csv_text` written to `out` row by row as `rows` yields them, so an
    export of any size holds one row at a time."""
    writer = csv.DictWriter(out, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: safe_cell(row.get(k)) for k in columns})
