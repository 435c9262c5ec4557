"""E-mail files whose content lay outside what the parser read (attack 18, F2 and
the minor mail findings): every message in the file is read or its remains
refused by name; nothing after a close delimiter vanishes.

Real .eml bytes, built with the stdlib's email and mailbox packages or by hand,
carrying real sample invoices."""

from __future__ import annotations

import base64
import datetime as dt
import mailbox
from email.message import EmailMessage

import pytest

from agent.config import WatchConfig
from agent.ledger import Ledger
from agent.mail import MailLimits, parse_message
from agent.vault import Vault
from service.intake import Intake

NOW = "2026-12-03T10:00:00.000000Z"
TODAY = dt.date(2026, 12, 3)


@pytest.fixture(scope="module")
def pdfs(samples_dir) -> dict[str, bytes]:
    folder = samples_dir / "mxvc__invoice"
    return {n: (folder / n).read_bytes() for n in ("发票.pdf", "发票2.pdf", "65.32.pdf", "深圳_962_907.55.pdf")}


@pytest.fixture(scope="module")
def invoice_xml(samples_dir) -> bytes:
    return (samples_dir / "kaihu8766-netizen__invoice-precheck/official-gd-special.xml").read_bytes()


def email_with(mid: str, subject: str, sender: str, files: dict[str, bytes]) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"], msg["Message-ID"] = sender, "ap@example.cn", subject, f"<{mid}>"
    msg["Date"] = "Mon, 2 Nov 2026 10:00:00 +0800"
    msg.set_content("请查收发票\nFrom the finance desk\n")  # an mbox quotes this line as >From
    for name, data in files.items():
        msg.add_attachment(data, maintype="application", subtype="pdf", filename=name)
    return msg


def hand_message(mid: str, boundary: str, name: str, data: bytes, envelope: bool = False) -> bytes:
    head = (b"From sender@x Mon Nov  2 10:00:00 2026\r\n" if envelope else b"") + (
        f"From: fin@example.cn\r\nMessage-ID: <{mid}>\r\nSubject: {mid}\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'
        f"--{boundary}\r\nContent-Type: text/plain\r\n\r\nhi\r\n").encode()
    return head + pdf_part(boundary, name, data) + f"--{boundary}--\r\n".encode()


def pdf_part(boundary: str, name: str, data: bytes) -> bytes:
    return (f"--{boundary}\r\nContent-Type: application/pdf\r\n"
            f'Content-Disposition: attachment; filename="{name}"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
            ).encode() + base64.encodebytes(data).replace(b"\n", b"\r\n") + b"\r\n"


# --- F2: several messages in one file ------------------------------------------------

def test_an_mbox_export_has_every_message_taken_each_with_its_own_headers(tmp_path, pdfs):
    box = mailbox.mbox(tmp_path / "export.mbox")
    box.add(email_with("m1@corp.cn", "三月发票", "财务部 <fin@corp.cn>", {"one.pdf": pdfs["发票.pdf"]}))
    box.add(email_with("m2@corp.cn", "四月发票", "财务部 <fin@corp.cn>", {"two.pdf": pdfs["发票2.pdf"]}))
    box.add(email_with("m3@corp.cn", "just text", "财务部 <fin@corp.cn>", {}))
    box.flush()
    data = (tmp_path / "export.mbox").read_bytes()
    assert data.startswith(b"From ") and b"\n>From the finance desk" in data  # a real mboxo file

    parsed = parse_message(data)

    assert [(a.filename, a.data) for a in parsed.attachments] == [
        ("one.pdf", pdfs["发票.pdf"]), ("two.pdf", pdfs["发票2.pdf"])]
    assert [(a.mail.message_id, a.mail.subject) for a in parsed.attachments] == [
        ("<m1@corp.cn>", "三月发票"), ("<m2@corp.cn>", "四月发票")]
    assert parsed.refusals == []
    assert parsed.messages == 3
    # One message's Message-ID or Subject is never shown as another's: only the shared sender stays.
    assert (parsed.message_id, parsed.subject, parsed.from_) == (None, None, "财务部 <fin@corp.cn>")


@pytest.mark.parametrize("envelope, between", [(True, b""), (False, b""), (False, b"\r\n\r\n")],
                         ids=["mbox-lines-no-blank", "concatenated", "concatenated-blank-lines"])
def test_messages_written_one_after_another_are_each_taken(pdfs, envelope, between):
    data = (hand_message("a@x", "A", "one.pdf", pdfs["发票.pdf"], envelope) + between
            + hand_message("b@x", "B", "two.pdf", pdfs["发票2.pdf"], envelope))
    parsed = parse_message(data)
    assert [(a.filename, a.data, a.mail.message_id) for a in parsed.attachments] == [
        ("one.pdf", pdfs["发票.pdf"], "<a@x>"), ("two.pdf", pdfs["发票2.pdf"], "<b@x>")]
    assert parsed.refusals == [] and parsed.messages == 2


def test_refusals_in_a_later_message_say_which_message(pdfs):
    second = hand_message("b@x", "B", "notes.pdf", b"not a pdf at all, just text", True)
    parsed = parse_message(hand_message("a@x", "A", "one.pdf", pdfs["发票.pdf"], True) + b"\n" + second)
    assert [a.filename for a in parsed.attachments] == ["one.pdf"]
    assert [(r.filename, r.reason) for r in parsed.refusals] == [("notes.pdf", "unsupported-format")]
    assert parsed.refusals[0].detail.startswith("message 2 of 2 in the file (<b@x>): ")


# --- F2: content after the close delimiter, or hidden in the preamble -----------------

def test_a_part_after_the_close_delimiter_is_refused_by_its_name(pdfs):
    data = (hand_message("e@x", "C", "three.pdf", pdfs["65.32.pdf"])
            + pdf_part("C", "after-close.pdf", pdfs["深圳_962_907.55.pdf"]) + b"--C--\r\n")
    parsed = parse_message(data)
    assert [a.filename for a in parsed.attachments] == ["three.pdf"]  # mail programs show only this one
    assert [(r.filename, r.reason) for r in parsed.refusals] == [("after-close.pdf", "trailing-content")]
    assert "after the close delimiter of multipart/mixed" in parsed.refusals[0].detail


def test_text_after_the_close_delimiter_is_refused_with_its_start_and_blank_lines_are_not(pdfs):
    base = hand_message("e@x", "C", "three.pdf", pdfs["65.32.pdf"])
    assert parse_message(base + b"\r\n\r\n  \r\n").refusals == []
    parsed = parse_message(base + b"\r\n-- \r\nlist footer: unsubscribe here\r\n")
    assert [a.filename for a in parsed.attachments] == ["three.pdf"]
    [refusal] = parsed.refusals
    assert (refusal.filename, refusal.reason) == ("(after multipart/mixed)", "trailing-content")
    assert "list footer: unsubscribe here" in refusal.detail


def test_a_part_hidden_in_the_preamble_is_refused_and_the_usual_note_is_not(pdfs):
    note = b"This is a multi-part message in MIME format.\r\n"
    hidden = (b'Content-Type: application/pdf; name="pre.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
              + base64.encodebytes(pdfs["发票2.pdf"]))
    for preamble, refused in ((note, []), (hidden, [("(before multipart/mixed)", "preamble-content")])):
        data = hand_message("p@x", "P", "three.pdf", pdfs["65.32.pdf"]).replace(
            b"\r\n\r\n--P\r\n", b"\r\n\r\n" + preamble + b"--P\r\n", 1)
        parsed = parse_message(data)
        assert [a.filename for a in parsed.attachments] == ["three.pdf"]
        assert [(r.filename, r.reason) for r in parsed.refusals] == refused


def test_a_message_after_a_forwarded_messages_close_delimiter_is_refused_not_taken(pdfs):
    # Only the file's own message may be followed by another: inside a
    # forward, what comes after the close delimiter is no message of the file.
    inner = (hand_message("in@x", "I", "inner.pdf", pdfs["发票.pdf"])
             + hand_message("smuggled@x", "S", "smuggled.pdf", pdfs["发票2.pdf"]))
    data = (b"From: a@x\r\nMessage-ID: <outer@x>\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="O"\r\n\r\n--O\r\nContent-Type: message/rfc822\r\n\r\n'
            + inner + b"\r\n--O--\r\n")
    parsed = parse_message(data)
    assert [a.filename for a in parsed.attachments] == ["inner.pdf"]
    assert [r.reason for r in parsed.refusals] == ["trailing-content"]
    assert parsed.messages == 1


def test_in_the_daemons_intake_nothing_after_a_close_delimiter_is_silent(tmp_path, pdfs):
    (tmp_path / "mail").mkdir()
    ledger, vault = Ledger(tmp_path / "ledger.sqlite3"), Vault(tmp_path / "vault")
    intake = Intake(ledger, vault, max_bytes=10 << 20, mail_limits=MailLimits(), actor="t")
    watch = WatchConfig(path=tmp_path / "mail", kind="email", after="keep")
    (watch.path / "a-mbox.eml").write_bytes(hand_message("m1@x", "A", "one.pdf", pdfs["发票.pdf"], True)
                                            + hand_message("m2@x", "B", "two.pdf", pdfs["发票2.pdf"], True))
    (watch.path / "b-epilogue.eml").write_bytes(
        hand_message("e@x", "C", "three.pdf", pdfs["65.32.pdf"])
        + pdf_part("C", "after-close.pdf", pdfs["深圳_962_907.55.pdf"]) + b"--C--\r\n")
    with intake.group(now=NOW, today=TODAY):
        for name in ("a-mbox.eml", "b-epilogue.eml"):
            intake.take(watch.path / name, watch, now=NOW, today=TODAY)
    assert {d.original_name for d in ledger.list_documents()} == {"one.pdf", "two.pdf", "three.pdf"}
    # Each document of the mbox names its own message, never the other's.
    own = {d.original_name: ledger.sources(d.id)[0].details["message_id"] for d in ledger.list_documents()}
    assert "m1@x" in own["one.pdf"] and "m2@x" in own["two.pdf"], own
    assert [(r["name"], r["reason"].split(":")[0]) for r in ledger.refusals()] == [
        ("after-close.pdf", "trailing-content")]


# --- the minor findings -------------------------------------------------------------

def test_a_file_name_only_the_stdlib_reads_is_used():
    # The first Content-Disposition names the file; a second one does not.
    # The stdlib reads the first; the raw fallback sees only the last.
    data = (b"From: a@x\r\nMessage-ID: <n@x>\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="N"\r\n\r\n--N\r\nContent-Type: application/pdf\r\n'
            b'Content-Disposition: attachment; filename="invoice-42.pdf"\r\nContent-Disposition: inline\r\n'
            b"\r\n%PDF-1.4\n%%EOF\n\r\n--N--\r\n")
    assert [a.filename for a in parse_message(data).attachments] == ["invoice-42.pdf"]


def forward(subject: str, body: bytes, name: bytes | None, boundary: str) -> bytes:
    disposition = b'Content-Disposition: attachment; filename="' + name + b'"\r\n' if name else b""
    return (f"From: a@x\r\nSubject: {subject}\r\nMessage-ID: <{boundary}@x>\r\nMIME-Version: 1.0\r\n"
            f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n--{boundary}\r\n'
            f"Content-Type: text/plain\r\n\r\nfw\r\n--{boundary}\r\nContent-Type: message/rfc822\r\n").encode() \
        + disposition + b"\r\n" + body + f"\r\n--{boundary}--\r\n".encode()


def test_a_forward_too_deep_is_refused_by_its_file_name_or_its_subject(pdfs):
    original = hand_message("orig@x", "I", "fwd2.pdf", pdfs["发票.pdf"])
    data = forward("Fwd: Fwd", forward("Fwd", original, None, "M1"), b"fwd.eml", "O1")
    one_deep = MailLimits(max_nested_messages=1)  # the bound is a setting ([mail] max_nested_messages)
    parsed = parse_message(data, one_deep)
    assert parsed.attachments == []
    assert [(r.filename, r.reason) for r in parsed.refusals] == [("message/rfc822 «orig@x»", "nested-too-deep")]
    deeper = forward("Fwd: Fwd: Fwd", forward("Fwd", data, b"fwd.eml", "M2"), None, "O2")
    assert [(r.filename, r.reason) for r in parse_message(deeper, one_deep).refusals] == [
        ("fwd.eml", "nested-too-deep")]
    # By default three levels are read: the forward of a forward.
    assert [a.data for a in parse_message(data).attachments] == [pdfs["发票.pdf"]]


def test_an_eml_sent_as_octet_stream_is_read_as_a_message(pdfs):
    inner = email_with("orig@x", "原始邮件", "a@x", {"in-octet.pdf": pdfs["发票2.pdf"]}).as_bytes()
    outer = email_with("outer@x", "Fwd", "b@x", {})
    outer.add_attachment(inner, maintype="application", subtype="octet-stream", filename="orig.eml")
    outer.add_attachment(b"%PDF-1.4\n%%EOF\n", maintype="application", subtype="octet-stream",
                         filename="not-mail.eml")
    parsed = parse_message(outer.as_bytes())
    assert [(a.filename, a.data) for a in parsed.attachments] == [
        ("in-octet.pdf", pdfs["发票2.pdf"]), ("not-mail.eml", b"%PDF-1.4\n%%EOF\n")]
    assert parsed.refusals == []


def test_an_invoice_xml_sent_as_the_unnamed_text_body_is_taken(invoice_xml):
    msg = EmailMessage()
    msg["From"], msg["Subject"], msg["Message-ID"] = "a@x", "xml", "<x@x>"
    msg.set_content(invoice_xml, maintype="text", subtype="plain", cte="base64")
    del msg["Content-Disposition"]
    parsed = parse_message(msg.as_bytes())
    assert [(a.data, a.media_type) for a in parsed.attachments] == [(invoice_xml, "application/xml")]
    # Other XML, and ordinary text, stay the message's text.
    for body in ("<?xml version='1.0'?><note>hi</note>", "请查收发票"):
        plain = EmailMessage()
        plain["From"], plain["Message-ID"] = "a@x", "<t@x>"
        plain.set_content(body)
        assert parse_message(plain.as_bytes()).attachments == []
        assert parse_message(plain.as_bytes()).refusals == []


def test_a_display_name_decoding_to_an_address_cannot_pass_for_the_sender(pdfs):
    def word(text: str) -> bytes:
        return b"=?utf-8?B?" + base64.b64encode(text.encode()) + b"?="
    for raw, shown in ((word("Boss\u202e <ceo@corp>") + b" <evil@x>", '"Boss <ceo@corp>" <evil@x>'),
                       (b'"' + word("Boss <ceo@corp>") + b'" <evil@x>', '"Boss <ceo@corp>" <evil@x>'),
                       (word('A"B') + b" <q@x>", '"A\\"B" <q@x>'),
                       (word("财务部") + b" <fin@example.cn>", "财务部 <fin@example.cn>")):
        data = hand_message("s@x", "S", "one.pdf", pdfs["发票.pdf"]).replace(b"From: fin@example.cn", b"From: " + raw)
        assert parse_message(data).from_ == shown


def test_a_mail_with_cr_only_line_ends_is_read(pdfs):
    data = hand_message("cr@x", "Q", "inv.pdf", pdfs["深圳_962_907.55.pdf"]).replace(b"\r\n", b"\r")
    assert b"\n" not in data
    parsed = parse_message(data)
    assert (parsed.message_id, parsed.subject) == ("<cr@x>", "cr@x")
    assert [(a.filename, a.data) for a in parsed.attachments] == [("inv.pdf", pdfs["深圳_962_907.55.pdf"])]
    assert parsed.refusals == []


def test_a_file_whose_later_message_is_cut_off_says_so(pdfs):
    # An mbox being written: its first message whole, the second cut
    # between parts. Nothing of the second says a part is missing.
    whole = hand_message("m1@x", "A", "one.pdf", pdfs["发票.pdf"], True)
    cut = hand_message("m2@x", "B", "two.pdf", pdfs["发票2.pdf"], True)
    cut = cut[:cut.rindex(b"--")].rstrip(b"-\r\n") + b"\r\n"   # its close delimiter not written yet
    parsed = parse_message(whole + cut)
    assert parsed.messages == 2 and parsed.unclosed
    assert [r.reason for r in parsed.refusals] == ["unclosed"]
    assert not parse_message(whole).unclosed


def test_a_raw_from_with_two_bare_addresses_says_the_sender_cannot_be_told():
    # Raw 8-bit, no quotes: "老板 <ceo@corp.cn>" reads as the sender to a person.
    data = ("From: 老板 <ceo@corp.cn> <evil@x.cn>\r\nMessage-ID: <two@x>\r\nSubject: s\r\n\r\nhi\r\n").encode()
    assert parse_message(data).from_ == ("老板 <ceo@corp.cn> <evil@x.cn> (several addresses in From: "
                                         "the sender cannot be told)")
    quoted = b'From: "Boss <ceo@corp>" <evil@x>\r\nMessage-ID: <q@x>\r\n\r\nhi\r\n'
    assert parse_message(quoted).from_ == '"Boss <ceo@corp>" <evil@x>'


def test_an_unquoted_from_line_in_a_text_body_does_not_split_the_message(pdfs):
    # A client that does not quote body lines: "From now on ..." after a
    # blank line, then a line that looks like a header ("https:..."). It is
    # the text of the one message; its PDF must not become the "body" of a
    # phantom second message.
    body = b"hi\r\n\r\nFrom now on please use our new portal:\r\nhttps://portal.example.cn/upload\r\n"
    data = (b"From sender@x Mon Nov  2 10:00:00 2026\r\nFrom: fin@example.cn\r\nMessage-ID: <one@x>\r\n"
            b'Subject: s\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="Q"\r\n\r\n'
            b"--Q\r\nContent-Type: text/plain\r\n\r\n" + body + pdf_part("Q", "inv.pdf", pdfs["发票.pdf"])
            + b"--Q--\r\n")
    parsed = parse_message(data)
    assert parsed.messages == 1 and [a.filename for a in parsed.attachments] == ["inv.pdf"]
