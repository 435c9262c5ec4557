"""The buyer's and seller's 名称 and 纳税人识别号 from a page's normalized text
(agent/extract/text.py): each read only from its own party box's label,
never from a 备注 line that names something, and left empty with a problem
when the page prints more labels than a face has boxes. Where no tax-id
label is readable, an id-shaped token goes to a party only when the page
ties it to that party's box (below its 名称 label), or when the page prints
exactly two of them; an id that could be either party's is left empty."""

from __future__ import annotations

import re
from typing import Any

from agent.extract import labels as L
from agent.model import Problem


def _clean_name(value: str) -> str | None:
    value = value.strip()
    # One character is a neighbouring column's marker (密, 备, 销), not a name.
    if len(value) < 2 or ":" in value or any(value.startswith(l) for l in L.LABELS):
        return None
    return value


def _labelled_values(norm: str, label_re: re.Pattern, value_re: re.Pattern,
                     starts_out: list[int] | None = None) -> list[str | None]:
    """The value after each occurrence of a label, or None where the label's
    line has no value of the right shape before the next label. The
    occurrences' start offsets are appended to `starts_out` when given."""
    values: list[str | None] = []
    starts = [m for m in label_re.finditer(norm)]
    if starts_out is not None:
        starts_out.extend(m.start() for m in starts)
    for i, m in enumerate(starts):
        end = norm.find("\n", m.end())
        end = len(norm) if end < 0 else end
        if i + 1 < len(starts) and starts[i + 1].start() < end:
            end = starts[i + 1].start()
        v = value_re.match(norm, m.end(), end)
        values.append(v.group(1) if v else None)
    return values


# What may print right before a party box's 名称 / 纳税人识别号 label: nothing,
# a letter or two of the boxes' vertical labels (购买方信息, 销售方), or the party
# itself (铁路电子客票: 购买方名称). Any other word makes it another label:
# 项目名称, 收款方名称, 代开企业名称 or 纳税人识别号 in a 备注, which on old
# layouts prints above the seller's rows.
_BOX_LETTERS = frozenset("购买方信息销售")
_PARTY_PREFIXES = {"购买方": "buyer", "购方": "buyer", "销售方": "seller", "销方": "seller"}
_IDEOGRAPHS_BEFORE_RE = re.compile(r"[\u4e00-\u9fff]+\Z")


def _party_values(norm: str, label_re: re.Pattern, value_re: re.Pattern) -> list[tuple[str | None, int]]:
    """`_labelled_values` of the party boxes' labels only: buyer first, then
    seller, each with its label's offset in `norm` (-1: no label). Labels
    naming their party (购买方名称) are used only when no bare box label is
    printed, so a 备注 line naming a party cannot take a box's place."""
    starts: list[int] = []
    values = _labelled_values(norm, label_re, value_re, starts)
    bare: list[tuple[str | None, int]] = []
    named: dict[str, list[tuple[str | None, int]]] = {"buyer": [], "seller": []}
    for start, value in zip(starts, values):
        m = _IDEOGRAPHS_BEFORE_RE.search(norm, max(0, start - 8), start)
        word = m.group() if m else ""
        # Two vertical labels side by side glue their letters ("买售").
        if not word or (len(word) <= 2 and all(c in _BOX_LETTERS for c in word) and word not in _PARTY_PREFIXES):
            bare.append((value, start))
        elif word[-3:] in _PARTY_PREFIXES or word[-2:] in _PARTY_PREFIXES:
            named[_PARTY_PREFIXES.get(word[-3:]) or _PARTY_PREFIXES[word[-2:]]].append((value, start))
    if bare:
        return bare
    return [(named["buyer"] or [(None, -1)])[0], (named["seller"] or [(None, -1)])[0]]


# A party's 纳税人识别号 prints at most this many lines below its 名称 label
# (old layout: the next line; 数电: two lines down), and starts within this
# many columns left or right of it: further right is the 密码区 or the 备注.
_BOX_LINES = 4
_BOX_LEFT, _BOX_RIGHT = 6, 50


def _line_col(norm: str, offset: int) -> tuple[int, int]:
    line_start = norm.rfind("\n", 0, offset) + 1
    return norm.count("\n", 0, line_start), offset - line_start


def _box_of(norm: str, offset: int, boxes: dict[int, tuple[int, int]]) -> int | None:
    """The party (0 buyer, 1 seller) whose box holds the text at `offset`,
    or None; `boxes` maps a party to its 名称 label's line and column.
    Of the boxes above and left of the text, the nearest holds it: the
    lower of stacked boxes (old layout), the right one of boxes side by
    side (数电)."""
    line, col = _line_col(norm, offset)
    fits = [party for party, (box_line, box_col) in boxes.items()
            if box_line <= line <= box_line + _BOX_LINES and box_col - _BOX_LEFT <= col <= box_col + _BOX_RIGHT]
    return max(fits, key=lambda party: boxes[party]) if fits else None


def _tax_ids(norm: str, boxes: dict[int, tuple[int, int]]) -> list[str | None]:
    """The buyer's and seller's ids (fewer when the page prints fewer
    labels; more when it prints more, for `read_parties` to judge)."""
    labelled = _party_values(norm, L.TAX_ID_LABEL_RE, L.TAX_ID_VALUE_RE)
    if any(value for value, _ in labelled):
        if len(labelled) != 1 or len(boxes) < 2:
            # Values are paired with their label occurrence, so a buyer
            # without a tax id (个人) does not shift the seller's id to the
            # buyer. One label alone is the first box's, as one 名称 is,
            # unless two boxes are read (an OCR band parsed alone has one).
            return [value for value, _ in labelled]
        value, start = labelled[0]
        owner = _box_of(norm, start, boxes)
        return [value if owner == party else None for party in (0, 1)]
    # Labels unreadable or printed away from their values: the shape
    # decides where the id is, not the order alone: with an individual
    # (个人) buyer the first id on the page is the seller's.
    found = [(m.group(), m.start()) for m in L.USCC_RE.finditer(norm)]
    # Two different ids for two boxes: one each, the buyer's box first.
    pair = [found[0][0], found[1][0]] if len(found) == 2 and found[0][0] != found[1][0] else None
    if boxes:
        owned: list[set[str]] = [set(), set()]
        for value, start in found:
            owner = _box_of(norm, start, boxes)
            if owner is not None:
                owned[owner].add(value)
        if any(owned):
            # A box holding two different ids holds a stranger's too.
            tied = [next(iter(ids)) if len(ids) == 1 else None for ids in owned]
            # The pair completes the ties only where it says what every
            # read box holds: a box with no id in it (个人) is no id's.
            return pair if pair and all(tied[party] == pair[party] for party in boxes) else tied
    return pair or []


def read_parties(norm: str, f: dict[str, Any], problems: list[Problem]) -> None:
    """Offer into `f` the buyer's and seller's 名称 and 纳税人识别号 of the
    normalized page `norm`; a value is set only where the page ties it to
    its party (its box's label or position, or two ids for two boxes), and
    a third box label empties the seller's field with a problem in
    `problems`."""
    # Buyer comes first in every layout: left column (数电) or top block (old).
    name_slots = _party_values(norm, L.NAME_LABEL_RE, L.NAME_VALUE_RE)
    names = [_clean_name(v) if v else None for v, _ in name_slots]
    # The party boxes whose 名称 label is read: an id's place ties it to one.
    boxes = {party: _line_col(norm, start) for party, (_, start) in enumerate(name_slots)
             if start >= 0} if len(name_slots) <= 2 else {}
    ids = _tax_ids(norm, boxes)
    for role, i in (("buyer", 0), ("seller", 1)):
        if len(names) > i and names[i]:
            f[f"{role}_name"] = names[i]
        if len(ids) > i and ids[i]:
            f[f"{role}_tax_id"] = ids[i]
    # A face has two boxes. A third bare label (a 备注 line "纳税人识别号：…"
    # above the old layout's seller rows) leaves the seller's unknown: the
    # buyer's box comes first in every layout, which later one is the
    # seller's is not known.
    for name, values, code, zh in (("seller_name", names, "implausible-name", "名称"),
                                    ("seller_tax_id", ids, "implausible-tax-id", "纳税人识别号")):
        if len([v for v in values if v]) > 2 and f.pop(name, None) is not None:
            problems.append(Problem(
                code, "error", field=name,
                message=(f"the page prints {len(values)} {zh} labels for two party boxes "
                         f"({', '.join(repr(v) for v in values if v)}); {name} is left empty for 补录"),
                message_zh=f"页面有{len(values)}个{zh}标签，无法确定销售方的值，留待补录"))
