"""`search` looks through the invisible characters of a name (a zero-width
space, a BOM, a bidi mark: textchars.SEARCH_IGNORED): a name kept as read,
北京某某<U+200B>科技有限公司, is found by 某某科技 and by the word pasted with
the character, in a new ledger and in one upgraded with such rows already
in it; the index stays whole and `audit ledger` passes."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3

import pytest

from agent.config import load_config
from agent.ledger import Ledger
from agent.ledger.schema import MIGRATIONS
from agent.model import State
from agent.search import BadSearch, SearchQuery
from agent.textchars import SEARCH_IGNORED
from agent.vault import Vault
from tests.support.http_destination import http_destination  # noqa: F401
from tests.support.judged import Site, invoice, number

BEFORE_IGNORED = next((i for i, m in enumerate(MIGRATIONS) if "DROP TRIGGER documents_search_insert" in m),
                      len(MIGRATIONS))
NOW = "2026-11-20T08:00:00.000000Z"
SELLER = "北京某某\u200b科技有限公司"
# Each word (3 characters or more: the trigram index; 2: LIKE), typed
# without the invisible character and pasted with it.
WORDS = ("某某科技", "某某\u200b科技", "某科", "某\u200b科")


def _found(cli, *args: str) -> list[int]:
    r = cli("search", *args, "--json")
    assert r.exit_code == 0, r.output
    return [json.loads(line)["id"] for line in r.stdout.splitlines()]


def _index_is_whole(ledger: Ledger) -> None:
    """search_text holds no ignored character, and FTS agrees with it."""
    ledger.conn.execute("INSERT INTO search_text_fts (search_text_fts, rank) VALUES ('integrity-check', 1)")
    for row in ledger.conn.execute("SELECT parties, items, files, mail FROM search_text"):
        assert not any(ch in (text or "") for text in row for ch in SEARCH_IGNORED), row


@pytest.fixture
def site(tmp_path, http_destination):  # noqa: F811
    s = Site(tmp_path, [{"name": "erp", "url": http_destination.url, "timeout_s": 5}])
    yield s
    s.close()


def test_a_name_with_an_invisible_character_is_found_with_and_without_it(site):
    doc = site.add(invoice(dt.date.today(), seller_name=SELLER), "scan\ufeff-0042")
    other = site.add(invoice(dt.date.today(), number=number("22"), seller_name="上海另一家科技有限公司"), "other")
    assert site.ledger.get(doc).fields["seller_name"] == SELLER          # kept as read
    for word in WORDS:
        assert _found(site.cli, word) == [doc], word
    assert _found(site.cli, "scan-0042") == [doc]
    # Arrivals after: an e-mail's subject and a file name, each with one inside.
    again = site.ledger.get(other)
    site.ledger.add_document(sha256=again.sha256, size=again.size, media_type="pdf", source_kind="email",
                             source="/mail", original_name="十一\u2060月.pdf", original_path=None, now=NOW,
                             actor="test", details={"subject": "差旅\u200d报销 单据", "from": "王五 <w@example.cn>"})
    for word in ("差旅报销", "十一月", "十一\u2060月"):
        assert _found(site.cli, word) == [other], word
    # A fields change (an amend, a re-read) rewrites the text through the update trigger.
    site.ledger.conn.execute("UPDATE documents SET fields = json_set(fields, '$.buyer_name', ?) WHERE id = ?",
                             ("广州\u00ad新买方有限公司", other))
    assert _found(site.cli, "广州新买方") == [other]
    _index_is_whole(site.ledger)
    audit = site.cli("audit", "ledger")
    assert audit.exit_code == 0, audit.output


def test_a_ledger_upgraded_with_such_names_in_it_finds_them(tmp_path):
    config = tmp_path / "agent.toml"
    config.write_text('[agent]\nstate_dir = "state"\n', encoding="utf-8")
    cfg = load_config(config)

    class Older(Ledger):
        def migrate(self, target: int = BEFORE_IGNORED) -> int:
            return super().migrate(target)

    stored = Vault(cfg.vault_dir).put_bytes(b"%PDF-1.4\n% an e-mailed invoice\n" + b"1" * 500 + b"\n%%EOF\n")
    with Older(cfg.ledger_path) as old:
        doc, _ = old.add_document(sha256=stored.sha256, size=stored.size, media_type="pdf", source_kind="email",
                                  source="/m", original_name="旧\u200e发票.pdf", original_path=None, now=NOW,
                                  actor="test", details={"subject": "上个\ufeff月的发票", "from": "李四 <li@example.cn>"})
        old.transition(doc, State.EXTRACTED, now=NOW, actor="test", expect=State.CAPTURED, fields={
            "seller_name": SELLER, "buyer_name": "买方", "items": [{"name": "晚\u200c餐服务"}]})
        old.transition(doc, State.QUARANTINED, now=NOW, actor="test", reason="quarantined: test",
                       problems=[{"code": "tax-id-invalid", "severity": "error", "message": "bad"}])
        assert old.schema_version == BEFORE_IGNORED
        assert old.conn.execute("SELECT count(*) FROM search_text WHERE parties LIKE '%某某科技%'").fetchone()[0] == 0

    with Ledger(cfg.ledger_path) as upgraded:      # what the daemon does on start
        assert upgraded.schema_version == len(MIGRATIONS)
        _index_is_whole(upgraded)
    # Another tool writing to the ledger (no function of ours registered): the triggers run.
    plain = sqlite3.connect(cfg.ledger_path)
    plain.execute("INSERT INTO sources (document_id, at, source_kind, source, original_name, details) "
                  "VALUES (?, ?, 'email', '/m2', ?, ?)",
                  (doc, NOW, "再\u200b寄.pdf", json.dumps({"subject": "补\ufeff发票据", "from": "x@example.cn"})))
    plain.commit()
    plain.close()
    with Ledger(cfg.ledger_path) as upgraded:
        _index_is_whole(upgraded)
    from click.testing import CliRunner

    from service.cli import main

    def cli(*args):
        return CliRunner().invoke(main, ["--config", str(config), *args], catch_exceptions=False)

    for word in (*WORDS, "晚餐服务", "旧发票", "上个月", "li@example", "再寄", "补发票据"):
        assert _found(cli, word) == [doc], word
    audit = cli("audit", "ledger")
    assert audit.exit_code == 0, audit.output


def test_a_query_of_invisible_characters_only_asks_for_nothing():
    with pytest.raises(BadSearch, match="say what to search for"):
        SearchQuery(text="\u200b \ufeff").checked()
    assert SearchQuery(text="某某\u200b科技 \u2066发票\u2069").terms == ["某某科技", "发票"]
