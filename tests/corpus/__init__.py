"""Synthetic Chinese VAT invoices for tests and volume runs.

`make_corpus(seed, count)` mixes 数电 and old-layout PDFs (plain, spaced
labels, labels drawn before values), photo-like scans (JPG, PNG, image-only
PDF) and non-invoice trip lists; `make_invoice(rng, style)` makes one. Each
result carries its bytes, extension and the fields a reader must extract.
`python -m tests.corpus OUTDIR --count N --seed S` writes a corpus to disk.
"""

from tests.corpus.generate import (PDF_TEXT_STYLES, STYLES, GeneratedInvoice, make_corpus,
                                   make_invoice)

__all__ = ["GeneratedInvoice", "PDF_TEXT_STYLES", "STYLES", "make_corpus", "make_invoice"]
