"""Text in a PDF layer that is off is no print (agent/extract/pdf_optional.py).

A generated 数电 invoice whose buyer tax id is drawn in an optional content
group the document turns off: every viewer shows the 纳税人识别号 box empty
(a personal invoice), PDFium's text page still holds the company's id, and
the agent stored it and judged the invoice the company's. The same text in
a layer that is on is read as before.
"""

from __future__ import annotations

import datetime as dt
import io
import random

import pypdf
import pypdfium2
import pytest
from pypdf.generic import ArrayObject, DictionaryObject, NameObject, TextStringObject
from reportlab.pdfgen import canvas

from agent.extract import extract_bytes
from tests.corpus.content import expected_fields, make_content
from tests.corpus.face import Face, Text
from tests.corpus.layouts import Variant, digital_face
from tests.corpus.render_pdf import draw_face


def _invoice():
    rng = random.Random(7)
    content = make_content(rng, "32", dt.date(2026, 11, 1))
    return digital_face(content, Variant.pick(rng, False, True)), expected_fields(content)


def _layered(face: Face, in_layer, state: str = "/OFF", in_form: bool = False, copies: int = 1,
             form_dictionary: bool = False, usage: tuple[str, str] | None = None,
             auto_state: bool = False) -> bytes:
    """`face` as a PDF, the ops `in_layer` picks drawn (`copies` times) in
    marked content /OC /oc1 (around a form's `Do` when `in_form`), or in a
    form whose dictionary says /OC (`form_dictionary`: no mark), in a group
    the document's default configuration sets to `state`. `usage`: the
    group's /Usage /View /ViewState and /Print /PrintState; `auto_state`:
    the configuration's /AS applies them to viewing and printing."""
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=(face.width, face.height), invariant=1)
    for op in face.ops:
        one = Face(face.width, face.height, [op])
        if not in_layer(op):
            draw_face(c, one, False)
            continue
        for _ in range(copies):
            if not form_dictionary:
                c._code.append("/OC /oc1 BDC")
            if in_form or form_dictionary:
                c.beginForm("hidden")
                draw_face(c, one, False)
                c.endForm()
                c.doForm("hidden")
            else:
                draw_face(c, one, False)
            if not form_dictionary:
                c._code.append("EMC")
    c.showPage()
    c.save()
    writer = pypdf.PdfWriter()
    writer.append(pypdf.PdfReader(io.BytesIO(buf.getvalue())))
    group_entries = {NameObject("/Type"): NameObject("/OCG"), NameObject("/Name"): TextStringObject("layer")}
    if usage is not None:
        group_entries[NameObject("/Usage")] = DictionaryObject({
            NameObject(f"/{use}"): DictionaryObject({NameObject(f"/{use}State"): NameObject(value)})
            for use, value in zip(("View", "Print"), usage)})
    group = writer._add_object(DictionaryObject(group_entries))
    config = DictionaryObject({NameObject(state): ArrayObject([group])})
    if auto_state:
        config[NameObject("/AS")] = ArrayObject([DictionaryObject({
            NameObject("/Event"): NameObject(f"/{use}"), NameObject("/OCGs"): ArrayObject([group]),
            NameObject("/Category"): ArrayObject([NameObject(f"/{use}")])}) for use in ("View", "Print")])
    writer._root_object[NameObject("/OCProperties")] = DictionaryObject({
        NameObject("/OCGs"): ArrayObject([group]), NameObject("/D"): config})
    writer.pages[0]["/Resources"][NameObject("/Properties")] = DictionaryObject({NameObject("/oc1"): group})
    if form_dictionary:
        for form in writer.pages[0]["/Resources"]["/XObject"].values():
            form.get_object()[NameObject("/OC")] = group
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _read(data: bytes):
    [inv] = extract_bytes(data, ocr=False)
    return inv


@pytest.mark.parametrize("in_form", [False, True], ids=["text", "form"])
def test_a_tax_id_in_a_layer_that_is_off_is_not_read(in_form):
    face, truth = _invoice()
    data = _layered(face, lambda op: isinstance(op, Text) and op.text == truth["buyer_tax_id"], in_form=in_form)
    page = pypdfium2.PdfDocument(data)[0]
    assert truth["buyer_tax_id"] in page.get_textpage().get_text_range()   # the attack's premise
    inv = _read(data)
    assert inv.get("buyer_tax_id") is None
    # The rest of the face is read as ever.
    assert (inv.get("buyer_name"), inv.get("number")) == (truth["buyer_name"], truth["number"])


def test_a_tax_id_in_a_form_whose_dictionary_names_a_layer_that_is_off_is_not_read():
    # No /OC mark anywhere on the page: the form XObject's own /OC entry.
    face, truth = _invoice()
    data = _layered(face, lambda op: isinstance(op, Text) and op.text == truth["buyer_tax_id"],
                    form_dictionary=True)
    assert _read(data).get("buyer_tax_id") is None
    on = _layered(face, lambda op: isinstance(op, Text) and op.text == truth["buyer_tax_id"],
                  form_dictionary=True, state="/ON")
    assert _read(on).get("buyer_tax_id") == truth["buyer_tax_id"]


def test_the_same_tax_id_in_a_layer_that_is_on_is_read():
    face, truth = _invoice()
    data = _layered(face, lambda op: isinstance(op, Text) and op.text == truth["buyer_tax_id"], state="/ON")
    assert _read(data).get("buyer_tax_id") == truth["buyer_tax_id"]


def test_a_whole_face_in_a_layer_that_is_on_is_read():
    # Every text object in optional content: two drawings tell them all.
    face, truth = _invoice()
    data = _layered(face, lambda op: isinstance(op, Text))
    data_on = _layered(face, lambda op: isinstance(op, Text), state="/ON")
    on = _read(data_on)
    assert (on.get("buyer_tax_id"), on.get("seller_name")) == (truth["buyer_tax_id"], truth["seller_name"])
    off = _read(data)   # nothing printed shows: no value from the text layer
    assert {n for n, f in off.fields.items() if f.source == "pdf-text"} == set()


@pytest.mark.parametrize("auto_state", [True, False], ids=["auto-state", "usage-alone"])
def test_a_face_in_a_layer_that_prints_but_is_not_viewed_is_read(auto_state):
    # A print-only layer (/Usage: /View OFF, /Print ON), applied by /AS or,
    # as PDFium reads it, by /Usage alone (Acrobat then shows it on screen
    # too): the paper copy holds every value. Only the view was drawn, and
    # the buyer, seller and 金额 were left empty: an invoice sent to 补录.
    face, truth = _invoice()
    data = _layered(face, lambda op: isinstance(op, Text), state="/ON", usage=("/OFF", "/ON"),
                    auto_state=auto_state)
    inv = _read(data)
    assert {name: inv.get(name) for name in ("buyer_tax_id", "buyer_name", "seller_name")} == {
        name: truth[name] for name in ("buyer_tax_id", "buyer_name", "seller_name")}
    assert str(inv.get("amount")) == truth["amount"]


def test_a_tax_id_in_a_layer_neither_viewed_nor_printed_is_not_read():
    face, truth = _invoice()
    data = _layered(face, lambda op: isinstance(op, Text) and op.text == truth["buyer_tax_id"], state="/ON",
                    usage=("/OFF", "/OFF"), auto_state=True)
    assert _read(data).get("buyer_tax_id") is None


def test_a_layer_s_empty_text_object_is_not_judged_and_hides_nothing():
    # A real invoice (samples: 482078385650808140.pdf) draws its 69 values in
    # a layer, one of them an empty `Tj ()`: it changes no pixel, so it was
    # judged hidden on screen, and the page drawn twice more to ask the
    # printer. An object that reads as nothing hides no value: not judged.
    from agent.extract.pdf_optional import unshown_optional
    from agent.extract.pdf_shown import walk_page
    from tests.conftest import SAMPLES

    path = next(SAMPLES.rglob("482078385650808140.pdf"))
    doc = pypdfium2.PdfDocument(path.read_bytes())
    page = doc[0]
    textpage = page.get_textpage()
    optional = walk_page(page).optional
    assert len(optional) > 60
    assert len(unshown_optional(page, optional)) == 1          # the empty one, without the text page
    assert unshown_optional(page, optional, textpage) == set()  # nothing of the layer is hidden
    textpage.close()
    page.close()
    doc.close()
