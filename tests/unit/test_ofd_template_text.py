"""OFD template text under what the page and later templates draw over it
(agent/extract/ofd_over.py).

Built from the real suzhou OFD sample, as test_ofd_over_text: its buyer's
name (TextObject 57) is moved into a template of the page, and its tags
are dropped, so the name is only printed and read by position. A viewer
draws a page's Background and Body templates, then its content, then its
Foreground templates: an opaque box or picture on the page hides a
Background template's text under it, and one in a Foreground template
hides it too. Templates were judged against their own objects only, so
the agent read the hidden name; it is now left out. Text in a Foreground
template, drawn after the page, and a seal's picture with transparency
hide nothing.
"""

from __future__ import annotations

import io
import re
import zipfile

import pytest

from agent.extract import extract_bytes
from tests.unit.test_ofd_drawn_text import _OBJ_57, QR_PICTURE, WHITE_BOX, _untagged
from tests.unit.test_ofd_hidden_text import TRUE_NAME, _judged, _ofd

SELLER = "高新区狮山南香食品店"
SEAL_PICTURE = QR_PICTURE.replace('ResourceID="31"', 'ResourceID="171"')   # signature.png: transparent


def templated(page_edit=lambda page, obj: page, templates: dict | None = None, walked: bool = False,
              defaults: dict | None = None, media: dict | None = None, obj_id: str = "57",
              obj_edit=lambda obj: obj) -> bytes:
    """suzhou.ofd with object `obj_id` taken off its page (`page_edit`
    gets the page without it, and the object), its tags dropped, and
    `templates` (ID -> (ZOrder the page names, or "", and the layer's
    content, where "{57}" stands for the object)) added; `defaults` gives
    a TemplatePage's own ZOrder; `media` adds pictures (ID -> PNG bytes);
    `obj_edit` edits the object first."""
    templates, defaults, media = templates or {}, defaults or {}, media or {}
    found: dict[str, str] = {}

    def edit(page: str) -> str:
        m = re.search(_OBJ_57.replace("57", obj_id), page, re.S)
        found["57"] = obj_edit(m.group())
        page = page_edit(page[:m.start()] + page[m.end():], found["57"])
        refs = "".join(f'<ofd:Template TemplateID="{i}"' + (f' ZOrder="{z}"' if z else "") + "/>"
                       for i, (z, _) in templates.items())
        page = page.replace("</ofd:Area>", "</ofd:Area>" + refs, 1)
        return page.replace("</ofd:Page>", "&</ofd:Page>") if walked else page
    zin, out = zipfile.ZipFile(io.BytesIO(_untagged(_ofd(edit)))), io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            body = zin.read(info.filename)
            if info.filename == "Doc_0/Document.xml":
                pages = "".join(f'<ofd:TemplatePage ID="{i}" BaseLoc="Tpls/Tpl_{i}/Content.xml"'
                                + (f' ZOrder="{defaults[i]}"' if i in defaults else "") + "/>" for i in templates)
                body = body.replace(b"</ofd:CommonData>", pages.encode() + b"</ofd:CommonData>")
            if info.filename == "Doc_0/DocumentRes.xml":
                items = "".join(f'<ofd:MultiMedia Format="PNG" ID="{i}" Type="Image"><ofd:MediaFile>{i}.png'
                                "</ofd:MediaFile></ofd:MultiMedia>" for i in media)
                body = body.replace(b"</ofd:MultiMedias>", items.encode() + b"</ofd:MultiMedias>")
            zout.writestr(info.filename, body)
        for i, (_, content) in templates.items():
            zout.writestr(f"Doc_0/Tpls/Tpl_{i}/Content.xml", (
                '<?xml version="1.0" encoding="UTF-8"?><ofd:Page xmlns:ofd="http://www.ofdspec.org/2016">'
                f'<ofd:Content><ofd:Layer ID="{i}0">{content.replace("{57}", found["57"])}</ofd:Layer>'
                "</ofd:Content></ofd:Page>"))
        for i, png in media.items():
            zout.writestr(f"Doc_0/Res/{i}.png", png)
    return out.getvalue()


def _on_page(cover: str):
    # `cover` drawn on the page where object 57 stood (the page's own content).
    return lambda page, obj: page.replace("</ofd:Layer>", cover + "</ofd:Layer>", 1)


def _read(data: bytes):
    [inv] = extract_bytes(data, ocr=False)
    return inv.get("buyer_name"), inv.get("seller_name")


def test_the_name_moved_into_a_template_is_read():
    assert _read(templated(templates={"9200": ("Background", "{57}")})) == (TRUE_NAME, SELLER)


HIDDEN = {
    # Gap 1: the page's own content is drawn after a Background or Body template.
    "a white box on the page over a background template": dict(
        page_edit=_on_page(WHITE_BOX), templates={"9200": ("Background", "{57}")}),
    "a white box on the page over a body template": dict(
        page_edit=_on_page(WHITE_BOX), templates={"9200": ("Body", "{57}")}),
    "an opaque picture on the page over a template": dict(
        page_edit=_on_page(QR_PICTURE), templates={"9200": ("Background", "{57}")}),
    "a white box on the page over a template the page names with no ZOrder": dict(
        page_edit=_on_page(WHITE_BOX), templates={"9200": ("", "{57}")}),
    "a white box on the page over a template whose ID is the page's": dict(
        page_edit=_on_page(WHITE_BOX), templates={"1": ("Background", "{57}")}),
    # Gap 2: a Foreground template is drawn after the Background one.
    "a white box in a foreground template over a background template": dict(
        templates={"9200": ("Background", "{57}"), "9201": ("Foreground", WHITE_BOX)}),
    "a white box in a foreground template named first": dict(
        templates={"9201": ("Foreground", WHITE_BOX), "9200": ("Background", "{57}")}),
    "a white box in a later foreground template over a foreground one": dict(
        templates={"9200": ("Foreground", "{57}"), "9201": ("Foreground", WHITE_BOX)}),
    "a white box in a template the TemplatePage makes foreground": dict(
        templates={"9200": ("Background", "{57}"), "9201": ("", WHITE_BOX)}, defaults={"9201": "Foreground"}),
}


@pytest.mark.parametrize("how", list(HIDDEN))
def test_template_text_hidden_by_what_is_drawn_after_it_is_not_read(how):
    assert _read(templated(**HIDDEN[how])) == (None, SELLER)


SHOWN = {
    "a white box on the page elsewhere": dict(
        page_edit=_on_page(WHITE_BOX.replace('"19 33', '"19 60')), templates={"9200": ("Background", "{57}")}),
    "the seal's picture on the page over it": dict(
        page_edit=_on_page(SEAL_PICTURE), templates={"9200": ("Background", "{57}")}),
    "a white box on the page under a foreground template": dict(
        page_edit=_on_page(WHITE_BOX), templates={"9200": ("Foreground", "{57}")}),
    "a white box on the page under a template the TemplatePage makes foreground": dict(
        page_edit=_on_page(WHITE_BOX), templates={"9200": ("", "{57}")}, defaults={"9200": "Foreground"}),
    "a white box in a background template under a foreground one": dict(
        templates={"9201": ("Background", WHITE_BOX), "9200": ("Foreground", "{57}")}),
    "a white box drawn before it in its own template": dict(templates={"9200": ("Background", WHITE_BOX + "{57}")}),
    "a half transparent box on the page over it": dict(
        page_edit=_on_page(WHITE_BOX.replace('Value="255 255 255"', 'Value="255 255 255" Alpha="128"')),
        templates={"9200": ("Background", "{57}")}),
}


@pytest.mark.parametrize("case", list(SHOWN))
def test_template_text_nothing_opaque_is_drawn_over_is_read(case):
    assert _read(templated(**SHOWN[case])) == (TRUE_NAME, SELLER)


# The 大写 (object 85, glyphs x 59.5-82, y 99-102 mm) in a Background
# template: read from the first page's text objects, the template's among
# them, when the page parses and when it is walked tag by tag.
WORDS = "肆佰伍拾陆圆整"
BOX_85 = WHITE_BOX.replace('"19 33 32 4"', '"59 98 32 6"')
WORDS_HIDDEN = {
    "a white box on the page": dict(page_edit=_on_page(BOX_85), templates={"9200": ("Background", "{57}")}),
    "a white box in a foreground template": dict(
        templates={"9200": ("Background", "{57}"), "9201": ("Foreground", BOX_85)}),
}
WORDS_SHOWN = {
    "a white box on the page elsewhere": dict(
        page_edit=_on_page(WHITE_BOX), templates={"9200": ("Background", "{57}")}),
    "a white box on the page under a foreground template": dict(
        page_edit=_on_page(BOX_85), templates={"9200": ("Foreground", "{57}")}),
}


@pytest.mark.parametrize("walked", [False, True], ids=["parsed", "walked"])
@pytest.mark.parametrize("case", list(WORDS_HIDDEN) + list(WORDS_SHOWN))
def test_template_words_are_read_only_where_nothing_opaque_is_drawn_over_them(case, walked):
    hidden = case in WORDS_HIDDEN
    [inv] = extract_bytes(templated(walked=walked, obj_id="85", **(WORDS_HIDDEN if hidden else WORDS_SHOWN)[case]),
                          ocr=False)
    assert inv.get("total_in_words") == (None if hidden else WORDS)


def test_a_page_with_a_template_and_a_seal_still_reads_clean():
    # The legit layout: labels in a Background template, the values on the
    # page, the seal's picture over the seller, the page's own tags kept.
    labels = '<ofd:TextObject ID="9210" Boundary="5 33 12 4" Size="3"><ofd:TextCode X="0" Y="3">名称：</ofd:TextCode></ofd:TextObject>'
    seal = SEAL_PICTURE.replace('Boundary="19 33 32 4" CTM="32 0 0 4 0 0"', 'Boundary="115 25 40 20" CTM="40 0 0 20 0 0"')
    page = (_ofd(lambda p: p.replace("</ofd:Area>", '</ofd:Area><ofd:Template TemplateID="9200"/>', 1)
                 .replace("</ofd:Layer>", seal + "</ofd:Layer>", 1)))
    zin, out = zipfile.ZipFile(io.BytesIO(page)), io.BytesIO()
    with zipfile.ZipFile(out, "w") as zout:
        for info in zin.infolist():
            body = zin.read(info.filename)
            if info.filename == "Doc_0/Document.xml":
                body = body.replace(b"</ofd:CommonData>",
                                    b'<ofd:TemplatePage ID="9200" BaseLoc="Tpls/Tpl_0/Content.xml"/></ofd:CommonData>')
            zout.writestr(info.filename, body)
        zout.writestr("Doc_0/Tpls/Tpl_0/Content.xml", (
            '<?xml version="1.0" encoding="UTF-8"?><ofd:Page xmlns:ofd="http://www.ofdspec.org/2016">'
            f'<ofd:Content><ofd:Layer ID="9211">{labels}</ofd:Layer></ofd:Content></ofd:Page>'))
    inv, problems = _judged(out.getvalue())
    assert (inv.get("buyer_name"), inv.get("seller_name")) == (TRUE_NAME, SELLER)
    assert not [p for p in problems if p.severity == "error"]
