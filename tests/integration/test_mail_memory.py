"""E-mail parsing stays within 300 MB whatever the message's shape.

Each message is built here, written to a file, and parsed by a child
process that reports its own peak RSS: the interpreter, the imports and
the message bytes included, so the figure is what the daemon's process
would reach. The peak is VmHWM from /proc/self/status: Linux carries
`ru_maxrss` over an exec from the forking parent (this pytest process, big
from building the messages), while VmHWM belongs to the child's own memory.
The limit is a memory figure, never a time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.mail_shapes import PDF, SHAPES, qp_pdf_one_char_lines, zipped_pdfs

REPO = Path(__file__).resolve().parents[2]
LIMIT_MB = 300
CHILD = """
import json, sys
def peak_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
from agent.errors import ExtractError
from agent.mail import MailLimits, parse_message
data = open(sys.argv[1], "rb").read()
try:
    parsed = parse_message(data, MailLimits(max_message_bytes=60 << 20))
    out = {"attachments": [[a.filename, len(a.data), a.media_type] for a in parsed.attachments],
           "refusals": sorted({r.reason for r in parsed.refusals}), "subject": parsed.subject}
    if parsed.attachments:
        import hashlib
        out["sha256"] = hashlib.sha256(parsed.attachments[0].data).hexdigest()
except ExtractError as e:
    out = {"error": e.reason, "message": e.message}
out["peak_mb"] = peak_mb()
print(json.dumps(out))
"""


def parse_in_child(tmp_path: Path, message: bytes) -> dict:
    path = tmp_path / "message.eml"
    path.write_bytes(message)
    del message
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_hostile_shapes_parse_within_the_memory_bound(tmp_path, shape):
    out = parse_in_child(tmp_path, SHAPES[shape]())
    assert out["peak_mb"] <= LIMIT_MB, out
    # Each ends explained: the PDF hidden among empty lines is taken; the
    # rest is a refusal of a part, or (a header block past the limit) of
    # the whole message, which intake keeps in the vault with that reason.
    if shape == "huge-header":
        assert out["error"] == "limit-exceeded" and "header" in out["message"]
    elif shape == "empty-lines":
        assert out["attachments"] == [["a.pdf", len(PDF), "application/pdf"]] and out["refusals"] == []
    else:
        assert out["attachments"] == [] and out["refusals"], out


def test_expected_refusal_reasons(tmp_path):
    assert parse_in_child(tmp_path, SHAPES["qp-soft-breaks"]())["refusals"] == ["empty"]
    # Never closed, either: said once.
    assert parse_in_child(tmp_path, SHAPES["deep-multipart"](2000))["refusals"] == ["nested-too-deep", "unclosed"]
    assert parse_in_child(tmp_path, SHAPES["tiny-parts"](2))["refusals"] == ["too-many-parts",
                                                                            "unsupported-format"]


def test_an_attachment_in_a_million_short_qp_lines_comes_out_whole(tmp_path):
    import hashlib

    message, pdf = qp_pdf_one_char_lines(8)
    out = parse_in_child(tmp_path, message)
    assert out["peak_mb"] <= LIMIT_MB, out
    assert out["attachments"] == [["a.pdf", len(pdf), "application/pdf"]]
    assert out["sha256"] == hashlib.sha256(pdf).hexdigest()


def test_zipped_attachments_are_held_within_the_bound(tmp_path):
    # Two 48 MB PDFs inflated from a zip in a 46 MB message: both taken.
    out = parse_in_child(tmp_path, zipped_pdfs(48, 2, filler_mb=33))
    assert out["peak_mb"] <= LIMIT_MB, out
    assert [a[0] for a in out["attachments"]] == ["0.pdf", "1.pdf"], out
    # Two 95 MB PDFs would be held at once (and one copied while read): refused, explained.
    out = parse_in_child(tmp_path, zipped_pdfs(95, 2))
    assert out["peak_mb"] <= LIMIT_MB, out
    assert out["attachments"] == [] and out["refusals"] == ["zip-limit-exceeded"], out
