"""What a person reads of a file the agent could not read: English and
Chinese, with what to do, the rule code as it was. Real files: the real
sample OFDs with GM/T 0099's Encryptions.xml added, or their parts under a
real zip password (ZipCrypto); PDFs encrypted by pypdf; HTML pages as
browsers save them."""

from __future__ import annotations

import io
import re
import zipfile

import pypdf
import pytest

from agent.errors import ExtractError
from agent.extract import extract_bytes
from agent.extract.refusal_texts import _WAY_OUT, in_both_languages
from agent.extract.unreadable import HTML, is_html_page, looks_like_html
from agent.safezip import open_zip
from tests.support.refusals import ENCRYPTIONS, HTML_PAGES, rezipped, told_in_both
from tests.support.zips import password_zip

OFD_SAMPLE = "ofdrw__ofdrw/999.ofd"
PDF_SAMPLE = "kudeerliu48-web__fapiaohezi/238bd1f5_26427000000145889304.pdf"
XML_SAMPLES = ("renoyuan__easyofd/original_invoice.xml", "kaihu8766-netizen__invoice-precheck/official-gd-special.xml")


def refusal(data: bytes) -> ExtractError:
    with pytest.raises(ExtractError) as e:
        extract_bytes(data, ocr=False)
    return e.value


def declared_in_ofd_xml(name: str, body: bytes) -> bytes:
    if name != "OFD.xml":
        return body
    return re.sub(rb"(<ofd:DocBody>)", rb"<ofd:Encryptions><ofd:EncryptInfo ID='1'/></ofd:Encryptions>\1", body, 1)


@pytest.mark.parametrize("make,named", [
    (lambda ofd: rezipped(ofd, {"Encryptions.xml": ENCRYPTIONS}), "Encryptions.xml"),
    (lambda ofd: rezipped(ofd, {"Doc_0/Encryptions.xml": ENCRYPTIONS}), "Doc_0/Encryptions.xml"),
    (lambda ofd: rezipped(ofd, change=declared_in_ofd_xml), "declares Encryptions"),
    (lambda ofd: password_zip({n: z.read(n) for z in [zipfile.ZipFile(io.BytesIO(ofd))] for n in z.namelist()},
                              b"fapiao"), "password-protected"),
], ids=["encryptions-xml", "encryptions-xml-in-doc", "ofd-xml-declares", "zip-password"])
def test_an_encrypted_ofd_is_refused_as_encrypted_in_english_and_chinese(samples_dir, make, named):
    ofd = (samples_dir / OFD_SAMPLE).read_bytes()
    assert extract_bytes(ofd, ocr=False)[0].get("number"), "the sample itself reads"
    # Before, the package with Encryptions read its plain parts as if nothing were
    # encrypted (stand-in content, by GM/T 0099); its zip-password twin said
    # "zip member 'OFD.xml' is encrypted" in English only.
    e = refusal(make(ofd))
    assert e.reason == "encrypted"
    told_in_both(e.message, "OFD", named, "unencrypted copy", "补录",
                 chinese=("OFD", "已加密" if named != "password-protected" else "密码", "未加密的副本", "补录"))


def test_an_encrypted_ofds_values_are_never_read(samples_dir):
    # Not one field is kept from a package that declares encryption.
    ofd = rezipped((samples_dir / OFD_SAMPLE).read_bytes(), {"Encryptions.xml": ENCRYPTIONS})
    with pytest.raises(ExtractError, match="^encrypted: "):
        extract_bytes(ofd, ocr=False)


def _pdf_with_password(data: bytes, user: str) -> bytes:
    writer = pypdf.PdfWriter(clone_from=io.BytesIO(data))
    writer.encrypt(user_password=user, owner_password="owner-secret", algorithm="RC4-128")
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def test_a_pdf_with_a_user_password_is_refused_in_english_and_chinese(samples_dir):
    e = refusal(_pdf_with_password((samples_dir / PDF_SAMPLE).read_bytes(), "secret"))
    assert e.reason == "encrypted"
    told_in_both(e.message, "the PDF is encrypted with a user password", "unencrypted copy", "补录",
                 chinese=("PDF 已加密", "未加密的副本", "补录"))


def test_a_password_zip_member_is_refused_in_english_and_chinese():
    archive = open_zip(password_zip({"发票.pdf": b"%PDF-1.7\n" + b"x" * 300}, b"secret"))
    assert archive.encrypted_names() == ["发票.pdf"]
    with pytest.raises(ExtractError) as e:
        archive.read("发票.pdf")
    assert e.value.reason == "encrypted"
    told_in_both(e.value.message, "'发票.pdf' is encrypted", "password", "unzip it",
                 chinese=("'发票.pdf' 已加密", "密码", "解压", "监控文件夹"))


@pytest.mark.parametrize("page", HTML_PAGES.values(), ids=list(HTML_PAGES))
def test_an_html_page_is_named_as_one_in_english_and_chinese(page):
    assert is_html_page(page)
    # Before, the XML reader refused it: "XML root <html> is not an invoice",
    # "unsafe-xml: XML declares a DTD" or "corrupt: XML is not well formed".
    e = refusal(page)
    assert e.reason == "unsupported-format"
    assert e.message == HTML.text, "named as the mail walk names it (unreadable.HTML)"
    told_in_both(e.message, "an HTML page", "download the invoice's PDF, OFD or XML", chinese=("HTML 网页", "下载"))


@pytest.mark.parametrize("sample", XML_SAMPLES, ids=["fp-2019", "shudian-gd"])
def test_a_real_invoice_xml_is_no_html_page_even_mentioning_html(samples_dir, sample):
    data = (samples_dir / sample).read_bytes()
    fields = extract_bytes(data, ocr=False)[0].to_dict()
    assert not is_html_page(data)
    # A comment before the root that quotes a page, as an exporter might
    # write one: the file still starts as the invoice it is, and reads the same.
    decl_end = data.index(b"?>") + 2
    mentioned = data[:decl_end] + b"\n<!-- exported from <html> view: https://fp.example.cn -->" + data[decl_end:]
    assert looks_like_html(mentioned), "the first-KiB test would have called it a page"
    assert not is_html_page(mentioned)
    assert extract_bytes(mentioned, ocr=False)[0].to_dict() == fields


@pytest.mark.parametrize("data", [b"<EInvoice><Header/></EInvoice>", b"<htmlx/>", b"<!-- a", b"<?xml", b"",
                                  b"<!DOCTYPE htmlfoo><htmlfoo/>", b"<html-report/>"],
                         ids=["einvoice", "htmlx", "open-comment", "open-decl", "empty", "doctype-htmlfoo",
                              "html-report"])
def test_only_an_html_root_or_doctype_makes_a_page(data):
    assert not is_html_page(data)


@pytest.mark.parametrize("data,start,chinese", [
    (b"Rar!\x1a\x07\x00" + bytes(40), "a RAR archive", "RAR 压缩包"),
    (b"just some notes, no invoice", "not a PDF, OFD, invoice XML or image", "不是 PDF、OFD、发票 XML 或图片"),
    (b"  \n\t ", "the file is empty", "文件是空的"),
], ids=["rar", "unknown", "blank"])
def test_a_file_of_no_invoice_format_is_named_in_english_and_chinese(data, start, chinese):
    e = refusal(data)
    assert e.reason in ("unsupported-format", "empty")
    assert e.message.startswith(start)
    told_in_both(e.message, start, chinese=(chinese,))


def test_a_zip_that_is_no_ofd_is_told_to_be_extracted():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("发票.pdf", b"%PDF-1.7")
    e = refusal(buf.getvalue())
    assert e.reason == "unsupported-format"
    told_in_both(e.message, "a zip archive that is not an OFD", "extract it", chinese=("解压",))


def test_a_reader_s_english_only_reason_gets_its_way_out_and_chinese(samples_dir):
    data = (samples_dir / PDF_SAMPLE).read_bytes()
    e = refusal(data[:len(data) // 2])
    assert e.reason == "truncated"
    assert e.message.startswith("the PDF is cut short"), "the reader's own detail first"
    told_in_both(e.message, "put the whole file in again", "补录", chinese=("不完整", "补录"))


@pytest.mark.parametrize("reason", sorted(_WAY_OUT))
def test_every_reason_has_its_chinese(reason):
    told = in_both_languages(ExtractError(reason, "detail"))
    assert told.reason == reason
    told_in_both(told.message, "detail; ")
    assert in_both_languages(told) is told, "said once, never twice"
