"""A labelled value that its box wrapped onto the next line, joined back.

A long 数电 buyer name is printed on two lines of its box; read row by row,
the name is cut in half, and a cut name is a wrong name. `join_wrapped`
works on the rows `pdf_geometry` lays out (glyph tuples, see
pdf_geometry.page_glyphs, and each row's text parts and column starts).
"""

from __future__ import annotations

_COLONS = frozenset(":：")
_WRAP_OF_HEIGHT = 2.0   # a wrapped value's next line is this close below (share of the glyph height)
_WRAP_GLYPHS = 2        # a lone glyph under a value is a vertical label's letter, not its end


def join_wrapped(rows: list[list[tuple]], runs: list, rows_parts: list[list[str]],
                 rows_breaks: list[list[tuple]], lines: list[str], align: float) -> None:
    """Appends to a labelled value ("名称：<value>") the rows its box wrapped
    it onto: a column, in one of the next rows down (each within
    _WRAP_OF_HEIGHT of the one above), whose first glyph is within
    align of the value's first, that has no label colon, is no
    ciphertext, has at least _WRAP_GLYPHS glyphs and does not follow a
    label. The first row with anything else under the value ends the
    search, so a value is never given another field's text or a vertical
    label's letter. `lines` (the rows' parts joined) are rewritten where a
    value is joined; parts are edited in place, their count kept, so that
    each row's column indexes stay true."""
    colons = _COLONS
    for k, line in enumerate(lines):
        if ":" not in line and "：" not in line:
            continue
        row, parts, breaks = rows[k], rows_parts[k], rows_breaks[k]
        # Where the columns of the next rows within reach start: most
        # labelled values have none under them, and cost nothing more.
        starts: list[float] = []
        for j in range(k + 1, len(rows)):
            if row[0][5] - rows[j][0][5] > _WRAP_OF_HEIGHT * row[0][6]:
                break
            starts += [g[1] for g, _ in rows_breaks[j]]
        if not starts:
            continue
        for b, (start, text_at) in enumerate(breaks):
            last = row.index(breaks[b + 1][0]) if b + 1 < len(breaks) else len(row)
            if not any(start[1] + align < x < row[last - 1][1] + align for x in starts):
                continue
            first = row.index(start)
            colon = max((i for i in range(first, last - 1) if row[i][0] in colons), default=None)
            if colon is None:
                continue
            value, end = row[colon + 1], row[last - 1]
            end_at = breaks[b + 1][1] - 2 if b + 1 < len(breaks) else len(parts) - 1
            reference = value
            for j in range(k + 1, len(rows)):
                if reference[5] - rows[j][0][5] > _WRAP_OF_HEIGHT * reference[6]:
                    break
                under = [i for i, g in enumerate(rows[j]) if g[3] > value[1] - align and g[1] < end[3]]
                if not under:
                    continue
                found = _continuation(rows[j], runs[j], rows_breaks[j], len(rows_parts[j]), under, value[1],
                                      end[3], align)
                if found is None:
                    break
                cut_from, cut_to = found
                tail_parts = rows_parts[j]
                tail = "".join(tail_parts[cut_from:cut_to])
                joint = " " if parts[end_at][-1:] < "\u2e80" and tail[:1] < "\u2e80" else ""
                parts[end_at] += joint + tail
                tail_parts[cut_from:cut_to] = [" " * len(tail)] + [""] * (cut_to - cut_from - 1)
                lines[k], lines[j] = "".join(parts), "".join(tail_parts)
                reference = rows[j][under[0]]


def _continuation(row: list[tuple], run, breaks: list[tuple], parts_count: int, under: list[int],
                  value_left: float, value_right: float, align: float) -> tuple[int, int] | None:
    """The parts range (from, to) of `row`'s column that continues a value
    spanning `value_left` to `value_right`, when the glyphs `under` the
    value are exactly that column and it qualifies (see join_wrapped); else
    None. The column starts where the value starts, or lies wholly inside
    the value's span (a box that indents or centres its lines); one starting
    further left, under the label, is never taken: a label printed without
    its colon would be glued to the value."""
    for b, (start, text_at) in enumerate(breaks):
        first = row.index(start)
        last = row.index(breaks[b + 1][0]) if b + 1 < len(breaks) else len(row)
        if not first <= under[0] < last:
            continue
        inside = start[1] >= value_left - align and row[last - 1][3] <= value_right + align
        if abs(start[1] - value_left) > align and not inside:
            return None
        glyphs = row[first:last]
        if (under[0] != first or under[-1] >= last or len(glyphs) < _WRAP_GLYPHS
                or any(g[0] in _COLONS for g in glyphs)
                or (run is not None and run[0] < last and run[1] > first)
                or (b > 0 and row[first - 1][0] in _COLONS)):
            return None
        return text_at, (breaks[b + 1][1] - 1 if b + 1 < len(breaks) else parts_count)
    return None
