"""Characters that print as nothing (zero-width space, joiners, word joiner,
soft hyphen, BOM; Unicode's format characters): a number holding one prints
as another number and is another invoice key. Read from any source, a digit
field holding one is left empty with an error; every output shows them
escaped; an operator cannot type them (agent/textchars.py, the one list)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.amend import AmendError, parse_value
from agent.extract.ofd import read_ofd
from agent.extract.text import normalize_text, parse_text
from agent.extract.xml import parse_date, read_xml
from agent.model import Invoice
from agent.notify.base import one_line
from service.textsafe import json_text, shown
from tests.support.cli import default_config, run
from tests.unit.test_xml_ofd import SHUDIAN_XML, make_ofd

INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\u2063", "\ufeff", "\u00ad", "\u180e", "\u200e", "\U000e0030"]
NUMBER = "25317000002856389003"


@pytest.mark.parametrize("ch", INVISIBLE)
def test_a_digit_field_holding_an_invisible_character_is_left_empty_with_an_error(ch):
    inv = Invoice()
    for name in ("number", "code", "check_code", "seller_tax_id", "buyer_tax_id"):
        inv.offer(name, f"2531700000{ch}2856389003", "qr")
        assert inv.get(name) is None
    assert {p.field for p in inv.problems if p.code == "field-invisible-character"} >= {"number", "seller_tax_id"}
    [first, *_] = inv.problems
    assert first.severity == "error" and shown(ch) in first.message and ch not in first.message
    # A name keeps its text as written.
    inv.offer("seller_name", f"上海{ch}某某公司", "xml")
    assert inv.get("seller_name") == f"上海{ch}某某公司"


def test_xml_number_and_date_with_a_zero_width_space_are_no_reading():
    data = SHUDIAN_XML.replace(NUMBER.encode(), f"2531700000{chr(0x200b)}2856389003".encode())
    inv = read_xml(data)
    assert inv.get("number") is None and inv.key is None
    assert any(p.code == "field-invisible-character" and p.field == "number" for p in inv.problems)
    # `2025-11-0<ZWSP>8` holds the shape of 8 November's first digits: never 0 anything.
    data = SHUDIAN_XML.replace(b"2025-11-08", "2025-11-0\u200b8".encode())
    inv = read_xml(data)
    assert inv.get("date") is None
    assert [p.code for p in inv.problems if p.field == "date"] == ["field-invisible-character"]
    assert parse_date("2025-01-1\u200b5") is None and parse_date("2025-01-15").day == 15


def test_ofd_custom_data_with_an_invisible_character_is_no_reading():
    [inv] = read_ofd(make_ofd(custom_datas={"发票号码": "8308\u20609647", "开票日期": "2020-08-0\u200b5",
                                            "价税合计": "52\u200b6.00", "销售方名称": "江苏\u200b某某公司"}))
    assert inv.get("number") != "8308\u20609647" and inv.get("date") is None
    assert {p.field for p in inv.problems if p.code == "field-invisible-character"} >= {"number", "date", "total"}
    assert inv.get("seller_name") == "江苏\u200b某某公司"


def test_a_text_layer_reads_what_the_page_prints():
    # Kept, the space would leave "25317000" looking like an 8-digit number.
    assert normalize_text(f"发票号码:25317000\u200b{NUMBER[8:]}") == f"发票号码:{NUMBER}"
    assert parse_text(normalize_text(f"发票号码: 25317000\u200b{NUMBER[8:]}")).fields.get("number") == NUMBER


@pytest.mark.parametrize("ch", INVISIBLE)
def test_every_output_shows_them_and_an_operator_cannot_type_them(ch):
    assert ch not in shown(f"a{ch}b") and ch not in one_line(f"a{ch}b")
    dumped = json.dumps({"n": f"1{ch}2"}, ensure_ascii=False)
    assert ch not in json_text(dumped) and json.loads(json_text(dumped)) == {"n": f"1{ch}2"}
    with pytest.raises(AmendError):
        parse_value("seller_name", f"上海{ch}某某公司")
    with pytest.raises(AmendError):
        parse_value("number", f"2531700000{ch}2856389003")


def test_the_look_alike_number_is_shown_escaped_and_quarantined(tmp_path: Path):
    cfg = default_config(tmp_path)
    (tmp_path / "real.xml").write_bytes(SHUDIAN_XML)
    (tmp_path / "zw.xml").write_bytes(SHUDIAN_XML.replace(NUMBER.encode(),
                                                          f"2531700000{chr(0x200b)}2856389003".encode()))
    r = run(cfg, "ingest", str(tmp_path / "real.xml"), str(tmp_path / "zw.xml"))
    assert r.exit_code == 0, r.output
    for args in (("list",), ("list", "--json"), ("show", "2"), ("quarantine",)):
        r = run(cfg, *args)
        assert "\u200b" not in r.output, (args, r.output)
    r = run(cfg, "show", "2")
    assert "field-invisible-character" in r.output and "2531700000\\u200b2856389003" in r.output
