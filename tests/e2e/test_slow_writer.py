"""A real daemon with after = move/delete and a writer that pauses longer than
settle_seconds mid-file, either holding the file open or closing and
reopening it between chunks; and SIGKILLs between capture and the
after-action. The complete invoice is always captured and read; the source
is moved or deleted only after that, and nothing else is."""

from __future__ import annotations

import hashlib
import os
import random
import time

import pytest

from tests.e2e.daemon_harness import OUT_AND_NAS, DaemonUnderTest
from tests.support.audit import assert_ledger_sound

SAMPLE = "renoyuan__easyofd/original_invoice.xml"


def by_sha(daemon: DaemonUnderTest, data: bytes):
    sha = hashlib.sha256(data).hexdigest()
    return next((d for d in daemon.documents() if d.sha256 == sha), None)


@pytest.mark.parametrize("writer", ["holds-open", "reopens", "renamed-in", "moved-in"])
@pytest.mark.parametrize("after", ["move", "delete"])
def test_a_writer_pausing_past_settle_loses_nothing(tmp_path, samples_dir, after, writer):
    invoice = (samples_dir / SAMPLE).read_bytes()
    half, rest = invoice[: len(invoice) // 2], invoice[len(invoice) // 2:]
    d = DaemonUnderTest(tmp_path, settle=0.5, scan_extra=f'after = "{after}"')
    d.start()
    try:
        path = tmp_path / "scan" / "inv.xml"
        if writer in ("renamed-in", "moved-in"):
            # Renamed into place half written (in the folder, or moved in
            # from one not watched), then written on through the same
            # descriptor: a rename is taken at once (no settle), so the half
            # file is captured; it must end superseded all the same.
            staging = tmp_path / "scan" if writer == "renamed-in" else tmp_path / "staging"
            staging.mkdir(exist_ok=True)
            f = open(staging / "inv.xml.part", "wb")
            f.write(half)
            f.flush()
            os.rename(staging / "inv.xml.part", path)
        else:
            f = open(path, "wb")
            f.write(half)
            f.flush()
        if writer == "reopens":
            f.close()
        partial = d.wait_until(lambda: (doc := by_sha(d, half)) and doc.state != "captured" and doc, 20,
                               "the half file captured and read")
        assert partial.state == "quarantined"  # half an XML is unreadable
        time.sleep(1.0)  # any after-action would have happened by now
        assert path.exists(), "the half file was moved or deleted while its writer was still at it"
        if writer == "reopens":
            f = open(path, "ab")
        f.write(rest)
        f.close()
        whole = d.wait_until(lambda: (doc := by_sha(d, invoice)) and doc.state != "captured" and doc, 20,
                             "the whole file captured and read")
        assert whole.fields, "the whole file was read"
        d.wait_until(lambda: not path.exists(), 10, f"the source {after}d once read")
        if after == "move":
            (moved,) = (tmp_path / "scan" / "processed").glob("*/inv.xml")
            assert moved.read_bytes() == invoice
        # The file goes first, then its step is marked done (a moment later).
        d.wait_until(lambda: _actions(d, whole.id) == ["done"], 10, "the source step marked done")
        with d.ledger() as led:
            ended = led.get(partial.id)
            assert ended.state == "superseded"
            assert any(e.to_state == "superseded" and f"superseded by document {whole.id}" in e.reason
                       for e in led.events(partial.id))
            assert [a["state"] for a in led.source_actions(whole.id)] == ["done"]
            assert led.counts()["quarantined"] == 0  # nothing left for a person to sort out
    finally:
        d.stop()


def _actions(d, doc_id: int) -> list[str]:
    with d.ledger() as led:
        return [a["state"] for a in led.source_actions(doc_id)]


def test_sigkill_between_capture_and_after_action_loses_nothing(tmp_path, samples_dir):
    """Kill the daemon again and again while invoices arrive: every invoice is
    captured and read, and every source is deleted, once."""
    invoice = (samples_dir / SAMPLE).read_bytes()
    d = DaemonUnderTest(tmp_path, settle=0.3, scan_extra='after = "delete"')
    (tmp_path / "scan" / "keep").mkdir()
    rng = random.Random(12)
    sent = []
    for round_ in range(4):
        d.start()
        for i in range(8):
            data = invoice.replace(b"00008006", f"{round_ * 100 + i:08d}".encode())
            tmp = tmp_path / "scan" / "keep" / f".{round_}-{i}"
            tmp.write_bytes(data)
            tmp.rename(tmp_path / "scan" / "keep" / f"inv-{round_}-{i}.xml")
            sent.append(data)
            time.sleep(rng.uniform(0.0, 0.15))
        time.sleep(rng.uniform(0.1, 0.6))
        d.kill()
    d.start()
    try:
        d.wait_until(lambda: not any((tmp_path / "scan" / "keep").iterdir()), 60, "every source deleted")
        docs = d.wait_documents(len(sent), settled=True, timeout=30)
        assert {doc.sha256 for doc in docs} == {hashlib.sha256(x).hexdigest() for x in sent}
        assert all(doc.fields for doc in docs)
        with d.ledger() as led:
            for doc in docs:
                assert [a["state"] for a in led.source_actions(doc.id)].count("done") <= 1
            assert led.integrity_check() == "ok"
    finally:
        d.stop()


def test_a_file_renamed_into_place_is_taken_without_waiting_settle_seconds(tmp_path, samples_dir):
    """Write under a temporary name in the folder, then rename (a scanner's
    usual way): the rename says the file is done, so it is captured at once
    even with a long settle_seconds, while a file still open for writing
    waits for it."""
    invoice = (samples_dir / SAMPLE).read_bytes()
    d = DaemonUnderTest(tmp_path, settle=60)
    d.start()
    try:
        in_place = invoice.replace(b"</", b" </", 1)  # other bytes: a document of its own
        still_open = open(tmp_path / "scan" / "in-place.xml", "wb")
        still_open.write(in_place)
        still_open.flush()
        (tmp_path / "scan" / "renamed.xml.tmp").write_bytes(invoice)
        os.rename(tmp_path / "scan" / "renamed.xml.tmp", tmp_path / "scan" / "renamed.xml")
        d.wait_until(lambda: by_sha(d, invoice), 20, "the renamed file captured well before settle_seconds")
        moved = invoice.replace(b"</", b"  </", 1)
        (tmp_path / "staging").mkdir()
        (tmp_path / "staging" / "moved.xml").write_bytes(moved)
        os.rename(tmp_path / "staging" / "moved.xml", tmp_path / "scan" / "moved.xml")
        d.wait_until(lambda: by_sha(d, moved), 20, "a file moved in from another folder captured before settling")
        assert by_sha(d, in_place) is None, "a file still being written was taken before it settled"
        still_open.close()
        d.wait_until(lambda: by_sha(d, in_place), 20, "the file captured once closed")
    finally:
        d.stop()


@pytest.mark.parametrize("writer", ["holds-open", "reopens"])
def test_a_pdf_written_in_two_goes_is_never_read_from_its_first_part(tmp_path, writer):
    # PDFium reads most of a PDF cut short (it rebuilds the cross-reference
    # table), and all of it when the cut falls in a second save (an
    # incremental update): read, that part would be judged valid and
    # delivered, and the whole file, when it came, a duplicate of it.
    import datetime as dt

    from tests.corpus.generate import make_corpus

    (first,) = [g.data for g in make_corpus(5, 1, today=dt.date.today(), styles={"digital": 1})]
    invoice = saved_again(first)
    cut = len(first) + 40  # inside the second save, after the first one's %%EOF
    d = DaemonUnderTest(tmp_path, settle=0.5, extra=OUT_AND_NAS)
    (tmp_path / "out").mkdir()
    (tmp_path / "nas").mkdir()
    d.start()
    try:
        path = tmp_path / "scan" / "inv.pdf"
        f = open(path, "wb")
        f.write(invoice[:cut])
        f.flush()
        if writer == "reopens":
            f.close()
        partial = d.wait_until(lambda: (doc := by_sha(d, invoice[:cut])) and doc.state != "captured" and doc, 20,
                               "the first part captured and read")
        assert partial.state == "quarantined", partial.state
        assert "cut short" in partial.problems[0]["message"], partial.problems
        if writer == "reopens":
            f = open(path, "ab")
        f.write(invoice[cut:])
        f.close()
        whole = d.wait_until(lambda: (doc := by_sha(d, invoice)) and doc.state == "delivered" and doc, 30,
                             "the whole file delivered")
        with d.ledger() as led:
            assert led.get(partial.id).state == "superseded"
            assert led.counts().get("duplicate", 0) == 0
        (delivered,) = [p for p in (tmp_path / "out").iterdir() if p.suffix == ".pdf"]
        assert delivered.read_bytes() == invoice
        assert d.stop() == 0
    finally:
        d.stop()
    assert_ledger_sound(d.config)


def saved_again(pdf: bytes) -> bytes:
    """`pdf` with an incremental update appended, as a tool that saves a
    file twice writes it: a new Info object, its cross-reference and trailer."""
    import re

    prev = int(re.findall(rb"startxref\s+(\d+)", pdf)[-1])
    root = re.findall(rb"/Root\s+(\d+\s+\d+\s+R)", pdf)[-1]
    size = int(re.findall(rb"/Size\s+(\d+)", pdf)[-1])
    body = pdf if pdf.endswith(b"\n") else pdf + b"\n"
    obj = b"%d 0 obj\n<< /Producer (scanner, second save) >>\nendobj\n" % size
    xref_at = len(body) + len(obj)
    tail = (b"xref\n%d 1\n%010d 00000 n \ntrailer\n<< /Size %d /Root %s /Info %d 0 R /Prev %d >>\n"
            b"startxref\n%d\n%%%%EOF\n" % (size, len(body), size + 1, root, size, prev, xref_at))
    return body + obj + tail


def test_a_writer_sizing_the_file_first_leaves_no_partial_in_quarantine(tmp_path, samples_dir):
    # Explorer copying over SMB sets the full size first, then writes: a
    # pause past settle_seconds gets the half-written file captured, same
    # size, zeros where the rest will go. Once the rest is written, that
    # capture is superseded: nothing is left in quarantine for a person.
    invoice = (samples_dir / SAMPLE).read_bytes()
    half = len(invoice) // 2
    d = DaemonUnderTest(tmp_path, settle=0.5, scan_extra='after = "keep"')
    d.start()
    try:
        path = tmp_path / "scan" / "sized.xml"
        with open(path, "wb") as f:
            f.truncate(len(invoice))
            f.write(invoice[:half])
            f.flush()
            partial_bytes = invoice[:half] + bytes(len(invoice) - half)
            partial = d.wait_until(lambda: (doc := by_sha(d, partial_bytes)) and doc.state != "captured" and doc,
                                   20, "the half-written file captured and read")
            assert partial.state == "quarantined"
            f.write(invoice[half:])
        whole = d.wait_until(lambda: (doc := by_sha(d, invoice)) and doc.state != "captured" and doc, 20,
                             "the whole file captured and read")
        assert whole.fields
        with d.ledger() as led:
            assert led.get(partial.id).state == "superseded"
            assert any(f"superseded by document {whole.id}" in (e.reason or "") and "zeros" in (e.reason or "")
                       for e in led.events(partial.id))
            assert led.counts()["quarantined"] == 0
    finally:
        d.stop()
    assert_ledger_sound(d.config)
