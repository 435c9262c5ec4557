"""A zip archive dropped in a watched folder (a bulk download from the tax
platform, a colleague's batch) is read as a zip mailed in is: each invoice
file in it a document, every other member refused naming the archive, the
archive itself kept as the original, backed up, described and audited. An
OFD (a zip with OFD.xml) stays one document. An archive that cannot be read
(cut short, its writer not done) is refused and left where it is, and taken
once it is whole."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

from click.testing import CliRunner

from agent.audit import AuditSettings, audit_ledger
from agent.config import WatchConfig, load_config
from agent.defaults import DEFAULT_CONFIG
from agent.ledger import Ledger
from agent.mail import MailLimits
from agent.vault import Vault
from service.cli import main
from service.intake import Intake

NOW = "2026-12-03T10:00:00.000000Z"
TODAY = dt.date(2026, 12, 3)


def setup(tmp: Path, after: str = "keep") -> tuple[Intake, Ledger, Vault, WatchConfig]:
    (tmp / "scan").mkdir()
    ledger, vault = Ledger(tmp / "ledger.sqlite3"), Vault(tmp / "vault")
    intake = Intake(ledger, vault, max_bytes=10 << 20, mail_limits=MailLimits(), actor="t")
    return intake, ledger, vault, WatchConfig(path=tmp / "scan", kind="scanner", after=after)


def zip_of(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return out.getvalue()


def invoices(samples_dir: Path) -> dict[str, bytes]:
    xml = (samples_dir / "renoyuan__easyofd/original_invoice.xml").read_bytes()
    return {"dzfp_1.xml": xml, "dzfp_2.xml": xml.replace(b"00008006", b"00008007"),
            "票据/发票.pdf": next(samples_dir.rglob("*.pdf")).read_bytes(),
            "专票.ofd": (samples_dir / "renoyuan__easyofd/增值税电子专票5.ofd").read_bytes()}


def sources_of(ledger: Ledger, doc_id: int) -> list[dict]:
    return [dict(r) for r in ledger.conn.execute("SELECT source_kind, original_name, details FROM sources "
                                                 "WHERE document_id = ?", (doc_id,))]


def test_each_invoice_in_a_dropped_zip_is_a_document_and_the_rest_is_refused_naming_the_archive(
        tmp_path, samples_dir):
    intake, ledger, vault, watch = setup(tmp_path)
    files = invoices(samples_dir)
    inner = zip_of({"inner.xml": files["dzfp_1.xml"].replace(b"00008006", b"00008099")})
    archive = zip_of({**files, "说明.txt": "请查收".encode(), "more.zip": inner})
    sha = hashlib.sha256(archive).hexdigest()
    (watch.path / "发票批量下载.zip").write_bytes(archive)

    result = intake.take(watch.path / "发票批量下载.zip", watch, now=NOW, today=TODAY)

    assert len(result.documents) == 5 and not result.refused
    names = {}
    for doc_id in result.documents:
        [src] = sources_of(ledger, doc_id)
        details = json.loads(src["details"])
        assert src["source_kind"] == "scanner"
        assert details["archive_sha256"] == sha, "each document names the archive it came out of"
        assert details["archive_path"] == str(watch.path / "发票批量下载.zip")
        names[src["original_name"]] = (ledger.get(doc_id).media_type, details["from_zip"])
    assert names == {"dzfp_1.xml": ("xml", "发票批量下载.zip"), "dzfp_2.xml": ("xml", "发票批量下载.zip"),
                     "发票.pdf": ("pdf", "发票批量下载.zip"), "专票.ofd": ("ofd", "发票批量下载.zip"),
                     "inner.xml": ("xml", "发票批量下载.zip/more.zip")}
    [refusal] = ledger.refusals()
    assert refusal["name"] == "发票批量下载.zip/说明.txt" and refusal["reason"].startswith("unsupported-format")
    assert refusal["sha256"] == sha
    # The archive is the original: in the vault, named by the ledger, backed up, described.
    assert vault.path(sha).read_bytes() == archive
    assert sha in ledger.sidecar(sha)["sha256"] and ledger.sidecar(sha)["kind"] == "zip-archive"
    assert sorted(ledger.sidecar(sha)["document_ids"]) == sorted(result.documents)
    ledger.enqueue_backups("nas", now=NOW)
    queued = {r[0] for r in ledger.conn.execute("SELECT sha256 FROM backups WHERE target = 'nas'")}
    assert sha in queued and all(ledger.get(d).sha256 in queued for d in result.documents)
    # Kept in place and remembered: a rescan takes nothing again.
    assert (watch.path / "发票批量下载.zip").exists()
    again = intake.take(watch.path / "发票批量下载.zip", watch, now=NOW, today=TODAY)
    assert again.skipped and not again.documents
    # Every member's document is read as any capture is, and the audit finds nothing amiss.
    assert_sound(ledger, vault)
    # A touch (or chmod, chown) of the kept archive is no new arrival.
    os.utime(watch.path / "发票批量下载.zip", (1, 1))
    touched = intake.take(watch.path / "发票批量下载.zip", watch, now=NOW, today=TODAY)
    assert not touched.documents
    assert ledger.conn.execute("SELECT count(*) FROM sources").fetchone()[0] == 5
    assert len(ledger.refusals()) == 1
    assert_sound(ledger, vault)


def assert_sound(ledger: Ledger, vault: Vault) -> None:
    violations = list(audit_ledger(ledger, vault.root, AuditSettings(destinations=()),
                                   now=dt.datetime(2026, 12, 3, 10, 1, tzinfo=dt.timezone.utc)))
    assert violations == [], violations


def test_an_archive_holding_only_junk_or_nothing_is_refused_with_its_bytes_kept(tmp_path):
    intake, ledger, vault, watch = setup(tmp_path)
    (watch.path / "empty.zip").write_bytes(zip_of({}))
    (watch.path / "junk.zip").write_bytes(zip_of({"a.txt": b"hello", "b.bin": b"\x00\x01\x02"}))
    for name in ("empty.zip", "junk.zip"):
        assert not intake.take(watch.path / name, watch, now=NOW, today=TODAY).documents
    refusals = {(r["name"], r["reason"].split(":")[0]) for r in ledger.refusals()}
    assert refusals == {("empty.zip", "no-invoice"), ("junk.zip", "no-invoice"),
                        ("junk.zip/a.txt", "unsupported-format"), ("junk.zip/b.bin", "unsupported-format")}
    # Said in Chinese too, as every refusal a person reads of a file not read.
    whole = {r["name"]: r["reason"] for r in ledger.refusals()}
    assert "压缩包是空的" in whole["empty.zip"] and "2 个其他文件列在 junk.zip/ 下" in whole["junk.zip"]
    for r in ledger.refusals():
        assert vault.exists(r["sha256"]), "every refusal names bytes the vault keeps"
        assert ledger.sidecar(r["sha256"])["kind"] == "zip-archive"


def test_an_ofd_whose_head_says_zip_is_one_document_not_an_archive(tmp_path, samples_dir):
    # An OFD written with OFD.xml last: only the central directory tells it from a zip.
    intake, ledger, vault, watch = setup(tmp_path)
    out = io.BytesIO()
    with zipfile.ZipFile(samples_dir / "renoyuan__easyofd/增值税电子专票5.ofd") as src, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for info in sorted(src.infolist(), key=lambda i: i.filename.lower() == "ofd.xml"):
            dst.writestr(info.filename, src.read(info.filename))
    (watch.path / "专票.ofd").write_bytes(out.getvalue())
    result = intake.take(watch.path / "专票.ofd", watch, now=NOW, today=TODAY)
    [doc_id] = result.documents
    assert ledger.get(doc_id).sha256 == hashlib.sha256(out.getvalue()).hexdigest()
    assert not ledger.refusals()


def test_a_zip_cut_short_stays_in_place_refused_until_it_is_whole_then_is_moved(tmp_path, samples_dir):
    intake, ledger, vault, watch = setup(tmp_path, after="move")
    archive = zip_of(invoices(samples_dir))
    path = watch.path / "batch.zip"
    path.write_bytes(archive[: len(archive) // 2])   # its writer paused past the settle time

    cut = intake.take(path, watch, now=NOW, today=TODAY)
    assert not cut.documents
    [refusal] = ledger.refusals()
    assert refusal["reason"].startswith("zip-corrupt") and vault.exists(refusal["sha256"])
    assert path.exists(), "an archive that could not be read is never moved away"
    assert intake.take(path, watch, now=NOW, today=TODAY).skipped, "remembered until it changes"

    path.write_bytes(archive)   # the writer came back with the rest
    whole = intake.take(path, watch, now=NOW, today=TODAY)
    assert len(whole.documents) == 4
    assert not path.exists()
    assert (watch.path / "processed" / TODAY.isoformat() / "batch.zip").read_bytes() == archive


def test_ingest_reads_a_zip_as_the_watched_folder_does(tmp_path, samples_dir):
    archive = zip_of({**invoices(samples_dir), "notes.txt": b"x"})
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "batch.zip").write_bytes(archive)
    cfg = tmp_path / "agent.toml"
    cfg.write_text(DEFAULT_CONFIG, encoding="utf-8")
    r = CliRunner().invoke(main, ["--config", str(cfg), "ingest", "--no-process", str(tmp_path / "in")],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "4 new, 0 already known, 0 failed" in r.output
    assert "batch.zip -> zip archive: documents" in r.output
    with Ledger(load_config(cfg).ledger_path) as ledger:
        assert ledger.conn.execute("SELECT count(*) FROM documents").fetchone()[0] == 4
        [refusal] = ledger.refusals()
        assert refusal["name"] == "batch.zip/notes.txt"
        assert refusal["sha256"] == hashlib.sha256(archive).hexdigest()
        first = ledger.conn.execute("SELECT min(id) FROM documents").fetchone()[0]
    shown = CliRunner().invoke(main, ["--config", str(cfg), "show", str(first)], catch_exceptions=False)
    assert f"out of zip archive batch.zip ({tmp_path / 'in' / 'batch.zip'})" in shown.output, shown.output


def test_an_office_file_is_one_refusal_left_in_place_not_a_document_per_part(tmp_path):
    # An .xlsx or .docx is a zip of XML parts: reading it as an archive
    # made a quarantined document of every part (mailed in, too).
    intake, ledger, vault, watch = setup(tmp_path, after="move")
    parts = {"[Content_Types].xml": b'<?xml version="1.0"?><Types/>', "_rels/.rels": b"<Relationships/>",
             "xl/workbook.xml": b"<workbook/>",
             "xl/worksheets/sheet1.xml": b"<worksheet/>"}
    (watch.path / "报销明细.xlsx").write_bytes(zip_of(parts))
    (watch.path / "说明.odt").write_bytes(zip_of({"mimetype": b"application/vnd.oasis.opendocument.text",
                                                "content.xml": b"<office:document-content/>"}))
    for name in ("报销明细.xlsx", "说明.odt"):
        result = intake.take(watch.path / name, watch, now=NOW, today=TODAY)
        assert not result.documents
        assert (watch.path / name).exists(), "a refused file stays where it is"
    reasons = {r["name"]: r["reason"] for r in ledger.refusals()}
    assert reasons["报销明细.xlsx"].startswith("unsupported-format: an Excel workbook: ")
    assert reasons["说明.odt"].startswith("unsupported-format: an OpenDocument")
    assert len(reasons) == 2
    assert ledger.conn.execute("SELECT count(*) FROM documents").fetchone()[0] == 0
    assert intake.take(watch.path / "说明.odt", watch, now=NOW, today=TODAY).skipped


def test_an_office_file_mailed_in_is_one_refusal():
    from agent.mail import parse_message
    import base64
    xlsx = zip_of({"[Content_Types].xml": b"<Types/>", "_rels/.rels": b"<Relationships/>",
                   "xl/workbook.xml": b"<workbook/>"})
    msg = (b"From: a@example.cn\r\nMessage-ID: <x@example.cn>\r\nMIME-Version: 1.0\r\n"
           b'Content-Type: multipart/mixed; boundary="B"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nhi\r\n'
           b"--B\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; "
           b'filename="list.xlsx"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
           + base64.b64encode(xlsx) + b"\r\n--B--\r\n")
    parsed = parse_message(msg)
    assert parsed.attachments == []
    assert [(r.filename, r.reason) for r in parsed.refusals] == [("list.xlsx", "unsupported-format")]


def stored_zip(members: dict[str, bytes]) -> bytes:
    return zip_of(members, zipfile.ZIP_STORED)


def test_a_zip_of_zips_or_ofds_cut_right_after_one_is_not_taken_for_that_one(tmp_path, samples_dir):
    # Stored (not compressed), a zip's members lie in it as they are: cut
    # right after the first, the file ends with that member's own end record,
    # which zipfile takes for the file's. It must not be read as that member,
    # nor moved or deleted while its writer goes on.
    intake, ledger, vault, watch = setup(tmp_path, after="delete")
    xml = invoices(samples_dir)["dzfp_1.xml"]
    ofd = invoices(samples_dir)["专票.ofd"]
    inner = stored_zip({"m1.xml": xml})
    for name, outer, first in (("zips.zip", stored_zip({"m1.zip": inner, "d1.xml": xml.replace(b"00008006", b"1")}),
                                inner),
                               ("ofds.zip", stored_zip({"a.ofd": ofd, "b.xml": xml}), ofd)):
        cut = outer[: outer.index(first) + len(first)]
        (watch.path / name).write_bytes(cut)
        result = intake.take(watch.path / name, watch, now=NOW, today=TODAY)
        assert not result.documents, name
        assert (watch.path / name).exists(), f"{name}: never deleted while it may be written"
    reasons = {r["name"]: r["reason"] for r in ledger.refusals()}
    assert reasons["zips.zip"].startswith("zip-corrupt") and reasons["ofds.zip"].startswith("zip-corrupt")
    assert ledger.conn.execute("SELECT count(*) FROM documents").fetchone()[0] == 0
    assert_sound(ledger, vault)


def test_an_archive_refused_under_a_name_with_odd_characters_is_named_as_the_file_is(tmp_path):
    intake, ledger, vault, watch = setup(tmp_path)
    for name, data in (("a|b?.zip", zip_of({"x.xml": b"<a/>"})[:40]), ("报销:明细\u202e.zip", zip_of({}))):
        (watch.path / name).write_bytes(data)
        assert not intake.take(watch.path / name, watch, now=NOW, today=TODAY).documents
    assert {r["name"] for r in ledger.refusals()} == {"a|b?.zip", "报销:明细\u202e.zip"}
    assert_sound(ledger, vault)


def test_names_that_mark_a_package_only_make_one_when_all_are_there(tmp_path, samples_dir):
    # An invoice archive may hold a stray [Content_Types].xml or mimetype
    # file; only a whole package's members make an Office or OpenDocument file.
    intake, ledger, vault, watch = setup(tmp_path)
    xml = invoices(samples_dir)["dzfp_1.xml"]
    (watch.path / "a.zip").write_bytes(zip_of({"[Content_Types].xml": b"stray", "inv.xml": xml}))
    (watch.path / "b.zip").write_bytes(zip_of({"inv.xml": xml.replace(b"00008006", b"2"), "mimetype": b"x"}))
    for name in ("a.zip", "b.zip"):
        assert len(intake.take(watch.path / name, watch, now=NOW, today=TODAY).documents) == 1, name


def test_a_folder_entry_that_carries_bytes_is_refused_not_dropped(tmp_path):
    intake, ledger, vault, watch = setup(tmp_path)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr(zipfile.ZipInfo("发票.xml/"), b"<EInvoice>hidden</EInvoice>")
    (watch.path / "dir.zip").write_bytes(out.getvalue())
    intake.take(watch.path / "dir.zip", watch, now=NOW, today=TODAY)
    reasons = {r["name"]: r["reason"] for r in ledger.refusals()}
    assert any(r.startswith("directory-with-data") for r in reasons.values()), reasons


def test_ingest_of_an_archive_nothing_is_taken_from_fails_and_records_its_refusals_once(tmp_path, samples_dir):
    archive = zip_of(invoices(samples_dir))
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "cut.zip").write_bytes(archive[: len(archive) // 2])
    (tmp_path / "in" / "junk.zip").write_bytes(zip_of({"a.txt": b"x"}))
    cfg = tmp_path / "agent.toml"
    cfg.write_text(DEFAULT_CONFIG, encoding="utf-8")
    for _ in range(2):
        r = CliRunner().invoke(main, ["--config", str(cfg), "ingest", "--no-process", str(tmp_path / "in")],
                               catch_exceptions=False)
        assert r.exit_code == 1, r.output   # `ingest x.zip && rm x.zip` must stop here
        assert "FAIL" in r.output and "cut.zip: refused, nothing in it was taken" in r.output
        assert "0 new, 0 already known, 2 failed" in r.output
    with Ledger(load_config(cfg).ledger_path) as ledger:
        names = sorted(r["name"] for r in ledger.refusals())
    assert names == ["cut.zip", "junk.zip", "junk.zip/a.txt"], "each refusal once, however often taken"


def test_two_archives_whose_names_differ_in_bytes_that_are_not_text_are_told_apart(tmp_path):
    intake, ledger, vault, watch = setup(tmp_path)
    for raw in (b"caf\xe8.zip", b"caf\xe9.zip"):
        name = os.fsdecode(raw)
        (watch.path / name).write_bytes(zip_of({"a.txt": b"x"}))
        intake.take(watch.path / name, watch, now=NOW, today=TODAY)
    members = sorted(r["name"] for r in ledger.refusals() if r["name"].endswith("a.txt"))
    assert members == ["caf\\xe8.zip/a.txt", "caf\\xe9.zip/a.txt"]
    assert_sound(ledger, vault)


def test_an_archive_that_cannot_be_moved_is_kept_and_not_taken_again(tmp_path, samples_dir):
    # processed/ is a file, so the move after the capture fails: the archive
    # stays, remembered as kept. Without that row every rescan took it again,
    # one more arrival per member each time.
    intake, ledger, vault, watch = setup(tmp_path, after="move")
    (watch.path / "processed").write_bytes(b"not a folder")
    files = invoices(samples_dir)
    (watch.path / "bulk.zip").write_bytes(zip_of({"a.xml": files["dzfp_1.xml"], "b.xml": files["dzfp_2.xml"]}))
    docs = intake.take(watch.path / "bulk.zip", watch, now=NOW, today=TODAY).documents
    assert len(docs) == 2 and (watch.path / "bulk.zip").exists()
    for doc_id in docs:  # each document it brought says why its source stayed, as a plain file's does
        kept = [e.reason for e in ledger.events(doc_id) if (e.reason or "").startswith("source kept: ")]
        assert kept and "not a folder; not touched" in kept[0], ledger.events(doc_id)
    for _ in range(3):
        again = intake.take(watch.path / "bulk.zip", watch, now=NOW, today=TODAY)
        assert again.skipped and not again.documents
    assert ledger.conn.execute("SELECT count(*) FROM sources").fetchone()[0] == 2
    assert [tuple(r) for r in ledger.conn.execute("SELECT outcome FROM seen_files")] == [("kept",)]
    # A copy bringing no new document: its documents say that it stayed too.
    (watch.path / "copy.zip").write_bytes((watch.path / "bulk.zip").read_bytes())
    assert not intake.take(watch.path / "copy.zip", watch, now=NOW, today=TODAY).documents
    for doc_id in docs:
        kept = [e.details["path"] for e in ledger.events(doc_id) if (e.reason or "").startswith("source kept: ")]
        assert kept == [str(watch.path / "bulk.zip"), str(watch.path / "copy.zip")], kept
    assert not list(audit_ledger(ledger, vault.root, AuditSettings(), now=dt.datetime.now(dt.timezone.utc)))


def test_an_archive_nothing_was_taken_from_past_its_limits_says_so_not_no_invoice(tmp_path, samples_dir):
    # The budget spent on junk before the invoices: they are refused by name,
    # and the archive's own refusal says they were not read, never "holds
    # no invoice file".
    import dataclasses

    (tmp_path / "scan").mkdir()
    base = MailLimits()
    limits = dataclasses.replace(base, zip_limits=dataclasses.replace(base.zip_limits, max_total_bytes=1_000_000))
    ledger, vault = Ledger(tmp_path / "ledger.sqlite3"), Vault(tmp_path / "vault")
    intake = Intake(ledger, vault, max_bytes=10 << 20, mail_limits=limits, actor="t")
    watch = WatchConfig(path=tmp_path / "scan", kind="scanner", after="keep")
    xml = invoices(samples_dir)["dzfp_1.xml"]
    inner = zip_of({f"z{i}.bin": b"\0" * 100_000 for i in range(9)})
    (watch.path / "bulk.zip").write_bytes(zip_of({"A.zip": inner, "C.bin": b"\0" * 200_000, "D.xml": xml},
                                                 zipfile.ZIP_STORED))
    assert not intake.take(watch.path / "bulk.zip", watch, now=NOW, today=TODAY).documents
    reasons = {r["name"]: r["reason"] for r in ledger.refusals()}
    assert reasons["bulk.zip/D.xml"].startswith("zip-limit-exceeded"), reasons
    assert reasons["bulk.zip"].startswith("zip-limit-exceeded: nothing was taken; 2 of its files were not read"), \
        reasons["bulk.zip"]


def test_an_email_that_cannot_be_moved_says_so_on_every_document_it_brought(tmp_path, samples_dir):
    # The e-mail side of the above: its move waits until what it brought
    # was read, then fails: kept, and each document it brought (a second
    # copy brings no new one) says why its source stayed.
    from email.message import EmailMessage

    from agent.pipeline import process_captured
    from agent.validate import ValidationSettings

    (tmp_path / "mail").mkdir()
    ledger, vault = Ledger(tmp_path / "ledger.sqlite3"), Vault(tmp_path / "vault")
    intake = Intake(ledger, vault, max_bytes=10 << 20, mail_limits=MailLimits(), actor="t")
    watch = WatchConfig(path=tmp_path / "mail", kind="email", after="move")
    (watch.path / "processed").write_bytes(b"not a folder")
    m = EmailMessage()
    m["From"], m["To"], m["Subject"], m["Message-ID"] = "a@b.example", "ap@c.example", "发票", "<1@b.example>"
    m.set_content("see attached")
    m.add_attachment(invoices(samples_dir)["dzfp_1.xml"], maintype="application", subtype="xml",
                     filename="dzfp.xml")
    for name in ("one.eml", "copy.eml"):
        (watch.path / name).write_bytes(m.as_bytes())
        intake.take(watch.path / name, watch, now=NOW, today=TODAY)
        for doc_id in ledger.ids_in_state("captured"):
            process_captured(ledger, vault, doc_id, settings=ValidationSettings(max_age_days=100000),
                             destinations=[], today=TODAY, now=NOW, actor="t", ocr=False)
        intake.finish_sources([watch], now=NOW, today=TODAY)
        assert (watch.path / name).exists()
    (doc_id,) = [r[0] for r in ledger.conn.execute("SELECT id FROM documents")]
    kept = [e.reason for e in ledger.events(doc_id) if (e.reason or "").startswith("source kept: ")]
    assert len(kept) == 2 and all("not a folder; not touched" in k for k in kept), kept
    actions = [(os.fsdecode(a["path"]), a["state"]) for a in ledger.source_actions(doc_id)]
    assert actions == [(str(watch.path / "one.eml"), "kept"), (str(watch.path / "copy.eml"), "kept")]
    assert [r[0] for r in ledger.conn.execute("SELECT outcome FROM seen_files")] == ["kept", "kept"]


def test_an_email_that_brought_nothing_stays_in_place_explained_by_its_refusals(tmp_path):
    # Every part refused (or no attachment yet: a message still being
    # written): nothing was taken from it, so it is not moved or deleted,
    # as a refused scanner file is not; taken again only when it changes.
    (tmp_path / "mail").mkdir()
    ledger, vault = Ledger(tmp_path / "ledger.sqlite3"), Vault(tmp_path / "vault")
    intake = Intake(ledger, vault, max_bytes=10 << 20, mail_limits=MailLimits(), actor="t")
    for after in ("move", "delete"):
        watch = WatchConfig(path=tmp_path / "mail", kind="email", after=after)
        path = watch.path / f"junk-{after}.eml"
        path.write_bytes(junk_mail(f"<{after}@b.example>"))
        assert not intake.take(path, watch, now=NOW, today=TODAY).documents
        intake.finish_sources([watch], now=NOW, today=TODAY)
        assert path.exists() and not (watch.path / "processed").exists()
        again = intake.take(path, watch, now=NOW, today=TODAY)  # remembered: not taken again
        assert again.skipped and not again.documents
    reasons = sorted(r["reason"].split(":")[0] for r in ledger.refusals())
    assert reasons == ["unsupported-format", "unsupported-format"], ledger.refusals()
    settings = AuditSettings(mail_roots=(str(watch.path),))  # as the daemon's audit knows its e-mail folders
    assert not list(audit_ledger(ledger, vault.root, settings, now=dt.datetime.now(dt.timezone.utc)))


def test_a_maildir_message_that_brought_nothing_and_cannot_go_to_cur_says_so_in_refused(tmp_path):
    # No document to carry a "source kept" event: the file's own refusal
    # row says it stayed and why, beside its parts' refusals, never only in
    # the log.
    box = tmp_path / "Maildir"
    (box / "new").mkdir(parents=True)
    (box / "cur").write_bytes(b"not a folder")
    ledger, vault = Ledger(tmp_path / "ledger.sqlite3"), Vault(tmp_path / "vault")
    intake = Intake(ledger, vault, max_bytes=10 << 20, mail_limits=MailLimits(), actor="t")
    watch = WatchConfig(path=box, kind="email", after="keep")
    path = box / "new" / "1.M1.host"
    path.write_bytes(junk_mail("<2@b.example>"))
    assert not intake.take(path, watch, now=NOW, today=TODAY).documents
    assert path.exists()
    reasons = {r["name"]: (r["source"], r["reason"]) for r in ledger.refusals()}
    assert reasons["scan.bin"][1].startswith("unsupported-format"), reasons
    source, reason = reasons["1.M1.host"]
    assert source == str(box) and reason.startswith("source kept: ") and "'cur'" in reason, reason
    again = intake.take(path, watch, now=NOW, today=TODAY)
    assert again.skipped and not again.documents and len(ledger.refusals()) == 2
    assert [r[0] for r in ledger.conn.execute("SELECT outcome FROM seen_files")] == ["kept"]


def junk_mail(message_id: str) -> bytes:
    from email.message import EmailMessage

    m = EmailMessage()
    m["From"], m["To"], m["Subject"], m["Message-ID"] = "a@b.example", "ap@c.example", "合同", message_id
    m.set_content("see attached")
    m.add_attachment(b"\x00\x01 not an invoice at all", maintype="application", subtype="octet-stream",
                     filename="scan.bin")
    return m.as_bytes()
