"""Judging a reader against expected fields, shared by the accuracy test and the bench."""

from __future__ import annotations

from decimal import Decimal

from agent.model import FIELD_NAMES, Invoice

EXPECTED_KEYS = ("is_invoice",) + FIELD_NAMES


def mismatches(expected: dict | list[dict] | tuple[dict, ...], invoices: list[Invoice]) -> list[str]:
    """Every way `invoices` (what a reader returned for one file) differs from
    `expected`, one line each; empty when every non-null expected field was
    extracted exactly. `expected` is one record's fields, or a list of them
    for a file holding several invoices (a record per page, in order); the
    file must give exactly that many records."""
    records = [expected] if isinstance(expected, dict) else list(expected)
    if len(invoices) != len(records):
        return [f"expected {len(records)} record(s), got {len(invoices)}"]
    out = []
    for n, (want_fields, invoice) in enumerate(zip(records, invoices), 1):
        got = invoice.to_dict()
        where = f"page {n} " if len(records) > 1 else ""
        for key in EXPECTED_KEYS:
            want = want_fields.get(key)
            if want is not None and got.get(key) != want:
                out.append(f"{where}{key}: expected {want!r}, got {got.get(key)!r}")
    return out


def field_counts(expected: dict | list[dict] | tuple[dict, ...], invoices: list[Invoice]) -> tuple[int, int]:
    """(fields right, fields checked) over the non-null expected fields."""
    records = [expected] if isinstance(expected, dict) else list(expected)
    checked = sum(1 for r in records for k in EXPECTED_KEYS if r.get(k) is not None)
    if len(invoices) != len(records):
        return 0, checked
    return checked - len(mismatches(records, invoices)), checked


def item_mismatches(items: tuple[dict, ...] | list[dict], invoice: Invoice) -> list[str]:
    """How the line items `invoice` gives differ from the true `items` in 金额,
    税额 and rate (names are left out: they wrap across lines on the page)."""
    got = [{"amount": f"{i.amount:.2f}" if i.amount is not None else None,
            "tax": f"{i.tax:.2f}" if i.tax is not None else None,
            "rate": str(i.rate.normalize()) if i.rate is not None else None} for i in invoice.items]
    want = [{"amount": i["amount"], "tax": i["tax"], "rate": str(Decimal(i["rate"]).normalize())}
            for i in items]
    if got == want:
        return []
    return [f"items: expected {want}, got {got}"]
