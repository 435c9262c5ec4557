"""`check FILE` reads a file as the daemon of its config would: with
[extract] ocr = "off" a scan is read through its QR code alone. Before, it
used OCR all the same: values, and a verdict, the daemon never reads."""

from __future__ import annotations

import json
import random

from click.testing import CliRunner

from service.cli import main
from tests.corpus.generate import make_invoice

CONFIG = """
[agent]
state_dir = "state"
[validation]
max_age_days = 100000
[extract]
ocr = "{ocr}"
"""


def _check(tmp_path, ocr: str, scan) -> dict:
    config = tmp_path / f"{ocr}.toml"
    config.write_text(CONFIG.format(ocr=ocr), encoding="utf-8")
    r = CliRunner().invoke(main, ["--config", str(config), "check", "--json", str(scan)], catch_exceptions=False)
    assert r.exit_code in (0, 1), r.output
    (record,) = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    return record


def test_check_reads_no_ocr_value_when_the_config_turns_ocr_off(tmp_path):
    made = make_invoice(random.Random(5), "scan-png")
    scan = tmp_path / f"scan.{made.ext}"
    scan.write_bytes(made.data)
    off = _check(tmp_path, "off", scan)
    assert "ocr" not in off["sources"].values(), off["sources"]
    # What the QR alone gives, as `extract --no-ocr` shows it.
    r = CliRunner().invoke(main, ["extract", "--json", "--no-ocr", str(scan)], catch_exceptions=False)
    (qr_only,) = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    assert off["sources"] == qr_only["sources"]
    assert {k: off[k] for k in off["sources"]} == {k: qr_only[k] for k in qr_only["sources"]}
