"""`list --csv` on real files with hostile names (issue 12, item 12): taken
in by `ingest`, no cell of the CSV begins a formula."""

from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
import sys

DANGEROUS = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d")


def _safe(value: str) -> bool:
    # A plain number, or the inert text constant ="digits" (a long invoice
    # number kept as text in Excel, service/csv_safe.py): neither runs.
    return (not value.startswith(DANGEROUS) or value.lstrip("+-").replace(".", "", 1).isdigit()
            or re.fullmatch(r'="\d+"', value) is not None)


def test_list_csv_from_the_cli_quotes_hostile_file_names(tmp_path, samples_dir):
    """Real files with hostile names, taken in by `ingest`, listed by `list --csv`."""
    inbox = tmp_path / "in"
    inbox.mkdir()
    xml = samples_dir / "renoyuan__easyofd/original_invoice.xml"
    names = ["=HYPERLINK(x)&1.xml", "@SUM(1)2.xml", "=1+2+cmd|calc3.xml", "-4.xml", "+5.txt"]
    for i, name in enumerate(names):
        (inbox / name).write_bytes(xml.read_bytes() + b" " * i)   # distinct bytes: one document each
    shutil.copy(xml, inbox / "plain.xml")
    config = tmp_path / "agent.toml"
    config.write_text('[agent]\nstate_dir = "state"\n[validation]\nmax_age_days = 100000\n', encoding="utf-8")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "service", "--config", str(config), *args],
                              capture_output=True, text=True, timeout=120, cwd=tmp_path)

    r = run("ingest", "-q", str(inbox))
    assert r.returncode in (0, 1), r.stderr
    r = run("list", "--csv", "--limit", "0")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert {row["original_name"].lstrip("'") for row in rows} >= set(names)
    for row in rows:
        for column, value in row.items():
            assert _safe(value), f"{column}={value!r} would run as a formula"
    assert any(row["original_name"] == "'=HYPERLINK(x)&1.xml" for row in rows)
