"""File names as the ledger keeps them.

Linux file names are bytes; Python hands the ones that are not UTF-8 over
with surrogate escapes, which SQLite (UTF-8 only) refuses. Two spellings,
each for one use:
- `storable`: the name exactly, the bytes that are not UTF-8 as \\xNN: what
  logs, refusals and reasons show.
- `exact_path`: `storable`, and a backslash the name itself has before
  "x" and two hex digits written \\x5c. Used for the paths the ledger
  matches on (arrivals, files seen), so two different names never become
  one: a file literally named `inv\\xe8.xml` beside one whose name has the
  byte 0xe8 would otherwise share one key, and each would be taken again
  at every rescan as the other's row replaced its own.
- `readable_name`: what a person reads. Chinese Windows shares and
  scanners often write GBK names, which a Samba share without charset
  conversion passes through as bytes; those read as the Chinese they are.
"""

from __future__ import annotations

import re


def storable(text: str) -> str:
    """`text` with the surrogate escapes of a non-UTF-8 file name turned into
    \\xNN, so SQLite (which stores UTF-8 only) takes it, for people and
    logs; never U+FFFD. A name literally holding "\\xe8" is spelled as the
    byte 0xe8 is: match on `exact_path`, not on this."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


_ESCAPE_LOOKALIKE = re.compile(r"\\(?=x[0-9a-fA-F]{2})")


def exact_path(text: str) -> str:
    """`text` spelled for the ledger's lookups on a path: `storable`, with
    every backslash of the name itself that starts what reads as an escape
    (\\ before x and two hex digits) written \\x5c. Guarantees: two
    different names never get one spelling; a name without such a
    backslash is spelled as `storable` spells it (ledgers made before keep
    their keys). Not idempotent: apply it to a name, never to its spelling."""
    if "\\x" in text:
        text = _ESCAPE_LOOKALIKE.sub(r"\\x5c", text)
    return storable(text)


def readable_name(text: str) -> str:
    """A file name for people: unchanged when it is UTF-8; the GBK reading
    when its bytes are GBK throughout (a Chinese Windows name passed through
    as bytes) and no character's second byte is ASCII (a Latin-1 name would
    read as Chinese it never was); else `storable` (\\xNN), never U+FFFD,
    which would make different names look alike."""
    if not any("\udc80" <= c <= "\udcff" for c in text):
        return text
    raw = text.encode("utf-8", "surrogateescape")
    try:
        decoded = raw.decode("gbk")
    except UnicodeDecodeError:
        return storable(text)
    # Control characters are no name a scanner writes: bytes that merely
    # happen to be GBK are shown as they are. So is a character whose
    # second byte is ASCII: GBK allows it (0x40-0x7E), but it is how a
    # Latin-1 name reads as GBK (M\xe4rz, an accented letter and the ASCII
    # one after it, would show as "M鋜z"), and a wrong name is worse than
    # an escaped one. Chinese names in the common set (GB2312) never have
    # one; the rarer characters that do are shown as \xNN.
    if not decoded.isprintable() or any(ord(c) > 0x7F and c.encode("gbk")[-1] < 0x80 for c in decoded):
        return storable(text)
    return decoded
