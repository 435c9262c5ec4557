"""The document that keeps PDFium's substitutes for non-embedded Chinese
fonts loaded (agent/extract/pdf_fonts.py): it names the fonts it says it
names, and holding it open never changes what an invoice reads as."""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys
from pathlib import Path

import pypdfium2
import pypdfium2.raw as pdfium_c

from agent.extract.pdf_fonts import fonts_pdf

REPO = Path(__file__).resolve().parents[2]
# Tax-disk e-invoices: STSong-Light, SimSun and KaiTi_GB2312, none embedded.
LEGACY = ("mxvc__invoice/发票2.pdf", "kudeerliu48-web__fapiaohezi/73c00f18_042002200411_51905150.pdf")


def font_names(pdf: bytes) -> list[tuple[str, str]]:
    doc = pypdfium2.PdfDocument(pdf)
    try:
        text = doc[0].get_textpage()
        out = []
        for i in range(text.count_chars()):
            ch = chr(pdfium_c.FPDFText_GetUnicode(text.raw, i))
            if ch.isspace():
                continue
            name = ctypes.create_string_buffer(128)
            pdfium_c.FPDFText_GetFontInfo(text.raw, i, name, 128, None)
            out.append((ch, name.value.decode()))
        return out
    finally:
        doc.close()


def test_the_held_document_shows_fapiao_in_each_font_none_embedded():
    pdf = fonts_pdf()
    assert b"/FontFile" not in pdf  # substitutes are what it is for
    shown = font_names(pdf)
    assert shown == [(ch, name) for name in ("STSong-Light", "SimSun", "KaiTi_GB2312") for ch in "发票"], shown


# Run in a fresh interpreter: the hold lasts the process, so "without" must
# be a process that never held it.
READ = """
import json, sys
import agent.extract.pdf as pdf
if sys.argv[1] == "off":
    pdf.hold_substitute_fonts = lambda data: False
from agent.pipeline import analyse
out = []
for path in sys.argv[2:]:
    a = analyse(open(path, "rb").read(), ocr=False)
    out.append([a.invoices, a.error_reason])
print(json.dumps(out, sort_keys=True, default=str))
"""


def read_in_process(hold: bool, paths: list[Path]) -> list:
    run = subprocess.run([sys.executable, "-c", READ, "on" if hold else "off", *map(str, paths)], cwd=REPO,
                         capture_output=True, text=True, timeout=120, check=True)
    return json.loads(run.stdout)


def test_holding_the_fonts_changes_nothing_an_invoice_reads_as(samples_dir):
    from agent.extract.pdf_fonts import fonts_pdf, hold_substitute_fonts

    assert hold_substitute_fonts(fonts_pdf())  # it opens here, where PDFium and its fonts are as in a worker
    paths = [samples_dir / p for p in LEGACY] + sorted(samples_dir.rglob("*.pdf"))[:6]
    without, held = read_in_process(False, paths), read_in_process(True, paths)
    assert held == without
    names = [inv["seller_name"] for invoices, _ in held[:2] for inv in invoices]
    assert len(names) == 2 and all(names), held[:2]  # their printed text was read, not failed alike


def test_it_is_held_only_once_a_pdf_naming_several_of_the_fonts_came(samples_dir):
    # Held from the start, its copy of the font added 5 MB to the peak of a
    # worker reading PDFs that name one font, which gain nothing from it.
    from agent.extract.pdf_fonts import names_several

    assert names_several((samples_dir / LEGACY[0]).read_bytes())
    assert not names_several((samples_dir / "mxvc__invoice/发票.pdf").read_bytes())  # STSong-Light alone
    assert not names_several(b"%PDF-1.4 /STSong-Light")
    run = subprocess.run([sys.executable, "-c", HELD_AFTER, str(samples_dir / "mxvc__invoice/发票.pdf"),
                          str(samples_dir / LEGACY[0])], cwd=REPO, capture_output=True, text=True, timeout=120,
                         check=True)
    assert run.stdout.split() == ["False", "True"]


# Whether the fonts are held after reading each PDF given, in order.
HELD_AFTER = """
import sys
import agent.extract.pdf_fonts as fonts
from agent.pipeline import analyse
for path in sys.argv[1:]:
    analyse(open(path, "rb").read(), ocr=False)
    print(fonts._held is not None)
"""
