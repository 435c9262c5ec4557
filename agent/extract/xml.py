"""Invoice XML: the 数电 `EInvoice` file and the older `original_invoice.xml`.

Two dialects reach us:
- 数电 XML (MoF 电子凭证会计数据标准), root `EInvoice`, plain English tags;
- `original_invoice.xml` in the e-invoice 2019 schema (prefix `fp:`), as
  attached inside OFD files or sent on its own.

The XML comes from strangers: `xml_parse` decodes it (its byte order mark
or declared encoding: GBK, GB18030 ...) and parses it with defusedxml,
refusing any DTD, entity declaration or external reference.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from xml.etree.ElementTree import Element

from agent.errors import ExtractError
from agent.extract.qr import apply_qr, decode_qr_bytes, parse_qr
from agent.extract.xml_parse import Tags, local_name, parse_xml, text_of
from agent.extract.xml_values import (GLUED_DATE_RE, GROUPED_RE, NO_TAX_MARKS, date_shape, id_digits, impossible_date,
                                      parse_date, parse_decimal, parse_money, parse_rate, printed_name)
from agent.model import Invoice, LineItem, Problem, field_zh

FP_NAMESPACE = "http://www.edrm.org.cn/schema/e-invoice/2019"
# The elements each layout reads as numbers (sums, line amounts, prices, rates).
_SHUDIAN_NUMBERS = frozenset({"TotalAmWithoutTax", "TotalTaxAm", "TotalTax-includedAmount", "Amount",
                              "ComTaxAm", "TaxRate", "UnPrice", "Quantity", "TotaltaxIncludedAmount"})
_FP_NUMBERS = frozenset({"TaxExclusiveTotalAmount", "TaxTotalAmount", "TaxInclusiveTotalAmount", "Amount",
                         "TaxAmount", "TaxScheme", "Price", "Quantity"})
# Every tag each layout's reader looks up in the whole tree (`Tags`).
_SHUDIAN_TAGS = _SHUDIAN_NUMBERS | {
    "InvoiceNumber", "EIid", "IssueTime", "RequestTime", "EInvoiceType", "GeneralOrSpecialVAT",
    "TotalTax-includedAmountInChinese", "SellerName", "SellerIdNum", "BuyerName", "BuyerIdNum",
    "IssuItemInformation", "GraphCode", "QRCode"}
_FP_TAGS = _FP_NUMBERS | {
    "InvoiceCode", "InvoiceNo", "InvoiceCheckCode", "BuyerTaxID", "SellerTaxID", "IssueDate",
    "TaxInclusiveTotalAmountWithWords", "BuyerName", "SellerName", "GoodsInfo", "GraphCode"}


def _decimal_comma(tree: "Tags", tags: frozenset[str]) -> str | None:
    """The first number under one of `tags` whose comma groups no thousands
    ("0,060"), or None. Such a document writes decimal commas, so even its
    "1,000" may be 1.000: none of its commas is read as grouping."""
    def has_comma(el: Element) -> bool:
        return bool(el.text) and ("," in el.text or "，" in el.text)

    # Most documents write no comma in a number: the index says so without
    # the walk in document order that naming the first one needs.
    if not any(has_comma(el) for tag in tags for el in tree.named(tag)):
        return None
    for el in tree.named(*sorted(tags)):
        if has_comma(el):
            text = re.sub(r"[\s¥￥]", "", el.text).replace("，", ",")
            if re.fullmatch(r"[+-]?[\d,]*\d(?:\.\d+)?", text) and not GROUPED_RE.fullmatch(text):
                return el.text.strip()
    return None


def _offer_date(inv: Invoice, text: str | None, source: str) -> None:
    # A date written but not a real one (30 February: a forgery's mark) is
    # named, not reported as missing; so is one with an invisible character.
    if inv.refuse_invisible("date", text, source):
        return
    date = parse_date(text)
    inv.offer("date", date, source)
    if date is None and (m := date_shape(text)):
        inv.problems.append(impossible_date(m.group().strip()))
    elif date is None and text and GLUED_DATE_RE.search(text):
        inv.problems.append(impossible_date(text.strip()[:40]))


def _sole_text(inv: Invoice, tags: Tags, field: str, *names: str) -> str | None:
    """The text of the elements named one of `names` anywhere in the tree,
    when every non-empty one says the same (ignoring whitespace); None, with
    an `xml-conflicting-elements` error, when two say different things. A
    repeated or conflicting element (a second SellerInformation, an EIid
    that is not the InvoiceNumber) is no reading to store: the first is not
    more true than the second."""
    els = tags.named(*names)
    if len(els) > _FEW_ELEMENTS and _nested(els):
        # Many, one inside another: reading each whole would cost the square
        # of the nesting's depth, and overlapping texts name no one value.
        # A few are read as ever (a wrapper of the same name and text is X).
        inv.problems.append(Problem(
            code="xml-conflicting-elements", severity="error", field=field,
            message=f"the XML nests {'/'.join(names)} elements inside one another; {field} left empty for 补录",
            message_zh=f"XML 中 {field_zh(field)} 元素相互嵌套，留待补录"))
        return None
    texts = [t for t in ("".join(el.itertext()).strip() for el in els) if t]
    distinct = list(dict.fromkeys(texts))
    if len({re.sub(r"\s+", "", unicodedata.normalize("NFKC", t)) for t in distinct}) > 1:
        shown = ", ".join(repr(t) for t in distinct[:4])
        inv.problems.append(Problem(
            code="xml-conflicting-elements", severity="error", field=field,
            message=f"the XML gives {field} in {len(texts)} elements ({'/'.join(names)}) that differ: {shown}; left empty for 补录",
            message_zh=f"XML 中 {field_zh(field)} 出现多次且不一致，留待补录"))
        return None
    return distinct[0] if distinct else None


# A field given in more elements than this is checked for nesting first.
_FEW_ELEMENTS = 8


def _nested(els: list[Element]) -> bool:
    """True when one of `els` (in document order) lies inside another. In
    linear time: an element holding others holds the next one in document
    order, which its own walk reaches within a few steps; elements side by
    side cost their own subtrees once."""
    for outer, following in zip(els, els[1:]):
        if any(el is following for el in outer.iter()):
            return True
    return False


def offer_qr_text(invoice: Invoice, text: str | None) -> bool:
    """Offer a QR payload (text, or a base64 image of the QR) to `invoice`.

    Some issuers put a base64 PNG of the QR in fp:GraphCode instead of its
    text; that image is decoded. Returns whether a payload was applied.
    """
    if not text:
        return False
    candidates = [text]
    compact = re.sub(r"\s+", "", text)
    if "," not in compact and len(compact) > 64:
        try:
            image = base64.b64decode(compact, validate=True)
        except (binascii.Error, ValueError):
            image = b""
        candidates = decode_qr_bytes(image) if image else []
    for candidate in candidates:
        payload = parse_qr(candidate)
        if payload is not None:
            apply_qr(invoice, payload)
            return True
    return False


def read_xml(data: bytes, source: str = "xml") -> Invoice:
    """Read one invoice from 数电 XML (root EInvoice) or e-invoice 2019 XML.

    Every field is offered with `source`; the QR text in fp:GraphCode is
    offered with source "qr". Raises ExtractError: "unsafe-xml", "corrupt",
    "limit-exceeded", or "unsupported-format" for XML that is neither dialect
    or in an encoding that cannot be decoded (the message names it).
    """
    root = parse_xml(data)
    name = local_name(root.tag)
    if name == "EInvoice":
        return read_shudian(root, source)
    if name in ("eInvoice", "e-invoice") or _uses_fp_namespace(root):
        return read_fp_invoice(root, source)
    raise ExtractError("unsupported-format", f"XML root <{name}> is not an invoice (EInvoice or eInvoice)")


def _uses_fp_namespace(root: Element) -> bool:
    prefix = "{" + FP_NAMESPACE + "}"
    return any(isinstance(el.tag, str) and el.tag.startswith(prefix) for el in root.iter())


def read_shudian(root: Element, source: str = "xml") -> Invoice:
    """Fields of a 数电 `EInvoice` tree (see module docstring). A field
    whose elements repeat with different values is left empty
    (`_sole_text`)."""
    inv, tags = Invoice(), Tags(root, _SHUDIAN_TAGS)
    inv.offer("number", id_digits(_sole_text(inv, tags, "number", "InvoiceNumber", "EIid")), source)
    issue = _sole_text(inv, tags, "date", "IssueTime")
    # The request time is the date only when no issue time is printed: an
    # unreadable one leaves the date empty rather than take another day.
    _offer_date(inv, issue if issue else _sole_text(inv, tags, "date", "RequestTime"), source)
    inv.offer("kind", _shudian_kind(inv, tags), source)
    comma = _decimal_comma(tags, _SHUDIAN_NUMBERS)
    _offer_sums(inv, tags, source, ("TotalAmWithoutTax", "TotalTaxAm", "TotalTax-includedAmount",
                                    "TotalTax-includedAmountInChinese"), comma)
    inv.offer("seller_name", printed_name(_sole_text(inv, tags, "seller_name", "SellerName")), source)
    inv.offer("seller_tax_id", id_digits(_sole_text(inv, tags, "seller_tax_id", "SellerIdNum")), source)
    inv.offer("buyer_name", printed_name(_sole_text(inv, tags, "buyer_name", "BuyerName")), source)
    inv.offer("buyer_tax_id", id_digits(_sole_text(inv, tags, "buyer_tax_id", "BuyerIdNum")), source)
    inv.items.extend(_line_items(inv, tags, "IssuItemInformation", name="ItemName", tax="ComTaxAm",
                                 rate="TaxRate", price="UnPrice", grouping=comma is None))
    offer_qr_text(inv, tags.text_of("GraphCode", "QRCode"))
    return inv


def _line_items(inv: Invoice, tags: Tags, element: str, *, name: str, tax: str, rate: str, price: str,
                grouping: bool) -> list[LineItem]:
    """One LineItem per `element` in the tree; the two XML layouts differ
    only in the tag names of the name, tax, rate and unit price (Amount and
    Quantity are the same in both). `grouping`: see `parse_money`. Items
    nested inside one another are no list: none, with an error on `inv`."""
    items = []
    found = tags.named(element)
    if _nested(found):
        inv.problems.append(Problem(
            code="xml-conflicting-elements", severity="error", field="items",
            message=f"the XML nests {element} elements inside one another; no line items are read",
            message_zh="XML 中的货物明细相互嵌套，未读取明细"))
        return []
    for el in found:
        rate_value, rate_text = parse_rate(text_of(el, rate))
        items.append(LineItem(
            name=text_of(el, name) or "",
            amount=parse_money(text_of(el, "Amount"), grouping=grouping),
            tax=parse_money(text_of(el, tax), grouping=grouping),
            rate=rate_value, rate_text=rate_text,
            quantity=parse_decimal(text_of(el, "Quantity")),
            unit_price=parse_decimal(text_of(el, price)),
        ))
    return items


def _shudian_kind(inv: Invoice, tags: Tags) -> str | None:
    """The type the labels name: 电子发票 + 增值税专用发票 prints as
    电子发票（增值税专用发票）, the QR type 31; 普通发票 is 32. None when the
    labels do not say, or, with an `xml-conflicting-elements` error, when
    two EInvoiceType or GeneralOrSpecialVAT labels name different types:
    the first is not truer than the second, and a 普票 read as a 专票
    claims input VAT it does not carry."""
    electronic = {text_of(el, "LabelName") == "电子发票" for el in tags.named("EInvoiceType")}
    vat = {_vat_kind(el) for el in tags.named("GeneralOrSpecialVAT")}
    if len(electronic) > 1 or len(vat) > 1:
        shown = ", ".join(sorted(k or "?" for k in vat)) if len(vat) > 1 else "电子发票 and another type"
        inv.problems.append(Problem(
            code="xml-conflicting-elements", severity="error", field="kind",
            message=f"the XML's EInvoiceType/GeneralOrSpecialVAT labels name different types ({shown}); "
                    "kind left empty for 补录",
            message_zh="XML 中的发票类型标签不一致（专用/普通），票种留待补录"))
        return None
    return vat.pop() if electronic == {True} and vat else None


def _vat_kind(label: Element) -> str | None:
    # A GeneralOrSpecialVAT label's QR type: 专用 31, 普通 32, else None.
    name = text_of(label, "LabelName") or ""
    return "31" if "专用" in name else "32" if "普通" in name else None


def read_fp_invoice(root: Element, source: str = "xml") -> Invoice:
    """Fields of an e-invoice 2019 (`fp:`) `eInvoice` tree, as in original_invoice.xml."""
    inv, tags = Invoice(), Tags(root, _FP_TAGS)
    for field, tag in (("code", "InvoiceCode"), ("number", "InvoiceNo"), ("check_code", "InvoiceCheckCode"),
                       ("buyer_tax_id", "BuyerTaxID"), ("seller_tax_id", "SellerTaxID")):
        inv.offer(field, id_digits(_sole_text(inv, tags, field, tag)), source)
    _offer_date(inv, _sole_text(inv, tags, "date", "IssueDate"), source)
    comma = _decimal_comma(tags, _FP_NUMBERS)
    _offer_sums(inv, tags, source, ("TaxExclusiveTotalAmount", "TaxTotalAmount", "TaxInclusiveTotalAmount",
                                    "TaxInclusiveTotalAmountWithWords"), comma)
    inv.offer("buyer_name", printed_name(_sole_text(inv, tags, "buyer_name", "BuyerName")), source)
    inv.offer("seller_name", printed_name(_sole_text(inv, tags, "seller_name", "SellerName")), source)
    inv.items.extend(_line_items(inv, tags, "GoodsInfo", name="Item", tax="TaxAmount", rate="TaxScheme",
                                 price="Price", grouping=comma is None))
    graph = tags.text_of("GraphCode")
    if graph and not offer_qr_text(inv, graph):
        inv.problems.append(Problem(
            code="qr-unreadable", severity="warning", field="qr",
            message="fp:GraphCode holds neither an invoice QR payload nor a readable QR image",
            message_zh="fp:GraphCode 不是可识别的发票二维码"))
    return inv


def _offer_sums(inv: Invoice, tree: Tags, source: str, tags: tuple[str, str, str, str], comma: str | None) -> None:
    # 金额, 税额, 价税合计 and its 大写 under this layout's tag names, each
    # the one element of its name (a second, conflicting one empties it).
    for field, tag in zip(("amount", "tax", "total"), tags):
        _offer_money(inv, field, _sole_text(inv, tree, field, tag), source, comma)
    inv.offer("total_in_words", _sole_text(inv, tree, "total_in_words", tags[3]), source)


def _offer_money(inv: Invoice, name: str, text: str | None, source: str, comma: str | None) -> None:
    # `comma`: a number of the document whose comma is a decimal one, if any.
    value = parse_money(text, grouping=comma is None)
    if value is None and text and text.strip() not in NO_TAX_MARKS:
        why, why_zh = "", ""
        if "," in text or "，" in text:
            why = (f": this XML also writes {comma!r}, a decimal comma, so none of its commas surely groups "
                   "thousands" if parse_money(text) is not None else
                   ": a comma is read only as thousands grouping (1,234.50)")
            why_zh = "（逗号无法确定是千位分隔还是小数点）"
        inv.problems.append(Problem(
            code="unreadable-amount", severity="warning", field=name,
            message=f"{name} {text!r} from {source} is not a number{why}", message_zh=f"金额无法识别{why_zh}"))
        return
    inv.offer(name, value, source)
