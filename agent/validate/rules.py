"""The validation rules: each a pure check with a stable code and a default severity.

Codes are an interface: ops grep logs and quarantine lists for them, and
`[validation] rules = { code = "off" | "warning" | "error" }` refers to them.
A check yields `Finding`s (`agent.validate.context`); `agent.validate.validator`
turns them into `Problem`s with the severity that applies. The money rules are
in `agent.validate.totals`.
"""

from __future__ import annotations

import datetime as dt
import functools
import unicodedata
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Iterator

from agent.model import Invoice
from agent.validate.codes import (
    CODED_KINDS, LOCAL_CODE_LEADS, NUMBER_ONLY_KINDS, QR_KINDS_OF_TYPE, code_defects, code_type, is_digits,
    region_matches, region_of, shudian_number_defects,
)
from agent.validate.context import Check, Context, Finding
from agent.validate.totals import amount_range, amount_sum, line_sum, tax_rate, words_mismatch
from agent.validate.uscc import ALPHABET, check_char, classify_tax_id


@dataclass(frozen=True)
class Rule:
    """A rule's stable code, default severity, one-line description, and check.
    `check` is None for problems another stage reports (qr-crc: extraction)."""

    code: str
    severity: str
    description: str
    check: Check | None


def _number_format(inv: Invoice, ctx: Context) -> Iterator[Finding]:
    number, code = ctx.text["number"], ctx.text["code"]
    if number is None:
        yield Finding("number", "no 发票号码 was read", "未读到发票号码")
    elif code is not None:
        if not is_digits(number, 8):
            yield Finding("number", f"发票号码 {number} must be 8 digits when there is a 发票代码",
                          f"有发票代码时发票号码应为8位数字，实为 {number}")
    elif is_digits(number, 20):
        date = ctx.date
        for en, zh in shudian_number_defects(number, date.year if date else None):
            yield Finding("number", en, zh)
    else:
        yield Finding("number", f"发票号码 {number} must be 20 digits (数电), or 8 digits with a 发票代码",
                      f"发票号码 {number} 应为20位数字（数电发票），或8位数字并附发票代码")


def _code_format(inv: Invoice, ctx: Context) -> Iterator[Finding]:
    code = ctx.text["code"]
    if code is not None:
        for en, zh in code_defects(code):
            yield Finding("code", en, zh)


def _code_type_mismatch(inv: Invoice, ctx: Context) -> Iterator[Finding]:
    code, kind = ctx.text["code"], ctx.text["kind"]
    if kind is None:
        return
    if code is None:
        if kind in CODED_KINDS:
            yield Finding("code", f"type {kind} invoices carry a 发票代码, but none was read",
                          f"票种 {kind} 应有发票代码，但未读到")
        return
    if kind in NUMBER_ONLY_KINDS:
        yield Finding("code", f"a type {kind} (数电) invoice has no 发票代码, but {code} was read",
                      f"票种 {kind}（数电发票）不应有发票代码，却读到 {code}")
        return
    implied = code_type(code)
    if implied is not None and kind not in QR_KINDS_OF_TYPE[implied]:
        yield Finding("code", f"发票代码 {code} is for type {implied} invoices, but the QR says type {kind}",
                      f"发票代码 {code} 对应票种 {implied}，与二维码票种 {kind} 不符")


# Which titles a type prints: only a 专用发票 carries deductible input VAT,
# so a 普票 passed off as one (its title changed) is what an accountant
# must catch. 查验 types from the 发票代码 count when the QR gave none.
_SPECIAL_KINDS = frozenset({"01", "02", "08", "20", "31"})
_NORMAL_KINDS = frozenset({"04", "10", "11", "14", "32"})


def _title_kind_mismatch(inv: Invoice, ctx: Context) -> Iterator[Finding]:
    title, kind = ctx.text["title"], ctx.text["kind"]
    if title is None:
        return
    if kind is None and ctx.text["code"] is not None:
        kind = code_type(ctx.text["code"])
    if kind is None:
        return
    says = "专用发票" if "专用发票" in title else "普通发票" if "普通发票" in title else None
    if (says == "专用发票" and kind in _NORMAL_KINDS) or (says == "普通发票" and kind in _SPECIAL_KINDS):
        kind_says = "专用发票" if kind in _SPECIAL_KINDS else "普通发票"
        yield Finding("title", f"the title {title} says {says}, but the invoice is type {kind}, a {kind_says}",
                      f"发票名称「{title}」为{says}，但票种 {kind} 是{kind_says}")


def _date_invalid(inv: Invoice, ctx: Context) -> Iterator[Finding]:
    value = inv.get("date")
    if value is None:
        if not any(p.code in ("date-impossible", "field-invisible-character") and p.field == "date"
                   for p in inv.problems):  # read, and named there
            yield Finding("date", "no 开票日期 was read", "未读到开票日期")
    elif not isinstance(value, dt.date):
        yield Finding("date", f"开票日期 {value!r} is not a real date", f"开票日期 {value} 不是有效日期")


def _date_future(inv: Invoice, ctx: Context) -> Iterator[Finding]:
    date = ctx.date
    if date is not None and date > ctx.today:
        yield Finding("date", f"开票日期 {date} is after today ({ctx.today})",
                      f"开票日期 {date} 晚于今天（{ctx.today}）")


def _expired(inv: Invoice, ctx: Context) -> Iterator[Finding]:
    date = ctx.date
    limit = ctx.settings.max_age_days
    if date is not None and (ctx.today - date).days > limit:
        age = (ctx.today - date).days
        yield Finding("date", f"issued {age} days ago on {date}; invoices older than {limit} days are expired",
                      f"开票于 {date}，已过 {age} 天，超过 {limit} 天的期限")


def _check_code_format(inv: Invoice, ctx: Context) -> Iterator[Finding]:
    value = ctx.text["check_code"]
    # Printed as 4 groups of 5: the spaces are layout, not content. 深圳's
    # blockchain e-invoices (a local 1… code) print the last 5 hex digits of
    # their hash instead, e.g. 10a19.
    if value is not None and _blockchain_check_code(value, ctx.text["code"]):
        return
    if value is not None and not is_digits("".join(value.split()), 20):
        yield Finding("check_code", f"校验码 {value} must be 20 digits", f"校验码 {value} 应为20位数字")


def _blockchain_check_code(value: str, code: str | None) -> bool:
    return (len(value) == 5 and all(c in "0123456789abcdef" for c in value)
            and is_digits(code, 12) and code[0] in LOCAL_CODE_LEADS)


def _tax_ids(ctx: Context, wanted: str) -> Iterator[tuple[str, str, str]]:
    for name, who, who_zh in (("seller_tax_id", "seller", "销售方"), ("buyer_tax_id", "buyer", "购买方")):
        value = ctx.text[name]
        if value is not None and classify_tax_id(value) == wanted:
            yield name, f"{who} tax id {value}", f"{who_zh}纳税人识别号 {value}"


def _tax_id_check_digit(inv: Invoice, ctx: Context) -> Iterator[Finding]:
    for name, en, zh in _tax_ids(ctx, "invalid"):
        value = ctx.text[name] or ""
        if len(value) == 18 and all(c in ALPHABET for c in value):
            right = check_char(value[:17])
            yield Finding(name, f"{en} fails the 统一社会信用代码 check: the last character should be "
                                f"{right}, not {value[17]} (test or forged invoice?)",
                          f"{zh} 校验位错误：应为 {right}，实为 {value[17]}（测试或伪造发票？）")
        else:
            yield Finding(name, f"{en} is neither a 统一社会信用代码 nor a known older form "
                                f"({len(value)} characters; test or forged invoice?)",
                          f"{zh} 格式无效（{len(value)} 位），既非统一社会信用代码也非旧式税号（测试或伪造发票？）")


def _tax_id_legacy(inv: Invoice, ctx: Context) -> Iterator[Finding]:
    for name, en, zh in _tax_ids(ctx, "legacy"):
        yield Finding(name, f"{en} is an old-style id, not a 统一社会信用代码",
                      f"{zh} 为旧式税号，非统一社会信用代码")


def _same(field: str, value: Any) -> Any:
    # Sources differ in layout, not content: width, spaces, date punctuation.
    if isinstance(value, dt.date):
        return value.isoformat().replace("-", "")
    if isinstance(value, Decimal):
        return value
    text = "".join(unicodedata.normalize("NFKC", str(value)).split())
    if field in ("amount", "tax", "total"):
        try:
            return Decimal(text.replace(",", ""))
        except InvalidOperation:
            return text
    return text.replace("-", "") if field == "date" else text


def _qr_mismatch(inv: Invoice, ctx: Context) -> Iterator[Finding]:
    for conflict in inv.conflicts:
        if len({_same(conflict.field, v) for v in conflict.values.values()}) > 1:
            said = "; ".join(f"{source}: {value}" for source, value in conflict.values.items())
            yield Finding(conflict.field, f"sources disagree on {conflict.field} ({said})",
                          f"{conflict.field} 各来源不一致（{said}）")


def _company_text(s: str) -> str:
    return "".join(unicodedata.normalize("NFKC", s).split()).upper()


@functools.lru_cache(maxsize=64)
def _company_names(names: tuple[str, ...]) -> frozenset[str]:
    # Settings rarely change, and normalising per invoice showed in the bench.
    return frozenset(_company_text(n) for n in names)


def _buyer_not_company(inv: Invoice, ctx: Context) -> Iterator[Finding]:
    ids, names = ctx.settings.company_tax_ids, ctx.settings.company_names
    if not ids and not names:
        return
    buyer_id, buyer_name = ctx.text["buyer_tax_id"], ctx.text["buyer_name"]
    if ids and buyer_id is not None:
        # A printed id decides: a right name with a wrong id cannot be claimed.
        if _company_text(buyer_id) in _company_names(tuple(ids)):
            return
    elif names and buyer_name is not None:
        if _company_text(buyer_name) in _company_names(tuple(names)):
            return
    who = " ".join(x for x in (buyer_name, buyer_id) if x) or "nobody"
    yield Finding("buyer_tax_id" if buyer_id else "buyer_name",
                  f"issued to another company: the buyer is {who}",
                  f"发票抬头不是本公司：购买方为 {who}")


def _duplicate(inv: Invoice, ctx: Context) -> Iterator[Finding]:
    if ctx.duplicate_of is not None:
        yield Finding("number", f"the same invoice ({inv.key}) was already received as document {ctx.duplicate_of}",
                      f"同一张发票（{inv.key}）已作为文档 {ctx.duplicate_of} 收到")


# What makes an invoice the one it is, besides its key: a second copy
# that reads otherwise on any of these (both sides read) is no copy. One of
# the two is altered or misread, and which one is a person's call.
_IDENTITY_FIELDS = (("date", "开票日期"), ("total", "价税合计"), ("amount", "金额"), ("tax", "税额"),
                    ("seller_tax_id", "销售方纳税人识别号"), ("buyer_tax_id", "购买方纳税人识别号"),
                    ("check_code", "校验码"))


def _identity_value(ctx: Context, name: str) -> Any:
    # A field's value as the rules read it (Context): money a finite Decimal
    # (an unreadable amount is no reading to compare), the date a date, a
    # tax id in capitals, other text stripped.
    if name in ctx.money:
        value = ctx.money[name]
        return value if isinstance(value, Decimal) else None
    if name == "date":
        return ctx.date
    text = ctx.text[name]
    return text.upper() if text and name.endswith("tax_id") else text


def _conflicting_copy(inv: Invoice, ctx: Context) -> Iterator[Finding]:
    original = ctx.original
    if ctx.duplicate_of is None or original is None:
        return
    first = Context.of(original, ctx.settings, ctx.today)   # the first copy read as this one is
    for name, label in _IDENTITY_FIELDS:
        here, there = _identity_value(ctx, name), _identity_value(first, name)
        if here is not None and there is not None and here != there:
            yield Finding(name, f"{name} reads {here} here but {there} on document {ctx.duplicate_of}, the copy "
                                "of the same invoice number received first: one of them is altered or misread; "
                                "compare the two",
                          f"{label}为 {here}，而先收到的同号发票（文档 {ctx.duplicate_of}）为 {there}："
                          "两份之一被改动或识别有误，请人工核对")


def _region_unexpected(inv: Invoice, ctx: Context) -> Iterator[Finding]:
    expected = ctx.settings.expected_region
    if not expected:
        return
    region = region_of(ctx.text["code"], ctx.text["number"])
    if region is not None and not region_matches(region, expected):
        yield Finding("code" if ctx.text["code"] else "number",
                      f"issued in {region[0]} {region[1]}, not in the expected region {expected}",
                      f"开票地区为 {region[0]} {region[1]}，不是预期的 {expected}")


def _rule(code: str, severity: str, description: str, check: Check | None) -> tuple[str, Rule]:
    return code, Rule(code, severity, description, check)


# Order is the order problems are reported in.
RULES: dict[str, Rule] = dict([
    _rule("number-format", "error", "发票号码: 8 digits with a 发票代码, or 20 digits (year, province) without", _number_format),
    _rule("code-format", "error", "发票代码: 10 or 12 digits, leading 0, known region", _code_format),
    _rule("code-type-mismatch", "error", "the type the 发票代码 implies agrees with the QR type", _code_type_mismatch),
    _rule("title-kind-mismatch", "error", "a title saying 专用发票 or 普通发票 agrees with the type (QR, or the 发票代码's)", _title_kind_mismatch),
    _rule("date-invalid", "error", "开票日期 is present and a real date", _date_invalid),
    _rule("date-future", "error", "开票日期 is not after today", _date_future),
    _rule("expired", "error", "开票日期 is within validation.max_age_days (default 360)", _expired),
    _rule("check-code-format", "error", "校验码, when present, has 20 digits", _check_code_format),
    _rule("tax-id-check-digit", "error", "buyer and seller ids pass the 统一社会信用代码 check", _tax_id_check_digit),
    _rule("tax-id-legacy", "warning", "buyer or seller id is an old 15/17/18/20-character form", _tax_id_legacy),
    _rule("amount-range", "error", "amounts and quantities are finite, below 10^12 yuan (10^15 units), one sign", amount_range),
    _rule("amount-sum", "error", "金额 + 税额 = 价税合计 to the cent", amount_sum),
    _rule("line-sum", "error", "line items add up to the totals, ±0.01 per line", line_sum),
    _rule("tax-rate", "error", "line rates are VAT rates (13/9/6/5/3/1.5/1/0 %) or 免税/不征税/出口零税率", tax_rate),
    _rule("words-mismatch", "error", "价税合计大写 read back equals the 小写", words_mismatch),
    _rule("qr-mismatch", "error", "QR, XML, OFD and text sources agree on every field", _qr_mismatch),
    _rule("qr-crc", "warning", "the QR's CRC matches its fields (reported by extraction)", None),
    _rule("buyer-not-company", "error", "the buyer is in company.tax_ids / company.names (off while both are empty)", _buyer_not_company),
    _rule("duplicate", "error", "no earlier document holds the same invoice (kind + 代码 + 号码)", _duplicate),
    _rule("conflicting-copy", "error", "a duplicate agrees with the copy it duplicates on date, amounts, "
          "tax ids and 校验码 (both read)", _conflicting_copy),
    _rule("region-unexpected", "warning", "issued in validation.expected_region (off while unset)", _region_unexpected),
    # Scans read by OCR (reported by extraction). "ocr-disagrees" = "error"
    # quarantines a scan whose print differs from its QR (an altered copy).
    _rule("ocr-disagrees", "warning", "a scan's print, read by OCR, agrees with its QR code", None),
    _rule("ocr-other-invoice", "error", "a scan's print and its QR code are of one invoice (else nothing only "
          "the print carries is kept, and the fields they differ on are conflicts)", None),
    _rule("ocr-unverified", "warning", "every value OCR read passed its check (else it is left for 补录)", None),
    _rule("ocr-failed", "warning", "OCR could read the scanned page", None),
    # Values read by position (PDF text, OFD page text, OCR) that fail a
    # plausibility check are not stored (reported by extraction, see
    # agent/extract/plausible.py): the field is empty, the read value named.
    # PDF pages (reported by extraction, agent/extract/pdf.py and pdf_render.py).
    _rule("text-layer-garbled", "warning", "a PDF's text layer decodes to readable text (else the page is rendered and read as a scan)", None),
    _rule("several-invoices-on-page", "error", "a page or image holds one invoice: one face, one invoice QR (else its values are left for 补录)", None),
    _rule("qr-malformed", "error", "a code laid out as an invoice QR parses as one (else it is not used, and shown)", None),
    _rule("page-unread", "warning", "every page of a PDF could be read (else the fields it holds are left for 补录)", None),
    _rule("ocr-only", "warning", "a scan's 代码, 号码 and 日期 come from a QR code, not from OCR of the print alone", None),
    # XML and OFD (reported by extraction, agent/extract/xml.py and ofd.py).
    _rule("qr-unreadable", "warning", "a 数电 XML's fp:GraphCode holds a readable invoice QR", None),
    _rule("unreadable-amount", "warning", "every amount in a 数电 XML is a number (else the field is left empty)", None),
    _rule("xml-conflicting-elements", "error", "an invoice XML gives each field once, or the same value each time (else the field is left empty)", None),
    _rule("ofd-inconsistent", "error", "an OFD gives each field one value across its data files and object IDs, and prints no text over other text (else the field is left empty)", None),
    _rule("ofd-attachment-corrupt", "warning", "every XML attachment of an OFD is well-formed", None),
    _rule("qr-amount-other", "warning", "the QR amount is the field its type says (else the print's is kept)", None),
    _rule("implausible-name", "error", "a name read from the page holds no 密码区 characters or digit runs", None),
    _rule("implausible-tax-id", "error", "a tax id read from the page is of a valid form", None),
    _rule("implausible-code", "error", "a 发票代码 read from the page has a 代码's structure", None),
    _rule("implausible-number", "error", "a 发票号码 read from the page has a 号码's structure", None),
    _rule("implausible-check-code", "error", "a 校验码 read from the page has 20 digits", None),
    _rule("implausible-sum", "error", "money read from the page adds up: 金额 + 税额 = 价税合计", None),
    _rule("date-impossible", "error", "a 开票日期 written in a date's shape is a real date (else it is left empty, named)", None),
    # Any source (agent/model.py Invoice.refuse_invisible).
    _rule("amount-sub-cent", "error", "a 金额, 税额 or 价税合计 read is whole fen, two decimals at most (else it is left empty, named)", None),
    _rule("field-invisible-character", "error", "a number, code, check code, tax id, date or amount holds no character that prints as nothing (else it is left empty, named)", None),
    _rule("implausible-date", "error", "a date read from the page is not after the file arrived", None),
])
