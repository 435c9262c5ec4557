"""Hostile Outlook TNEF streams (winmail.dat), built byte by byte with real
checksums (tests/support/tnef.py), read by the real parse_message and
read_zip: what an attacker (or a broken gateway) can make of them in time,
in lost files and in the names shown."""

from __future__ import annotations

import struct

from agent.mail import parse_message
from tests.conftest import SAMPLES
from tests.support.tnef import (ATTACH_DATA, ATTACH_REND_DATA, ATTACHMENT, PR_ATTACH_DATA_OBJ, PT_BINARY,
                                SIGNATURE, Attached, attribute, tnef)

PDF = (SAMPLES / "mxvc__invoice" / "发票.pdf").read_bytes()
PDF2 = (SAMPLES / "mxvc__invoice" / "发票2.pdf").read_bytes()
HEAD = SIGNATURE + b"\0\0"
REND = attribute(2, ATTACH_REND_DATA, bytes(14))


def refused(parsed) -> dict[str, tuple[str, str]]:
    return {r.filename: (r.reason, r.detail) for r in parsed.refusals}


def test_a_second_data_attribute_never_silently_replaces_the_first_file():
    # A writer that leaves out attAttachRendData between two attachments:
    # the first file's bytes were overwritten by the second's, no trace.
    blob = HEAD + REND + attribute(2, ATTACH_DATA, PDF) + attribute(2, ATTACH_DATA, PDF2)
    parsed = parse_message(blob)
    assert sorted(a.data for a in parsed.attachments) == sorted([PDF, PDF2])
    # The same for a second attAttachment holding the bytes as PR_ATTACH_DATA_BIN.
    def props(data: bytes) -> bytes:
        return struct.pack("<IHHII", 1, PT_BINARY, PR_ATTACH_DATA_OBJ, 1, len(data)) + data + bytes(-len(data) % 4)
    blob = HEAD + REND + attribute(2, ATTACHMENT, props(PDF)) + attribute(2, ATTACHMENT, props(PDF2))
    parsed = parse_message(blob)
    assert sorted(a.data for a in parsed.attachments) == sorted([PDF, PDF2])


def test_the_attachment_a_cut_falls_in_is_named_safely():
    # The title of the attachment the stream is cut inside went into the
    # refusal's detail as it was: a right-to-left override, a terminal
    # escape, a line break, `../` and 3,000 characters, twice.
    nasty = "\u202e../../x\x1b[31m\n" + "y" * 3000 + ".pdf"
    blob = tnef([Attached("ok.pdf", PDF), Attached(None, PDF2, title=nasty.encode())])
    parsed = parse_message(blob[:-200], name="winmail.dat")
    reason, detail = refused(parsed)["winmail.dat"]
    assert reason == "tnef-corrupt" and "inside the attachment" in detail
    assert not any(c in detail for c in "\u202e\x1b\n") and "../" not in detail
    assert len(detail) < 1200
