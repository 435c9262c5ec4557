"""Invoice PDFs that only a renderer reads: the QR stored as a bi-level image
(1-bit Flate, /ImageMask, CCITT Group 4, JBIG2) or a text layer whose
glyphs map to the wrong characters.

Each starts as a normal corpus face (`layouts.digital_face`/`legacy_face`
drawn by `render_pdf.face_pdf`), then the PDF is rewritten with pypdf:
- "qr-1bit", "qr-mask": the QR image becomes 1 bit per pixel at 1-2 pixels
  per module with no quiet zone, as some issuers store it (the page around
  it is white, so the printed code has one). One decode of such a tiny image
  finds nothing; rendered at 200 dpi it reads.
- "qr-ccitt": the same bits coded CCITT Group 4 (/CCITTFaxDecode, K -1),
  from Pillow's libtiff encoder.
- "qr-jbig2": the Group 4 bits wrapped as a JBIG2 embedded stream
  (/JBIG2Decode): a page information segment and an immediate generic
  region segment with MMR = 1, whose data T.88 codes exactly as T.6. The
  file header, end-of-page and end-of-file segments are left out, as
  ISO 32000-1 7.4.7 requires. Neither pypdf nor Pillow decodes JBIG2;
  PDFium does.
- "text-garbled": every CJK text run drawn with an embedded TrueType
  subset (WenQuanYi) whose /ToUnicode is replaced: "pua" maps the glyphs
  into the Private Use Area, "shuffled" onto other common hanzi (mojibake
  that looks like Chinese), "none" drops the map. The page shows the
  invoice; its text layer says nothing an invoice says. The QR stays a
  good PNG, so its fields are read; the print is OCR's.
- "scan-jbig2": what a black-and-white desk scanner writes: no text, the
  whole page one bi-level JBIG2 image (200 or 300 dpi).
"""

from __future__ import annotations

import datetime as dt
import io
import random
import re
import struct
from dataclasses import replace
from pathlib import Path

import pypdf
import segno
from PIL import Image, TiffImagePlugin
from pypdf.generic import (ArrayObject, BooleanObject, DecodedStreamObject, DictionaryObject,
                           NameObject, NumberObject, StreamObject)

from tests.corpus.content import DIGITAL_KINDS, LEGACY_E_KINDS, expected_fields, make_content, qr_only_fields
from tests.corpus.face import SONG, Face, Qr, Text
from tests.corpus.layouts import Variant, cipher_rows, digital_face, legacy_face
from tests.corpus.render_pdf import face_pdf

VARIANTS = ("qr-1bit", "qr-mask", "qr-inline", "qr-ccitt", "qr-jbig2", "qr-vector", "text-garbled",
            "scan-jbig2")
GARBLINGS = ("pua", "shuffled", "none")
_CJK_TTF = ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
            "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
            "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
_EMBEDDED = "CorpusCJK"


def make_variant(rng: random.Random, variant: str, today: dt.date | None = None,
                 garbling: str | None = None) -> tuple[bytes, dict, dict]:
    """(pdf bytes, expected, truth) of one invoice of `variant` (see
    VARIANTS). `expected` is what a reader must give: every field for the
    QR variants (the text layer is sound); for "text-garbled" the QR's
    fields only (the rest is printed, for OCR: `truth` has it)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
    today = today or dt.date.today()
    kind = rng.choice(DIGITAL_KINDS + LEGACY_E_KINDS)
    content = make_content(rng, kind, today)
    v = Variant.pick(rng, rng.random() < 0.3, content.is_digital)
    face = digital_face(content, v) if content.is_digital else legacy_face(content, v, cipher_rows(rng))
    truth = expected_fields(content)
    qr = next(op for op in face.ops if isinstance(op, Qr))
    if variant == "scan-jbig2":
        return scan_jbig2_pdf(face, rng), qr_only_fields(content), truth
    if variant == "text-garbled":
        data = garbled_text_pdf(face, garbling or rng.choice(GARBLINGS), rng)
        # A garbled page's QR is a good image, or one that only the render reads.
        storage = rng.choice((None, "qr-jbig2", "qr-vector"))
        if storage is not None:
            data = bilevel_qr_pdf(data, qr.payload, storage, rng)
        return data, qr_only_fields(content), truth
    data = face_pdf(face, title=content.number)
    return bilevel_qr_pdf(data, qr.payload, variant, rng), truth, truth


def qr_bits(payload: str, px_per_module: int, border: int) -> Image.Image:
    """The QR symbol as a mode "1" image (dark modules 0)."""
    buf = io.BytesIO()
    segno.make_qr(payload, error="m", boost_error=False).save(
        buf, kind="png", scale=px_per_module, border=border)
    return Image.open(io.BytesIO(buf.getvalue())).convert("1")


def bilevel_qr_pdf(data: bytes, payload: str, variant: str, rng: random.Random) -> bytes:
    """`data` (a corpus face PDF) with its QR image XObject replaced as
    `variant` says; the QR's place and size on the page stay."""
    img = qr_bits(payload, rng.choice((1, 2)), rng.choice((0, 0, 1)))
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(data)))
    name, ref = _qr_image(writer)
    if variant in ("qr-inline", "qr-vector"):
        # No image XObject left: the code is drawn in the content stream.
        del writer.pages[0]["/Resources"]["/XObject"][name]
        drawn = _inline_mask(img) if variant == "qr-inline" else _vector_modules(payload)
        _replace_do(writer, name, b"0 g " + drawn)
    else:
        writer._replace_object(ref, _image_xobject(img, variant))
        if variant == "qr-mask":
            _replace_do(writer, name, b"0 g " + name.encode() + b" Do")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _image_xobject(img: Image.Image, variant: str) -> StreamObject:
    stream = DecodedStreamObject()
    stream.update({NameObject("/Type"): NameObject("/XObject"), NameObject("/Subtype"): NameObject("/Image"),
                   NameObject("/Width"): NumberObject(img.width), NameObject("/Height"): NumberObject(img.height),
                   NameObject("/BitsPerComponent"): NumberObject(1)})
    if variant == "qr-mask":
        # A stencil: 0 samples paint the fill colour (set black by the caller).
        stream[NameObject("/ImageMask")] = BooleanObject(True)
    else:
        stream[NameObject("/ColorSpace")] = NameObject("/DeviceGray")
    if variant in ("qr-1bit", "qr-mask"):
        stream.set_data(img.tobytes())
        return stream.flate_encode()
    if variant == "qr-ccitt":
        stream[NameObject("/Filter")] = NameObject("/CCITTFaxDecode")
        stream[NameObject("/DecodeParms")] = DictionaryObject({
            NameObject("/K"): NumberObject(-1), NameObject("/Columns"): NumberObject(img.width),
            NameObject("/Rows"): NumberObject(img.height), NameObject("/BlackIs1"): BooleanObject(False)})
        stream._data = group4(img)
        return stream
    stream[NameObject("/Filter")] = NameObject("/JBIG2Decode")
    stream._data = jbig2_generic_mmr(img)
    return stream


def _replace_do(writer: pypdf.PdfWriter, name: str, drawn: bytes) -> None:
    page = writer.pages[0]
    content = page.get_contents()
    content.set_data(content.get_data().replace(name.encode() + b" Do", drawn))
    page.replace_contents(content)


def _inline_mask(img: Image.Image) -> bytes:
    """An inline stencil image (BI ... ID ... EI), hex-coded, drawn in the
    unit square the caller's `cm` maps onto the QR's place."""
    return (b"BI /IM true /W %d /H %d /BPC 1 /F /AHx ID\n" % img.size
            + img.tobytes().hex().encode() + b">\nEI")


def _vector_modules(payload: str) -> bytes:
    """The QR's dark modules as filled squares in the unit square (with a
    2-module quiet zone), as generators that draw the code as paths do."""
    matrix = segno.make_qr(payload, error="m", boost_error=False).matrix
    n = len(matrix) + 4
    rects = [b"%.5f %.5f %.5f %.5f re" % ((c + 2) / n, 1 - (r + 3) / n, 1 / n, 1 / n)
             for r, row in enumerate(matrix) for c, dark in enumerate(row) if dark]
    return b"\n".join(rects) + b" f"


def scan_jbig2_pdf(face: Face, rng: random.Random) -> bytes:
    """`face` rasterised at 200 or 300 dpi, thresholded to one bit, as the
    only content of an image-only page, coded JBIG2 (generic region, MMR)."""
    from tests.corpus.render_pdf import image_pdf
    from tests.corpus.scan import rasterise

    dpi = rng.choice((200, 300))
    page = rasterise(face, dpi, mode="L").point(lambda v: 255 if v > 150 else 0).convert("1")
    buf = io.BytesIO()
    Image.new("L", (8, 8), 255).save(buf, "JPEG")
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(
        image_pdf([(buf.getvalue(), page.width, page.height, dpi)]))))
    images = writer.pages[0]["/Resources"]["/XObject"]
    (name,) = list(images)
    stream = DecodedStreamObject()
    stream.update({NameObject("/Type"): NameObject("/XObject"), NameObject("/Subtype"): NameObject("/Image"),
                   NameObject("/Width"): NumberObject(page.width), NameObject("/Height"): NumberObject(page.height),
                   NameObject("/BitsPerComponent"): NumberObject(1),
                   NameObject("/ColorSpace"): NameObject("/DeviceGray"),
                   NameObject("/Filter"): NameObject("/JBIG2Decode")})
    stream._data = jbig2_generic_mmr(page)
    writer._replace_object(images.raw_get(name), stream)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _qr_image(writer: pypdf.PdfWriter):
    """(the QR image's XObject name, its reference): the page's square
    image without a soft mask."""
    images = writer.pages[0]["/Resources"]["/XObject"]
    for name in images:
        img = images[name].get_object()
        if img.get("/Subtype") == "/Image" and img["/Width"] == img["/Height"] and "/SMask" not in img:
            return name, images.raw_get(name)
    raise ValueError("no QR image in the face PDF")


def group4(img: Image.Image) -> bytes:
    """CCITT T.6 (Group 4) coding of a mode "1" image, black = dark
    modules, from Pillow's libtiff encoder: the single strip of a TIFF."""
    # Pillow writes mode "1" as min-is-black, so libtiff's "black" runs (1
    # bits) would be the light pixels: invert first, then call the 1 bits
    # black (which is what a fax reader does with them).
    inverted = img.point(lambda v: 255 - v, "1")
    buf = io.BytesIO()
    # One strip: the whole image is one T.6 code stream.
    inverted.save(buf, "TIFF", compression="group4", strip_size=2**30)
    tiff = Image.open(io.BytesIO(buf.getvalue()))
    assert isinstance(tiff, TiffImagePlugin.TiffImageFile)
    offsets, counts = tiff.tag_v2[273], tiff.tag_v2[279]
    if len(offsets) != 1:
        raise ValueError("group4: expected one strip")
    raw = buf.getvalue()
    return raw[offsets[0]:offsets[0] + counts[0]]


def _segment(number: int, kind: int, data: bytes) -> bytes:
    # T.88 7.2: number (4), flags (type, 1-byte page association), one byte
    # of referred-to count 0 and retention bits, page association 1
    # (ISO 32000-1: always page 1 in PDF), data length (4).
    return struct.pack(">IBBBI", number, kind, 0, 1, len(data)) + data


def jbig2_generic_mmr(img: Image.Image) -> bytes:
    """A JBIG2 embedded stream of `img` (mode "1") for /JBIG2Decode: page
    information (type 48) and one immediate generic region (type 38) with
    MMR = 1, whose data is the T.6 coding (T.88 6.2.6)."""
    w, h = img.size
    # Page information (T.88 7.4.8): width, height, x/y resolution unknown,
    # flags 0 (default pixel 0, combination OR), no striping.
    page = struct.pack(">IIIIBH", w, h, 0, 0, 0, 0)
    # Region segment information (7.4.1): the region fills the page, OR;
    # generic region flags (7.4.6.2): MMR = 1, no AT pixels follow.
    region = struct.pack(">IIIIB", w, h, 0, 0, 0) + bytes([0x01]) + group4(img)
    return _segment(0, 48, page) + _segment(1, 38, region)


# --- the garbled text layer -------------------------------------------------

def cjk_font_path() -> str | None:
    """A CJK TrueType collection on this machine, or None."""
    return next((p for p in _CJK_TTF if Path(p).exists()), None)


def _register_embedded() -> None:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    if _EMBEDDED not in pdfmetrics.getRegisteredFontNames():
        path = cjk_font_path()
        if path is None:
            raise RuntimeError("no CJK TrueType font to embed (fonts-wqy-microhei)")
        pdfmetrics.registerFont(TTFont(_EMBEDDED, path, subfontIndex=0))


def garbled_text_pdf(face: Face, garbling: str, rng: random.Random) -> bytes:
    """`face` drawn with its CJK text in an embedded subset font whose
    glyph->Unicode map is `garbling` ("pua", "shuffled" or "none")."""
    _register_embedded()
    drawn = Face(face.width, face.height, [
        replace(op, font=_EMBEDDED) if isinstance(op, Text) and op.font == SONG else op for op in face.ops])
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(face_pdf(drawn))))
    fonts = writer.pages[0]["/Resources"]["/Font"]
    for name in fonts:
        font = fonts[name].get_object()
        if "/ToUnicode" not in font:
            continue
        if garbling == "none":
            del font["/ToUnicode"]
            continue
        cmap = font["/ToUnicode"].get_object()
        cmap.set_data(_garble_cmap(cmap.get_data(), garbling, rng))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


_BFCHAR = re.compile(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>")
# Hanzi that are common and are none of the labels' characters, so a
# shuffled map cannot spell 发票号码 by chance.
_COMMON = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处队南给色光门即保治北造百规热领七海口东导器压志世金增争济阶油思术极交受联什认六共权收证改清己美再采转更单风切打白教速花带安场身车例真务具万每目至达走积示议声报斗完类八离华名确才科张信马节话米整空元况今集温传土许步群广石记需段研界拉林律叫且究观越织装影算低持音众书布复容儿须际商非验连断深难近矿千周委素技备半办青省列习响约支般史感劳便团往酸历市克何除消构府称太准精值号率族维划选标写存候毛亲快效斯院查江型眼王按格养易置派层片始却专状育厂京识适属圆包火住调满县局照参红细引听该铁价严"


def _garble_cmap(cmap: bytes, garbling: str, rng: random.Random) -> bytes:
    """The ToUnicode CMap with every bfchar target replaced: Private Use
    Area code points ("pua") or common hanzi dealt out at random
    ("shuffled"); ASCII targets (digits, ¥ amounts) are garbled too."""
    pool = list(_COMMON)
    rng.shuffle(pool)
    counter = iter(range(10**6))

    def target(m: re.Match) -> bytes:
        i = next(counter)
        ch = chr(0xE000 + i) if garbling == "pua" else pool[i % len(pool)]
        return b"<%s> <%04X>" % (m.group(1), ord(ch))

    return _BFCHAR.sub(target, cmap)
