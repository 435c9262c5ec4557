"""How a 补录 change is judged: which sources are authoritative, and the kind of each change.

Which values are authoritative. A field's value counts as *carried* by the
document when one of these sources read it (its current value, a reading in
conflict with it, or a reading an earlier 补录 replaced, `Invoice.replaced`):
- `qr`: the invoice QR payload (kind, code, number, date, check code,
  amount; the raw text; the title implied by kind and code), unless the
  document carries `qr-crc` (the payload's check field does not match: a
  doubtful reading, so correcting it is an ordinary correction). A payload
  with no check field still counts: it is the issuer's structured data.
- `xml`: the 数电 / e-invoice XML (a file, or the one attached in an OFD).
- `ofd`: anything read from the OFD package's own data (CustomDatas, tags,
  attachments), and `ofd-text`, the text objects of its pages read by
  position: the content its signature covers. The reading by position is
  ours, but of signed text: a false conflict costs a
  second pair of eyes, a missed one lets one person overrule signed data.
Not carried: `pdf-text`, `ocr`, `image` (readings of a picture of the
invoice) and `manual` (an operator's own earlier value).

A change is a `fill` (the field is empty and nothing replaced a reading of
it), `same` (text exactly as held, money of equal value), a `conflict`
(differs from a carried value, clearing it included, text by so much as a
space) or a `correction` (any other change of a value read from the
document, a space in text included). Pure: no ledger, no clock.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from agent.model import Invoice, values_differ

AUTHORITATIVE_SOURCES = frozenset({"qr", "xml", "ofd", "ofd-text"})
SOURCE_NAMES = {"qr": "the QR code", "xml": "the 数电 XML", "ofd": "the OFD's signed data",
                "ofd-text": "the OFD's signed page text"}
SOURCE_NAMES_ZH = {"qr": "二维码", "xml": "数电XML", "ofd": "OFD签名数据", "ofd-text": "OFD签名版面文字"}
FILL, SAME, CORRECTION, CONFLICT = "fill", "same", "correction", "conflict"


def carried(invoice: Invoice, name: str, problem_codes: frozenset[str] = frozenset()) -> dict[str, Any]:
    """source -> value of every authoritative reading of field `name` (see
    the module docstring): the field's value, its conflicting readings and
    those an earlier 补录 replaced. The QR's count only without `qr-crc` in
    the invoice's or `problem_codes`."""
    crc_failed = "qr-crc" in problem_codes or any(p.code == "qr-crc" for p in invoice.problems)
    readings: dict[str, Any] = {}
    field = invoice.fields.get(name)
    if field is not None:
        readings.setdefault(field.source, field.value)
    for c in invoice.conflicts:
        if c.field == name:
            for source, value in c.values.items():
                readings.setdefault(source, value)
    for source, value in invoice.replaced.get(name, {}).items():
        readings.setdefault(source, value)
    return {s: v for s, v in readings.items()
            if s in AUTHORITATIVE_SOURCES and v is not None and not (s == "qr" and crc_failed)}


def classify(invoice: Invoice, parsed: dict[str, Any], problem_codes: frozenset[str] = frozenset()) -> dict:
    """{field: {old, old_source, new, kind, carried}} for operator values
    `parsed` (typed, as `amend.parse_value` gives them) against `invoice`;
    kind is fill, same, correction or conflict (module docstring)."""
    out = {}
    for name, new in parsed.items():
        field = invoice.fields.get(name)
        old = invoice.get(name)
        authority = carried(invoice, name, problem_codes)
        # Against what the invoice carries, text counts to the last space:
        # stored as typed, a "same" name with an ideographic space or a line
        # separator added would replace the signed reading unseen.
        if any(new is None or values_differ(v, new) or _text_differs(v, new) for v in authority.values()):
            kind = CONFLICT
        elif old is None:
            # Empty, but read once and replaced since (cleared by an earlier
            # 补录): filling it again replaces that reading.
            kind = SAME if new is None else CORRECTION if invoice.replaced.get(name) else FILL
        elif new is not None and not values_differ(old, new) and not _text_differs(old, new):
            kind = SAME
        else:
            kind = CORRECTION
        out[name] = {"old": _plain(old), "old_source": field.source if field and old is not None else None,
                     "new": _plain(new), "kind": kind, "carried": {s: _plain(v) for s, v in authority.items()}}
    return out


def _text_differs(a: Any, b: Any) -> bool:
    # Two texts that differ at all, whitespace included (values_differ
    # folds it, as readings of one printed name may space it differently).
    return isinstance(a, str) and isinstance(b, str) and a != b


def needs_why(app: dict) -> str:
    """Why an application needs a second person, in one clause."""
    changes = app.get("changes") or {}
    conflicts = {n: c for n, c in changes.items() if c["kind"] == CONFLICT}
    if conflicts:
        said = "; ".join(f"{n} ({', '.join(SOURCE_NAMES.get(s, s) + ': ' + str(v) for s, v in c['carried'].items())})"
                         for n, c in conflicts.items())
        return f"it changes what the invoice itself carries: {said} (four eyes)"
    if any(c["kind"] == CORRECTION for c in changes.values()):
        return "it replaces values read from the document (four eyes)"
    return ("filled fields need four eyes here: the document was read as not an invoice, or neither its "
            "number nor an amount was read from it (filling it makes an invoice), or [access] "
            "self_approve_empty_fields is off")


def held_problems(changes: dict, filer: str) -> list[dict]:
    """The `application-pending` problems a held document shows, one per
    changed field; `{number}` in the messages stands for the application's
    number (known only once it is filed)."""
    out = []
    for name, c in changes.items():
        if c["kind"] == SAME:
            continue
        sources = [s for s in c["carried"] if values_differ(c["carried"][s], c["new"]) or c["new"] is None]
        clash = ", ".join(SOURCE_NAMES.get(s, s) for s in sources)
        clash_zh = "、".join(SOURCE_NAMES_ZH.get(s, s) for s in sources)
        out.append({
            "code": "application-pending", "severity": "error", "field": name,
            "message": (f"{{number}} would change {name} from {shown(c['old'])} to {shown(c['new'])}"
                        + (f", against {clash} ({c['kind']})" if c["kind"] == CONFLICT else f" ({c['kind']})")
                        + f"; it waits for an approver other than {filer}"),
            "message_zh": (f"补录申请 {{number}} 拟将 {name} 由 {shown(c['old'])} 改为 {shown(c['new'])}"
                           + (f"，与{clash_zh}所载不符" if c["kind"] == CONFLICT else "")
                           + f"；待 {filer} 以外的审批人审批"),
        })
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def shown(value: Any) -> str:
    """A value as the operator reads it: `(none)` for None."""
    return "(none)" if value is None else str(value)
