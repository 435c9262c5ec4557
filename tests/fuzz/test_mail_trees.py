"""parse_message over well-formed-looking MIME trees with hostile details.

tests/unit/test_mail.py already fuzzes raw bytes and header pieces; this
builds whole trees (nested multiparts with their own boundaries, forwarded
messages, zips with hostile member names, lying encodings) so the damage
reaches the deeper code paths.
"""

from __future__ import annotations

import base64
import io
import quopri
import warnings
import zipfile

from hypothesis import given
from hypothesis import strategies as st

from agent.errors import AgentError
from agent.mail import MailLimits, parse_message
from tests.fuzz.strategies import FUZZ

LIMITS = MailLimits(min_image_bytes=0, max_attachments=8)
_NAMES = st.one_of(st.text(max_size=20), st.sampled_from([
    "../../etc/passwd", "/abs.pdf", "a\r\nBcc: x@y", "..\\..\\x.pdf", "发票.pdf", "=?utf-8?B?5Y+R56Wo?=",
    "=?gbk?Q?=B7=A2?=", "con", "", ".", "..", "a" * 300, "x\x00.pdf"]))
_BODIES = st.one_of(st.binary(max_size=64), st.sampled_from([
    b"%PDF-1.4\n%%EOF\n", b"<EInvoice/>", b"\x89PNG\r\n\x1a\n", b"PK\x03\x04", b"", b"   "]))


def _zip(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w") as z:
        warnings.simplefilter("ignore")  # duplicate names are part of the test
        for name, data in members:
            name = name.split("\x00")[0]  # zipfile cuts a name at NUL
            z.writestr(name if name.strip("/.") else "x", data)  # and cannot write an empty one
    return buf.getvalue()


def _encode(body: bytes, cte: str) -> bytes:
    if cte == "base64":
        return base64.encodebytes(body)
    if cte == "quoted-printable":
        return quopri.encodestring(body)
    if cte == "lying-base64":
        return b"!!" + body + b"=="
    return body


@st.composite
def leaf(draw, n: int) -> bytes:
    body = draw(st.one_of(_BODIES, st.lists(st.tuples(_NAMES, _BODIES), max_size=3).map(_zip)))
    cte = draw(st.sampled_from(["base64", "quoted-printable", "8bit", "lying-base64", "x-uuencode"]))
    ctype = draw(st.sampled_from(["application/pdf", "application/octet-stream", "application/zip",
                                  "image/png", "text/plain", "text/xml", "message/rfc822", "garbage"]))
    name = draw(_NAMES).replace('"', "'")
    disp = draw(st.sampled_from(["attachment", "inline", "bogus"]))
    param = draw(st.sampled_from([f'filename="{name}"', f"filename*=utf-8''{name}",
                                  f'filename*0="{name[:3]}"; filename*1="{name[3:]}"', f'name="{name}"']))
    head = f"Content-Type: {ctype}\r\nContent-Disposition: {disp}; {param}\r\n"
    head += f"Content-Transfer-Encoding: {'base64' if cte == 'lying-base64' else cte}\r\n\r\n"
    return head.encode("utf-8", "surrogatepass") + _encode(body, cte)


@st.composite
def part(draw, depth: int = 0, counter: list | None = None) -> bytes:
    counter = counter if counter is not None else [0]
    counter[0] += 1
    n = counter[0]
    kind = draw(st.sampled_from(["leaf", "leaf", "multipart", "forward"] if depth < 2 else ["leaf"]))
    if kind == "leaf":
        return draw(leaf(n))
    if kind == "forward":
        inner = draw(part(depth + 1, counter))
        return (b"Content-Type: message/rfc822\r\n\r\nMessage-ID: <f%d@x>\r\n" % n) + inner
    boundary = f"b{n}"
    children = draw(st.lists(part(depth + 1, counter), max_size=3))
    close = draw(st.booleans())
    body = b"".join(b"--" + boundary.encode() + b"\r\n" + c + b"\r\n" for c in children)
    return (f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'.encode() + body
            + (b"--" + boundary.encode() + b"--\r\n" if close else b""))


@FUZZ
@given(part())
def test_mime_trees_give_safe_attachments_or_typed_errors(tree):
    data = b"From: a@b\r\nMessage-ID: <m@x>\r\nMIME-Version: 1.0\r\n" + tree
    try:
        parsed = parse_message(data, LIMITS)
    except AgentError:
        return
    assert len(parsed.attachments) <= LIMITS.max_attachments
    for att in parsed.attachments:
        assert att.data
        assert att.filename not in ("", ".", "..")
        assert "/" not in att.filename and "\\" not in att.filename, att.filename
        assert not any(ord(c) < 32 for c in att.filename), att.filename
        assert len(att.filename.encode()) <= 200
    for refusal in parsed.refusals:
        assert refusal.reason
