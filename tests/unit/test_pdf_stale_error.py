"""PDFium's last error outlives a failed load: a broken PDF read after an
encrypted one, in the same worker process, must not be called encrypted
(a wrong reason is worse than none). Workers read many documents in a row
(service/workers.py), so any order can happen."""

from __future__ import annotations

from agent.pipeline import analyse
from tests.hostile import pdfs


def test_a_broken_pdf_after_an_encrypted_one_is_not_called_encrypted():
    alone = analyse(pdfs.lying_page_count("a"), ocr=False)
    encrypted = analyse(pdfs.encrypted("e", "secret"), ocr=False)
    assert encrypted.error_reason == "encrypted"
    after = analyse(pdfs.lying_page_count("b"), ocr=False)
    assert (after.error_reason, after.error_message) == (alone.error_reason, alone.error_message)
    assert after.error_reason == "corrupt"


def test_an_encrypted_pdf_after_a_broken_one_is_still_encrypted():
    analyse(pdfs.lying_page_count("c"), ocr=False)
    assert analyse(pdfs.encrypted("f", "secret"), ocr=False).error_reason == "encrypted"
