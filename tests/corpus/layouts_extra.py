"""Layouts issue 13 saw lose or garble fields on real invoices, generated.

- "portrait": an A4 portrait page, each party's fields stacked on their own
  rows and the totals under the goods (the tax bureau's and some platforms'
  print layout);
- "daikai": a 代开 invoice (issued by the tax office for a small taxpayer),
  whose QR amount is the 价税合计 although its type says 金额, and whose 备注
  repeats the seller as 代开企业税号/名称;
- "no-yen": amounts printed without a ¥, or with a ¥ drawn as strokes (a
  glyph that extracts as nothing);
- "cipher-glued": the 密码区's first rows on the baselines of the buyer's name
  and tax id, right after them (what stream order glues into one run);
- "ofd-page-text": an OFD with no CustomDatas, no tags and no attachment,
  only page text (half of them without TextObject IDs, half with no QR image).

`make_extra(rng, style, today)` makes one; `make_extra_corpus(seed, per_style)`
makes `per_style` of each. Each result is a `GeneratedInvoice` whose `truth`
holds every field as printed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import random
import zipfile

from tests.corpus.content import (DIGITAL_KINDS, LEGACY_E_KINDS, InvoiceContent, expected_fields, make_content,
                                  qr_payload, true_items)
from tests.corpus.face import BLACK, BLUE_BLACK, DARK_RED, MONO, SONG, Face, Line, Qr, Text, fit_size, text_width
from tests.corpus.generate import GeneratedInvoice
from tests.corpus.layouts import Variant, _item_rows, _seal, _void_mark, _yen, cipher_rows, digital_face, legacy_face
from tests.corpus.render_pdf import face_pdf, qr_png

EXTRA_STYLES = ("portrait", "daikai", "no-yen", "cipher-glued", "ofd-page-text")
_YENS = ("¥", "￥")


def make_extra(rng: random.Random, style: str, today: dt.date) -> GeneratedInvoice:
    """One file of `style` (one of EXTRA_STYLES); the same rng state gives the same bytes."""
    if style == "portrait":
        kind = rng.choice(DIGITAL_KINDS + LEGACY_E_KINDS)
        content = make_content(rng, kind, today)
        face = portrait_face(content, Variant.pick(rng, rng.random() < 0.3, content.is_digital))
        return _pdf(content, face, style)
    if style == "daikai":
        content = daikai_content(rng, today)
        face = legacy_face(content, Variant.pick(rng, rng.random() < 0.3, False), cipher_rows(rng))
        return _pdf(content, face, style)
    if style == "no-yen":
        content = make_content(rng, rng.choice(DIGITAL_KINDS + LEGACY_E_KINDS), today)
        variant = Variant.pick(rng, rng.random() < 0.3, content.is_digital)
        face = (digital_face(content, variant) if content.is_digital
                else legacy_face(content, variant, cipher_rows(rng)))
        return _pdf(content, without_yen(face, strokes=rng.random() < 0.5), style)
    if style == "cipher-glued":
        content = make_content(rng, rng.choice(LEGACY_E_KINDS), today)
        face = cipher_glued_face(content, Variant.pick(rng, False, False), cipher_rows(rng), rng)
        return _pdf(content, face, style)
    if style == "ofd-page-text":
        content = make_content(rng, rng.choice(DIGITAL_KINDS + LEGACY_E_KINDS), today)
        variant = Variant.pick(rng, False, content.is_digital)
        face = (digital_face(content, variant) if content.is_digital
                else legacy_face(content, variant, cipher_rows(rng)))
        with_qr = rng.random() < 0.5
        data = face_ofd(face, content.words, with_ids=rng.random() < 0.5, with_qr=with_qr)
        truth = expected_fields(content)
        expected = truth if with_qr else {**truth, "qr": None, "kind": None}
        return GeneratedInvoice(data, "ofd", expected, truth, style, items=true_items(content))
    raise ValueError(f"unknown extra style {style!r}; choose from {', '.join(EXTRA_STYLES)}")


def make_extra_corpus(seed: int, per_style: int, today: dt.date,
                      styles: tuple[str, ...] = EXTRA_STYLES) -> list[GeneratedInvoice]:
    """`per_style` files of each style, deterministic for the arguments."""
    rng = random.Random(seed)
    return [make_extra(random.Random(rng.getrandbits(64)), style, today)
            for style in styles for _ in range(per_style)]


def _pdf(content: InvoiceContent, face: Face, style: str) -> GeneratedInvoice:
    truth = expected_fields(content)
    return GeneratedInvoice(face_pdf(face, title=content.number), "pdf", truth, truth, style,
                            items=true_items(content))


def daikai_content(rng: random.Random, today: dt.date) -> InvoiceContent:
    """A 代开 invoice: an old-layout type, a small taxpayer's 3 % or 1 %, the
    QR amount the 价税合计, the seller repeated in the 备注."""
    for _ in range(50):
        content = make_content(rng, rng.choice(LEGACY_E_KINDS), today)
        if content.tax > 0:
            break
    content.remarks = f"代开企业税号:{content.seller.tax_id} 代开企业名称:{content.seller.name}"
    content.qr = qr_payload(rng, content.kind, content.code, content.number, content.total, content.date,
                            content.check_code)
    return content


def portrait_face(c: InvoiceContent, v: Variant) -> Face:
    """An A4 portrait face: header fields stacked top right, the buyer's and
    the seller's fields each on their own rows, goods, then the totals."""
    f = Face(595.27, 841.89)
    f.ops.append(Qr(40, 36, 72, c.qr, v.qr_px))
    f.text(297.6, 60, c.title, 16, "label", color=DARK_RED, anchor="c")
    _seal(f, 297.6, 66)
    y = 40.0
    for label, value in (("发票代码:", c.code), ("发票号码:", c.number),
                         ("开票日期:", c.date.strftime("%Y年%m月%d日")),
                         ("校验码:", " ".join(c.check_code[i:i + 5] for i in range(0, 20, 5)) if c.check_code else None)):
        if value:
            f.label_value(400, y, v.label(label), value, 9, value_color=BLUE_BLACK)
            y += 15
    y = 130.0
    for head, party in (("购买方信息", c.buyer), ("销售方信息", c.seller)):
        f.text(40, y, head, 10, "label", color=DARK_RED)
        f.line(40, y + 4, 555, y + 4, color=DARK_RED)
        name_label = v.label("名称:")
        f.label_value(50, y + 20, name_label, party.name, 9,
                      value_size=fit_size(party.name, 10, 480 - text_width(name_label, 9)))
        f.label_value(50, y + 36, v.label("统一社会信用代码/纳税人识别号:"), party.tax_id or "", 9, value_size=10)
        y += 62
    y += 10
    heads = (("项目名称", 90), ("规格型号", 200), ("单位", 250), ("数量", 290), ("单价", 345),
             ("金额", 410), ("税率/征收率", 470), ("税额", 530))
    for word, x in heads:
        f.text(x, y, v.label(word), 9, "label", color=DARK_RED, anchor="c")
    f.line(40, y + 4, 555, y + 4, color=DARK_RED)
    cols = {"name": 42, "spec": 178, "unit": 250, "qty": 310, "price": 372, "amount": 440,
            "rate": 470, "tax": 555}
    _item_rows(f, c.items, y + 18, cols, 130)
    rows = sum(max(1, len(_wrap_count(it.name))) for it in c.items)
    y = y + 18 + 11 * rows + 14
    f.line(40, y - 10, 555, y - 10, color=DARK_RED)
    f.text(90, y, v.label("合计", always_spaced=True), 9, "label", color=DARK_RED, anchor="c")
    _yen(f, 440, y, c.amount, 9, v)
    _yen(f, 555, y, c.tax, 9, v)
    y += 22
    f.text(50, y, v.label("价税合计") + v.brackets("大写"), 9, "label", color=DARK_RED)
    _void_mark(f, 150, y, BLACK)
    f.text(164, y, c.words, 10)
    small = f.text(400, y, v.brackets("小写"), 9, "label", color=DARK_RED)
    _yen(f, small.x + text_width(small.text, 9) + 4, y, c.total, 10, v, anchor="l")
    y += 26
    f.text(50, y, v.label("备注:"), 9, "label", color=DARK_RED)
    if c.remarks:
        f.text(90, y, c.remarks, 9)
    f.label_value(50, y + 30, v.label("开票人:"), c.drawer, 9)
    return f


def _wrap_count(name: str) -> list[str]:
    from tests.corpus.face import wrap
    return wrap(name, 8.5, 130)


def without_yen(face: Face, strokes: bool) -> Face:
    """`face` with every ¥ gone from its text: left out, or (`strokes`)
    drawn as lines, a ¥ that looks right and extracts as nothing."""
    out = Face(face.width, face.height)
    for op in face.ops:
        if not isinstance(op, Text) or not op.text.startswith(_YENS):
            out.ops.append(op)
            continue
        rest = op.text[1:]
        yen_w = text_width(op.text[0], op.size, op.font if op.font == SONG else MONO)
        left = op.left()
        if rest:
            x = left + yen_w if op.anchor == "l" else op.x
            out.ops.append(dataclasses.replace(op, text=rest, x=x))
        if strokes:
            _yen_strokes(out, left, op.y, op.size, op.color)
    return out


def _yen_strokes(face: Face, x: float, baseline: float, size: float, color) -> None:
    w, h = size * 0.55, size * 0.7
    top, mid = baseline - h, baseline - h * 0.45
    cx = x + w / 2
    for seg in ((x, top, cx, mid), (x + w, top, cx, mid), (cx, mid, cx, baseline),
                (x + w * 0.15, mid, x + w * 0.85, mid), (x + w * 0.15, mid + h * 0.2, x + w * 0.85, mid + h * 0.2)):
        face.ops.append(Line(*seg, width=size * 0.07, color=color))


def cipher_glued_face(c: InvoiceContent, v: Variant, cipher: list[str], rng: random.Random) -> Face:
    """An old-layout face whose first two 密码区 rows sit on the buyer's name
    and tax-id baselines: right after the value (0.3 pt) or in their box."""
    f = legacy_face(c, v, [])
    top = 82.0
    name_label, id_label = v.label("名称:"), v.label("纳税人识别号:")
    name_size = fit_size(c.buyer.name, 9.5, 345 - 36 - text_width(name_label, 9))
    ends = (34 + text_width(name_label, 9) + 2 + text_width(c.buyer.name, name_size),
            34 + text_width(id_label, 9) + 2 + text_width(c.buyer.tax_id or "", 10.5, MONO))
    glued = rng.random() < 0.5
    for i, row in enumerate(cipher):
        if i < 2:
            y = top + 12 + i * 14
            x = ends[i] + 0.3 if glued else 372
        else:
            y, x = top + 14 + i * 13, 372
        f.text(x, y, row, 10.5, font=MONO, color=BLUE_BLACK)
    return f


# -- OFD --------------------------------------------------------------------

_NS = "http://www.ofdspec.org/2016"
_MM = 25.4 / 72


def face_ofd(face: Face, words: str, *, with_ids: bool, with_qr: bool) -> bytes:
    """An OFD package of `face` as page text only: one TextObject per run
    (Boundary, Size, TextCode X/Y/DeltaX in mm), no CustomDatas, tags or
    attachment; the 大写 printed as "ⓧ words"; the QR a PNG resource or none."""
    objects = []
    for n, op in enumerate(o for o in face.ops if isinstance(o, Text)):
        text = f"ⓧ {op.text}" if op.text == words else op.text
        font = op.font if op.font == MONO else SONG
        advances = [text_width(ch, op.size, font) * _MM for ch in text]
        x, top, size = op.left() * _MM, (op.y - op.size) * _MM, op.size * _MM
        width = sum(advances) + size
        ident = f' ID="{n + 100}"' if with_ids else ""
        delta = " ".join(f"{a:.3f}" for a in advances[:-1])
        objects.append(
            f'<ofd:TextObject{ident} Boundary="{x:.3f} {top:.3f} {width:.3f} {size * 1.3:.3f}" '
            f'Font="1" Size="{size:.3f}"><ofd:TextCode X="0" Y="{size:.3f}"'
            f'{f" DeltaX={chr(34)}{delta}{chr(34)}" if delta else ""}>{_escape(text)}</ofd:TextCode></ofd:TextObject>')
    page = (f'<?xml version="1.0" encoding="UTF-8"?><ofd:Page xmlns:ofd="{_NS}"><ofd:Content>'
            f'<ofd:Layer ID="2">{"".join(objects)}</ofd:Layer></ofd:Content></ofd:Page>')
    ofd_xml = (f'<?xml version="1.0" encoding="UTF-8"?><ofd:OFD xmlns:ofd="{_NS}" DocType="OFD" Version="1.1">'
               f"<ofd:DocBody><ofd:DocInfo><ofd:DocID>generated</ofd:DocID></ofd:DocInfo>"
               f"<ofd:DocRoot>Doc_0/Document.xml</ofd:DocRoot></ofd:DocBody></ofd:OFD>")
    document = (f'<?xml version="1.0" encoding="UTF-8"?><ofd:Document xmlns:ofd="{_NS}"><ofd:CommonData>'
                f"<ofd:PageArea><ofd:PhysicalBox>0 0 {face.width * _MM:.2f} {face.height * _MM:.2f}</ofd:PhysicalBox>"
                f'</ofd:PageArea><ofd:MaxUnitID>9999</ofd:MaxUnitID></ofd:CommonData>'
                f'<ofd:Pages><ofd:Page ID="1" BaseLoc="Pages/Page_0/Content.xml"/></ofd:Pages></ofd:Document>')
    members = {"OFD.xml": ofd_xml, "Doc_0/Document.xml": document, "Doc_0/Pages/Page_0/Content.xml": page}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in members.items():
            zf.writestr(name, text.encode())
        qr = next((o for o in face.ops if isinstance(o, Qr)), None)
        if with_qr and qr is not None:
            zf.writestr("Doc_0/Res/image_qr.png", qr_png(qr.payload, 4))
    return buf.getvalue()


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


__all__ = ["EXTRA_STYLES", "make_extra", "make_extra_corpus", "portrait_face", "daikai_content",
           "without_yen", "cipher_glued_face", "face_ofd"]
