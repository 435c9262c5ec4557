"""Invoice fields from the text layer of a PDF page (or any extracted text).

Real text layers are messy: labels come out letter-spaced ("校 验 码"),
with full-width punctuation, Kangxi radicals, NBSP, glyphs with no Unicode
map, and values that are not beside their labels. So every field is found
by its label where the label is readable, and by the shape of its value
(20 digits, 12+8 digits, a 统一社会信用代码, a date, a ¥ amount, 大写 words)
where it is not.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from agent.extract import labels as L
from agent.extract.qr import several_faces_problem
from agent.extract.text_items import parse_items
from agent.extract.text_parties import read_parties
from agent.extract.xml_values import impossible_date
from agent.model import Invoice, LineItem, Problem
from agent.textchars import INVISIBLE, has_invisible

# Full-width brackets are kept as printed: names are compared as printed
# (道达尔能源销售（湖北）有限公司), so NFKC must not turn them half-width.
# They are swapped for private-use stand-ins around NFKC with str.replace:
# str.translate looks every character of the page up in its table, 10x slower.
_KEEP = (("（", "\ue000"), ("）", "\ue001"))
_MIN_MOJIBAKE = 3
_HEADER_LINES = 12


def normalize_text(text: str) -> str:
    """Text ready for label parsing: never raises, same line structure.

    Repairs label glyphs of Adobe-GB1 fonts without a Unicode map, applies
    NFKC (fixing ：￥, full-width digits, Kangxi radicals, NBSP and the
    ideographic space) except to full-width brackets, drops the characters
    that print as nothing (zero-width spaces, joiners, BOMs, bidi marks), joins
    letter-spaced lines, and removes the spaces inside known labels.
    """
    if len(L.CID_MOJIBAKE_RE.findall(text, 0, 20000)) >= _MIN_MOJIBAKE:
        text = text.translate(L.GB1_LABEL_CIDS)
    for bracket, stand_in in _KEEP:
        text = text.replace(bracket, stand_in)
    text = unicodedata.normalize("NFKC", text)
    for bracket, stand_in in _KEEP:
        text = text.replace(stand_in, bracket)
    # A text layer says what the page prints, and these print nothing: kept,
    # one inside a number would leave its first 8 digits looking like an
    # 8-digit 发票号码, and a name unfindable by what it shows.
    if has_invisible(text):
        text = re.sub(INVISIBLE, "", text)
    text = text.replace("\t", "  ")
    lines = [line.rstrip() for line in text.splitlines()]
    if _letter_spaced(text):
        lines = [_join_letters(line) for line in lines]
    text = "\n".join(lines)
    return L.LABEL_SPACING_RE.sub(lambda m: m.group().replace(" ", ""), text)


def _letter_spaced(text: str) -> bool:
    # Renderers that place every glyph separately (ReportLab re-renders of
    # OFDs) split numbers into one-digit tokens. Spaced labels alone
    # ("项 目 名 称") do not count: joining would glue number columns.
    # (Every line break is whitespace to str.split: the tokens are the lines'.)
    numeric = [t for t in text.split() if any(map(str.isdigit, t))]
    if len(numeric) < 20:
        return False
    return sum(1 for t in numeric if len(t) == 1) / len(numeric) > 0.6


def _join_letters(line: str) -> str:
    """Join glyphs whose gap is about the line's letter spacing; wider gaps
    are column breaks and become two spaces."""
    spans = [(m.start(), m.end()) for m in re.finditer(r"\S+", line)]
    if len(spans) < 2:
        return line.strip()
    gaps = [b[0] - a[1] for a, b in zip(spans, spans[1:])]
    limit = max(5, min(gaps) * 1.5)
    out = [line[spans[0][0]:spans[0][1]]]
    for gap, (start, end) in zip(gaps, spans[1:]):
        out.append(("" if gap <= limit else "  ") + line[start:end])
    return "".join(out)


def looks_like_invoice(text: str) -> bool:
    """True when `text` (raw or normalised) carries at least two labels only
    an invoice prints (发票号码, 开票日期, 价税合计 ...)."""
    norm = normalize_text(text)
    return _label_count(norm) >= 2


def _label_count(norm: str) -> int:
    return sum(1 for label in L.INVOICE_LABELS if label in norm)


@dataclass
class ParsedText:
    """What one page's text gave: field values (FIELD_NAMES keys), items, and
    how many invoice labels it printed."""

    fields: dict[str, Any] = field(default_factory=dict)
    items: list[LineItem] = field(default_factory=list)
    label_count: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def is_invoice_like(self) -> bool:
        """Two invoice labels, or one and an invoice number: a 20-digit
        order id on a trip list is not enough."""
        return self.label_count >= 2 or (self.label_count == 1 and "number" in self.fields)


def parse_invoice_text(text: str, invoice: Invoice, source: str = "pdf-text") -> None:
    """Offer every field readable in `text` to `invoice` with `source`.

    Fields: title, code, number, date, check_code (20 digits, no spaces),
    amount, tax, total (Decimal), total_in_words (with a 红字 invoice's
    sign), buyer/seller name and tax id; line items are appended when the
    invoice has none yet. Never raises on any input.
    """
    offer_parsed(parse_text(normalize_text(text)), invoice, source)


def offer_parsed(parsed: ParsedText, invoice: Invoice, source: str) -> None:
    """Offer `parsed` fields to `invoice`; items only if it has none yet;
    the reading's problems (several faces on one page) are added."""
    for name, value in parsed.fields.items():
        invoice.offer(name, value, source)
    if parsed.items and not invoice.items:
        invoice.items.extend(parsed.items)
    invoice.problems.extend(p for p in parsed.problems if p not in invoice.problems)


def parse_text(norm: str) -> ParsedText:
    """Fields of one normalised page (see `normalize_text`)."""
    out = ParsedText(label_count=_label_count(norm))
    f = out.fields
    lines = norm.split("\n")
    header = "\n".join([ln for ln in lines if ln.strip()][:_HEADER_LINES])

    m = L.TITLE_RE.search(norm)
    if m:
        f["title"] = m.group()
    _read_identity(norm, header, f)
    date, impossible = _read_date(norm)
    if date:
        f["date"] = date
    elif impossible:
        out.problems.append(impossible_date(impossible))
    m = L.LABEL_VALUE_RE["check_code"].search(norm)
    if not m:
        m = next((c for c in L.CHECK_CODE_RE.finditer(norm) if " " in c.group()), None)
    if m:
        f["check_code"] = "".join(m.groups()[-4:])
    elif str(f.get("code", "")).startswith(("1", "2")) and (m := L.LABEL_VALUE_RE["check_code_hex"].search(norm)):
        f["check_code"] = m.group(1)
    _read_money(lines, f)
    read_parties(norm, f, out.problems)
    out.items = parse_items(lines)
    numbers = _face_numbers(norm)
    if len(numbers) > 1:
        # Two invoice faces on one page (two invoices printed on one sheet,
        # a scan of two slips): every value read here could be either
        # face's, and which box belongs to which face is not known. None is
        # offered: a person splits the page (补录), nothing is stored wrong.
        out.fields = {k: v for k, v in f.items() if k == "title"}
        out.items = []
        out.problems = [several_faces_problem(numbers, f"one page prints {len(numbers)} invoice faces",
                                              f"一页上印有{len(numbers)}张发票")]
    return out


# A face prints its 发票号码 once and its 价税合计 once; a 红字 invoice's 备注
# names the blue invoice's number too ("蓝字发票号码", "对应正数发票…号码"),
# so only a page with as many 价税合计 labels as distinct labelled numbers
# counts as several faces.
_REFERENCE_BEFORE_NUMBER = ("蓝字", "原", "正数", "对应", "红冲", "被")


def _face_numbers(norm: str) -> list[str]:
    """The distinct 发票号码 of the invoice faces on a normalised page."""
    found: list[str] = []
    for m in L.LABEL_VALUE_RE["number"].finditer(norm):
        before = norm[max(0, m.start() - 6):m.start()]
        if any(w in before for w in _REFERENCE_BEFORE_NUMBER) or m.group(1) in found:
            continue
        found.append(m.group(1))
    return found if len(found) > 1 and norm.count("价税合计") >= len(found) else found[:1]


def _read_identity(norm: str, header: str, f: dict[str, Any]) -> None:
    m = L.LABEL_VALUE_RE["number"].search(norm)
    if m:
        f["number"] = m.group(1)
    else:
        m = L.NUMBER_20_RE.search(header)
        if m:
            f["number"] = m.group()
    m = L.LABEL_VALUE_RE["code"].search(norm)
    if m:
        f["code"] = m.group(1)
    elif len(f.get("number", "")) != 20:
        # Old-style face without readable labels: the 代码 is the first
        # 10/12-digit run of the header that is not the 机器编号.
        for c in L.CODE_RE.finditer(header):
            if "机器编号" not in header[max(0, c.start() - 8):c.start()]:
                f["code"] = c.group()
                break
        if "number" not in f and "code" in f:
            m = L.NUMBER_8_RE.search(header)
            if m:
                f["number"] = m.group()


def _read_date(norm: str) -> tuple[dt.date | None, str | None]:
    """(the page's 开票日期, None), or (None, the date-shaped text that is no
    real date: 2026年02月30日 is named, not called missing)."""
    # The shapes are searched one by one, each only when the ones before it
    # found nothing (the labelled one almost always does). A labelled or
    # 年月日 date that is no real date ends the search: another date on the
    # page (a 备注's, a period's) is not the 开票日期. Bare digits are too
    # weak a sign to name.
    for search, named in ((L.LABEL_VALUE_RE["date"].search, True), (L.DATE_CN_RE.search, True),
                          (L.DATE_BARE_RE.search, False)):
        c = search(norm)
        if c is None:
            continue
        y, mo, d = (g for g in c.groups() if g is not None)
        try:
            return dt.date(int(y), int(mo), int(d)), None
        except ValueError:
            if named:
                return None, f"{y}-{mo}-{d}"
    return None, None


def _money(m: re.Match) -> Decimal | None:
    sign, before, after = m.group(1), m.group(2), m.group(3)
    text = (before if before is not None else after).replace(",", "")
    if sign == "-" and not text.startswith("-"):
        text = "-" + text
    try:
        return Decimal(text).quantize(Decimal("0.01"))
    except InvalidOperation:
        return None


def _line_money(line: str) -> list[Decimal]:
    return [v for v in (_money(m) for m in L.MONEY_RE.finditer(line)) if v is not None]


def _read_money(lines: list[str], f: dict[str, Any]) -> None:
    words_at = None
    if (words := _read_words(lines)) is not None:
        f["total_in_words"], words_at = words
    total = _read_total(lines, words_at)
    if total is not None:
        f["total"] = total
    pair = _read_sum_line(lines, total)
    if pair:
        f["amount"], tax = pair
        if tax is not None:
            f["tax"] = tax


_WORDS_LABELS = ("大写", "价税合计")


def _read_words(lines: list[str]) -> tuple[str, int] | None:
    """The 价税合计大写 (with its 红字 sign) and the index of its line, or None.

    Taken from the row that prints it: after the 价税合计 / (大写) label on
    its line. Without one (label-first layouts, unreadable labels), a 大写
    printed alone as a whole amount is taken when the page has one such
    value: two could be the total and an item. A run touching other words
    (杭州壹元优选商贸, *预付卡*伍拾元充值卡) is never a 大写."""
    alone: dict[str, int] = {}
    for i, line in enumerate(lines):
        if not L.WORD_DIGIT_RE.search(line):
            continue
        for m in L.WORDS_RE.finditer(line):
            if not L.WORDS_UNIT_RE.search(m.group("words")) or _inside_words(line, m):
                continue
            value = L.words_value(m)
            if any(label in line[:m.start()] for label in _WORDS_LABELS):
                return value, i
            if L.WORDS_END_RE.search(value):
                alone.setdefault(value, i)
    return next(iter(alone.items())) if len(alone) == 1 else None


def _inside_words(line: str, m: re.Match) -> bool:
    """True when the 大写-like run `m` touches a letter or a CJK word on
    its line, other than the 大写 / 小写 labels around it."""
    after = line[m.end():m.end() + 2]
    if L.WORD_CHAR_RE.match(after) and after != "小写":
        return True
    if m.group("sign"):
        return False  # labels.WORDS_RE only takes a sign that starts a word
    before = line[:m.start("words")].rstrip(L.WORDS_MARKS)
    return bool(L.WORD_CHAR_RE.match(before[-1:])) and not before.endswith(_WORDS_LABELS)


def _bare_money(text: str) -> list[Decimal]:
    """The amounts of `text` printed without a ¥ (labels.BARE_MONEY_RE)."""
    return [Decimal(m.group(1).replace(",", "")) for m in L.BARE_MONEY_RE.finditer(text)]


def _read_total(lines: list[str], words_at: int | None) -> Decimal | None:
    for line in lines:
        pos = line.find("小写")
        if pos >= 0:
            values = _line_money(line[pos:])
            if values:
                return values[0]
    for line in lines:
        if "价税合计" in line:
            values = _line_money(line)
            if values:
                return values[-1]
    if words_at is not None:
        values = _line_money(lines[words_at])
        if values:
            return values[-1]
    # No ¥ anywhere (left out, or drawn as strokes): the amount printed after
    # (小写) on its row, when it is the only one there.
    # A ¥ there whose amount did not read ("¥1, 234.56") is no "no ¥":
    # the digits after it are not taken for the amount.
    for line in lines:
        pos = line.find("小写")
        if pos >= 0 and "¥" not in line[pos:] and len(values := _bare_money(line[pos:])) == 1:
            return values[0]
    return None


def _read_sum_line(lines: list[str], total: Decimal | None) -> tuple[Decimal, Decimal | None] | None:
    """合计金额 and 合计税额 from the 合计 row; tax None when printed *** (免税)."""
    for i, line in enumerate(lines):
        if "合计" not in line.replace("价税合计", ""):
            continue
        # Label-first layouts print the row's values on a later line.
        for row in lines[i:i + 4]:
            values = _line_money(row)
            if len(values) >= 2:
                return values[0], values[1]
            if len(values) == 1 and "*" in row[row.find("¥"):]:
                return values[0], None
        # No ¥ on the row (left out, or drawn as strokes): its own two bare
        # amounts, 金额 then 税额, only when they add up to the 价税合计 read
        # from its own row, so a quantity or price is never taken for them.
        values = _bare_money(line.replace("价税合计", ""))
        if total is not None and len(values) == 2 and values[0] + values[1] == total:
            return values[0], values[1]
        if total is not None and len(values) == 1 and values[0] == total and "***" in line:
            return values[0], None
        break
    if total is None:
        return None
    # No readable 合计 label: the row is the one whose two amounts add up to 价税合计.
    for line in lines:
        values = _line_money(line)
        if len(values) == 2 and values[0] + values[1] == total:
            return values[0], values[1]
    return None
