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
percent-encoded, JSON-escaped, base64 (alone, or inside a longer base64
string such as the Basic header's `user:password`), with whitespace inside
it (a folded or wrapped header), and cut short at the end of a message.
Credentials written into any URL (`https://user:pw@host`) are masked too;
`has_credentials` and `shown_url` let the config refuse such URLs without
printing them.

The registry is per process. A secret is forgotten when the adapter that
remembered it is garbage collected, so short-lived adapters (a CLI command,
a test) leave nothing behind.
"""

from __future__ import annotations

import base64
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

_lock = threading.Lock()
_held: dict[int, frozenset[str]] = {}
_handles = itertools.count(1)
_version = 0                       # bumped on every change of _held


class _Matcher:
    """What `redact` needs, built once per change of the remembered secrets."""

    def __init__(self, version: int, forms: frozenset[str]):
        self.version = version
        ordered = sorted(forms, key=lambda f: (-len(f), f))
        # Whitespace may sit anywhere inside an echoed secret (a folded header, a
        # wrapped line); longest forms first, so a whole form wins over its parts.
        self.pattern = re.compile("|".join(r"\s*".join(re.escape(ch) for ch in f) for f in ordered)) \
            if ordered else None
        self.cut = {f[:n] for f in ordered for n in range(_MIN_CUT_TAIL, len(f))}
        self.longest_cut = max((len(c) for c in self.cut), default=0)


_matcher = _Matcher(0, frozenset())
_URL_USERINFO_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^\s/?#@]+@")


def secret_forms(secret: str) -> set[str]:
    """The spellings of `secret` a remote may echo back, besides itself:
    percent-encoded (either hex case, `+` for space), JSON-escaped, and
    base64 (standard and URL-safe) at each of the three byte alignments, so it
    is found inside a longer base64 string too."""
    if not secret:
        return set()
    forms = {secret, quote(secret, safe=""), quote(secret), quote_plus(secret),
             json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    forms |= {re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), f) for f in list(forms)}
    raw = secret.encode("utf-8")
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
    `secret_forms` lists, replaced by `***`; also a message that ends in the
    first 6 or more characters of one (a server message cut short), and the
    `user:password@` of any URL in it, remembered or not."""
    text = text if isinstance(text, str) else str(text)
    if "@" in text:
        text = _URL_USERINFO_RE.sub(r"\1" + MASK + "@", text)
    matcher = _current()
    if matcher.pattern is None or not text:
        return text
    text = matcher.pattern.sub(MASK, text)
    for n in range(min(matcher.longest_cut, len(text)), _MIN_CUT_TAIL - 1, -1):
        if text[-n:] in matcher.cut:
            return text[:-n] + MASK
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
