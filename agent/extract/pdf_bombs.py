"""Decompression bombs in a PDF, found before PDFium inflates anything.

PDFium inflates a Flate stream whole when it reads it; a few KB of deflate
can claim gigabytes. Apart from `pdf` because it works on the file's bytes
alone, with zlib, before any parser sees them.
"""

from __future__ import annotations

import re
import zlib

from agent.errors import ExtractError

# Any stream (content, font, image, object stream) inflating past this is a
# bomb: PDFium would inflate it whole. pypdf, which read PDFs before, had
# the same limit.
MAX_INFLATED_BYTES = 75_000_000
_STREAM_RE = re.compile(rb"stream\r?\n")  # (a look-behind for "end" makes it 100x slower)
# A stream whose first KB inflates past this ratio is inflated (bounded) to
# measure it; honest content streams compress ~5-20x.
_PROBE_IN, _PROBE_OUT = 1024, 64 * 1024
# Deflate codes at most 258 bytes in 2 bits (a one-bit length code and a
# one-bit distance code), so no zlib stream inflates to more than 1,032
# times the compressed bytes it reads (1,100 here, for headers and the first
# literal). A stream with fewer bytes than MAX_INFLATED_BYTES / 1,100
# between it and the end of the file cannot be a bomb and is not measured:
# most invoice PDFs are smaller than that whole.
_DEFLATE_MAX_RATIO = 1100


def check_inflation(data: bytes) -> None:
    """Raise "limit-exceeded" when a Flate stream of the file (other than an
    image) inflates past MAX_INFLATED_BYTES. Each stream's first KB is inflated to see its ratio;
    only a stream that compresses like a bomb (or a blank image) is inflated
    further, in bounded chunks, never held whole. Encrypted streams do not
    inflate as they are and are not measured. Neither is a stream too close
    to the end of the file to hold a bomb (see _DEFLATE_MAX_RATIO)."""
    bomb_room = len(data) - MAX_INFLATED_BYTES // _DEFLATE_MAX_RATIO
    if bomb_room <= 0:
        return
    for m in _STREAM_RE.finditer(data, 0, bomb_room):
        if data[m.start() - 3:m.start()] == b"end":
            continue
        head = data[max(0, m.start() - 1024):m.start()]
        if b"/Image" in head[head.rfind(b"obj") + 1:]:
            # An image is decoded only after its pixel size is checked, and
            # PDFium inflates it no further than its pixels: big blank scans
            # compress like bombs and need not be measured.
            continue
        probe = zlib.decompressobj()
        try:
            if len(probe.decompress(data[m.end():m.end() + _PROBE_IN], _PROBE_OUT)) < _PROBE_OUT:
                continue
            size = _inflated_size(data, m.end())
        except zlib.error:
            continue
        if size > MAX_INFLATED_BYTES:
            raise ExtractError("limit-exceeded",
                               f"a stream of the PDF inflates to over {MAX_INFLATED_BYTES} bytes (a bomb)")


def _inflated_size(data: bytes, start: int) -> int:
    """Bytes the zlib stream at `start` inflates to, counted up to just past
    MAX_INFLATED_BYTES, 1 MB at a time."""
    inflater = zlib.decompressobj()
    size, pos = 0, start
    while pos < len(data) and not inflater.eof:
        chunk, pos = data[pos:pos + 65536], pos + 65536
        while chunk and not inflater.eof:
            size += len(inflater.decompress(chunk, 1 << 20))
            if size > MAX_INFLATED_BYTES:
                return size
            chunk = inflater.unconsumed_tail
    return size
