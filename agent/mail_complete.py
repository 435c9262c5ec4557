"""An e-mail file still being written, told from its bytes.

A mail client or a fetcher that writes a message in several goes leaves,
between them, a file that parses: its last attachment cut off. Taken then,
that part would be an invoice's first half, and the message moved away
while its writer still had it open. A multipart message ends with its
closing delimiter (RFC 2046 5.1.1: --boundary--); until that line is there,
the message is not complete.
"""

from __future__ import annotations

import email.parser
import email.policy
import re

_HEADER_END_RE = re.compile(rb"\r?\n\r?\n")
_MAX_HEADER = 256 * 1024


def is_unfinished(data: bytes) -> bool:
    """True when `data` is a multipart message whose closing delimiter
    (--boundary--, on a line of its own) is not there yet. False for a
    message that is not multipart (its end cannot be told from its bytes),
    for one without a readable boundary, and for headers that do not end
    within 256 KB (the parser refuses those, with a reason)."""
    end = _HEADER_END_RE.search(data, 0, _MAX_HEADER)
    if end is None:
        return False
    headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(data[:end.start()])
    if headers.get_content_maintype() != "multipart":
        return False
    boundary = headers.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        return False
    try:
        close = b"--" + boundary.encode("ascii") + b"--"
    except UnicodeEncodeError:
        return False
    # The delimiter starts a line; trailing blanks may follow it.
    return re.search(rb"(?:^|\n)" + re.escape(close) + rb"[ \t]*(?:\r?\n|$)", data[end.end() - 2:]) is None
