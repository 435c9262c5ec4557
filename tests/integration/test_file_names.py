"""File names that are not UTF-8, as a Samba share without charset
conversion passes a Chinese Windows scanner's GBK names through: each
document is shown by a name a person can read (the Chinese when the bytes
are GBK, \\xNN otherwise), never U+FFFD, so two such files never look
alike; the arrival keeps the exact path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from agent.filenames import readable_name, storable
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
