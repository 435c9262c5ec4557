"""OFD invoices: a zip of XML parts (GB/T 33190), read without rendering.

Four places hold invoice data, read in this order (first value wins, later
disagreements become conflicts):
1. `OFD.xml` DocBody/DocInfo/CustomDatas: 发票号码, 开票日期, 合计金额 ... (source "ofd");
2. the attached `original_invoice.xml` in the e-invoice 2019 schema (source "xml"),
   whose fp:GraphCode is the QR text (source "qr"), and any attached XBRL
   电子会计凭证 (`inv_ord_issuer_*.xml`: CodeOfInvoice, NumberOfInvoice ...);
3. `Tags/CustomTag.xml` or `Tag_*.xml`, mapping field names to TextObject
   IDs on the pages (source "ofd"); some issuers write these malformed
   (`<:eInvoice xmlns:="">`), so a regex reads them when XML parsing fails;
4. the page text itself, for the title and the 大写 total that no tag names;
5. the first page laid out by position (`ofd_geometry`, source "ofd-text"), only
   for what 1–4 left empty: a face field, or goods lines that add up to the totals;
6. with OCR, a first page drawn only as paths (no text at all) is rendered
   (`ofd_render`) and OCRed under the same checks as a scan.
The QR image is often JBIG2 (unreadable here); PNG/JPEG/BMP ones are decoded
when no QR text was found elsewhere. The package's parts, pages and tag files
are reached through `ofd_package`.
"""

from __future__ import annotations

import posixpath
import re
import unicodedata
from xml.etree.ElementTree import Element

from agent.errors import ExtractError
from agent.extract.labels import strip_words_marks, words_alone
from agent.extract.ofd_geometry import FACE_FIELDS, offer_by_position, read_by_position
from agent.extract.ofd_package import (OfdPackage, OfdPage, document_pages, file_locs, first_page_parts,
                                       parse_part, tag_files, tag_refs)
from agent.extract.qr import apply_qr, decode_qr_bytes, parse_qr
from agent.extract.refusal_texts import encrypted
from agent.extract.sniff import sniff
from agent.extract.xml import read_fp_invoice, read_shudian
from agent.extract.xml_values import parse_date, parse_decimal, parse_money, parse_rate
from agent.extract.xml_parse import local_name, parse_xml, text_of
from agent.model import MONEY_FIELDS, Invoice, LineItem, Problem, values_differ
from agent.safezip import ZipLimits, open_zip

# An invoice OFD is tens of KiB; a 5-page one with a 400-line list is under
# 1 MiB inflated. These limits leave wide room and still stop a bomb early.
OFD_LIMITS = ZipLimits(max_members=2000, max_total_bytes=64 * 1024 * 1024,
                       max_member_bytes=32 * 1024 * 1024, max_ratio=200.0, max_depth=1)
MAX_QR_IMAGES = 8
MAX_QR_IMAGE_BYTES = 2 * 1024 * 1024
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
_IMAGE_FORMATS = ("png", "jpeg", "bmp", "gif", "tiff", "webp")

CUSTOM_DATA_FIELDS = {
    "发票代码": "code", "发票号码": "number", "开票日期": "date", "校验码": "check_code",
    "合计金额": "amount", "合计税额": "tax", "价税合计": "total",
    "购买方名称": "buyer_name", "购买方纳税人识别号": "buyer_tax_id",
    "销售方名称": "seller_name", "销售方纳税人识别号": "seller_tax_id",
}
TAG_FIELDS = {
    "InvoiceCode": "code", "InvoiceNo": "number", "IssueDate": "date",
    "InvoiceCheckCode": "check_code", "TaxExclusiveTotalAmount": "amount",
    "TaxTotalAmount": "tax", "TaxInclusiveTotalAmount": "total",
    "BuyerName": "buyer_name", "BuyerTaxID": "buyer_tax_id",
    "SellerName": "seller_name", "SellerTaxID": "seller_tax_id",
}
# 电子会计凭证 XBRL (财政部 standard) element names. UniqueCodeOfInvoice is left
# out on purpose: on older invoices it is 代码+号码 run together, 20 digits
# that look like a 数电 number.
XBRL_FIELDS = {
    "CodeOfInvoice": "code", "NumberOfInvoice": "number", "DateOfIssue": "date",
    "IdentifyingCode": "check_code", "TotalAmountExcludingTax": "amount", "TotalTaxAmount": "tax",
    "TaxIncludedAmountInFigures": "total", "TaxIncludedAmountInWords": "total_in_words",
    "NameOfPurchaser": "buyer_name", "NameOfSeller": "seller_name",
    "TaxpayerIdentificationNumberUnifiedSocialCreditCodeOfPurchaser": "buyer_tax_id",
    "TaxpayerIdentificationNumberUnifiedSocialCreditCodeOfSeller": "seller_tax_id",
}
_ATTACHMENT_SUFFIXES = (".xml", ".xbrl")
ITEM_TAGS = ("Item", "TaxScheme", "Amount", "TaxAmount", "Price", "Quantity")
_ID_FIELDS = {"code", "number", "check_code", "buyer_tax_id", "seller_tax_id"}

_TITLE_RE = re.compile(
    r"^(?:[\u4e00-\u9fff]{0,8}增值税(?:电子)?(?:普通|专用)发票(?:[（(][^）)]{1,12}[）)])?"  # 浙江增值税电子普通发票
    r"|电子发票[（(][^）)]{2,20}[）)]"                                                      # 电子发票（普通发票）
    r"|[\u4e00-\u9fff]{0,8}(?:机动车|二手车)销售统一发票)$")
# A 红字 sign drawn as a text object of its own, apart from the 大写.
_SIGN_ALONE_RE = re.compile(r"[(（]?负数?[)）]?")
_INVOICE_LABELS = ("发票号码", "发票代码", "价税合计", "开票日期")
# GM/T 0099-2020 (OFD 密码应用): an encrypted package lists what it encrypted
# in Encryptions.xml beside OFD.xml (one writer puts it under Doc_0/). The
# plain parts left in the encrypted ones' place may hold stand-in content, so
# nothing of such a package is read: a value read from one would be wrong.
_ENCRYPTION_TAGS = frozenset({"Encryptions", "EncryptInfo"})


def read_ofd(data: bytes, *, ocr: bool = False) -> list[Invoice]:
    """Read every document of an OFD package as one Invoice each; with
    `ocr`, a first page drawn as paths with no text is rendered and OCRed.

    A document with no invoice data and no invoice labels on its pages is
    returned as Invoice(is_invoice=False). Raises ExtractError: "corrupt"
    (not a readable zip or no OFD.xml), "limit-exceeded" (zip limits),
    "encrypted" (GM/T 0099 Encryptions, or a part under a zip password:
    nothing of it read), "unsafe-xml" (a part declares entities or a DTD).
    """
    pkg = OfdPackage(open_zip(data, OFD_LIMITS))
    _refuse_encrypted(pkg)
    ofd_name = pkg.find("OFD.xml")
    if ofd_name is None:
        raise ExtractError("corrupt", "zip has no OFD.xml: not an OFD package")
    root = parse_xml(pkg.read(ofd_name))
    if any(local_name(el.tag) in _ENCRYPTION_TAGS for el in root.iter()):
        raise encrypted("the OFD is encrypted (its OFD.xml declares Encryptions)",
                        "OFD 已加密（OFD.xml 声明了加密信息 Encryptions）")
    bodies = [el for el in root.iter() if local_name(el.tag) == "DocBody"]
    if not bodies:
        raise ExtractError("corrupt", "OFD.xml has no DocBody")
    return [_read_document(pkg, body, ocr) for body in bodies]


def _refuse_encrypted(pkg: OfdPackage) -> None:
    """Raise ExtractError("encrypted") for a package that is encrypted:
    GM/T 0099's Encryptions.xml in it, or a part stored with a zip password."""
    if declared := [n for n in pkg.names if posixpath.basename(n).lower() == "encryptions.xml"]:
        raise encrypted(f"the OFD is encrypted (GM/T 0099: it holds {declared[0]})",
                        f"OFD 已加密（GM/T 0099：包内有 {declared[0]}）")
    if locked := pkg.zf.encrypted_names():
        raise encrypted(f"the OFD is password-protected (its part {locked[0]!r} is encrypted)",
                        f"OFD 有密码保护（其中的 {locked[0]} 已加密）")


def _read_document(pkg: OfdPackage, body: Element, ocr: bool = False) -> Invoice:
    inv = Invoice()
    _offer_custom_datas(inv, body)
    doc_name = pkg.resolve("", text_of(body, "DocRoot")) or pkg.find("Doc_0/Document.xml")
    doc_dir = posixpath.dirname(doc_name) if doc_name else "Doc_0"
    doc = parse_part(pkg, doc_name) if doc_name else None
    _offer_attachment(inv, pkg, doc, doc_dir)
    pages, templates = document_pages(pkg, doc, doc_dir)
    _offer_tags(inv, pkg, doc, doc_dir, pages)
    first_texts = [t for page in first_page_parts(pages, templates) for k, t in page.texts.items()
                   if k not in page.hidden]
    _offer_page_text(inv, first_texts)
    if pages and (not inv.items or any(inv.get(name) is None for name in FACE_FIELDS)):
        # Printed but in no data part: read the face by position.
        shown = first_page_parts(pages, templates)
        parts = [parse_part(pkg, page.path) for page in shown]
        # What other parts draw over and under each part is found by its ID.
        reading = read_by_position([p for p in parts if p is not None], pages[0].drawing,
                                   part_ids=[s.id for s, p in zip(shown, parts) if p is not None])
        offer_by_position(inv, reading, "ofd-text")
    if inv.get("qr") is None:
        _offer_qr_images(inv, pkg, doc_dir)
    if inv.get("title") is None and inv.get("kind") is not None:
        # No title text (an OFD drawn as paths): the QR implies it, as for a PDF.
        from agent.extract.image import title_from_qr
        inv.offer("title", title_from_qr(inv.get("kind"), inv.get("code")), "qr")
    if ocr and pages and not first_texts and (first := parse_part(pkg, pages[0].path)) is not None:
        from agent.extract.ofd_render import read_drawn_page
        res = (pkg.resolve(doc_dir, text_of(doc, n)) if doc is not None else None for n in ("DocumentRes", "PublicRes"))
        read_drawn_page(inv, first, [r for r in (parse_part(pkg, n) for n in res if n) if r is not None])
    if inv.get("number") is None and inv.get("qr") is None:
        if not any(label in t for t in first_texts for label in _INVOICE_LABELS):
            return Invoice(is_invoice=False, not_invoice_reason=(
                "OFD document has no invoice data: no CustomDatas, original_invoice.xml, "
                "tags, QR or invoice labels"))
    return inv


def _offer_checked(inv: Invoice, name: str, value: object, source: str) -> None:
    """`inv.offer`, except that two different values from the same source
    (CustomDatas against a tag's text, two CustomDatas, two objects under
    one ID) leave the field empty with an `ofd-inconsistent` error naming
    both: a Conflict keyed by source would lose one of them, and the first
    is not truer than the second. Once disputed, the field takes no more
    values from the OFD's own parts."""
    if isinstance(value, str) and not value.strip():
        value = None  # nothing read: `offer` ignores it, and it disagrees with nothing
    if value is None or disputed(inv, name):
        return
    existing = inv.fields.get(name)
    if existing is not None and existing.source == source:
        if values_differ(existing.value, value):
            report_inconsistent(inv, name, f"both {existing.value!r} and {value!r}")
            del inv.fields[name]
        return
    inv.offer(name, value, source)


def disputed(inv: Invoice, name: str) -> bool:
    """True when the OFD gave `name` two different values (`_offer_checked`)."""
    return any(p.code == "ofd-inconsistent" and p.field == name for p in inv.problems)


def report_inconsistent(inv: Invoice, name: str, what: str) -> None:
    """Add the `ofd-inconsistent` error: `name` is left empty for 补录."""
    inv.problems.append(Problem(
        code="ofd-inconsistent", severity="error", field=name,
        message=f"the OFD gives {name} as {what}; left empty for 补录",
        message_zh="OFD 内部字段不一致，留待补录"))


def _offer_value(inv: Invoice, name: str, text: str | None, source: str) -> None:
    # Asked before a date or an amount is parsed out of the text.
    if text is None or inv.refuse_invisible(name, text, source):
        return
    if name in MONEY_FIELDS:
        value: object = parse_money(text)
    elif name == "date":
        value = parse_date(text)
    elif name in _ID_FIELDS:
        value = re.sub(r"\s+", "", text)
    elif name == "total_in_words":
        value = strip_words_marks(text)
    else:
        value = text.strip()
    _offer_checked(inv, name, value, source)


def _offer_custom_datas(inv: Invoice, body: Element) -> None:
    for el in body.iter():
        if local_name(el.tag) != "CustomData":
            continue
        field_name = CUSTOM_DATA_FIELDS.get((el.get("Name") or "").strip())
        if field_name:
            _offer_value(inv, field_name, "".join(el.itertext()).strip() or None, "ofd")


def _offer_attachment(inv: Invoice, pkg: OfdPackage, doc: Element | None, doc_dir: str) -> None:
    # Every XML attachment that carries invoice fields is read: the e-invoice
    # 2019 or 数电 XML, and the 电子会计凭证 XBRL (inv_ord_issuer_*.xml ...).
    attachments_name = pkg.resolve(doc_dir, text_of(doc, "Attachments")) if doc is not None else None
    candidates = [n for n in file_locs(pkg, attachments_name) if n.lower().endswith(_ATTACHMENT_SUFFIXES)]
    prefix = doc_dir.lower() + "/"
    candidates += [n for n in pkg.names if n.lower().startswith(prefix) and (
        n.lower().endswith("original_invoice.xml")
        or "/attachs/" in n.lower() and n.lower().endswith(_ATTACHMENT_SUFFIXES))]
    first: tuple[str, Invoice] | None = None   # the first invoice XML attachment: its name and reading
    for name in dict.fromkeys(candidates):
        root = parse_part(pkg, name)
        if root is None:
            inv.problems.append(Problem(code="ofd-attachment-corrupt", severity="warning",
                                        message=f"{name} is not well-formed XML; skipped"))
            continue
        kind = local_name(root.tag)
        if kind in ("eInvoice", "e-invoice", "EInvoice"):
            reading = read_shudian(root, "xml") if kind == "EInvoice" else read_fp_invoice(root, "xml")
            if first is None:
                _merge(inv, reading)
                first = (name, reading)
            else:
                _check_another(inv, first, name, reading)
        elif kind == "xbrl":
            _offer_xbrl(inv, root)


def _check_another(inv: Invoice, first: tuple[str, Invoice], name: str, other: Invoice) -> None:
    """A second invoice XML attachment: a field it gives otherwise than
    the first did is left empty with `ofd-inconsistent` (the first is not
    truer than the second, and which one the page prints is not known);
    what only it gives is offered as the OFD's other parts are."""
    first_name, reading = first
    for field, f in other.fields.items():
        known = reading.fields.get(field)
        # Compared as validation compares names: （） and (), full-width digits, spaces are one text.
        if known is not None and values_differ(*(unicodedata.normalize("NFKC", v) if isinstance(v, str) else v
                                                 for v in (known.value, f.value))):
            if not disputed(inv, field):
                report_inconsistent(inv, field, f"{known.value!r} in {first_name} but {f.value!r} in {name}")
            inv.fields.pop(field, None)
        elif known is None:
            _offer_checked(inv, field, f.value, f.source)


def _offer_xbrl(inv: Invoice, root: Element) -> None:
    for el in root.iter():
        field_name = XBRL_FIELDS.get(local_name(el.tag))
        if field_name:
            _offer_value(inv, field_name, "".join(el.itertext()).strip() or None, "xml")


def _merge(inv: Invoice, other: Invoice) -> None:
    for name, f in other.fields.items():
        inv.offer(name, f.value, f.source)
    inv.conflicts.extend(c for c in other.conflicts if c not in inv.conflicts)
    inv.problems.extend(other.problems)
    if not inv.items:
        inv.items.extend(other.items)


def _offer_tags(inv: Invoice, pkg: OfdPackage, doc: Element | None, doc_dir: str, pages: list[OfdPage]) -> None:
    by_id = {p.id: p for p in pages}

    def resolve(refs: list[tuple[str | None, str]]) -> str | None:
        parts = []
        for page_id, obj_id in refs:
            page = by_id.get(page_id or "")
            if page is None or obj_id not in page.texts:
                # PageRef missing or wrong: object IDs are document-unique
                page = next((p for p in pages if obj_id in p.texts), None)
            if page is None:
                continue
            if obj_id in page.ambiguous:
                raise _Ambiguous(obj_id, page.ambiguous[obj_id])
            if obj_id in page.hidden and page.texts[obj_id] not in page.shown_texts:
                # Text no viewer shows, unless the page shows the very same
                # text too (a hidden copy a producer tags): then it is print.
                raise _Unshown(obj_id, page.hidden[obj_id])
            parts.append(page.texts[obj_id])
        return "".join(parts) if parts else None

    item_columns: dict[str, list[str | None]] = {t: [] for t in ITEM_TAGS}
    items_ambiguous = False  # a goods cell under a shared ID: no line is rebuilt from tags
    for tag_file in tag_files(pkg, doc, doc_dir):
        for tag, refs in tag_refs(pkg, tag_file):
            try:
                if tag in TAG_FIELDS:
                    _offer_value(inv, TAG_FIELDS[tag], resolve(refs), "ofd")
                elif tag in item_columns and not inv.items:  # lines from XML are better; skip the lookups
                    item_columns[tag].append(resolve(refs))
            except _Ambiguous as e:
                # Two objects under one ID: the tag names neither for sure.
                name = TAG_FIELDS.get(tag)
                if name is not None and not disputed(inv, name):
                    report_inconsistent(inv, name, f"two texts under object ID {e.obj_id} ({' / '.join(e.texts)})")
                    if inv.fields.get(name) is not None and inv.fields[name].source == "ofd":
                        del inv.fields[name]
                elif name is None:
                    items_ambiguous = True
            except _Unshown as e:
                # The tag names text no viewer shows: what the page shows
                # there, if anything, is another text. Whatever the package's
                # data parts say of the field is not what a person sees.
                name = TAG_FIELDS.get(tag)
                if name is not None and not disputed(inv, name):
                    report_inconsistent(inv, name, f"the text of object ID {e.obj_id}, which the page does "
                                                   f"not show ({e.why})")
                    inv.fields.pop(name, None)
                elif name is None:
                    items_ambiguous = True
    if not inv.items and not items_ambiguous:
        inv.items.extend(_items_from_columns(item_columns))


class _Unshown(Exception):
    """A tag's ObjectRef names a TextObject no viewer shows (ofd_shown)."""

    def __init__(self, obj_id: str, why: str):
        super().__init__(obj_id)
        self.obj_id, self.why = obj_id, why


class _Ambiguous(Exception):
    """A tag's ObjectRef names an ID that two text objects of a page carry."""

    def __init__(self, obj_id: str, texts: list[str]):
        super().__init__(obj_id)
        self.obj_id, self.texts = obj_id, texts


def _items_from_columns(columns: dict[str, list[str | None]]) -> list[LineItem]:
    # Tags list each column of the goods table; lines can be rebuilt only
    # when every listed column has one entry per line.
    names = columns["Item"]
    if not names or any(col and len(col) != len(names) for col in columns.values()):
        return []
    items = []
    for i, name in enumerate(names):
        def col(tag: str) -> str | None:
            return columns[tag][i] if columns[tag] else None
        rate, rate_text = parse_rate(col("TaxScheme"))
        items.append(LineItem(name=name or "", amount=parse_money(col("Amount")),
                              tax=parse_money(col("TaxAmount")), rate=rate, rate_text=rate_text,
                              quantity=parse_decimal(col("Quantity")), unit_price=parse_decimal(col("Price"))))
    return items


def _offer_page_text(inv: Invoice, texts: list[str]) -> None:
    title = next((t for t in texts if _TITLE_RE.match(t)), None)
    inv.offer("title", title, "ofd")
    # The 大写 is the text object that is that amount alone, its 红字 sign
    # included (labels.words_alone). A sign drawn as an object of its own
    # cannot be tied to an unsigned 大写 here, and without it the 大写 says
    # the opposite amount: it is left to the page read by position, which
    # lays the two out side by side.
    words = next((w for w in map(words_alone, texts) if w and ("圆" in w or "元" in w)), None)
    if words is not None and words[0] not in "负(（" and any(_SIGN_ALONE_RE.fullmatch(t.strip()) for t in texts):
        words = None
    inv.offer("total_in_words", words, "ofd")


def _offer_qr_images(inv: Invoice, pkg: OfdPackage, doc_dir: str) -> None:
    # JBIG2 (.jb2) QR images are common and unreadable here, so only the
    # formats Pillow decodes are tried, a bounded number of them.
    prefix = doc_dir.lower() + "/"
    names = [n for n in pkg.names if n.lower().startswith(prefix) and n.lower().endswith(_IMAGE_SUFFIXES)]
    for name in names[:MAX_QR_IMAGES]:
        data = pkg.read(name)
        if len(data) > MAX_QR_IMAGE_BYTES or sniff(data) not in _IMAGE_FORMATS:
            continue
        for text in decode_qr_bytes(data):
            payload = parse_qr(text)
            if payload is not None:
                apply_qr(inv, payload)
                return
