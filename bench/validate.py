"""Validate 10,000 invoice records and print the total time (target: under 1 s).

Records are varied copies of the real samples' true fields (with line items,
company and region rules switched on), so every rule does its real work.
Run: .venv/bin/python bench/validate.py
"""

from __future__ import annotations

import datetime as dt
import json
import time
from decimal import Decimal
from pathlib import Path

from agent.model import FIELD_NAMES, Invoice, LineItem, Problem
from agent.validate import ValidationSettings, has_errors, validate

SAMPLES = Path(__file__).resolve().parent.parent.parent / "shared" / "samples"
N = 10_000
ROUNDS = 5


def records() -> list[Invoice]:
    expected = json.loads((SAMPLES / "expected.json").read_text(encoding="utf-8"))
    bases = [v for v in expected.values() if v["is_invoice"]]
    out = []
    for i in range(N):
        base = bases[i % len(bases)]
        inv = Invoice.from_dict({**base, "sources": dict.fromkeys(FIELD_NAMES, "xml")})
        if base.get("amount") and base.get("tax"):
            half = (Decimal(base["amount"]) / 2).quantize(Decimal("0.01"))
            tax = Decimal(base["tax"])
            inv.items = [LineItem("*服务*a", amount=half, tax=(tax / 2).quantize(Decimal("0.01")), rate_text="13%"),
                         LineItem("*服务*b", amount=Decimal(base["amount"]) - half,
                                  tax=tax - (tax / 2).quantize(Decimal("0.01")), rate=Decimal("0.06"))]
        if i % 7 == 0:
            inv.problems.append(Problem("qr-crc", "warning", "QR check does not match", field="qr"))
        out.append(inv)
    return out


def main() -> None:
    invoices = records()
    settings = ValidationSettings(expected_region="11", company_tax_ids=("91420100MA7HTDC99N",),
                                  company_names=("武汉物图科技有限公司",))
    today = dt.date(2025, 12, 1)
    walls, cpus = [], []
    # Best of several rounds: other processes on a shared 2-core box only
    # ever add time, so the minimum is the figure closest to the code's cost.
    for _ in range(ROUNDS):
        wall, cpu = time.perf_counter(), time.process_time()
        results = [validate(inv, settings, today=today, duplicate_of=(i if i % 50 == 0 else None))
                   for i, inv in enumerate(invoices)]
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    problems = sum(len(r) for r in results)
    quarantined = sum(has_errors(r) for r in results)
    best = min(walls)
    print(f"validated {len(invoices)} records: best wall {best:.3f} s of {ROUNDS} rounds "
          f"(all: {', '.join(f'{w:.3f}' for w in walls)}; best CPU {min(cpus):.3f} s; "
          f"{best / len(invoices) * 1e6:.1f} µs each; {problems} problems, {quarantined} with errors); "
          f"target < 1 s: {'OK' if best < 1 else 'MISSED'}")


if __name__ == "__main__":
    main()
