"""Zip archives (OFD packages) rewritten member by member, for tests."""

from __future__ import annotations

import io
import zipfile
from typing import Callable


def rezip(data: bytes, change: dict[str, Callable[[bytes], bytes]]) -> bytes:
    """The zip `data` with each member named in `change` replaced by what its
    function makes of its bytes; the others copied as they are."""
    src = zipfile.ZipFile(io.BytesIO(data))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as out:
        for name in src.namelist():
            body = src.read(name)
            out.writestr(name, change[name](body) if name in change else body)
    return buf.getvalue()
