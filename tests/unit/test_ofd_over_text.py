"""OFD text under what other parts draw over the page, or nested where no
viewer draws it, is no print (agent/extract/ofd_over.py).

Built from the real suzhou OFD sample, as test_ofd_drawn_text: its tag
names TextObject 57 for the buyer's name. A viewer draws a page's
Foreground templates and then its annotations after the page's content,
so an opaque box there hides the name as one drawn on the page would; and
it draws text from Layers and PageBlocks only, so a TextObject put in a
clip's Area or inside a PathObject is seen by no one. The agent read the
tagged name there and judged the invoice valid; the field is now left
empty with `ofd-inconsistent`, and the page read by position skips it.
The sample's own seal (an annotation whose picture has transparency), a
box in a Background template and a hidden annotation hide nothing.
"""

from __future__ import annotations

import io
import re
import zipfile

import pytest

from agent.extract import extract_bytes
from tests.unit.test_ofd_drawn_text import _OBJ_57, WHITE_BOX, _untagged
from tests.unit.test_ofd_hidden_text import TRUE_NAME, _judged, _ofd

ANNOTS = "Doc_0/Annots/Page_0/Annot_0.xml"
TEMPLATE = "Doc_0/Tpls/Tpl_9/Content.xml"
# Object 57's glyphs lie in x 19.09-50.81, y 33.4-36.57 mm.
_BOX_AT_ORIGIN = WHITE_BOX.replace('"19 33 32 4"', '"0 0 32 4"')
_TEMPLATE_PART = ('<?xml version="1.0" encoding="UTF-8"?><ofd:Page xmlns:ofd="http://www.ofdspec.org/2016">'
                  f'<ofd:Content><ofd:Layer ID="9300">{WHITE_BOX}</ofd:Layer></ofd:Content></ofd:Page>')


def _annot(inner: str, attrs: str = "") -> str:
    return (f'<ofd:Annot Type="Stamp" ID="9400"{attrs}><ofd:Appearance Boundary="19 33 32 4">'
            f'{inner}</ofd:Appearance></ofd:Annot>')


def _package(page_edit=lambda page: page, template: str | None = None, annot: str | None = None,
             walked: bool = False) -> bytes:
    """suzhou.ofd with its page edited, a template drawn in `template`
    order ("Foreground", "Background") holding a white box over object 57,
    and `annot` added to the page's annotations."""
    def edit(page: str) -> str:
        page = page_edit(page)
        if template:
            page = page.replace("</ofd:Area>", f'</ofd:Area><ofd:Template TemplateID="9200" ZOrder="{template}"/>', 1)
        return page.replace("</ofd:Page>", "&</ofd:Page>") if walked else page
    zin, out = zipfile.ZipFile(io.BytesIO(_ofd(edit))), io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            body = zin.read(info.filename)
            if template and info.filename == "Doc_0/Document.xml":
                body = body.replace(b"</ofd:CommonData>",
                                    b'<ofd:TemplatePage ID="9200" BaseLoc="Tpls/Tpl_9/Content.xml"/></ofd:CommonData>')
            if annot and info.filename == ANNOTS:
                body = body.replace(b"</ofd:PageAnnot>", annot.encode() + b"</ofd:PageAnnot>")
            zout.writestr(info.filename, body)
        if template:
            zout.writestr(TEMPLATE, _TEMPLATE_PART)
    return out.getvalue()


COVERED = {
    "a white box in a foreground template": dict(template="Foreground"),
    "a white box in an annotation": dict(annot=_annot(_BOX_AT_ORIGIN)),
    "an opaque picture in an annotation": dict(
        annot=_annot('<ofd:ImageObject ID="9401" ResourceID="31" Boundary="0 0 32 4" CTM="32 0 0 4 0 0"/>')),
}


@pytest.mark.parametrize("walked", [False, True], ids=["parsed", "walked"])
@pytest.mark.parametrize("how", list(COVERED))
def test_a_tag_naming_text_covered_from_another_part_leaves_the_field_empty(how, walked):
    inv, problems = _judged(_package(walked=walked, **COVERED[how]))
    assert inv.get("buyer_name") is None
    [problem] = [p for p in problems if p.field == "buyer_name"]
    assert problem.code == "ofd-inconsistent" and "object ID 57, which the page does not show" in problem.message
    assert inv.get("total") is not None and inv.get("seller_name") is not None


@pytest.mark.parametrize("how", list(COVERED))
def test_the_page_read_by_position_leaves_out_text_covered_from_another_part(how):
    [inv] = extract_bytes(_untagged(_package(**COVERED[how])), ocr=False)
    assert inv.get("buyer_name") is None and inv.get("seller_name") is not None


IN_SIGHT = {
    # The sample's own seal annotation (signature.png, with transparency)
    # stamped over the name: the name shows through it.
    "the seal as an annotation over it": dict(
        annot=_annot('<ofd:ImageObject ID="9401" ResourceID="171" Boundary="0 0 32 4" CTM="32 0 0 4 0 0"/>')),
    "a white box in a background template": dict(template="Background"),
    "a white box in a hidden annotation": dict(annot=_annot(_BOX_AT_ORIGIN, ' Visible="false"')),
    "a white box in an annotation elsewhere": dict(annot=_annot(_BOX_AT_ORIGIN).replace(
        'Boundary="19 33 32 4"', 'Boundary="19 80 32 4"')),
}


@pytest.mark.parametrize("walked", [False, True], ids=["parsed", "walked"])
@pytest.mark.parametrize("case", list(IN_SIGHT))
def test_what_other_parts_draw_beside_or_under_the_text_leaves_it_read(case, walked):
    inv, problems = _judged(_package(walked=walked, **IN_SIGHT[case]))
    assert inv.get("buyer_name") == TRUE_NAME and not [p for p in problems if p.severity == "error"]
    [inv] = extract_bytes(_untagged(_package(**IN_SIGHT[case])), ocr=False)
    assert inv.get("buyer_name") == TRUE_NAME


_UNIT = ('<ofd:PathObject ID="9100" Boundary="0 0 1 1">{inner}'
         '<ofd:AbbreviatedData>M 0 0 L 1 1</ofd:AbbreviatedData></ofd:PathObject>')
NESTED = {
    "in a clip's area": lambda o: _UNIT.format(
        inner=f'<ofd:Clips><ofd:Clip><ofd:Area>{o}</ofd:Area></ofd:Clip></ofd:Clips>'),
    "inside a path": lambda o: _UNIT.format(inner=o),
    "in the page's area": lambda o: "",   # moved next to the PhysicalBox (below)
}


def _nested(how: str, walked: bool = False):
    def edit(page: str) -> str:
        m = re.search(_OBJ_57, page, re.S)
        page = page[:m.start()] + NESTED[how](m.group()) + page[m.end():]
        if how == "in the page's area":
            page = page.replace("</ofd:Area>", m.group() + "</ofd:Area>", 1)
        return page.replace("</ofd:Page>", "&</ofd:Page>") if walked else page
    return edit


@pytest.mark.parametrize("walked", [False, True], ids=["parsed", "walked"])
@pytest.mark.parametrize("how", list(NESTED))
def test_a_tag_naming_text_nested_where_no_viewer_draws_it_leaves_the_field_empty(how, walked):
    inv, problems = _judged(_ofd(_nested(how, walked)))
    assert inv.get("buyer_name") is None
    [problem] = [p for p in problems if p.field == "buyer_name"]
    assert problem.code == "ofd-inconsistent" and "where no viewer draws text" in problem.message
    assert inv.get("total") is not None and inv.get("seller_name") is not None


@pytest.mark.parametrize("how", list(NESTED))
def test_the_page_read_by_position_skips_text_nested_where_no_viewer_draws_it(how):
    [inv] = extract_bytes(_untagged(_ofd(_nested(how))), ocr=False)
    assert inv.get("buyer_name") is None and inv.get("seller_name") is not None
