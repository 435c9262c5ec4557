"""Outlook TNEF (winmail.dat): the files in it are the message's attachments.

Real TNEF streams (tests/support/tnef.py, with real checksums) in real
messages, read by the real parse_message. Each hostile stream is sent beside
an ordinary PDF attachment: that one is always taken, the stream's damage
refused by name, never a crash, never a file cut short passed on."""

from __future__ import annotations

import io
import struct
import time
import zipfile
from dataclasses import replace
from email.message import EmailMessage

import pytest

from agent.extract.unreadable import TNEF
from agent.mail import MailLimits, parse_message, read_zip
from agent.mail_tnef import ATTRIBUTES_PER_PART, WHOLE_FILE
from agent.tnef import Cut, tnef_files
from tests.conftest import SAMPLES
from tests.support.tnef import (ATTACH_DATA, IID_ISTORAGE, PR_ATTACH_DATA_OBJ, PR_ATTACH_LONG_FILENAME,
                                PR_ATTACH_METHOD, PT_LONG, PT_OBJECT, PT_UNICODE, SIGNATURE, Attached, attribute,
                                mapi_props, tnef)

PDF = (SAMPLES / "mxvc__invoice" / "发票.pdf").read_bytes()
XML = (SAMPLES / "renoyuan__easyofd" / "original_invoice.xml").read_bytes()
BESIDE = (SAMPLES / "mxvc__invoice" / "发票2.pdf").read_bytes()   # an ordinary attachment beside the TNEF
OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504)        # an Outlook .msg's (compound file) header


def mail(winmail: bytes, *, beside: bool = True, name: str = "winmail.dat") -> bytes:
    """A message as Outlook sends it to a stranger: text, the winmail.dat
    (application/ms-tnef), and here an ordinary PDF before it."""
    msg = EmailMessage()
    msg["From"], msg["Subject"], msg["Message-ID"] = "财务 <fin@example.cn>", "发票", "<tnef-1@example.cn>"
    msg.set_content("附件是发票")
    if beside:
        msg.add_attachment(BESIDE, maintype="application", subtype="pdf", filename="另一张.pdf")
    msg.add_attachment(winmail, maintype="application", subtype="ms-tnef", filename=name)
    return msg.as_bytes()


def taken(parsed) -> list[tuple[str, str | None, bytes]]:
    return [(a.filename, a.from_zip, a.data) for a in parsed.attachments]


def refused(parsed) -> dict[str, tuple[str, str]]:
    return {r.filename: (r.reason, r.detail) for r in parsed.refusals}


def test_the_files_in_a_winmail_dat_are_the_messages_attachments():
    blob = tnef([Attached("电子发票.pdf", PDF, title="DZFP.PDF".encode()),
                 Attached(None, XML, title="发票.xml".encode("gbk")),       # a Chinese Outlook's title, GBK (cp936)
                 Attached(None, BESIDE + b"\n", short_name="INV~1.PDF")])   # only the 8.3 name
    parsed = parse_message(mail(blob))
    assert taken(parsed) == [("另一张.pdf", None, BESIDE), ("电子发票.pdf", "winmail.dat", PDF),
                             ("发票.xml", "winmail.dat", XML), ("INV~1.PDF", "winmail.dat", BESIDE + b"\n")]
    assert [a.media_type for a in parsed.attachments] == ["application/pdf", "application/pdf",
                                                          "application/xml", "application/pdf"]
    assert parsed.refusals == [] and parsed.message_id == "<tnef-1@example.cn>"


def test_a_winmail_dat_with_no_file_in_it_is_named_as_before():
    # Outlook's rich text alone (no attachment): what it is and what to do.
    parsed = parse_message(mail(tnef([])))
    assert taken(parsed) == [("另一张.pdf", None, BESIDE)]
    assert refused(parsed) == {"winmail.dat": ("unsupported-format", TNEF.text)}


def test_a_winmail_dat_saved_as_a_file_is_read_as_a_message_without_headers():
    parsed = parse_message(tnef([Attached("发票.pdf", PDF)]))
    assert taken(parsed) == [("发票.pdf", None, PDF)] and parsed.refusals == []
    assert (parsed.message_id, parsed.from_, parsed.subject) == (None, None, None)
    # One holding no file gives nothing: the caller names the file (intake_mail: unsupported-format).
    empty = parse_message(tnef([]))
    assert (empty.attachments, empty.refusals) == ([], [])


def test_a_stream_cut_anywhere_never_passes_a_file_cut_short():
    # Cut at every byte: the files taken are always whole (the ones built),
    # the ordinary PDF beside it always taken, and a cut inside an attribute
    # refused by name with why, in English and Chinese.
    files = [Attached("a.pdf", b"%PDF-1.4 first " + bytes(range(256))), Attached("b.xml", XML[:300])]
    blob = tnef(files)
    whole = {f.long_name: f.data for f in files}
    boundaries = _attribute_ends(blob)
    for at in range(len(blob)):
        parsed = parse_message(mail(blob[:at]))
        assert parsed.attachments[0].data == BESIDE
        for att in parsed.attachments[1:]:
            # (Cut after its data, before its properties: whole, named by its position.)
            assert att.data == whole.get(att.filename, att.data) and att.data in whole.values(), at
        if at in boundaries:
            continue   # a cut between attributes is a shorter stream: what it holds is whole
        reason, detail = refused(parsed)["winmail.dat"]
        if at < 4:   # not even the signature: nothing, or bytes of no kind
            assert reason == ("empty" if at == 0 else "unsupported-format"), at
        else:
            assert reason == "tnef-corrupt" and "cut short or damaged" in detail and "截断或损坏" in detail, at


def _attribute_ends(blob: bytes) -> set[int]:
    ends, pos = {6}, 6
    while pos < len(blob):
        _, _, length = struct.unpack_from("<BII", blob, pos)
        pos += 9 + length + 2
        ends.add(pos)
    return ends


def test_a_file_failing_its_checksum_is_refused_by_name_and_the_others_taken():
    blob = bytearray(tnef([Attached("发票.pdf", PDF), Attached("发票.xml", XML)]))
    at = blob.index(PDF) + 1000
    blob[at] ^= 0x20   # one bit flipped in transit
    parsed = parse_message(mail(bytes(blob)))
    assert taken(parsed) == [("另一张.pdf", None, BESIDE), ("发票.xml", "winmail.dat", XML)]
    reason, detail = refused(parsed)["winmail.dat/发票.pdf"]
    assert reason == "tnef-corrupt" and "checksum" in detail and "校验和" in detail


@pytest.mark.parametrize("declared", [10_000, 0xFFFFFFFF], ids=["past-the-end", "4-gib"])
def test_an_attribute_longer_than_the_stream_is_refused_without_reading_it(declared):
    good = tnef([Attached("发票.pdf", PDF)])
    liar = attribute(2, ATTACH_DATA, b"%PDF-1.4 short", length=declared)
    started = time.monotonic()
    parsed = parse_message(mail(good + attribute(2, 0x00069002, bytes(14)) + liar))
    assert time.monotonic() - started < 5
    assert taken(parsed) == [("另一张.pdf", None, BESIDE), ("发票.pdf", "winmail.dat", PDF)]
    reason, detail = refused(parsed)["winmail.dat"]
    assert reason == "tnef-corrupt" and f"declares {declared} bytes" in detail and "1 attachment(s) before" in detail


def test_ten_thousand_tiny_attachments_stay_within_the_messages_limits():
    limits = MailLimits()
    blob = tnef([Attached(f"{i}.pdf", b"%%PDF-1.4 %d" % i) for i in range(10_000)])
    started = time.monotonic()
    parsed = parse_message(mail(blob), limits)
    assert time.monotonic() - started < 30
    # The ordinary PDF first, then the TNEF's up to max_attachments; each one
    # after that refused by name, until the parts limit refuses the rest at once.
    assert len(parsed.attachments) == limits.max_attachments
    assert parsed.attachments[0].data == BESIDE
    reasons = [r.reason for r in parsed.refusals]
    assert set(reasons) == {"too-many-attachments", "too-many-parts"}
    assert len(reasons) <= limits.max_parts
    assert "winmail.dat/(rest)" in refused(parsed)


def test_a_winmail_dat_in_a_winmail_dat_is_read_to_the_nesting_limit():
    depth = MailLimits().max_nested_messages
    blob = tnef([Attached("1.pdf", BESIDE + b"1")])
    for level in range(2, depth + 3):
        blob = tnef([Attached(f"{level}.pdf", BESIDE + str(level).encode()), Attached("winmail.dat", blob)])
    parsed = parse_message(mail(blob, beside=False))
    inner = "/".join(["winmail.dat"] * depth)
    got = {a.filename: a.from_zip for a in parsed.attachments}
    assert len(got) == depth and got[f"{depth + 2}.pdf"] == "winmail.dat"
    assert refused(parsed)[f"{inner}/winmail.dat"][0] == "nested-too-deep"


def test_an_attached_outlook_item_gives_its_own_files():
    forwarded = tnef([Attached("原发票.pdf", PDF)])
    parsed = parse_message(mail(tnef([Attached("转发: 发票", message=forwarded)])))
    assert taken(parsed) == [("另一张.pdf", None, BESIDE), ("原发票.pdf", "winmail.dat/转发_ 发票", PDF)]


def test_an_outlook_msg_inside_is_named_for_what_it_is():
    # As a file (attAttachData), and as an OLE object (PR_ATTACH_DATA_OBJ with IID_IStorage).
    as_object = attribute(2, 0x00069002, bytes(14)) + attribute(2, 0x00069005, mapi_props([
        (PT_LONG, PR_ATTACH_METHOD, 6), (PT_UNICODE, PR_ATTACH_LONG_FILENAME, "对象.msg"),
        (PT_OBJECT, PR_ATTACH_DATA_OBJ, IID_ISTORAGE + OLE2)]))
    parsed = parse_message(mail(tnef([Attached("发票.msg", OLE2)]) + as_object))
    assert taken(parsed) == [("另一张.pdf", None, BESIDE)]
    for name in ("winmail.dat/发票.msg", "winmail.dat/对象.msg"):
        reason, detail = refused(parsed)[name]
        assert reason == "unsupported-format" and "Outlook .msg" in detail


def test_a_zip_in_a_winmail_dat_is_expanded_and_one_from_a_zip_shares_its_budget():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("fp/发票.pdf", PDF)
    inner_zip = buf.getvalue()
    parsed = parse_message(mail(tnef([Attached("发票.zip", inner_zip)])))
    assert taken(parsed)[1:] == [("发票.pdf", "winmail.dat/发票.zip", PDF)]
    # A winmail.dat in a zip, holding a zip: one nest of archives, one depth
    # and byte budget (a fresh one per TNEF would let nesting multiply it).
    outer = io.BytesIO()
    with zipfile.ZipFile(outer, "w") as zf:
        zf.writestr("winmail.dat", tnef([Attached("发票.zip", inner_zip)]))
    limits = MailLimits()
    assert taken(read_zip(outer.getvalue(), "bundle.zip", limits)) == [
        ("发票.pdf", "bundle.zip/winmail.dat/发票.zip", PDF)]
    flat = replace(limits, zip_limits=replace(limits.zip_limits, max_depth=1))
    contents = read_zip(outer.getvalue(), "bundle.zip", flat)
    assert contents.attachments == []
    assert [(r.filename, r.reason) for r in contents.refusals] == [
        ("bundle.zip/winmail.dat/发票.zip", "zip-limit-exceeded")]


def test_the_reader_never_raises_and_yields_only_bytes_of_the_stream():
    # Every single byte of a real stream set to each of a few values: the
    # reader ends (a Cut or the files), each file's bytes a span of the stream.
    blob = tnef([Attached("a.pdf", b"%PDF-1.4 " + bytes(40)), Attached("m", message=tnef([Attached("b", b"x")]))])
    for at in range(len(blob)):
        for value in (0x00, 0x02, 0x7F, 0xFF):
            broken = blob[:at] + bytes([value]) + blob[at + 1:]
            for item in tnef_files(broken):
                if isinstance(item, Cut):
                    assert 0 <= item.at <= len(broken)
                elif item.data is not None:
                    assert item.data in broken
                elif item.message is not None:
                    assert bytes(item.message) in broken and list(tnef_files(item.message)) is not None


def test_a_whole_file_stream_cut_short_is_refused_under_a_name_that_says_so():
    blob = tnef([Attached("发票.pdf", PDF)])
    parsed = parse_message(blob[:-100])
    assert parsed.attachments == []
    reason, detail = refused(parsed)[WHOLE_FILE]
    assert reason == "tnef-corrupt" and "0 attachment(s) before" in detail
    assert parse_message(SIGNATURE + b"\x01").refusals[0].reason == "tnef-corrupt"


def test_a_stream_of_empty_attributes_is_cut_at_the_parts_budget_not_walked_to_its_end():
    # 50 MB of 11-byte message attributes: millions of steps of pure Python.
    # No message has more than ATTRIBUTES_PER_PART per part it may hold.
    limits = MailLimits()
    one = attribute(1, 0x00068009, b"")
    blob = SIGNATURE + b"\0\0" + one * ((limits.max_attachment_bytes - 100) // len(one))
    started = time.monotonic()
    parsed = parse_message(blob, limits)
    assert time.monotonic() - started < 2
    reason, detail = refused(parsed)[WHOLE_FILE]
    assert reason == "tnef-corrupt" and f"more than {ATTRIBUTES_PER_PART * limits.max_parts} attributes" in detail
