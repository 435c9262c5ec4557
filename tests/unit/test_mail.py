"""E-mails built here, byte for byte, read through agent.mail."""

from __future__ import annotations

import base64
import io
import os
import urllib.parse
import zipfile
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from agent.errors import AgentError, CaptureError, ExtractError
from agent.mail import (
    MailLimits,
    iter_maildir,
    maildir_cur_path,
    parse_message,
)
from agent.mailnames import sanitise_filename

PDF = b"%PDF-1.7\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
XML = "<?xml version='1.0' encoding='UTF-8'?><EInvoice><Header/></EInvoice>".encode()
NAME = "电子发票（普通发票）数电票.pdf"
BOUNDARY = "=-=BOUNDARY=-="


def raw_mail(*parts: bytes, headers: bytes = b"", boundary: str = BOUNDARY) -> bytes:
    """A multipart/mixed message from already-encoded part blocks (headers + body)."""
    head = (b"From: sender@example.cn\r\nTo: ap@example.cn\r\nSubject: invoices\r\n"
            b"Message-ID: <m1@example.cn>\r\nDate: Tue, 03 Mar 2026 10:15:00 +0800\r\n"
            + headers + b"MIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=\"" + boundary.encode() + b"\"\r\n\r\n"
            b"preamble\r\n")
    body = b"".join(b"--" + boundary.encode() + b"\r\n" + p + b"\r\n" for p in parts)
    return head + body + b"--" + boundary.encode() + b"--\r\n"


def b64_part(data: bytes, disposition_params: bytes, ctype: bytes = b"application/octet-stream") -> bytes:
    return (b"Content-Type: " + ctype + b"\r\nContent-Disposition: attachment" + disposition_params
            + b"\r\nContent-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(data))


def text_body(text: str = "请查收发票") -> bytes:
    return (b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + base64.encodebytes(text.encode()))


def big_png() -> bytes:
    img = Image.frombytes("RGB", (120, 120), os.urandom(120 * 120 * 3))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    assert len(buf.getvalue()) > 20 * 1024
    return buf.getvalue()


def small_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 12), "red").save(buf, format="PNG")
    return buf.getvalue()


def make_zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=zipfile.ZIP_DEFLATED)
    return buf.getvalue()


# --- names ---------------------------------------------------------------------

def test_raw_8bit_gbk_filename_is_recovered():
    msg = raw_mail(text_body(), b64_part(PDF, b'; filename="' + NAME.encode("gbk") + b'"'))
    parsed = parse_message(msg)
    assert [a.filename for a in parsed.attachments] == [NAME]
    assert parsed.attachments[0].data == PDF
    assert parsed.attachments[0].media_type == "application/pdf"
    assert parsed.refusals == []


def test_raw_8bit_utf8_filename_is_kept():
    msg = raw_mail(b64_part(PDF, b'; filename="' + NAME.encode("utf-8") + b'"'))
    assert [a.filename for a in parse_message(msg).attachments] == [NAME]


def rfc2231_continuations(name: str, charset: str, chunk: int) -> bytes:
    octets = name.encode(charset)
    pieces = [octets[i:i + chunk] for i in range(0, len(octets), chunk)]
    out = b""
    for i, piece in enumerate(pieces):
        prefix = f"{charset}''" if i == 0 else ""
        out += f";\r\n filename*{i}*={prefix}{urllib.parse.quote(piece)}".encode()
    return out


@pytest.mark.parametrize("charset", ["gbk", "gb2312", "utf-8"])
def test_rfc2231_continuations_split_mid_character(charset):
    name = "发票.pdf" if charset == "gb2312" else NAME
    # 3-byte pieces cut every 2-byte GBK character in half at some point.
    msg = raw_mail(b64_part(PDF, rfc2231_continuations(name, charset, 3)))
    assert [a.filename for a in parse_message(msg).attachments] == [name]


def test_rfc2231_single_value_and_content_type_name():
    quoted = urllib.parse.quote(NAME.encode("gbk")).encode()
    msg = raw_mail(
        b64_part(PDF, b"; filename*=gbk''" + quoted),
        b"Content-Type: application/pdf; name*=gbk''" + quoted
        + b"\r\nContent-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(PDF),
    )
    assert [a.filename for a in parse_message(msg).attachments] == [NAME, NAME]


def test_extended_filename_wins_over_the_plain_fallback():
    quoted = urllib.parse.quote(NAME.encode("gbk")).encode()
    for params in (b'; filename="fapiao.pdf"; filename*=gbk\'\'' + quoted,
                   b"; filename*=gbk''" + quoted + b'; filename="fapiao.pdf"'):
        assert [a.filename for a in parse_message(raw_mail(b64_part(PDF, params))).attachments] == [NAME]


def test_mbox_from_line_and_bare_lf_line_ends_are_accepted():
    msg = b"From sender@example.cn Tue Mar  3 10:15:00 2026\n" + raw_mail(
        b64_part(PDF, b'; filename="a.pdf"')).replace(b"\r\n", b"\n")
    parsed = parse_message(msg)
    assert [a.filename for a in parsed.attachments] == ["a.pdf"]
    assert parsed.message_id == "<m1@example.cn>"


@pytest.mark.parametrize("charset", ["gb18030", "gbk", "gb2312", "utf-8"])
def test_rfc2047_encoded_word_names(charset):
    name = "发票.pdf" if charset == "gb2312" else NAME
    word = f"=?{charset}?B?{base64.b64encode(name.encode(charset if charset != 'gb2312' else 'gbk')).decode()}?="
    msg = raw_mail(b64_part(PDF, f'; filename="{word}"'.encode(), b'application/pdf; name="' + word.encode() + b'"'))
    assert [a.filename for a in parse_message(msg).attachments] == [name]


def test_rfc2047_split_into_several_words_and_q_encoding():
    first = base64.b64encode("电子发票".encode("gb18030")).decode()
    second = base64.b64encode("（普通）.pdf".encode("gb18030")).decode()
    q_word = "=?utf-8?Q?" + "".join(f"={b:02X}" for b in "发票".encode()) + "?="
    msg = raw_mail(
        b64_part(PDF, f'; filename="=?gb18030?B?{first}?=\r\n =?gb18030?B?{second}?="'.encode()),
        b64_part(PDF, f'; filename="{q_word}.pdf"'.encode()),
    )
    assert [a.filename for a in parse_message(msg).attachments] == ["电子发票（普通）.pdf", "发票.pdf"]


def test_names_from_the_email_package_default_policy_round_trip():
    em = EmailMessage()
    em["From"] = "张三 <zhang@example.cn>"
    em["Subject"] = "三月发票"
    em["Message-ID"] = "<abc@example.cn>"
    em["Date"] = "Tue, 03 Mar 2026 10:15:00 +0800"
    em.set_content("见附件")
    em.add_attachment(PDF, maintype="application", subtype="pdf", filename=NAME)
    em.add_attachment(XML, maintype="text", subtype="xml", filename="数电发票.xml")
    parsed = parse_message(em.as_bytes())
    assert [(a.filename, a.media_type) for a in parsed.attachments] == [
        (NAME, "application/pdf"), ("数电发票.xml", "application/xml")]
    assert parsed.from_ == "张三 <zhang@example.cn>"
    assert parsed.subject == "三月发票"
    assert parsed.message_id == "<abc@example.cn>"
    assert parsed.date == "2026-03-03T10:15:00+08:00"


def test_encoded_and_raw_gbk_headers_are_decoded():
    subj = base64.b64encode("增值税发票".encode("gb18030")).decode()
    msg = raw_mail(b64_part(PDF, b'; filename="a.pdf"'),
                   headers=f"X-Note: x\r\nSubject: =?gb18030?B?{subj}?=\r\n".encode())
    msg = msg.replace(b"Subject: invoices\r\n", b"")
    msg = msg.replace(b"From: sender@example.cn", b"From: " + "财务部".encode("gbk") + b" <cw@example.cn>")
    parsed = parse_message(msg)
    assert parsed.subject == "增值税发票"
    assert parsed.from_ == "财务部 <cw@example.cn>"


def test_path_traversal_and_absolute_names_are_reduced_to_a_safe_component():
    msg = raw_mail(
        b64_part(PDF, b'; filename="../../../etc/cron.d/evil.pdf"'),
        b64_part(PDF, b'; filename="C:\\\\Windows\\\\system32\\\\x.pdf"'),
        b64_part(PDF, b'; filename="/abs/path.pdf"'),
        b64_part(PDF, b'; filename=".."'),
        b64_part(PDF, b'; filename*=utf-8\'\'..%2F..%2Fup.pdf'),
    )
    names = [a.filename for a in parse_message(msg).attachments]
    assert names == ["evil.pdf", "x.pdf", "path.pdf", "attachment-4.pdf", "up.pdf"]
    assert all("/" not in n and "\\" not in n and not n.startswith(".") for n in names)


def test_header_injection_in_the_filename_is_neutralised():
    crlf_word = "=?utf-8?Q?inv=0D=0ABcc:_evil@x.cn=0D=0A.pdf?="
    msg = raw_mail(
        b64_part(PDF, f'; filename="{crlf_word}"'.encode()),
        b64_part(PDF, b"; filename*=utf-8''inv%0D%0AX-Evil%3A%201%00.pdf"),
        b64_part(PDF, b'; filename="inv\r\n\tBcc: evil@x.cn.pdf"'),  # folded: stays one header
    )
    parsed = parse_message(msg)
    assert [a.filename for a in parsed.attachments] == [
        "inv__Bcc_ evil@x.cn__.pdf", "inv__X-Evil_ 1_.pdf", "inv_Bcc_ evil@x.cn.pdf"]
    assert parsed.refusals == []


def test_raw_crlf_in_a_filename_cannot_smuggle_a_header():
    # A raw CRLF ends the header; the parser starts the body at the first
    # line that is not a header, so the part becomes unreadable, not renamed.
    msg = raw_mail(
        b"Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"a\r\nBcc: evil@x.cn\r\n"
        b".pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(PDF),
    )
    parsed = parse_message(msg)
    assert parsed.attachments == []
    assert [(r.filename, r.reason) for r in parsed.refusals] == [("a", "unsupported-format")]


def test_long_names_are_cut_to_200_utf8_bytes_keeping_the_extension():
    long_name = "发" * 150 + ".pdf"
    msg = raw_mail(b64_part(PDF, f'; filename*=utf-8\'\'{urllib.parse.quote(long_name)}'.encode()))
    name = parse_message(msg).attachments[0].filename
    assert len(name.encode()) <= 200
    assert name.endswith(".pdf") and name.startswith("发发")


def test_sanitise_filename_directly():
    assert sanitise_filename("a\x1b[31m.pdf") == "a_[31m.pdf"
    assert sanitise_filename("  ..hidden.pdf") == "hidden.pdf"
    assert sanitise_filename("a<b>|c?.pdf") == "a_b__c_.pdf"
    assert sanitise_filename(None, "jpeg", 7) == "attachment-7.jpg"
    assert sanitise_filename("x\u202efdp.exe") == "x_fdp.exe"


# --- what is taken ---------------------------------------------------------------

def test_formats_are_judged_by_content_not_name():
    msg = raw_mail(
        b64_part(PDF, b'; filename="scan.dat"'),
        b64_part(b"hello, not a pdf at all", b'; filename="invoice.pdf"', b"application/pdf"),
        b64_part(XML, b""),  # no name at all
    )
    parsed = parse_message(msg)
    assert [(a.filename, a.media_type) for a in parsed.attachments] == [
        ("scan.dat", "application/pdf"), ("attachment-3.xml", "application/xml")]
    assert [(r.filename, r.reason) for r in parsed.refusals] == [("invoice.pdf", "unsupported-format")]


def test_small_inline_images_are_refused_and_big_images_taken():
    logo = small_png()
    photo = big_png()
    msg = raw_mail(
        text_body(),
        b"Content-Type: image/png\r\nContent-ID: <logo>\r\nContent-Disposition: inline\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(logo),
        b64_part(photo, b'; filename="photo.png"', b"image/png"),
    )
    parsed = parse_message(msg)
    assert [a.filename for a in parsed.attachments] == ["photo.png"]
    assert [r.reason for r in parsed.refusals] == ["small-image"]
    relaxed = parse_message(msg, MailLimits(min_image_bytes=10))
    assert len(relaxed.attachments) == 2


def test_zip_attachment_is_expanded_and_unsafe_members_refused():
    archive = make_zip({
        "发票/a.pdf": PDF,
        "b.xml": XML,
        "readme.txt": b"just text",
        "../../escape.pdf": PDF,
        "inner.zip": make_zip({"c.pdf": PDF}),
    })
    msg = raw_mail(text_body(), b64_part(archive, b'; filename="invoices.zip"', b"application/zip"))
    parsed = parse_message(msg)
    got = [(a.filename, a.from_zip, a.media_type) for a in parsed.attachments]
    assert got == [("a.pdf", "invoices.zip", "application/pdf"),
                   ("b.xml", "invoices.zip", "application/xml"),
                   ("c.pdf", "invoices.zip/inner.zip", "application/pdf")]
    reasons = {(r.filename, r.reason) for r in parsed.refusals}
    assert reasons == {("invoices.zip/../../escape.pdf", "unsafe-name"),
                       ("invoices.zip/readme.txt", "unsupported-format")}


def test_zip_bomb_and_deep_nesting_are_refused_with_the_zip_reason():
    bomb = make_zip({"x.xml": b"\0" * (4 * 1024 * 1024)})
    deep = make_zip({"l2.zip": make_zip({"l3.zip": make_zip({"x.pdf": PDF})})})
    msg = raw_mail(b64_part(bomb, b'; filename="bomb.zip"'), b64_part(deep, b'; filename="deep.zip"'))
    parsed = parse_message(msg)
    assert parsed.attachments == []
    assert [(r.filename, r.reason) for r in parsed.refusals] == [
        ("bomb.zip", "zip-limit-exceeded"), ("deep.zip/l2.zip/l3.zip", "zip-limit-exceeded")]


def test_ofd_is_taken_whole_not_expanded():
    ofd = make_zip({"OFD.xml": b"<ofd:OFD/>", "Doc_0/Document.xml": b"<d/>"})
    parsed = parse_message(raw_mail(b64_part(ofd, b'; filename="inv.ofd"')))
    assert [(a.filename, a.media_type, a.from_zip) for a in parsed.attachments] == [
        ("inv.ofd", "application/ofd", None)]


def test_zero_byte_attachment_is_refused():
    msg = raw_mail(b64_part(b"", b'; filename="empty.pdf"'), b64_part(PDF, b'; filename="ok.pdf"'))
    parsed = parse_message(msg)
    assert [a.filename for a in parsed.attachments] == ["ok.pdf"]
    assert [(r.filename, r.reason) for r in parsed.refusals] == [("empty.pdf", "empty")]


def test_a_thousand_attachments_hit_the_count_limit():
    parts = [b64_part(PDF, f'; filename="{i:04}.pdf"'.encode()) for i in range(1000)]
    parsed = parse_message(raw_mail(*parts))
    assert len(parsed.attachments) == 50
    assert parsed.attachments[-1].filename == "0049.pdf"
    assert len(parsed.refusals) == 950
    assert {r.reason for r in parsed.refusals} == {"too-many-attachments"}
    assert parsed.refusals[0].filename == "0050.pdf"


def test_limits_come_from_the_config_mail_section():
    limits = MailLimits.from_config({"min_inline_image_kb": 5, "max_attachments": 3, "max_message_mb": 2})
    assert (limits.min_image_bytes, limits.max_attachments, limits.max_message_bytes) == (
        5 * 1024, 3, 2 * 1024 * 1024)
    assert MailLimits.from_config({}) == MailLimits()


def test_size_limits_per_attachment_and_per_message():
    limits = MailLimits(max_attachment_bytes=len(PDF) + 10, max_total_bytes=2 * len(PDF))
    msg = raw_mail(
        b64_part(PDF + b"x" * 100, b'; filename="big.pdf"'),
        b64_part(PDF, b'; filename="1.pdf"'),
        b64_part(PDF, b'; filename="2.pdf"'),
        b64_part(PDF, b'; filename="3.pdf"'),
    )
    parsed = parse_message(msg, limits)
    assert [a.filename for a in parsed.attachments] == ["1.pdf", "2.pdf"]
    assert [(r.filename, r.reason) for r in parsed.refusals] == [
        ("big.pdf", "too-large"), ("3.pdf", "message-size-limit")]
    with pytest.raises(ExtractError) as exc:
        parse_message(msg, MailLimits(max_message_bytes=100))
    assert exc.value.reason == "limit-exceeded"


def test_nested_rfc822_is_read_as_deep_as_the_limit():
    inner = raw_mail(b64_part(PDF, b'; filename="inner.pdf"'), boundary="in1").replace(b"<m1@", b"<m2@")
    deepest = raw_mail(b64_part(PDF, b'; filename="deep.pdf"'), boundary="in3")
    deeper = raw_mail(b"Content-Type: message/rfc822\r\n\r\n" + deepest, boundary="in2")
    msg = raw_mail(
        b"Content-Type: message/rfc822\r\nContent-Disposition: attachment; filename=\"fwd.eml\"\r\n\r\n" + inner,
        b"Content-Type: message/rfc822\r\n\r\n" + deeper,
    )
    parsed = parse_message(msg, MailLimits(max_nested_messages=1))
    assert parsed.message_id == "<m1@example.cn>"
    assert [a.filename for a in parsed.attachments] == ["inner.pdf"]
    assert [r.reason for r in parsed.refusals] == ["nested-too-deep"]
    # The default reads a forward of a forward.
    assert [a.filename for a in parse_message(msg).attachments] == ["inner.pdf", "deep.pdf"]


def test_base64_encoded_rfc822_attachment_is_parsed():
    inner = raw_mail(b64_part(PDF, b'; filename="inner.pdf"'), boundary="inner")
    msg = raw_mail(b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                   + base64.encodebytes(inner))
    assert [a.filename for a in parse_message(msg).attachments] == ["inner.pdf"]


# --- broken mail ----------------------------------------------------------------------

def test_base64_garbage_is_refused_not_raised():
    msg = raw_mail(
        b"Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"g.pdf\"\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n!!!@@@###$$$ not base64 at all \xff\xfe ====\r\n",
        b64_part(PDF, b'; filename="ok.pdf"'),
    )
    parsed = parse_message(msg)
    assert [a.filename for a in parsed.attachments] == ["ok.pdf"]
    assert [(r.filename, r.reason) for r in parsed.refusals] in (
        [("g.pdf", "unsupported-format")], [("g.pdf", "empty")])


@pytest.mark.parametrize("raw", [
    b"",
    b"\r\n\r\n",
    b"not an email at all \x00\xff",
    b"Content-Type: multipart/mixed; boundary=\"X\"\r\n\r\n--X\r\nContent-Type: application/pdf\r\n\r\n%PDF-1.4",
    b"Content-Type: multipart/mixed\r\n\r\n--\r\n--\r\n",
    b"Content-Type: multipart/mixed; boundary=\r\n\r\n----\r\n",
    b"Content-Type: ;;;==\"\r\nContent-Disposition: attachment; filename*0*=x''%ZZ; filename*=\r\n\r\nabc",
    b"Content-Type: application/pdf\r\nContent-Disposition: attachment; filename*=bogus-charset''%E5%8F%91.pdf"
    b"\r\nContent-Transfer-Encoding: x-unknown\r\n\r\n%PDF-1.4",
    b"Content-Type: application/pdf; name=\"=?gb18030?B?!!!?=\"\r\nContent-Transfer-Encoding: "
    b"quoted-printable\r\n\r\n%PDF-1.4=ZZ=\r\n",
    b"From: =?utf-8?B?garbage?= <<<@@>>>\r\nDate: yesterday\r\nMessage-ID: \x01\x02\r\n\r\nbody",
    b"Content-Type: multipart/mixed; boundary=a\r\n\r\n" + b"--a\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n" * 300,
])
def test_malformed_mime_never_raises_anything_but_typed_errors(raw):
    try:
        parsed = parse_message(raw)
    except ExtractError:
        return
    for att in parsed.attachments:
        assert att.data and "/" not in att.filename


def test_truncated_pdf_part_without_closing_boundary_is_still_taken():
    raw = (b"Content-Type: multipart/mixed; boundary=\"X\"\r\n\r\n--X\r\nContent-Type: application/pdf\r\n"
           b"Content-Disposition: attachment; filename=\"cut.pdf\"\r\n\r\n%PDF-1.4 truncated")
    parsed = parse_message(raw)
    assert [(a.filename, a.data[:8]) for a in parsed.attachments] == [("cut.pdf", b"%PDF-1.4")]


def test_deeply_nested_multipart_is_bounded():
    depth = 200
    raw = b"".join(f"Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n".encode()
                   for i in range(depth))
    raw += b"Content-Type: application/pdf\r\n\r\n" + PDF
    parsed = parse_message(raw)
    assert parsed.attachments == []
    # None of them closes: said once, with the depth refused.
    assert [r.reason for r in parsed.refusals] == ["unclosed", "nested-too-deep"]
    assert parsed.unclosed


def test_non_bytes_input_is_a_typed_error():
    with pytest.raises(ExtractError):
        parse_message("a str")  # type: ignore[arg-type]


# --- fuzz -------------------------------------------------------------------------------

_HEADER_PIECES = [
    b"Content-Type: multipart/mixed; boundary=\"B\"", b"Content-Type: message/rfc822",
    b"Content-Type: application/pdf; name*0*=gbk''%B5; name*1*=%E7.pdf", b"Content-Type: image/png",
    b"Content-Disposition: attachment; filename=\"=?gb18030?B?tefX0w==?=\"",
    b"Content-Disposition: attachment; filename*=utf-8''..%2F%2E%2E%2Fx", b"Content-Disposition: inline",
    b"Content-Transfer-Encoding: base64", b"Content-Transfer-Encoding: quoted-printable",
    b"Content-Transfer-Encoding: x-uuencode", b"Subject: =?utf-8?Q?=E5=8F=91?=", b"Message-ID: <a@b>",
    b"Date: Mon, 32 Foo 99999 25:61:61 +9999", b"From: \"a\\\" <b@c>", b"--B", b"--B--", b"",
    b"JVBERi0xLjQK", b"%PDF-1.4", b"PK\x03\x04", b"UEsDBBQ=", b"\xb5\xe7\xd7\xd3", b"=?x?Q?=ZZ?=",
]


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.binary(max_size=600),
    st.lists(st.one_of(st.sampled_from(_HEADER_PIECES), st.binary(max_size=40)), max_size=30)
    .map(lambda pieces: b"\r\n".join(pieces)),
))
def test_fuzz_only_typed_errors_escape(data):
    try:
        parsed = parse_message(data, MailLimits(min_image_bytes=0))
    except AgentError:
        return
    for att in parsed.attachments:
        assert att.data
        assert att.filename and "/" not in att.filename and "\\" not in att.filename
        assert len(att.filename.encode()) <= 200
        assert not any(ord(c) < 32 for c in att.filename)
    for refusal in parsed.refusals:
        assert refusal.reason


# --- maildir --------------------------------------------------------------------------

def test_iter_maildir_yields_only_complete_regular_files_in_new(tmp_path: Path):
    for sub in ("new", "cur", "tmp"):
        (tmp_path / sub).mkdir()
    (tmp_path / "new" / "1700000001.M1.host").write_bytes(b"a")
    (tmp_path / "new" / "1700000000.M2.host").write_bytes(b"b")
    (tmp_path / "new" / ".hidden").write_bytes(b"c")
    (tmp_path / "new" / "subdir").mkdir()
    outside = tmp_path / "outside.eml"
    outside.write_bytes(b"x")
    (tmp_path / "new" / "link").symlink_to(outside)
    (tmp_path / "tmp" / "half-written").write_bytes(b"d")
    (tmp_path / "cur" / "old:2,S").write_bytes(b"e")
    got = [p.name for p in iter_maildir(tmp_path)]
    assert got == ["1700000000.M2.host", "1700000001.M1.host"]
    assert list(iter_maildir(tmp_path / "missing")) == []
    first = tmp_path / "new" / "1700000000.M2.host"
    assert maildir_cur_path(first) == tmp_path / "cur" / "1700000000.M2.host:2,"


def test_unlistable_maildir_is_a_capture_error(tmp_path: Path):
    # A name past NAME_MAX fails the listing even for root, unlike permissions.
    with pytest.raises(CaptureError):
        list(iter_maildir(tmp_path / ("x" * 300)))


def test_gbk_member_names_in_a_zip_from_windows_are_readable():
    placeholder = "N" * len("电子发票.pdf".encode("gbk"))
    archive = make_zip({placeholder: PDF}).replace(placeholder.encode(), "电子发票.pdf".encode("gbk"))
    parsed = parse_message(raw_mail(b64_part(archive, b'; filename="fp.zip"')))
    assert [(a.filename, a.from_zip) for a in parsed.attachments] == [("电子发票.pdf", "fp.zip")]
