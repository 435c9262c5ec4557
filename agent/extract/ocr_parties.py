"""The parties' names and tax ids OCR read, judged by the engine's boxes:
whose box a tax id lies in, and whether a name was read with doubt.

OCR's layout text (`ocr_layout.layout_text`) keeps rows, not columns: the
boxes of a row are joined left to right, so a row's first box is at column
0 wherever it is printed. On the 数电 face the buyer's and the seller's
boxes stand side by side, and when OCR misses one party's 纳税人识别号 line
(a stamp, a fold, a blur over it), the other's is alone on its row: the
text cannot tell whose it is, and the parser (`text_parties`) gave the
buyer's id to the seller. The page's pixels can: a party's id is printed
under its own 名称, in its own half. Ids are placed (or moved) by that,
and one whose box is another party's with an id of its own is dropped.
A name, which no check character guards, is dropped when the recogniser
was unsure of one of its characters (`unsure_names`).
Pure: the engine's boxes in, the fields out.
"""

from __future__ import annotations

import re
from typing import Any

from agent.extract.ocr_layout import TextBox
from agent.extract.text import normalize_text

_ROLES = ("buyer", "seller")
# A party box's 名称 label at the start of an OCR line, perhaps glued to a
# letter of the box's vertical label (购买方信息 / 销售方信息); never 项目名称.
_USCC_LOOKALIKES = str.maketrans({"O": "0", "I": "1", "S": "5", "Z": "2"})
_NAME_LABEL_RE = re.compile(r"^[购买销售方信息]{0,2}名称[ ]*:")


def place_tax_ids(boxes: list[TextBox], fields: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """`fields` (a whole page's parse) with each party's tax id in the box
    it is printed in, when the page prints the two parties' 名称 side by
    side on one row; and notes (field -> why) for an id left empty because
    its box holds another. Unchanged otherwise (stacked boxes: the text's
    rows tell them apart). The guarantee: an id is never kept under the
    party whose half of the page does not print it."""
    names = sorted((b for b in boxes if _NAME_LABEL_RE.match(normalize_text(b.text).strip())),
                   key=lambda b: b.left)
    if len(names) != 2 or abs(names[0].middle - names[1].middle) > max(names[0].height, names[1].height):
        return fields, {}
    buyer, seller = names
    ids = {role: fields.get(f"{role}_tax_id") for role in _ROLES}
    owners: dict[str, list[str]] = {role: [] for role in _ROLES}
    for value in {v for v in ids.values() if v}:
        printed = [b for b in boxes if value in "".join(normalize_text(b.text).split())]
        if not printed:
            return fields, {}  # not found as read: the text's word stands
        # Left of the seller's 名称 by more than a character: the buyer's half.
        sides = {"seller" if b.left >= seller.left - seller.height else "buyer" for b in printed}
        if len(sides) != 1:
            return fields, {}
        owners[sides.pop()].append(value)
    placed = dict(fields)
    notes: dict[str, str] = {}
    for role in _ROLES:
        name = f"{role}_tax_id"
        placed.pop(name, None)
        if len(owners[role]) == 1:
            placed[name] = owners[role][0]
        elif owners[role]:
            notes[name] = f"OCR read {len(owners[role])} different tax ids in the {role}'s box"
        elif ids[role]:
            notes[name] = f"the id {ids[role]} OCR read for the {role} is printed in the other party's box"
    return placed, notes


# A name has no check character: a misread one (深训市骏台 for 深圳市骏合)
# passes every rule. The recogniser's own confidence in a character is the
# one warning there is. Measured on degraded scans: misread characters at
# 0.19-0.69, true ones in a clean or 150 dpi scan 0.73 and up; below this
# the name is left empty (a true name lost is 补录, a wrong one unseen).
NAME_CHAR_MIN_SCORE = 0.6
# A bracket's score is the recogniser's doubt between （ and (, which it
# cannot tell apart (ocr_layout measures the width from the ink); a 1-bit
# scan of a true name scored its ( at 0.58.
_WIDTH_ONLY = frozenset("（）()")


def unsure_names(boxes: list[TextBox], fields: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """`fields` without a party's name that OCR read with a character it
    was unsure of (confidence under NAME_CHAR_MIN_SCORE in the line that
    prints it), and notes (field -> why) for each one left out. A name
    found in no scored line is kept: only the engine's doubt drops one."""
    kept = dict(fields)
    notes: dict[str, str] = {}
    for role in _ROLES:
        name = f"{role}_name"
        value = fields.get(name)
        if not isinstance(value, str) or not value:
            continue
        for box in boxes:
            text = normalize_text(box.text)
            at = text.find(value)
            if at < 0 or len(text) != len(box.text) or len(box.scores) != len(text):
                continue
            weak = [(c, s) for c, s in zip(value, box.scores[at:at + len(value)]) if s < NAME_CHAR_MIN_SCORE and c not in _WIDTH_ONLY]
            if weak:
                kept.pop(name, None)
                shown = ", ".join(f"{c} ({s:.2f})" for c, s in weak)
                notes[name] = f"OCR read {name} as {value} but was unsure of {shown}"
            break
    return kept, notes


def repair_tax_id(tax_id: str) -> str:
    """Letters a 统一社会信用代码 never holds (I O S V Z) read for the digits
    they resemble; the check digit then decides whether the id is kept."""
    if len(tax_id) == 19 and tax_id.count("VV") == 1:  # W split in two
        tax_id = tax_id.replace("VV", "W")
    return tax_id.translate(_USCC_LOOKALIKES) if len(tax_id) == 18 else tax_id
