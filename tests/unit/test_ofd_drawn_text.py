"""OFD text out of sight where the page draws it is no print (agent/extract/ofd_drawn.py).

Built from the real suzhou OFD sample, as test_ofd_hidden_text: its tag
names TextObject 57 for the buyer's name. A forger leaves that object's
attributes alone but puts it out of sight (an opaque rectangle or picture
drawn over it, a clip that leaves none of it, a place off the page or
off its block) and draws another name, untagged, where a person sees it.
The agent read the tagged name and judged the invoice valid; the field is
now left empty with `ofd-inconsistent`. With no tag, the page read by
position no longer reads text that is out of sight. A seal picture with
transparency, a thin table rule and a picture drawn before the text hide
nothing.
"""

from __future__ import annotations

import io
import re
import zipfile

import pytest

from agent.extract import extract_bytes
from tests.unit.test_ofd_hidden_text import FORGED_NAME, TRUE_NAME, _judged, _ofd

_OBJ_57 = r'<ofd:TextObject[^>]*ID="57"[^>]*>.*?</ofd:TextObject>'
_CLIP_FAR = ('<ofd:Clips><ofd:Clip><ofd:Area><ofd:Path Boundary="150 90 5 5">'
             '<ofd:AbbreviatedData>M 0 0 L 5 0 L 5 5 L 0 5 C</ofd:AbbreviatedData>'
             '</ofd:Path></ofd:Area></ofd:Clip></ofd:Clips>')
# Over object 57's glyphs (x 19.09-50.81, y 33.4-36.57 mm), drawn after them.
WHITE_BOX = ('<ofd:PathObject ID="9100" Boundary="19 33 32 4" Fill="true" Stroke="false">'
             '<ofd:FillColor Value="255 255 255"/>'
             '<ofd:AbbreviatedData>M 0 0 L 32 0 L 32 4 L 0 4 C</ofd:AbbreviatedData></ofd:PathObject>')
QR_PICTURE = '<ofd:ImageObject ID="9100" ResourceID="31" Boundary="19 33 32 4" CTM="32 0 0 4 0 0"/>'

# Each way of putting object 57 out of sight: page text -> page text.
OUT_OF_SIGHT = {
    "under a white rectangle": lambda o: o + WHITE_BOX,
    "under a grey rectangle": lambda o: o + WHITE_BOX.replace("255 255 255", "200 200 200"),
    "under an opaque picture": lambda o: o + QR_PICTURE,
    "clipped away": lambda o: o.replace("</ofd:TextObject>", _CLIP_FAR + "</ofd:TextObject>"),
    "clipped by its block": lambda o: f'<ofd:PageBlock ID="9101">{_CLIP_FAR}{o}</ofd:PageBlock>',
    "off the page": lambda o: o.replace('Boundary="19.09 33.4', 'Boundary="219.09 33.4'),
    "off its layer's boundary": lambda o: f'</ofd:Layer><ofd:Layer ID="9101" Boundary="100 0 100 20">{o}'
                                          '</ofd:Layer><ofd:Layer ID="9102">',
}


def _forged(hide, walked: bool = False):
    def edit(page: str) -> str:
        m = re.search(_OBJ_57, page, re.S)
        shown = m.group().replace('ID="57"', 'ID="9057"').replace(TRUE_NAME, FORGED_NAME)
        page = page[:m.start()] + hide(m.group()) + shown + page[m.end():]
        # A bare '&' makes the page no XML: it is read by ofd_package's walk.
        return page.replace("</ofd:Page>", "&</ofd:Page>") if walked else page
    return edit


def _edited(edit):
    def apply(page: str) -> str:
        m = re.search(_OBJ_57, page, re.S)
        return page[:m.start()] + edit(m.group()) + page[m.end():]
    return apply


def _untagged(data: bytes) -> bytes:
    zin, out = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with zipfile.ZipFile(out, "w") as zout:
        for info in zin.infolist():
            if "/Tags/" not in info.filename:
                zout.writestr(info.filename, zin.read(info.filename))
    return out.getvalue()


@pytest.mark.parametrize("walked", [False, True], ids=["parsed", "walked"])
@pytest.mark.parametrize("how", list(OUT_OF_SIGHT))
def test_a_tag_naming_text_out_of_sight_leaves_the_field_empty(how, walked):
    inv, problems = _judged(_ofd(_forged(OUT_OF_SIGHT[how], walked)))
    assert inv.get("buyer_name") is None   # neither the hidden name nor the forged one
    [problem] = [p for p in problems if p.field == "buyer_name"]
    assert problem.code == "ofd-inconsistent" and problem.severity == "error"
    assert "object ID 57, which the page does not show" in problem.message
    assert inv.get("total") is not None and inv.get("seller_name") is not None   # the rest as before


@pytest.mark.parametrize("how", list(OUT_OF_SIGHT))
def test_the_page_read_by_position_leaves_out_text_out_of_sight(how):
    # No tag: the buyer's name is only printed. Out of sight, it is not read.
    [inv] = extract_bytes(_untagged(_ofd(_edited(OUT_OF_SIGHT[how]))), ocr=False)
    assert inv.get("buyer_name") is None
    assert inv.get("seller_name") is not None


def test_the_page_read_by_position_reads_the_untouched_name():
    [inv] = extract_bytes(_untagged(_ofd(lambda page: page)), ocr=False)
    assert (inv.get("buyer_name"), inv.to_dict()["sources"].get("buyer_name")) == (TRUE_NAME, "ofd-text")


def _page_ending_above_the_parties(page: str) -> str:
    # The page's own Area (not the document's A4) ends above the buyer's box.
    return page.replace("0 0 211.50 140</ofd:PhysicalBox>", "0 0 211.50 30</ofd:PhysicalBox>").replace(
        "0 0 211.50 140</ofd:ApplicationBox>", "0 0 211.50 30</ofd:ApplicationBox>")


def test_a_page_smaller_than_where_the_buyer_is_printed_shows_no_buyer():
    [inv] = extract_bytes(_untagged(_ofd(_page_ending_above_the_parties)), ocr=False)
    assert inv.get("buyer_name") is None and inv.get("seller_name") is None


@pytest.mark.parametrize("walked", [False, True], ids=["parsed", "walked"])
def test_a_tag_naming_text_below_the_pages_own_area_leaves_the_field_empty(walked):
    def edit(page: str) -> str:
        page = _page_ending_above_the_parties(page)
        return page.replace("</ofd:Page>", "&</ofd:Page>") if walked else page
    inv, problems = _judged(_ofd(edit))
    assert inv.get("buyer_name") is None and inv.get("seller_name") is None
    [problem] = [p for p in problems if p.field == "buyer_name"]
    assert problem.code == "ofd-inconsistent" and "outside the page's area" in problem.message


SHOWN_STILL = {
    # The 发票专用章 is stamped over the seller's name as a picture with
    # transparency (the sample's own seal, signature.png): the name shows.
    "a seal over the seller": (
        "75", '<ofd:ImageObject ID="9100" ResourceID="171" Boundary="115 25 40 20" CTM="40 0 0 20 0 0"/>'),
    # A table rule drawn after the text, filled, under MIN_COVER high.
    "a thin rule": ("57", WHITE_BOX.replace('32 4"', '32 0.2"').replace("L 32 4 L 0 4", "L 32 0.2 L 0 0.2")
                    .replace('"19 33', '"19 35')),
    # A filled rectangle drawn after the text that is not over it.
    "a box elsewhere": ("57", WHITE_BOX.replace('"19 33', '"19 60')),
    # Half transparent: the name shows through.
    "a veil": ("57", WHITE_BOX.replace('Value="255 255 255"', 'Value="255 255 255" Alpha="128"')),
    "a clip around it": ("57", None),
}


@pytest.mark.parametrize("walked", [False, True], ids=["parsed", "walked"])
@pytest.mark.parametrize("case", list(SHOWN_STILL))
def test_what_leaves_the_text_in_sight_is_no_cover(case, walked):
    obj_id, drawn_after = SHOWN_STILL[case]

    def edit(page: str) -> str:
        m = re.search(_OBJ_57.replace("57", obj_id), page, re.S)
        if drawn_after is None:  # a clip that holds the whole name
            clip = _CLIP_FAR.replace("150 90 5 5", "0 0 40 6").replace("5 0 L 5 5 L 0 5", "40 0 L 40 6 L 0 6")
            page = page[:m.start()] + m.group().replace("</ofd:TextObject>", clip + "</ofd:TextObject>") \
                + page[m.end():]
        else:
            page = page[:m.end()] + drawn_after + page[m.end():]
        return page.replace("</ofd:Page>", "&</ofd:Page>") if walked else page
    inv, problems = _judged(_ofd(edit))
    assert (inv.get("buyer_name"), inv.get("seller_name")) == (TRUE_NAME, "高新区狮山南香食品店")
    assert not [p for p in problems if p.severity == "error"]


def test_a_picture_drawn_before_the_text_is_its_background():
    def edit(page: str) -> str:
        m = re.search(_OBJ_57, page, re.S)
        return page[:m.start()] + QR_PICTURE + m.group() + page[m.end():]
    inv, problems = _judged(_ofd(edit))
    assert inv.get("buyer_name") == TRUE_NAME and not [p for p in problems if p.severity == "error"]
    [inv] = extract_bytes(_untagged(_ofd(edit)), ocr=False)
    assert inv.get("buyer_name") == TRUE_NAME


def test_a_page_that_does_not_parse_and_is_huge_shows_no_tagged_text():
    # Too many tags to lay out: its text is taken as out of sight, never read.
    def edit(page: str) -> str:
        return page.replace("</ofd:Page>", "<x/>" * 50_001 + "&</ofd:Page>")
    inv, problems = _judged(_ofd(edit))
    assert inv.get("buyer_name") is None
    assert "too large to tell where it is drawn" in next(p for p in problems if p.field == "buyer_name").message


# A white box whose colour is no FillColor of its own but a DrawParam's
# (PublicRes.xml): 9201 gives white; 9202 says nothing and takes 9201's
# (Relative); 9203 gives a colour through a Relative loop (no fill known).
_PARAMS = ('<ofd:DrawParams><ofd:DrawParam ID="9201"><ofd:FillColor Value="255 255 255"/></ofd:DrawParam>'
           '<ofd:DrawParam ID="9202" Relative="9201" LineWidth="0.1"/>'
           '<ofd:DrawParam ID="9203" Relative="9204"/><ofd:DrawParam ID="9204" Relative="9203"/>'
           '</ofd:DrawParams>')
_BARE_BOX = WHITE_BOX.replace('<ofd:FillColor Value="255 255 255"/>', "")


def _with_params(edit_page) -> bytes:
    # suzhou.ofd with _PARAMS in its PublicRes.xml and its page edited.
    data = _ofd(edit_page)
    zin, out = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            body = zin.read(info.filename)
            if info.filename.endswith("PublicRes.xml"):
                body = body.replace(b"</ofd:Res>", _PARAMS.encode() + b"</ofd:Res>")
            zout.writestr(info.filename, body)
    return out.getvalue()


FILLED_BY_PARAM = {
    "its own DrawParam": lambda o: o + _BARE_BOX.replace('Fill="true"', 'Fill="true" DrawParam="9201"'),
    "a Relative DrawParam": lambda o: o + _BARE_BOX.replace('Fill="true"', 'Fill="true" DrawParam="9202"'),
    "its layer's DrawParam": lambda o: (f'{o}</ofd:Layer><ofd:Layer ID="9101" DrawParam="9201">{_BARE_BOX}'
                                        '</ofd:Layer><ofd:Layer ID="9102">'),
}


@pytest.mark.parametrize("how", list(FILLED_BY_PARAM))
def test_a_rectangle_filled_by_a_draw_param_covers_as_one_filled_by_its_own_colour(how):
    # The fill a viewer paints comes from the DrawParam: the box hides the
    # tagged name as a box with its own FillColor does.
    inv, problems = _judged(_with_params(_forged(FILLED_BY_PARAM[how])))
    assert inv.get("buyer_name") is None
    [problem] = [p for p in problems if p.field == "buyer_name"]
    assert problem.code == "ofd-inconsistent" and "object ID 57, which the page does not show" in problem.message


@pytest.mark.parametrize("param", ["", ' DrawParam="9203"', ' DrawParam="9999"'],
                         ids=["no colour", "a Relative loop", "no such DrawParam"])
def test_a_filled_rectangle_with_no_colour_known_covers_nothing(param):
    # GB/T 33190: with no FillColor the fill is transparent; a loop or a
    # missing DrawParam tells no colour: the name under it is read.
    page = _edited(lambda o: o + _BARE_BOX.replace('Fill="true"', f'Fill="true"{param}'))
    [inv] = extract_bytes(_untagged(_with_params(page)), ocr=False)
    assert inv.get("buyer_name") == TRUE_NAME
