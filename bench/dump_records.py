"""Every record extraction gives for the samples and generated corpora, one JSON line per file, to diff.

For changes that must not change any value (speed work): run it before and
after, then `cmp before.jsonl after.jsonl`. Covers every file of
../shared/samples/expected.json (OCR off, and PDFs again with OCR on), --count
generated text PDFs, --count mixed generated invoices and 6 PDFs of each
tests/corpus/pdf_variants.py variant. Dates are generated for a fixed day so
two runs on different days compare.
Usage: PYTHONPATH=$PWD .venv/bin/python bench/dump_records.py OUT.jsonl [--count 400]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import random
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agent.errors import ExtractError  # noqa: E402
from agent.extract import extract_bytes  # noqa: E402
from tests.corpus import PDF_TEXT_STYLES, make_corpus  # noqa: E402
from tests.corpus.pdf_variants import VARIANTS, make_variant  # noqa: E402

SAMPLES = REPO.parent / "shared" / "samples"
TODAY = dt.date(2026, 12, 1)


def _records(data: bytes, ocr: bool) -> list[dict] | str:
    try:
        return [i.to_dict() for i in extract_bytes(data, ocr=ocr)]
    except ExtractError as e:
        return f"ExtractError {e.reason}: {e.message}"


def main() -> int:
    """Write one line per file: its key, a hash of its bytes and its records."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--count", type=int, default=400)
    args = p.parse_args()
    with open(args.out, "w", encoding="utf-8") as out:
        def emit(key: str, data: bytes, ocr: bool = False) -> None:
            line = {"key": key, "sha": hashlib.sha1(data).hexdigest()[:12], "rec": _records(data, ocr)}
            out.write(json.dumps(line, ensure_ascii=False, default=str, sort_keys=True) + "\n")

        expected = json.loads((SAMPLES / "expected.json").read_text("utf-8"))
        for name in sorted(expected):
            data = (SAMPLES / name).read_bytes()
            emit(f"sample {name}", data)
            if name.endswith(".pdf"):
                emit(f"sample-ocr {name}", data, True)
        text = make_corpus(1, args.count, TODAY, {s: 1 for s in PDF_TEXT_STYLES}, workers=2)
        for i, g in enumerate(text):
            emit(f"text {i} {g.style}", g.data)
        for i, g in enumerate(make_corpus(2, args.count, TODAY, workers=2)):
            emit(f"mixed {i} {g.style}", g.data)
        rng = random.Random(3)
        for variant in VARIANTS:
            for j in range(6):
                emit(f"variant {variant} {j}", make_variant(rng, variant, TODAY)[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
