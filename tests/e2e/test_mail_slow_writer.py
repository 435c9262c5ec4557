"""An e-mail written into the mail folder in two goes (a fetcher pausing
mid-message, the file held open or closed and reopened): the message is
taken once, whole; its invoice is delivered as the original PDF, never
its first part, and nothing is left quarantined or duplicate. A message
cut off for good is taken as it is once it has not changed for the grace
time, its cut part quarantined with the reason. And an invoice file put in
the mail folder by hand is taken as the file it is."""

from __future__ import annotations

import base64
import datetime as dt
import os
import time

import pytest

from tests.corpus.generate import make_corpus
from tests.e2e.daemon_harness import OUT_AND_NAS, DaemonUnderTest
from tests.support.audit import assert_ledger_sound


def message(pdf: bytes) -> bytes:
    body = base64.encodebytes(pdf).decode().replace("\n", "\r\n")
    return ("From: fin@example.cn\r\nTo: ap@example.cn\r\nMessage-ID: <slow@example.cn>\r\nSubject: inv\r\n"
            'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="B"\r\n\r\n--B\r\n'
            "Content-Type: text/plain\r\n\r\nhi\r\n--B\r\nContent-Type: application/pdf\r\n"
            'Content-Disposition: attachment; filename="inv.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
            + body + "\r\n--B--\r\n").encode()


def cli_status(d: DaemonUnderTest) -> str:
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "service", "--config", str(d.config), "status"],
                          capture_output=True, text=True, timeout=60).stdout


def invoice_pdf() -> bytes:
    (g,) = make_corpus(9, 1, today=dt.date.today(), styles={"digital": 1})
    return g.data


@pytest.mark.parametrize("writer", ["holds-open", "reopens"])
def test_a_message_written_in_two_goes_is_taken_once_whole(tmp_path, writer):
    pdf = invoice_pdf()
    msg = message(pdf)
    d = DaemonUnderTest(tmp_path, settle=0.5, extra=OUT_AND_NAS)
    (tmp_path / "out").mkdir()
    (tmp_path / "nas").mkdir()
    d.start()
    try:
        path = tmp_path / "mail" / "slow.eml"
        cut = int(len(msg) * 0.6)
        f = open(path, "wb")
        f.write(msg[:cut])
        f.flush()
        if writer == "reopens":
            f.close()
        mark = len(d.lines)
        d.wait_for_line("e-mail still being written", start=mark, timeout=15)
        time.sleep(1.0)  # past settle: it would have been taken by now
        assert d.documents() == [] and path.exists()
        # Never out of sight: status names the file held, and why.
        status = d.wait_until(lambda: (out if "held:" in (out := cli_status(d)) else None), 10,
                              "status shows it held")
        assert "slow.eml" in status and "still being written" in status
        if writer == "reopens":
            f = open(path, "ab")
        f.write(msg[cut:])
        f.close()
        (doc,) = d.wait_until(lambda: [x for x in d.documents() if x.state == "delivered"] or None, 30,
                              "the invoice delivered")
        (delivered,) = [p for p in (tmp_path / "out").iterdir() if p.suffix == ".pdf"]
        assert delivered.read_bytes() == pdf
        assert [x.state for x in d.documents()] == ["delivered"]
        assert d.stop() == 0
    finally:
        d.stop()
    assert_ledger_sound(d.config)


def test_a_message_cut_off_for_good_is_taken_as_it_is_after_the_grace_time(tmp_path):
    msg = message(invoice_pdf())
    d = DaemonUnderTest(tmp_path, settle=0.5)
    path = tmp_path / "mail" / "cut.eml"
    path.write_bytes(msg[:int(len(msg) * 0.6)])
    old = time.time() - 3600
    os.utime(path, (old, old))  # unchanged for an hour: its writer is gone
    d.start()
    try:
        (doc,) = d.wait_until(lambda: [x for x in d.documents() if x.state != "captured"] or None, 20,
                              "the cut message taken")
        assert doc.state == "quarantined"
        assert any("cut short" in p["message"] for p in doc.problems), doc.problems
        assert d.stop() == 0
    finally:
        d.stop()
    assert_ledger_sound(d.config)


def test_an_invoice_file_dropped_in_the_mail_folder_is_taken_as_a_file(tmp_path, samples_dir):
    # Someone saves an attachment into the mail folder by hand: a PDF, or an
    # XML named .eml. Read as mail it was a message with no attachment and
    # refused for that; it is the invoice file it is.
    pdf = invoice_pdf()
    xml = (samples_dir / "renoyuan__easyofd" / "original_invoice.xml").read_bytes()
    d = DaemonUnderTest(tmp_path, settle=0.5)
    d.start()
    try:
        (tmp_path / "mail" / "saved.pdf").write_bytes(pdf)
        (tmp_path / "mail" / "odd.eml").write_bytes(xml)
        docs = d.wait_documents(2, settled=True)
        assert sorted((x.original_name, x.media_type) for x in docs) == [("odd.eml", "xml"), ("saved.pdf", "pdf")]
        assert all(x.fields for x in docs), [(x.original_name, x.state, x.problems) for x in docs]
        with d.ledger() as led:
            assert led.conn.execute("SELECT count(*) FROM refusals").fetchone()[0] == 0
        assert d.stop() == 0
    finally:
        d.stop()
    assert_ledger_sound(d.config)


def two_invoices(pdf_a: bytes, pdf_b: bytes) -> tuple[bytes, bytes]:
    """A message with two PDF attachments, and where to cut it: right after
    the first attachment, so that what was written parses without a cut part."""
    def part(name: str, data: bytes) -> str:
        body = base64.encodebytes(data).decode().replace("\n", "\r\n")
        return ("--B\r\nContent-Type: application/pdf\r\n"
                f'Content-Disposition: attachment; filename="{name}"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
                + body + "\r\n")
    head = ("From: fin@example.cn\r\nTo: ap@example.cn\r\nMessage-ID: <two@example.cn>\r\nSubject: two\r\n"
            'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="B"\r\n\r\n')
    first = (head + part("a.pdf", pdf_a)).encode()
    return first, (part("b.pdf", pdf_b) + "--B--\r\n").encode()


def test_a_message_taken_cut_off_is_refused_so_left_in_place_and_the_rest_taken_later(tmp_path):
    # Its writer paused past the hold (the file looks an hour old): taken as
    # it is. Nothing in what was written says a part is missing, so the
    # refusal must; and the file is left where it is (after = move), so the
    # rest, when it comes, lands in the watched folder and is taken.
    a, b = [g.data for g in make_corpus(11, 2, today=dt.date.today(), styles={"digital": 1})]
    first, rest = two_invoices(a, b)
    d = DaemonUnderTest(tmp_path, settle=0.5)
    d.config.write_text(d.config.read_text().replace('path = "mail"\nkind = "email"',
                                                     'path = "mail"\nkind = "email"\nafter = "move"'))
    path = tmp_path / "mail" / "two.eml"
    path.write_bytes(first)
    old = time.time() - 3600
    os.utime(path, (old, old))
    d.start()
    try:
        d.wait_documents(1, settled=True)
        with d.ledger() as led:
            reasons = [r["reason"] for r in led.refusals()]
        assert any(r.startswith("unclosed") for r in reasons), reasons
        time.sleep(1.0)
        assert path.exists(), "a cut-off message was moved away from its writer"
        with open(path, "ab") as f:
            f.write(rest)
        docs = d.wait_documents(2, settled=True)
        assert sorted(x.original_name for x in docs) == ["a.pdf", "b.pdf"]
        d.wait_until(lambda: not path.exists(), 15, "the whole message moved once taken")
        assert d.stop() == 0
    finally:
        d.stop()
    assert_ledger_sound(d.config)
