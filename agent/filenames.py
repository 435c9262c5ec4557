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
  `readable_path` reads a path so, one name at a time (a GBK department
  folder above a UTF-8 file name), and `readable_spelled` an `exact_path`
  spelling read back from the ledger.
Folder names are file names too: every text made of a path (a folder, a
department label, a source, a reason naming the file) goes through one of
these before it reaches SQLite, JSON or a log. `storable_value` is the
ledger's own last guard (agent/ledger writes every row's text through it):
a text some caller left with surrogate escapes is stored \\xNN, never
refused by SQLite with the file left uncaptured.
"""

from __future__ import annotations

import re
from typing import Any


def storable(text: str) -> str:
    """`text` with the surrogate escapes of a non-UTF-8 file name turned into
    \\xNN, so SQLite (which stores UTF-8 only) takes it, for people and
    logs; never U+FFFD. A name literally holding "\\xe8" is spelled as the
    byte 0xe8 is: match on `exact_path`, not on this."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        # A surrogate that is no escaped byte (U+D800-U+DC7F, U+DD00-U+DFFF:
        # text from elsewhere, never a file name's): \uXXXX, still storable.
        return storable("".join(c if not _LONE.match(c) else f"\\u{ord(c):04x}" for c in text))


_LONE = re.compile("[\ud800-\udc7f\udd00-\udfff]")


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


def readable_path(text: str) -> str:
    """A path for people: each of its names read as `readable_name` reads
    one, so a GBK folder shows as its Chinese whatever the names around it
    are (a UTF-8 file in it, a UTF-8 watched folder above it); unchanged
    when it is UTF-8 throughout; never U+FFFD. "/" is never part of a GBK
    character (its second byte is 0x40 or above), so splitting there first
    cuts no character in two."""
    if not _escaped(text):
        return text
    return "/".join(readable_name(part) for part in text.split("/"))


# What `exact_path` writes as \xNN: a byte of no UTF-8 (0x80-0xff) and a
# backslash of the name itself (0x5c). Any other \xNN was in the name.
_SPELLED_BYTE = re.compile(r"\\x(5c|[89a-fA-F][0-9a-fA-F])")


def readable_spelled(spelling: str) -> str:
    """An `exact_path` spelling (a path as the ledger keeps it for lookups:
    arrivals, files seen) shown as `readable_path` shows the path it spells:
    its \\xNN read back into the bytes they stand for, then each name read.
    A spelling that escapes nothing is returned as it is."""
    if "\\x" not in spelling:
        return spelling
    raw, at = bytearray(), 0
    for m in _SPELLED_BYTE.finditer(spelling):
        raw += spelling[at:m.start()].encode("utf-8", "surrogateescape")
        raw.append(int(m.group(1), 16))
        at = m.end()
    raw += spelling[at:].encode("utf-8", "surrogateescape")
    return readable_path(bytes(raw).decode("utf-8", "surrogateescape"))


def storable_value(value: Any) -> Any:
    """`value` (a text, or a row's details: dicts, lists and tuples of texts,
    numbers, None) with every text in it, dict keys too, made `storable`:
    what SQLite and a strict UTF-8 JSON take. Text that is already UTF-8 is
    returned as it is (the same object), so applying it again changes
    nothing: it is the ledger's guard, not the choice of a spelling."""
    if isinstance(value, str):
        return storable(value) if _escaped(value) else value
    if isinstance(value, dict):
        return {storable_value(k): storable_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [storable_value(v) for v in value]
    return value


def _escaped(text: str) -> bool:
    # Holds a surrogate: a byte of a file name that is no UTF-8 (or a lone
    # surrogate from elsewhere, which UTF-8 cannot carry either).
    return any("\ud800" <= c <= "\udfff" for c in text)
