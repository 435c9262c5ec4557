"""An OFD page whose XML does not parse is still read, with exactly the text
a parser would give or none (outside review A, finding 7): CDATA unwrapped,
references decoded, the declared encoding honoured; an object the fallback
cannot read faithfully gets no text, never a wrapped or garbled one."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import pytest

from agent.extract.ofd import OFD_LIMITS, read_ofd
from agent.extract.ofd_package import OfdPackage, document_pages, parse_part
from agent.safezip import open_zip
from tests.support.zips import rezip
from tests.unit.test_xml_ofd import OFD_NS, make_ofd

SUZHOU = "CoderWanFeng__poocr/suzhou.ofd"
PAGE = "Doc_0/Pages/Page_0/Content.xml"
FIELDS = ["title", "number", "date", "amount", "tax", "total", "total_in_words", "buyer_name", "buyer_tax_id",
          "seller_name", "seller_tax_id"]


def _stray_amp(body: bytes) -> bytes:
    # One bare '&' in an attribute: the page no longer parses, its text is unchanged.
    assert body.count(b'<ofd:Layer ID="2" Type="Body">') == 1
    return body.replace(b'<ofd:Layer ID="2" Type="Body">', b'<ofd:Layer ID="2" Type="Body" Note="R&D">')


def _break_root(body: bytes) -> bytes:
    # A bare '&' in the root element's attributes: the part no longer parses.
    root = re.search(rb"<[A-Za-z][^>]*?(?=/?>)", body)
    return body[:root.end()] + b' Note="R&D"' + body[root.end():]


def _page_texts(data: bytes) -> list[tuple[dict, list, dict]]:
    pkg = OfdPackage(open_zip(data, OFD_LIMITS))
    doc_name = pkg.find("Doc_0/Document.xml")
    pages, templates = document_pages(pkg, parse_part(pkg, doc_name), "Doc_0")
    return [(p.texts, p.template_ids, p.ambiguous) for p in pages + list(templates.values())]


def _fields(inv) -> dict:
    d = inv.to_dict()
    return {f: d[f] for f in FIELDS}


# --- the reviewer's files, rebuilt from the real sample ------------------------

def test_a_malformed_page_gives_the_fields_the_well_formed_one_does(samples_dir: Path):
    original = (samples_dir / SUZHOU).read_bytes()
    [expected] = read_ofd(original)
    broken = rezip(original, {PAGE: _stray_amp})
    [inv] = read_ofd(broken)  # O4: was '<![CDATA[苏州交投物产有限公司]]>' and an ofd-inconsistent number
    assert _fields(inv) == _fields(expected)
    assert inv.get("buyer_name") == "苏州交投物产有限公司" and inv.get("number") == "24322000000400497801"
    assert not [p for p in inv.problems if p.code == "ofd-inconsistent"]
    assert "CDATA" not in repr(inv.to_dict())


def test_a_malformed_page_alone_gives_unwrapped_ids_and_names(samples_dir: Path):
    # O5: without CustomDatas every field comes from the page through the tags.
    def no_custom(body: bytes) -> bytes:
        out = re.sub(rb"<ofd:CustomDatas>.*</ofd:CustomDatas>", b"", body, flags=re.S)
        assert b"CustomData" not in out
        return out

    original = (samples_dir / SUZHOU).read_bytes()
    [expected] = read_ofd(rezip(original, {"OFD.xml": no_custom}))
    [inv] = read_ofd(rezip(original, {"OFD.xml": no_custom, PAGE: _stray_amp}))
    assert _fields(inv) == _fields(expected)
    assert inv.get("buyer_tax_id") == "91320500762844701D" and inv.get("seller_tax_id") == "92320505MA1NYRYX5M"
    assert not [p for p in inv.problems if p.field in ("buyer_tax_id", "seller_tax_id")]


def test_every_real_page_walked_gives_what_the_parser_gives(samples_dir: Path):
    # Each sample OFD with every page and template broken by a stray '&':
    # the fallback must give the same texts, template references and
    # ambiguities as the parser, object by object.
    compared = 0
    for path in sorted(samples_dir.rglob("*.ofd")):
        data = path.read_bytes()
        names = zipfile.ZipFile(io.BytesIO(data)).namelist()
        contents = [n for n in names if n.lower().endswith("content.xml")]
        parsed = _page_texts(data)

        broken = rezip(data, {n: _break_root for n in contents})
        pkg = OfdPackage(open_zip(broken, OFD_LIMITS))
        assert all(parse_part(pkg, n) is None for n in contents), path.name  # the fallback is what reads them
        assert _page_texts(broken) == parsed, path.name
        compared += sum(len(t) for t, _, _ in parsed)
    assert compared > 500  # the samples hold hundreds of text objects


# --- small pages -----------------------------------------------------------------

def _page(body: str, encoding: str = "UTF-8", template: str = "") -> bytes:
    return (f'<?xml version="1.0" encoding="{encoding}"?><ofd:Page xmlns:ofd="{OFD_NS}">{template}<ofd:Content>'
            f'<ofd:Layer ID="60" Note="R&D">{body}</ofd:Layer></ofd:Content></ofd:Page>').encode(
        "gb18030" if encoding.upper().startswith("GB") else "utf-8")


def _obj(obj_id: str, *codes: str) -> str:
    return (f'<ofd:TextObject ID="{obj_id}" Boundary="0 0 10 5">'
            + "".join(f'<ofd:TextCode X="0" Y="1">{c}</ofd:TextCode>' for c in codes) + "</ofd:TextObject>")


def _texts(page: bytes) -> dict[str, str]:
    data = make_ofd(tag=None, page_texts={}, template_texts={}, extra={PAGE: page})
    [(texts, _, _), *_] = _page_texts(data)
    return texts


def test_cdata_references_and_split_codes_read_as_a_parser_reads_them():
    texts = _texts(_page(_obj("1", "<![CDATA[苏州<交投>&物产]]>") + _obj("2", "A&amp;B &#x4E2D;&#22269;")
                         + _obj("3", "  ¥", "456.00 ") + _obj("4", "12<!-- a comment -->34")
                         + _obj("5", "<![CDATA[]]>x<![CDATA[y]]>")))
    assert texts == {"1": "苏州<交投>&物产", "2": "A&B 中国", "3": "¥456.00", "4": "1234", "5": "xy"}


@pytest.mark.parametrize("code", [
    "R&D",  # a bare '&'
    "&nbsp;1",  # an HTML entity XML does not define
    "&#0;1",  # a character reference to a character XML forbids
    "1 < 2",  # a '<' that opens no tag
    "x\x01y",  # a control character
])
def test_an_object_the_fallback_cannot_read_faithfully_gets_no_text(code):
    texts = _texts(_page(_obj("1", "前") + _obj("2", code) + _obj("3", "后")))
    assert texts == {"1": "前", "2": "", "3": "后"}


def test_a_cdata_section_never_closed_hides_the_rest_of_the_page():
    texts = _texts(_page(_obj("1", "前") + _obj("2", "<![CDATA[24322000000400497801") + _obj("3", "后")))
    assert texts == {"1": "前", "2": ""}


def test_an_object_whose_end_tag_is_missing_gets_no_text():
    body = (_obj("1", "甲") + '<ofd:TextObject ID="2"><ofd:TextCode>乙</ofd:TextCode>'
            + _obj("3", "丙"))
    assert _texts(_page(body)) == {"1": "甲", "2": "", "3": "丙"}


def test_commented_out_objects_are_not_read():
    texts = _texts(_page(_obj("1", "真") + "<!-- " + _obj("2", "假") + " -->"))
    assert texts == {"1": "真"}


def test_template_references_are_read_from_a_malformed_page():
    page = _page(_obj("1", "x"), template='<ofd:Template TemplateID="2"/>')
    data = make_ofd(tag=None, page_texts={}, extra={PAGE: page})
    [(_, template_ids, _), *_] = _page_texts(data)
    assert template_ids == ["2"]


def test_a_malformed_page_is_decoded_in_the_encoding_it_declares():
    # O3: a GB18030 page that does not parse was read as UTF-8 mojibake.
    body = _obj("1", "<![CDATA[苏州交投物产有限公司]]>") + _obj("2", "￥456.00")
    texts = _texts(_page(body, encoding="GB18030"))
    assert texts == {"1": "苏州交投物产有限公司", "2": "￥456.00"}


NAME = "苏州交投物产有限公司"


@pytest.mark.parametrize("page", [
    # Declared UTF-8, written in GBK: not one byte is read as another character.
    _page(_obj("1", NAME)).replace(NAME.encode(), NAME.encode("gbk")),
    # An encoding no one can decode.
    _page(_obj("1", "abc")).replace(b'encoding="UTF-8"', b'encoding="UTX-8"'),
])
def test_a_page_that_cannot_be_decoded_gives_no_text_rather_than_garbled_text(page):
    assert _texts(page) == {}


def _placed(obj_id: str, *codes: tuple[str, str]) -> str:
    # TextCodes written in the file's order, each where the page draws it ("X Y").
    return (f'<ofd:TextObject ID="{obj_id}" Boundary="0 0 80 10" Size="3.5">'
            + "".join(f'<ofd:TextCode {at}>{c}</ofd:TextCode>' for c, at in codes) + "</ofd:TextObject>")


@pytest.mark.parametrize("parses", [True, False])
def test_text_codes_read_in_the_order_the_page_draws_them_not_the_files(parses):
    # The page shows 苏州交投物产有限公司; the file lists its halves the other
    # way round (an outside attack stored 物产有限公司苏州交投 as the buyer).
    body = (_placed("1", ("物产有限公司", 'X="14" Y="3"'), ("苏州交投", 'X="0" Y="3"'))
            + _placed("2", ("下行", 'X="0" Y="7.5"'), ("上右", 'X="9" Y="3.2"'), ("上左", 'X="0" Y="3"'))
            + _placed("3", ("甲", 'X="5" Y="3"'), ("乙", ""))              # placed where the one before was
            + _placed("4", ("¥45", 'X="4" Y="3"'), ("6.00", 'X="0" Y="3"'))
            + _placed("5", ("a", 'X="1e400" Y="3"'), ("b", 'X="0" Y="3"'))  # where it is drawn is not known
            + _placed("6", ("c", 'X="left" Y="3"'), ("d", 'X="0" Y="3"')))
    texts = _texts(_page(body) if parses else _page(body.replace('Size="3.5">', 'Size="3.5" Note="R&D">', 1)))
    assert texts == {"1": "苏州交投物产有限公司", "2": "上左上右下行", "3": "甲乙", "4": "6.00¥45", "5": "",
                     "6": ""}
