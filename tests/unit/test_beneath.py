"""agent/beneath.py on real folders: what is reached, what is refused."""

from __future__ import annotations

import os
import time

import pytest

from agent import beneath
from agent.beneath import Changed, Escapes, Identity


def test_paths_not_plainly_below_the_root_are_refused(tmp_path):
    (tmp_path / "a").mkdir()
    for bad in (tmp_path / "a" / ".." / "x", tmp_path.parent / "x", tmp_path):
        with pytest.raises(Escapes):
            beneath.lstat_beneath(tmp_path, bad)


def test_a_symlinked_folder_anywhere_on_the_path_is_refused(tmp_path):
    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    (outside / "deep" / "f").write_bytes(b"secret")
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "a" / "b").symlink_to(outside)
    (root / "c").symlink_to(outside)
    for path in (root / "a" / "b" / "deep" / "f", root / "c" / "deep" / "f"):
        with pytest.raises(Escapes, match="symlink"):
            beneath.lstat_beneath(root, path)
    st = (outside / "deep" / "f").stat()
    with pytest.raises(Escapes):
        beneath.unlink_if_same(root, root / "c" / "deep" / "f", Identity.of(st))
    assert (outside / "deep" / "f").read_bytes() == b"secret"


def test_a_configured_root_that_is_itself_a_symlink_is_followed(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "f").write_bytes(b"x")
    (tmp_path / "root").symlink_to(tmp_path / "real")
    assert beneath.lstat_beneath(tmp_path / "root", tmp_path / "root" / "f").st_size == 1


def test_created_folders_get_exactly_the_mode_whatever_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        with beneath.folder_of(tmp_path, tmp_path / "p" / "q" / "x", create_mode=0o750):
            pass
    finally:
        os.umask(old)
    assert (tmp_path / "p").stat().st_mode & 0o777 == 0o750
    assert (tmp_path / "p" / "q").stat().st_mode & 0o777 == 0o750


def test_a_move_never_replaces_and_needs_the_same_file(tmp_path):
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "a.pdf").write_bytes(b"earlier")
    src = tmp_path / "a.pdf"
    src.write_bytes(b"new")
    ident = Identity.of(src.stat())
    time.sleep(0.05)  # past the filesystem's coarse clock tick
    src.write_bytes(b"NEW")  # same size, new mtime/ctime
    with pytest.raises(Changed):
        beneath.move_if_same(tmp_path, src, ident, tmp_path / "done", dir_mode=0o750, file_mode=0o640)
    ident = Identity.of(src.stat())
    dest = beneath.move_if_same(tmp_path, src, ident, tmp_path / "done", dir_mode=0o750, file_mode=0o640)
    assert dest == tmp_path / "done" / "a.1.pdf" and dest.read_bytes() == b"NEW"
    assert (tmp_path / "done" / "a.pdf").read_bytes() == b"earlier"
    assert dest.stat().st_mode & 0o777 == 0o640
