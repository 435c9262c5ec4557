"""`fapiao-agent search` (issue 17, 提供多种查询方式) on a real ledger:
documents judged by the real pipeline, arrivals by scanner and e-mail,
amend/reject/requeue through the real commands, the search run as the real
CLI (a subprocess where exit status and bytes matter, click's runner in
this process elsewhere, to keep the file fast)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from agent.ledger import Ledger
from agent.ledger.schema import MIGRATIONS
from agent.model import LineItem, State
from agent.pipeline import invoice_columns
from tests.support.http_destination import http_destination  # noqa: F401
from tests.support.judged import BAD_SELLER, BUYER, SELLER, Site, invoice, number

REPO = Path(__file__).resolve().parents[2]
BEFORE_SEARCH = next((i for i, m in enumerate(MIGRATIONS) if "CREATE TABLE search_text" in m), len(MIGRATIONS))
NOW = "2026-11-20T08:00:00.000000Z"


@pytest.fixture
def site(tmp_path, http_destination):  # noqa: F811
    s = Site(tmp_path, [{"name": "erp", "url": http_destination.url, "timeout_s": 5}])
    yield s
    s.close()


def _docs(site: Site) -> dict[str, int]:
    """A: 科技 with line items, by scanner; B: 餐饮 at 250.00; C: by e-mail;
    D: a captured file nobody read (no fields: only its name is known)."""
    today = dt.date.today()
    a = invoice(today)
    a.items += [LineItem(name="办公用品"), LineItem(name="A4打印纸")]
    ids = {"A": site.add(a, "nov-scan")}
    ids["B"] = site.add(invoice(today, number=number("22"), seller_name="广州测试餐饮有限公司",
                                amount=Decimal("221.24"), tax=Decimal("28.76"), total=Decimal("250.00"),
                                total_in_words=None), "dinner")
    stored = site.vault.put_bytes(b"%PDF-1.4\n% mail attachment\n" + b"1" * 500 + b"\n%%EOF\n")
    c, _ = site.ledger.add_document(
        sha256=stored.sha256, size=stored.size, media_type="pdf", source_kind="email", source="/mail",
        original_name="附件1.pdf", original_path=None, now=NOW, actor="test",
        details={"subject": "十一月报销 差旅", "from": "张三 <zhang@example.cn>", "message_id": "<m1@x>"})
    read = invoice(today, number=number("33"), seller_name="深圳某某物流有限公司", amount=Decimal("80.00"),
                   tax=Decimal("8.00"), total=Decimal("88.00"), total_in_words=None)
    site.ledger.transition(c, State.EXTRACTED, now=NOW, actor="test", expect=State.CAPTURED,
                           **invoice_columns(read))
    ids["C"] = c
    junk = site.vault.put_bytes(b"minutes of the meeting, not an invoice" * 10)
    ids["D"], _ = site.ledger.add_document(sha256=junk.sha256, size=junk.size, media_type="txt",
                                           source_kind="scanner", source="/in", original_name="会议纪要.txt",
                                           original_path="/in/会议纪要.txt", now=NOW, actor="test")
    return ids


def _run(site: Site, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "service", "--config", str(site.config_path), "search", *args],
                          capture_output=True, timeout=60, cwd=REPO)


def _found(site: Site, *args: str) -> list[int]:
    """Ids `search ARGS --json` prints, in order (click's runner, this process)."""
    r = site.cli("search", *args, "--json")
    assert r.exit_code == 0, r.output
    return [json.loads(line)["id"] for line in r.stdout.splitlines()]


def test_every_field_is_searchable_and_every_match_is_listed(site):
    ids = _docs(site)
    a, b, c, d = ids["A"], ids["B"], ids["C"], ids["D"]
    # A real process: exit 0, one JSON object per line with what a person needs.
    r = _run(site, "公司", "--json")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.decode().splitlines()]
    assert sorted(row["id"] for row in rows) == sorted([a, b, c])       # 2 characters: all three, nothing else
    by_id = {row["id"]: row for row in rows}
    assert by_id[b] | {"received_at": None} == {
        "id": b, "state": site.state(b), "invoice_number": number("22"), "invoice_date": invoice(
            dt.date.today()).get("date").isoformat(), "seller": "广州测试餐饮有限公司", "buyer": "上海某某有限公司",
        "total": "250.00", "original_name": "dinner.pdf", "received_at": None}
    assert sorted(_found(site, "有限公司")) == sorted([a, b, c])          # 4 characters: the trigram index
    assert _found(site, "科技有限") == [a]                                # inside 北京某某科技有限公司
    assert _found(site, "办公用品") == [a]                                # a line item
    assert _found(site, "打印纸") == [a]
    assert _found(site, "nov-scan") == [a]                               # a file name
    assert _found(site, "会议纪要") == [d]                                # an unread file, by its name
    assert _found(site, "差旅") == [c]                                    # an e-mail subject
    assert _found(site, "zhang@example") == [c]                          # its sender
    assert _found(site, "张三") == [c]
    assert _found(site, number("22")[:19]) == [b]                         # a number by its beginning
    assert _found(site, number("22")[-6:]) == []                          # ... not by its end
    assert sorted(_found(site, BUYER[:8].lower())) == sorted([a, b, c])   # a tax id, any case
    assert sorted(_found(site, SELLER[:10])) == sorted([a, b, c])
    assert _found(site, "科技 办公") == [a]                               # every word must be found
    assert _found(site, "科技 餐饮") == []
    assert _found(site, "广州 250") == []                                 # 250 is no prefix of anything of B's
    assert _found(site, "公司", "--state", "extracted") == [c]
    assert _found(site, "公司", "--sort", "amount") == [b, a, c]          # largest first, unknown last


HOSTILE_QUERIES = ('"', "*", "NEAR(", "-", ":", "a", "^", "NEAR(a b)", '" OR "', "a*", "x:y", "(", ")", "AND",
                   "OR NOT", "%", "_", "\\", "''", "--", "q\"u", "*o:t-e(", "NEAR%_")


def test_fts_syntax_in_a_query_neither_errors_nor_injects(site):
    _docs(site)
    name = 'q"u*o:t-e(NEAR%_\\.pdf'
    hostile = site.vault.put_bytes(b"%PDF-1.4\n% hostile name\n" + b"2" * 500)
    doc, _ = site.ledger.add_document(sha256=hostile.sha256, size=hostile.size, media_type="pdf",
                                      source_kind="scanner", source="/in", original_name=name,
                                      original_path=None, now=NOW, actor="test")
    everything = {r[0] for r in site.ledger.conn.execute("SELECT id FROM documents")}
    for query in HOSTILE_QUERIES:
        r = site.cli("search", "--json", "--", query)
        assert r.exit_code == 0, (query, r.output)
        got = {json.loads(line)["id"] for line in r.stdout.splitlines()}
        # Exactly the documents holding every word as typed (case folded): never an error, never all of them.
        expected = set()
        for i in everything:
            d = site.ledger.get(i)
            text = " ".join(str(v) for v in (d.original_name, d.fields and d.fields.get("seller_name"),
                                              d.fields and d.fields.get("buyer_name"))).lower()
            items = " ".join(it["name"] for it in (d.fields or {}).get("items", [])).lower()
            items += " " + " ".join(f"{(s.details or {}).get('subject')} {(s.details or {}).get('from')}"
                                    for s in site.ledger.sources(i)).lower()
            if all(w.lower() in text + " " + items or (d.invoice_number or "").startswith(w) for w in query.split()):
                expected.add(i)
        assert got == expected, query
        assert (doc in got) == all(w.lower() in name.lower() for w in query.split()), query
    assert site.cli("search", "\u3000").exit_code == 2       # only blanks: nothing asked
    one = _run(site, "--json", "--", "-")                     # a real process, one character
    assert one.returncode == 0 and {json.loads(x)["id"] for x in one.stdout.decode().splitlines()} >= {doc}


def test_ranges_filter_and_an_unreadable_range_is_refused(site):
    ids = _docs(site)
    a, b = ids["A"], ids["B"]
    assert _found(site, "公司", "--amount", "100..200") == [a]
    assert sorted(_found(site, "公司", "--amount", "..113")) == sorted([a, ids["C"]])
    assert _found(site, "公司", "--amount", "113.01..") == [b]
    assert _found(site, "公司", "--amount", "250") == [b]
    assert sorted(_found(site, "--amount", "100..")) == sorted([a, b])    # no text: ranges alone
    day = invoice(dt.date.today()).get("date")
    assert sorted(_found(site, "公司", "--date", f"{day}..{day}")) == sorted([a, b, ids["C"]])
    assert _found(site, "公司", "--date", f"..{day - dt.timedelta(days=1)}") == []
    assert sorted(_found(site, "--date", f"{day:%Y-%m}", "--amount", "200..300")) == [b]
    for option, bad, says in (("--amount", "abc", "cannot read amount 'abc'"),
                              ("--amount", "200..100", "is empty"),
                              ("--amount", "1.234", "at most two decimals"),
                              ("--amount", "..", "give at least one end"),
                              ("--amount", "1..2..3", "one `..` at most"),
                              ("--amount", "0...50", "two dots, not 3"),       # was read as 0 to 0.50
                              ("--amount", "...5", "two dots, not 3"),         # was read as up to 0.50
                              ("--amount", ".50", "not .50"),
                              ("--date", "2026-11-01...2026-11-30", "two dots, not 3"),
                              ("--date", "2026-02-30", "no such date"),
                              ("--date", "2026-11-05..2026-11-01", "is empty"),
                              ("--date", "yesterday", "YYYY-MM-DD or YYYY-MM")):
        r = site.cli("search", "公司", option, bad)
        assert r.exit_code == 2, (option, bad, r.output)
        assert says in r.output and bad in r.output, r.output
    assert _found(site, "公司", "--amount", "１００．．２００") == [a]          # full-width, as an input method types it
    real = _run(site, "公司", "--amount", "100-200")                   # a real process: exit 2, one reason
    assert real.returncode == 2 and b"cannot read amount '100-200'" in real.stderr, real.stderr


def test_csv_has_a_bom_and_no_cell_runs_as_a_formula(site):
    _docs(site)
    evil = site.vault.put_bytes(b"%PDF-1.4\n% formula\n" + b"3" * 500)
    site.ledger.add_document(sha256=evil.sha256, size=evil.size, media_type="pdf", source_kind="scanner",
                             source="/in", original_name="=HYPERLINK(x)公司.pdf", original_path=None, now=NOW,
                             actor="test")
    r = _run(site, "公司", "--csv")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(r.stdout.decode("utf-8-sig"))))
    assert len(rows) == 4 and {"seller", "buyer", "total", "state", "invoice_number"} <= set(rows[0])
    assert "'=HYPERLINK(x)公司.pdf" in [row["original_name"] for row in rows]
    assert "北京某某科技有限公司" in [row["seller"] for row in rows]


def test_the_index_follows_amend_reject_requeue_and_duplicates(site):
    ids = _docs(site)
    a, b = ids["A"], ids["B"]
    # A document whose seller nobody read: an amend that fills it is searchable at once.
    blank = site.add(invoice(dt.date.today(), number=number("44"), seller_name=None, seller_tax_id=BAD_SELLER),
                     "blank")
    assert site.state(blank) == "quarantined"
    assert _found(site, "杭州新名") == []
    r = site.amend_approved(str(blank), "--set", "seller_name=杭州新名科技有限公司")
    assert r.exit_code in (0, 1), r.output          # 1: still quarantined for its tax id
    assert _found(site, "杭州新名") == [blank]
    # An amend that changes a name: the old one no longer finds it.
    r = site.amend_approved(str(a), "--set", "seller_name=成都改名贸易有限公司", "--reason", "wrong seller")
    assert r.exit_code == 0, r.output
    assert _found(site, "成都改名") == [a]
    assert a not in _found(site, "科技有限")
    # Reject: still found, in its new state.
    r = site.cli("reject", str(b), "--reason", "作废发票", "--yes")
    assert r.exit_code == 0, r.output
    assert _found(site, "餐饮", "--state", "rejected") == [b]
    # Delivered, then requeued: found in whatever state it is now.
    site.deliver()
    assert site.state(a) == "delivered"
    assert _found(site, "成都改名", "--state", "delivered") == [a]
    r = site.cli("requeue", str(a))
    assert r.exit_code == 0, r.output
    assert _found(site, "成都改名", "--state", site.state(a)) == [a]
    # The same invoice again as another file: a duplicate, found by its own name and with the original.
    copy = site.add(invoice(dt.date.today(), number=number("44"), seller_name="杭州新名科技有限公司",
                            seller_tax_id=BAD_SELLER), "copy-of-blank")
    assert site.state(copy) == "duplicate"
    assert _found(site, "copy-of-bl") == [copy]
    assert sorted(_found(site, "杭州新名")) == sorted([blank, copy])
    # The same bytes arriving again under another name: that name finds it too.
    again = site.ledger.get(a)
    site.ledger.add_document(sha256=again.sha256, size=again.size, media_type="pdf", source_kind="scanner",
                             source="/in2", original_name="再次扫描.pdf", original_path=None, now=NOW, actor="test")
    assert _found(site, "再次扫描") == [a]
    assert _found(site, "nov-scan") == [a]
    # The FTS index agrees with its content table, and the ledger's own audit passes.
    site.ledger.conn.execute("INSERT INTO search_text_fts (search_text_fts, rank) VALUES ('integrity-check', 1)")
    n_docs, n_text = site.ledger.conn.execute(
        "SELECT (SELECT count(*) FROM documents), (SELECT count(*) FROM search_text)").fetchone()
    assert n_docs == n_text
    # sqlite-utils sees the index as one of its own (its rebuild-fts repairs it).
    import sqlite_utils

    assert sqlite_utils.Database(site.ledger.conn)["search_text"].detect_fts() == "search_text_fts"
    audit = site.cli("audit", "ledger")
    assert audit.exit_code == 0, audit.output


def test_an_upgraded_ledger_is_searchable_at_once(tmp_path):
    config = tmp_path / "agent.toml"
    config.write_text('[agent]\nstate_dir = "state"\n', encoding="utf-8")
    path = tmp_path / "state" / "ledger.sqlite3"

    class Older(Ledger):
        def migrate(self, target: int = BEFORE_SEARCH) -> int:
            return super().migrate(target)

    with Older(path) as old:
        doc, _ = old.add_document(sha256="ab" * 32, size=10, media_type="pdf", source_kind="email", source="/m",
                                  original_name="旧发票.pdf", original_path=None, now=NOW, actor="test",
                                  details={"subject": "上个月的发票", "from": "李四 <li@example.cn>"})
        old.transition(doc, State.EXTRACTED, now=NOW, actor="test", fields={
            "seller_name": "南京老店餐饮有限公司", "buyer_name": "买方", "items": [{"name": "晚餐"}, "not an item"]})
        assert old.schema_version == BEFORE_SEARCH

    def search(*args):
        return subprocess.run([sys.executable, "-m", "service", "--config", str(config), "search", *args, "--json"],
                              capture_output=True, text=True, timeout=60, cwd=REPO)

    # A reader cannot upgrade: it says why, and nothing was written.
    r = search("老店")
    assert r.returncode == 2 and "no search index yet" in r.stderr, r.stderr
    with Ledger(path) as upgraded:   # what the daemon does on start
        assert upgraded.search_ready()
    from click.testing import CliRunner

    from service.cli import main

    for word in ("老店餐饮", "晚餐", "旧发票", "上个月", "li@example"):
        r = CliRunner().invoke(main, ["--config", str(config), "search", word, "--json"], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        assert [json.loads(line)["id"] for line in r.stdout.splitlines()] == [doc], word


def test_a_word_in_very_many_documents_is_walked_in_order_with_the_same_results(site, monkeypatch):
    import agent.ledger.search as search_sql
    from agent.search import SearchQuery

    ids = _docs(site)
    for sort in ("relevance", "date", "amount"):
        for text in ("有限公司", "公司", "26110", "有限公司 科技"):
            whole = site.ledger.search(SearchQuery(text=text, sort=sort, limit=None))
            monkeypatch.setattr(search_sql, "BROAD", 2)
            walked = site.ledger.search(SearchQuery(text=text, sort=sort, limit=2))
            monkeypatch.setattr(search_sql, "BROAD", 5000)
            assert {h.id for h in walked.hits} <= {h.id for h in whole.hits}, text
            assert walked.more == (len(whole.hits) > 2), text
            if sort != "relevance":
                assert [h.id for h in walked.hits] == [h.id for h in whole.hits][:2], (text, sort)
            if sort != "relevance":
                assert walked.ranked, text
            elif " " not in text:   # one word in 3 documents: over BROAD (2), or too short to score
                assert not walked.ranked, text
    assert ids


def test_a_walk_in_one_or_several_states_gives_the_head_of_the_whole_list(site, monkeypatch):
    # A state filter on a walked search runs down the (state, date|total)
    # index, one state at a time, the heads merged: the same first hits, in
    # the same order, as the whole list filtered by state.
    import agent.ledger.search as search_sql
    from agent.search import SearchQuery

    ids = _docs(site)
    by_state: dict[str, list[int]] = {}
    for doc in ids.values():
        by_state.setdefault(site.ledger.get(doc).state, []).append(doc)
    assert len(by_state) >= 3, by_state
    names = sorted(by_state)
    monkeypatch.setattr(search_sql, "BROAD", 1)
    for states in [(names[0],), (names[0], names[1]), tuple(names)]:
        for sort in ("date", "amount"):
            for text in ("", "公司", "有限公司"):
                whole = site.ledger.search(SearchQuery(text=text, sort=sort, states=states, limit=None))
                for limit in (1, 2):
                    walked = site.ledger.search(SearchQuery(text=text, sort=sort, states=states, limit=limit))
                    assert [h.id for h in walked.hits] == [h.id for h in whole.hits][:limit], (states, sort, text)
                    assert walked.more == (len(whole.hits) > limit), (states, sort, text)
                    assert {h.state for h in walked.hits} <= set(states)
