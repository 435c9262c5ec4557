"""A PDF page's images: found (inside forms too), ordered most QR-like
first, and decoded to PIL images straight from their streams.

Apart from `pdf` (which reads invoices from pages) because this is PDF image
plumbing on pypdf objects: XObject walks, colour spaces, filters and a fast
ASCII85+Flate path, with bounds against bombs. It reads no QR and no text.
"""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import pypdf
from PIL import Image
from pypdf.generic import DictionaryObject, StreamObject

# Smallest image that can hold a version-1 QR code at one pixel per module.
_MIN_QR_SIDE = 21
_MAX_FORM_DEPTH = 4


def image_candidates(page: pypdf.PageObject) -> list[tuple[StreamObject, int, int]]:
    """(image XObject, width, height) of the page's images, including those
    inside forms, ordered square and opaque first."""
    found: list[tuple[StreamObject, int, int, bool]] = []
    seen: set[int] = set()

    def walk(holder: DictionaryObject, depth: int) -> None:
        resources = holder.get("/Resources")
        resources = resources.get_object() if resources is not None else None
        if not isinstance(resources, DictionaryObject):
            return
        xobjects = resources.get("/XObject")
        xobjects = xobjects.get_object() if xobjects is not None else None
        if not isinstance(xobjects, DictionaryObject):
            return
        for name in xobjects:
            obj = xobjects[name].get_object()
            if not isinstance(obj, StreamObject) or id(obj) in seen:
                continue
            seen.add(id(obj))
            if obj.get("/Subtype") == "/Image":
                w, h = _int(obj.get("/Width")), _int(obj.get("/Height"))
                if min(w, h) >= _MIN_QR_SIDE:
                    found.append((obj, w, h, "/SMask" in obj or "/Mask" in obj))
            elif obj.get("/Subtype") == "/Form" and depth < _MAX_FORM_DEPTH:
                walk(obj, depth + 1)

    try:
        walk(page, 0)
    except Exception:  # noqa: BLE001 - broken resources: decode what was found
        pass

    def order(item: tuple[StreamObject, int, int, bool]) -> tuple[bool, bool, int]:
        _, w, h, masked = item
        square = 0.8 <= w / h <= 1.25
        return (not square, masked, w * h)

    return [(obj, w, h) for obj, w, h, _ in sorted(found, key=order)]


def last_filter(xobj: StreamObject) -> Any:
    """The stream's last (outermost-decoded) filter name, or None."""
    filters = xobj.get("/Filter")
    filters = filters.get_object() if filters is not None else None
    return filters[-1] if isinstance(filters, list) and filters else filters


def decode_pdf_image(xobj: StreamObject, width: int, height: int,
                     half: bool = False) -> Image.Image | None:
    """The image XObject as a PIL image, grayscale where that is cheap
    (JPEG at half scale when `half`).

    The usual QR encodings (8-bit gray or RGB, 1-bit, indexed, JPEG) are
    built straight from the stream; pypdf's own decoder, which re-encodes
    every image to PNG and reads it back, is the fallback for the rest.
    """
    filters = xobj.get("/Filter")
    filters = filters.get_object() if filters is not None else None
    last = last_filter(xobj)
    if last == "/DCTDecode":
        img = Image.open(io.BytesIO(xobj.get_data()))
        img.draft("L", (img.width // 2, img.height // 2) if half else img.size)
        return img.convert("L")
    if last not in (None, "/FlateDecode", "/ASCII85Decode", "/ASCIIHexDecode"):
        return xobj.decode_as_image()
    bits = _int(xobj.get("/BitsPerComponent", 8))
    space = xobj.get("/ColorSpace")
    space = space.get_object() if space is not None else None
    if xobj.get("/ImageMask"):
        space, bits = "/DeviceGray", 1
    palette = None
    if isinstance(space, list) and len(space) == 4 and space[0] == "/Indexed" \
            and space[1].get_object() == "/DeviceRGB":
        lookup = space[3].get_object()
        palette = (lookup.get_data() if isinstance(lookup, StreamObject)
                   else getattr(lookup, "original_bytes", None))
        if not isinstance(palette, bytes):
            return xobj.decode_as_image()
        space = "/Indexed"
    mode = {("/DeviceGray", 8): "L", ("/DeviceGray", 1): "1", ("/DeviceRGB", 8): "RGB",
            ("/Indexed", 8): "P", ("/Indexed", 1): "P;1"}.get((space, bits))
    if mode is None:
        return xobj.decode_as_image()
    channels = 3 if mode == "RGB" else 1
    row = (width * channels * bits + 7) // 8
    data = _fast_a85_flate(xobj, filters, row * height) or xobj.get_data()
    if len(data) < row * height:
        return xobj.decode_as_image()
    if mode == "P;1":
        img = Image.frombytes("P", (width, height), data, "raw", "P;1")
    else:
        img = Image.frombytes(mode, (width, height), data)
    if palette is not None:
        img.putpalette(palette[:768].ljust(768, b"\0"))
    return img


_A85_DIGITS = bytes((c - 33) % 256 for c in range(256))
_A85_SPACE = b" \t\r\n\x00\x0c"


_A85_DIGITS = bytes((c - 33) % 256 for c in range(256))
_A85_SPACE = b" \t\r\n\x00\x0c"
_A85_SPACE = b" \t\r\n\x00\x0c"


def _fast_a85_flate(xobj: StreamObject, filters: Any, size: int) -> bytes | None:
    """Decoded bytes of an ASCII85+Flate image without predictor, or None to
    let pypdf do it. ReportLab wraps every image in ASCII85, and the standard
    library decoder is pure Python: 20 ms for one QR image."""
    if not (isinstance(filters, list) and list(filters) == ["/ASCII85Decode", "/FlateDecode"]) \
            or xobj.get("/DecodeParms") is not None:
        return None
    encoded = getattr(xobj, "_data", None)  # the raw stream; pypdf has no public name for it
    if not isinstance(encoded, bytes):
        return None
    body = encoded.translate(None, _A85_SPACE)
    if body.startswith(b"<~"):
        body = body[2:]
    end = body.find(b"~>")
    body = (body if end < 0 else body[:end]).replace(b"z", b"!!!!!")
    if any(c < 33 or c > 117 for c in set(body)):
        return None
    pad = -len(body) % 5
    digits = (body + b"u" * pad).translate(_A85_DIGITS)
    try:
        values = [digits[i] * 52200625 + digits[i + 1] * 614125 + digits[i + 2] * 7225
                  + digits[i + 3] * 85 + digits[i + 4] for i in range(0, len(digits), 5)]
        packed = struct.pack(f">{len(values)}I", *values)
    except struct.error:  # a group over 2**32: not valid ASCII85
        return None
    compressed = packed[:len(packed) - pad] if pad else packed
    try:
        # Never inflate past what the image needs: a bomb stops here.
        return zlib.decompressobj().decompress(compressed, size + 1024)
    except zlib.error:
        return None


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
