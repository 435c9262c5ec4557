"""Text from outside (file names, remote messages, invoice fields) made safe
to print on an operator's terminal.

A file may be called `ESC ]0;title BEL` or carry a newline and a forged
table row; a server may answer with ANSI escapes; a right-to-left override
reorders what follows it. Every human-facing line of the CLI goes through
`echo`, which shows such characters escaped (`\\x1b`, `\\n`, `\\u202e`), so
one row is one line and the terminal only ever prints. JSON output stays
exact: `json_text` only spells the characters JSON may carry raw (DEL, C1,
bidi controls) as `\\uXXXX`, which decodes to the same string.
"""

from __future__ import annotations

import re

import click

from agent import textchars

# What is escaped is agent/textchars.py's UNSAFE: controls, bidi controls,
# line separators, format characters (a zero-width space inside an invoice
# number prints as nothing) and lone surrogates (a file name's byte that is
# no UTF-8, which stdout's surrogateescape would write back raw: 0x9b is CSI
# on a terminal taking 8-bit controls; shown as the byte, `\x9b`, as
# `ls -b` does). Every one is non-printable (str.isprintable), so a
# printable text, nearly every line, needs no search at all (issue 17:
# start-up). JSON escapes C0 itself; the rest it would leave raw.
_JSON_RAW = f"[\x7f-\x9f{textchars.BIDI_AND_SEPARATORS}{textchars.FORMAT}{textchars.SURROGATES}]"


def shown(text: object) -> str:
    """`text` (made a str) with every control character, bidi control, line
    separator, invisible format character and lone surrogate replaced by a
    visible escape (agent/textchars.py); the result holds no character a
    terminal acts on, none that shows as nothing, and no line break."""
    return textchars.shown(text if isinstance(text, str) else str(text))


def echo(message: object = "", err: bool = False, nl: bool = True) -> None:
    """`click.echo` of `shown(message)`: one call prints at most one line."""
    click.echo(shown(message), err=err, nl=nl)


def json_text(dumped: str) -> str:
    """A `json.dumps(..., ensure_ascii=False)` result with DEL, C1, bidi
    controls, line separators, format characters and lone surrogates (which
    JSON leaves raw) written as `\\uXXXX`: the same JSON value, nothing a
    terminal acts on or shows as nothing. (json.dumps escapes C0 itself.)"""
    return dumped if dumped.isprintable() else re.sub(_JSON_RAW, lambda m: textchars.json_escaped(m.group(0)), dumped)
