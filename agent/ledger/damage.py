"""What is wrong with a ledger file SQLite cannot open, told from its header.

SQLite says "malformed" or, for a reader that cannot create the -shm file,
"attempt to write a readonly database" whatever the cause: a file cut
short (a copy that stopped, a full disk) and a healthy ledger whose daemon
is not running look alike. The 100-byte header tells them apart.
"""

from __future__ import annotations

import os
from pathlib import Path

_MAGIC = b"SQLite format 3\x00"


def file_damage(path: str | os.PathLike) -> str | None:
    """Why the file at `path` is no whole SQLite database, in one phrase,
    or None when its header is sound: not a database at all, or cut short
    (smaller than one page, not a whole number of pages, or fewer pages
    than the header counts while that count is valid). Never raises;
    None also when the file cannot be read."""
    try:
        with open(path, "rb") as f:
            header = f.read(100)
            size = os.fstat(f.fileno()).st_size
    except OSError:
        return None
    if len(header) < 100 or not header.startswith(_MAGIC):
        return "it is not an SQLite database (no SQLite header)" if size else "it is empty"
    page = int.from_bytes(header[16:18], "big")
    page = 65536 if page == 1 else page
    if page < 512 or page & (page - 1):
        return "its header is damaged (no valid page size)"
    counted = int.from_bytes(header[28:32], "big")
    counted_valid = header[24:28] == header[92:96]  # the count is valid when written with this change
    if size < page or size % page:
        return f"it is cut short ({size:,} bytes, not a whole number of {page:,}-byte pages)"
    if counted_valid and counted and size // page < counted:
        return f"it is cut short ({size // page:,} of the {counted:,} pages its header counts)"
    return None


def damage_phrase(path: str | os.PathLike) -> str:
    """`file_damage` as a sentence for an error message ("" when sound)."""
    why = file_damage(Path(path))
    return f": {why}; restore it from a backup (fapiao-agent backup restore)" if why else ""
