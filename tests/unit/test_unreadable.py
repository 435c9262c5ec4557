"""Naming a file no reader takes, by its bytes: only on its full magic,
never on a prefix that plain text can have."""

from __future__ import annotations

import bz2
import gzip
import lzma

import pytest

from agent.extract.unreadable import COMPRESSED, HTML, RAR, SEVEN_ZIP, TNEF, unreadable_kind


@pytest.mark.parametrize("data,kind", [
    (b"Rar!\x1a\x07\x00\x00", RAR), (b"Rar!\x1a\x07\x01\x00\x00", RAR), (b"7z\xbc\xaf\x27\x1c\x00\x04", SEVEN_ZIP),
    (b"\x78\x9f\x3e\x22\x01\x00", TNEF), (gzip.compress(b"x", mtime=0), COMPRESSED),
    (bz2.compress(b"x"), COMPRESSED), (lzma.compress(b"x"), COMPRESSED), (b"<!doctype html><p>", HTML),
], ids=["rar4", "rar5", "7z", "tnef", "gzip", "bzip2", "xz", "html"])   # the same in every xdist worker
def test_each_kind_by_its_magic(data, kind):
    assert unreadable_kind(data) is kind


@pytest.mark.parametrize("data", [
    b"", b"Rar! that was close", b"BZh, a word", b"BZh9 and text", b"7z archive list", b"hello",
    b"<?xml version='1.0'?><EInvoice/>",
])
def test_text_that_starts_alike_is_not_named(data):
    assert unreadable_kind(data) is None


def test_a_tar_whose_first_file_is_a_pdf_is_an_archive_not_that_pdf():
    # PDF readers take "%PDF-" anywhere in the first KiB, and a tar's first
    # member starts at byte 512: the archive was read as its first PDF and
    # its other files were never looked at. It is refused, named, instead.
    import io
    import tarfile

    from agent.extract.sniff import sniff
    from tests.conftest import SAMPLES

    pdfs = sorted(SAMPLES.rglob("*.pdf"))[:2]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for i, path in enumerate(pdfs):
            tar.add(path, arcname=f"invoice-{i}.pdf")
    data = buf.getvalue()
    assert b"%PDF-" in data[:1024]
    assert sniff(data) == "unknown" and unreadable_kind(data) is COMPRESSED
    assert sniff(pdfs[0].read_bytes()) == "pdf"


def test_a_winmail_dat_whose_first_file_is_a_pdf_is_a_tnef_not_that_pdf():
    # As with a tar: "%PDF-" within the first KiB made the whole winmail.dat
    # a PDF (taken as one in a scanner folder, and in a mail folder taken as
    # a file instead of read for its attachments). It is a TNEF: its files
    # are read out of it (agent/tnef.py), or it is named as one.
    from agent.extract.sniff import sniff
    from tests.conftest import SAMPLES
    from tests.support.tnef import Attached, tnef

    pdf = (SAMPLES / "mxvc__invoice" / "发票.pdf").read_bytes()
    data = tnef([Attached("发票.pdf", pdf)])
    assert b"%PDF-" in data[:1024]
    assert sniff(data) == "unknown" and unreadable_kind(data) is TNEF
