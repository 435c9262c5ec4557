"""The nouns of the pipeline: document states, invoices, fields and problems.

Pure data: no I/O, no clock. Money is `Decimal`, dates are `datetime.date`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

# Re-exported: the states live in agent/states.py, which the ledger imports
# without the dataclasses and Decimal of this module (issue 17: start-up).
from agent.states import TRANSITIONS, State, check_transition  # noqa: F401
from agent.textchars import has_invisible, shown


# Field names are the keys of ../shared/samples/expected.json; scripts and the
# `extract --json` output depend on them.
FIELD_NAMES: tuple[str, ...] = (
    "kind", "title", "code", "number", "date", "check_code",
    "amount", "tax", "total", "total_in_words",
    "buyer_name", "buyer_tax_id", "seller_name", "seller_tax_id", "qr",
)
# What each field is called on the invoice, for the Chinese half of a
# problem: the people who fill in 补录 read 销售方名称, not seller_name.
FIELD_LABELS_ZH = {
    "kind": "发票种类", "title": "发票名称", "code": "发票代码", "number": "发票号码", "date": "开票日期",
    "check_code": "校验码", "amount": "金额", "tax": "税额", "total": "价税合计",
    "total_in_words": "价税合计（大写）", "buyer_name": "购买方名称", "buyer_tax_id": "购买方纳税人识别号",
    "seller_name": "销售方名称", "seller_tax_id": "销售方纳税人识别号", "qr": "二维码",
}


def field_zh(name: str) -> str:
    """The field's name as the invoice prints it (`FIELD_LABELS_ZH`); a name
    not among the fields is returned as it is, never dropped."""
    return FIELD_LABELS_ZH.get(name, name)


MONEY_FIELDS = frozenset({"amount", "tax", "total"})
_FEN = Decimal("0.01")
# Fields whose value is digits (a tax id: digits and capitals), a date or an
# amount. Read from any source as text holding a character that shows as
# nothing (a zero-width space, a word joiner, a BOM, a bidi mark), such a
# value prints as one number and is another: a different invoice key, no
# duplicate of the invoice it looks like. It is left empty, with an error.
DIGIT_FIELDS = frozenset({"kind", "code", "number", "check_code", "date", "buyer_tax_id", "seller_tax_id"}
                         | MONEY_FIELDS)
# "ofd-text": an OFD page read by position (no data part names the value).
SOURCES = frozenset({"qr", "xml", "ofd", "ofd-text", "pdf-text", "ocr", "image", "manual"})

KIND_NAMES = {
    "01": "增值税专用发票",
    "02": "货物运输业增值税专用发票",
    "03": "机动车销售统一发票",
    "04": "增值税普通发票",
    "10": "增值税电子普通发票",
    "11": "增值税普通发票（卷式）",
    "14": "增值税电子普通发票（通行费）",
    "15": "二手车销售统一发票",
    "20": "增值税电子专用发票",
    "31": "电子发票（增值税专用发票）",
    "32": "电子发票（普通发票）",
    "51": "电子发票（铁路电子客票）",
    "61": "电子发票（航空运输电子客票行程单）",
}


@dataclass(frozen=True)
class Field:
    """One value and where it came from (one of SOURCES)."""

    value: Any
    source: str


@dataclass(frozen=True)
class Problem:
    """Something wrong or doubtful about an invoice.

    `code` is stable (ops grep for it); `severity` is "error" or "warning".
    """

    code: str
    severity: str
    message: str
    field: str | None = None
    message_zh: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; `message_zh` only when set."""
        d = {"code": self.code, "severity": self.severity, "field": self.field,
             "message": self.message}
        if self.message_zh:
            d["message_zh"] = self.message_zh
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Problem":
        """Inverse of `to_dict`."""
        return cls(code=d["code"], severity=d["severity"], message=d["message"],
                   field=d.get("field"), message_zh=d.get("message_zh"))


@dataclass(frozen=True)
class Conflict:
    """Two sources gave different values for one field; validation judges it."""

    field: str
    values: dict[str, Any]  # source -> value


@dataclass
class LineItem:
    """One line of goods or services. Rate is a fraction (0.13) or None for 免税 etc."""

    name: str
    amount: Decimal | None = None
    tax: Decimal | None = None
    rate: Decimal | None = None
    rate_text: str | None = None  # as printed: "13%", "免税", "不征税" ...
    quantity: Decimal | None = None
    unit_price: Decimal | None = None


_ITEM_KEYS = tuple(f.name for f in dataclasses.fields(LineItem))


@dataclass
class Invoice:
    """What was read from one invoice (one page of a batch PDF counts as one).

    `fields` maps names in FIELD_NAMES to `Field`s. The first source to give
    a field wins; a different value from a later source becomes a `Conflict`.
    """

    is_invoice: bool = True
    fields: dict[str, Field] = dataclasses.field(default_factory=dict)
    items: list[LineItem] = dataclasses.field(default_factory=list)
    conflicts: list[Conflict] = dataclasses.field(default_factory=list)
    problems: list[Problem] = dataclasses.field(default_factory=list)
    page: int | None = None          # 1-based page in a multi-invoice file
    not_invoice_reason: str | None = None
    # field -> {source: value}: what sources read before an operator's value
    # replaced it (the first reading of each source is kept), so a later
    # 补录 still knows what the QR, XML or OFD carried (agent/applications.py).
    replaced: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def get(self, name: str, default: Any = None) -> Any:
        """The field's value, or `default` when nobody gave it."""
        f = self.fields.get(name)
        return default if f is None or f.value is None else f.value

    def offer(self, name: str, value: Any, source: str) -> None:
        """Record `value` from `source`: kept if new, compared if already known.

        Empty values are ignored. Money is compared as Decimal; strings after
        stripping whitespace. A text for one of DIGIT_FIELDS holding an
        invisible character is never kept: `refuse_invisible`; nor is an
        amount with a part of a fen: `refuse_sub_cent`.
        """
        if name not in FIELD_NAMES:
            raise ValueError(f"unknown invoice field {name!r}")
        if value is None or (isinstance(value, str) and not value.strip()):
            return
        if isinstance(value, str) and self.refuse_invisible(name, value, source):
            return
        if isinstance(value, str):
            value = value.strip()
        if name in MONEY_FIELDS and self.refuse_sub_cent(name, value, source):
            return
        existing = self.fields.get(name)
        if existing is None:
            self.fields[name] = Field(value, source)
        elif values_differ(existing.value, value):
            for c in self.conflicts:
                if c.field == name:
                    c.values.setdefault(source, value)
                    return
            self.conflicts.append(Conflict(name, {existing.source: existing.value, source: value}))

    def refuse_invisible(self, name: str, text: str | None, source: str) -> bool:
        """True when `text`, read for `name`, one of DIGIT_FIELDS (a name or
        any other field: always False, its text is kept as written), holds
        a character that shows as nothing (agent/textchars.py); then the error
        `field-invisible-character` is recorded, naming the character, and
        the caller leaves the field empty. An extractor that turns text into
        a date or an amount asks before parsing: `2025-01-1<ZWSP>5` must not
        read as 1 January."""
        if name not in DIGIT_FIELDS or not text or not has_invisible(text):
            return False
        self.problems.append(Problem(
            code="field-invisible-character", severity="error", field=name,
            message=f"{name} {shown(text)} from {source} holds an invisible character: it prints as "
                    "another value; left empty for 补录",
            message_zh=f"{field_zh(name)} 含不可见字符（{shown(text)}），与显示的号码不同，留空待补录"))
        return True

    def refuse_sub_cent(self, name: str, value: Any, source: str) -> bool:
        """True when `value`, read for a money field, is a Decimal with a
        part of a fen (2.125): no invoice amount is one, and stored to two
        places (the ledger's, a destination's "0.00") it would read as
        another amount. The error `amount-sub-cent` is recorded, naming it,
        and the caller leaves the field empty."""
        if not isinstance(value, Decimal) or not value.is_finite():
            return False
        try:
            whole = value == value.quantize(_FEN)
        except ArithmeticError:  # too many digits to round: amount-range's business
            return False
        if whole:
            return False
        self.problems.append(Problem(
            code="amount-sub-cent", severity="error", field=name,
            message=f"{name} {value} from {source} has a part of a fen (more than two decimals): "
                    "no invoice amount does; left empty for 补录",
            message_zh=f"{field_zh(name)} {value} 含分以下的金额（超过两位小数），不是发票金额，留空待补录"))
        return True

    def set_manual(self, name: str, value: Any) -> None:
        """Overwrite a field with an operator's value (source `manual`). What
        other sources had read for it (its value and its conflicts) is kept
        in `replaced`, each source's first reading only."""
        if name not in FIELD_NAMES:
            raise ValueError(f"unknown invoice field {name!r}")
        kept = self.replaced.setdefault(name, {})
        old = self.fields.get(name)
        if old is not None and old.source != "manual" and old.value is not None:
            kept.setdefault(old.source, old.value)
        for c in self.conflicts:
            if c.field == name:
                for source, v in c.values.items():
                    if source != "manual" and v is not None:
                        kept.setdefault(source, v)
        if not kept:
            del self.replaced[name]
        self.fields[name] = Field(value, "manual")
        self.conflicts = [c for c in self.conflicts if c.field != name]

    @property
    def key(self) -> str | None:
        """Invoice identity: kind-less 代码+号码, or the 20-digit 数电 number.

        File hashes cannot serve: e-invoice PDFs change per download.
        """
        number = self.get("number")
        if not number:
            return None
        code = self.get("code")
        return f"{code}-{number}" if code else str(number)

    def to_dict(self) -> dict[str, Any]:
        """The `extract --json` shape: every FIELD_NAMES key, `is_invoice`,
        `sources`, `problems`, `items`; money as "0.00" strings, dates ISO."""
        out: dict[str, Any] = {"is_invoice": self.is_invoice}
        for name in FIELD_NAMES:
            out[name] = _jsonable(name, self.get(name))
        out["sources"] = {n: f.source for n, f in self.fields.items()}
        out["problems"] = [p.to_dict() for p in self.problems]
        out["conflicts"] = [
            {"field": c.field, "values": {s: _jsonable(c.field, v) for s, v in c.values.items()}}
            for c in self.conflicts
        ]
        # Not dataclasses.asdict: it deep-copies every value, through a
        # recursive walk, and a LineItem holds only scalars.
        out["items"] = [
            {k: (str(v) if isinstance(v, Decimal) else v) for k, v in ((k, getattr(i, k)) for k in _ITEM_KEYS)}
            for i in self.items
        ]
        if self.page is not None:
            out["page"] = self.page
        if self.not_invoice_reason:
            out["not_invoice_reason"] = self.not_invoice_reason
        if self.replaced:
            out["replaced"] = {n: {s: _jsonable(n, v) for s, v in by.items()} for n, by in self.replaced.items()}
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Invoice":
        """Rebuild from `to_dict` output (as stored in the ledger)."""
        inv = cls(is_invoice=d.get("is_invoice", True), page=d.get("page"),
                  not_invoice_reason=d.get("not_invoice_reason"))
        sources = d.get("sources", {})
        for name in FIELD_NAMES:
            if d.get(name) is not None:
                inv.fields[name] = Field(_parse(name, d[name]), sources.get(name, "manual"))
        inv.conflicts = [Conflict(c["field"], {s: _parse(c["field"], v) for s, v in c["values"].items()})
                         for c in d.get("conflicts", [])]
        inv.problems = [Problem.from_dict(p) for p in d.get("problems", [])]
        inv.replaced = {n: {s: _parse(n, v) for s, v in by.items()} for n, by in (d.get("replaced") or {}).items()}
        for it in d.get("items", []):
            inv.items.append(LineItem(**{k: (Decimal(v) if k in {"amount", "tax", "rate", "quantity", "unit_price"} and v is not None else v)
                                         for k, v in it.items()}))
        return inv


def values_differ(a: Any, b: Any) -> bool:
    """True when two readings of a field disagree: money compared as
    Decimal, text without its whitespace, anything else by equality."""
    if isinstance(a, Decimal) or isinstance(b, Decimal):
        try:
            return Decimal(str(a)) != Decimal(str(b))
        except ArithmeticError:
            return True
    if isinstance(a, str) and isinstance(b, str):
        return "".join(a.split()) != "".join(b.split())
    return a != b


def _jsonable(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in MONEY_FIELDS or isinstance(value, Decimal):
        return f"{Decimal(value):.2f}"
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _parse(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in MONEY_FIELDS:
        return Decimal(value)
    if name == "date" and isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            return value  # an operator's bad date stays visible; validation flags it
    return value
