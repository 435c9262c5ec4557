"""Progress bars for the long commands (`ingest`, `backup restore`, `backup
verify`, `backup drill`, `reconcile`), and `wanted`, which also decides the
progress lines of `audit ledger` and `report`: on a terminal only.

A bar is for a person watching. When stderr is not a terminal (a pipe, a
file, cron, systemd) click would still print the bar's label once, a stray
line in a log; and with `--json` the output is for a program. In both
cases nothing is drawn at all.
"""

from __future__ import annotations

import sys

import click


def wanted(*, as_json: bool = False, quiet: bool = False) -> bool:
    """True when a bar may be drawn: stderr is a terminal, and the command
    prints neither JSON nor only failures (`--quiet`)."""
    try:
        tty = sys.stderr.isatty()
    except (AttributeError, ValueError):   # replaced or closed stderr
        tty = False
    return tty and not as_json and not quiet


class Progress:
    """A click progress bar on stderr, created once the total is known, or
    nothing at all when `wanted` says no. `update(done, total)` takes the
    count done so far (the callbacks of agent/backup pass that);
    `advance(n)` adds to it."""

    def __init__(self, label: str, *, length: int | None = None, as_json: bool = False, quiet: bool = False):
        self.label, self.bar, self.done = label, None, 0
        self.shown = wanted(as_json=as_json, quiet=quiet)
        self.length = length

    def update(self, done: int, total: int) -> None:
        """Show `done` of `total`."""
        if not self.shown or not total:
            return
        if self.bar is None:
            self.bar = click.progressbar(length=total, label=self.label, file=sys.stderr, show_pos=True)
            self.bar.__enter__()
        self.bar.update(done - self.done)
        self.done = done

    def advance(self, n: int = 1) -> None:
        """One more (or `n` more) of the `length` given at creation done."""
        self.update(self.done + n, self.length or 0)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)
