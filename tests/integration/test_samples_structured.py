"""Every non-null expected.json field of every real XML and OFD sample, read exactly.

Money is compared as the 2-decimal strings of Invoice.to_dict(), dates as
ISO strings, everything else as the exact string: no normalisation here
that could hide a wrong reading.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.extract import extract_path
from service.commands.extract import command as extract_command
from tests.conftest import SAMPLES

NOT_FIELDS = {"notes", "source"}
STRUCTURED = sorted(
    name for name in json.loads((SAMPLES / "expected.json").read_text(encoding="utf-8"))
    if name.endswith((".xml", ".ofd"))
) if SAMPLES.is_dir() else []


# An OFD with no text at all (ofdrw's converter draws every glyph as a path):
# what its QR does not carry is read by rendering the page and OCR.
DRAWN = "fanta0625__libreoffice-ofd-extension/test.ofd"
DRAWN_BY_OCR = ("amount", "tax", "total_in_words", "buyer_name", "buyer_tax_id", "seller_name", "seller_tax_id")


def test_the_structured_samples_are_all_there(expected_fields):
    assert STRUCTURED == sorted(n for n in expected_fields if n.endswith((".xml", ".ofd")))
    assert len(STRUCTURED) >= 9 and DRAWN in STRUCTURED


@lru_cache(maxsize=None)
def _read(path: Path) -> tuple:
    """extract_path's invoices of one sample, read once for the three tests
    below that only look at them (the drawn OFD alone costs seconds of OCR);
    the CLI test still reads every file through the command itself."""
    return tuple(extract_path(path))


def _expected(expected_fields: dict, name: str) -> dict:
    return {k: v for k, v in expected_fields[name].items() if k not in NOT_FIELDS and v is not None}


@pytest.mark.parametrize("name", STRUCTURED)
def test_sample_fields_are_extracted_exactly(name, samples_dir, expected_fields):
    invoices = _read(samples_dir / name)
    assert len(invoices) == 1
    got = invoices[0].to_dict()
    expected = _expected(expected_fields, name)
    assert expected, name
    mismatches = {k: (got.get(k), v) for k, v in expected.items() if got.get(k) != v}
    assert mismatches == {}
    if name == DRAWN:
        assert {got["sources"][k] for k in DRAWN_BY_OCR} == {"ocr"}
    # The notes say every source in these files agrees; a conflict would mean a misread.
    assert got["conflicts"] == []


def test_only_the_known_odd_qr_is_flagged(samples_dir):
    problems = {name: [p["code"] for p in _read(samples_dir / name)[0].to_dict()["problems"]]
                for name in STRUCTURED}
    assert {n: p for n, p in problems.items() if p} == {"ofdrw__ofdrw/draw_param_ref.ofd": ["qr-crc"]}


@pytest.mark.parametrize("name", STRUCTURED)
def test_line_items_sum_to_the_totals(name, samples_dir, expected_fields):
    inv = _read(samples_dir / name)[0]
    assert inv.items, name
    assert sum(i.amount for i in inv.items) == inv.get("amount"), name
    if inv.get("tax") is not None:
        assert sum(i.tax for i in inv.items) == inv.get("tax"), name


def test_cli_json_lines_carry_the_same_fields(samples_dir, expected_fields):
    paths = [str(samples_dir / n) for n in STRUCTURED]
    result = CliRunner().invoke(extract_command, ["--json", *paths])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [rec["file"] for rec in lines] == paths
    for rec, name in zip(lines, STRUCTURED):
        for key, value in expected_fields[name].items():
            if key not in NOT_FIELDS and value is not None:
                assert rec[key] == value, (name, key)
        assert rec["kind_name"] in (None, "增值税电子普通发票", "增值税电子专用发票",
                                    "电子发票（增值税专用发票）", "电子发票（普通发票）")
        assert set(rec["sources"]) <= set(rec) and rec["sources"]


def test_cli_reports_each_failed_file_and_exits_nonzero(tmp_path, samples_dir):
    empty = tmp_path / "empty.pdf"
    empty.write_bytes(b"")
    xxe = tmp_path / "evil.xml"
    xxe.write_bytes(b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><EInvoice>&x;</EInvoice>')
    good = samples_dir / "renoyuan__easyofd/original_invoice.xml"
    result = CliRunner().invoke(extract_command, [str(empty), str(good), str(xxe)])
    assert result.exit_code == 1
    assert f"{empty}: FAILED empty:" in result.output
    assert f"{xxe}: FAILED unsafe-xml:" in result.output
    assert "00008006" in result.output and "[xml]" in result.output


MALFORMED_TAG_SAMPLES = ["ofdrw__ofdrw/1.ofd", "renoyuan__easyofd/增值税电子专票5.ofd"]


@pytest.mark.parametrize("name", MALFORMED_TAG_SAMPLES)
def test_real_malformed_tags_alone_give_the_printed_fields(name, samples_dir, expected_fields):
    # These files' Tags/CustomTag.xml is not well-formed (<:eInvoice xmlns:="">).
    # With CustomDatas and the XML attachment removed, the tags (read by the
    # regex fallback) and the page text are all that is left to read from.
    import io
    import re
    import zipfile

    from agent.extract.ofd import read_ofd

    src = zipfile.ZipFile(samples_dir / name)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as out:
        for member in src.namelist():
            data = src.read(member)
            if member.endswith("original_invoice.xml"):
                continue
            if member == "OFD.xml":
                data = re.sub(rb"<ofd:CustomDatas>.*</ofd:CustomDatas>", b"", data, flags=re.S)
                assert b"CustomData" not in data
            out.writestr(member, data)
    [inv] = read_ofd(buf.getvalue())
    got = inv.to_dict()
    tag_fields = ["code", "number", "date", "check_code", "amount", "tax", "total", "buyer_name",
                  "buyer_tax_id", "seller_name", "seller_tax_id", "title", "total_in_words"]
    assert {f: got[f] for f in tag_fields} == {f: expected_fields[name][f] for f in tag_fields}
    assert {got["sources"][f] for f in tag_fields} == {"ofd"}


PRINTED_FIELDS = ["code", "number", "date", "check_code", "amount", "tax", "total", "total_in_words",
                  "buyer_name", "buyer_tax_id", "seller_name", "seller_tax_id", "title"]


def _page_text_only(path) -> bytes:
    # The OFD with everything but its pages taken out: no CustomDatas, no
    # tags, no XML attachment (the QR images stay).
    import io
    import re
    import zipfile

    src = zipfile.ZipFile(path)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as out:
        for member in src.namelist():
            data = src.read(member)
            if re.search(r"(?i)/(tags|attachs)/", member):
                continue
            if member == "OFD.xml":
                data = re.sub(rb"<ofd:CustomDatas>.*</ofd:CustomDatas>", b"", data, flags=re.S)
            out.writestr(member, data)
    return buf.getvalue()


@pytest.mark.parametrize("name", [n for n in STRUCTURED if n.endswith(".ofd") and n != DRAWN])
def test_page_text_alone_gives_every_printed_field_by_position(name, samples_dir, expected_fields):
    from agent.extract.ofd import read_ofd

    [inv] = read_ofd(_page_text_only(samples_dir / name))
    got = inv.to_dict()
    want = {f: expected_fields[name][f] for f in PRINTED_FIELDS if expected_fields[name][f] is not None}
    # draw_param_ref.ofd prints no 合计 row: its tax is on the (详见销货清单)
    # line only, so it stays empty rather than guessed (the QR gives the amount).
    unprinted = {"tax"} if name == "ofdrw__ofdrw/draw_param_ref.ofd" else set()
    assert {f: got[f] for f in want if f not in unprinted} == {f: v for f, v in want.items() if f not in unprinted}
    assert all(got[f] is None for f in unprinted)
    assert got["conflicts"] == []


def test_without_ocr_a_drawn_ofd_gives_its_qr_fields_and_nothing_printed(samples_dir):
    (inv,) = extract_path(samples_dir / DRAWN, ocr=False)
    got = inv.to_dict()
    assert set(got["sources"].values()) == {"qr"}
    assert all(got[f] is None for f in DRAWN_BY_OCR)
