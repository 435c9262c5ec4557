"""An OFD document's resources, as far as covering text goes: its pictures
and its drawing parameters.

`ofd_drawn` takes an ImageObject drawn over text to hide it only when its
picture has no transparent pixel, as pdf_covers does for a PDF image: an
invoice's seal (发票专用章) is stamped over the seller's name as a picture
with transparency, and the name under it is print. A PathObject's fill
colour may be its own FillColor or its DrawParam's (GB/T 33190 CT_DrawParam,
which may take what it does not say from the DrawParam its Relative names):
a white rectangle whose colour comes from a DrawParam covers as one with
its own. The resources are those Document.xml's CommonData names
(DocumentRes, PublicRes): each MultiMedia's MediaFile, under the resource
part's BaseLoc, and each DrawParam.
"""

from __future__ import annotations

import io
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


def _opaque_picture(data: bytes) -> bool:
    if len(data) > MAX_IMAGE_BYTES:
        return False
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:
                if image.width * image.height > MAX_PIXELS:
                    return False
                if "transparency" in image.info or image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
                    alpha = image.convert("RGBA").getchannel("A")
                    return alpha.getextrema()[0] == 255
                image.load()
                return True
    except Exception:  # noqa: BLE001 - a picture Pillow cannot read is judged to cover nothing
        return False
