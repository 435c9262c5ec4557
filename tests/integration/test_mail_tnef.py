"""An Outlook winmail.dat (TNEF) in the e-mail drop: its invoices are read.

Real TNEF streams (tests/support/tnef.py) holding real sample invoices, in a
saved .eml given to the real `ingest` (captured, read and judged: the
fields), and saved straight into an e-mail folder taken by the daemon's own
Intake with real SQLite and vault. Before, the first was refused
"unsupported-format: an Outlook TNEF file" and the second named, not read."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from email.message import EmailMessage

from agent.config import WatchConfig, load_config
from agent.ledger import Ledger
from agent.mail import MailLimits
from agent.vault import Vault
from service.intake import Intake
from tests.conftest import SAMPLES
from tests.support.audit import assert_ledger_sound
from tests.support.cli import default_config, run
from tests.support.tnef import Attached, tnef

NOW = "2026-12-06T10:00:00.000000Z"
TODAY = dt.date(2026, 12, 6)
PDF = (SAMPLES / "mxvc__invoice" / "发票.pdf").read_bytes()
XML = (SAMPLES / "renoyuan__easyofd" / "original_invoice.xml").read_bytes()


def outlook_mail(winmail: bytes) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "龙滩酒店 <fp@hotel.example.cn>", "ap@example.cn", "住宿发票"
    msg["Message-ID"] = "<outlook-rtf-1@hotel.example.cn>"
    msg.set_content("附件是发票")
    msg.add_attachment(winmail, maintype="application", subtype="ms-tnef", filename="winmail.dat")
    return msg.as_bytes()


def test_the_invoices_in_a_mailed_winmail_dat_are_read_with_their_fields(tmp_path):
    drop = tmp_path / "drop"
    drop.mkdir()
    cfg = default_config(tmp_path)
    winmail = tnef([Attached("住宿发票.pdf", PDF, title="ZSFP.PDF".encode()),
                    Attached(None, XML, title="数电发票.xml".encode("gbk"))])
    (drop / "saved.eml").write_bytes(outlook_mail(winmail))
    assert run(cfg, "ingest", str(drop)).exit_code == 0
    docs = {d["original_name"]: d for d in map(json.loads, run(cfg, "list", "--json").stdout.splitlines())}
    assert set(docs) == {"住宿发票.pdf", "数电发票.xml"}
    pdf, xml = docs["住宿发票.pdf"], docs["数电发票.xml"]
    assert (pdf["invoice_number"], pdf["invoice_date"], pdf["total"]) == ("21895665", "2022-05-27", "600.00")
    assert pdf["seller"] == "仁寿印象龙滩酒店有限公司"
    assert (xml["invoice_number"], xml["total"]) == ("00008006", "25254.62")
    # Its arrival names the message and the file in the winmail.dat; the
    # winmail.dat is no zip archive.
    shown = run(cfg, "show", str(pdf["id"])).stdout
    assert "e-mail from 龙滩酒店 <fp@hotel.example.cn>, subject: 住宿发票" in shown, shown
    assert "out of winmail.dat" in shown and "zip archive" not in shown, shown
    with Ledger(load_config(cfg).ledger_path) as ledger:
        [source] = ledger.sources(pdf["id"])
    assert source.details["message_id"] == "<outlook-rtf-1@hotel.example.cn>"
    assert source.details["from_zip"] == "winmail.dat"
    assert run(cfg, "refused", "--json").stdout == ""
    assert_ledger_sound(cfg)


def intake_of(tmp_path, ledger: Ledger) -> tuple[Intake, WatchConfig]:
    (tmp_path / "email").mkdir()
    intake = Intake(ledger, Vault(tmp_path / "vault"), max_bytes=10 << 20, mail_limits=MailLimits(), actor="t")
    return intake, WatchConfig(path=tmp_path / "email", kind="email", after="keep")


def take(intake: Intake, watch: WatchConfig, name: str, data: bytes) -> None:
    (watch.path / name).write_bytes(data)
    with intake.group(now=NOW, today=TODAY):
        intake.take(watch.path / name, watch, now=NOW, today=TODAY)


def test_a_winmail_dat_saved_into_the_mail_folder_gives_its_files(tmp_path):
    # Outlook's "save attachment" of the winmail.dat itself: its PDF's first
    # bytes within the file's first KiB made it "a PDF" before, taken as one
    # file whose other attachments were never looked at.
    winmail = tnef([Attached("住宿发票.pdf", PDF), Attached("数电发票.xml", XML)])
    assert b"%PDF-" in winmail[:1024]
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        intake, watch = intake_of(tmp_path, ledger)
        take(intake, watch, "winmail.dat", winmail)
        docs = {d.original_name: d for d in ledger.list_documents(limit=0)}
        sources = {name: ledger.sources(d.id) for name, d in docs.items()}
        assert ledger.refusals(limit=-1) == []
    vault = Vault(tmp_path / "vault")
    assert set(docs) == {"住宿发票.pdf", "数电发票.xml"}
    assert vault.read(docs["住宿发票.pdf"].sha256) == PDF and vault.read(docs["数电发票.xml"].sha256) == XML
    sha = hashlib.sha256(winmail).hexdigest()
    for [source] in sources.values():
        # The arrival names the file it came out of (its bytes kept in the vault).
        assert source.source_kind == "email" and source.details["message_sha256"] == sha
        assert source.details["from_zip"] == "winmail.dat"
    assert vault.read(sha) == winmail


def test_a_saved_winmail_dat_given_to_ingest_gives_its_files(tmp_path):
    # As an .eml given to `ingest` is read as the mail folder reads it.
    drop = tmp_path / "drop"
    drop.mkdir()
    cfg = default_config(tmp_path)
    (drop / "winmail.dat").write_bytes(tnef([Attached("住宿发票.pdf", PDF), Attached("数电发票.xml", XML)]))
    assert run(cfg, "ingest", str(drop)).exit_code == 0
    docs = {d["original_name"]: d for d in map(json.loads, run(cfg, "list", "--json").stdout.splitlines())}
    assert set(docs) == {"住宿发票.pdf", "数电发票.xml"}
    assert docs["住宿发票.pdf"]["invoice_number"] == "21895665" and docs["数电发票.xml"]["total"] == "25254.62"
    assert run(cfg, "refused", "--json").stdout == ""
    assert_ledger_sound(cfg)


def test_a_winmail_dat_cut_short_in_the_mail_folder_is_named_and_kept(tmp_path):
    # (The title comes before the data, the long name after: the cut names it by its title.)
    winmail = tnef([Attached("住宿发票.pdf", PDF), Attached("数电发票.xml", XML, title="数电发票.xml".encode("gbk"))])
    cut = winmail[:winmail.index(XML) + 100]   # the XML's data cut off mid-way
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        intake, watch = intake_of(tmp_path, ledger)
        take(intake, watch, "winmail.dat", cut)
        names = [d.original_name for d in ledger.list_documents(limit=0)]
        [refusal] = ledger.refusals(limit=-1)
    assert names == ["住宿发票.pdf"]   # the file before the cut is whole: taken
    assert refusal["source"] == "e-mail winmail.dat" and refusal["reason"].startswith("tnef-corrupt: ")
    assert refusal["name"] == "winmail.dat"   # the file's own name, not "(the TNEF file)"
    assert "inside the attachment 数电发票.xml" in refusal["reason"] and "截断或损坏" in refusal["reason"]
    assert Vault(tmp_path / "vault").read(refusal["sha256"]) == cut


def test_a_mailed_winmail_dat_with_a_damaged_file_refuses_only_that_one(tmp_path):
    winmail = bytearray(tnef([Attached("住宿发票.pdf", PDF), Attached("数电发票.xml", XML)]))
    winmail[winmail.index(XML) + 50] ^= 0x01
    raw = outlook_mail(bytes(winmail))
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        intake, watch = intake_of(tmp_path, ledger)
        take(intake, watch, "in.eml", raw)
        names = [d.original_name for d in ledger.list_documents(limit=0)]
        [refusal] = ledger.refusals(limit=-1)
    assert names == ["住宿发票.pdf"]
    assert refusal["name"] == "winmail.dat/数电发票.xml" and refusal["reason"].startswith("tnef-corrupt: ")
    assert refusal["sha256"] == hashlib.sha256(raw).hexdigest()
