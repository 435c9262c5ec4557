"""`fapiao-agent refused`: the files and attachments intake did not take,
each with its reason (status counts them; this says which and why)."""

from __future__ import annotations

import click

from service.context import LIMIT, echo_json, load, open_ledger
from service.display import Column, local_time, table
from service.textsafe import echo

REFUSED_TABLE = (Column("id", "id", ">"), Column("at", "when (local)"), Column("source", "from", max_width=40),
                 Column("reason", "reason", max_width=80), Column("name", "file"))


@click.command("refused", epilog="""\b
Examples:
  fapiao-agent refused                      the newest 50
  fapiao-agent refused --limit 0 --json | jq -r .reason | cut -d: -f1 | sort | uniq -c
\b
A refused file is left where it was (or its bytes kept in the vault, named
by sha256, when they were read): fix or replace it and it is taken again
when it changes.""")
@click.option("--limit", type=LIMIT, default=50, show_default=True,
              help="At most this many, newest first (0: all). When more exist, a last line on stderr says how many.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per line: id, at (UTC), source, name, reason, sha256.")
@click.pass_context
def command(ctx: click.Context, limit: int, as_json: bool) -> None:
    """List files and e-mail attachments that were not taken in, newest first,
    each with why: empty, no invoice format, a special file, a symlink or hard
    link, over the size limit, a path too long ... (`status` counts them)."""
    cfg = load(ctx)
    with open_ledger(cfg) as ledger:
        rows = ledger.refusals(limit=limit or -1)
        total = ledger.refusal_summary()["count"]
    if as_json:
        for row in rows:
            echo_json(row)
    elif rows:
        for line in table(({**r, "at": local_time(r["at"])} for r in rows), REFUSED_TABLE):
            echo(line)
    else:
        echo("nothing was refused", err=True)
    if total > len(rows):
        echo(f"{len(rows):,} of {total:,} shown; --limit 0 for all", err=True)
