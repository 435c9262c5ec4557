"""A file held because its folder may be listed but not searched (r, no
x): its inode and its deletion are still told from the folder's listing,
so a restart keeps its wait (`files_first_seen`) and a deleted one is not
named as held. Run as root without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH,
so the folder's mode binds as it binds the service's own user."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv"),
    reason="needs root and setpriv: run without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH so a folder's mode binds")

PROBE = """
import json, os, sys
from pathlib import Path
from service.watch_waits import _Looks
folder = Path(sys.argv[1])
try:
    os.lstat(folder / "held.xml")
    blocked = False
except PermissionError:
    blocked = True
listed = []
scandir = os.scandir
os.scandir = lambda p: listed.append(p) or scandir(p)
looks = _Looks()
print(json.dumps({"blocked": blocked, "inode": looks.inode(folder / "held.xml"),
                  "held_gone": looks.gone(folder / "held.xml"), "deleted_gone": looks.gone(folder / "deleted.xml"),
                  "deleted_inode": looks.inode(folder / "deleted.xml"),
                  "others_there": sum(not looks.gone(folder / f"other-{i}.xml") for i in range(200)),
                  "listings": len(listed)}))
"""


def test_a_file_in_a_folder_listable_not_searchable_keeps_its_inode_and_its_deletion_is_seen(tmp_path):
    folder = tmp_path / "scan" / "listable-only"
    folder.mkdir(parents=True)
    (folder / "held.xml").write_bytes(b"<x/>")
    for i in range(200):
        (folder / f"other-{i}.xml").write_bytes(b"<x/>")
    ino = (folder / "held.xml").stat().st_ino
    folder.chmod(0o644)  # r, no x
    try:
        out = subprocess.run(["setpriv", "--bounding-set=-dac_override,-dac_read_search", sys.executable, "-c",
                              PROBE, str(folder)], capture_output=True, text=True, timeout=60, cwd=REPO,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    finally:
        folder.chmod(0o755)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["blocked"], got  # the folder's mode does bind here
    # Each answer from the folder's listing, listed once for all 203 asked.
    assert got == {"blocked": True, "inode": ino, "held_gone": False, "deleted_gone": True, "deleted_inode": None,
                   "others_there": 200, "listings": 1}
