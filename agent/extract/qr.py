"""The invoice QR payload: `ver,type,代码,号码,amount,date,校验码,check[,]`.

Every Chinese VAT e-invoice (and most paper ones since 2017) carries this
payload, and it is the most reliable source we have: it is machine-written,
and the last field is a CRC-16 over the first seven, so a misread shows.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from urllib.parse import parse_qs, urlsplit

from agent.model import Invoice, Problem

# QR amount is 合计金额 (tax-exclusive) for the older VAT family; the 数电
# types (31/32), railway (51) and anything newer give 价税合计.
# 08 is the 查验 type of the 电子专票, which some QR codes carry instead of 20.
TAX_EXCLUSIVE_KINDS = frozenset({"01", "02", "03", "04", "08", "10", "11", "14", "20"})
MODBUS_KINDS = frozenset({"51"})
# Types for which the UMTS variant has been seen to match; for anything not
# listed here (new types) either algorithm is accepted.
UMTS_KINDS = frozenset({"01", "02", "03", "04", "10", "11", "14", "15", "20", "31", "32"})

# ASCII digits only: `\d` would also admit full-width and other Unicode digits.
_KIND_RE = re.compile(r"^[0-9]{2}$")
_VERSION_RE = re.compile(r"^[0-9]{1,3}$")
_NUMBER_RE = re.compile(r"^[0-9]{6,20}$")
_CODE_RE = re.compile(r"^[0-9]{10,12}$")
_AMOUNT_RE = re.compile(r"^-?[0-9]+(\.[0-9]{1,2})?$")
_CHECK_CODE_RE = re.compile(r"^[0-9]{5,20}$")
_HEX_RE = re.compile(r"^[0-9A-Fa-f]{1,4}$")


@dataclass(frozen=True)
class QrPayload:
    """The fields of one invoice QR, parsed; `raw` is the text exactly as decoded."""

    raw: str
    version: str
    kind: str
    code: str | None
    number: str
    amount: Decimal | None
    date: dt.date | None
    check_code: str | None
    crc: str | None

    def signed_texts(self) -> tuple[str, ...]:
        """The text the CRC covers: the first seven fields and a trailing comma.

        The fields as written come first: the early 数电 payloads with a space
        for an empty field are signed with that space. The stripped form is
        the fallback for payloads a decoder or a person re-typed.
        """
        fields = self.raw.strip().split(",")[:7]
        as_written = ",".join(fields) + ","
        stripped = ",".join(f.strip() for f in fields) + ","
        return (as_written,) if as_written == stripped else (as_written, stripped)

    def crc_ok(self) -> bool | None:
        """True when the check field matches the CRC for this type, False when it
        does not, None when the payload carries no check field."""
        if self.crc is None:
            return None
        if not _HEX_RE.match(self.crc):
            return False
        given = int(self.crc, 16)
        if self.kind in MODBUS_KINDS:
            algorithms = (crc16_modbus,)
        elif self.kind in UMTS_KINDS:
            algorithms = (crc16_umts,)
        else:
            algorithms = (crc16_umts, crc16_modbus)
        return any(algo(text.encode("ascii", "replace")) == given
                   for text in self.signed_texts() for algo in algorithms)


def _crc16_table(poly: int, reflected: bool) -> tuple[int, ...]:
    """What 8 bit-steps of the CRC do to each byte value: one lookup a byte
    instead of eight Python steps (a QR's CRC cost ~0.1 ms bit by bit)."""
    table = []
    for value in range(256):
        crc = value if reflected else value << 8
        for _ in range(8):
            if reflected:
                crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
            else:
                crc = ((crc << 1) ^ poly) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
        table.append(crc)
    return tuple(table)


_UMTS_TABLE = _crc16_table(0x8005, reflected=False)
_MODBUS_TABLE = _crc16_table(0xA001, reflected=True)


def crc16_umts(data: bytes) -> int:
    """CRC-16/UMTS (a.k.a. BUYPASS): poly 0x8005, init 0, no reflection, no xorout."""
    crc, table = 0, _UMTS_TABLE
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ table[(crc >> 8) ^ byte]
    return crc


def crc16_modbus(data: bytes) -> int:
    """CRC-16/MODBUS: poly 0x8005 reflected (0xA001), init 0xFFFF, no xorout."""
    crc, table = 0xFFFF, _MODBUS_TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc


def _parse_date(text: str) -> dt.date | None | bool:
    """A date, None for an empty field, False for a malformed one."""
    if not text:
        return None
    m = re.fullmatch(r"([0-9]{4})-?([0-9]{2})-?([0-9]{2})", text)
    if not m:
        return False
    try:
        return dt.date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return False


def parse_qr(text: str) -> QrPayload | None:
    """Parse an invoice QR payload; None when `text` is not one (a URL, garbage).

    Fields are split keeping empties and stripped, because early 数电 payloads
    use a single space for an empty field. A wrong CRC does not make this
    return None: that is judged by `crc_ok` and reported as a warning.
    """
    return _parse(text)[0]


def malformed_reason(text: str) -> str | None:
    """Why `text`, which is laid out as an invoice QR (a 1-3 digit version,
    a two-digit type, seven or more comma-separated fields), does not parse
    as one (a date that does not exist, an amount with three decimals, a
    field too many); None when it parses or is no invoice QR at all (a URL,
    a shop's code). Such a QR is not used, and is never silently dropped."""
    payload, reason = _parse(text)
    if payload is not None or not isinstance(text, str):
        return None
    return reason if _INVOICE_LIKE_RE.match(text.strip()) else None


# An invoice QR's opening: the version, the type, then five more fields.
_INVOICE_LIKE_RE = re.compile(r"^[0-9]{1,3} *, *[0-9]{2} *,([^,]*,){4}")


def _parse(text: str) -> tuple[QrPayload | None, str]:
    """(the payload, "") or (None, why it is not one)."""
    if not isinstance(text, str):
        return None, "not text"
    fields = [f.strip() for f in text.strip().split(",")]
    if len(fields) < 7:
        return None, f"{len(fields)} fields, an invoice QR has 7 or 8"
    # A trailing comma leaves one empty field; anything beyond that is not ours.
    if len(fields) > 9 or (len(fields) == 9 and fields[8]):
        return None, f"{len(fields) - (not fields[-1])} fields, an invoice QR has 7 or 8"
    version, kind, code, number, amount_text, date_text, check_code = fields[:7]
    crc = fields[7] if len(fields) > 7 and fields[7] else None
    if not _VERSION_RE.match(version):
        return None, f"version {version!r} is not a number"
    if not _KIND_RE.match(kind):
        return None, f"type {kind!r} is not two digits"
    if not _NUMBER_RE.match(number):
        return None, f"发票号码 {number!r} is not 6-20 digits"
    if code and not _CODE_RE.match(code):
        return None, f"发票代码 {code!r} is not 10-12 digits"
    if check_code and not _CHECK_CODE_RE.match(check_code):
        return None, f"校验码 {check_code!r} is not 5-20 digits"
    amount: Decimal | None = None
    if amount_text:
        if not _AMOUNT_RE.match(amount_text):
            return None, f"amount {amount_text!r} is not yuan with at most two decimals"
        try:
            amount = Decimal(amount_text)
        except InvalidOperation:  # pragma: no cover - the regex admits only numbers
            return None, f"amount {amount_text!r} is not a number"
    date = _parse_date(date_text)
    if date is False:
        return None, f"date {date_text!r} is not a real date"
    return QrPayload(raw=text, version=version, kind=kind, code=code or None, number=number,
                     amount=amount, date=date, check_code=check_code or None, crc=crc), ""


def sort_codes(texts: list[str]) -> tuple[list[QrPayload], list[str]]:
    """The invoice payloads among decoded QR `texts`, each distinct reading
    once (in order), and the other texts, each once. One code read twice
    is one payload; two codes of one 代码 + 号码 that disagree on any field
    (a date, an amount, a check code) are two: a pasted decoy beside the
    genuine code, and which one is true cannot be told (the caller's
    several-invoices rule then stores none of their values)."""
    payloads: list[QrPayload] = []
    others: list[str] = []
    seen: set[tuple] = set()
    for text in texts:
        payload = parse_qr(text)
        if payload is None:
            if text not in others:
                others.append(text)
            continue
        # The fields, not the text: a decoder's spacing or the CRC's form
        # makes no other invoice.
        reading = (payload.kind, payload.code, payload.number, payload.amount, payload.date, payload.check_code)
        if reading not in seen:
            seen.add(reading)
            payloads.append(payload)
    return payloads, others


def several_invoices_problem(payloads: list[QrPayload], where: str, where_zh: str) -> Problem:
    """The error for one page or image holding the QR codes of several
    invoices (`several_faces_problem`)."""
    n = len(payloads)
    if len({(p.code, p.number) for p in payloads}) == 1:   # one invoice's codes that disagree
        return Problem(
            "several-invoices-on-page", "error", field=None,
            message=(f"{where} carries {n} QR codes of invoice {payloads[0].number} that disagree (a date, an "
                     "amount or a check code): one is not the issuer's, and which cannot be told; no value is "
                     "read from it: check the paper invoice"),
            message_zh=(f"{where_zh}上有{n}个发票号码 {payloads[0].number} 的二维码，但内容不一致，无法判断哪个为真，"
                        "未读取任何字段，请核对纸质发票"))
    return several_faces_problem([p.number for p in payloads], f"{where} carries {n} invoice QR codes",
                                 f"{where_zh}上有{n}张发票的二维码")


def several_faces_problem(numbers: list[str], found: str, found_zh: str) -> Problem:
    """The one error for a page or image holding several invoices (`found`
    says how they were seen: QR codes, printed faces): which of its values
    belongs to which is not known, so the caller stores none of them; a
    person splits it (补录)."""
    return Problem(
        "several-invoices-on-page", "error", field=None,
        message=(f"{found} (发票号码 {', '.join(numbers)}); no value is read from it, as none can be told "
                 "to belong to one invoice: split it, one invoice a file"),
        message_zh=(f"{found_zh}（发票号码 {'、'.join(numbers)}），无法区分各字段属于哪张发票，未读取任何字段，"
                    "请拆分为每张发票一个文件后补录"))


def malformed_problem(text: str, reason: str) -> Problem:
    """The error for an invoice QR that does not parse (`malformed_reason`):
    a machine-written code that is wrong is a damaged or altered invoice, so
    it is shown to a person, never passed over."""
    return Problem(
        "qr-malformed", "error", field="qr",
        message=f"the invoice QR code does not read as one ({reason}): {text[:120]!r}; its fields are not used",
        message_zh=f"发票二维码内容不合规范（{reason}），未采用其字段，请核对纸质发票")


def verification_url_of(texts: list[str], number: str | None) -> str | None:
    """The first of `texts` (decoded codes that are no invoice payload) that
    is a verification URL for invoice `number`: a query parameter equals the
    number (深圳's blockchain invoices: ...verify/scan?hash=...&bill_num=...).
    None when there is no number or no such URL: another code on the page
    (a shop's or an app's) is not the invoice's QR."""
    if not number:
        return None
    for text in texts:
        url = urlsplit(text.strip())
        if url.scheme in ("http", "https") and any(
                number in values for values in parse_qs(url.query).values()):
            return text
    return None


def apply_qr(invoice: Invoice, payload: QrPayload) -> None:
    """Offer the payload's fields to `invoice` with source "qr".

    The QR amount goes to `amount` (合计金额) for the older VAT types and to
    `total` (价税合计) for 数电, railway and other types. A CRC mismatch adds a
    `qr-crc` warning: a few genuine invoices carry a wrong check field.
    """
    invoice.offer("kind", payload.kind, "qr")
    invoice.offer("code", payload.code, "qr")
    invoice.offer("number", payload.number, "qr")
    invoice.offer("date", payload.date, "qr")
    invoice.offer("check_code", payload.check_code, "qr")
    invoice.offer("qr", payload.raw, "qr")
    money_field = "amount" if payload.kind in TAX_EXCLUSIVE_KINDS else "total"
    invoice.offer(money_field, payload.amount, "qr")
    if payload.crc_ok() is False:
        invoice.problems.append(Problem(
            code="qr-crc", severity="warning", field="qr",
            message=f"QR check field {payload.crc} does not match the CRC of its first seven fields",
            message_zh="二维码校验位与前七个字段的CRC不符",
        ))


# Invoice QR images are a few hundred pixels; anything this large is either
# a page scan (the image reader's job) or a decompression bomb.
MAX_QR_IMAGE_PIXELS = 25_000_000


def decode_qr_bytes(data: bytes) -> list[str]:
    """The texts of every QR code found in an encoded image (PNG, JPEG, BMP ...).

    Returns [] for bytes that are not a readable image or hold no QR, and
    for images over MAX_QR_IMAGE_PIXELS. Never raises on bad input.
    """
    import io

    import zxingcpp
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            if width * height > MAX_QR_IMAGE_PIXELS:
                return []
            img.load()
            if img.mode not in ("L", "RGB", "RGBA"):
                img = img.convert("RGB")
            results = zxingcpp.read_barcodes(img, formats=zxingcpp.BarcodeFormat.QRCode)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError,
            Image.DecompressionBombError, MemoryError):
        return []
    return [r.text for r in results if r.text]
