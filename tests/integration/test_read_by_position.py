"""Fields issue 13 saw left empty because the page's text did not say where
they were: an amount printed without a ¥ glyph (or with a ¥ drawn as strokes,
which extracts as nothing), and a buyer's name or tax id with the 密码区
ciphertext printed right after it, no gap between. Both are read by position:
the amount from the 合计 / (小写) row, the name and tax id from the buyer box,
whose row ends where the 密码区 rows' ciphertext begins."""

from __future__ import annotations

import datetime as dt

import pytest

from agent.extract import extract_bytes
from tests.corpus.layouts_extra import make_extra_corpus

TODAY = dt.date(2026, 11, 29)
SEED = 20261203


@pytest.mark.parametrize(("style", "fields"), [
    ("no-yen", ("amount", "tax", "total")),
    ("cipher-glued", ("buyer_name", "buyer_tax_id", "seller_name", "seller_tax_id")),
])
def test_fields_are_read_right_by_position(style, fields):
    misses = []
    for i, g in enumerate(make_extra_corpus(SEED, 6, TODAY, styles=(style,))):
        [invoice] = extract_bytes(g.data, ocr=False)
        got = invoice.to_dict()
        misses += [f"file {i} {name}: read {got.get(name)!r}, printed {g.truth[name]!r}"
                   for name in fields if g.truth.get(name) is not None and got.get(name) != g.truth[name]]
    assert not misses, "\n".join(misses)
