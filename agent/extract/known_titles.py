"""The titles invoices print, and a garbled OCR reading of one mapped back
to its title only when no other title is nearly as close.

A title is printed large, often in red or brown under the red 监制 seal,
so OCR reads it with a character or two wrong ("北京请出租汽车专用交票").
The list is what the print can say: the regional VAT titles (region + type
name, as `image.title_from_qr` derives them), the 数电 and national ones,
and the paper taxi invoices of the cities that name themselves in their
title. A reading is mapped only when it is within a quarter of the title's
length of one title and at least two edits further from every other: a
reading between two titles, or of a title not on the list, stays empty.
"""

from __future__ import annotations

import functools
import re

from agent.extract.labels import CITY_REGIONS, REGIONS
from agent.model import KIND_NAMES

# Region + type name (old-style VAT invoices: 北京增值税电子普通发票).
_REGIONAL_TYPES = tuple(KIND_NAMES[k] for k in ("01", "04", "10", "11", "14", "20")) + (
    "电子普通发票",  # 深圳电子普通发票, the blockchain e-invoice
)
_NATIONAL = tuple(KIND_NAMES[k] for k in ("03", "15", "31", "32", "51", "61"))
# Paper taxi invoices printed by a city's 出租汽车 authority, titled with the
# city and 市 (北京市出租汽车专用发票). Both names seen in use are listed, so a
# reading of one is never pulled onto the other.
_TAXI_TYPES = ("出租汽车专用发票", "出租汽车统一发票", "出租汽车发票")
_CITIES = ("北京", "天津", "上海", "重庆", *CITY_REGIONS.values())
_MAX_SHARE = 4  # at most len(title) // 4 edits
_MARGIN = 2
_NOISE_RE = re.compile(r"[\s:：.,，、·_\-|]")


@functools.lru_cache(maxsize=1)
def known_titles() -> tuple[tuple[str, str | None], ...]:
    """Every (title, region) on the list; region None for national titles."""
    out: list[tuple[str, str | None]] = [(t, None) for t in _NATIONAL]
    for region in (*REGIONS.values(), *CITY_REGIONS.values()):
        out += [(region + t, region) for t in _REGIONAL_TYPES]
    for city in _CITIES:
        out += [(f"{city}市{t}", city) for t in _TAXI_TYPES]
    return tuple(out)


def title_characters() -> frozenset[str]:
    """The characters titles are made of, regions left out: a line with
    several of them near the top of a page is where the title is."""
    regions = set("".join((*REGIONS.values(), *CITY_REGIONS.values())))
    return frozenset(c for title, _ in known_titles() for c in title if c not in regions)


def region_of_code(code: str | None) -> str | None:
    """The region a 发票代码 names (12 digits: digits 2-5; 10: digits 1-4),
    or None when there is no code or its region is unknown."""
    if not code or not code.isdigit():
        return None
    digits = code[1:5] if len(code) == 12 else code[:4] if len(code) == 10 else ""
    return CITY_REGIONS.get(digits) or REGIONS.get(digits[:2])


def match_title(reading: str, region: str | None = None) -> tuple[str | None, str]:
    """(title, why): the known title `reading` is a garbled copy of, or
    None and why not. A title is returned only when it is within len // 4
    edits of the reading and every other candidate is at least two edits
    further (or the reading is the title itself). With `region` (from the 代码), titles of other regions stop
    competing only where the print does not say which region it is: one
    of them closer to the reading than that region's best still refuses."""
    text = _NOISE_RE.sub("", reading).replace("(", "（").replace(")", "）")
    if len(text) < 4:
        return None, f"{reading!r} is too short to be a title"
    scored = sorted((_distance(text, title), title, r) for title, r in known_titles())
    ours = [s for s in scored if region is None or s[2] is None or s[2] == region]
    (best, title, _), runner_up = ours[0], ours[1][0] if len(ours) > 1 else 99
    if best > len(title) // _MAX_SHARE:
        return None, f"{reading!r} is no known title (nearest {title}, {best} edits)"
    if best and runner_up - best < _MARGIN:  # a reading of the title itself needs no margin
        return None, f"{reading!r} is as close to another title as to {title}"
    if scored[0][0] < best:
        return None, f"{reading!r} reads as {scored[0][1]}, which is not of the 代码's region {region}"
    return title, f"{reading!r} read as {title} ({best} edits)"


def _distance(a: str, b: str) -> int:
    """Levenshtein distance (insert, delete, substitute: one each)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]
