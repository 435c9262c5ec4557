"""Rendering an OFD page drawn as paths (no text) so that OCR can read it."""

from __future__ import annotations

from agent.extract.ofd_render import (_path_ops, fill_colours, has_paths_but_no_text, render_paths)
from agent.extract.xml_parse import parse_xml

NS = "http://www.ofdspec.org/2016"


def page(objects: str, box: str = "0 0 100 50") -> bytes:
    return (f'<ofd:Page xmlns:ofd="{NS}"><ofd:Area><ofd:PhysicalBox>{box}</ofd:PhysicalBox></ofd:Area>'
            f'<ofd:Content><ofd:Layer ID="1">{objects}</ofd:Layer></ofd:Content></ofd:Page>').encode()


def path(data: str, param: str = "6", boundary: str = "0 0 100 50", **attrs) -> str:
    extra = "".join(f' {k}="{v}"' for k, v in attrs.items())
    return (f'<ofd:PathObject ID="9" Boundary="{boundary}" Fill="true" DrawParam="{param}"{extra}>'
            f"<ofd:AbbreviatedData>{data}</ofd:AbbreviatedData></ofd:PathObject>")


RES = parse_xml((f'<ofd:Res xmlns:ofd="{NS}"><ofd:DrawParams>'
                 f'<ofd:DrawParam ID="4"><ofd:FillColor Value="255 255 255"/></ofd:DrawParam>'
                 f'<ofd:DrawParam ID="6"><ofd:FillColor Value="0 0 0"/></ofd:DrawParam>'
                 f"</ofd:DrawParams></ofd:Res>").encode())


def test_ofd_path_commands_become_pdf_operators():
    ops = _path_ops("M 0 0 L 10 0 Q 10 10 0 10 C".split())
    assert ops[:2] == ["0.0 0.0 m", "10.0 0.0 l"]
    # The quadratic's control point (10,10) from (10,0) to (0,10), as a cubic.
    assert ops[2] == "10.0000 6.6667 6.6667 10.0000 0.0 10.0 c" and ops[3] == "h"
    assert _path_ops("M 0 0 L 10".split()) == ["0.0 0.0 m"]  # cut short: the path ends there
    assert _path_ops("M 0 0 A 1 1 0 0 1 5 5 L 1 1".split()) == ["0.0 0.0 m"]


def test_a_filled_glyph_is_drawn_where_it_is_on_the_page_in_its_colour():
    # A white page-sized background, then a black 10x10 mm square at (20, 30) mm.
    root = parse_xml(page(path("M 0 0 L 100 0 L 100 50 L 0 50 C", param="4")
                          + path("M 20 30 L 30 30 L 30 40 L 20 40 C")))
    assert has_paths_but_no_text(root)
    image = render_paths(root, fill_colours([RES]))
    scale = image.width / 100  # px per mm
    assert image.getpixel((int(25 * scale), int(35 * scale))) < 50        # inside the square
    assert image.getpixel((int(25 * scale), int(15 * scale))) > 200       # above it: y runs down
    assert image.getpixel((int(60 * scale), int(35 * scale))) > 200


def test_pages_with_text_or_without_paths_are_not_for_rendering():
    assert not has_paths_but_no_text(parse_xml(page(path("M 0 0 L 1 1 C") + '<ofd:TextObject ID="2"/>')))
    assert not has_paths_but_no_text(parse_xml(page("")))
    assert render_paths(parse_xml(page("")), {}) is None


def test_garbage_and_oversized_pages_render_nothing_and_never_raise():
    unreadable = render_paths(parse_xml(page(path("M a b L c d C"))), {})
    assert unreadable is None or unreadable.getextrema()[0] > 200  # nothing drawn
    huge = "".join(path("M 0 0 L 1 0 L 1 1 C") for _ in range(5_001))
    assert render_paths(parse_xml(page(huge)), {}) is None
    odd = parse_xml(page(path("M 0 0 L 1e308 1e308 C", boundary="1e308 0 1 1"), box="0 0 1e9 -5"))
    render_paths(odd, {})  # any result, no exception
