"""The e-mail drop folder as real mail clients and an attacker write it
(attack M2): an mbox of many messages, a uuencoded invoice in a message's
text, a forward of a forward. Real samples, real SQLite, the daemon's own
Intake."""

from __future__ import annotations

import base64
import binascii
import datetime as dt

import pytest

from agent.config import WatchConfig
from agent.ledger import Ledger
from agent.mail import MailLimits, parse_message
from agent.vault import Vault
from service.intake import Intake

NOW = "2026-12-06T10:00:00.000000Z"
TODAY = dt.date(2026, 12, 6)


@pytest.fixture(scope="module")
def pdfs(samples_dir) -> dict[str, bytes]:
    folder = samples_dir / "mxvc__invoice"
    return {n: (folder / n).read_bytes() for n in ("发票.pdf", "发票2.pdf", "65.32.pdf")}


def mbox_message(number: int, name: str, data: bytes) -> bytes:
    """One message of an mbox as fetchmail or Thunderbird writes it (LF line ends)."""
    return (f"From fin@corp.cn Mon Nov  2 10:00:{number % 60:02d} 2026\n"
            f"From: fin@corp.cn\nMessage-ID: <m{number}@corp.cn>\nSubject: invoice {number}\n"
            'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="B"\n\n'
            "--B\nContent-Type: text/plain\n\nsee attached\n"
            f'--B\nContent-Type: application/pdf\nContent-Disposition: attachment; filename="{name}"\n'
            "Content-Transfer-Encoding: base64\n\n").encode() + base64.encodebytes(data) + b"--B--\n\n"


def filler_pdf(number: int) -> bytes:
    return b"%PDF-1.4\n%" + f"filler {number} ".encode() * 20 + b"\n%%EOF\n"


# --- an mbox of many messages: limits per message, not per file ---------------------

def test_every_message_of_a_large_mbox_has_its_invoice_taken(pdfs):
    # 120 messages of one invoice each: the 50-attachment limit is one
    # message's; it once counted the whole file, refusing messages 51..120
    # as "limit is 50 per message" and the real invoice last in the file.
    data = b"".join(mbox_message(n, f"inv{n}.pdf", filler_pdf(n)) for n in range(119)) \
        + mbox_message(119, "发票.pdf", pdfs["发票.pdf"])
    parsed = parse_message(data)
    assert parsed.refusals == []
    assert parsed.messages == 120 and len(parsed.attachments) == 120
    assert (parsed.attachments[-1].filename, parsed.attachments[-1].data) == ("发票.pdf", pdfs["发票.pdf"])
    assert parsed.attachments[-1].mail.message_id == "<m119@corp.cn>"


def test_one_message_is_still_held_to_its_attachment_limit_within_an_mbox():
    crowded = (b"From x@y Mon Nov  2 10:00:00 2026\nFrom: x@y\nMessage-ID: <c@x>\n"
               b'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="B"\n\n'
               + b"".join(f'--B\nContent-Type: application/pdf\nContent-Disposition: attachment; '
                          f'filename="p{i}.pdf"\n\n'.encode() + filler_pdf(i) + b"\n" for i in range(4))
               + b"--B--\n\n")
    parsed = parse_message(crowded + mbox_message(1, "after.pdf", filler_pdf(99)), MailLimits(max_attachments=3))
    assert [a.filename for a in parsed.attachments] == ["p0.pdf", "p1.pdf", "p2.pdf", "after.pdf"]
    assert [(r.filename, r.reason) for r in parsed.refusals] == [("p3.pdf", "too-many-attachments")]


def test_messages_past_the_files_part_budget_are_refused_by_number():
    data = b"".join(mbox_message(n, f"inv{n}.pdf", filler_pdf(n)) for n in range(10))
    parsed = parse_message(data, MailLimits(max_file_parts=9))  # three parts a message
    assert [a.filename for a in parsed.attachments] == ["inv0.pdf", "inv1.pdf", "inv2.pdf"]
    [refusal] = parsed.refusals
    assert (refusal.filename, refusal.reason) == ("message-4", "too-many-parts")
    assert refusal.detail.startswith("messages 4 to 10 of the file not read")


def test_the_daemons_intake_takes_every_invoice_of_a_large_mbox(tmp_path, pdfs):
    (tmp_path / "mail").mkdir()
    data = b"".join(mbox_message(n, f"inv{n}.pdf", filler_pdf(n)) for n in range(79)) \
        + mbox_message(79, "发票.pdf", pdfs["发票.pdf"])
    (tmp_path / "mail" / "inbox.mbox").write_bytes(data)
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        intake = Intake(ledger, Vault(tmp_path / "vault"), max_bytes=10 << 20, mail_limits=MailLimits(),
                        actor="t")
        watch = WatchConfig(path=tmp_path / "mail", kind="email", after="keep")
        with intake.group(now=NOW, today=TODAY):
            intake.take(watch.path / "inbox.mbox", watch, now=NOW, today=TODAY)
        names = {d.original_name for d in ledger.list_documents(limit=0)}
        assert len(names) == 80 and "发票.pdf" in names
        assert ledger.refusals() == []


# --- a file uuencoded into the message's text ----------------------------------------

def uuencoded(name: str, data: bytes) -> bytes:
    """`data` as uuencode writes it (45 bytes a line, a length-0 line, `end`)."""
    lines = [binascii.b2a_uu(data[i:i + 45]) for i in range(0, len(data), 45)]
    return f"begin 644 {name}\n".encode("gbk") + b"".join(lines) + b"`\nend\n"


def uu_message(body: bytes) -> bytes:
    return (b"From: scanner@corp.cn\r\nMessage-ID: <uu@corp.cn>\r\nSubject: scan\r\n"
            b"Content-Type: text/plain; charset=gbk\r\n\r\n" + body)


def test_an_invoice_uuencoded_in_the_text_is_taken_and_one_cut_off_is_refused(pdfs):
    text = "请查收 begin 600 units of work\n\n".encode("gbk")  # prose: no file
    parsed = parse_message(uu_message(text + uuencoded("发票.pdf", pdfs["发票.pdf"]) + b"\nthanks\n"))
    assert [(a.filename, a.data) for a in parsed.attachments] == [("发票.pdf", pdfs["发票.pdf"])]
    assert parsed.refusals == []

    cut = uuencoded("65.32.pdf", pdfs["65.32.pdf"])[:5000]
    parsed = parse_message(uu_message(text + cut))
    assert parsed.attachments == []
    assert [(r.filename, r.reason) for r in parsed.refusals] == [("65.32.pdf", "undecodable")]


def test_the_daemons_intake_makes_a_document_of_a_uuencoded_invoice(tmp_path, pdfs):
    # It was taken as a message without attachments: refused "no-attachment".
    (tmp_path / "mail").mkdir()
    part = (b"--U\r\nContent-Type: text/plain\r\n\r\nsee below\r\n\r\n"
            + uuencoded("65.32.pdf", pdfs["65.32.pdf"]).replace(b"\n", b"\r\n") + b"--U--\r\n")
    (tmp_path / "mail" / "old-mailer.eml").write_bytes(
        b"From: a@corp.cn\r\nMessage-ID: <old@corp.cn>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="U"\r\n\r\n' + part)
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        intake = Intake(ledger, Vault(tmp_path / "vault"), max_bytes=10 << 20, mail_limits=MailLimits(),
                        actor="t")
        watch = WatchConfig(path=tmp_path / "mail", kind="email", after="keep")
        with intake.group(now=NOW, today=TODAY):
            intake.take(watch.path / "old-mailer.eml", watch, now=NOW, today=TODAY)
        [doc] = ledger.list_documents(limit=0)
        assert doc.original_name == "65.32.pdf"
        assert ledger.refusals() == []


# --- a forward of a forward ----------------------------------------------------------

def forwarded(subject: str, inner: bytes, boundary: str) -> bytes:
    """`inner` forwarded as an attachment (message/rfc822), as Outlook and Foxmail do."""
    return (f"From: fwd@corp.cn\r\nSubject: {subject}\r\nMessage-ID: <{boundary}@corp.cn>\r\nMIME-Version: 1.0\r\n"
            f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n--{boundary}\r\n'
            f"Content-Type: text/plain\r\n\r\nFYI\r\n--{boundary}\r\nContent-Type: message/rfc822\r\n\r\n"
            ).encode() + inner + f"\r\n--{boundary}--\r\n".encode()


def test_an_invoice_forwarded_three_times_is_taken_and_a_fourth_level_refused(pdfs):
    # The supplier's mail, forwarded by the employee, by the manager, and
    # by the assistant to the finance mailbox. One level was read by
    # default: the invoice was refused nested-too-deep at the second.
    supplier = (b"From: seller@supplier.cn\r\nSubject: invoice\r\nMessage-ID: <s@supplier.cn>\r\n"
                b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="S"\r\n\r\n'
                b'--S\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename="inv.pdf"\r\n'
                b"Content-Transfer-Encoding: base64\r\n\r\n"
                + base64.encodebytes(pdfs["发票2.pdf"]).replace(b"\n", b"\r\n") + b"--S--\r\n")
    three = forwarded("Fwd: Fwd: Fwd", forwarded("Fwd: Fwd", forwarded("Fwd", supplier, "E"), "M"), "A")
    parsed = parse_message(three)
    assert [(a.filename, a.data) for a in parsed.attachments] == [("inv.pdf", pdfs["发票2.pdf"])]
    assert parsed.refusals == []
    four = parse_message(forwarded("Fwd x4", three, "F"))
    assert four.attachments == [] and [r.reason for r in four.refusals] == ["nested-too-deep"]
    # The depth is the operator's: [mail] max_nested_messages.
    assert MailLimits.from_config({"max_nested_messages": 4}).max_nested_messages == 4
