"""Format detection by content: real samples, and small files made here."""

from __future__ import annotations

import io
import zipfile

import pytest
from PIL import Image

from agent.extract.sniff import FORMATS, sniff

SAMPLE_FORMATS = {
    "GitHub1he__QrToInvoice/S2.jpg": "jpeg",
    "kaihu8766-netizen__invoice-precheck/official-gd-special.xml": "xml",
    "kudeerliu48-web__fapiaohezi/482078385650808140.pdf": "pdf",
    "ofdrw__ofdrw/1.ofd": "ofd",
    "ofdrw__ofdrw/no_page_container.ofd": "ofd",
    "renoyuan__easyofd/original_invoice.xml": "xml",
    "renoyuan__easyofd/fc87372-test_img0.jpg": "jpeg",
}


def test_every_sample_is_sniffed_by_its_content(samples_dir, expected_fields):
    for name in expected_fields:
        got = sniff((samples_dir / name).read_bytes())
        suffix = name.rsplit(".", 1)[-1]
        want = SAMPLE_FORMATS.get(name, {"pdf": "pdf", "ofd": "ofd", "xml": "xml", "jpg": "jpeg", "png": "png"}[suffix])
        assert got == want, name


def _image_bytes(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "white").save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize("pil_format,expected", [
    ("PNG", "png"), ("JPEG", "jpeg"), ("TIFF", "tiff"), ("BMP", "bmp"), ("GIF", "gif"), ("WEBP", "webp"),
])
def test_images_by_magic(pil_format, expected):
    assert sniff(_image_bytes(pil_format)) == expected


def test_a_png_named_jpg_is_a_png(tmp_path):
    path = tmp_path / "scan.jpg"
    path.write_bytes(_image_bytes("PNG"))
    assert sniff(path.read_bytes()) == "png"


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_zip_with_ofd_xml_is_ofd_and_other_zips_are_zip():
    assert sniff(_zip({"OFD.xml": b"<ofd:OFD/>", "Doc_0/Document.xml": b"<x/>"})) == "ofd"
    assert sniff(_zip({"invoice.pdf": b"%PDF-1.4"})) == "zip"
    assert sniff(_zip({"Doc_0/OFD.xml": b"<x/>"})) == "zip"  # OFD.xml must be at the root


def test_truncated_zip_is_judged_by_its_local_headers():
    ofd = _zip({"Doc_0/Document.xml": b"<x/>" * 100, "OFD.xml": b"<ofd:OFD/>" * 100})
    assert sniff(ofd[: len(ofd) - 60]) == "ofd"  # directory gone, local header remains
    other = _zip({"a.txt": b"x" * 100})
    assert sniff(other[:40]) == "zip"


@pytest.mark.parametrize("data,expected", [
    (b"", "empty"),
    (b"   \n\t ", "empty"),
    (b"%PDF-1.7\n...", "pdf"),
    (b"\r\n\r\n%PDF-1.4\n", "pdf"),  # junk before the header, as some generators write
    (b'<?xml version="1.0"?><EInvoice/>', "xml"),
    (b"\xef\xbb\xbf<?xml version='1.0'?><a/>", "xml"),
    (b"\n  <EInvoice><Header/></EInvoice>", "xml"),
    ("<?xml version='1.0'?><a/>".encode("utf-16"), "xml"),
    (b"hello world", "unknown"),
    (b"\x00\x01\x02\x03", "unknown"),
    (b"BM", "unknown"),  # too short to be a bitmap
])
def test_small_inputs(data, expected):
    assert sniff(data) == expected
    assert expected in FORMATS
