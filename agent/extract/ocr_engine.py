"""The OCR engine: RapidOCR (PaddleOCR's PP-OCRv4 models on onnxruntime,
shipped inside its wheel, no download at run time), loaded on first use,
and the three ways `ocr.py` calls it: a whole page, a mosaic of cut-out
regions, and single lines.

It is an optional extra (`pip install 'fapiao-agent[ocr]'`): this is the
only module that imports it, and without it scans are read through their
QR code alone.

Memory: a process that has loaded the engine keeps ~150 MB more resident
after a page, ~20 MB of it the engine's sessions and the rest onnxruntime's
and OpenCV's code and heap, which only leave with the process: the daemon
replaces a worker idle `[extract] ocr_idle_unload_s` with it loaded
(`engine_loaded`, `service/workers.py`).
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
from typing import Any, Callable, Sequence

from PIL import Image

from agent.extract.ocr_layout import EngineLine, TextBox, page_boxes

# Text on an invoice scan stays legible well below 300 dpi: at 1280 px on
# the long side (~130 dpi) 99.3 % of generated scans' printed fields still
# read, and a page costs ~30 % less time and ~100 MB less peak memory than
# at 1600 (a full 2646x1764 page peaks near 800 MB).
MAX_SIDE = 1280

_engine: Any = None
_engine_error: str | None = None
_engine_lock = threading.Lock()
_threads = 0  # 0: onnxruntime's default, every core


def set_threads(threads: int) -> None:
    """Use `threads` CPU threads per page (0: every core), from the next
    engine load on. Pool workers use 1: two workers each running on every
    core read 0.53 pages/s, on one core each 0.84."""
    global _threads
    _threads = threads


def engine_installed() -> bool:
    """True when the OCR extra's package is installed; cheap (nothing is
    imported or loaded), for status lines. `unavailable_reason` is the
    real test."""
    import importlib.util

    try:
        return importlib.util.find_spec("rapidocr_onnxruntime") is not None
    except ValueError:  # imported already, without a spec
        return True


def unavailable_reason() -> str | None:
    """None when OCR can run here, else why not (one line, with the fix).
    Loads the engine on first call (~0.3 s); later calls are free."""
    load_engine()
    return _engine_error


def engine_loaded() -> bool:
    """True while the engine's models are in this process's memory."""
    return _engine is not None


def load_engine() -> Any:
    """The engine, loaded on first call; None
    when it cannot load (`unavailable_reason` says why, and a failure is
    remembered: a broken install is not retried on every page)."""
    global _engine, _engine_error
    with _engine_lock:
        if _engine is None and _engine_error is None:
            try:
                from rapidocr_onnxruntime import RapidOCR
            except ImportError as e:
                hint = ("apt-get install libgl1 libglib2.0-0" if "lib" in str(e) and ".so" in str(e)
                        else "pip install 'fapiao-agent[ocr]'")
                _engine_error = f"the OCR engine is not installed ({e}); {hint}"
            else:
                try:
                    # Text on invoices is upright once the QR says which way is
                    # up; the angle classifier only costs time.
                    _engine = RapidOCR(use_cls=False, **({"intra_op_num_threads": _threads} if _threads else {}))
                except Exception as e:  # noqa: BLE001 - a broken model or runtime: say so, read QR only
                    _engine_error = f"the OCR engine failed to load ({type(e).__name__}: {e})"
        return _engine


def give_back_memory() -> None:
    """Hand memory malloc keeps after a big page back to the system (glibc;
    elsewhere nothing happens). Never raises.

    A page's working memory (an OCR pass ~300 MB, a scan's or a render's
    pixels several MB) is freed but kept by malloc; a pool worker would hold
    it between pages and files. Trimming hands it back (470 -> 177 MB
    resident after an OCR page) and costs ~1 ms."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the memory stays with the process
        pass


def _ready() -> Any:
    engine = load_engine()
    if engine is None:
        raise RuntimeError(_engine_error)
    return engine


def _bgr(img: Image.Image):
    import numpy

    return numpy.asarray(img.convert("RGB"))[:, :, ::-1].copy()  # the engine wants BGR, as OpenCV reads files


def _lines(found) -> list[EngineLine]:
    return [EngineLine(corners, text, *chars[:3]) for corners, text, _score, *chars in found or ()]


def read_boxes(img: Image.Image) -> list[TextBox]:
    """Every line of text OCR finds in `img`, as boxes on the page turned
    straight, in pixels of the (possibly downscaled) image. Raises
    RuntimeError when OCR is unavailable (see `unavailable_reason`)."""
    engine = _ready()
    rgb = img.convert("RGB")
    scale = min(1.0, MAX_SIDE / max(rgb.size))
    if scale < 1:
        rgb = rgb.resize((round(rgb.width * scale), round(rgb.height * scale)), Image.Resampling.LANCZOS)
    found, _ = engine(_bgr(rgb), return_word_box=True)
    return page_boxes(rgb.convert("L"), _lines(found), scale)


def read_mosaic(mosaic: Image.Image, keep: Callable[[Sequence[Sequence[float]]], bool]) -> list[TextBox]:
    """The lines OCR finds in `mosaic` (regions cut out of a page and
    stacked, already at reading scale) whose corners `keep` accepts, as
    boxes in the mosaic's pixels. Only the kept lines are recognised.
    Raises RuntimeError when OCR is unavailable."""
    engine = _ready()
    bgr = _bgr(mosaic)
    with _detector_at_scale(engine, max(mosaic.size)):
        found, _ = engine.text_det(bgr)
    if found is None or len(found) == 0:
        return []
    corners = [c for c in engine.sorted_boxes(found) if keep(c.tolist())]
    if not corners:
        return []
    crops = engine.get_crop_img_list(bgr, corners)
    with _one_line_a_batch(engine):
        recognised, _ = engine.text_rec(crops, True)
    recognised = engine.cal_rec_boxes(crops, corners, recognised)
    found = [[c.tolist(), r[0], r[1], *r[2:5]] for c, r in zip(corners, recognised) if r[1] >= engine.text_score]
    return page_boxes(mosaic.convert("L"), _lines(found))


@contextlib.contextmanager
def _detector_at_scale(engine: Any, side: int):
    # The detector scales every image up until its short side is 736 px: a
    # strip of regions 250 px high would be read at three times the size
    # (and time) it is printed at. At "max" with its own long side, the
    # detector reads it as it is (a whole page, whose short side is over
    # 736 px at reading scale, is read as it is too).
    det = engine.text_det
    saved = det.limit_type, det.limit_side_len
    det.limit_type, det.limit_side_len = "max", max(side, 32)
    try:
        yield
    finally:
        det.limit_type, det.limit_side_len = saved


@contextlib.contextmanager
def _one_line_a_batch(engine: Any):
    # A batch is padded to its widest line, and the recogniser's cost grows
    # faster than its width: the ~15 lines of a mosaic read one at a time
    # take about half the time they take six at a time.
    rec = engine.text_rec
    saved = rec.rec_batch_num
    rec.rec_batch_num = 1
    try:
        yield
    finally:
        rec.rec_batch_num = saved


def recognise_lines(strips: list[Image.Image]) -> list[str]:
    """The text of each image in `strips`, each read as one line by the
    recogniser alone (no detection; ~0.1 s a strip): "" where it reads
    nothing it trusts. Raises RuntimeError when OCR is unavailable."""
    engine = _ready()
    if not strips:
        return []
    found, _ = engine.text_rec([_bgr(s) for s in strips])
    return [text if score >= engine.text_score else "" for text, score in found]
