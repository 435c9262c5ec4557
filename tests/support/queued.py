"""Valid invoices put straight into a real ledger and vault, queued for delivery.

For delivery tests and bench/deliver.py: the documents go through the
ledger's own transitions (captured -> extracted -> valid -> queued), with
unique vault bytes and a 20-digit 数电 number each, but skip extraction,
which has its own tests.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Sequence

from agent.ledger import Ledger
from agent.model import Invoice, State
from agent.pipeline import invoice_columns
from agent.vault import Stored, Vault

FIRST_NUMBER = 24_442_000_000_000_000_000


def number_of(i: int) -> str:
    """The invoice number (and key) of the i-th generated invoice."""
    return str(FIRST_NUMBER + i)


def store_file(vault: Vault, i: int) -> Stored:
    """Put invoice `i`'s file (unique bytes) in the vault; idempotent."""
    return vault.put_bytes(b"%PDF-1.4\n% synthetic invoice " + number_of(i).encode() + b"\n" + b"0" * 2000
                           + b"\n%%EOF\n")


def queue_invoice(ledger: Ledger, vault: Vault, i: int, *, destinations: Sequence[str], now: str,
                  actor: str = "test", stored: Stored | None = None) -> int:
    """Add invoice number `i` as a queued document; returns its id. One ledger
    transaction (the file goes to the vault first unless `stored` is given)."""
    stored = stored or store_file(vault, i)
    inv = Invoice()
    inv.offer("kind", "32", "xml")
    inv.offer("number", number_of(i), "xml")
    inv.offer("date", dt.date(2026, 1, 1) + dt.timedelta(days=i % 300), "xml")
    inv.offer("total", Decimal(100 + (i * 37) % 9000) + Decimal("0.50"), "xml")
    inv.offer("seller_name", "某某科技有限公司", "xml")
    with ledger.transaction():
        doc_id, _ = ledger.add_document(sha256=stored.sha256, size=stored.size, media_type="application/pdf",
                                        source_kind="ingest", source="test", original_name=f"发票{i}.pdf",
                                        original_path=None, now=now, actor=actor)
        ledger.transition(doc_id, State.EXTRACTED, now=now, actor=actor, **invoice_columns(inv))
        ledger.transition(doc_id, State.VALID, now=now, actor=actor, problems=[])
        ledger.queue_deliveries(doc_id, destinations, now=now, actor=actor)
    return doc_id
