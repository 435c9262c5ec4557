"""OFD text no viewer shows is no print (agent/extract/ofd_shown.py).

Built from the real nuonuo OFD sample: its tag names TextObject 57 for the
buyer's name. A forger hides that object (Visible="false", transparent,
white, too small) and draws another name, untagged, where it stood: the
data parts still say the first name, the page shows the second. The agent
stored the first and judged the invoice valid; the field is now left empty
with `ofd-inconsistent`, whether the page parses or is walked tag by tag.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile

import pytest

from agent.extract import extract_bytes
from agent.validate import ValidationSettings, validate
from tests.conftest import SAMPLES

PAGE = "Doc_0/Pages/Page_0/Content.xml"
TRUE_NAME, FORGED_NAME = "苏州交投物产有限公司", "上海伪造贸易有限公司"
HIDINGS = {
    "invisible": lambda o: o.replace('ID="57"', 'ID="57" Visible="false"'),
    "transparent": lambda o: o.replace('ID="57"', 'ID="57" Alpha="0"'),
    "white": lambda o: o.replace("<ofd:TextCode", '<ofd:FillColor Value="255 255 255"/><ofd:TextCode', 1),
    "tiny": lambda o: o.replace('Size="3.1718"', 'Size="0.05"'),
    "shrunk by its CTM": lambda o: o.replace('ID="57"', 'ID="57" CTM="0.01 0 0 0.01 0 0"'),
}


def _ofd(edit_page) -> bytes:
    src = (SAMPLES / "CoderWanFeng__poocr" / "suzhou.ofd").read_bytes()
    zin, out = zipfile.ZipFile(io.BytesIO(src)), io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == PAGE:
                data = edit_page(data.decode("utf-8")).encode("utf-8")
            zout.writestr(info.filename, data)
    return out.getvalue()


def _forged(hide, walked: bool = False):
    def edit(page: str) -> str:
        m = re.search(r'<ofd:TextObject[^>]*ID="57"[^>]*>.*?</ofd:TextObject>', page, re.S)
        shown = m.group().replace('ID="57"', 'ID="9057"').replace(TRUE_NAME, FORGED_NAME)
        page = page[:m.start()] + hide(m.group()) + shown + page[m.end():]
        # A bare '&' makes the page no XML: it is read by ofd_package's walk.
        return page.replace("</ofd:Page>", "&</ofd:Page>") if walked else page
    return edit


def _judged(data: bytes):
    [inv] = extract_bytes(data, ocr=False)
    return inv, validate(inv, ValidationSettings(max_age_days=100_000), today=dt.date(2026, 11, 29))


def test_the_untouched_sample_reads_its_buyer():
    inv, problems = _judged(_ofd(lambda page: page))
    assert inv.get("buyer_name") == TRUE_NAME and not [p for p in problems if p.severity == "error"]


@pytest.mark.parametrize("walked", [False, True], ids=["parsed", "walked"])
@pytest.mark.parametrize("how", list(HIDINGS))
def test_a_tag_naming_text_the_page_does_not_show_leaves_the_field_empty(how, walked):
    inv, problems = _judged(_ofd(_forged(HIDINGS[how], walked)))
    assert inv.get("buyer_name") is None   # neither the hidden name nor the forged one
    [problem] = [p for p in problems if p.field == "buyer_name"]
    assert problem.code == "ofd-inconsistent" and problem.severity == "error"
    assert "object ID 57, which the page does not show" in problem.message
    assert inv.get("total") is not None    # the rest is read as before


def test_a_hidden_object_whose_id_a_shown_one_carries_with_the_same_text_is_read():
    # A fake-bold double (one copy faint) hides nothing: the page shows the name.
    def edit(page: str) -> str:
        m = re.search(r'<ofd:TextObject[^>]*ID="57"[^>]*>.*?</ofd:TextObject>', page, re.S)
        return page[:m.start()] + HIDINGS["white"](m.group()) + m.group() + page[m.end():]
    inv, _ = _judged(_ofd(edit))
    assert inv.get("buyer_name") == TRUE_NAME


@pytest.mark.parametrize("walked", [False, True], ids=["parsed", "walked"])
@pytest.mark.parametrize("how", list(HIDINGS))
def test_a_tagged_hidden_copy_of_text_the_page_shows_is_read(how, walked):
    # A producer's hidden copy, under its own ID, of a name the page shows
    # (the shown one untagged): the tag names what a person reads. The
    # field was left empty with an ofd-inconsistent error, sending a good
    # invoice to 补录.
    def edit(page: str) -> str:
        m = re.search(r'<ofd:TextObject[^>]*ID="57"[^>]*>.*?</ofd:TextObject>', page, re.S)
        shown = m.group().replace('ID="57"', 'ID="9057"')
        page = page[:m.start()] + HIDINGS[how](m.group()) + shown + page[m.end():]
        return page.replace("</ofd:Page>", "&</ofd:Page>") if walked else page
    inv, problems = _judged(_ofd(edit))
    assert inv.get("buyer_name") == TRUE_NAME
    assert [p for p in problems if p.severity == "error"] == []


def test_ordinary_colours_alpha_and_sizes_are_shown():
    def edit(page: str) -> str:
        return page.replace('ID="57"', 'ID="57" Alpha="200" Visible="true"').replace(
            'Size="3.1718"', 'Size="2"')
    inv, _ = _judged(_ofd(edit))
    assert inv.get("buyer_name") == TRUE_NAME


def test_the_page_read_by_position_takes_the_shown_text_not_the_hidden_one():
    # No tag, no data part names the buyer: the page is read by position.
    # The hidden name drawn over the shown one is no clash (which would
    # leave the field empty): the name read is the one a person sees.
    def edit(page: str) -> str:
        m = re.search(r'<ofd:TextObject[^>]*ID="57"[^>]*>.*?</ofd:TextObject>', page, re.S)
        hidden = HIDINGS["invisible"](m.group()).replace('ID="57"', 'ID="9057"').replace(TRUE_NAME, FORGED_NAME)
        return page[:m.start()] + hidden + m.group() + page[m.end():]
    data = _ofd(edit)
    zin, out = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with zipfile.ZipFile(out, "w") as zout:
        for info in zin.infolist():
            if "/Tags/" not in info.filename:
                zout.writestr(info.filename, zin.read(info.filename))
    [inv] = extract_bytes(out.getvalue(), ocr=False)
    assert (inv.get("buyer_name"), inv.to_dict()["sources"].get("buyer_name")) == (TRUE_NAME, "ofd-text")
