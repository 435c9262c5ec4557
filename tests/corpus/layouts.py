"""Invoice faces: the 数电 layout (2024-) and the older 增值税电子/纸质发票 layout.

Positions follow the real files in ../shared/samples (a 数电 page is
595 x 397 pt, an old one 609 x 394 pt). `Variant` holds the template
differences seen between issuers: spaced labels (校 验 码, 价 税 合 计),
half- or full-width colons and brackets, and a ¥ drawn as its own glyph.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from tests.corpus.content import InvoiceContent, LineItem, money
from tests.corpus.face import (BLACK, BLUE_BLACK, BROWN, DARK_RED, MONO, Ellipse, Face, Qr, Stamp,
                               fit_size, text_width, wrap)


_KANGXI = str.maketrans({"日": "\u2f47", "月": "\u2f49", "方": "\u2f45", "人": "\u2f08", "用": "\u2f64",
                        "金": "\u2fa6", "一": "\u2f00", "大": "\u2f24", "小": "\u2f29", "工": "\u2f2f"})


@dataclass(frozen=True)
class Variant:
    """Template choices of one issuer."""

    spaced: bool          # labels with spaces between characters
    colon: str            # ":" or "："
    wide_brackets: bool   # （大写） rather than (大写)
    yen_apart: bool       # ¥ drawn as its own text run left of the number
    yen: str = "¥"        # "¥" (U+00A5) or the full-width "￥" some issuers print
    kangxi: bool = False  # label font maps 日, 方, 人 ... to Kangxi radicals (⽇, ⽅, ⼈)
    qr_px: int = 4        # pixels per module of the embedded QR image
    seller_stamp: bool = False  # the seller's 发票专用章 printed on an old-layout face

    @classmethod
    def pick(cls, rng: random.Random, spaced: bool, digital: bool) -> "Variant":
        """The usual template for the layout, with spacing as asked and the
        punctuation issuers actually vary."""
        colon = "：" if (digital and rng.random() < 0.85) or rng.random() < 0.2 else ":"
        wide = digital if rng.random() < 0.85 else not digital
        return cls(spaced, colon, wide, spaced and rng.random() < 0.4,
                   "￥" if rng.random() < 0.2 else "¥", rng.random() < 0.12,
                   rng.choice((3, 4, 6, 8) if digital else (2, 3, 4)), rng.random() < 0.5)

    def label(self, text: str, always_spaced: bool = False) -> str:
        """A label as this template prints it, colon included when `text` ends with one."""
        body, colon = (text[:-1], self.colon) if text.endswith(":") else (text, "")
        # Templates space out short labels only (名 称, 校 验 码, 价 税 合 计).
        if (self.spaced and len(body) <= 6) or always_spaced:
            body = " ".join(body)
        return self._glyphs(body) + colon

    def _glyphs(self, text: str) -> str:
        # Some issuers' label fonts carry ToUnicode maps to the Kangxi radical
        # code points; the page looks the same, the extracted text does not.
        return text.translate(_KANGXI) if self.kangxi else text

    def brackets(self, word: str) -> str:
        """`word` in this template's brackets: （大写） or (大写)."""
        word = self._glyphs(word)
        return f"（{word}）" if self.wide_brackets else f"({word})"


def _yen(face: Face, x: float, y: float, amount, size: float, v: Variant, anchor: str = "r",
         font: str = "STSong-Light") -> None:
    text = money(amount)
    # The full-width ￥ exists only in the CJK font.
    yen = v.yen if font == "STSong-Light" else "¥"
    if v.yen_apart:
        if anchor == "l":  # keep the number clear of the ¥ drawn before it
            x += text_width(yen, size) + 1
        t = face.text(x, y, text, size, "value", anchor=anchor, font=font)
        face.text(t.left() - 1, y, yen, size, "label", anchor="r", color=BROWN)
    else:
        face.text(x, y, yen + text, size, "value", anchor=anchor, font=font)


def _void_mark(face: Face, x: float, y: float, color) -> None:
    # The ⊗ before the 大写 is drawn as graphics on real invoices, not as text.
    r = 4.0
    face.ops.append(Ellipse(x + r, y - r + 1, r, r, width=0.6, color=color))
    d = r * 0.7
    face.line(x + r - d, y - r + 1 - d, x + r + d, y - r + 1 + d, width=0.6, color=color)
    face.line(x + r - d, y - r + 1 + d, x + r + d, y - r + 1 - d, width=0.6, color=color)


def _seal(face: Face, cx: float, cy: float) -> None:
    face.ops.append(Stamp(cx, cy, 42, 27))


def _item_rows(face: Face, items: list[LineItem], y0: float, cols: dict, name_width: float,
               size: float = 8.5, step: float = 11) -> None:
    y = y0
    for it in items:
        lines = wrap(it.name, size, name_width)
        for i, part in enumerate(lines):
            face.text(cols["name"], y + i * step, part, size)
        face.text(cols["spec"], y, it.spec, size)
        face.text(cols["unit"], y, it.unit, size, anchor="c")
        face.text(cols["qty"], y, it.quantity, size, anchor="r")
        face.text(cols["price"], y, it.unit_price, size, anchor="r")
        face.text(cols["amount"], y, money(it.amount), size, anchor="r")
        face.text(cols["rate"], y, f"{it.rate}%", size, anchor="c")
        face.text(cols["tax"], y, money(it.tax), size, anchor="r")
        y += step * len(lines)


def digital_face(c: InvoiceContent, v: Variant) -> Face:
    """The 电子发票（普通发票）/（增值税专用发票） face."""
    f = Face(595.27, 396.85)
    f.ops.append(Qr(18, 12, 58, c.qr, v.qr_px))
    if c.special_label:
        f.text(108, 50, c.special_label, 10, "label", color=BLACK)
    f.text(297.6, 40, c.title, 17, "label", color=DARK_RED, anchor="c")
    f.line(200, 47, 395, 47, color=DARK_RED)
    f.line(200, 50, 395, 50, color=DARK_RED)
    _seal(f, 297.6, 44)
    f.label_value(430, 36, v.label("发票号码:"), c.number, 9)
    f.label_value(430, 53, v.label("开票日期:"), c.date.strftime("%Y年%m月%d日"), 9)
    top, bottom, mid = 72.0, 340.0, 297.0
    f.box(12, top, 571, bottom - top, color=DARK_RED)
    f.line(12, 132, 583, 132, color=DARK_RED)
    for x0, chars, party in ((12, "购买方信息", c.buyer), (mid, "销售方信息", c.seller)):
        f.vertical(x0 + 4, top + 14, chars, 11, 9, color=DARK_RED)
        f.line(x0 + 15, top, x0 + 15, 132, color=DARK_RED)
        name_label = v.label("名称:")
        size = fit_size(party.name, 9.5, mid - 40 - text_width(name_label, 9))
        f.label_value(x0 + 19, top + 22, name_label, party.name, 9, value_size=size)
        f.label_value(x0 + 19, top + 48, v.label("统一社会信用代码/纳税人识别号:"), party.tax_id or "", 8,
                      value_size=10)
    f.line(mid, top, mid, 132, color=DARK_RED)
    heads = (("项目名称", 62), ("规格型号", 145), ("单位", 205), ("数量", 255), ("单价", 325),
             ("金额", 400), ("税率/征收率", 462), ("税额", 548))
    for word, x in heads:
        f.text(x, 146, v.label(word), 9, "label", color=DARK_RED, anchor="c")
    cols = {"name": 15, "spec": 118, "unit": 205, "qty": 282, "price": 357, "amount": 430,
            "rate": 462, "tax": 578}
    _item_rows(f, c.items, 160, cols, 100)
    f.text(62, 258, v.label("合计", always_spaced=True).replace(" ", "    "), 9, "label", color=DARK_RED,
           anchor="c")
    _yen(f, 430, 258, c.amount, 9, v)
    _yen(f, 578, 258, c.tax, 9, v)
    f.line(12, 264, 583, 264, color=DARK_RED)
    f.text(75, 278, v.label("价税合计") + v.brackets("大写"), 9, "label", color=DARK_RED, anchor="c")
    f.line(140, 264, 140, 284, color=DARK_RED)
    _void_mark(f, 146, 278, BLACK)
    f.text(160, 278, c.words, 10)
    small = f.text(385, 278, v.brackets("小写"), 9, "label", color=DARK_RED)
    _yen(f, small.x + text_width(small.text, 9) + 4, 278, c.total, 10, v, anchor="l")
    f.line(12, 284, 583, 284, color=DARK_RED)
    f.vertical(16, 302, "备注", 22, 9, color=DARK_RED)
    f.line(27, 284, 27, bottom, color=DARK_RED)
    f.text(31, 298, f"收款人：{c.payee};    复核人：{c.reviewer};", 9)
    if c.remarks:
        f.text(31, 312, c.remarks, 9)
    f.label_value(55, 362, v.label("开票人:"), c.drawer, 9)
    return f


def legacy_face(c: InvoiceContent, v: Variant, cipher: list[str]) -> Face:
    """The face of 增值税电子普通/专用发票 and of the paper 普通/专用发票."""
    f = Face(609.44, 394.01)
    f.ops.append(Qr(15, 8, 58, c.qr, v.qr_px))
    if c.special_label:
        f.text(95, 42, c.special_label, 13, "label", color=BLACK)
    f.text(305, 38, c.title, 17, "label", color=BROWN, anchor="c")
    f.line(195, 46, 415, 46)
    f.line(195, 49, 415, 49)
    _seal(f, 305, 44)
    f.label_value(428, 18, v.label("发票代码:"), c.code or "", 9, value_size=10, value_font=MONO,
                  value_color=BLUE_BLACK)
    f.label_value(428, 32, v.label("发票号码:"), c.number, 9, value_size=10, value_font=MONO,
                  value_color=BLUE_BLACK)
    date_label = f.text(428, 46, v.label("开票日期:"), 9, "label", color=BROWN)
    x = date_label.x + text_width(date_label.text, 9) + 3
    for value, unit in ((f"{c.date.year}", "年"), (f"{c.date.month:02d}", "月"), (f"{c.date.day:02d}", "日")):
        t = f.text(x, 46, value, 10, font=MONO, color=BLUE_BLACK)
        x = t.x + text_width(value, 10, MONO) + 2
        f.text(x, 46, v.label(unit), 9, "label", color=BROWN)
        x += 12
    if c.check_code:
        groups = " ".join(c.check_code[i:i + 5] for i in range(0, 20, 5))
        f.label_value(428, 60, v.label("校验码:"), groups, 9, value_size=9, value_font=MONO,
                      value_color=BLUE_BLACK)
    f.label_value(15, 76, v.label("机器编号:"), c.machine_no or "", 9, value_size=10, value_font=MONO,
                  value_color=BLUE_BLACK)
    top, bottom = 82.0, 340.0
    f.box(12, top, 585, bottom - top)
    for y0, chars, party, side in ((top, "购买方", c.buyer, "密码区"), (276.0, "销售方", c.seller, "备注")):
        f.vertical(17, y0 + 14, chars, 14, 9)
        f.line(30, y0, 30, y0 + 64 if y0 > top else y0 + 58)
        rows = (("名称:", party.name), ("纳税人识别号:", party.tax_id or ""),
                ("地址、电话:", f"{party.address} {party.phone}".strip()),
                ("开户行及账号:", f"{party.bank} {party.account}".strip()))
        for i, (lab, val) in enumerate(rows):
            label = v.label(lab)
            size = fit_size(val, 9.5, 345 - 36 - text_width(label, 9))
            mono = i == 1
            f.label_value(34, y0 + 12 + i * 14, label, val, 9, value_size=10.5 if mono else size,
                          value_font=MONO if mono else "STSong-Light", value_color=BLUE_BLACK)
        f.line(350, y0, 350, y0 + 58)
        f.vertical(355, y0 + 14, side, 40 // len(side) + 6, 9)
        f.line(368, y0, 368, y0 + 58)
    for i, row in enumerate(cipher):
        f.text(372, top + 14 + i * 13, row, 10.5, font=MONO, color=BLUE_BLACK)
    if c.remarks:
        f.text(372, 294, c.remarks, 8.5, color=BLUE_BLACK)
    f.line(12, 140, 597, 140)
    heads = (("货物或应税劳务、服务名称", 86), ("规格型号", 188), ("单位", 230), ("数量", 268),
             ("单价", 328), ("金额", 402), ("税率", 451), ("税额", 530))
    for word, x in heads:
        f.text(x, 152, v.label(word), 8.5, "label", anchor="c")
    for x in (160, 215, 245, 292, 365, 440, 462):
        f.line(x, 140, x, 256)
    cols = {"name": 16, "spec": 163, "unit": 230, "qty": 290, "price": 363, "amount": 438,
            "rate": 451, "tax": 594}
    _item_rows(f, c.items, 166, cols, 140)
    f.text(86, 250, v.label("合计", always_spaced=True).replace(" ", "      "), 9, "label", anchor="c")
    _yen(f, 438, 250, c.amount, 10, v, font=MONO)
    _yen(f, 594, 250, c.tax, 10, v, font=MONO)
    f.line(12, 256, 597, 256)
    f.text(86, 270, v.label("价税合计") + v.brackets("大写"), 9, "label", anchor="c")
    f.line(175, 256, 175, 276)
    _void_mark(f, 180, 270, BLACK)
    f.text(194, 270, c.words, 10, color=BLUE_BLACK)
    small = f.text(440, 270, v.brackets("小写"), 9, "label")
    _yen(f, small.x + text_width(small.text, 9) + 4, 270, c.total, 10, v, anchor="l", font=MONO)
    f.line(12, 276, 597, 276)
    for x, lab, val in ((20, "收款人:", c.payee), (170, "复核:", c.reviewer), (320, "开票人:", c.drawer),
                        (470, "销售方:", "")):
        f.label_value(x, 360, v.label(lab) + (v.brackets("章") if not val else ""), val, 9,
                      value_color=BLUE_BLACK)
    if v.seller_stamp:
        f.ops.append(Stamp(540, 352, 40, 27))
    return f


def cipher_rows(rng: random.Random) -> list[str]:
    """The 密码区: four rows of 27 characters from the cipher alphabet."""
    alphabet = "0123456789+-*/<>"
    return ["".join(rng.choice(alphabet) for _ in range(27)) for _ in range(4)]
