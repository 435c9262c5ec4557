"""Extraction speed and accuracy: real samples, 1,000 generated PDFs, 1,000 mixed invoices.

Prints, using a process pool of --workers (default 2, both cores):
- invoices per second per format and overall, on ../shared/samples and on
  1,000 generated text PDFs;
- on the same PDFs in the same run (each file timed three ways back to back
  in one worker, so all three see the same load): bare pypdfium2 text
  extraction (open, every page's text, close), bare pypdf layout text, and
  our whole extraction, as PDFs per second on the pool, with extraction's
  ratio to each (target: <= 2x bare pypdfium2, i.e. >= 250 PDFs/s on 2 cores);
- PDF invoices per second on the pool (target >= 250);
- milliseconds per QR-only image (target < 50);
- field accuracy over the 1,000 generated PDFs and over 1,000 mixed invoices
  (scans, spaced and label-first layouts, trip lists), and how many text
  PDFs' line items (金额, 税额, rate) come out right (not an acceptance
  field, but validation's line-sum and tax-rate rules read them).
  Sections 1-3 read scans by their QR code only (`ocr=False`);
- OCR (the ocr extra): seconds per page and pages per second on the pool,
  a worker's peak RSS, the real image samples' fields, and, over --ocr-count
  generated scans, how many printed-only fields (names, tax ids, 税额, 大写)
  OCR reads right, gets wrong, or leaves empty with a warning;
- the render fallback (PDFium, for QR codes no image decoder reads and
  garbled text layers): renders per page and ms per render on the real
  sample PDFs and on tests/corpus/pdf_variants.py (`--render-only`);
- OCR of phone photos of paper invoices with a damaged QR: seconds per page
  (wall and CPU), a worker's peak RSS, fields right / wrong / empty.
Usage: .venv/bin/python bench/extract.py [--count 1000] [--seed 1] [--workers 2] [--ocr-count 60]
                                        [--photo-count 12]
       .venv/bin/python bench/extract.py --speed-only --count 300   (the three-way PDF speed figures alone)
       .venv/bin/python bench/extract.py --render-only | --photos-only | --ocr-only
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pypdf import PdfReader  # noqa: E402

from agent.errors import ExtractError  # noqa: E402
from agent.extract import extract_bytes  # noqa: E402
from agent.extract.sniff import sniff  # noqa: E402
from service.worker_ocr import init_worker as _init_worker  # noqa: E402
from tests.corpus import PDF_TEXT_STYLES, make_corpus  # noqa: E402
from tests.corpus.compare import field_counts, item_mismatches, mismatches  # noqa: E402

SAMPLES = REPO.parent / "shared" / "samples"
IMAGE_FORMATS = {"png", "jpeg", "tiff", "bmp", "gif", "webp"}


def _extract(job: tuple) -> tuple[float, int, int, list[str], int, bool | None]:
    """(seconds, fields right, fields checked, mismatches, records, line items
    right or None when not checked) for one job (data, expected[, true items])."""
    data, expected, *rest = job
    t0 = time.perf_counter()
    try:
        invoices = extract_bytes(data, ocr=False)
        error = None
    except ExtractError as e:
        invoices, error = [], f"ExtractError {e.reason}: {e.message}"
    elapsed = time.perf_counter() - t0
    if expected is None:
        return elapsed, 0, 0, [], len(invoices), None
    if error:
        return elapsed, 0, field_counts(expected, [])[1], [error], 0, False if rest else None
    right, checked = field_counts(expected, invoices)
    items_ok = None
    if rest and rest[0]:
        items_ok = len(invoices) == 1 and not item_mismatches(rest[0], invoices[0])
    return elapsed, right, checked, mismatches(expected, invoices), len(invoices), items_ok


def _ocr_scan(job: tuple) -> tuple[float, dict, list[dict], int]:
    """(seconds, per-field outcome counts, records, worker peak RSS in MB) for
    one scan read with OCR, judged against its full truth (the printed-only
    fields: those its QR does not carry)."""
    data, expected, truth = job
    t0 = time.perf_counter()
    invoices = extract_bytes(data, ocr=True)
    elapsed = time.perf_counter() - t0
    outcome = {"right": 0, "wrong": 0, "empty": 0}
    wrong = []
    records = [i.to_dict() for i in invoices]
    for key, value in truth.items():
        if value is None or expected.get(key) is not None or key not in records[0]:
            continue
        got = records[0][key]
        kind = "empty" if got is None else "right" if got == value else "wrong"
        outcome[kind] += 1
        if kind == "wrong":
            wrong.append(f"{key}: {got!r} != {value!r}")
    outcome["wrong_list"] = wrong
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    resident = next(int(line.split()[1]) // 1024 for line in open("/proc/self/status") if line.startswith("VmRSS"))
    return elapsed, outcome, records, (peak, resident)


def _ocr_section(args, today: dt.date) -> None:
    from agent.extract.ocr import unavailable_reason

    reason = unavailable_reason()
    if reason:
        print(f"\n== OCR: skipped, {reason}")
        return
    expected = json.loads((SAMPLES / "expected.json").read_text("utf-8"))
    images = [n for n in sorted(expected) if n.endswith((".jpg", ".png"))]
    print(f"\n== OCR on the {len(images)} real image samples")
    for name in images:
        data = (SAMPLES / name).read_bytes()
        want = {k: v for k, v in expected[name].items() if k not in ("notes", "source")}
        t0 = time.perf_counter()
        invoices = extract_bytes(data, ocr=True)
        ms = 1000 * (time.perf_counter() - t0)
        right, checked = field_counts(want, invoices)
        by_ocr = sum(1 for v in invoices[0].to_dict()["sources"].values() if v == "ocr")
        print(f"  {name}: {ms:.0f} ms (one process), fields {right}/{checked} right, {by_ocr} of them by OCR")
    corpus = [make_corpus(args.seed + 2 + i, 1, today, {s: 1}, workers=1)[0]
              for i, s in enumerate(["scan-jpg", "scan-png", "scan-pdf"] * (args.ocr_count // 3))]
    jobs = [(g.data, g.expected, g.truth) for g in corpus]
    # Workers started and set up as the daemon's are (forkserver, one OCR
    # thread each): a forked worker would count this process's memory as its own.
    slot_dir = tempfile.mkdtemp(prefix="ocr-slots-")
    # As ExtractionPool does: a slot's holder gets the cores of the workers waiting for one.
    threads = args.workers // args.ocr_workers if 0 < args.ocr_workers < args.workers else 1
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("forkserver"),
                             initializer=_init_worker, initargs=(slot_dir, args.ocr_workers, threads)) as ocr_pool:
        list(ocr_pool.map(_ocr_scan, jobs[: args.workers], chunksize=1))  # load the engine in every worker
        t0 = time.perf_counter()
        results = list(ocr_pool.map(_ocr_scan, jobs, chunksize=1))
        wall = time.perf_counter() - t0
    totals = {k: sum(r[1][k] for r in results) for k in ("right", "wrong", "empty")}
    checked = sum(totals.values())
    per = sorted(r[0] for r in results)
    print(f"\n== OCR on {len(jobs)} generated scans (jpg/png/pdf, 200-300 dpi, crooked, noisy): "
          f"wall {wall:.1f} s on {args.workers} workers, {args.ocr_workers or args.workers} OCRing at once "
          f"= {len(jobs) / wall:.2f} pages/s; "
          f"per page median {per[len(per) // 2]:.2f} s, max {per[-1]:.2f} s; "
          f"worker peak RSS {max(r[3][0] for r in results)} MB, resident between pages "
          f"{max(r[3][1] for r in results)} MB")
    print(f"printed-only fields: {totals['right']}/{checked} right ({100 * totals['right'] / checked:.1f} %), "
          f"{totals['wrong']} wrong, {totals['empty']} left empty (refused with a warning, or not found)")
    for i, r in enumerate(results):
        for w in r[1]["wrong_list"]:
            print(f"  WRONG #{i} {corpus[i].style}: {w}")


def _bare_pypdf(data: bytes) -> float:
    """Seconds for pypdf alone to open the file and lay out every page's text."""
    t0 = time.perf_counter()
    for page in PdfReader(io.BytesIO(data)).pages:
        page.extract_text(extraction_mode="layout")
    return time.perf_counter() - t0


def _bare_pdfium(data: bytes) -> float:
    """Seconds for pypdfium2 alone to open the file, get every page's text and close it."""
    import pypdfium2

    t0 = time.perf_counter()
    doc = pypdfium2.PdfDocument(data)
    for i in range(len(doc)):
        page = doc[i]
        textpage = page.get_textpage()
        textpage.get_text_range()
        textpage.close()
        page.close()
    doc.close()
    return time.perf_counter() - t0


def _three_ways(data: bytes) -> tuple[float, float, float]:
    """(bare pypdfium2, bare pypdf, extraction) seconds for one PDF, measured
    back to back in one process so all three see the same machine load."""
    return _bare_pdfium(data), _bare_pypdf(data), _extract((data, None))[0]


def _run(pool: ProcessPoolExecutor, jobs: list) -> tuple[float, list]:
    t0 = time.perf_counter()
    results = list(pool.map(_extract, jobs, chunksize=8))
    return time.perf_counter() - t0, results


def _report(title: str, groups: list[str], jobs: list, pool: ProcessPoolExecutor, rounds: int = 1,
            show_failures: int = 15) -> dict:
    """Run `jobs` `rounds` times on the pool, print per-group and overall rates,
    per-file milliseconds, bare pypdf per PDF and accuracy; return the figures."""
    wall, results = _run(pool, jobs * rounds)
    results = results[: len(jobs)] if rounds == 1 else results
    per_file = defaultdict(list)
    for g, r in zip(groups * rounds, results):
        per_file[g].append(r[0])
    n_total = len(jobs) * rounds
    print(f"\n== {title}: {len(jobs)} files x {rounds} round(s), wall {wall:.2f} s")
    print(f"{'format':<24}{'files':>6}{'ms/file':>10}{'files/s (pool)':>16}")
    busy = sum(sum(v) for v in per_file.values())
    for g in sorted(per_file):
        ms = 1000 * sum(per_file[g]) / len(per_file[g])
        # A group's pool rate: its share of busy time, scaled to the wall clock.
        share = sum(per_file[g]) / busy if busy else 0
        rate = len(per_file[g]) / (wall * share) if share else float("inf")
        print(f"{g:<24}{len(per_file[g]) // rounds:>6}{ms:>10.1f}{rate:>16.1f}")
    print(f"{'overall':<24}{len(jobs):>6}{1000 * busy / n_total:>10.1f}{n_total / wall:>16.1f}")
    firsts = results[: len(jobs)]
    right = sum(r[1] for r in firsts)
    checked = sum(r[2] for r in firsts)
    bad = [(i, g, r[3]) for i, (g, r) in enumerate(zip(groups, firsts)) if r[3]]
    if checked:
        print(f"field accuracy: {right}/{checked} = {100 * right / checked:.2f} %; "
              f"files fully right: {len(jobs) - len(bad)}/{len(jobs)}")
    items = [(g, r[5]) for g, r in zip(groups, firsts) if r[5] is not None]
    if items:
        by_group = defaultdict(lambda: [0, 0])
        for g, ok in items:
            by_group[g][0] += ok
            by_group[g][1] += 1
        print(f"line items (金额/税额/rate) all right: {sum(ok for _, ok in items)}/{len(items)} files; "
              + ", ".join(f"{g} {a}/{n}" for g, (a, n) in sorted(by_group.items())))
    for i, g, m in bad[:show_failures]:
        print(f"  #{i} {g}: {'; '.join(m)}")
    if len(bad) > show_failures:
        print(f"  ... and {len(bad) - show_failures} more files with mismatches")
    return {"wall": wall, "per_file": per_file, "n": n_total}


def _speed_compare(title: str, pdfs: list[bytes], pool: ProcessPoolExecutor, workers: int,
                   rounds: int = 1) -> None:
    """Print bare pypdfium2, bare pypdf and extraction PDFs/s on the pool over
    the same files, and extraction's ratio to each."""
    list(pool.map(_three_ways, pdfs[: 2 * workers], chunksize=1))  # imports and caches out of the figures
    times = list(pool.map(_three_ways, pdfs * rounds, chunksize=8))
    n = len(times)
    # Busy seconds per method, spread over the pool's workers.
    rate = [workers * n / sum(t[k] for t in times) for k in range(3)]
    print(f"-- {title}: {len(pdfs)} PDFs x {rounds}, each timed three ways back to back, "
          f"PDFs/s on {workers} workers:")
    print(f"   bare pypdfium2 text {rate[0]:8.1f}   bare pypdf layout {rate[1]:8.1f}   extraction {rate[2]:8.1f}")
    print(f"   extraction = {rate[0] / rate[2]:.2f}x bare pypdfium2 (target <= 2x), "
          f"{rate[1] / rate[2]:.2f}x bare pypdf ({rate[2] / rate[1]:.1f}x as fast)")


def _warm(pool: ProcessPoolExecutor, jobs: list, workers: int) -> None:
    # First calls in a worker pay for imports and font/CMap caches; keep them out of the figures.
    list(pool.map(_extract, jobs[: 2 * workers] * 2, chunksize=1))


def _render_section(args, today: dt.date) -> None:
    """How often the render fallback (agent/extract/pdf_render.py) runs on
    the real sample PDFs and on the bi-level-QR / garbled-text variants,
    and what it costs: PDFium ms per render, extraction ms per file. One
    process (the counters are per process), scans by QR only."""
    import random

    from agent.extract import pdf_render
    from tests.corpus.pdf_variants import VARIANTS, make_variant

    def run(title: str, files: list[tuple[str, bytes]], ocr: bool = False) -> None:
        by_group: dict[str, list] = defaultdict(lambda: [0, 0, 0, 0.0, 0.0])
        for group, data in files:
            pages = len(PdfReader(io.BytesIO(data)).pages)
            n0, s0, t0 = pdf_render.renders, pdf_render.render_seconds, time.perf_counter()
            try:
                extract_bytes(data, ocr=ocr)
            except ExtractError:
                pass
            row = by_group[group]
            row[0] += 1
            row[1] += pages
            row[2] += pdf_render.renders - n0
            row[3] += pdf_render.render_seconds - s0
            row[4] += time.perf_counter() - t0
        print(f"\n== render fallback: {title}")
        for group, (files_n, pages, renders, seconds, wall) in sorted(by_group.items()):
            per = f"{1000 * seconds / renders:.1f} ms of PDFium per page rendered" if renders else "no render"
            print(f"{group:24s} {files_n:4d} files {pages:4d} pages: {renders:4d} pages rendered "
                  f"({renders / pages:.2f} per page), {per}; {1000 * wall / files_n:.1f} ms per file")

    samples = [("real sample PDF", (SAMPLES / n).read_bytes()) for n in sorted(
        json.loads((SAMPLES / "expected.json").read_text("utf-8"))) if n.endswith(".pdf")]
    extract_bytes(samples[0][1], ocr=False)  # imports and PDFium loaded outside the figures
    run("../shared/samples PDFs", samples)
    rng = random.Random(args.seed)
    n = max(1, args.render_count)
    files = [(v, make_variant(rng, v, today)[0]) for v in VARIANTS for _ in range(n)]
    run(f"{n} generated PDFs per variant (tests/corpus/pdf_variants.py)", files)
    plain = [(s, g.data) for s in ("digital", "legacy") for g in make_corpus(args.seed, n, today, {s: 1})]
    run(f"{n} plain text PDFs per layout (never rendered)", plain)


def _speed_only(args, today: dt.date) -> int:
    expected = json.loads((SAMPLES / "expected.json").read_text("utf-8"))
    real = [d for d in ((SAMPLES / n).read_bytes() for n in sorted(expected)) if sniff(d) == "pdf"]
    corpus = make_corpus(args.seed, args.count, today, {s: 1 for s in PDF_TEXT_STYLES}, workers=args.workers)
    with ProcessPoolExecutor(args.workers) as pool:
        _speed_compare("real sample PDFs", real, pool, args.workers, args.rounds)
        generated = [g.data for g in corpus]
        _speed_compare("generated PDFs", generated, pool, args.workers)
        list(pool.map(_extract, [(d, None) for d in generated[: 2 * args.workers]], chunksize=1))
        t0 = time.perf_counter()
        list(pool.map(_extract, [(d, None) for d in generated], chunksize=8))
        wall = time.perf_counter() - t0
        print(f"-- generated PDF invoices per second on {args.workers} workers (wall clock, extraction alone): "
              f"{len(generated) / wall:.1f} (target >= 250)")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load average after: {load}")
    return 0


def _ocr_photo(job: tuple) -> tuple[float, float, dict, tuple[int, int]]:
    """(wall s, CPU s, field outcomes, (peak, resident) MB) for one phone
    photo of a paper invoice read with OCR against its full truth."""
    data, truth = job
    cpu0, t0 = time.process_time(), time.perf_counter()
    try:
        records = [i.to_dict() for i in extract_bytes(data, ocr=True)]
    except ExtractError:
        records = []
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    outcome = {"right": 0, "wrong": 0, "empty": 0}
    for key, value in truth.items():
        if value is None or key in ("qr", "kind", "is_invoice"):
            continue
        got = records[0].get(key) if records else None
        outcome["empty" if got is None else "right" if got == value else "wrong"] += 1
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    resident = next(int(line.split()[1]) // 1024 for line in open("/proc/self/status") if line.startswith("VmRSS"))
    return elapsed, cpu, outcome, (peak, resident)


def _photo_section(args, today: dt.date) -> None:
    """Whole-page OCR of phone photos of paper invoices whose QR is damaged
    (tests/corpus/photo.py), one OCR worker on every core (target: <= 4 s a
    page on 2 cores, peak RSS <= 700 MB a worker, memory given back between
    pages). CPU seconds are printed too: on a loaded machine wall time lies."""
    import random

    from agent.extract.ocr import unavailable_reason
    from tests.corpus.photo import make_photo

    if unavailable_reason() or not args.photo_count:
        return
    photos = [make_photo(random.Random(args.seed * 1000 + i), today, damage_qr=True)
              for i in range(args.photo_count)]
    jobs = [(p.data, p.truth) for p in photos]
    slot_dir = tempfile.mkdtemp(prefix="ocr-slots-")
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("forkserver"),
                             initializer=_init_worker, initargs=(slot_dir, 1, args.workers)) as pool:
        list(pool.map(_ocr_photo, jobs[:1]))  # load the engine
        results = list(pool.map(_ocr_photo, jobs, chunksize=1))
    totals = {k: sum(r[2][k] for r in results) for k in ("right", "wrong", "empty")}
    walls, cpus = sorted(r[0] for r in results), sorted(r[1] for r in results)
    print(f"\n== OCR of {len(jobs)} photos of paper invoices, QR damaged (angle, shadow, blur, JPEG; "
          f"~{photos[0].data.__len__() // 1024} KB, one worker with {args.workers} threads): "
          f"per page wall median {walls[len(walls) // 2]:.2f} s, max {walls[-1]:.2f} s; "
          f"CPU median {cpus[len(cpus) // 2]:.2f} s (target wall <= 4 s on 2 cores); "
          f"worker peak RSS {max(r[3][0] for r in results)} MB (target <= 700), "
          f"resident between pages {max(r[3][1] for r in results)} MB")
    print(f"fields from the print alone: {totals['right']}/{sum(totals.values())} right, "
          f"{totals['wrong']} wrong, {totals['empty']} left empty")


def main() -> int:
    """Run the three benchmarks and print their figures."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--rounds", type=int, default=20, help="passes over the few real samples")
    p.add_argument("--ocr-count", type=int, default=60, help="generated scans read with OCR")
    p.add_argument("--ocr-only", action="store_true", help="run the OCR section alone")
    p.add_argument("--render-only", action="store_true", help="run the render-fallback section alone")
    p.add_argument("--render-count", type=int, default=20, help="generated PDFs per render variant")
    p.add_argument("--speed-only", action="store_true",
                   help="only the three-way PDF speed figures, on the real PDFs and --count generated ones")
    p.add_argument("--photo-count", type=int, default=12, help="photos with a damaged QR read with OCR")
    p.add_argument("--photos-only", action="store_true", help="run the photo OCR section alone")
    p.add_argument("--ocr-workers", type=int, default=1,
                   help="workers that may OCR at once, as [extract] ocr_workers (0: all)")
    args = p.parse_args()
    today = dt.date.today()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"process pool of {args.workers} workers on {os.cpu_count()} CPUs; load average before: {load}")
    if args.ocr_only:
        _ocr_section(args, today)
        return 0
    if args.render_only:
        _render_section(args, today)
        return 0
    if args.speed_only:
        return _speed_only(args, today)
    if args.photos_only:
        _photo_section(args, today)
        return 0
    with ProcessPoolExecutor(args.workers) as pool:
        # 1. Real samples.
        expected = json.loads((SAMPLES / "expected.json").read_text("utf-8"))
        names = sorted(expected)
        datas = [(SAMPLES / n).read_bytes() for n in names]
        groups = [sniff(d) for d in datas]
        jobs = [(d, {k: v for k, v in expected[n].items() if k not in ("notes", "source")})
                for n, d in zip(names, datas)]
        _warm(pool, jobs, args.workers)
        figures = _report("real samples (../shared/samples), scans by QR only (OCR: last section)",
                          groups, jobs, pool, args.rounds)
        pdfs = [d for d, g in zip(datas, groups) if g == "pdf"]
        _speed_compare("real sample PDFs", pdfs, pool, args.workers, args.rounds)
        images = [t for g in figures["per_file"] if g in IMAGE_FORMATS for t in figures["per_file"][g]]
        if images:
            print(f"-- real QR-only images: {1000 * sum(images) / len(images):.1f} ms each (target < 50 ms)")

        # 2. 1,000 generated text PDFs.
        t0 = time.perf_counter()
        text_styles = {s: 1 for s in PDF_TEXT_STYLES}
        corpus = make_corpus(args.seed, args.count, today, text_styles, workers=args.workers)
        print(f"\n(generated {len(corpus)} PDFs in {time.perf_counter() - t0:.1f} s)")
        groups = [g.style for g in corpus]
        figures = _report(f"{len(corpus)} generated text PDFs", groups,
                          [(g.data, g.records, g.items) for g in corpus], pool)
        _speed_compare("generated PDFs", [g.data for g in corpus], pool, args.workers)
        rate = figures["n"] / figures["wall"]
        print(f"-- PDF invoices per second on {args.workers} workers (wall clock): {rate:.1f} (target >= 250)")

        # 3. 1,000 mixed generated invoices: accuracy and per-style rates.
        t0 = time.perf_counter()
        corpus = make_corpus(args.seed + 1, args.count, today, workers=args.workers)
        print(f"\n(generated {len(corpus)} mixed invoices in {time.perf_counter() - t0:.1f} s)")
        groups = [g.style + ("" if g.ext == "pdf" else f" (.{g.ext})") for g in corpus]
        figures = _report(f"{len(corpus)} mixed generated invoices", groups,
                          [(g.data, g.records) for g in corpus], pool)
        images = [t for g, ts in figures["per_file"].items()
                  if g.startswith("scan-") and "(." in g for t in ts]
        if images:
            print(f"-- generated QR-only images (200-300 dpi scans): {1000 * sum(images) / len(images):.1f} ms each "
                  f"(target < 50 ms)")

        # 4. The render fallback.
        _render_section(args, today)

        # 5. OCR of scans.
        if args.ocr_count:
            _ocr_section(args, today)
        _photo_section(args, today)
    return 0


if __name__ == "__main__":
    sys.exit(main())
