"""Hostile Outlook TNEF streams (winmail.dat), built byte by byte with real
checksums (tests/support/tnef.py), read by the real parse_message and
read_zip: what an attacker (or a broken gateway) can make of them in time,
in lost files and in the names shown."""

from __future__ import annotations

import io
import struct
import time
import zipfile
from email.message import EmailMessage

from agent.mail import MailLimits, parse_message, read_zip
from tests.conftest import SAMPLES
from tests.support.tnef import (ATTACH_DATA, ATTACH_REND_DATA, ATTACH_TITLE, ATTACHMENT, PR_ATTACH_DATA_OBJ,
                                PT_BINARY, PT_LONG, SIGNATURE, Attached, attribute, tnef)

PDF = (SAMPLES / "mxvc__invoice" / "发票.pdf").read_bytes()
PDF2 = (SAMPLES / "mxvc__invoice" / "发票2.pdf").read_bytes()
HEAD = SIGNATURE + b"\0\0"
REND = attribute(2, ATTACH_REND_DATA, bytes(14))


def refused(parsed) -> dict[str, tuple[str, str]]:
    return {r.filename: (r.reason, r.detail) for r in parsed.refusals}


def timed(read, data, *args):
    started = time.monotonic()
    result = read(data, *args)
    return time.monotonic() - started, result


def test_a_block_of_millions_of_tiny_mapi_properties_is_not_walked_for_seconds():
    # One attAttachment of 6 million 8-byte properties (48 MB): the reader
    # stepped through every one in pure Python (12 s here; 19 s as values
    # of one binary property), where the 50 MB of empty attributes beside
    # it are cut in milliseconds. A third of that here (4 s before). Timed against a stream of the same size
    # whose properties are one binary of all its bytes (the checksum's
    # cost, linear and not in question): under a busy machine both slow.
    limits = MailLimits()
    count = 2_000_000
    tiny = struct.pack("<I", count) + struct.pack("<HHI", PT_LONG, 0x1234, 0) * count
    values = struct.pack("<IHHI", 1, PT_BINARY, 0x1234, 2 * count - 2) + bytes(8 * count - 8)
    one = struct.pack("<IHHII", 1, PT_BINARY, 0x1234, 1, 8 * count - 12) + bytes(8 * count - 12)
    def stream(block: bytes) -> bytes:
        return HEAD + REND + attribute(2, ATTACH_TITLE, b"fp.pdf\0") + attribute(2, ATTACHMENT, block)
    baseline, _ = timed(parse_message, stream(one), limits)
    for block in (tiny, values):
        assert len(block) == len(one)
        took, parsed = timed(parse_message, stream(block), limits)
        assert took < 3 * baseline + 0.5, (took, baseline)
        assert parsed.attachments == []
        # Its bytes, if any, came after what was read: never said to be an empty file.
        reason, detail = refused(parsed)["fp.pdf"]
        assert reason == "tnef-corrupt" and "properties" in detail and "属性" in detail


def test_attribute_only_streams_in_a_zip_share_one_budget():
    # A 180 KB zip of 100 winmail.dat files, each 80,000 empty attributes
    # (just under a stream's own limit): each stream got a fresh budget,
    # and the archive took 9 s of pure Python to refuse. Timed against the
    # same zip whose members are no TNEF (inflating them is the cost left).
    limits = MailLimits()
    one = attribute(1, 0x00068009, b"")
    member = HEAD + one * (16 * limits.max_parts - 10)

    def archive(first: bytes) -> bytes:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for i in range(100):
                zf.writestr(f"{i:03}.dat", first + member[4:])
        return buf.getvalue()
    baseline, _ = timed(read_zip, archive(b"RIFF"), "a.zip", limits)
    took, contents = timed(read_zip, archive(SIGNATURE), "a.zip", limits)
    assert took < 3 * baseline + 0.5, (took, baseline)
    # Every member still named, never dropped.
    assert {r.filename for r in contents.refusals} == {f"a.zip/{i:03}.dat" for i in range(100)}


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


def test_an_attachment_the_stream_holds_no_bytes_for_is_not_called_an_empty_file():
    # Cut exactly between attributes, after the second attachment's title:
    # the reader cannot see a cut, but "empty: zero bytes" told the user
    # the sender sent nothing; the stream holds no bytes for it.
    blob = tnef([Attached("a.pdf", PDF), Attached(None, PDF2, title=b"b.pdf")])
    cut = blob[:blob.index(PDF2) - 9]
    parsed = parse_message(cut, name="winmail.dat")
    assert [a.filename for a in parsed.attachments] == ["a.pdf"]
    reason, detail = refused(parsed)["winmail.dat/b.pdf"]
    assert reason == "tnef-corrupt" and "no bytes" in detail and "cut" in detail and "截断" in detail
    # An attachment whose data attribute is there and empty is still an empty file.
    empty = parse_message(tnef([Attached("c.pdf", b"")]), name="winmail.dat")
    assert refused(empty)["winmail.dat/c.pdf"][0] == "empty"


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


def test_bytes_in_both_the_data_attribute_and_the_properties_are_both_read():
    # attAttachData and PR_ATTACH_DATA_BIN in one attachment: only the
    # first was read, the other file dropped without a trace; an empty
    # attAttachData beside the bytes in the properties said "empty".
    def props(data: bytes) -> bytes:
        return struct.pack("<IHHII", 1, PT_BINARY, PR_ATTACH_DATA_OBJ, 1, len(data)) + data + bytes(-len(data) % 4)
    both = HEAD + REND + attribute(2, ATTACH_DATA, PDF) + attribute(2, ATTACHMENT, props(PDF2))
    assert sorted(a.data for a in parse_message(both).attachments) == sorted([PDF, PDF2])
    empty_first = HEAD + REND + attribute(2, ATTACH_DATA, b"") + attribute(2, ATTACHMENT, props(PDF2))
    parsed = parse_message(empty_first)
    assert [a.data for a in parsed.attachments] == [PDF2] and parsed.refusals == []
    # The same bytes in both places (as some writers do) are one file.
    same = HEAD + REND + attribute(2, ATTACH_DATA, PDF) + attribute(2, ATTACHMENT, props(PDF))
    assert [a.data for a in parse_message(same).attachments] == [PDF]


def test_a_stream_cut_by_the_budget_another_spent_is_not_called_damaged():
    # The first winmail.dat spends nearly all the message's parts on empty
    # attributes; the second, an ordinary one, is then cut by what is left:
    # that is the message's limit, not a stream damaged on the way.
    limits = MailLimits()
    first = HEAD + attribute(1, 0x00068009, b"") * (16 * limits.max_parts - 80)
    parsed = parse_message(mail_of([first, tnef([Attached(f"{i}.pdf", PDF) for i in range(5)])]), limits)
    reasons = {name: reason for name, (reason, _) in refused(parsed).items()}
    assert reasons["1.dat"] == "unsupported-format"   # (holds no file: named as before)
    assert reasons["2.dat"] == "too-many-parts" and "parts" in refused(parsed)["2.dat"][1]


def mail_of(streams: list[bytes]) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["Subject"] = "fin@example.cn", "发票"
    msg.set_content("附件是发票")
    for i, blob in enumerate(streams, 1):
        msg.add_attachment(blob, maintype="application", subtype="ms-tnef", filename=f"{i}.dat")
    return msg.as_bytes()
