"""Synthetic invoices for tests and volume: `make_invoice` and `make_corpus`.

A style says what arrives: a 数电 or an old-layout PDF (plain, with spaced
labels, or with every label drawn before every value), a photo-like scan
as JPG, PNG or image-only PDF, a scanner batch (several scans in one PDF),
or a non-invoice trip list whose QR is a URL. Each `GeneratedInvoice`
carries the file bytes and the fields a reader must produce, in the shape
of ../shared/samples/expected.json. A scan's expected fields are the QR's
only: without OCR nothing else on it is determinable (null, as in
expected.json); its `truth` keeps everything.
"""

from __future__ import annotations

import datetime as dt
import random
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from tests.corpus.content import (DIGITAL_KINDS, LEGACY_E_KINDS, PAPER_KINDS, expected_fields, make_content,
                                  qr_only_fields, true_items)
from tests.corpus.layouts import Variant, cipher_rows, digital_face, legacy_face
from tests.corpus.render_pdf import face_pdf

# style -> share of a mixed corpus (relative weights).
STYLES: dict[str, int] = {
    "digital": 20, "legacy": 14,
    "digital-spaced": 8, "legacy-spaced": 8,
    "digital-labels-first": 9, "legacy-labels-first": 9,
    "scan-jpg": 10, "scan-png": 6, "scan-pdf": 8, "scan-batch": 3,
    "trip-list": 5,
}
PDF_TEXT_STYLES = tuple(s for s in STYLES if s.startswith(("digital", "legacy")))


@dataclass(frozen=True)
class GeneratedInvoice:
    """One generated file: its bytes, its extension (without dot), the fields a
    reader must extract (`expected`, null = not determinable from the file), the
    full truth behind it (`truth`, equal to `expected` except for scans), and
    the style that made it. A multi-invoice file (a scanner batch) lists every
    page's expected fields in `pages`; `expected`/`truth` are its first page's."""

    data: bytes
    ext: str
    expected: dict
    truth: dict
    style: str
    pages: tuple[dict, ...] = ()
    items: tuple[dict, ...] = ()  # true line items of a single-invoice file (see content.true_items)

    @property
    def records(self) -> tuple[dict, ...]:
        """The expected fields of every invoice record the file holds, in page order."""
        return self.pages or (self.expected,)


def _face(rng: random.Random, kind: str, spaced: bool, today: dt.date):
    content = make_content(rng, kind, today)
    variant = Variant.pick(rng, spaced, kind in DIGITAL_KINDS)
    if content.is_digital:
        return content, digital_face(content, variant)
    return content, legacy_face(content, variant, cipher_rows(rng))


def _text_pdf(rng: random.Random, style: str, today: dt.date) -> GeneratedInvoice:
    family, _, variant = style.partition("-")
    kind = rng.choice(DIGITAL_KINDS if family == "digital" else LEGACY_E_KINDS)
    content, face = _face(rng, kind, variant == "spaced", today)
    data = face_pdf(face, labels_first=variant == "labels-first", title=content.number)
    truth = expected_fields(content)
    return GeneratedInvoice(data, "pdf", truth, truth, style, items=true_items(content))


def make_invoice(rng: random.Random, style: str, today: dt.date | None = None) -> GeneratedInvoice:
    """One invoice (or trip list) of `style` (a key of STYLES), dated within the
    300 days up to `today` (default: the real today). The same rng state and
    `today` give the same bytes."""
    if style not in STYLES:
        raise ValueError(f"unknown corpus style {style!r}; choose from {', '.join(STYLES)}")
    today = today or dt.date.today()
    if style in PDF_TEXT_STYLES:
        return _text_pdf(rng, style, today)
    if style == "scan-batch":
        from tests.corpus.scan import make_scan_batch
        kinds = DIGITAL_KINDS + LEGACY_E_KINDS + PAPER_KINDS
        made = [_face(rng, rng.choice(kinds), rng.random() < 0.3, today) for _ in range(rng.randint(2, 4))]
        data = make_scan_batch(rng, [face for _, face in made])
        pages = tuple(qr_only_fields(content) for content, _ in made)
        return GeneratedInvoice(data, "pdf", pages[0], expected_fields(made[0][0]), style, pages)
    if style.startswith("scan-"):
        from tests.corpus.scan import make_scan
        kind = rng.choice(DIGITAL_KINDS + LEGACY_E_KINDS + PAPER_KINDS)
        content, face = _face(rng, kind, rng.random() < 0.3, today)
        data, ext = make_scan(rng, face, style.removeprefix("scan-"))
        return GeneratedInvoice(data, ext, qr_only_fields(content), expected_fields(content), style,
                                items=true_items(content))
    from tests.corpus.trip import make_trip_list
    data, expected = make_trip_list(rng, today)
    return GeneratedInvoice(data, "pdf", expected, expected, style)


def _make_one(job: tuple[str, int, dt.date | None]) -> GeneratedInvoice:
    style, sub_seed, today = job
    return make_invoice(random.Random(sub_seed), style, today)


def make_corpus(seed: int, count: int, today: dt.date | None = None,
                styles: dict[str, int] | None = None, workers: int = 1) -> list[GeneratedInvoice]:
    """`count` invoices mixed by the weights in `styles` (default STYLES).

    Deterministic for (seed, count, today, styles) whatever `workers` is:
    invoice i depends only on the seed and i's draw, so a failing case can
    be regenerated alone. `workers` > 1 renders in that many processes.
    """
    weights = styles or STYLES
    today = today or dt.date.today()
    rng = random.Random(seed)
    names, shares = list(weights), list(weights.values())
    jobs = [(rng.choices(names, shares)[0], rng.getrandbits(64), today) for _ in range(count)]
    if workers <= 1 or count < 8:
        return [_make_one(j) for j in jobs]
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(_make_one, jobs, chunksize=4))
