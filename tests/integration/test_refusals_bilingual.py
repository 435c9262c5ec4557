"""A file the agent cannot read, as the operator meets it: dropped in a
scanner folder (the daemon's own Intake, then read as its workers read,
real SQLite and vault) or mailed in, and listed by `quarantine`, `show`
and `refused`. An HTML page is named as one, as the e-mail walk names it;
an encrypted OFD or PDF and a zip with a password are said to be so; each
in English and Chinese with what to do, the rule codes as they were."""

from __future__ import annotations

import io
import json
from email.message import EmailMessage
from pathlib import Path

import pypdf
import pytest

from agent.config import WatchConfig
from agent.ledger import Ledger
from agent.mail import MailLimits
from agent.vault import Vault
from service.intake import Intake
from tests.support.cli import default_config, run
from tests.support.intake_site import NOW, TODAY, IntakeSite
from tests.support.zips import password_zip
from tests.support.refusals import ENCRYPTIONS, HTML_PAGES, rezipped, told_in_both

OFD_SAMPLE = "ofdrw__ofdrw/999.ofd"
PDF_SAMPLE = "kudeerliu48-web__fapiaohezi/238bd1f5_26427000000145889304.pdf"
XML_SAMPLE = "kaihu8766-netizen__invoice-precheck/official-gd-special.xml"


class Site(IntakeSite):
    def __init__(self, tmp: Path, kind: str = "scanner"):
        (tmp / kind).mkdir()
        self.watch = WatchConfig(path=tmp / kind, kind=kind, after="keep")
        self.ledger = Ledger(tmp / "ledger.sqlite3")
        self.vault = Vault(tmp / "vault")
        self.intake = Intake(self.ledger, self.vault, max_bytes=10 << 20, mail_limits=MailLimits(), actor="t")

    def drop(self, name: str, data: bytes):
        (self.watch.path / name).write_bytes(data)
        with self.intake.group(now=NOW, today=TODAY):
            return self.take(self.watch.path / name)

    def problem_of(self, name: str) -> dict:
        """The one problem of the document dropped as `name`, read as the workers read it."""
        self.read_all()
        [doc] = [d for d in self.ledger.list_documents(limit=0) if d.original_name == name]
        assert doc.state == "quarantined", (doc.state, doc.problems)
        [problem] = doc.problems
        return problem


@pytest.fixture
def site(tmp_path):
    s = Site(tmp_path)
    yield s
    s.ledger.close()


@pytest.mark.parametrize("page", HTML_PAGES.values(), ids=list(HTML_PAGES))
def test_an_html_page_in_a_scanner_folder_is_named_as_one(site, page):
    site.drop("发票查看.html", page)
    problem = site.problem_of("发票查看.html")
    # Before: "unsupported-format: XML root <html> is not an invoice", or
    # "unsafe-xml: XML declares a DTD or entities" for an XHTML page.
    assert problem["code"] == "unreadable"
    assert problem["message"].startswith("unsupported-format: an HTML page (a \"view your invoice online\" mail)")
    told_in_both(problem["message"], "open the link", chinese=("HTML 网页", "下载 PDF、OFD 或 XML"))


def test_a_real_invoice_xml_beside_the_pages_is_still_read(site, samples_dir):
    site.drop("page.html", HTML_PAGES["xhtml"])
    site.drop("发票.xml", (samples_dir / XML_SAMPLE).read_bytes())
    site.read_all()
    [doc] = [d for d in site.ledger.list_documents(limit=0) if d.original_name == "发票.xml"]
    # Read (the sample's test tax ids fail their check digits: that is all it is held for).
    assert doc.invoice_number == "23440000000000100001"
    assert {p["code"] for p in doc.problems} == {"tax-id-check-digit"}, doc.problems


def test_an_encrypted_ofd_in_a_scanner_folder_is_said_to_be_encrypted(site, samples_dir):
    ofd = rezipped((samples_dir / OFD_SAMPLE).read_bytes(), {"Encryptions.xml": ENCRYPTIONS})
    site.drop("专票.ofd", ofd)
    problem = site.problem_of("专票.ofd")
    assert problem["code"] == "unreadable"
    assert problem["message"].startswith("encrypted: the OFD is encrypted")
    told_in_both(problem["message"], "unencrypted copy", "补录", chinese=("OFD 已加密", "未加密的副本", "补录"))


def test_a_password_pdf_in_a_scanner_folder_is_said_to_be_encrypted(site, samples_dir):
    writer = pypdf.PdfWriter(clone_from=samples_dir / PDF_SAMPLE)
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="RC4-128")
    buf = io.BytesIO()
    writer.write(buf)
    site.drop("发票.pdf", buf.getvalue())
    problem = site.problem_of("发票.pdf")
    assert problem["code"] == "unreadable"
    assert problem["message"].startswith("encrypted: the PDF is encrypted with a user password")
    told_in_both(problem["message"], "unencrypted copy", "补录", chinese=("PDF 已加密", "未加密的副本", "补录"))


def test_a_password_zip_dropped_in_a_scanner_folder_is_refused_in_both_languages(site, samples_dir):
    site.drop("发票.zip", password_zip({"发票.pdf": (samples_dir / PDF_SAMPLE).read_bytes()}, b"1234"))
    [row] = [r for r in site.ledger.refusals(limit=-1) if r["name"] == "发票.zip/发票.pdf"]
    assert row["reason"].startswith("zip-encrypted: zip member '发票.pdf' is encrypted"), row["reason"]
    told_in_both(row["reason"], "unzip it with the password", chinese=("密码", "解压后把发票文件放入监控文件夹"))


def mail_with(name: str, data: bytes) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["Subject"], msg["Message-ID"] = "seller@example.cn", "发票", "<refusals@example.cn>"
    msg.set_content("附件是发票")
    msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return msg.as_bytes()


def test_a_password_zip_mailed_in_is_refused_in_both_languages(tmp_path, samples_dir):
    site = Site(tmp_path, "email")
    try:
        site.drop("in.eml", mail_with("发票.zip", password_zip({"a.pdf": (samples_dir / PDF_SAMPLE).read_bytes()},
                                                                b"1234")))
        [row] = site.ledger.refusals(limit=-1)
    finally:
        site.ledger.close()
    assert row["reason"].startswith("zip-encrypted: zip member 'a.pdf' is encrypted"), row["reason"]
    told_in_both(row["reason"], "ask the sender", chinese=("密码",))


def test_a_page_past_its_first_kib_is_named_in_the_mail_walk_too(tmp_path):
    # The walk called an attachment a page only when "<html" was in its first
    # KiB: a page behind a long comment was taken as an XML document.
    site = Site(tmp_path, "email")
    try:
        site.drop("in.eml", mail_with("invoice.htm", HTML_PAGES["long-banner-comment"]))
        [row] = site.ledger.refusals(limit=-1)
        assert site.ledger.list_documents(limit=0) == []
    finally:
        site.ledger.close()
    assert row["reason"].startswith("unsupported-format: an HTML page"), row["reason"]
    told_in_both(row["reason"], "open the link", chinese=("HTML 网页",))


def test_an_invoice_xml_quoting_a_page_is_taken_from_a_mail(tmp_path, samples_dir):
    # The walk called an attachment a page when "<html" was anywhere in its
    # first KiB: this invoice XML (a comment quoting a page) was refused.
    data = (samples_dir / XML_SAMPLE).read_bytes()
    decl_end = data.index(b"?>") + 2
    data = data[:decl_end] + b"\n<!-- exported from the <html> view -->" + data[decl_end:]
    site = Site(tmp_path, "email")
    try:
        site.drop("in.eml", mail_with("发票.xml", data))
        assert site.ledger.refusals(limit=-1) == []
        site.read_all()
        [doc] = site.ledger.list_documents(limit=0)
    finally:
        site.ledger.close()
    assert doc.invoice_number == "23440000000000100001"


def test_quarantine_and_show_print_both_languages(tmp_path, samples_dir):
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "view.html").write_bytes(HTML_PAGES["bom-and-space"])
    (drop / "locked.ofd").write_bytes(rezipped((samples_dir / OFD_SAMPLE).read_bytes(),
                                               {"Encryptions.xml": ENCRYPTIONS}))
    cfg = default_config(tmp_path)
    run(cfg, "ingest", str(drop))
    listed = run(cfg, "quarantine").stdout
    for words in ("an HTML page", "HTML 网页", "encrypted: the OFD is encrypted", "OFD 已加密", "补录"):
        assert words in listed, (words, listed)
    rows = [json.loads(line) for line in run(cfg, "quarantine", "--json").stdout.splitlines()]
    assert sorted(p["code"] for row in rows for p in row["problems"]) == ["unreadable", "unreadable"]
    for row in rows:
        [problem] = row["problems"]
        told_in_both(problem["message"])
        shown = run(cfg, "show", str(row["id"])).stdout
        assert f"ERROR   unreadable: {problem['message']}\n" in shown, shown
