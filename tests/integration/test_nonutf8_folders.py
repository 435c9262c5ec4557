"""Folder names that are not UTF-8 (a GBK department folder from a Windows
share, a Latin-1 one), wherever a path becomes text: `ingest` of a tree
holding them used to stop with a traceback, capturing nothing, and one
file's rows that could not be written lost its whole group. Now every text
made of a path is spelled before it reaches SQLite (GBK as Chinese for
people, \\xNN otherwise; exact where the ledger matches), the ledger itself
stores a text some caller left unspelled as \\xNN, and a file whose rows
cannot be written is a FAIL line of its own."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from agent.filenames import readable_path, readable_spelled, exact_path, storable, storable_value
from agent.ledger import Ledger
from tests.support.audit import assert_ledger_sound
from tests.support.cli import default_config

REPO = Path(__file__).resolve().parents[2]
INVOICE = REPO.parent / "shared" / "samples" / "renoyuan__easyofd" / "original_invoice.xml"
GBK = "财务部".encode("gbk")
LATIN1 = "März".encode("latin-1")


def cli(cfg: Path, *args: str | bytes) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "service", "--config", str(cfg), *args],
                          capture_output=True, timeout=180, cwd=REPO)


def invoice(n: int) -> bytes:
    return INVOICE.read_bytes().replace(b"00008006", b"%08d" % n)


def put(path: bytes, data: bytes) -> bytes:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path


def eml(data: bytes) -> bytes:
    import base64
    return ("From: a@example.cn\r\nTo: ap@example.cn\r\nSubject: inv\r\nMessage-ID: <n1@x>\r\n"
            "Date: Mon, 2 Nov 2026 10:00:00 +0800\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="B"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nhi\r\n'
            "--B\r\nContent-Type: application/xml\r\nContent-Disposition: attachment; filename=m.xml\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(data).decode() + "--B--\r\n").encode()


def archive(data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("z.xml", data)
    return buf.getvalue()


def test_path_spellings_for_people_and_for_the_ledger():
    gbk_path = os.fsdecode(b"/srv/in/" + GBK + b"/" + "一月.xml".encode("gbk"))
    assert readable_path(gbk_path) == "/srv/in/财务部/一月.xml"
    # One name at a time: a UTF-8 name beside GBK bytes is never read as GBK.
    assert readable_path(os.fsdecode(b"/srv/" + GBK + "/发票.xml".encode())) == "/srv/财务部/发票.xml"
    assert readable_path(os.fsdecode(b"/srv/" + LATIN1 + b"/a.xml")) == "/srv/M\\xe4rz/a.xml"
    assert readable_path("/srv/发票/a.xml") == "/srv/发票/a.xml"
    # The exact spelling read back: the same reading as the path's own.
    for raw in (b"/srv/" + GBK + b"/a.xml", b"/srv/" + LATIN1 + b"/a\\x41.xml", b"/a\\xe8/\xe8.xml"):
        path = os.fsdecode(raw)
        assert readable_spelled(exact_path(path)) == readable_path(path), raw
    assert readable_spelled("/srv/plain/a.xml") == "/srv/plain/a.xml"
    # The ledger's guard: every text, keys too; UTF-8 text untouched; even a
    # lone surrogate that is no file name's byte is made storable.
    got = storable_value({"label": os.fsdecode(GBK), os.fsdecode(b"k\xff"): [os.fsdecode(b"\xe4"), 1, None],
                          "ok": "财务部"})
    assert got == {"label": "\\xb2\\xc6\\xce\\xf1\\xb2\\xbf", "k\\xff": ["\\xe4", 1, None], "ok": "财务部"}
    assert storable("a\ud800b") == "a\\ud800b"
    json.dumps(got).encode("utf-8")


def test_the_ledger_stores_a_path_text_no_caller_spelled(tmp_path):
    # A text with a file name's raw bytes (surrogate escapes) reaching the
    # ledger unspelled is stored \xNN: never a UnicodeEncodeError that
    # leaves the file uncaptured.
    raw = os.fsdecode(b"/in/" + GBK)
    with Ledger(tmp_path / "ledger.sqlite3") as led:
        doc_id, created = led.add_document(sha256="ab" * 32, size=10, media_type="xml", source_kind="ingest",
                                           source=raw, original_name=os.fsdecode(b"\xe4.xml"),
                                           original_path=raw + "/a.xml", now="2026-11-02T00:00:00Z", actor="t",
                                           details={"label": os.fsdecode(GBK)})
        assert created
        (src,) = led.sources(doc_id)
        assert src.source == "/in/\\xb2\\xc6\\xce\\xf1\\xb2\\xbf" and src.original_name == "\\xe4.xml"
        assert src.details == {"label": "\\xb2\\xc6\\xce\\xf1\\xb2\\xbf"}
        led.record_refusal(source=raw, name=os.fsdecode(b"\xe4"), reason=raw + ": refused",
                           now="2026-11-02T00:00:00Z")
        led.remember_file(raw + "/b.xml", 1, 1, ino=1, ctime_ns=1, outcome="refused", now="2026-11-02T00:00:00Z")
        with led.transaction():
            led._event(doc_id, now="2026-11-02T00:00:00Z", actor="t", from_state=None, to_state=None,
                       reason=f"source kept: {raw}", details={"path": raw})
        assert led.refusals()[0]["source"] == "/in/\\xb2\\xc6\\xce\\xf1\\xb2\\xbf"
        assert led.events(doc_id)[-1].details == {"path": "/in/\\xb2\\xc6\\xce\\xf1\\xb2\\xbf"}


def test_ingest_of_a_tree_with_non_utf8_folders_takes_every_file(tmp_path):
    cfg = default_config(tmp_path)
    drop = os.fsencode(tmp_path / "drop")
    for i in range(3):
        put(drop + b"/inv%d.xml" % i, invoice(31_000_000 + i))
    put(drop + b"/" + GBK + b"/g.xml", invoice(31_000_010))
    put(drop + b"/" + GBK + b"/" + "一月.xml".encode("gbk"), invoice(31_000_011))
    put(drop + b"/" + LATIN1 + b"/l.xml", invoice(31_000_012))
    put(drop + b"/" + GBK + b"/" + "发票".encode("gbk") + b"/n.xml", invoice(31_000_013))
    put(drop + b"/" + GBK + b"/m.eml", eml(invoice(31_000_014)))
    put(drop + b"/" + GBK + b"/z.zip", archive(invoice(31_000_015)))
    r = cli(cfg, "ingest", drop)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    assert b"Traceback" not in r.stderr
    listed = {d["original_name"]: d for d in
              map(json.loads, cli(cfg, "list", "--json").stdout.decode("utf-8").splitlines())}
    assert sorted(listed) == sorted(["inv0.xml", "inv1.xml", "inv2.xml", "g.xml", "一月.xml", "l.xml", "n.xml",
                                     "m.xml", "z.xml"])
    root = str(tmp_path / "drop")

    def source(name: str) -> str:   # the folder, as `show --json` gives it
        return json.loads(cli(cfg, "show", "--json", str(listed[name]["id"])).stdout)["source"]
    assert source("g.xml") == source("一月.xml") == source("m.xml") == source("z.xml") == root + "/财务部"
    assert source("n.xml") == root + "/财务部/发票"
    assert source("l.xml") == root + "/M\\xe4rz"
    out = cli(cfg, "show", str(listed["n.xml"]["id"])).stdout.decode("utf-8")  # strict: no raw byte printed
    assert f"{root}/财务部/发票/n.xml  (exactly {root}/\\xb2\\xc6\\xce\\xf1\\xb2\\xbf/" in out, out
    # A single file inside, given by itself: taken too (already known: one more arrival).
    r = cli(cfg, "ingest", drop + b"/" + GBK + b"/g.xml")
    assert r.returncode == 0 and b"Traceback" not in r.stderr, r.stderr.decode()
    with Ledger(Path(cfg).parent / "state" / "ledger.sqlite3") as led:
        assert [s.source for s in led.sources(listed["g.xml"]["id"])] == [root + "/财务部"] * 2
    assert_ledger_sound(cfg)


def test_ingest_a_file_whose_rows_cannot_be_written_fails_alone(tmp_path):
    # One file's arrival refused by the ledger (a trigger stands for any
    # such error) used to end the run with a traceback and lose the group;
    # now it is a FAIL line, exit 1, and every other file of its group is taken.
    cfg = default_config(tmp_path)
    drop = os.fsencode(tmp_path / "drop")
    for i in range(3):
        put(drop + b"/inv%d.xml" % i, invoice(32_000_000 + i))
    put(drop + b"/" + GBK + b"/poison.xml", invoice(32_000_009))
    ledger_path = Path(cfg).parent / "state" / "ledger.sqlite3"
    with Ledger(ledger_path) as led:
        led.conn.execute("CREATE TRIGGER refuse_poison BEFORE INSERT ON sources WHEN NEW.original_name = "
                         "'poison.xml' BEGIN SELECT RAISE(ABORT, 'injected: cannot be recorded'); END")
    r = cli(cfg, "ingest", drop)
    err = r.stderr.decode("utf-8")
    assert r.returncode == 1 and "Traceback" not in err, err
    assert "FAIL " in err and "\\xb2\\xc6\\xce\\xf1\\xb2\\xbf/poison.xml: could not be recorded" in err and "injected" in err
    with Ledger(ledger_path) as led:
        assert sorted(d.original_name for d in led.list_documents(limit=0)) == ["inv0.xml", "inv1.xml", "inv2.xml"]
        led.conn.execute("DROP TRIGGER refuse_poison")
    r = cli(cfg, "ingest", drop)   # the cause gone: taken
    assert r.returncode == 0, r.stderr.decode()
    with Ledger(ledger_path) as led:
        assert len(led.list_documents(limit=0)) == 4
    assert_ledger_sound(cfg)
