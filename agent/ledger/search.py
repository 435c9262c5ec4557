"""`search`: documents found by text, number or tax-id prefix, amount and
date ranges and state, over the index of migration 25 (search_text and its
trigram FTS5 table search_text_fts, kept in step by triggers).

How a word is matched:
- every word must be found; a word is found in a document when it is a
  substring of a buyer or seller name, a line item, a file name, an e-mail
  subject or sender (case folded for every cased letter: Latin, accented,
  full-width, Greek; the index and the LIKE alike), or, for a word of
  letters and digits only, when the invoice number, 发票代码 or a tax id
  begins with it;
- a word of 3 characters or more is looked up in the trigram index; a
  shorter one (公司, 油) cannot be (a trigram needs 3) and is matched with
  LIKE on search_text. SQLite 3.40's trigram LIKE returns no rows for such
  patterns, so the LIKE runs on the plain table, never on the FTS table;
- the invisible characters of textchars.SEARCH_IGNORED (a zero-width
  space, a BOM, a bidi mark) are in neither search_text (migration 35's
  triggers leave them out) nor a word (agent/search.py drops them), so a
  name stored with one is found by the word around it;
- user text never reaches FTS5 as syntax: each word is one quoted string
  with its `"` doubled, so `"`, `*`, `NEAR(`, `-`, `:` and `^` are plain
  characters; LIKE's `%`, `_` and `\\` are escaped the same way.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:   # every command opens a Ledger; only `search` builds a query and its hits
    from agent.search import SearchQuery, SearchResult

# Indexed expressions of migration 25: the very text, or the index is not used.
_JSON = "CASE WHEN json_valid(fields) THEN json_extract(fields, '$.{}') END"
_PREFIX_COLUMNS = ("invoice_number", _JSON.format("code"), _JSON.format("buyer_tax_id"),
                   _JSON.format("seller_tax_id"))
_TEXT_COLUMNS = ("parties", "items", "files", "mail")
# bm25 weights per FTS column: a name says more than a subject line.
_WEIGHTS = "4.0, 2.0, 1.0, 1.0"
# Score of a number/tax-id prefix hit: ahead of any bm25 score (negative, small).
_PREFIX_SCORE = -1.0e9
_ID_LIKE = re.compile(r"[0-9A-Za-z]+")
_ORDER = {
    "relevance": "score, d.invoice_date DESC, d.id DESC",
    # DESC puts NULL (unknown) last by itself, and keeps the (x, id) index usable for the walk.
    "date": "d.invoice_date DESC, d.id DESC",
    "amount": "d.total_cents DESC, d.id DESC",
}
SEARCH_TABLES = ("search_text", "search_text_fts")
# Candidates beyond which a limited search walks the documents in order
# instead of sorting every candidate (see `search`).
BROAD = 5000


def fts_phrase(word: str) -> str:
    """`word` as one FTS5 string: quoted, its `"` doubled. Nothing inside
    a quoted string is FTS5 syntax."""
    return '"' + word.replace('"', '""') + '"'


def fold_case(text):
    """`text` case-folded as the trigram index folds it (accented,
    full-width and Greek letters too, final sigma as sigma, long s as s);
    anything else as it is. SQL: fold_case()."""
    return text.lower().translate(_simple_folds()) if isinstance(text, str) else text


@functools.cache
def _simple_folds() -> dict[int, str]:
    # Letters whose one-letter case fold is not their lower case (ς→σ,
    # ſ→s, µ→μ): the index folds them so, lower() does not. Cherokee is
    # left be, as the index leaves it (casefold() would make it upper case).
    folds = {}
    for cp in range(0x10000):
        if 0x13A0 <= cp <= 0x13FF or 0xAB70 <= cp <= 0xABBF:
            continue
        fold = chr(cp).casefold()
        if len(fold) == 1 and fold != chr(cp).lower():
            folds[cp] = fold
    return folds


def _cased_beyond_ascii(word: str) -> bool:
    # SQLite's LIKE folds ASCII letters only: a word with other cased
    # letters (é, Ａ, Ω) is compared folded on both sides. An ASCII word
    # keeps the plain LIKE (the common search stays fast); so "star" finds
    # a text's "ſtar" (long s) through the index only, a price paid for
    # letters no invoice prints.
    return any(ord(c) > 127 and c.lower() != c.upper() for c in word)


def _like(column: str, key: str, word: str, params: dict[str, Any]) -> str:
    """`column` LIKE %word% (ESCAPE '\\'), folding case as the index does; binds :key."""
    if _cased_beyond_ascii(word):
        params[key] = like_pattern(fold_case(word))
        return f"fold_case({column}) LIKE :{key} ESCAPE '\\'"
    params[key] = like_pattern(word)
    return f"{column} LIKE :{key} ESCAPE '\\'"


def like_pattern(word: str) -> str:
    """`%word%` for LIKE ... ESCAPE '\\', with `\\`, `%` and `_` taken literally."""
    return "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _prefix_bounds(word: str) -> tuple[str, str]:
    # [word, word with its last character bumped): the keys beginning with word.
    word = word.upper()
    return word, word[:-1] + chr(ord(word[-1]) + 1)


class SearchMixin:
    """Part of `Ledger`: expects `self.conn`."""

    def search_ready(self) -> bool:
        """True when this ledger has the search index (migration 25 applied).
        A read-only reader of a ledger no writer has upgraded yet gets False."""
        names = {r[0] for r in self.conn.execute(
            "SELECT name FROM sqlite_master WHERE name IN (?, ?)", SEARCH_TABLES)}
        return names == set(SEARCH_TABLES)

    def search(self, query: SearchQuery) -> SearchResult:
        """Documents matching every word of `query` and all its filters,
        sorted by relevance (bm25; prefix hits on a number or tax id first),
        invoice date or total (newest/largest first, unknown last), at most
        `query.limit` of them; complete: nothing that matches is left out
        except beyond the limit, which `more` reports. Read-only."""
        from agent.search import SearchHit, SearchResult

        query = query.checked()
        params: dict[str, Any] = {}
        where: list[str] = []
        words = query.terms
        fts_words = [w for w in words if len(w) >= 3 and not _ID_LIKE.fullmatch(w)]
        candidates = counted = None
        if fts_words:
            # The index finds the documents holding every long word; the
            # other words are checked on those rows.
            params["match"] = " ".join(fts_phrase(w) for w in fts_words)
            candidates = counted = (f"SELECT rowid AS id, bm25(search_text_fts, {_WEIGHTS}) AS score "
                                    "FROM search_text_fts WHERE search_text_fts MATCH :match")
            rest = [w for w in words if w not in fts_words]
        elif any(_ID_LIKE.fullmatch(w) for w in words):
            # A word that may be a number: its prefix hits and its text hits.
            at = max((i for i, w in enumerate(words) if _ID_LIKE.fullmatch(w)), key=lambda i: len(words[i]))
            candidates, counted = self._either(words[at], params)
            rest = words[:at] + words[at + 1:]
        else:
            rest = words
        if candidates is not None and query.limit and self._at_least(counted, params, BROAD):
            # A word in thousands of documents (有限公司): walk the documents
            # in the order asked for and check every word on each, stopping
            # at the limit, instead of sorting all of them. bm25 among so
            # many says little; such a list is newest first, and says so.
            candidates, rest = None, words
        if candidates is not None:
            source, score = f"({candidates}) hits JOIN documents d ON d.id = hits.id", "hits.score"
        else:
            source, score = "documents d", "0.0"
        for i, word in enumerate(rest):
            where.append(self._word_condition(word, f"w{i}", params))
        self._filters(query, where, params)
        order = _ORDER[query.sort] if candidates is not None or query.sort != "relevance" else _ORDER["date"]
        select = (f"SELECT d.id, d.state, d.invoice_number, d.invoice_date, d.total_cents, d.original_name, "
                  f"d.received_at, {_JSON.format('seller_name').replace('fields', 'd.fields')} AS seller, "
                  f"{_JSON.format('buyer_name').replace('fields', 'd.fields')} AS buyer, {score} AS score "
                  f"FROM {source}")
        limit = f" LIMIT {int(query.limit) + 1}" if query.limit else ""
        states = self._states(query.states, params)
        if states and candidates is None and query.limit:
            # A walk in one state runs down the (state, date|total, id)
            # index of migration 26 in the order asked for, and stops at the
            # limit: it reads rows of that state only, rare or common. With
            # several states the index cannot give one order, so each state
            # is walked on its own and the heads are merged.
            parts = [f"SELECT * FROM ({select} WHERE " + " AND ".join([f"d.state = {mark}", *where])
                     + f" ORDER BY {order}{limit})" for mark in states]
            sql = " UNION ALL ".join(parts) + f" ORDER BY {order.replace('d.', '')}{limit}"
        else:
            if states:
                where.append(f"d.state IN ({', '.join(states)})")
            sql = select + (" WHERE " + " AND ".join(where) if where else "") + f" ORDER BY {order}{limit}"
        rows = self.conn.execute(sql, params).fetchall()
        more = bool(query.limit) and len(rows) > query.limit
        hits = [SearchHit(id=r["id"], state=r["state"], invoice_number=r["invoice_number"],
                          invoice_date=r["invoice_date"], seller=_text(r["seller"]), buyer=_text(r["buyer"]),
                          total_cents=r["total_cents"], original_name=r["original_name"],
                          received_at=r["received_at"], score=r["score"])
                for r in rows[:query.limit or None]]
        return SearchResult(hits, more, candidates is not None or query.sort != "relevance")

    def _at_least(self, candidates: str, params: dict[str, Any], n: int) -> bool:
        # Whether `candidates` yields n rows or more; stops counting at n.
        sql = f"SELECT count(*) FROM (SELECT 1 FROM ({candidates}) LIMIT {int(n)})"
        return self.conn.execute(sql, params).fetchone()[0] >= n

    @staticmethod
    def _either(word: str, params: dict[str, Any]) -> tuple[str, str]:
        # Ids (with their best score) of documents whose number, code or a
        # tax id begins with `word`, or whose text holds it; and the same
        # ungrouped (a document may come twice), cheap to count.
        params["lo"], params["hi"] = _prefix_bounds(word)
        parts = [f"SELECT id, {_PREFIX_SCORE} AS score FROM documents WHERE {c} >= :lo AND {c} < :hi"
                 for c in _PREFIX_COLUMNS]
        if len(word) >= 3:
            params["either"] = fts_phrase(word)
            parts.append(f"SELECT rowid, bm25(search_text_fts, {_WEIGHTS}) FROM search_text_fts "
                         "WHERE search_text_fts MATCH :either")
        else:
            parts.append("SELECT id, 0.0 FROM search_text WHERE "
                         + " OR ".join(_like(c, "either_like", word, params) for c in _TEXT_COLUMNS))
        union = " UNION ALL ".join(parts)
        return f"SELECT id, min(score) AS score FROM ({union}) GROUP BY id", union

    @staticmethod
    def _word_condition(word: str, key: str, params: dict[str, Any]) -> str:
        # One word checked on one candidate row: in its text, or (a word of
        # letters and digits) at the start of its number, code or a tax id.
        found = [_like(f"st.{c}", key, word, params) for c in _TEXT_COLUMNS]
        text = f"EXISTS (SELECT 1 FROM search_text st WHERE st.id = d.id AND ({' OR '.join(found)}))"
        if not _ID_LIKE.fullmatch(word):
            return text
        params[key + "lo"], params[key + "hi"] = _prefix_bounds(word)
        prefix = [f"(d.{c} >= :{key}lo AND d.{c} < :{key}hi)" if c == "invoice_number"
                  else f"({c.replace('fields', 'd.fields')} >= :{key}lo AND {c.replace('fields', 'd.fields')} "
                       f"< :{key}hi)" for c in _PREFIX_COLUMNS]
        return f"({text} OR {' OR '.join(prefix)})"

    @staticmethod
    def _filters(query: SearchQuery, where: list[str], params: dict[str, Any]) -> None:
        # Ranges: either end may be open (None); both ends are inclusive.
        for column, name, bounds in (("d.total_cents", "amount", query.amount),
                                     ("d.invoice_date", "date", query.date)):
            low, high = bounds if bounds is not None else (None, None)
            if low is not None:
                where.append(f"{column} >= :{name}_lo")
                params[f"{name}_lo"] = low
            if high is not None:
                where.append(f"{column} <= :{name}_hi")
                params[f"{name}_hi"] = high

    @staticmethod
    def _states(states: tuple[str, ...], params: dict[str, Any]) -> list[str]:
        # One named parameter per state asked for, each once: a state named
        # twice was walked twice in the UNION ALL, every hit listed twice.
        states = tuple(dict.fromkeys(states))
        params.update({f"state{i}": s for i, s in enumerate(states)})
        return [f":state{i}" for i in range(len(states))]


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
