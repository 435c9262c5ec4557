"""An OFD document's resources, as far as covering text goes: its pictures
and its drawing parameters.

`ofd_drawn` takes an ImageObject drawn over text to hide it only when its
picture has no transparent pixel, as pdf_covers does for a PDF image: an
invoice's seal (发票专用章) is stamped over the seller's name as a picture
with transparency, and the name under it is print. `ofd_faint` asks how
dark a picture drawn under white text is there (`ink_under`), as
pdf_drawn's ImageSampler does: white shows on a dark band, not on paper. A PathObject's fill
colour may be its own FillColor or its DrawParam's (GB/T 33190 CT_DrawParam,
which may take what it does not say from the DrawParam its Relative names):
a white rectangle whose colour comes from a DrawParam covers as one with
its own. The resources are those Document.xml's CommonData names
(DocumentRes, PublicRes): each MultiMedia's MediaFile, under the resource
part's BaseLoc, and each DrawParam.
"""

from __future__ import annotations

import io
import math
import posixpath
import warnings
from typing import Protocol
from xml.etree.ElementTree import Element

from agent.errors import ExtractError
from agent.extract.xml_parse import local_name, parse_xml

MAX_IMAGE_BYTES = 2 * 1024 * 1024
MAX_PIXELS = 16_000_000     # a seal or a QR is well under 1 M; a bigger one is not decoded to be judged


class _Package(Protocol):
    def read(self, name: str) -> bytes: ...
    def resolve(self, base_dir: str, loc: str | None) -> str | None: ...


# Relative links followed from one DrawParam at most: real documents chain
# one or two; a loop or a crafted chain ends here (the fill then unknown).
MAX_RELATIVE = 8


class Resources:
    """The image resources of one document, each judged once, on demand,
    and its drawing parameters."""

    def __init__(self, pkg: _Package, doc: Element | None, doc_dir: str):
        self._pkg, self._doc, self._doc_dir = pkg, doc, doc_dir
        self._files: dict[str, str] | None = None
        self._params: dict[str, Element] = {}
        self._opaque: dict[str, bool] = {}
        self._gray: dict[str, object] = {}

    def fill_color(self, param_id: str) -> Element | None:
        """The FillColor element DrawParam `param_id` gives (its own, else
        the one its Relative chain gives), or None: no such DrawParam, none
        in the chain says, or the chain is longer than MAX_RELATIVE."""
        self._members()
        param = self._params.get(param_id.strip())
        for _ in range(MAX_RELATIVE):
            if param is None:
                return None
            fill = next((c for c in param if local_name(c.tag) == "FillColor"), None)
            if fill is not None:
                return fill
            param = self._params.get((param.get("Relative") or "").strip())
        return None

    def opaque(self, resource_id: str) -> bool:
        """Whether image resource `resource_id` decodes to a picture with
        no pixel short of opaque: False when it does not (a transparent
        colour, an alpha under 255), when it cannot be decoded here
        (JBIG2, too big, broken) or when no resource has that ID."""
        if resource_id not in self._opaque:
            name = self._members().get(resource_id)
            self._opaque[resource_id] = name is not None and _opaque_picture(self._pkg.read(name))
        return self._opaque[resource_id]

    def ink_under(self, resource_id: str, region: tuple[float, float, float, float]) -> float:
        """How dark image resource `resource_id` is over `region` of its
        unit square (x0, y0, x1, y1, y down, as OFD places a picture): the
        ink on white (0-255) of its lighter pixels there (the 90th
        percentile of lightness, transparent pixels as the white paper),
        for white shows only where the picture is dark throughout. 255
        (dark: the text taken as shown) when it cannot be decoded here."""
        if resource_id not in self._gray:
            name = self._members().get(resource_id)
            self._gray[resource_id] = _gray_picture(self._pkg.read(name)) if name is not None else None
        gray = self._gray[resource_id]
        if gray is None:
            return 255.0
        width, height = gray.size  # type: ignore[attr-defined]
        x0, y0 = max(int(region[0] * width), 0), max(int(region[1] * height), 0)
        x1 = min(max(int(math.ceil(region[2] * width)), x0 + 1), width)
        y1 = min(max(int(math.ceil(region[3] * height)), y0 + 1), height)
        if x1 <= x0 or y1 <= y0:
            return 255.0
        histogram = gray.crop((x0, y0, x1, y1)).histogram()  # type: ignore[attr-defined]
        darker, tenth = 0, sum(histogram) * 0.9
        for lightness, count in enumerate(histogram):
            darker += count
            if darker >= tenth:
                return 255.0 - lightness
        return 0.0

    def _members(self) -> dict[str, str]:
        if self._files is None:
            self._files = {}
            common = (next((c for c in self._doc if local_name(c.tag) == "CommonData"), None)
                      if self._doc is not None else None)
            for ref in (c for c in (common if common is not None else []) if
                        local_name(c.tag) in ("DocumentRes", "PublicRes")):
                name = self._pkg.resolve(self._doc_dir, "".join(ref.itertext()))
                if name is not None:
                    self._read_res(name)
        return self._files

    def _read_res(self, name: str) -> None:
        try:
            root = parse_xml(self._pkg.read(name))
        except ExtractError:
            return  # a resource part that does not read: its images cover nothing
        base = posixpath.join(posixpath.dirname(name), (root.get("BaseLoc") or "").strip())
        for param in (el for el in root.iter() if local_name(el.tag) == "DrawParam" and el.get("ID")):
            self._params.setdefault(param.get("ID").strip(), param)  # type: ignore[union-attr]
        for media in (el for el in root.iter() if local_name(el.tag) == "MultiMedia" and el.get("ID")):
            loc = next(("".join(c.itertext()).strip() for c in media if local_name(c.tag) == "MediaFile"), None)
            member = self._pkg.resolve(base, loc) or self._pkg.resolve(posixpath.dirname(name), loc)
            if member is not None:
                self._files.setdefault(media.get("ID").strip(), member)  # type: ignore[union-attr]


def _gray_picture(data: bytes):
    """The picture as 8-bit lightness, laid on white paper; None when it
    is too big or cannot be decoded (how dark it is is not known)."""
    def on_paper(image):
        from PIL import Image

        rgba = image.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(paper, rgba).convert("L")

    return _judged(data, on_paper, None)


def _opaque_picture(data: bytes) -> bool:
    # A picture Pillow cannot read, or too big, is judged to cover nothing.
    def opaque(image) -> bool:
        if "transparency" in image.info or image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
            return image.convert("RGBA").getchannel("A").getextrema()[0] == 255
        image.load()
        return True

    return _judged(data, opaque, False)


def _judged(data: bytes, judge, unknown):
    # The one way a picture is opened here: within MAX_IMAGE_BYTES and
    # MAX_PIXELS, Pillow's warnings silenced; `judge(image)`, or `unknown`
    # when it is too big or Pillow cannot read it.
    if len(data) > MAX_IMAGE_BYTES:
        return unknown
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:
                if image.width * image.height > MAX_PIXELS:
                    return unknown
                return judge(image)
    except Exception:  # noqa: BLE001 - whatever Pillow raises on a hostile picture
        return unknown
