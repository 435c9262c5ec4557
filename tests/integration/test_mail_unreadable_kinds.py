"""What an attachment the agent cannot read is, named by its bytes: a RAR,
a 7z, an Outlook winmail.dat (TNEF), a gzip or tar, an old Word file, a
Word or Excel file in a zip, an HTML "view your invoice online" page. Each
was refused "content is unknown" (or "content is xml"), which told the
operator nothing. Real files made here, the daemon's own Intake, real
SQLite and vault, and the CLI's `refused`."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import zipfile
from email.message import EmailMessage

import pytest

from agent.config import WatchConfig
from agent.ledger import Ledger
from agent.mail import MailLimits
from agent.vault import Vault
from service.intake import Intake
from tests.support.cli import default_config, run

NOW = "2026-12-06T10:00:00.000000Z"
TODAY = dt.date(2026, 12, 6)


def zipped(names: list[str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name in names:
            zf.writestr(name, "<x/>")
    return buf.getvalue()


def tnef() -> bytes:
    """A winmail.dat's start: the TNEF signature, a key, then the
    attTnefVersion attribute (level 1, id 0x00089006, 4 bytes, checksum)."""
    return (b"\x78\x9f\x3e\x22" + b"\x01\x00" + b"\x01" + (0x00089006).to_bytes(4, "little")
            + (4).to_bytes(4, "little") + (0x00010000).to_bytes(4, "little") + b"\x01\x00")


def tar_of_a_list() -> bytes:
    # (Not of a PDF: sniff takes "%PDF-" in a file's first KiB for a PDF, as
    # PDF readers do, and a tar's first member starts at byte 512.)
    header = "清单.txt".encode().ljust(100, b"\0") + b"0000644\0".ljust(157 - 100, b"\0")
    return (header.ljust(257, b"\0") + b"ustar\x0000").ljust(512, b"\0") + b"1 invoice\n".ljust(512, b"\0")


# (attachment name, its bytes, the start of its refusal's reason). The names
# lie on purpose: what a file is comes from its bytes.
KINDS = [
    ("发票.pdf", b"Rar!\x1a\x07\x00" + bytes(40), "unsupported-format: a RAR archive: "),
    ("invoices.rar", b"Rar!\x1a\x07\x01\x00" + bytes(40), "unsupported-format: a RAR archive: "),
    ("invoices.7z", b"7z\xbc\xaf\x27\x1c" + bytes(40), "unsupported-format: a 7z archive: "),
    ("winmail.dat", tnef(), "unsupported-format: an Outlook TNEF file (winmail.dat)"),
    ("invoices.tgz", b"\x1f\x8b\x08\x00" + bytes(40), "unsupported-format: a gzip, bzip2, xz or tar archive"),
    ("invoices.tar", tar_of_a_list(), "unsupported-format: a gzip, bzip2, xz or tar archive"),
    ("发票.doc", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(40), "unsupported-format: a Word or Excel file"),
    ("发票.docx", zipped(["[Content_Types].xml", "_rels/.rels", "word/document.xml"]),
     "unsupported-format: a Word document: "),
    ("明细.xlsx", zipped(["xl/workbook.xml", "xl/worksheets/sheet1.xml"]), "unsupported-format: an Excel workbook: "),
    ("invoice.htm", b"<!DOCTYPE html>\n<html><body><a href='https://fp.example.cn/v?id=1'>view</a></body></html>",
     "unsupported-format: an HTML page"),
]


def message(files: list[tuple[str, bytes]]) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["Subject"], msg["Message-ID"] = "seller@example.cn", "发票", "<kinds@example.cn>"
    msg.set_content("附件是发票")
    for name, data in files:
        msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return msg.as_bytes()


def intake_of(tmp_path, ledger: Ledger, kind: str) -> tuple[Intake, WatchConfig]:
    (tmp_path / kind).mkdir()
    intake = Intake(ledger, Vault(tmp_path / "vault"), max_bytes=10 << 20, mail_limits=MailLimits(), actor="t")
    return intake, WatchConfig(path=tmp_path / kind, kind=kind, after="keep")


def test_each_unreadable_attachment_is_named_by_its_content_and_the_mail_is_kept(tmp_path):
    raw = message([(name, data) for name, data, _ in KINDS] + [("notes.bin", b"just notes")])
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        intake, watch = intake_of(tmp_path, ledger, "email")
        (watch.path / "in.eml").write_bytes(raw)
        with intake.group(now=NOW, today=TODAY):
            intake.take(watch.path / "in.eml", watch, now=NOW, today=TODAY)
        assert ledger.list_documents(limit=0) == []
        reasons = {r["name"]: r["reason"] for r in ledger.refusals(limit=-1)}
        shas = {r["sha256"] for r in ledger.refusals(limit=-1)}
    for name, _, start in KINDS:
        assert reasons[name].startswith(start), (name, reasons[name])
        assert " / " in reasons[name] and any("\u4e00" <= c <= "\u9fff" for c in reasons[name])  # and in Chinese
    assert "extract it" in reasons["invoices.rar"] and "请解压" in reasons["invoices.rar"]
    # Bytes of no kind named are still "unknown", never guessed.
    assert reasons["notes.bin"] == ("unsupported-format: content is unknown, not PDF, OFD, XML or an image: send "
                                    "the invoice's own PDF, OFD or XML / 内容不是 PDF、OFD、XML 或图片：请发送发票原件"
                                    "（PDF、OFD 或 XML）")
    # The original (the message, every refused attachment inside it) is in the vault, named by the refusals.
    sha = hashlib.sha256(raw).hexdigest()
    assert shas == {sha} and Vault(tmp_path / "vault").read(sha) == raw


@pytest.mark.parametrize("name,data,start", [KINDS[0], KINDS[3], KINDS[5]], ids=["rar", "tnef", "tar"])
def test_a_file_dropped_in_a_scanner_folder_is_named_too(tmp_path, name, data, start):
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        intake, watch = intake_of(tmp_path, ledger, "scanner")
        (watch.path / name).write_bytes(data)
        with intake.group(now=NOW, today=TODAY):
            intake.take(watch.path / name, watch, now=NOW, today=TODAY)
        [refusal] = ledger.refusals(limit=-1)
    assert refusal["reason"].startswith(start), refusal["reason"]
    assert Vault(tmp_path / "vault").read(refusal["sha256"]) == data


def test_refused_lists_the_named_reason(tmp_path):
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "saved.eml").write_bytes(message([KINDS[2][:2]]))
    cfg = default_config(tmp_path)
    assert run(cfg, "ingest", str(drop)).exit_code == 0
    [row] = [json.loads(line) for line in run(cfg, "refused", "--json").stdout.splitlines()]
    assert row["name"] == "invoices.7z"
    assert row["reason"].startswith("unsupported-format: a 7z archive: the agent does not open 7z")
    assert "7z 压缩包" in row["reason"]
    assert "a 7z archive" in run(cfg, "refused").stdout


@pytest.mark.parametrize("name,data,start", [KINDS[1], KINDS[3]], ids=["rar", "tnef"])
def test_a_file_saved_into_the_mail_folder_is_named_not_called_a_mail_without_attachments(tmp_path, name, data,
                                                                                          start):
    # Outlook's "save attachment" of a winmail.dat into the e-mail folder:
    # it was refused "no-attachment: the e-mail carries no invoice file".
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        intake, watch = intake_of(tmp_path, ledger, "email")
        (watch.path / name).write_bytes(data)
        with intake.group(now=NOW, today=TODAY):
            intake.take(watch.path / name, watch, now=NOW, today=TODAY)
        [refusal] = ledger.refusals(limit=-1)
    assert (refusal["name"], refusal["reason"][:len(start)]) == (name, start)
    assert Vault(tmp_path / "vault").read(refusal["sha256"]) == data
