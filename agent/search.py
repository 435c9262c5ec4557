"""What `search` asks the ledger: the text, its ranges and order, read from
what a person typed; and what it answers (SearchHit, SearchResult). The SQL
is in agent/ledger/search.py.

A range is `LOW..HIGH`, `..HIGH`, `LOW..` or one value (that value alone),
both ends included. A range that cannot be read is refused with
`BadSearch`, never ignored: a search that silently drops a filter shows
invoices the person asked not to see. Nor is it guessed at: `0...50` is
no range (the third dot would make `.50` of its high end), `.50` and `50.`
are no amounts (a dot belongs between digits), and a character that is
not ASCII is no digit or separator. Full-width forms an input method types
(`１００．．２００`, `２０２６－１１`) are the ASCII ones they stand for and read
as such; spaces around an end are ignored.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from agent.errors import AgentError
from agent.ledger.rows import yuan
from agent.textchars import without_search_ignored

SORTS = ("relevance", "date", "amount")
# Digits on both sides of a point: `.50` (the tail of a mistyped `0...50`)
# and `50.` are refused, not read as 0.50 and 50.
_MONEY = re.compile(r"[+-]?[0-9]+(?:\.[0-9]{1,2})?")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_MONTH = re.compile(r"[0-9]{4}-[0-9]{2}")
# The full-width forms (U+FF01..U+FF5E: ０-９, －, ．, ＋) and the ideographic
# space, as a Chinese input method types them, to the ASCII they stand for.
_FULL_WIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}
_MAX_CENTS = 2 ** 63 - 1
# Words one search may hold: each is one condition of the SQL, and SQLite
# refuses an expression deeper than 1,000 ("Expression tree is too large"),
# which the CLI could only report as the ledger failing. No one types more.
MAX_WORDS = 100


class BadSearch(AgentError):
    """A search that cannot be read (a range, a sort, no criterion at all):
    the message says what was typed and what is expected."""


@dataclass(frozen=True)
class SearchQuery:
    """One search: words that must all be found (in a name, line item, file
    name, e-mail subject or sender, or as the beginning of the invoice
    number, 发票代码 or a tax id), total in cents and invoice date ranges
    (None: open), states (empty: any), order, and at most `limit` results
    (None: all)."""

    text: str = ""
    amount: tuple[int | None, int | None] | None = None
    date: tuple[str | None, str | None] | None = None
    states: tuple[str, ...] = ()
    sort: str = "relevance"
    limit: int | None = 50

    @property
    def terms(self) -> list[str]:
        """The words of `text`, split on whitespace; each is matched as typed
        (quotes, `*`, `NEAR(`, `-`, `:` are plain characters), except for the
        invisible characters the index leaves out (textchars.SEARCH_IGNORED:
        a zero-width space, a BOM...), dropped here too: a word pasted with
        one finds the name, and a word of nothing else is no word."""
        return without_search_ignored(self.text).split()

    def checked(self) -> "SearchQuery":
        """This query, or BadSearch when it asks for nothing, holds more than
        MAX_WORDS words or sorts by an unknown key."""
        if self.sort not in SORTS:
            raise BadSearch(f"sort must be one of {', '.join(SORTS)}, not {self.sort!r}")
        if not self.terms and self.amount is None and self.date is None and not self.states:
            raise BadSearch("say what to search for: TEXT, or --amount, --date or --state")
        if len(self.terms) > MAX_WORDS:
            raise BadSearch(f"too many words: {len(self.terms):,} (at most {MAX_WORDS}); "
                            "every word must be found, so a few distinctive ones find the invoice")
        if self.limit is not None and self.limit < 0:
            raise BadSearch(f"--limit must be 0 (all) or more, not {self.limit}")
        return self


def _split(text: str, what: str, example: str) -> tuple[str, str]:
    # The two ends as typed (full-width forms folded, spaces around them
    # dropped), or BadSearch for anything that is not one `..` between
    # them: a run of three dots is refused, never split into `..` and a
    # leading or trailing point of one end.
    folded = text.translate(_FULL_WIDTH).strip()
    odd = next((ch for ch in folded if not ch.isascii()), None)
    if odd is not None:
        raise BadSearch(f"cannot read {what} range {text!r}: {odd!r} (U+{ord(odd):04X}) is no digit, sign or "
                        f"`..` (e.g. {example})")
    dots = re.findall(r"\.{2,}", folded)
    if any(len(run) > 2 for run in dots):
        raise BadSearch(f"cannot read {what} range {text!r}: its ends are split by two dots, not "
                        f"{max(len(run) for run in dots)} (e.g. {example})")
    if len(dots) > 1:
        raise BadSearch(f"cannot read {what} range {text!r}: one `..` at most (e.g. {example})")
    low, sep, high = folded.partition("..")
    if not sep:
        high = low
    low, high = low.strip(), high.strip()
    if not low and not high:
        raise BadSearch(f"cannot read {what} range {text!r}: give at least one end (e.g. {example})")
    return low, high


def parse_amount_range(text: str) -> tuple[int | None, int | None]:
    """`100..200`, `..200`, `100..`, `99.5` (yuan, at most 2 decimals, a
    sign allowed for 红字 totals) as inclusive (low, high) in cents; raises
    BadSearch for anything else, or a low end above the high one."""
    example = "100..200, ..200, 100.50.."
    low, high = _split(text, "amount", example)

    def cents(part: str) -> int | None:
        if not part:
            return None
        if not _MONEY.fullmatch(part):
            raise BadSearch(f"cannot read amount {part!r} in {text!r}: yuan with at most two decimals, "
                            f"a digit on each side of the point (0.50, not .50) (e.g. {example})")
        try:
            value = int(Decimal(part) * 100)
        except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
            raise BadSearch(f"cannot read amount {part!r} in {text!r}") from None
        if abs(value) > _MAX_CENTS:
            raise BadSearch(f"amount {part!r} in {text!r} is beyond any invoice")
        return value

    lo, hi = cents(low), cents(high)
    if lo is not None and hi is not None and lo > hi:
        raise BadSearch(f"amount range {text!r} is empty: its low end is above its high end")
    return lo, hi


def parse_date_range(text: str) -> tuple[str | None, str | None]:
    """`2026-11-01..2026-11-30`, `..2026-11-30`, `2026-11-01..`, one day
    `2026-11-05` or one month `2026-11` (each end may be a month: its first
    or last day) as inclusive ISO (low, high) invoice dates; raises
    BadSearch for a date that does not exist or cannot be read."""
    example = "2026-11-01..2026-11-30, 2026-11, ..2026-11-30"
    low, high = _split(text, "date", example)

    def day(part: str, last: bool) -> str | None:
        if not part:
            return None
        if _DAY.fullmatch(part):
            return _date(part, text).isoformat()
        if _MONTH.fullmatch(part):
            first = _date(part + "-01", text, typed=part)
            if not last:
                return first.isoformat()
            # The month's own length: no step into the next month, which
            # for December 9999 is beyond what a date can hold.
            return first.replace(day=calendar.monthrange(first.year, first.month)[1]).isoformat()
        raise BadSearch(f"cannot read date {part!r} in {text!r}: YYYY-MM-DD or YYYY-MM (e.g. {example})")

    lo, hi = day(low, last=False), day(high, last=True)
    if lo is not None and hi is not None and lo > hi:
        raise BadSearch(f"date range {text!r} is empty: its first day is after its last")
    return lo, hi


def parse_day(text: str) -> dt.date:
    """One day as `--date` reads a day: YYYY-MM-DD (full-width digits and
    spaces around it as `_split` takes them), for every command that takes
    a day (`list --since`, `reconcile --since`). Raises BadSearch for
    anything else: an empty text, a month, a range, a week (2026-W49), a
    compact form (20261205), a date that does not exist."""
    example = "2026-11-05"
    folded = text.translate(_FULL_WIDTH).strip()
    if not _DAY.fullmatch(folded):
        raise BadSearch(f"cannot read day {text!r}: YYYY-MM-DD (e.g. {example})")
    return _date(folded, text)


def _date(part: str, text: str, *, typed: str | None = None) -> dt.date:
    # `part` is YYYY-MM-DD by its pattern; only the calendar can refuse it.
    try:
        return dt.date.fromisoformat(part)
    except ValueError:
        raise BadSearch(f"cannot read date {typed or part!r} in {text!r}: no such date") from None


# What the ledger answers (agent/ledger/search.py): here, not beside its SQL,
# because every command imports the ledger and only `search` makes hits.
@dataclass(frozen=True)
class SearchHit:
    """One document found: what a person needs to tell it from the others."""

    id: int
    state: str
    invoice_number: str | None
    invoice_date: str | None
    seller: str | None
    buyer: str | None
    total_cents: int | None
    original_name: str | None
    received_at: str
    score: float

    @property
    def total(self) -> str | None:
        """The total as yuan text ("113.00"), or None."""
        return yuan(self.total_cents)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for `--json` and `--csv`."""
        return {"id": self.id, "state": self.state, "invoice_number": self.invoice_number,
                "invoice_date": self.invoice_date, "seller": self.seller, "buyer": self.buyer,
                "total": self.total, "original_name": self.original_name, "received_at": self.received_at}


@dataclass(frozen=True)
class SearchResult:
    """The hits in the order asked for, whether more matched than the limit,
    and whether they are in that order: False when relevance was asked but
    cannot be ranked (only words under 3 characters, which the trigram
    index cannot score, or a word in more than BROAD documents): then they
    are newest first."""

    hits: list[SearchHit]
    more: bool
    ranked: bool = True
