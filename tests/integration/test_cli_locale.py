"""The CLI never dies on its own output's encoding: under a locale whose
encoding lacks a character (zh_CN.GBK has no 𠮷 nor emoji, ISO-8859-1 no
Chinese at all) a name holding one is written as a `\\uXXXX` escape, and
--json stays JSON of the very text. Under LC_ALL=C with UTF-8 mode off the
command line's UTF-8 arguments are read as text, not lone surrogates."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import default_config
from tests.unit.test_xml_ofd import SHUDIAN_XML

REPO = Path(__file__).resolve().parents[2]
BUYER = "𠮷野家餐饮有限公司"
SELLER = "好运来💰贸易有限公司"


def _cli(cfg: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG", "PYTHONIO", "PYTHONUTF8"))}
    environ.update(PYTHONPATH=str(REPO), **env)
    return subprocess.run([sys.executable, "-m", "service", "--config", str(cfg), *args], capture_output=True,
                          env=environ, cwd=cfg.parent, timeout=120)


@pytest.fixture()
def ledger(tmp_path: Path) -> Path:
    cfg = default_config(tmp_path)
    xml = SHUDIAN_XML.replace("个人".encode(), BUYER.encode()).replace("上海某某科技有限公司".encode(), SELLER.encode())
    (tmp_path / "emoji.xml").write_bytes(xml)
    r = _cli(cfg, "ingest", str(tmp_path / "emoji.xml"), LANG="C.UTF-8")
    assert r.returncode == 0, r.stderr
    return cfg


def _never_raise(cfg: Path, encoding: str, **env: str) -> None:
    for args in (("--help",), ("list",), ("show", "1"), ("search", "25317000002856389003"), ("status",)):
        r = _cli(cfg, *args, **env)
        assert r.returncode == 0 and b"Traceback" not in r.stderr, (args, r.stderr.decode(errors="replace"))
        r.stdout.decode(encoding)   # written in the locale's encoding
    r = _cli(cfg, "list", "--json", **env)
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout.decode(encoding))
    assert (row["buyer"], row["seller"]) == (BUYER, SELLER)
    r = _cli(cfg, "show", "1", **env)
    assert "\\ud842\\udfb7" in r.stdout.decode(encoding)   # 𠮷, which neither encoding has


def test_pythonioencoding_latin1_writes_escapes(ledger: Path):
    _never_raise(ledger, "latin-1", PYTHONIOENCODING="latin-1", LANG="C.UTF-8")


@pytest.mark.parametrize("locale_name,charmap,encoding", [("zh_CN", "GBK", "gbk"), ("en_US", "ISO-8859-1", "latin-1")])
def test_real_non_utf8_locales(ledger: Path, tmp_path: Path, locale_name: str, charmap: str, encoding: str):
    if shutil.which("localedef") is None:
        pytest.skip("localedef is not installed: no non-UTF-8 locale can be built")
    locales = tmp_path / "locales"
    locales.mkdir(exist_ok=True)
    made = subprocess.run(["localedef", "-i", locale_name, "-f", charmap, str(locales / f"{locale_name}.{charmap}")],
                          capture_output=True, timeout=120)
    if not (locales / f"{locale_name}.{charmap}").exists():
        pytest.skip(f"localedef could not build {locale_name}.{charmap}: {made.stderr[-200:]!r}")
    _never_raise(ledger, encoding, LOCPATH=str(locales), LANG=f"{locale_name}.{charmap}")


def test_c_locale_without_utf8_mode_reads_arguments_as_text(ledger: Path):
    r = _cli(ledger, "search", "野家餐饮", LC_ALL="C", PYTHONUTF8="0")
    assert r.returncode == 0 and b"Traceback" not in r.stderr, r.stderr
    assert b"25317000002856389003" in r.stdout
    r = subprocess.run([sys.executable, "-m", "service", "--config", str(ledger), "search", b"\xff\xfe".decode(
        "utf-8", "surrogateescape")], capture_output=True, timeout=120, cwd=ledger.parent,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO), "LC_ALL": "C", "PYTHONUTF8": "0"})
    assert r.returncode == 2 and b"Traceback" not in r.stderr and b"\\xff\\xfe" in r.stderr, r.stderr
