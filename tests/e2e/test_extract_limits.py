"""A real daemon against documents that used to stop extraction: absurd
amounts, a reading that keeps failing, a PDF that takes minutes, and a
SIGKILL of the daemon while its workers are busy."""

from __future__ import annotations

import pytest

import email.message
import os
import signal
import time
import zlib
from pathlib import Path

from agent.ledger import Ledger
from agent.ledger.rows import parse_utc
from tests.e2e.daemon_harness import DaemonUnderTest
from tests.hostile.pdfs import _raw_pdf, _stream

# Long (back-offs in real time, ~35 s): started first, so it never runs alone at the end (tests/conftest.py).
pytestmark = pytest.mark.slow

GOOD_SAMPLE = "renoyuan__easyofd/original_invoice.xml"      # passes every rule
SHUDIAN_SAMPLE = "kaihu8766-netizen__invoice-precheck/official-gd-special.xml"
DELIVER = '[delivery]\nreconcile_interval_s = 0\n\n[[destination]]\nname = "out"\nurl = "folder://out"\n'


def delivering_daemon(root: Path, extra: str = "") -> DaemonUnderTest:
    """A daemon delivering to the import folder root/out."""
    (root / "out").mkdir()
    return DaemonUnderTest(root, extra=DELIVER + extra)


def good_invoice(samples_dir: Path, n: int) -> bytes:
    """The real sample under invoice number `n` (8 digits)."""
    return (samples_dir / GOOD_SAMPLE).read_bytes().replace(b"00008006", b"%08d" % n)


def absurd_shudian(samples_dir: Path, n: int, digits: int = 18) -> bytes:
    """The official 数电 sample with a 价税合计 of `digits` digits."""
    total = b"9" * digits + b".12"
    return ((samples_dir / SHUDIAN_SAMPLE).read_bytes()
            .replace(b"<TotalTax-includedAmount>2.12<", b"<TotalTax-includedAmount>" + total + b"<")
            .replace(b"23440000000000100001", b"234400000000001%05d" % n))


def slow_pdf(tag: str, pages: int = 300, side: int = 8000) -> bytes:
    """~60 KB: `pages` pages each drawing one side x side image (a scan the
    reader decodes page by page: about 2 s a page, 10 minutes in all)."""
    img = _stream(b"/Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray "
                  b"/BitsPerComponent 8 /Filter /FlateDecode" % (side, side), zlib.compress(b"\0" * side * side, 9))
    content = _stream(b"", b"q 500 0 0 500 0 0 cm /Im0 Do Q")
    kids = b" ".join(b"%d 0 R" % (5 + i) for i in range(pages))
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, pages),
               content, img]
    objects += [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 500 500] /Contents 3 0 R "
                b"/Resources << /XObject << /Im0 4 0 R >> >> >>"] * pages
    return _raw_pdf(objects, tag)


def drop(folder: Path, name: str, data: bytes) -> None:
    tmp = folder / f".{name}.tmp"
    tmp.write_bytes(data)
    tmp.rename(folder / name)


def doc_named(d: DaemonUnderTest, name: str):
    return next((doc for doc in d.documents() if doc.original_name == name), None)


def delivered(d: DaemonUnderTest, name: str) -> bool:
    doc = doc_named(d, name)
    return doc is not None and doc.state == "delivered"


def test_absurd_amounts_are_quarantined_and_nothing_behind_them_waits(tmp_path, samples_dir):
    # Two 数电 XMLs with 18- and 25-digit totals took both workers for good;
    # a third came by e-mail. Now each is quarantined amount-range, and the
    # invoice dropped after them is delivered.
    d = delivering_daemon(tmp_path)
    d.start()
    try:
        drop(d.root / "scan", "huge-18.xml", absurd_shudian(samples_dir, 1, 18))
        drop(d.root / "scan", "huge-25.xml", absurd_shudian(samples_dir, 2, 25))
        msg = email.message.EmailMessage()
        msg["From"], msg["Subject"], msg["Message-ID"] = "a@example.cn", "发票", "<huge@example.cn>"
        msg.set_content("invoice attached")
        msg.add_attachment(absurd_shudian(samples_dir, 3, 19), maintype="application", subtype="xml",
                           filename="huge-mail.xml")
        drop(d.root / "mail", "huge.eml", msg.as_bytes())
        time.sleep(1.0)
        drop(d.root / "scan", "good.xml", good_invoice(samples_dir, 4242))

        def settled():
            docs = {doc.original_name: doc for doc in d.documents()}
            wanted = ("huge-18.xml", "huge-25.xml", "huge-mail.xml", "good.xml")
            if all(n in docs and docs[n].state not in ("captured", "extracted", "valid", "queued", "delivering")
                   for n in wanted):
                return docs
            return None

        docs = d.wait_until(settled, 60, "the absurd invoices quarantined and the good one delivered")
        assert docs["good.xml"].state == "delivered"
        for name in ("huge-18.xml", "huge-25.xml", "huge-mail.xml"):
            doc = docs[name]
            assert doc.state == "quarantined", (name, doc.state)
            assert "amount-range" in {p["code"] for p in doc.problems}, (name, doc.problems)
            assert doc.total_cents is None
        assert d.proc.poll() is None
        assert not [line for line in d.lines if "Traceback" in line or "could not record" in line]
    finally:
        d.stop()


def test_a_recording_that_keeps_failing_backs_off_then_is_quarantined(tmp_path, samples_dir):
    # A real SQLite trigger refuses to record one document's reading, its
    # fields (as a value the ledger cannot take would). It used to stay
    # `captured` and be re-read in a spin; now it is tried 5 times, each no
    # earlier than its retry time, across a SIGKILL of the daemon, then
    # quarantined. (On the fields, not on the state `extracted`: a reading
    # is read, judged and queued by one update, Ledger.advance, so the row
    # never holds that state.)
    d = delivering_daemon(tmp_path)
    with Ledger(d.root / "state" / "ledger.sqlite3") as led:
        led.conn.execute("CREATE TRIGGER refuse_poison BEFORE UPDATE OF fields ON documents "
                         "WHEN NEW.fields IS NOT NULL AND NEW.original_name = 'poison.xml' "
                         "BEGIN SELECT RAISE(ABORT, 'injected: this value cannot be recorded'); END")
    d.start()
    try:
        drop(d.root / "scan", "poison.xml", good_invoice(samples_dir, 5151))
        time.sleep(1.0)
        drop(d.root / "scan", "good.xml", good_invoice(samples_dir, 5252))

        def attempts(doc_id):
            with d.ledger() as led:
                return sum((e.reason or "").startswith("reading failed") for e in led.events(doc_id))

        poison = d.wait_until(lambda: doc_named(d, "poison.xml"), 20, "the poison document")
        d.wait_until(lambda: attempts(poison.id) >= 2, 30, "two failed attempts")
        d.kill()
        kept = attempts(poison.id)
        d.start()
        d.wait_until(lambda: doc_named(d, "poison.xml").state == "quarantined", 90, "the poison quarantined")
        assert doc_named(d, "good.xml").state in ("queued", "delivering", "delivered")
        with d.ledger() as led:
            doc = led.get(poison.id)
            retry = led.extraction_retry(poison.id)
            failures = [e for e in led.events(poison.id) if (e.reason or "").startswith("reading failed")]
        assert kept >= 2 and retry["attempts"] == 5 and retry["next_at"] is None
        assert "injected" in retry["error"]
        assert [p["code"] for p in doc.problems] == ["extract-failed"]
        assert "injected: this value cannot be recorded" in doc.problems[0]["message"]
        assert len(failures) == 5, [e.reason for e in failures]
        for before, after in zip(failures, failures[1:]):
            assert parse_utc(after.at) >= parse_utc(before.details["retry_at"]), (before.details, after.at)
    finally:
        d.stop()


def test_a_pdf_past_timeout_is_stopped_and_the_invoice_behind_it_is_delivered_in_time(tmp_path, samples_dir):
    # Two 10-minute PDFs on both workers, then a good invoice: it is
    # delivered within timeout_s (plus settling and delivery), the PDFs are
    # quarantined extract-timeout, and the workers are replaced.
    timeout_s = 4
    d = delivering_daemon(tmp_path, f"\n[extract]\ntimeout_s = {timeout_s}\n")
    d.start()
    try:
        for name in ("slow-1.pdf", "slow-2.pdf"):
            drop(d.root / "scan", name, slow_pdf(name))
        d.wait_until(lambda: len(d.documents()) == 2, 20, "both slow PDFs captured")
        dropped = time.monotonic()
        drop(d.root / "scan", "good.xml", good_invoice(samples_dir, 6363))
        d.wait_until(lambda: delivered(d, "good.xml"), timeout_s + 20, "the good invoice delivered")
        waited = time.monotonic() - dropped
        d.wait_until(lambda: all(doc_named(d, n).state != "captured" for n in ("slow-1.pdf", "slow-2.pdf")),
                     timeout_s + 10, "both slow PDFs stopped")
        for name in ("slow-1.pdf", "slow-2.pdf"):
            doc = doc_named(d, name)
            assert doc.state == "quarantined", (name, doc.state)
            assert [p["code"] for p in doc.problems] == ["extract-timeout"]
            assert f"longer than {timeout_s} s" in doc.problems[0]["message"]
        assert waited < timeout_s + 20
        # The pool works on: another invoice goes through the replaced workers.
        drop(d.root / "scan", "after.xml", good_invoice(samples_dir, 6464))
        d.wait_until(lambda: delivered(d, "after.xml"), 30, "an invoice after the timeouts delivered")
    finally:
        d.stop()


def _descendants(pid: int) -> dict[int, str]:
    """pid -> start time of every live process below `pid` (from /proc)."""
    children: dict[int, list[int]] = {}
    start: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        children.setdefault(int(fields[1]), []).append(int(entry))
        start[int(entry)] = fields[19]
    out, todo = {}, [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out[child] = start[child]
            todo.append(child)
    return out


def _alive(procs: dict[int, str]) -> list[int]:
    left = []
    for pid, started in procs.items():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)
        if fields[1].split()[19] == started and fields[1].split()[0] != "Z":
            left.append(pid)
    return left


def test_sigkill_of_the_daemon_leaves_none_of_its_processes(tmp_path):
    # Busy workers (a 10-minute PDF each) under a forkserver: after the
    # daemon is SIGKILLed, every process it started is gone within 5 s.
    d = DaemonUnderTest(tmp_path)
    d.start()
    procs: dict[int, str] = {}
    try:
        for name in ("slow-1.pdf", "slow-2.pdf"):
            drop(d.root / "scan", name, slow_pdf(name))
        d.wait_until(lambda: len(d.documents()) == 2, 20, "both slow PDFs captured")
        time.sleep(1.0)  # the workers are reading them now
        procs = _descendants(d.proc.pid)
        assert len(procs) >= 3, procs  # forkserver and two workers at least
        d.kill()
        time.sleep(5.0)
        left = _alive(procs)
        assert not left, [Path(f"/proc/{p}/cmdline").read_bytes()[:80] for p in left]
    finally:
        for pid in _alive(procs):  # the old code's orphans: never leave them running
            os.kill(pid, signal.SIGKILL)
