"""A PDF cut short is told from its bytes (agent/extract/pdf_cut.py), and
never read: its values could be half an invoice's."""

from __future__ import annotations

import pytest

from agent.errors import ExtractError
from agent.extract.pdf import read_pdf
from agent.extract.pdf_cut import is_cut_short

WHOLE = b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\nxref\n0 1\ntrailer\n<< >>\nstartxref\n9\n%%EOF\n"


def test_whole_files_padded_or_followed_by_junk_are_whole():
    assert not is_cut_short(WHOLE)
    assert not is_cut_short(WHOLE + b"\0" * 4096)            # padded to a block by a scanner
    assert not is_cut_short(WHOLE + b"\r\n-- \r\nsent from my gateway\r\n" * 100)


@pytest.mark.parametrize("cut", [20, 50, len(WHOLE) - 3])
def test_a_file_without_its_last_eof_is_cut_short(cut):
    assert is_cut_short(WHOLE[:cut])


def test_a_second_save_or_linearized_rest_cut_off_is_cut_short():
    second = b"2 0 obj\n<< /Producer (x) >>\nendobj\nxref\n2 1\n"
    assert is_cut_short(WHOLE + second)
    assert is_cut_short(WHOLE + b"5 0 obj\n<< /Length 100 >>\nstream\nabc")


def test_reading_a_real_invoice_cut_short_raises_truncated(samples_dir):
    data = (samples_dir / "mxvc__invoice" / "发票.pdf").read_bytes()
    assert read_pdf(data)[0].fields   # whole: read
    for share in (0.5, 0.8, 0.99):
        with pytest.raises(ExtractError) as e:
            read_pdf(data[:int(len(data) * share)])
        assert e.value.reason == "truncated" and "cut short" in str(e.value)


@pytest.mark.parametrize("cut", [b"1", b"12 0", b"12 0 ob", b"x", b"xre", b"trai"])
def test_a_cut_a_few_bytes_into_a_second_save_is_cut_short(cut):
    assert is_cut_short(WHOLE + cut)


@pytest.mark.parametrize("note", [b"scanned: see trailer of the page", b"xref check passed by gateway",
                                  b"2026-12-03 10:00 relayed by mail gateway, 3 objects"])
def test_a_gateway_note_after_the_eof_with_pdf_words_is_no_cut(note):
    assert not is_cut_short(WHOLE + b"\r\n" + note + b"\r\n")
