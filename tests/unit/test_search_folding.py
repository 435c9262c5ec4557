"""`search` folds case the same way whichever path a word takes: the trigram
index (3 characters or more) folds every cased letter, so the LIKE used
for shorter words and for a word in thousands of documents (the walk past
BROAD) must fold accented and full-width letters too, not ASCII alone.
Otherwise the same search found an invoice or not by its --limit."""

from __future__ import annotations

import json

import pytest

import agent.ledger.search as search_sql
from agent.ledger import Ledger
from agent.search import SearchQuery

T0 = "2026-12-01T00:00:00.000000Z"
SELLERS = ["Société ÀÉÎ Ltd", "ＡＢＣ贸易有限公司", "Straße Ωmega GmbH", "plain abc", "ΟΔΟΣ Trading", "ſtar Co"]


@pytest.fixture
def ledger(tmp_path):
    with Ledger(tmp_path / "l.sqlite3") as led:
        for i, seller in enumerate(SELLERS):
            doc_id, _ = led.add_document(sha256=f"{i:064x}", size=1, media_type="xml", source_kind="ingest",
                                         source="/in", original_name=f"{i}.xml", original_path=f"/in/{i}.xml",
                                         now=T0, actor="t")
            led.conn.execute("UPDATE documents SET fields = ? WHERE id = ?",
                             (json.dumps({"seller_name": seller, "buyer_name": "买方"}), doc_id))
        yield led


def found(ledger: Ledger, text: str) -> list[str]:
    hits = ledger.search(SearchQuery(text=text, limit=50)).hits
    return sorted(SELLERS[h.id - 1] for h in hits)


@pytest.mark.parametrize("broad", [5000, 1], ids=["index", "walk"])
@pytest.mark.parametrize("text, sellers", [
    ("àéî", ["Société ÀÉÎ Ltd"]), ("ÀÉÎ", ["Société ÀÉÎ Ltd"]),
    ("éà", []), ("ÉÀ", []), ("ÀÉ", ["Société ÀÉÎ Ltd"]), ("àé", ["Société ÀÉÎ Ltd"]),   # short: LIKE
    ("ａｂｃ", ["ＡＢＣ贸易有限公司"]), ("ａｂ", ["ＡＢＣ贸易有限公司"]),                   # full-width
    ("ωmega", ["Straße Ωmega GmbH"]), ("ΩM", ["Straße Ωmega GmbH"]),
    ("ABC", ["plain abc"]), ("有限", ["ＡＢＣ贸易有限公司"]),
    ("οδοσ", ["ΟΔΟΣ Trading"]), ("οδος", ["ΟΔΟΣ Trading"]), ("δοσ", ["ΟΔΟΣ Trading"]),   # final sigma
    ("ſtar", ["ſtar Co"]), ("ſt", ["Straße Ωmega GmbH", "ſtar Co"]),                          # long s
])
def test_cased_letters_fold_alike_on_every_path(ledger, monkeypatch, broad, text, sellers):
    monkeypatch.setattr(search_sql, "BROAD", broad)
    assert found(ledger, text) == sellers
