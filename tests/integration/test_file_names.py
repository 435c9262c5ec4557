"""File names that are not UTF-8, as a Samba share without charset
conversion passes a Chinese Windows scanner's GBK names through: each
document is shown by a name a person can read (the Chinese when the bytes
are GBK, \\xNN otherwise), never U+FFFD, so two such files never look
alike; the arrival keeps the exact path."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.audit import audit_ledger
from agent.audit_rules import AuditSettings
from agent.config import WatchConfig
from agent.filenames import exact_path, readable_name, storable
from agent.ledger import Ledger
from agent.mail import MailLimits
from agent.vault import Vault
from service.intake import Intake
from tests.support.audit import assert_ledger_sound
from tests.support.cli import default_config

REPO = Path(__file__).resolve().parents[2]
INVOICE = REPO.parent / "shared" / "samples" / "renoyuan__easyofd" / "original_invoice.xml"


def cli(cfg: Path, *args: str | bytes) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "service", "--config", str(cfg), *args],
                          capture_output=True, timeout=120, cwd=REPO)


def test_readable_and_storable_spellings():
    gbk = os.fsdecode("发票-一月.xml".encode("gbk"))
    assert readable_name(gbk) == "发票-一月.xml"
    # Exact, as Python decodes the bytes: some GBK pairs are UTF-8 too (c6 b1: Ʊ).
    assert storable(gbk) == "\\xb7\\xa2Ʊ-һ\\xd4\\xc2.xml"
    # Not GBK (0xff is no lead byte; 0xe9 before "." no pair): exact bytes as \xNN.
    assert readable_name(os.fsdecode(b"a\xffb.pdf")) == "a\\xffb.pdf"
    assert readable_name(os.fsdecode(b"caf\xe9.pdf")) == "caf\\xe9.pdf"
    # Latin-1 names whose accented letter and the ASCII letter after it
    # make a GBK pair are not shown as Chinese they never were.
    assert readable_name(os.fsdecode("März.pdf".encode("latin-1"))) == "M\\xe4rz.pdf"
    assert readable_name(os.fsdecode("Müller-Rechnung.xml".encode("latin-1"))) == "M\\xfcller-Rechnung.xml"
    assert readable_name(os.fsdecode("扫描件（发票）-一月.pdf".encode("gbk"))) == "扫描件（发票）-一月.pdf"
    assert readable_name(os.fsdecode(b"caf\xe8.pdf")) != readable_name(os.fsdecode(b"caf\xe9.pdf"))
    # A GBK reading with a control character in it is no name: bytes as they are.
    assert readable_name(os.fsdecode(b"\x81\x7f.pdf")) == "\\x81\x7f.pdf"
    assert readable_name("发票.pdf") == "发票.pdf" and storable("发票.pdf") == "发票.pdf"


def test_gbk_and_latin1_names_are_listed_readable_and_distinct(tmp_path):
    cfg = default_config(tmp_path)
    drop = tmp_path / "drop"
    drop.mkdir()
    template = INVOICE.read_bytes()
    names = ["发票-一月.xml".encode("gbk"), b"caf\xe8.xml", b"caf\xe9.xml"]
    for i, raw in enumerate(names):
        with open(bytes(drop) + b"/" + raw, "wb") as f:
            f.write(template.replace(b"00008006", b"%08d" % (30_000_000 + i)))
    r = cli(cfg, "ingest", str(drop))
    assert r.returncode == 0, r.stderr.decode()
    listed = [json.loads(line) for line in cli(cfg, "list", "--json").stdout.decode("utf-8").splitlines()]
    shown = sorted(d["original_name"] for d in listed)
    assert shown == sorted(["发票-一月.xml", "caf\\xe8.xml", "caf\\xe9.xml"]), shown
    doc = next(d for d in listed if d["original_name"] == "发票-一月.xml")
    out = cli(cfg, "show", str(doc["id"])).stdout.decode("utf-8")  # strict: no raw byte printed
    assert "/drop/\\xb7\\xa2Ʊ-һ\\xd4\\xc2.xml" in out, out  # the arrival's exact path
    assert "\ufffd" not in out
    assert_ledger_sound(cfg)


def test_exact_path_never_spells_two_names_alike():
    # A name literally holding "\xe8" and one holding the byte 0xe8 read
    # alike as `storable` spells them; the ledger's keys must not.
    literal, byte = "inv\\xe8.xml", os.fsdecode(b"inv\xe8.xml")
    assert storable(literal) == storable(byte)
    assert exact_path(literal) != exact_path(byte)
    assert exact_path("发票.pdf") == "发票.pdf" and exact_path("a\\b.pdf") == "a\\b.pdf"
    assert exact_path(byte) == storable(byte)  # keys of ledgers made before stay as they were
    assert exact_path(literal) == "inv\\x5cxe8.xml"


# Pieces of names: backslashes, "x", hex digits and the bytes they spell.
_PIECES = (b"\\", b"x", b"e", b"8", b"5", b"c", b"\xe8", b"\xff", b".")


@settings(max_examples=400, deadline=None)
@given(st.lists(st.lists(st.sampled_from(_PIECES), min_size=1, max_size=8).map(b"".join),
                min_size=2, max_size=8, unique=True))
def test_exact_path_is_one_to_one_on_byte_names(names):
    # Every name its own spelling, each beside the name whose bytes are its
    # `storable` spelling; a name without a backslash spelled as `storable` does.
    names = list(dict.fromkeys(names + [storable(os.fsdecode(n)).encode() for n in names]))
    spelled = [exact_path(os.fsdecode(n)) for n in names]
    assert len(set(spelled)) == len(names), list(zip(names, spelled))
    for n, s in zip(names, spelled):
        assert b"\\" in n or s == storable(os.fsdecode(n))


def kept_site(tmp: Path) -> tuple[Intake, Ledger, Vault, WatchConfig]:
    """An intake of tmp/scan, kept there (after = "keep"), with its ledger and vault."""
    (tmp / "scan").mkdir()
    ledger, vault = Ledger(tmp / "ledger.sqlite3"), Vault(tmp / "vault")
    intake = Intake(ledger, vault, max_bytes=10 << 20, mail_limits=MailLimits(), actor="t")
    return intake, ledger, vault, WatchConfig(path=tmp / "scan", kind="scanner", after="keep")


def audit_now(ledger: Ledger, vault: Vault, watch: WatchConfig) -> list:
    """`audit ledger`'s violations, the watched folder's files counted as settled."""
    return list(audit_ledger(ledger, vault.root, AuditSettings(watched=((str(watch.path), "keep"),),
                                                                unhandled_after_s=0),
                             now=dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=5)))


def test_a_literal_escape_beside_the_byte_it_reads_as_is_taken_once_each(tmp_path):
    # Both kept in a watched folder: each is captured once and remembered
    # under its own key, so a rescan takes neither again (with one key, each
    # capture replaced the other's row and both were taken at every rescan).
    intake, ledger, vault, watch = kept_site(tmp_path)
    template = INVOICE.read_bytes()
    scan = os.fsencode(tmp_path / "scan")
    names = [b"inv\\xe8.xml", b"inv\xe8.xml"]
    for i, raw in enumerate(names):
        with open(scan + b"/" + raw, "wb") as f:
            f.write(template.replace(b"00008006", b"%08d" % (31_000_000 + i)))
    now, today = "2026-12-03T10:00:00.000000Z", dt.date(2026, 12, 3)
    first = [intake.take(Path(os.fsdecode(scan + b"/" + raw)), watch, now=now, today=today) for raw in names]
    assert [len(r.documents) for r in first] == [1, 1]
    for rescan in range(3):
        again = [intake.take(Path(os.fsdecode(scan + b"/" + raw)), watch, now=now, today=today) for raw in names]
        assert all(r.skipped and not r.documents for r in again), (rescan, again)
    arrivals = ledger.conn.execute("SELECT original_path FROM sources ORDER BY id").fetchall()
    assert len(arrivals) == 2 and arrivals[0][0] != arrivals[1][0], [a[0] for a in arrivals]
    # Neither is reported as never taken, nor as remembered without an arrival.
    assert not audit_now(ledger, vault, watch)


def test_refusals_of_names_that_read_alike_are_each_their_own(tmp_path):
    # Junk under a byte name and under the literal name its bytes read as:
    # each refused under its own exact name, two zips of the same bytes
    # never folded into one refusal, and the audit sees a missing one.
    import io
    import zipfile

    intake, ledger, vault, watch = kept_site(tmp_path)
    junk_zip = io.BytesIO()
    with zipfile.ZipFile(junk_zip, "w") as z:
        z.writestr("junk.txt", "not an invoice")
    scan = os.fsencode(tmp_path / "scan")
    files = {b"r\xe8.txt": b"plain text, no invoice " * 10, b"r\\xe8.txt": b"plain text, no invoice " * 10,
             b"z\xe8.zip": junk_zip.getvalue(), b"z\\xe8.zip": junk_zip.getvalue()}
    now, today = "2026-12-03T10:00:00.000000Z", dt.date(2026, 12, 3)
    for raw, data in files.items():
        with open(scan + b"/" + raw, "wb") as f:
            f.write(data)
        assert not intake.take(Path(os.fsdecode(scan + b"/" + raw)), watch, now=now, today=today).documents
    names = sorted(r[0] for r in ledger.conn.execute("SELECT name FROM refusals WHERE name NOT LIKE '%junk.txt'"))
    assert names == sorted(exact_path(os.fsdecode(raw)) for raw in files), names
    assert len(set(names)) == 4
    zip_sources = {r[0] for r in ledger.conn.execute("SELECT source FROM refusals WHERE name LIKE '%/junk.txt'")}
    assert len(zip_sources) == 2, zip_sources
    assert not audit_now(ledger, vault, watch)
    ledger.conn.execute("DELETE FROM refusals WHERE name = ?", (exact_path(os.fsdecode(b"z\\xe8.zip")),))
    ledger.conn.commit()
    found = audit_now(ledger, vault, watch)
    assert [v.code for v in found] == ["seen-not-recorded"] and "z\\x5cxe8.zip" in found[0].message, found
