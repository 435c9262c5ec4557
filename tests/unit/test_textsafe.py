"""service/textsafe.py and the CLI's human output: a file name cannot send the
terminal an escape sequence or forge a row (issue 12, attack on item 2)."""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
import unicodedata

from service.log import JsonFormatter, KeyValueFormatter
from service.textsafe import json_text, shown

# Everything a terminal acts on: C0 but the line end, DEL, C1, bidi controls.
_RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
HOSTILE = "\x1b[2J\x1b]0;pwned\x07x\n     99  delivered   2026-12-03T14:25:08  FAKE\u202egpj.\x9b31m.xml"


def test_shown_escapes_every_control_visibly_and_keeps_the_rest():
    out = shown(HOSTILE)
    assert not _RAW.search(out) and "\n" not in out
    assert out.startswith("\\x1b[2J\\x1b]0;pwned\\x07x\\n     99")
    assert "\\u202e" in out and "\\x9b" in out
    assert shown("发票 №12 ok.pdf") == "发票 №12 ok.pdf"


def test_json_text_is_the_same_value_without_raw_controls():
    dumped = json_text(json.dumps({"name": HOSTILE}, ensure_ascii=False))
    assert json.loads(dumped) == {"name": HOSTILE}
    assert not _RAW.search(dumped) and "\n" not in dumped


def test_log_lines_hold_no_raw_control_characters():
    record = logging.makeLogRecord({"msg": "took %s", "args": (HOSTILE,), "levelno": logging.INFO,
                                    "levelname": "INFO", "name": "fapiao.intake"})
    record.path = HOSTILE
    for formatter in (KeyValueFormatter(), JsonFormatter()):
        line = formatter.format(record)
        assert not _RAW.search(line) and "\n" not in line, line


def test_cli_text_output_shows_a_hostile_file_name_escaped_on_one_line(tmp_path, samples_dir):
    inbox = tmp_path / "in"
    inbox.mkdir()
    xml = samples_dir / "renoyuan__easyofd/original_invoice.xml"
    name = HOSTILE.replace("/", "_")
    shutil.copy(xml, inbox / name)
    (inbox / ("junk\x1b]0;t\x07\u202e.txt")).write_bytes(b"not an invoice at all")
    config = tmp_path / "agent.toml"
    config.write_text('[agent]\nstate_dir = "state"\n[validation]\nmax_age_days = 100000\n', encoding="utf-8")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "service", "--config", str(config), *args],
                              capture_output=True, text=True, timeout=120, cwd=tmp_path)

    r = run("ingest", str(inbox))
    assert not _RAW.search(r.stdout + r.stderr), (r.stdout, r.stderr)
    r = run("list", "--limit", "0")
    assert r.returncode == 0, r.stderr
    assert not _RAW.search(r.stdout + r.stderr), r.stdout
    assert "FAKE" in r.stdout and not any(line.lstrip().startswith("99 ") for line in r.stdout.splitlines())
    assert "\\x1b]0;pwned\\x07" in r.stdout
    for args in (("show", "1"), ("show", "2"), ("status",), ("quarantine", "list"), ("show", "/\x1bnope")):
        r = run(*args)
        assert not _RAW.search(r.stdout + r.stderr), (args, r.stdout, r.stderr)
    r = run("list", "--json", "--limit", "0")
    names = {json.loads(line)["original_name"] for line in r.stdout.splitlines()}
    assert name in names and not _RAW.search(r.stdout)


def test_every_code_point_is_kept_or_escaped_exactly_as_the_rule_says():
    # shown() skips the search for printable text (issue 17: start-up); this
    # walks every code point, printable or not, through both functions. The
    # rule: controls, bidi controls, line separators and every format
    # character (Cf: a zero-width space prints as nothing) are escaped; the
    # written-out list of them (agent/textchars.py) may hold a code point
    # this Python's Unicode does not assign yet, and nothing else.
    unsafe = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    for code in range(0x110000):
        if 0xD800 <= code < 0xE000:
            continue
        ch = chr(code)
        category = unicodedata.category(ch)
        if unsafe.fullmatch(ch) or category == "Cf" or (category == "Cn" and shown(ch) != ch):
            escaped = named.get(ch) or (f"\\x{code:02x}" if code < 0x100 else
                                        f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
            assert shown(f"a{ch}b") == f"a{escaped}b"
            assert json.loads(json_text(json.dumps(ch, ensure_ascii=False))) == ch
            assert json_text(ch) == ch if code < 0x20 else json_text(ch).isascii()
        else:
            assert shown(f"a{ch}b") == f"a{ch}b" and json_text(ch) == ch
    assert shown(12) == "12" and shown("发票\u3000\u202e") == "发票\u3000\\u202e"
