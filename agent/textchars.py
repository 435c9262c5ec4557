"""The characters no text from outside may carry unseen: one definition for
every place that refuses them (an operator's typed value, agent/amend.py),
escapes them (the CLI's terminal and JSON output, service/textsafe.py; a
notification, agent/notify/base.py; the weekly report) or finds them in a
field read from an invoice (agent/model.py).

Each of them either acts on what shows the text (a control character moves
the cursor or sets a title; a bidi control reorders what follows it, so
`q-<RLO>gnp.xml` reads `q-lmx.png`; a line separator starts a forged row),
or shows as nothing at all: a zero-width space inside an invoice number
prints exactly as the number without it, yet is a different key. Every one
is non-printable to `str.isprintable`, so a printable text (nearly every
text) needs no search: callers keep that fast path.

Variation selectors (U+FE00-U+FE0F) and the combining grapheme joiner are
left out: they are combining marks (printable) that only alter the glyph
before them (an emoji's colour form, a CJK variant), never hide a character
or reorder text.
"""

from __future__ import annotations

import re

# C0, DEL and C1 control characters.
CONTROLS = "\x00-\x1f\x7f-\x9f"
# The bidi embeddings, overrides and isolates, the implicit marks (LRM, RLM,
# ALM) and the Unicode line and paragraph separators.
BIDI_AND_SEPARATORS = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029"
# Every other format character (Unicode category Cf) of Unicode 15: the
# soft hyphen, zero-width space, joiners, word joiner and invisible
# operators, the byte-order mark, the Mongolian vowel separator,
# interlinear annotation marks, Arabic and Syriac number signs, the
# deprecated format controls and the tag characters. Written out rather
# than computed: walking every code point's category at import would cost
# each command's start-up (issue 17).
FORMAT = ("\u00ad\u0600-\u0605\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200d\u2060-\u2064"
          "\u206a-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f"
          "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f")
# Lone surrogates: a file name's non-UTF-8 byte decoded with surrogateescape
# (U+DC80-U+DCFF), or any other a JSON text may carry; no encoder writes them.
SURROGATES = "\ud800-\udfff"

# The characters `search` looks through: a name stored with one inside
# (北京某某\u200b科技有限公司, as pasted from a web page) is found by the words
# around it. Those of INVISIBLE a pasted name may carry: the soft hyphen, the
# bidi marks, embeddings, overrides and isolates, the zero-width space and
# joiners, the word joiner and invisible operators, the deprecated format
# controls, the BOM, the Mongolian vowel separator, the interlinear
# annotation marks. Left out: the Arabic and Syriac number signs and the
# other script format characters (each shows, or shapes its script), and
# the 97 tag characters (only inside emoji flags; each is one more nested
# replace() on every write). Controls, line separators and whitespace are
# no part of it: they separate words, as the query's split does. One
# character each, written out: the search index's triggers (migration 35,
# agent/ledger/schema.py) are generated from this string, so a change here
# needs a new migration that recreates them, or the index and the query
# (agent/search.py) strip different characters.
SEARCH_IGNORED = ("\u00ad\u061c\u180e\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                  "\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069\u206a\u206b\u206c\u206d"
                  "\u206e\u206f\ufeff\ufff9\ufffa\ufffb")

# Everything above: what no outside text may show raw and no operator may type.
# Pattern texts, not compiled patterns: `re` compiles one (and caches it)
# the first time a text is not printable, so a command that prints only
# printable text never pays for it (issue 17: start-up).
UNSAFE = f"[{CONTROLS}{BIDI_AND_SEPARATORS}{FORMAT}{SURROGATES}]"
# The characters that show as nothing: the format characters and the bidi
# controls. A digit field holding one is not the number it prints as.
INVISIBLE = f"[{FORMAT}\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"


def has_unsafe(text: str) -> bool:
    """True when `text` holds a control, bidi, line-separator, format or lone
    surrogate character (one of UNSAFE); a printable text is answered
    without a search."""
    return not text.isprintable() and re.search(UNSAFE, text) is not None


def has_invisible(text: str) -> bool:
    """True when `text` holds a character that shows as nothing (a
    zero-width space or joiner, a word joiner, a soft hyphen, a BOM, a bidi
    mark or control); a printable text is answered without a search."""
    return not text.isprintable() and re.search(INVISIBLE, text) is not None


def without_search_ignored(text: str) -> str:
    """`text` without any character of SEARCH_IGNORED, as the search index
    stores it; a printable text is returned as it is, without a search."""
    return text if text.isprintable() else text.translate(_SEARCH_IGNORED_TABLE)


_SEARCH_IGNORED_TABLE = dict.fromkeys(map(ord, SEARCH_IGNORED))


def escaped(ch: str) -> str:
    """The visible spelling of one UNSAFE character: `\\n`, `\\r`, `\\t`,
    `\\xNN` below U+0100 and for a surrogate-escaped byte (U+DC80-U+DCFF,
    shown as the byte, as `ls -b` does), `\\uXXXX`, or `\\UXXXXXXXX`
    beyond the BMP."""
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    if ch in _NAMED:
        return _NAMED[ch]
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def shown(text: str) -> str:
    """`text` with every UNSAFE character replaced by its `escaped` spelling:
    nothing in the result acts on a terminal or hides, and no line breaks."""
    return text if text.isprintable() else re.sub(UNSAFE, lambda m: escaped(m.group(0)), text)


def json_escaped(ch: str) -> str:
    """One character as a JSON `\\uXXXX` escape (a surrogate pair beyond the
    BMP): decodes to the very character."""
    code = ord(ch)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
