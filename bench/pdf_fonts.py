"""What holding PDFium's substitute fonts open saves (agent/extract/pdf_fonts.py).

    .venv/bin/python bench/pdf_fonts.py [--rounds 4] [--passes 5]

Reads every real sample PDF (../shared/samples) and 300 generated text
PDFs the way a worker does (`pipeline.analyse`, no OCR), in fresh
processes, alternately with the fonts held (as the daemon runs) and
without (the anchor: a process that never opens the held document): CPU
milliseconds a PDF (the best of --passes passes in each process; median
over --rounds processes of each kind), their ratio, and each process's
peak RSS. Also checks that both read every PDF the same.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import pickle
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO.parent / "shared" / "samples"

READ = """
import hashlib, json, pickle, resource, sys, time
import agent.extract.pdf as pdf
if sys.argv[1] == "without":
    pdf.hold_substitute_fonts = lambda data: False
from agent.pipeline import analyse
sets = pickle.load(open(sys.argv[2], "rb"))
out = {}
for name, datas in sets.items():
    best, seen = None, hashlib.sha256()
    for n in range(int(sys.argv[3]) + 1):
        cpu = time.process_time()
        for d in datas:
            a = analyse(d, ocr=False)
            if n == 0:
                seen.update(json.dumps([a.invoices, a.error_reason], sort_keys=True, default=str).encode())
        took = (time.process_time() - cpu) / len(datas) * 1000
        if n:  # the first pass warms up and fingerprints what was read
            best = took if best is None else min(best, took)
    out[name] = [best, seen.hexdigest()]
out["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--passes", type=int, default=5)
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    from tests.corpus.generate import make_corpus

    real = [p.read_bytes() for p in sorted(SAMPLES.rglob("*.pdf"))]
    generated = [g.data for g in make_corpus(17, 300, today=dt.date.today(),
                                             styles={"digital": 3, "legacy": 2}, workers=2)]
    results: dict[str, list[dict]] = {"held": [], "without": []}
    with tempfile.NamedTemporaryFile(suffix=".pkl") as f:
        pickle.dump({"real": real, "generated": generated}, f)
        f.flush()
        for _ in range(args.rounds):
            for kind in ("without", "held"):
                run = subprocess.run([sys.executable, "-c", READ, kind, f.name, str(args.passes)], cwd=REPO,
                                     capture_output=True, text=True, check=True)
                results[kind].append(json.loads(run.stdout))
    for name, count in (("real", len(real)), ("generated", len(generated))):
        ms = {k: statistics.median(r[name][0] for r in rs) for k, rs in results.items()}
        same = len({r[name][1] for rs in results.values() for r in rs}) == 1
        print(f"{count} {name} PDFs: {ms['held']:.2f} ms a PDF with the fonts held, {ms['without']:.2f} without "
              f"(the anchor): {ms['held'] / ms['without']:.2f}x; read the same: {'yes' if same else 'NO'}")
    rss = {k: statistics.median(r["rss_mb"] for r in rs) for k, rs in results.items()}
    print(f"peak RSS of a reading process: {rss['held']:.1f} MB held, {rss['without']:.1f} MB without "
          f"(medians of {args.rounds} interleaved rounds of each, {args.passes} passes a round)")


if __name__ == "__main__":
    main()
