"""The delivered file's extension comes from what its bytes are: a sender's
name never puts `.exe` or `.html` into the finance import folder, where an
importer that reads *.pdf / *.ofd / *.xml would never see the invoice."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.deliver.base import Parcel, extension_of
from agent.deliver.folder import FolderDestination


def parcel(filename: str, media_type: str, path: Path = Path("/nonexistent"), sha256: str = "0" * 64) -> Parcel:
    return Parcel(key="011001900411-12345678", number="12345678", filename=filename, media_type=media_type,
                  sha256=sha256, fields={}, path=path)


@pytest.mark.parametrize("name, media, ext", [
    ("scan.exe", "pdf", "pdf"), ("inv.html", "xml", "xml"), ("inv\x1b[1m\u202exml.exe", "xml", "xml"),
    ("photo.jpeg", "jpeg", "jpeg"), ("photo.JPG", "jpeg", "jpg"), ("photo.png", "jpeg", "jpg"),
    ("a.ofd", "ofd", "ofd"), ("noext", "pdf", "pdf"), ("x.pdf", "application/pdf", "pdf"),
    ("odd.dat", "unknown", "dat"), ("odd", "unknown", "bin"),
])
def test_the_extension_is_the_formats(name, media, ext):
    assert extension_of(parcel(name, media)) == ext


def test_a_pdf_sent_as_exe_lands_as_pdf_and_is_found_again(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    src = tmp_path / "src"
    src.write_bytes(b"%PDF-1.4\n%%EOF\n")
    dest = FolderDestination("erp", out)
    import hashlib

    p = parcel("scan.exe", "pdf", src, hashlib.sha256(src.read_bytes()).hexdigest())
    dest.put(p)
    assert sorted(f.name for f in out.iterdir()) == ["12345678.json", "12345678.pdf"]
    assert dest.lookup(p.key) is not None
