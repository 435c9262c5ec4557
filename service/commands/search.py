"""`fapiao-agent search`: find invoices by name, line item, file name,
e-mail subject or sender, number or tax-id prefix, amount, date and state."""

from __future__ import annotations

import sqlite3

import click

from agent.ledger.search import BROAD
from agent.model import State
from agent.search import SORTS, BadSearch, SearchQuery, parse_amount_range, parse_date_range
from service.csv_safe import echo_csv
from service.context import LIMIT, echo_json, fail, load, open_ledger
from service.display import Column, table
from service.textsafe import echo

SEARCH_COLUMNS = ("id", "state", "invoice_number", "invoice_date", "seller", "buyer", "total", "original_name",
                  "received_at")


class _Range(click.ParamType):
    # A range that cannot be read is a usage error (exit 2) naming what was
    # typed, never a filter quietly left out.
    def __init__(self, name: str, parse):
        self.name = name
        self._parse = parse

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            return self._parse(value)
        except BadSearch as e:
            self.fail(str(e), param, ctx)


@click.command("search", epilog="""\b
Examples:
  fapiao-agent search 科技有限公司                 a name, line item, file or e-mail subject holding it
  fapiao-agent search 2611000 --state delivered   numbers, 发票代码 and tax ids beginning with it
  fapiao-agent search 办公用品 --date 2026-11 --amount 100..200 --sort amount
  fapiao-agent search 张三 --amount ..500 --csv > found.csv
Ranges include both ends: --amount 100..200, ..200, 100..; --date 2026-11-01..2026-11-30, 2026-11, ..2026-11-30.
A negative bound needs `=`: --amount=-100..0 (红字 invoices).""")
@click.argument("text", required=False, default="")
@click.option("--amount", type=_Range("amount", parse_amount_range), metavar="LOW..HIGH",
              help="Total in yuan, both ends included; either end may be left out.")
@click.option("--date", "date_range", type=_Range("date", parse_date_range), metavar="FROM..TO",
              help="Invoice date (YYYY-MM-DD or YYYY-MM), both ends included; either end may be left out.")
@click.option("--state", "states", multiple=True, type=click.Choice([s.value for s in State]),
              help="Only documents in this state (repeat for several).")
@click.option("--sort", type=click.Choice(SORTS), default=None,
              help="relevance (the default with TEXT), date (the default without) or amount; newest or "
                   "largest first.")
@click.option("--limit", type=LIMIT, default=50, show_default=True, help="At most this many (0: all).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV (UTF-8 with a BOM, for Excel) with a header row.")
@click.pass_context
def command(ctx, text, amount, date_range, states, sort, limit, as_json, as_csv) -> None:
    """Find documents: every word of TEXT must be in a buyer or seller name,
    a line item, a file name, an e-mail subject or sender, or begin the
    invoice number, 发票代码 or a tax id. Words of any length, Chinese
    included; quotes and other symbols are matched as typed. Read-only."""
    if as_json and as_csv:
        fail("choose one of --json and --csv", code=2)
    query = SearchQuery(text=text, amount=amount, date=date_range, states=tuple(states),
                        sort=sort or ("relevance" if text.split() else "date"), limit=limit or None)
    try:
        query.checked()
    except BadSearch as e:
        fail(str(e), code=2)
    cfg = load(ctx)
    with open_ledger(cfg) as ledger:
        if not ledger.search_ready():
            fail(f"the ledger at {cfg.ledger_path} has no search index yet: it is built when the daemon "
                 "(or any write command) next opens it", code=2)
        try:
            result = ledger.search(query)
        except sqlite3.Error as e:
            fail(f"cannot search ledger {cfg.ledger_path}: {e}", code=2)
    rows = [h.to_dict() for h in result.hits]
    if as_json:
        for r in rows:
            echo_json(r)
    elif as_csv:
        echo_csv(rows, SEARCH_COLUMNS)   # UTF-8 with a BOM whatever the locale: Excel shows the Chinese
    else:
        _print_table(rows)
    if not result.ranked and query.sort == "relevance":
        echo(f"shown newest first, not by relevance: words under 3 characters are not scored, and a word "
             f"in more than {BROAD:,} documents is not ranked (more words, --date, --amount or --state "
             "narrow it)", err=True)
    if result.more:
        echo(f"{len(rows)} shown, more match; --limit 0 for all", err=True)
    elif not rows and not as_json and not as_csv:
        echo("no documents match", err=True)


SEARCH_TABLE = (Column("id", "id", ">"), Column("state", "state"), Column("invoice_number", "number"),
                Column("invoice_date", "date"), Column("seller", "seller", max_width=24),
                Column("buyer", "buyer", max_width=24), Column("total", "total", ">"),
                Column("original_name", "file"))


def _print_table(rows: list[dict]) -> None:
    # Padded and cut by display width: a Chinese character takes two columns.
    if rows:
        for line in table(rows, SEARCH_TABLE):
            echo(line)
