"""A PDF cut short, told from its bytes before any parser sees them.

PDFium rebuilds a damaged cross-reference table by scanning for objects, so
it reads most of a file that is still being written, or a download or an
e-mail part that broke off: the first half of an invoice PDF gives its QR
and its text. Read, that half would be judged valid and delivered, and the
whole file, when it came, a duplicate of it. Every PDF writer puts %%EOF
last; a file without it at its end is no whole PDF.
"""

from __future__ import annotations

import re

from agent.errors import ExtractError

# What a writer appends after its last %%EOF: line ends, NUL padding (some
# scanners pad to a block size). Anything else, if it is PDF syntax, is a
# revision (an incremental update) that was cut off before its own %%EOF.
_PAD = b"\0 \r\n\t\f"
# PDF syntax as a writer puts it, not words a note may hold: an object's
# header, a cross-reference section, a trailer dictionary, startxref.
_PDF_SYNTAX_RE = re.compile(rb"\d+\s+\d+\s+obj\b|\bxref\s*[\r\n]+\s*\d+\s+\d+|\btrailer\s*<<|\bstartxref\s+\d+"
                            rb"|\bendobj\b|\bendstream\b")
# The first bytes of one: a cut a few bytes into the update ("12 0 ob").
_PDF_START_RE = re.compile(rb"\d+(?:\s+\d*(?:\s+o?b?j?)?)?$|x(?:r(?:ef?)?)?$|t(?:r(?:a(?:i(?:l(?:er?)?)?)?)?)?$")


def is_cut_short(data: bytes) -> bool:
    """True when `data` is a PDF cut short: no %%EOF at all, or PDF syntax
    (objects, a cross-reference, a trailer) after its last one, as when an
    incremental update or a linearized file (whose first-page section
    has a %%EOF of its own) broke off. Bytes after the last %%EOF that are
    no PDF syntax (padding, a gateway's junk) do not make it cut short."""
    end = data.rfind(b"%%EOF")
    if end < 0:
        return True
    rest = data[end + 5:].strip(_PAD)
    return bool(rest) and (_PDF_SYNTAX_RE.search(rest) is not None or _PDF_START_RE.match(rest) is not None)


def check_complete(data: bytes) -> None:
    """Raise ExtractError("truncated") for a PDF cut short (`is_cut_short`):
    its values are not read, as they could be half an invoice's or an
    earlier version's."""
    if is_cut_short(data):
        raise ExtractError("truncated", "the PDF is cut short: it does not end with the %%EOF marker every "
                                        "writer puts last (still being written, or a broken download or "
                                        "e-mail part); nothing is read from it")
