"""White OFD text is print where something dark is drawn under it
(agent/extract/ofd_faint.py).

Built from the real suzhou OFD sample, as test_ofd_hidden_text: its tag
names TextObject 57 for the buyer's name. Text filled near white was taken
as unseen wherever it stood, so a name printed white on a dark band (a
header, a highlighted cell) was refused and its true field left empty for
补录. It is now read when every glyph lies on something dark drawn before
it: a filled path, a dark picture, a band in a Background template. White
text on the paper, on a light fill, on a picture's light pixels, or on a
white box laid over the dark band is still no print.
"""

from __future__ import annotations

import io

import pytest
from PIL import Image

from agent.extract import extract_bytes
from tests.unit.test_ofd_drawn_text import QR_PICTURE, WHITE_BOX, _edited, _forged, _untagged, _with_params
from tests.unit.test_ofd_hidden_text import HIDINGS, TRUE_NAME, _judged, _ofd
from tests.unit.test_ofd_template_text import templated

WHITE = HIDINGS["white"]
# Under object 57's glyphs (x 19.09-50.81, y 33.4-36.57 mm).
DARK_BOX = WHITE_BOX.replace("255 255 255", "40 40 40")


def _png(colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 8), colour).save(out, "PNG")
    return out.getvalue()


# White object 57 and what is drawn before it on its page.
ON_DARK = {
    "a dark box": lambda o: DARK_BOX + WHITE(o),
    "a dark box drawn before a light one elsewhere": lambda o: DARK_BOX + WHITE_BOX.replace('"19 33', '"19 60') + WHITE(o),
    "a box of no colour a reader can tell": lambda o: DARK_BOX.replace(
        '<ofd:FillColor Value="40 40 40"/>', '<ofd:FillColor Value="40 40 40" ColorSpace="9"/>') + WHITE(o),
}
ON_LIGHT = {
    "the paper": lambda o: WHITE(o),
    "a light grey box": lambda o: DARK_BOX.replace("40 40 40", "230 230 230") + WHITE(o),
    "a dark box all but transparent": lambda o: DARK_BOX.replace('Value="40 40 40"', 'Value="40 40 40" Alpha="20"')
    + WHITE(o),
    "a white box laid over a dark one": lambda o: DARK_BOX + WHITE_BOX + WHITE(o),
    "a dark box under half of it": lambda o: DARK_BOX.replace('"19 33 32 4"', '"19 33 16 4"') + WHITE(o),
    "a dark box elsewhere": lambda o: DARK_BOX.replace('"19 33', '"19 60') + WHITE(o),
    "the light pixels of the QR picture": lambda o: QR_PICTURE + WHITE(o),
}


@pytest.mark.parametrize("walked", [False, True], ids=["parsed", "walked"])
@pytest.mark.parametrize("case", list(ON_DARK))
def test_a_tag_naming_white_text_on_something_dark_is_read(case, walked):
    def edit(page: str) -> str:
        page = _edited(ON_DARK[case])(page)
        return page.replace("</ofd:Page>", "&</ofd:Page>") if walked else page
    inv, problems = _judged(_ofd(edit))
    assert inv.get("buyer_name") == TRUE_NAME and not [p for p in problems if p.severity == "error"]


@pytest.mark.parametrize("case", list(ON_DARK))
def test_the_page_read_by_position_reads_white_text_on_something_dark(case):
    [inv] = extract_bytes(_untagged(_ofd(_edited(ON_DARK[case]))), ocr=False)
    assert inv.get("buyer_name") == TRUE_NAME


@pytest.mark.parametrize("walked", [False, True], ids=["parsed", "walked"])
@pytest.mark.parametrize("case", list(ON_LIGHT))
def test_a_tag_naming_white_text_on_nothing_dark_leaves_the_field_empty(case, walked):
    # The forger's white name, tagged, over what is no dark band; the name
    # a person sees, untagged, beside it.
    inv, problems = _judged(_ofd(_forged(ON_LIGHT[case], walked)))
    assert inv.get("buyer_name") is None
    [problem] = [p for p in problems if p.field == "buyer_name"]
    assert problem.code == "ofd-inconsistent" and "object ID 57, which the page does not show" in problem.message


@pytest.mark.parametrize("case", list(ON_LIGHT))
def test_the_page_read_by_position_leaves_out_white_text_on_nothing_dark(case):
    [inv] = extract_bytes(_untagged(_ofd(_edited(ON_LIGHT[case]))), ocr=False)
    assert inv.get("buyer_name") is None and inv.get("seller_name") is not None


def _back(page: str, obj: str) -> str:
    # The (white) object put back on the page, in its first layer.
    return page.replace("</ofd:Layer>", obj + "</ofd:Layer>", 1)


IN_OTHER_PARTS = {
    # The page's white name on a band its Background template draws.
    "a dark band in a background template": (True, dict(
        page_edit=_back, obj_edit=WHITE, templates={"9200": ("Background", DARK_BOX)})),
    "a dark picture drawn before it": (True, dict(
        page_edit=lambda page, obj: _back(page, QR_PICTURE.replace('"31"', '"9500"') + obj), obj_edit=WHITE,
        media={"9500": _png((30, 30, 60))})),
    "a white name in a template on its own dark band": (True, dict(
        obj_edit=WHITE, templates={"9200": ("Background", DARK_BOX + "{57}")})),
    "a white name in a template on the page's band (drawn after it)": (False, dict(
        page_edit=lambda page, obj: _back(page, DARK_BOX), obj_edit=WHITE, templates={"9200": ("Background", "{57}")})),
    "a light picture drawn before it": (False, dict(
        page_edit=lambda page, obj: _back(page, QR_PICTURE.replace('"31"', '"9500"') + obj), obj_edit=WHITE,
        media={"9500": _png((250, 250, 250))})),
    "a dark band in a background template under a white box on the page": (False, dict(
        page_edit=lambda page, obj: _back(page, WHITE_BOX + obj), obj_edit=WHITE,
        templates={"9200": ("Background", DARK_BOX)})),
}


@pytest.mark.parametrize("case", list(IN_OTHER_PARTS))
def test_white_text_is_read_on_what_other_parts_draw_dark_under_it(case):
    shown, how = IN_OTHER_PARTS[case]
    [inv] = extract_bytes(templated(**how), ocr=False)
    assert inv.get("buyer_name") == (TRUE_NAME if shown else None)


@pytest.mark.parametrize("walked", [False, True], ids=["parsed", "walked"])
def test_a_tag_naming_text_a_draw_param_colours_white_leaves_the_field_empty(walked):
    # No FillColor of its own: DrawParam 9201 (PublicRes.xml) gives it white.
    inv, problems = _judged(_with_params(_forged(lambda o: o.replace('ID="57"', 'ID="57" DrawParam="9201"'), walked)))
    assert inv.get("buyer_name") is None
    [problem] = [p for p in problems if p.field == "buyer_name"]
    assert problem.code == "ofd-inconsistent" and "filled near white" in problem.message


def test_text_a_draw_param_colours_white_on_a_dark_box_is_read():
    inv, problems = _judged(_with_params(_edited(lambda o: DARK_BOX + o.replace('ID="57"', 'ID="57" DrawParam="9201"'))))
    assert inv.get("buyer_name") == TRUE_NAME and not [p for p in problems if p.severity == "error"]
