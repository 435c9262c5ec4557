"""Permissions without systemd (issue 12): with no UMask=0027 from the unit,
what the agent writes outside its state folder is still 0750/0640, set and
not inherited: file:// backup folders and objects, ledger snapshots
restored, and folder:// deliveries (group-readable, for an importer that
runs as another user of the agent's group)."""

from __future__ import annotations

import gzip
import hashlib
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from agent.backup.file import FileTarget
from agent.backup.snapshot import restore_sqlite
from agent.deliver.base import Parcel
from agent.deliver.folder import FolderDestination


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture(params=[0o022, 0o077], ids=["umask022", "umask077"])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def test_file_backup_folders_and_objects_are_0750_and_0640(tmp_path, umask):
    root = tmp_path / "nas"
    root.mkdir()
    target = FileTarget(root, name="nas")
    data = b"an original"
    sha = hashlib.sha256(data).hexdigest()
    target.put(f"objects/{sha[:2]}/{sha[2:4]}/{sha}", data, sha)
    target.put("manifests/2026-05-01.json", b"{}", hashlib.sha256(b"{}").hexdigest())
    made = [p for p in root.rglob("*")]
    assert len(made) == 6
    for p in made:
        assert mode(p) == (0o750 if p.is_dir() else 0o640), f"{p} is {mode(p):o}"
    dest = tmp_path / "restored-object"
    target.get("manifests/2026-05-01.json", dest=dest)
    assert mode(dest) == 0o640


def test_a_restored_ledger_snapshot_is_0640(tmp_path, umask):
    db = tmp_path / "src.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (x)")
    conn.close()
    out = tmp_path / "ledger.sqlite3"
    restore_sqlite(gzip.compress(db.read_bytes()), out)
    assert mode(out) == 0o640


def test_folder_deliveries_are_group_readable_not_world_readable(tmp_path, umask):
    folder = tmp_path / "import"
    folder.mkdir()
    original = tmp_path / "a.xml"
    original.write_bytes(b"<invoice/>")
    parcel = Parcel(key="12345678901234567890", number="12345678901234567890", filename="a.xml",
                    media_type="application/xml", sha256=hashlib.sha256(b"<invoice/>").hexdigest(),
                    fields={"number": "12345678901234567890"}, path=original)
    FolderDestination("drop", folder).put(parcel)
    written = sorted(folder.iterdir())
    assert [p.name for p in written] == ["12345678901234567890.json", "12345678901234567890.xml"]
    assert all(mode(p) == 0o640 for p in written), {p.name: oct(mode(p)) for p in written}


def test_restore_output_is_0750_and_0640(tmp_path, umask):
    import datetime as dt

    from agent.backup.base import object_key
    from agent.backup.restore import restore

    root = tmp_path / "nas"
    root.mkdir()
    target = FileTarget(root, name="nas")
    data = b"%PDF-1.4 not really"
    sha = hashlib.sha256(data).hexdigest()
    target.put(object_key(sha), data, sha)
    state = tmp_path / "out" / "state"
    report = restore(target, state, now=dt.datetime(2026, 5, 1, tzinfo=dt.timezone.utc), actor="test")
    assert report.objects == 1
    made = [state.parent, state, *state.rglob("*")]
    assert any(p.name == sha for p in made)
    for p in made:
        assert mode(p) == (0o750 if p.is_dir() else 0o640), f"{p} is {mode(p):o}"
