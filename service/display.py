"""How the CLI shows things to a person: times in local time with their
offset, and tables whose columns line up whatever the script.

The ledger stores UTC (`2026-12-03T06:05:06.123456Z`, so text order is time
order); an operator in Shanghai reads `2026-12-03 14:05:06 +08:00`. Only
what is printed for a person changes: `--json`, `--csv` and the ledger keep
the stored UTC text.

A Chinese character takes two terminal columns, an accent none: padding by
`len()` pushes every cell after a seller's name out of line. Widths here are
display widths from `wcwidth` (the terminal's own table of East Asian
widths, combining and zero-width characters). Every cell goes through
`textsafe.shown` before it is measured, so what is measured is what prints.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from agent.ledger.rows import parse_utc
from service.textsafe import shown


def local_time(value: str | dt.datetime | None, *, seconds: bool = True) -> str | None:
    """`value` (a ledger timestamp, an ISO 8601 time with a zone, or an aware
    datetime) in this host's local zone (TZ) with its offset:
    `2026-12-03 14:05:06 +08:00`. None stays None; text that is not a time
    with a zone is returned unchanged (never guessed into a zone)."""
    if value is None or value == "":
        return None
    moment = value if isinstance(value, dt.datetime) else _parse(str(value))
    if moment is None or moment.tzinfo is None:
        return str(value)
    local = moment.astimezone()
    text = local.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
    return f"{text} {_offset(local)}"


def _parse(text: str) -> dt.datetime | None:
    try:
        return parse_utc(text)   # the ledger's own form, read without strptime's ~5 ms first call
    except ValueError:
        pass
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def _offset(moment: dt.datetime) -> str:
    off = moment.utcoffset() or dt.timedelta(0)
    sign = "-" if off < dt.timedelta(0) else "+"
    minutes = abs(int(off.total_seconds())) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def width(text: str) -> int:
    """Columns `text` takes on a terminal (a CJK character 2, a combining
    mark 0); a character wcwidth cannot place counts 1, never negative."""
    quick = 0
    for ch in text:
        w = _quick_width(ch)
        if w is None:
            return _wcwidth(text)
        quick += w
    return quick


def _quick_width(ch: str) -> int | None:
    # wcwidth's answer for the characters tables are made of (ASCII, Han,
    # kana, full-width forms: East Asian Width W/F 2, Na/H 1) from the
    # interpreter's own unicodedata, or None: wcwidth decides the rest
    # (marks, format and control characters, fillers, ambiguous width).
    # Importing wcwidth loads all its tables (~40 ms), which `list` of 50
    # Chinese names need not pay; tests/unit/test_display.py checks this
    # agrees with wcwidth on every code point it decides.
    if " " <= ch <= "~":
        return 1
    if unicodedata.category(ch) in _WCWIDTH_DECIDES or ch in _FILLERS:
        return None
    return _EAW.get(unicodedata.east_asian_width(ch))


_WCWIDTH_DECIDES = frozenset({"Mn", "Mc", "Me", "Cf", "Cc", "Cs", "Co", "Cn", "Zl", "Zp"})
_FILLERS = frozenset("\u115f\u1160\u3164\uffa0")   # Hangul fillers: letters (Lo) of no width
_EAW = {"W": 2, "F": 2, "Na": 1, "H": 1}


def _wcwidth(text: str) -> int:
    # Imported here: the package loads all its Unicode tables, and commands
    # that print no table (status, --version) should not pay for them.
    from wcwidth import wcswidth, wcwidth

    total = wcswidth(text)
    if total >= 0:
        return total
    return sum(w if (w := wcwidth(ch)) >= 0 else 1 for ch in text)


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` columns, ending in `…` when cut."""
    if width(text) <= limit:
        return text
    out, used = "", 0
    for ch in text:
        w = width(ch)
        if used + w > limit - 1:
            break
        out, used = out + ch, used + w
    return out + "…"


def pad(text: str, columns: int, align: str = "<") -> str:
    """`text` padded with spaces to `columns` display columns, left (`<`) or
    right (`>`) aligned."""
    fill = " " * max(columns - width(text), 0)
    return fill + text if align == ">" else text + fill


@dataclass(frozen=True)
class Column:
    """One column of a table: the row key it shows, its header, `<` or `>`,
    and the most columns a cell may take (longer ones are cut with `…`)."""

    key: str
    header: str
    align: str = "<"
    max_width: int | None = None
    empty: str = "-"


def table(rows: Iterable[Mapping[str, Any]], columns: Sequence[Column], *, gap: str = "  ") -> list[str]:
    """The lines of a table: a header row, then one line per row, every
    column as wide as its widest cell by display width (the last column is
    not padded). A missing or None cell shows the column's `empty`. The
    lines are already `shown` (no control character), one line per row."""
    cells = [[_cell(row.get(c.key), c) for c in columns] for row in rows]
    widths = [max([width(c.header), *(width(line[i]) for line in cells)]) for i, c in enumerate(columns)]
    return [_line([shown(c.header) for c in columns], widths, columns, gap)] + [
        _line(line, widths, columns, gap) for line in cells]


def _cell(value: Any, column: Column) -> str:
    text = column.empty if value is None or value == "" else shown(value)
    return clip(text, column.max_width) if column.max_width else text


def _line(cells: list[str], widths: list[int], columns: Sequence[Column], gap: str) -> str:
    last = len(cells) - 1
    parts = [pad(text, widths[i], columns[i].align) if i < last or columns[i].align == ">" else text
             for i, text in enumerate(cells)]
    return gap.join(parts).rstrip()


def problem_lines(problems: list[dict], indent: str = "  ") -> list[str]:
    """Each problem as `quarantine` and `show` print it: severity, rule code,
    field and English message on one line, the Chinese message (when the
    rule has one) on the next."""
    lines = []
    for p in problems:
        where = f" ({p['field']})" if p.get("field") else ""
        lines.append(f"{indent}{p['severity'].upper():<7} {p['code']}{where}: {p['message']}")
        if p.get("message_zh"):
            lines.append(f"{indent}        {p['message_zh']}")
    return lines


def arrival_lines(details: object) -> list[str]:
    """What one arrival's recorded details tell a person, as `show` prints
    them under the arrival: the e-mail's sender and subject, the zip
    archive it came out of (or the Outlook winmail.dat), and the label (the
    department subfolder or the watched folder's label)."""
    if not isinstance(details, dict):
        return []
    lines = []
    if details.get("from") or details.get("subject"):
        lines.append(f"e-mail from {details.get('from') or '(no sender)'}, subject: "
                     f"{details.get('subject') or '(none)'}")
    if details.get("from_zip"):
        # `from_zip` is the path of what it came out of: zip archives, or a
        # winmail.dat (TNEF), which no one should read as a zip archive.
        within = str(details["from_zip"])
        kind = "zip archive " if within.rsplit("/", 1)[-1].lower().endswith(".zip") else ""
        lines.append(f"out of {kind}{within}"
                     + (f" ({details['archive_path']})" if details.get("archive_path") else ""))
    if details.get("label"):
        lines.append(f"label: {details['label']}")
    return lines
