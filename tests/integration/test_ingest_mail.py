"""`ingest` of saved e-mails (.eml, as Outlook or Thunderbird save them):
their invoice attachments become documents, as in a watched mail folder,
never an .eml quarantined as an unsupported format."""

from __future__ import annotations

import json
from email.message import EmailMessage

from tests.support.audit import assert_ledger_sound
from tests.support.cli import default_config, run


def saved_mail(pdf: bytes, xml: bytes) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "开票 <fp@example.cn>", "ap@example.cn", "发票两张"
    msg["Message-ID"] = "<saved-1@example.cn>"
    msg.set_content("附件是发票")
    msg.add_attachment(pdf, maintype="application", subtype="pdf", filename="发票.pdf")
    msg.add_attachment(xml, maintype="application", subtype="xml", filename="invoice.xml")
    msg.add_attachment(b"just notes", maintype="application", subtype="octet-stream", filename="notes.bin")
    return msg.as_bytes()


def site(tmp_path, samples_dir):
    """(config, drop folder, a real invoice PDF, a real 数电 XML)."""
    drop = tmp_path / "drop"
    drop.mkdir()
    return (default_config(tmp_path), drop, (samples_dir / "mxvc__invoice" / "发票.pdf").read_bytes(),
            (samples_dir / "renoyuan__easyofd" / "original_invoice.xml").read_bytes())


def ingested(cfg) -> list[dict]:
    """`ingest` of the drop folder, then `list --json` of what it made."""
    r = run(cfg, "ingest", str(cfg.parent / "drop"))
    assert r.exit_code == 0, r.output
    return [json.loads(line) for line in run(cfg, "list", "--json").stdout.splitlines()]


def test_a_saved_eml_is_read_as_mail(tmp_path, samples_dir):
    cfg, drop, pdf, xml = site(tmp_path, samples_dir)
    (drop / "saved.eml").write_bytes(saved_mail(pdf, xml))
    (drop / "plain.pdf").write_bytes(pdf)          # also a file on its own: one document, two sources
    docs = ingested(cfg)
    # The PDF arrived twice (alone first, then in the mail): one document.
    assert sorted(d["original_name"] for d in docs) == ["invoice.xml", "plain.pdf"], docs
    assert all(d["state"] != "captured" for d in docs)
    refused = run(cfg, "refused", "--json").stdout
    assert "notes.bin" in refused and "saved.eml" not in refused
    shown = run(cfg, "show", str(next(d["id"] for d in docs if d["original_name"] == "invoice.xml"))).stdout
    assert "发票两张" in shown and "fp@example.cn" in shown
    assert_ledger_sound(cfg)


def test_a_saved_eml_whose_first_4_kb_are_trace_headers_is_read_as_mail(tmp_path, samples_dir):
    # Gmail, Exchange and QQ Mail save dozens of Received, ARC and DKIM
    # lines before From and Subject.
    cfg, drop, pdf, xml = site(tmp_path, samples_dir)
    trace = b"".join(b"Received: from mx%d.mail.qq.com (unknown [10.0.0.%d]) by smtp with ESMTPS id X%d;\r\n"
                     b"\tThu, 3 Dec 2026 10:00:%02d +0800\r\n" % (i, i, i, i) for i in range(50))
    (drop / "gmail.eml").write_bytes(trace + saved_mail(pdf, xml))
    docs = ingested(cfg)
    assert sorted(d["original_name"] for d in docs) == ["invoice.xml", "发票.pdf"], docs
    assert_ledger_sound(cfg)
