"""Hostile Outlook TNEF streams (winmail.dat), built byte by byte with real
checksums (tests/support/tnef.py), read by the real parse_message and
read_zip: what an attacker (or a broken gateway) can make of them in time,
in lost files and in the names shown."""

from __future__ import annotations

from agent.mail import parse_message
from tests.conftest import SAMPLES
from tests.support.tnef import (ATTACH_REND_DATA, SIGNATURE, Attached, attribute, tnef)

PDF = (SAMPLES / "mxvc__invoice" / "发票.pdf").read_bytes()
PDF2 = (SAMPLES / "mxvc__invoice" / "发票2.pdf").read_bytes()
HEAD = SIGNATURE + b"\0\0"
REND = attribute(2, ATTACH_REND_DATA, bytes(14))


def refused(parsed) -> dict[str, tuple[str, str]]:
    return {r.filename: (r.reason, r.detail) for r in parsed.refusals}


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
