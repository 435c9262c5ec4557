"""OCR of scans whose QR reads: the bands the QR leaves open vs the whole page
vs a bare RapidOCR call, and what a worker's memory does.

Prints, on --count generated scans (jpg, png and image-only PDF in turn, the
seeds of tests/integration/test_ocr_scans.py):
- seconds per page (wall and CPU: other processes on the machine slow the
  wall clock, not the CPU seconds), median over the pages, each page read three ways back
  to back in one process on --threads threads (the daemon's one OCR slot on
  2 cores gets 2), the order turned page by page so all three see the
  same load:
    read_page     what the daemon does now: the bands, or the whole page
                  when they fall short (counted: "pages read whole");
    whole page    the whole-page pass alone (upright, every line, second looks);
    bare RapidOCR RapidOCR() with its defaults on the decoded page;
  and read_page's ratio to each (target: <= 1.2 s a page on 2 cores);
- a worker's peak RSS reading --memory-count pages by read_page, and by
  the whole page (each in a fresh process; target <= 400 MB), and its RSS
  after;
- a pool worker's RSS after one OCR page, and its successor's after it sat
  idle [extract] ocr_idle_unload_s (1 s here).
Usage: .venv/bin/python bench/ocr.py [--count 12] [--memory-count 3] [--threads 2] [--memory-only]
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from PIL import Image  # noqa: E402

from tests.corpus.generate import make_invoice  # noqa: E402

TODAY = dt.date(2026, 11, 29)
STYLES = ("scan-jpg", "scan-png", "scan-pdf")


def _scans(count: int) -> list:
    return [make_invoice(random.Random(1000 + i), STYLES[i % 3], TODAY) for i in range(count)]


def _page(g) -> Image.Image:
    if g.ext != "pdf":
        img = Image.open(io.BytesIO(g.data))
        img.load()
        return img
    import pypdfium2

    from agent.extract.pdf_images import decode_pdf_image, image_candidates

    page = pypdfium2.PdfDocument(g.data)[0]
    image, width, height = max(image_candidates(page), key=lambda c: c[1] * c[2])
    return decode_pdf_image(image, width, height)


def _resident_mb(pid: str | int = "self") -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS"))


def _times(args) -> None:
    import numpy
    from rapidocr_onnxruntime import RapidOCR

    from agent.extract import ocr, ocr_engine
    from agent.extract.ocr_layout import upright

    ocr_engine.set_threads(args.threads)
    ocr_engine.load_engine()
    bare = RapidOCR(intra_op_num_threads=args.threads)
    pages = [_page(g) for g in _scans(args.count)]

    def ours(img):
        return ocr.read_page(img).path

    def whole(img):
        ocr.read_whole_page(upright(img))

    def rapid(img):
        bare(numpy.asarray(img.convert("RGB"))[:, :, ::-1].copy())

    load = os.getloadavg()[0]
    ways = {"read_page": ours, "whole page": whole, "bare RapidOCR": rapid}
    for fn in ways.values():  # warm each once, outside the figures
        fn(pages[0])
    spent: dict[str, list[float]] = {name: [] for name in ways}
    cpu: dict[str, list[float]] = {name: [] for name in ways}
    paths = []
    for i, img in enumerate(pages):
        order = list(ways)[i % 3:] + list(ways)[:i % 3]
        for name in order:
            start, start_cpu = time.perf_counter(), time.process_time()
            result = ways[name](img)
            spent[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
            if name == "read_page":
                paths.append(result)
    median = {name: statistics.median(v) for name, v in spent.items()}
    print(f"seconds a page, median of {len(pages)} scans with a read QR, {args.threads} threads "
          f"load average {load:.1f} before, {os.getloadavg()[0]:.1f} after):")
    for name, value in median.items():
        print(f"  {name:14s} {value:5.2f} s wall (min {min(spent[name]):.2f}, max {max(spent[name]):.2f}), "
              f"{statistics.median(cpu[name]):5.2f} s CPU")
    print(f"  read_page / whole page   {median['read_page'] / median['whole page']:.2f}x")
    print(f"  read_page / bare RapidOCR {median['read_page'] / median['bare RapidOCR']:.2f}x   (target: <= 1.2 s a page)")
    print(f"  pages read by their bands {paths.count('regions')}, read whole {paths.count('page')}")


def _peak(mode: str, files: list, threads: int, out) -> None:
    # The scans are made by the parent: drawing them peaks far above OCR.
    from agent.extract import ocr, ocr_engine
    from agent.extract.ocr_layout import upright

    ocr_engine.set_threads(threads)
    for g in files:
        img = _page(g)
        if mode == "read_page":
            ocr.read_page(img)
        else:  # what read_page did before the bands
            ocr.read_whole_page(upright(img))
            ocr_engine.give_back_memory()
    # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across execve, so a
    # spawned child would report this (two-engine) parent's peak.
    with open("/proc/self/status") as f:
        peak = next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM"))
    out.send((peak, _resident_mb()))


def _memory(args) -> None:
    ctx = multiprocessing.get_context("spawn")
    files = _scans(args.memory_count)
    for mode in ("read_page", "whole page"):
        here, there = ctx.Pipe()
        proc = ctx.Process(target=_peak, args=(mode, files, args.threads, there))
        proc.start()
        peak, after = here.recv()
        proc.join()
        print(f"  {mode:10s}: worker peak RSS {peak:.0f} MB over {len(files)} pages, {after:.0f} MB resident after")


def _idle(args) -> None:
    from agent.vault import Vault
    from service.workers import ExtractionPool

    with tempfile.TemporaryDirectory() as tmp:
        vault = Vault(Path(tmp) / "vault")
        sha = vault.put_bytes(_scans(2)[1].data).sha256
        pool = ExtractionPool(str(vault.root), workers=1, timeout_s=300, ocr_idle_unload_s=1.0)
        try:
            (pid,) = pool.worker_pids()
            before = _resident_mb(pid)
            pool.submit(1, sha)
            while not pool.collect(0.2):
                pass
            loaded = _resident_mb(pid)
            deadline = time.monotonic() + 60
            while pool.worker_pids() == [pid] and time.monotonic() < deadline:
                pool.collect(0.2)
                time.sleep(0.2)
            (fresh,) = pool.worker_pids()
            time.sleep(0.5)
            print(f"  pool worker: {before:.0f} MB before, {loaded:.0f} MB after one OCR page, "
                  f"{_resident_mb(fresh):.0f} MB once idle 1 s (replaced: {fresh != pid})")
        finally:
            pool.shutdown(1)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--count", type=int, default=12, help="generated scans")
    p.add_argument("--memory-count", type=int, default=3, help="scans read in each fresh process for peak RSS")
    p.add_argument("--threads", type=int, default=2, help="onnxruntime threads, as one OCR slot on 2 cores")
    p.add_argument("--memory-only", action="store_true", help="skip the timings")
    args = p.parse_args()
    if not args.memory_only:
        _times(args)
    print("memory:")
    _memory(args)
    _idle(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
