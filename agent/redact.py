"""Configured secrets kept out of everything a remote system says back.

A finance system or an S3 store may repeat what it was sent: a 401 body
that quotes the `Authorization` header, a signature error that lists the
access key. Whatever it says becomes an `AdapterError`, and from there a log
line, a ledger row (and so its WAL and every snapshot of it) and CLI output.
So every adapter that holds a secret `remember`s it when it is built, and
`AdapterError` runs its message through `redact` when it is made: the one
place a remote's words become our error, so no path can forget it. The log
formatters redact once more, for tracebacks of vendor exceptions.

A secret is recognised in the forms a server may echo it in: as it is,
percent-encoded, JSON-escaped, HTML-escaped or as numeric character
references (`&#83;`, `&#x53;`), in hex, reversed, base64 (alone, or inside a
longer base64 string such as the Basic header's `user:password`), with
whitespace inside it (a folded or wrapped header), in any letter case (a
server that lower-cases what it quotes), by a long enough leading part (a
server that prints the first N characters), and cut short at the end of a
message. Characters a reader does not see are skipped while matching: NUL
and other control characters (UTF-16 or UTF-32 read as UTF-8 puts NULs
between the letters), zero-width and other format characters, and the
escapes of a NUL (backslash-x00, backslash-u0000, `%00`, `&#0;`); fullwidth letters
(`ｔｏｋ`) match their ASCII ones. The text itself keeps them: only a matched
span is replaced.
Credentials written into any URL (`https://user:pw@host`) are masked too;
`has_credentials` and `shown_url` let the config refuse such URLs without
printing them.

The registry is per process. A secret is forgotten when the adapter that
remembered it is garbage collected, so short-lived adapters (a CLI command,
a test) leave nothing behind.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import weakref
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"
_MIN_B64_CORE = 8      # a shorter run of base64 letters would match ordinary words
_MIN_CUT_TAIL = 6      # a message ending in 6+ leading characters of a secret was cut inside it
_MIN_PREFIX = 8        # a leading part this long (and at least half the secret) is the secret

_lock = threading.Lock()
_held: dict[int, frozenset[str]] = {}
_handles = itertools.count(1)
_version = 0                       # bumped on every change of _held


class _Matcher:
    """What `redact` needs, built once per change of the remembered secrets."""

    def __init__(self, version: int, forms: frozenset[str]):
        self.version = version
        ordered = sorted(forms, key=lambda f: (-len(f), f))
        # Any letter case: a server may lower- or upper-case what it quotes
        # (over-matching a base64 form in another case costs nothing). One
        # trie-shaped pattern, so each position of a message tries only the
        # forms that start with its character, not every form in turn.
        trie = _trie_pattern({f.lower() for f in ordered}) if ordered else ""
        self.pattern = re.compile(trie) if ordered else None              # on lower-cased text
        self.any_case = re.compile(trie, re.IGNORECASE) if ordered else None
        # A message ending in a leading part of a form: one anchored trie again.
        cut = {f[:n].lower() for f in ordered for n in range(_MIN_CUT_TAIL, len(f))}
        self.cut = re.compile("(?:" + _trie_pattern(cut, gap="") + r")\Z") if cut else None
        self.longest_cut = max((len(c) for c in cut), default=0)


def _trie_pattern(forms: set[str], gap: str = r"\s*") -> str:
    """A regex matching the longest of `forms` at a position, with `gap`
    (by default any whitespace: a folded header, a wrapped line) allowed
    between any two characters."""
    root: dict = {}
    for form in forms:
        node = root
        for ch in form:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict, first: bool) -> str:
        branches = [("" if first else gap) + re.escape(ch) + build(child, False)
                    for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        # Longer first: a whole form wins over a shorter form it starts with.
        return "(?:" + body + ")?" if "" in node else body

    return build(root, True)


_matcher = _Matcher(0, frozenset())

# What a reader does not see between a secret's letters, so matching skips
# it: control characters but the whitespace the gap already allows (UTF-16
# read as UTF-8 puts a NUL after every letter), format characters (zero-width
# spaces and joiners, bidi marks, soft hyphen, BOM, variation selectors, tags),
# and a NUL escaped the ways a JSON, C, URL or HTML writer escapes it.
_INVISIBLE = re.compile(
    "[\x00-\x08\x0e-\x1f\x7f-\x9f\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f"
    "\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff9-\ufffb"
    "\U000e0000-\U000e007f]"
    r"|\\(?:x0{1,2}|u0{4}|0(?![0-7]))|%00|&#0+;|&#x0+;"
    # JSON's escaped solidus: PHP's json_encode writes every "/" as "\/".
    r"|\\(?=/)", re.IGNORECASE)
# Fullwidth ASCII (U+FF01-FF5E) and the ideographic space read as ASCII: one
# character for one, so a match's span in the view is its span in the text.
_WIDE = re.compile("[\uff01-\uff5e\u3000]")
_NARROW = {**{cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)}, 0x3000: 0x20}


def _view(text: str) -> tuple[str, list[int] | None]:
    """`text` as matching reads it (invisible characters left out, fullwidth
    letters narrowed), and for each of its characters the index in `text` it
    came from; None when that is the identity."""
    where = None
    if _INVISIBLE.search(text):
        parts, where, pos = [], [], 0
        for m in _INVISIBLE.finditer(text):
            parts.append(text[pos:m.start()])
            where.extend(range(pos, m.start()))
            pos = m.end()
        parts.append(text[pos:])
        where.extend(range(pos, len(text)))
        text = "".join(parts)
    if _WIDE.search(text):
        text = text.translate(_NARROW)
    return text, where
_URL_USERINFO_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^\s/?#@]+@")


def secret_forms(secret: str) -> set[str]:
    """The spellings of `secret` a remote may echo back, besides itself (each
    matched in any letter case by `redact`): percent-encoded (`+` for space),
    JSON-escaped, HTML-escaped, as decimal and hex numeric character
    references, the hex of its UTF-8 bytes, reversed, every leading part of
    at least max(8, half its length) characters, and base64 (standard and
    URL-safe) at each of the three byte alignments, so it is found inside a
    longer base64 string too."""
    if not secret:
        return set()
    # base64 and html here, not at the top: agent.errors imports this module
    # for every command, and only a config holding secrets comes here.
    import base64
    import html

    raw = secret.encode("utf-8")
    forms = {secret, quote(secret, safe=""), quote(secret), quote_plus(secret),
             json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1],
             html.escape(secret), secret[::-1], raw.hex(),
             "".join(f"&#{ord(ch)};" for ch in secret),
             "".join(f"&#x{ord(ch):x};" for ch in secret)}
    shortest = max(_MIN_PREFIX, (len(secret) + 1) // 2)
    forms |= {secret[:n] for n in range(shortest, len(secret))}
    for offset in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(b"\0" * offset + raw).decode("ascii").rstrip("=")
            # Characters mixing in bytes before or after the secret depend on
            # its neighbours; keep only those made of the secret's bits alone.
            start = (offset * 8 + 5) // 6
            end = ((offset + len(raw)) * 8) // 6
            core = text[start:end]
            if len(core) >= _MIN_B64_CORE:
                forms.add(core)
    forms.add(base64.b64encode(raw).decode("ascii"))
    return {f for f in forms if f}


def basic_forms(username: str, password: str) -> set[str]:
    """What a Basic `Authorization` header gives away: `user:password`, its
    base64 (the header's value) and the whole header line's value."""
    import base64

    pair = f"{username}:{password}"
    token = base64.b64encode(pair.encode("utf-8")).decode("ascii")
    return secret_forms(pair) | {token, f"Basic {token}"}


def remember(owner: object, *secrets: str | None, basic: tuple[str, str | None] | None = None) -> None:
    """Redact `secrets` (and, with `basic=(username, password)`, the Basic
    header made from them) from every message in this process for as long as
    `owner` lives. Empty and None secrets are ignored."""
    global _version
    forms: set[str] = set()
    for secret in secrets:
        if secret:
            forms |= secret_forms(secret)
    if basic is not None and basic[0] is not None and basic[1]:
        forms |= basic_forms(basic[0], basic[1] or "")
    if not forms:
        return
    handle = next(_handles)
    with _lock:
        _held[handle] = frozenset(forms)
        _version += 1
    weakref.finalize(owner, _forget, handle)


def _forget(handle: int) -> None:
    global _version
    with _lock:
        if _held.pop(handle, None) is not None:
            _version += 1


def _current() -> _Matcher:
    global _matcher
    matcher = _matcher
    if matcher.version == _version:
        return matcher
    with _lock:
        version, forms = _version, frozenset().union(*_held.values())
    matcher = _Matcher(version, forms)
    _matcher = matcher
    return matcher


def redact(text: Any) -> str:
    """`text` (made a str) with every remembered secret, in every form
    `secret_forms` lists, replaced by `***`, whatever invisible characters
    are slipped between its letters (see the module's docstring); also a
    message that ends in the first 6 or more characters of one (a server
    message cut short), and the `user:password@` of any URL in it,
    remembered or not. Text holding no secret comes back unchanged."""
    text = text if isinstance(text, str) else str(text)
    if "@" in text:
        text = _URL_USERINFO_RE.sub(r"\1" + MASK + "@", text)
    return _mask(text, _current())


def holds_secret(text: str) -> bool:
    """True when `redact` would mask a remembered secret in `text` (URLs'
    credentials aside): for a caller checking a text it cannot redact as
    such, e.g. bytes read back in another encoding."""
    matcher = _current()
    return matcher.pattern is not None and bool(text) and _mask(text, matcher) != text


def _mask(text: str, matcher: _Matcher) -> str:
    if matcher.pattern is None or not text:
        return text
    view, where = _view(text)
    lowered = view.lower()
    if len(lowered) == len(view):
        # Match on the lower-cased text (much faster than IGNORECASE) and cut
        # the same spans out of the original.
        spans = [m.span() for m in matcher.pattern.finditer(lowered) if m.end() > m.start()]
    else:                          # a character whose lower case is longer
        spans = [m.span() for m in matcher.any_case.finditer(view) if m.end() > m.start()]
    if where is not None:          # back to the text's own positions, invisible characters and all
        spans = [(where[start], where[end - 1] + 1) for start, end in spans]
    # A short secret (a 6-digit password) inside a longer run of letters or
    # digits is another value that holds it (an amount, an invoice number):
    # masked only standing alone, so no figure of an invoice is mangled.
    # (A form that brings its own edge, "=value" for a query's, has it.)
    spans = [(start, end) for start, end in spans if end - start >= _MIN_PREFIX
             or not ((start > 0 and text[start].isalnum() and text[start - 1].isalnum())
                     or (end < len(text) and text[end - 1].isalnum() and text[end].isalnum()))]
    if spans:                      # one join, not a copy of the text per span
        pieces, pos = [], 0
        for start, end in spans:
            pieces += [text[pos:start], MASK]
            pos = end
        text = "".join(pieces) + text[pos:]
    if matcher.cut is not None:
        view, where = _view(text)
        lowered = view.lower()
        if len(lowered) == len(view):
            cut = matcher.cut.search(lowered, max(0, len(view) - matcher.longest_cut))
            if cut:
                return text[:where[cut.start()] if where is not None else cut.start()] + MASK
    return text


# URLs: credentials in them are refused by the config (agent/config.py) and never printed.

# scheme (maybe mistyped or missing), any slashes, then the authority up to the path.
_AUTHORITY_RE = re.compile(r"^\s*(?:[A-Za-z][A-Za-z0-9+.-]*:)?/*([^/?#]*)")


def has_credentials(url: str) -> bool:
    """True when `url` carries a user (and maybe a password) before its host,
    as in https://user:pw@host, whatever its scheme or a typo in it."""
    m = _AUTHORITY_RE.match(url)
    return bool(m) and "@" in m.group(1)


def has_password(url: str) -> bool:
    """True when `url` carries `user:password@` before its host. (folder:// and
    file:// put a path where the host goes: a folder may be called "inbox@hq",
    but "user:password@" is never a folder name.)"""
    m = _AUTHORITY_RE.match(url)
    return bool(m) and ":" in m.group(1).rsplit("@", 1)[0]


def shown_url(url: str) -> str:
    """`url` safe to print or log: credentials before the host become `***`."""
    m = _AUTHORITY_RE.match(url)
    if not m or "@" not in m.group(1):
        return url
    return url[:m.start(1)] + "***@" + m.group(1).rsplit("@", 1)[1] + url[m.end(1):]


def redact_data(value: Any) -> Any:
    """A copy of a JSON-like value (dicts, lists, strings) with `redact`
    applied to every string in it, keys included; any other object but a
    number, bool or None becomes its redacted `str`."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(k) if isinstance(k, str) else k: redact_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_data(v) for v in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return redact(str(value))


def active() -> int:
    """How many secret forms are remembered now (for tests and diagnostics)."""
    with _lock:
        return sum(len(f) for f in _held.values())
