"""Where a PDF page object lies on the page: boxes, matrices and clips.

PDFium gives a page object's box and clip path in the space of its parent
(the page, or the form it is drawn in); the matrices of the forms above it
place that space on the page. These helpers do that arithmetic for
pdf_shown (the walk of a page's objects) and pdf_painted (what its text
objects paint), with plain-address calls: a page has ~200 objects.
"""

from __future__ import annotations

import ctypes
import functools

Box = tuple[float, float, float, float]  # left, bottom, right, top: PDF points, y up
Matrix = tuple[float, float, float, float, float, float]  # a, b, c, d, e, f as in PDF
IDENTITY: Matrix = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)
# The clip an object is drawn under, on the page: the box that bounds it,
# and whether the clip is exactly that box (every clip path an upright
# rectangle) rather than some shape inside it.
Clip = tuple[Box, bool]
MOVETO, LINETO = 2, 0  # FPDF_SEGMENT_* types (is_rectangle's points; ofd_drawn writes them too)


def plain(func, restype, *argtypes):
    """`func` (a pypdfium2.raw function) taking plain addresses: pypdfium2's
    declared argument types cost much of a call in conversions. Same
    function, same results."""
    return ctypes.CFUNCTYPE(restype, *argtypes)(ctypes.cast(func, ctypes.c_void_p).value)


def concat(inner: Matrix, outer: Matrix) -> Matrix:
    """The matrix of `inner` then `outer` (a form's object placed by the
    form's matrix into its parent)."""
    a, b, c, d, e, f = inner
    oa, ob, oc, od, oe, of = outer
    return (a * oa + b * oc, a * ob + b * od, c * oa + d * oc, c * ob + d * od,
            e * oa + f * oc + oe, e * ob + f * od + of)


def upright(matrix: Matrix) -> bool:
    """Whether `matrix` maps an upright box onto an upright box (no turn
    but by quarter turns, no shear): then the box it maps is the shape."""
    a, b, c, d = matrix[:4]
    return (b == 0 and c == 0) or (a == 0 and d == 0)


def map_box(box: Box, matrix: Matrix) -> Box:
    """The upright box bounding `box` once mapped by `matrix`."""
    left, bottom, right, top = box
    a, b, c, d, e, f = matrix
    if matrix == IDENTITY:
        return box
    corners = ((left, bottom), (left, top), (right, bottom), (right, top))
    xs = [a * x + c * y + e for x, y in corners]
    ys = [b * x + d * y + f for x, y in corners]
    return min(xs), min(ys), max(xs), max(ys)


def meet(first: Box, second: Box) -> Box:
    """The intersection of two boxes; an empty one has no area (right <=
    left or top <= bottom)."""
    return (max(first[0], second[0]), max(first[1], second[1]),
            min(first[2], second[2]), min(first[3], second[3]))


def area(box: Box) -> float:
    """The box's area; 0 for an empty box."""
    return max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0)


def contains(outer: Box, inner: Box) -> bool:
    """Whether `inner` lies wholly inside `outer`."""
    return outer[0] <= inner[0] and outer[1] <= inner[1] and inner[2] <= outer[2] and inner[3] <= outer[3]


def share_inside(box: Box, clip: Box) -> float:
    """The share of `box`'s area inside `clip`; for a box with no area,
    1.0 when its centre is inside, else 0.0."""
    whole = area(box)
    if whole > 0:
        return area(meet(box, clip)) / whole
    x, y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return 1.0 if clip[0] <= x <= clip[2] and clip[1] <= y <= clip[3] else 0.0


def meet_clips(first: Clip | None, second: Clip | None) -> Clip | None:
    """Two clips in force together (a form's and an object's in it)."""
    if first is None or second is None:
        return first if second is None else second
    return meet(first[0], second[0]), first[1] and second[1]


def object_box(obj: int, matrix: Matrix, sides: ctypes.Array | None = None) -> Box | None:
    """The box of page object `obj` (an address) on the page, its parent's
    space mapped by `matrix`; None when PDFium gives none. `sides`, four
    c_floats, is room for PDFium's answer when the caller has it (a loop
    over every text object need not allocate each time)."""
    sides = (ctypes.c_float * 4)() if sides is None else sides
    at = ctypes.addressof(sides)
    if not _box_calls()[0](obj, at, at + 4, at + 8, at + 12):
        return None
    return map_box((sides[0], sides[1], sides[2], sides[3]), matrix)


def object_clip(obj: int, matrix: Matrix) -> Clip | None:
    """The clip path page object `obj` is drawn under, mapped by `matrix`
    (its parent's space on the page); None when it has none. Its own only:
    PDFium gives a form the clip it is drawn under, its objects theirs
    inside it (`meet_clips` joins the two). The box is the intersection of
    the clip's paths' boxes, each of all its points (curves' control points
    too, so never smaller than the path); exact when each path is an
    upright rectangle and `matrix` keeps it one."""
    clip_of, paths_of, segments_of, segment_at, point_of, type_of = _clip_calls()
    clip = clip_of(obj)
    if not clip:
        return None
    paths = paths_of(clip)
    if paths <= 0:
        return None
    x, y = ctypes.c_float(), ctypes.c_float()
    px, py = ctypes.addressof(x), ctypes.addressof(y)
    box: Box | None = None
    exact = upright(matrix)
    for p in range(paths):
        points = []
        for s in range(max(segments_of(clip, p), 0)):
            segment = segment_at(clip, p, s)
            if segment and point_of(segment, px, py):
                points.append((x.value, y.value, type_of(segment)))
        if not points:
            continue  # no point, no shape: PDFium clips nothing by it
        xs, ys = [pt[0] for pt in points], [pt[1] for pt in points]
        path_box = map_box((min(xs), min(ys), max(xs), max(ys)), matrix)
        box = path_box if box is None else meet(box, path_box)
        exact = exact and is_rectangle(points)
    return None if box is None else (box, exact)


def box_call():
    """FPDFPageObj_GetBounds taking plain addresses (the object, then its
    four c_float sides' addresses), for loops over every object."""
    return _box_calls()[0]


def clip_calls() -> tuple:
    """FPDFPageObj_GetClipPath and FPDFClipPath_CountPaths taking plain
    addresses: an object has a clip when the count of the first's answer
    is over 0 (PDFium gives every object a clip holder; -1 when empty)."""
    return _clip_calls()[:2]


def path_points(obj: int) -> list[tuple[float, float, int]]:
    """The points of path object `obj` (x, y, FPDF_SEGMENT type), in its own
    space (its matrix places them in its parent's)."""
    count, segment_at, point_of, type_of = _path_calls()
    x, y = ctypes.c_float(), ctypes.c_float()
    px, py = ctypes.addressof(x), ctypes.addressof(y)
    points = []
    for s in range(max(count(obj), 0)):
        segment = segment_at(obj, s)
        if segment and point_of(segment, px, py):
            points.append((x.value, y.value, type_of(segment)))
    return points


def is_rectangle(points: list[tuple[float, float, int]]) -> bool:
    """Whether a path's points (x, y, FPDF_SEGMENT type) trace one upright
    rectangle: a move then lines only, four or five points, each step
    along one side, the fifth (if any) back at the first (what the `re`
    operator draws)."""
    if not 4 <= len(points) <= 5 or points[0][2] != MOVETO or any(t != LINETO for _, _, t in points[1:]):
        return False
    if len(points) == 5 and (abs(points[4][0] - points[0][0]) > 1e-3 or abs(points[4][1] - points[0][1]) > 1e-3):
        return False
    (x0, y0, _), (x1, y1, _), (x2, y2, _), (x3, y3, _) = points[:4]
    # Sides along x then y then x then y, or y then x then y then x.
    along_x_first = abs(y0 - y1) <= 1e-3 and abs(x1 - x2) <= 1e-3 and abs(y2 - y3) <= 1e-3 and abs(x3 - x0) <= 1e-3
    along_y_first = abs(x0 - x1) <= 1e-3 and abs(y1 - y2) <= 1e-3 and abs(x2 - x3) <= 1e-3 and abs(y3 - y0) <= 1e-3
    return along_x_first or along_y_first


@functools.cache
def _box_calls() -> tuple:
    import pypdfium2.raw as pdfium_c

    p = ctypes.c_void_p
    return (plain(pdfium_c.FPDFPageObj_GetBounds, ctypes.c_int, p, p, p, p, p),)


@functools.cache
def _clip_calls() -> tuple:
    import pypdfium2.raw as pdfium_c

    p, i = ctypes.c_void_p, ctypes.c_int
    return (plain(pdfium_c.FPDFPageObj_GetClipPath, p, p), plain(pdfium_c.FPDFClipPath_CountPaths, i, p),
            plain(pdfium_c.FPDFClipPath_CountPathSegments, i, p, i),
            plain(pdfium_c.FPDFClipPath_GetPathSegment, p, p, i, i),
            plain(pdfium_c.FPDFPathSegment_GetPoint, i, p, p, p), plain(pdfium_c.FPDFPathSegment_GetType, i, p))


@functools.cache
def _path_calls() -> tuple:
    import pypdfium2.raw as pdfium_c

    p, i = ctypes.c_void_p, ctypes.c_int
    return (plain(pdfium_c.FPDFPath_CountSegments, i, p), plain(pdfium_c.FPDFPath_GetPathSegment, p, p, i),
            plain(pdfium_c.FPDFPathSegment_GetPoint, i, p, p, p), plain(pdfium_c.FPDFPathSegment_GetType, i, p))
