"""Outlook winmail.dat (TNEF) through a real daemon: mailed inside a message
and saved straight into the e-mail folder, the invoices in it read with their
fields; one cut short refused by name and kept. Ends with `audit ledger`."""

from __future__ import annotations

import hashlib
from email.message import EmailMessage

from tests.conftest import SAMPLES
from tests.e2e.daemon_harness import DaemonUnderTest
from tests.support.audit import assert_ledger_sound
from tests.support.tnef import Attached, tnef

PDF = (SAMPLES / "mxvc__invoice" / "发票.pdf").read_bytes()
PDF2 = (SAMPLES / "mxvc__invoice" / "发票2.pdf").read_bytes()
XML = (SAMPLES / "renoyuan__easyofd" / "original_invoice.xml").read_bytes()


def outlook_mail(winmail: bytes) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "龙滩酒店 <fp@hotel.example.cn>", "ap@example.cn", "住宿发票"
    msg["Message-ID"] = "<outlook-rtf-e2e@hotel.example.cn>"
    msg.set_content("附件是发票")
    msg.add_attachment(winmail, maintype="application", subtype="ms-tnef", filename="winmail.dat")
    return msg.as_bytes()


def test_winmail_dat_mailed_and_saved_into_the_mail_folder(daemon: DaemonUnderTest):
    mailed = tnef([Attached("住宿发票.pdf", PDF, title="ZSFP.PDF".encode()),
                   Attached(None, XML, title="数电发票.xml".encode("gbk"))])
    saved = tnef([Attached("电子发票.pdf", PDF2)])
    cut = tnef([Attached("坏的.pdf", PDF, title="坏的.pdf".encode("gbk"))])[:-500]
    daemon.start()
    (daemon.root / "mail" / "outlook.eml").write_bytes(outlook_mail(mailed))
    (daemon.root / "mail" / "winmail.dat").write_bytes(saved)
    (daemon.root / "mail" / "cut.dat").write_bytes(cut)
    daemon.wait_documents(3, settled=True)
    with daemon.ledger() as led:
        docs = {d.original_name: d for d in led.list_documents(limit=0)}
        sources = {name: led.sources(d.id)[0] for name, d in docs.items()}
        refusals = led.refusals(limit=-1)
    assert set(docs) == {"住宿发票.pdf", "数电发票.xml", "电子发票.pdf"}
    got = {name: (d.invoice_number, d.invoice_date, d.fields["total"]) for name, d in docs.items()}
    assert got == {"住宿发票.pdf": ("21895665", "2022-05-27", "600.00"),
                   "数电发票.xml": ("00008006", "2022-05-05", "25254.62"),
                   "电子发票.pdf": ("78837327", "2023-03-10", "250.00")}
    # Each arrival names the message (or the file) and the file inside.
    mailed_in = sources["住宿发票.pdf"].details
    assert (mailed_in["message_id"], mailed_in["subject"], mailed_in["from_zip"]) == (
        "<outlook-rtf-e2e@hotel.example.cn>", "住宿发票", "winmail.dat")
    assert sources["电子发票.pdf"].details["message_sha256"] == hashlib.sha256(saved).hexdigest()
    # The one cut short: refused by name, in English and Chinese, its bytes kept.
    [refusal] = refusals
    assert refusal["source"] == "e-mail cut.dat" and refusal["reason"].startswith("tnef-corrupt: ")
    assert "坏的.pdf" in refusal["reason"] and "截断或损坏" in refusal["reason"]
    assert refusal["sha256"] == hashlib.sha256(cut).hexdigest()
    assert_ledger_sound(daemon.config)
