"""A second try at a QR the whole-page decode missed: find where it is,
cut it out, straighten, sharpen and binarise it, and decode that.

A phone photo of a paper invoice loses its QR to blur, a shadow or the
angle long before the symbol itself is gone: the decoder's own locator
gives up on the page, while the symbol, cut out and cleaned, still reads.
Where it is comes from two searches:
- OpenCV's QR detector (four corners: the crop is warped square);
- our own finder-pattern search: dark squares with a light ring and a dark
  core (the 1:1:3:1:1 squares at three corners), found as nested contours
  of a binarised page. Two or three of similar size, close together, mark
  a symbol even when the detector cannot pair them.
Each region gets a few fixed treatments (Otsu, adaptive threshold, an
unsharp mask), upscaled to ~6 px per module. The work is bounded: at most
`_MAX_REGIONS` regions, `len(_TREATMENTS)` decodes each, on a page
downscaled to `_SEARCH_SIDE`. Needs OpenCV (the OCR extra); without it
this finds nothing.
"""

from __future__ import annotations

import math
import zxingcpp
from PIL import Image

_QR = zxingcpp.BarcodeFormat.QRCode
# The search runs on the page at this size: a QR on an invoice photo is
# 8-12 % of the page's width, ~100-200 px here.
_SEARCH_SIDE = 1600
_MAX_REGIONS = 4
# Marks paired and tripled (cubic in their number): a page shows a few, a
# hostile image of tiled finder patterns thousands; the largest are kept.
_MAX_MARKS = 24
# A cut-out symbol is scaled so its side is this many pixels (~6-8 px per
# module for the version 3-6 symbols invoices carry).
_CROP_SIDE = 320


def relocate_qr(gray: Image.Image) -> list[str]:
    """Texts of the QR codes found by locating a symbol on `gray` (the
    page, mode "L") and decoding it cut out, straightened and cleaned.
    [] when nothing is found or decodes, or OpenCV is not installed.
    Never raises for a loaded image."""
    try:
        import cv2
        import numpy
    except ImportError:
        return []
    scale = min(1.0, _SEARCH_SIDE / max(gray.size))
    page = numpy.asarray(gray)
    small = page if scale == 1.0 else cv2.resize(page, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    for quad in _regions(small, cv2, numpy)[:_MAX_REGIONS]:
        crop = _straighten(page, [(x / scale, y / scale) for x, y in quad], cv2, numpy)
        for treated in _treatments(crop, cv2, numpy):
            found = zxingcpp.read_barcodes(treated, formats=_QR)
            texts = [r.text for r in found if r.text]
            if texts:
                return texts
    return []


def _regions(small, cv2, numpy) -> list[list[tuple[float, float]]]:
    """Quadrilaterals (corners clockwise from top left) that may hold a QR:
    OpenCV's detection first, then groups of finder patterns."""
    out = []
    marks, seen = _finders(small, cv2, numpy)
    # OpenCV's detector pairs every candidate it sees: on a page tiled with
    # finder-like marks (no invoice) it runs for seconds, so it is asked
    # only where a few marks stand out.
    if seen <= 4 * _MAX_MARKS:
        try:
            ok, points = cv2.QRCodeDetector().detect(small)
        except cv2.error:
            ok, points = False, None
        if ok and points is not None:
            out.append([tuple(p) for p in points.reshape(-1, 2)])
    out += _finder_triples(marks)
    out += _finder_groups(marks)
    return out


def _finder_triples(marks: list[tuple[float, float, float]]) -> list[list[tuple[float, float]]]:
    """The symbol's own quadrilateral for each three similar marks at the
    corners of a right angle (top left, top right, bottom left of a QR):
    the fourth corner completes the parallelogram, and each corner is
    pushed out by half a finder so the cut holds the whole symbol."""
    out = []
    for i, a in enumerate(marks):
        for j, b in enumerate(marks):
            for c in marks[j + 1:]:
                if a in (b, c) or not all(0.66 <= m[2] / a[2] <= 1.5 for m in (b, c)):
                    continue
                ab, ac = (b[0] - a[0], b[1] - a[1]), (c[0] - a[0], c[1] - a[1])
                lab, lac = math.hypot(*ab), math.hypot(*ac)
                if not (2 * a[2] <= min(lab, lac) and max(lab, lac) <= 10 * a[2] and lab <= 1.25 * lac <= 1.5625 * lab):
                    continue
                if abs(ab[0] * ac[0] + ab[1] * ac[1]) > 0.25 * lab * lac:  # not a right angle
                    continue
                # Clockwise order from the corner mark: b then c, or c then b.
                if ab[0] * ac[1] - ab[1] * ac[0] < 0:
                    b, c = c, b
                    ab, ac = ac, ab
                d = (b[0] + c[0] - a[0], b[1] + c[1] - a[1])
                reach = a[2] / 2 / (lab / (lab + a[2]))  # half a finder, in the symbol's scale
                centre = ((a[0] + d[0]) / 2, (a[1] + d[1]) / 2)
                grow = (lab / 2 + reach) / (lab / 2)
                out.append([(centre[0] + (p[0] - centre[0]) * grow, centre[1] + (p[1] - centre[1]) * grow)
                            for p in (a[:2], b[:2], d, c[:2])])
                if len(out) >= _MAX_REGIONS:
                    return out
    return out


def _finders(small, cv2, numpy) -> tuple[list[tuple[float, float, float]], int]:
    """(x, y, side) of each finder-pattern-like mark: a roughly square dark
    contour holding a light one holding a dark one, the core about 3/7 of
    the outer side. Returns the largest `_MAX_MARKS` of each threshold's
    (one mark per finder) and how many were seen in all."""
    marks: list[tuple[float, float, float]] = []
    seen = 0
    # A fine and a coarse local threshold: blur closes a finder's light
    # ring under the one and a shadow swallows it under the other.
    for block, offset in ((15, 4), (41, 8)):
        binary = cv2.adaptiveThreshold(small, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV,
                                       block, offset)
        found = _nested_squares(binary, cv2)
        seen += len(found)
        for mark in sorted(found, key=lambda m: -m[2])[:_MAX_MARKS]:
            # The same finder found under both thresholds counts once.
            if all(math.hypot(mark[0] - m[0], mark[1] - m[1]) > m[2] / 2 for m in marks):
                marks.append(mark)
    return sorted(marks, key=lambda m: -m[2])[:_MAX_MARKS], seen


def _nested_squares(binary, cv2) -> list[tuple[float, float, float]]:
    contours, hierarchy = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return []
    tree = hierarchy[0]
    marks = []
    for i, contour in enumerate(contours):
        child = tree[i][2]
        if child < 0 or tree[child][2] < 0:
            continue
        core = tree[child][2]
        outer, inner = cv2.minAreaRect(contour), cv2.minAreaRect(contours[core])
        (w, h), (cw, ch) = outer[1], inner[1]
        if min(w, h) < 7 or max(w, h) > 1.6 * min(w, h) or min(cw, ch) < 2:
            continue
        share = math.sqrt(cw * ch / (w * h))
        if 0.25 <= share <= 0.65:
            marks.append((outer[0][0], outer[0][1], math.sqrt(w * h)))
    return marks


def _finder_groups(marks: list[tuple[float, float, float]]) -> list[list[tuple[float, float]]]:
    """A square region for each pair of similar finder marks that could be
    two corners of one symbol (side 7 modules, the symbol 21-57 modules):
    the pair's bounding square, widened by one finder side each way, and
    the square to either side of the pair when they sit on one edge."""
    seen, out = [], []
    for i, (x1, y1, s1) in enumerate(marks):
        for x2, y2, s2 in marks[i + 1:]:
            if not 0.66 <= s1 / s2 <= 1.5:
                continue
            side = (s1 + s2) / 2
            gap = math.hypot(x2 - x1, y2 - y1)
            if not 2 * side <= gap <= 10 * side:
                continue
            # Two finders of one symbol are on an edge (gap = its side) or
            # on a diagonal (gap = side * sqrt 2); both give a square of
            # the symbol around their middle, possibly on either side.
            span = max(abs(x2 - x1), abs(y2 - y1)) + side
            for cx, cy in _centres(x1, y1, x2, y2):
                key = (round(cx / side), round(cy / side))
                if key in seen:
                    continue
                seen.append(key)
                half = span / 2 + side * 0.6
                out.append([(cx - half, cy - half), (cx + half, cy - half), (cx + half, cy + half),
                            (cx - half, cy + half)])
    return out


def _centres(x1: float, y1: float, x2: float, y2: float) -> list[tuple[float, float]]:
    mx, my = (x1 + x2) / 2, (y1 + y2) / 2
    dx, dy = abs(x2 - x1), abs(y2 - y1)
    if min(dx, dy) > 0.5 * max(dx, dy):  # diagonal: the middle is the symbol's
        return [(mx, my)]
    reach = max(dx, dy) / 2  # finder centres sit half a finder in from the edge
    if dx >= dy:  # a horizontal edge: the symbol is below or above it
        return [(mx, my + reach), (mx, my - reach)]
    return [(mx + reach, my), (mx - reach, my)]


def _straighten(page, quad: list[tuple[float, float]], cv2, numpy):
    """The region `quad` of `page` warped to a `_CROP_SIDE` square with a
    quiet zone of a tenth of it on each side."""
    pad = _CROP_SIDE // 10
    side = _CROP_SIDE + 2 * pad
    # Grow the quad by 8 % about its centre: detectors place corners on
    # the symbol's edge, and a cut must keep the quiet zone.
    cx = sum(p[0] for p in quad) / 4
    cy = sum(p[1] for p in quad) / 4
    grown = [(cx + (x - cx) * 1.08, cy + (y - cy) * 1.08) for x, y in quad]
    src = numpy.array(grown, dtype=numpy.float32)
    dst = numpy.array([(pad, pad), (pad + _CROP_SIDE, pad), (pad + _CROP_SIDE, pad + _CROP_SIDE),
                       (pad, pad + _CROP_SIDE)], dtype=numpy.float32)
    matrix = cv2.getPerspectiveTransform(src, dst)
    return cv2.warpPerspective(page, matrix, (side, side), flags=cv2.INTER_CUBIC,
                               borderMode=cv2.BORDER_REPLICATE)


def _treatments(crop, cv2, numpy):
    """The crop as-is, then cleaned: Otsu after a light blur, an adaptive
    threshold (a shadow across the symbol), an unsharp mask then Otsu."""
    yield crop
    _, otsu = cv2.threshold(cv2.GaussianBlur(crop, (3, 3), 0), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    yield otsu
    yield cv2.adaptiveThreshold(crop, 255, cv2.ADAPTIVE_THRESH_GAUSSIAN_C, cv2.THRESH_BINARY, 41, 8)
    soft = cv2.GaussianBlur(crop, (0, 0), 3)
    sharp = cv2.addWeighted(crop, 2.0, soft, -1.0, 0)
    _, otsu = cv2.threshold(sharp, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    yield otsu
