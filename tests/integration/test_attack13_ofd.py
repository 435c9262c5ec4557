"""OFDs whose parts disagree with themselves (issue 13, attack 13), built
from a real sample (suzhou.ofd: CustomDatas, a CustomTag file and page text).

- a second TextObject under the ID a tag names (IDs must be unique; one is
  drawn off the face): the tag was resolved to whichever came first;
- a CustomData that says another value than the tagged page text: the
  first was stored with only a warning, and delivered;
- two texts drawn on the same spot of a page read by position: they were
  glued into one name.
Each leaves the field empty with an `ofd-inconsistent` error instead."""

from __future__ import annotations

import io
import re
import zipfile

from agent.extract import extract_bytes
from tests.conftest import SAMPLES

SUZHOU = SAMPLES / "CoderWanFeng__poocr" / "suzhou.ofd"
PAGE = "Doc_0/Pages/Page_0/Content.xml"
BUYER_OBJECT = '<ofd:TextObject Boundary="19.09 33.4'   # ID 57: 苏州交投物产有限公司, tagged BuyerName
IMPOSTOR = "冒名顶替有限公司"


def _rebuilt(**edits) -> bytes:
    """suzhou.ofd with each named member's text passed through its edit."""
    src = zipfile.ZipFile(SUZHOU)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as out:
        for name in src.namelist():
            data = src.read(name)
            edit = edits.get(name)
            if edit is not None:
                text = data.decode()
                changed = edit(text)
                assert changed != text, f"sample changed: the edit of {name} found nothing"
                data = changed.encode()
            out.writestr(name, data)
    return buf.getvalue()


def _read(data: bytes) -> dict:
    [invoice] = extract_bytes(data, ocr=False)
    return invoice.to_dict()


def _errors(got: dict, field: str | None) -> list[dict]:
    return [p for p in got["problems"] if p["code"] == "ofd-inconsistent" and p["field"] == field
            and p["severity"] == "error"]


def test_the_sample_reads_clean():
    got = _read(SUZHOU.read_bytes())
    assert got["buyer_name"] == "苏州交投物产有限公司" and got["seller_tax_id"] == "92320505MA1NYRYX5M"
    assert not got["problems"]


def test_two_objects_under_the_tagged_id_leave_the_field_empty():
    twin = (f'<ofd:TextObject Boundary="19.09 300 31.72 5.17" Font="27" ID="57" Size="3.1718">'
            f'<ofd:TextCode X="0" Y="3.17">{IMPOSTOR}</ofd:TextCode></ofd:TextObject>')
    got = _read(_rebuilt(**{PAGE: lambda s: s.replace(BUYER_OBJECT, twin + BUYER_OBJECT, 1)}))
    assert got["buyer_name"] is None, f"buyer_name stored {got['buyer_name']!r} from one of two objects ID 57"
    assert _errors(got, "buyer_name"), got["problems"]
    assert got["seller_name"] == "高新区狮山南香食品店"


def test_custom_data_against_the_printed_text_leaves_the_field_empty():
    # CustomData says the seller's id is the buyer's; the page prints the seller's.
    got = _read(_rebuilt(**{"OFD.xml": lambda s: s.replace(
        '<ofd:CustomData Name="销售方纳税人识别号">92320505MA1NYRYX5M', '<ofd:CustomData Name="销售方纳税人识别号">91320500762844701D')}))
    assert got["seller_tax_id"] is None, f"seller_tax_id stored {got['seller_tax_id']!r}"
    assert _errors(got, "seller_tax_id"), got["problems"]


def _page_text_only(text: str) -> str:
    return re.sub(r'<ofd:CustomData Name="[^"]*[\u4e00-\u9fff][^"]*">[^<]*</ofd:CustomData>', "", text)


def test_text_printed_over_text_is_not_glued_into_a_name():
    over = (f'<ofd:TextObject Boundary="19.09 33.4 31.72 5.17" Font="27" ID="9057" Size="3.1718">'
            f'<ofd:TextCode X="0" Y="3.17">{IMPOSTOR}</ofd:TextCode></ofd:TextObject>')
    no_tags = '<?xml version="1.0"?><ofd:root xmlns:ofd="http://www.ofdspec.org/2016"/>'
    got = _read(_rebuilt(**{PAGE: lambda s: s.replace(BUYER_OBJECT, over + BUYER_OBJECT, 1),
                            "OFD.xml": _page_text_only, "Doc_0/Tags/CustomTag.xml": lambda s: no_tags}))
    assert got["buyer_name"] is None or IMPOSTOR not in got["buyer_name"], got["buyer_name"]
    assert got["buyer_name"] is None and _errors(got, "buyer_name"), got["problems"]
    assert got["seller_name"] == "高新区狮山南香食品店" and got["number"] == "24322000000400497801"
