"""What a synthetic invoice says: numbers, parties, line items, totals, QR.

Everything here is arithmetic the tax system itself does: 金额 per line,
税额 = 金额 × 税率 rounded half-up, 合计 as sums, 价税合计 = 合计金额 + 合计税额,
the 大写 from `agent.validate.amounts.to_words`, and a QR payload whose check
field is the CRC-16 the readers verify.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from agent.extract.qr import crc16_umts
from agent.model import KIND_NAMES
from agent.validate.amounts import to_words
from tests.corpus.parties import REGIONS, Party, Region, company, person_name, private_person

CENT = Decimal("0.01")
DIGITAL_KINDS = ("31", "32")
LEGACY_E_KINDS = ("10", "20")
PAPER_KINDS = ("01", "04")

# (name with 税收分类 prefix, specs, unit, rates, special label, price range in yuan)
# Small-scale taxpayers (小规模纳税人) use 3% / 1%; general ones 13 / 9 / 6 %.
CATALOG: tuple[tuple[str, tuple[str, ...], str, tuple[str, ...], str | None, tuple[int, int]], ...] = (
    ("*计算机配套产品*笔记本电脑", ("ThinkPad E14", "MateBook 14", "X1 Carbon"), "台", ("13",), None, (3000, 12000)),
    ("*计算机外部设备*显示器", ("27英寸", "24英寸"), "台", ("13",), None, (600, 3000)),
    ("*办公设备*激光打印机", ("M1136", "P2506"), "台", ("13",), None, (700, 2500)),
    ("*纸制品*复印纸", ("A4 70g", "A3 80g"), "箱", ("13",), None, (90, 260)),
    ("*日用杂品*清洁用品", ("", "套装"), "套", ("13",), None, (20, 200)),
    ("*电子元件*集成电路", ("STM32F103", "ESP32"), "个", ("13",), None, (5, 60)),
    ("*乙醇汽油*92号车用乙醇汽油(E10)", ("92号",), "升", ("13",), "成品油", (6, 8)),
    ("*汽油*95号车用汽油(VIB)", ("95号",), "升", ("13",), "成品油", (7, 9)),
    ("*运输服务*国内货物运输服务", ("",), "次", ("9",), None, (200, 8000)),
    ("*建筑服务*工程服务", ("",), "项", ("9",), None, (5000, 90000)),
    ("*谷物*大米", ("5kg",), "袋", ("9",), None, (30, 90)),
    ("*电信服务*基础电信服务", ("",), "", ("9",), None, (50, 600)),
    ("*不动产租赁服务*房屋租赁", ("",), "月", ("9",), None, (2000, 20000)),
    ("*信息技术服务*软件开发服务", ("",), "项", ("6",), None, (3000, 60000)),
    ("*现代服务*技术服务费", ("",), "", ("6", "3", "1"), None, (100, 20000)),
    ("*餐饮服务*餐费", ("",), "", ("6", "3", "1"), None, (50, 3000)),
    ("*住宿服务*住宿费", ("标准间", "大床房"), "天", ("6", "3", "1"), None, (180, 900)),
    ("*经纪代理服务*代理服务费", ("",), "", ("6",), None, (100, 5000)),
    ("*文化创意服务*广告服务", ("",), "项", ("6",), None, (1000, 30000)),
    ("*运输服务*客运服务费", ("",), "次", ("3", "1"), "旅客运输服务", (10, 200)),
    ("*现代服务*咨询服务费", ("",), "", ("3", "1"), None, (500, 20000)),
)


@dataclass(frozen=True)
class LineItem:
    """One printed row. Quantity and unit price are printed text ("" when blank)."""

    name: str
    spec: str
    unit: str
    quantity: str
    unit_price: str
    amount: Decimal
    rate: str  # percent, as printed without the sign ("13")
    tax: Decimal


@dataclass
class InvoiceContent:
    """The true content of one invoice, before it is drawn."""

    kind: str
    title: str
    region: Region
    code: str | None
    number: str
    date: dt.date
    check_code: str | None
    machine_no: str | None
    items: list[LineItem]
    buyer: Party
    seller: Party
    payee: str
    reviewer: str
    drawer: str
    remarks: str
    special_label: str | None
    qr: str = ""
    amount: Decimal = field(default=Decimal(0))
    tax: Decimal = field(default=Decimal(0))
    total: Decimal = field(default=Decimal(0))
    words: str = ""

    @property
    def is_digital(self) -> bool:
        """数电 (全电) invoices: 20-digit number, no 代码, no 校验码."""
        return self.kind in DIGITAL_KINDS


def money(d: Decimal) -> str:
    """Two-decimal text, the way invoices and expected.json print money."""
    return f"{d.quantize(CENT):.2f}"


def _round(d: Decimal) -> Decimal:
    return d.quantize(CENT, rounding=ROUND_HALF_UP)


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def _price_text(d: Decimal) -> str:
    # Unit prices print up to 8 decimals with trailing zeros dropped (7.02663533, 1500).
    text = f"{d.quantize(Decimal('0.00000001'), rounding=ROUND_HALF_UP):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _make_items(rng: random.Random) -> tuple[list[LineItem], str | None]:
    small_scale = rng.random() < 0.25
    pool = [c for c in CATALOG if any((r in ("3", "1")) == small_scale for r in c[3])]
    first = rng.choice(pool)
    # Most invoices bill one kind of thing; some add a few related lines.
    # A special-label (成品油, 旅客运输服务) invoice carries only that kind of goods.
    plain = [c for c in pool if not c[4]]
    extra = 0 if first[4] else rng.choice((0, 0, 0, 1, 1, 2, 3))
    lines = [first] + [rng.choice(plain) for _ in range(extra)]
    items = []
    # A small-scale taxpayer bills at one levy rate (征收率) on the whole invoice.
    small_rate = rng.choice(("3", "3", "1"))
    for name, specs, unit, rates, _label, (low, high) in lines:
        rate = small_rate if small_scale else rng.choice([r for r in rates if r not in ("3", "1")])
        unit_cost = Decimal(rng.randint(low * 100, high * 100)) / 100
        if unit in ("升",):
            qty = Decimal(rng.randint(10_000000, 60_000000)) / 1_000000
            unit_cost += Decimal(rng.randint(0, 999999)) / 100_000000
        elif unit and rng.random() < 0.8:
            qty = Decimal(rng.choice((1, 1, 2, 3, 5, 10, 20)))
        else:
            qty = None
        amount = _round(unit_cost * (qty or 1))
        tax = _round(amount * Decimal(rate) / 100)
        if qty is None:
            items.append(LineItem(name, rng.choice(specs), unit, "", "", amount, rate, tax))
        else:
            # Printed unit price is derived from the amount, as the tax system does.
            price = amount / qty
            items.append(LineItem(name, rng.choice(specs), unit, _price_text(qty), _price_text(price),
                                  amount, rate, tax))
    if rng.random() < 0.06 and items[0].amount > 50:
        base = items[0]
        off = _round(base.amount * Decimal(rng.randint(3, 15)) / 100)
        off_tax = _round(off * Decimal(base.rate) / 100)
        items.append(LineItem(base.name, "", "", "", "", -off, base.rate, -off_tax))
    return items, first[4]


def _legacy_code(rng: random.Random, kind: str, region: Region, year: int) -> str:
    yy = f"{(year - rng.choice((0, 0, 1, 2))) % 100:02d}"
    if kind in ("10", "20"):
        suffix = "11" if kind == "10" else "13"
        return "0" + region.code_region + yy + _digits(rng, 3) + suffix
    if kind == "04" and rng.random() < 0.5:
        return "0" + region.code_region + yy + _digits(rng, 3) + rng.choice(("04", "05"))
    type_digit = rng.choice("15") if kind == "01" else rng.choice("36")
    return region.code_region + yy + rng.choice("0123456789") + type_digit + _digits(rng, 2)


def _title(kind: str, region: Region) -> str:
    if kind in DIGITAL_KINDS:
        return KIND_NAMES[kind]
    return {
        "10": f"{region.title_name}增值税电子普通发票",
        "20": f"{region.title_name}增值税电子专用发票",
        "04": f"{region.title_name}增值税普通发票",
        "01": f"{region.title_name}增值税专用发票",
    }[kind]


def qr_payload(rng: random.Random, kind: str, code: str | None, number: str, qr_amount: Decimal,
               date: dt.date, check_code: str | None) -> str:
    """The QR text `01,kind,代码,号码,amount,YYYYMMDD,校验码,CRC[,]` with a correct
    CRC-16/UMTS over the first seven fields and a trailing comma.

    Old types carry a trailing comma and an upper-case CRC; 数电 payloads have
    no trailing comma, either CRC case, and some early ones a single space in
    each empty field (signed as written). A few platform-issued 数电 (the real
    DiDi sample) write the date as YYYY-MM-DD and leave the check field empty.
    """
    if kind in DIGITAL_KINDS and rng.random() < 0.05:
        return f"01,{kind},,{number},{money(qr_amount)},{date.isoformat()},,"
    amount_text = money(qr_amount)
    if kind not in DIGITAL_KINDS and qr_amount == qr_amount.to_integral() and rng.random() < 0.2:
        amount_text = str(int(qr_amount))  # some issuers drop ".00" (a real sample has "57")
    empty = " " if kind in DIGITAL_KINDS and rng.random() < 0.15 else ""
    fields = ["01", kind, code or empty, number, amount_text, date.strftime("%Y%m%d"), check_code or empty]
    signed = ",".join(fields) + ","
    crc = f"{crc16_umts(signed.encode('ascii')):04X}"
    if kind in DIGITAL_KINDS:
        return signed + (crc.lower() if rng.random() < 0.6 else crc)
    return signed + crc + ("," if rng.random() < 0.9 else "")


def make_content(rng: random.Random, kind: str, today: dt.date) -> InvoiceContent:
    """A complete, internally consistent invoice of QR type `kind`, dated within
    the 300 days up to and including `today`."""
    region = rng.choice(REGIONS)
    date = today - dt.timedelta(days=rng.randint(0, 299))
    seller = company(rng, region)
    buyer_region = region if rng.random() < 0.6 else rng.choice(REGIONS)
    special = kind in ("01", "20", "31")
    buyer = private_person(rng) if not special and rng.random() < 0.08 else company(rng, buyer_region)
    items, label = _make_items(rng)
    if kind in DIGITAL_KINDS:
        # Digits 1-2 are the year, 3-4 the province, 5 the issuing channel.
        number = f"{date.year % 100:02d}{region.province}{rng.choice('2447')}" + _digits(rng, 15)
        code = check_code = machine_no = None
    else:
        code = _legacy_code(rng, kind, region, date.year)
        number = _digits(rng, 8)
        # Paper 专票 print no 校验码.
        check_code = None if kind == "01" else _digits(rng, 20)
        machine_no = _digits(rng, 12)
    remarks = ""
    if rng.random() < 0.3:
        remarks = rng.choice((f"订单号：{_digits(rng, 16)}", f"项目：{rng.choice(('年度维保', '办公采购', '差旅'))}",
                              f"合同编号：HT{date.year}{_digits(rng, 4)}"))
    content = InvoiceContent(
        kind=kind, title=_title(kind, region), region=region, code=code, number=number, date=date,
        check_code=check_code, machine_no=machine_no, items=items, buyer=buyer, seller=seller,
        payee=person_name(rng), reviewer=person_name(rng), drawer=person_name(rng), remarks=remarks,
        special_label=label,
    )
    content.amount = sum((i.amount for i in items), Decimal(0))
    content.tax = sum((i.tax for i in items), Decimal(0))
    content.total = content.amount + content.tax
    content.words = to_words(content.total)
    qr_amount = content.total if content.is_digital else content.amount
    content.qr = qr_payload(rng, kind, code, number, qr_amount, date, check_code)
    return content


def true_items(c: InvoiceContent) -> tuple[dict, ...]:
    """The printed line items: name, 金额, 税额 (two-decimal strings) and the
    rate as a fraction string ("0.13"), the shape `LineItem` uses."""
    return tuple({"name": i.name, "amount": money(i.amount), "tax": money(i.tax),
                  "rate": str(Decimal(i.rate) / 100)} for i in c.items)


def expected_fields(c: InvoiceContent) -> dict:
    """The true fields in the shape of ../shared/samples/expected.json."""
    return {
        "is_invoice": True, "kind": c.kind, "title": c.title, "code": c.code, "number": c.number,
        "date": c.date.isoformat(), "check_code": c.check_code, "amount": money(c.amount),
        "tax": money(c.tax), "total": money(c.total), "total_in_words": c.words,
        "buyer_name": c.buyer.name, "buyer_tax_id": c.buyer.tax_id,
        "seller_name": c.seller.name, "seller_tax_id": c.seller.tax_id, "qr": c.qr,
    }


def qr_only_fields(c: InvoiceContent) -> dict:
    """What a machine can know of a scan without OCR: the QR's fields. The rest
    is null ("not determinable"), the convention of expected.json."""
    full = expected_fields(c)
    keep = {"is_invoice", "kind", "code", "number", "date", "check_code", "qr",
            "total" if c.is_digital else "amount"}
    return {k: (v if k in keep else None) for k, v in full.items()}
