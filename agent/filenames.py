"""File names as the ledger keeps them.

Linux file names are bytes; Python hands the ones that are not UTF-8 over
with surrogate escapes, which SQLite (UTF-8 only) refuses. Two spellings,
each for one use:
- `storable`: the name exactly, the bytes that are not UTF-8 as \\xNN. Used
  for paths the ledger matches on (arrivals, files seen, refusals), so two
  different names never become one.
- `readable_name`: what a person reads. Chinese Windows shares and
  scanners often write GBK names, which a Samba share without charset
  conversion passes through as bytes; those read as the Chinese they are.
"""

from __future__ import annotations


def storable(text: str) -> str:
    """`text` with the surrogate escapes of a non-UTF-8 file name turned into
    \\xNN, so SQLite (which stores UTF-8 only) takes it; one spelling per
    name, and different names stay different."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def readable_name(text: str) -> str:
    """A file name for people: unchanged when it is UTF-8; the GBK reading
    when its bytes are GBK throughout (a Chinese Windows name passed through
    as bytes); else `storable` (\\xNN), never U+FFFD, which would make
    different names look alike."""
    if not any("\udc80" <= c <= "\udcff" for c in text):
        return text
    raw = text.encode("utf-8", "surrogateescape")
    try:
        decoded = raw.decode("gbk")
    except UnicodeDecodeError:
        return storable(text)
    # Control characters are no name a scanner writes: bytes that merely
    # happen to be GBK are shown as they are.
    return decoded if decoded.isprintable() else storable(text)
