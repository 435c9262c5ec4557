"""`python -m tests.corpus OUTDIR --count N --seed S [--today YYYY-MM-DD]`.

Writes the generated files as NNNN-style.ext and, beside them, expected.jsonl
with one object per file: "file", "style", the expected fields, "truth"
(the full fields behind a scan whose expected fields are QR-only) and, for a
scanner batch, "pages" (every page's expected fields).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

from tests.corpus.generate import STYLES, make_corpus


def main(argv: list[str] | None = None) -> int:
    """Write a corpus; exit status 0 on success, 2 on bad arguments."""
    p = argparse.ArgumentParser(prog="python -m tests.corpus", description=__doc__.splitlines()[0])
    p.add_argument("outdir", type=Path)
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--today", type=dt.date.fromisoformat, default=None,
                   help="dates fall in the 300 days up to this one (default: today)")
    p.add_argument("--styles", default=None,
                   help=f"comma-separated subset of: {', '.join(STYLES)}")
    args = p.parse_args(argv)
    styles = None
    if args.styles:
        names = [s.strip() for s in args.styles.split(",") if s.strip()]
        unknown = [s for s in names if s not in STYLES]
        if unknown:
            p.error(f"unknown styles: {', '.join(unknown)}")
        styles = {s: STYLES[s] for s in names}
    args.outdir.mkdir(parents=True, exist_ok=True)
    corpus = make_corpus(args.seed, args.count, args.today, styles)
    with open(args.outdir / "expected.jsonl", "w", encoding="utf-8") as out:
        for i, inv in enumerate(corpus):
            name = f"{i:04d}-{inv.style}.{inv.ext}"
            (args.outdir / name).write_bytes(inv.data)
            row = {"file": name, "style": inv.style, **inv.expected}
            if inv.truth != inv.expected:
                row["truth"] = inv.truth
            if inv.pages:
                row["pages"] = list(inv.pages)
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(corpus)} files and expected.jsonl to {args.outdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
