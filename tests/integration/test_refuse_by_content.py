"""Intake refuses a file by its content when no invoice format fits it (random
bytes, text, blank bytes), however small or large, keeping its bytes in the
vault and naming them in the refusal; tiny files of a readable format (a
small 数电 XML, a small image) are still taken as documents. Extraction then
reads likely invoices before the junk captured ahead of them."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import shutil
from pathlib import Path

from PIL import Image

from agent import pipeline
from agent.config import WatchConfig
from agent.ledger import Ledger
from agent.ledger.documents import EXTRACT_RANK
from agent.mail import MailLimits
from agent.vault import Vault
from service.intake import Intake

NOW = "2026-12-03T10:00:00.000000Z"
TODAY = dt.date(2026, 12, 3)


def setup(tmp: Path) -> tuple[Intake, Ledger, Vault, WatchConfig]:
    (tmp / "scan").mkdir()
    ledger, vault = Ledger(tmp / "ledger.sqlite3"), Vault(tmp / "vault")
    intake = Intake(ledger, vault, max_bytes=10 << 20, mail_limits=MailLimits(), actor="t")
    return intake, ledger, vault, WatchConfig(path=tmp / "scan", kind="scanner", after="keep")


def tiny_png() -> bytes:
    out = io.BytesIO()
    Image.new("1", (1, 1)).save(out, "PNG")
    return out.getvalue()


def test_junk_is_refused_by_content_with_its_bytes_kept_and_tiny_invoices_are_taken(tmp_path, samples_dir):
    intake, ledger, vault, watch = setup(tmp_path)
    junk = {"random.pdf": b"\x00\x01\x02\x03" + os.urandom(10), "text.pdf": b"scan failed 1\n",
            "blank.pdf": b" \n\t \n", "big-random.bin": b"\x00" + os.urandom(200_000)}
    taken = {"invoice.xml": (samples_dir / "renoyuan__easyofd/original_invoice.xml").read_bytes(),
             "tiny.xml": b"<a/>", "tiny.png": tiny_png(), "cut.pdf": b"%PDF-1.4 x"}
    for name, data in {**junk, **taken}.items():
        (watch.path / name).write_bytes(data)
    with intake.group(now=NOW, today=TODAY):
        results = {name: intake.take(watch.path / name, watch, now=NOW, today=TODAY) for name in junk}
    for name, data in taken.items():
        assert intake.take(watch.path / name, watch, now=NOW, today=TODAY).documents, name
    refusals = {r["name"]: r for r in ledger.refusals()}
    assert set(refusals) == set(junk)
    for name, data in junk.items():
        assert results[name].refused and not results[name].documents
        r = refusals[name]
        assert r["sha256"] == hashlib.sha256(data).hexdigest(), f"{name}: the refusal must name its bytes"
        assert vault.verify(r["sha256"]), f"{name}: the refused original is not kept in the vault"
        assert r["reason"].startswith("empty" if name == "blank.pdf" else "unsupported-format"), r["reason"]
        assert (watch.path / name).read_bytes() == data, "a refused file is left where it is"
    names = {d.original_name for d in ledger.list_documents()}
    assert names == set(taken)
    assert not list((vault.root / "tmp").iterdir()), "staged bytes left behind"
    # Taken again (a rescan): refused no second time.
    with intake.group(now=NOW, today=TODAY):
        for name in junk:
            assert intake.take(watch.path / name, watch, now=NOW, today=TODAY).skipped
    assert len(ledger.refusals()) == len(junk)


def test_an_error_in_a_group_leaves_no_staged_bytes_and_no_refusal(tmp_path):
    intake, ledger, vault, watch = setup(tmp_path)
    (watch.path / "junk.pdf").write_bytes(b"\x00junk")
    try:
        with intake.group(now=NOW, today=TODAY):
            assert intake.take(watch.path / "junk.pdf", watch, now=NOW, today=TODAY).refused
            raise RuntimeError("the ledger's disk went away")
    except RuntimeError:
        pass
    assert not ledger.refusals()
    assert not list((vault.root / "tmp").iterdir())
    assert not vault.exists(hashlib.sha256(b"\x00junk").hexdigest())


def test_likely_invoices_are_read_before_junk_captured_ahead_of_them(tmp_path, samples_dir):
    intake, ledger, vault, watch = setup(tmp_path)
    for i in range(50):  # cut-off headers of invoice formats: documents, but tiny
        (watch.path / f"cut{i:02d}.pdf").write_bytes(b"%%PDF-1.4 x%d" % i)
        intake.take(watch.path / f"cut{i:02d}.pdf", watch, now=NOW, today=TODAY)
    shutil.copy(samples_dir / "renoyuan__easyofd/original_invoice.xml", watch.path / "invoice.xml")
    (doc_id,) = intake.take(watch.path / "invoice.xml", watch, now=NOW, today=TODAY).documents
    assert pipeline.due_for_extraction(ledger, now=NOW, limit=2)[0].id == doc_id
    assert len(pipeline.due_for_extraction(ledger, now=NOW, limit=100)) == 51


def test_the_extraction_order_is_served_by_an_index(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    with ledger.transaction() as c:
        c.executemany("INSERT INTO documents (sha256, size, media_type, state, received_at, updated_at, "
                      "source_kind) VALUES (?, ?, ?, ?, ?, ?, 'scanner')",
                      [(f"{i:064x}", 14 if i % 2 else 5000, "pdf" if i % 3 else "unknown",
                        "captured" if i % 5 else "delivered", f"2026-12-03T{i // 3600 % 24:02d}:00:00Z", NOW)
                       for i in range(100_000)])
    plan = " ".join(r[3] for r in ledger.conn.execute(
        f"EXPLAIN QUERY PLAN SELECT id, sha256, {EXTRACT_RANK} = 0 FROM documents WHERE state = ? AND (extract_next_at IS NULL OR "
        f"extract_next_at <= ? OR extract_next_at > ?) ORDER BY {EXTRACT_RANK}, received_at, id LIMIT ?",
        ("captured", NOW, NOW, 4)))
    assert "documents_extract_order" in plan and "TEMP B-TREE" not in plan, plan
    first = pipeline.due_for_extraction(ledger, now=NOW, limit=4)
    sizes = [ledger.get(d.id).size for d in first]
    assert sizes == [5000] * 4 and all(ledger.get(d.id).media_type == "pdf" and d.likely_invoice for d in first)
    assert all(d.sha256 == ledger.get(d.id).sha256 for d in first)


def test_an_ofd_stored_as_a_zip_is_read_among_the_likely_invoices(tmp_path, samples_dir):
    # An OFD whose first member is not OFD.xml, with that member's header past
    # the 4 KiB capture sniffs: its head says only "zip". It must not wait
    # behind every likely invoice of a flood captured before it.
    import zipfile

    intake, ledger, vault, watch = setup(tmp_path)
    out = io.BytesIO()
    with zipfile.ZipFile(samples_dir / "renoyuan__easyofd/增值税电子专票5.ofd") as src, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        dst.writestr("Doc_0/Res/padding.bin", os.urandom(8192))
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    for i in range(20):  # likely invoices captured first
        (watch.path / f"p{i:02d}.pdf").write_bytes(b"%PDF-1.4\n" + os.urandom(400))
        intake.take(watch.path / f"p{i:02d}.pdf", watch, now=NOW, today=TODAY)
    for i in range(20):  # tiny junk of an invoice format, captured before the OFD too
        (watch.path / f"cut{i:02d}.pdf").write_bytes(b"%%PDF-1.4 x%d" % i)
        intake.take(watch.path / f"cut{i:02d}.pdf", watch, now=NOW, today=TODAY)
    (watch.path / "invoice.ofd").write_bytes(out.getvalue())
    (doc_id,) = intake.take(watch.path / "invoice.ofd", watch, now=NOW, today=TODAY).documents
    assert ledger.get(doc_id).media_type == "zip"
    due = pipeline.due_for_extraction(ledger, now=NOW, limit=100)
    assert [d.id for d in due].index(doc_id) == 20, "read with the likely invoices, before the tiny junk"
    assert next(d for d in due if d.id == doc_id).likely_invoice


def test_an_upgraded_ledger_reads_its_zips_among_the_likely_invoices_by_the_index(tmp_path):
    # Migration 29 rebuilds the extraction-order index with the zip in it.
    from agent.ledger.schema import MIGRATIONS
    from tests.support.old_ledger import ledger_before

    before = next(i for i, m in enumerate(MIGRATIONS) if "'zip'" in m and "documents_extract_order" in m)
    path = tmp_path / "ledger.sqlite3"
    conn = ledger_before(path, before)
    for i, (media, size) in enumerate([("pdf", 50), ("zip", 5000), ("pdf", 5000)]):
        conn.execute("INSERT INTO documents (sha256, size, media_type, source_kind, received_at, updated_at, state) "
                     "VALUES (?, ?, ?, 'scanner', ?, ?, 'captured')", (f"{i:064x}", size, media, NOW, NOW))
    conn.execute("COMMIT")
    conn.close()
    with Ledger(path) as ledger:
        assert [d.id for d in pipeline.due_for_extraction(ledger, now=NOW, limit=10)] == [2, 3, 1]
        plan = " ".join(r[3] for r in ledger.conn.execute(
            f"EXPLAIN QUERY PLAN SELECT id, sha256, {EXTRACT_RANK} = 0 FROM documents WHERE state = ? AND "
            f"(extract_next_at IS NULL OR extract_next_at <= ? OR extract_next_at > ?) "
            f"ORDER BY {EXTRACT_RANK}, received_at, id LIMIT ?", ("captured", NOW, NOW, 4)))
        assert "documents_extract_order" in plan and "TEMP B-TREE" not in plan, plan
