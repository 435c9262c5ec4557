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

# C0, DEL, C1; the bidi embeddings, overrides and isolates and the implicit
# marks; the Unicode line and paragraph separators. Every one of them is
# non-printable (str.isprintable), so a printable text, nearly every line,
# needs no search at all; the patterns are compiled (and cached by re) when
# a text first has some other: compiling the two Unicode classes cost every
# command more than the rest of printing (issue 17: start-up).
# And the lone surrogates U+DC80-U+DCFF: a file name's byte that is no
# UTF-8 (Linux names are bytes), which stdout's surrogateescape writes back
# raw: 0x9b is CSI on a terminal taking 8-bit controls, and any such byte
# makes the output no UTF-8. Shown as the byte, `\x9b`, as `ls -b` does.
_UNSAFE = "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\udc80-\udcff]"
_JSON_RAW = "[\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\udc80-\udcff]"
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(m: re.Match) -> str:
    ch = m.group(0)
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"   # the file name's own byte
    return _NAMED.get(ch) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def shown(text: object) -> str:
    """`text` (made a str) with every control character, bidi control and
    line separator replaced by a visible escape; the result holds no
    character a terminal acts on, and no line break."""
    text = text if isinstance(text, str) else str(text)
    return text if text.isprintable() else re.sub(_UNSAFE, _escape, text)


def echo(message: object = "", err: bool = False, nl: bool = True) -> None:
    """`click.echo` of `shown(message)`: one call prints at most one line."""
    click.echo(shown(message), err=err, nl=nl)


def json_text(dumped: str) -> str:
    """A `json.dumps(..., ensure_ascii=False)` result with DEL, C1 and bidi
    controls (which JSON leaves raw) written as `\\uXXXX`: the same JSON
    value, nothing a terminal acts on. (json.dumps escapes C0 itself.)"""
    return dumped if dumped.isprintable() else re.sub(_JSON_RAW, lambda m: f"\\u{ord(m.group(0)):04x}", dumped)
