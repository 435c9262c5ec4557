"""The watcher's folder walk (`FolderWatcher.files_under`): by folder fd, so
a folder nested past PATH_MAX is walked; through a configured folder that
is itself a symlink (a NAS mount); never into a symlinked subfolder."""

from __future__ import annotations

import os
from pathlib import Path

from service.watch import FolderWatcher


def test_a_watched_folder_that_is_a_symlink_is_walked(tmp_path):
    real = tmp_path / "nas" / "scans"
    (real / "sub").mkdir(parents=True)
    (real / "a.pdf").write_bytes(b"a")
    (real / "sub" / "b.pdf").write_bytes(b"b")
    link = tmp_path / "scan"
    link.symlink_to(real)
    assert sorted(FolderWatcher.files_under(link)) == [link / "a.pdf", link / "sub" / "b.pdf"]


def test_a_symlinked_subfolder_is_listed_to_be_refused_not_followed(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "secret.pdf").write_bytes(b"s")
    root = tmp_path / "scan"
    root.mkdir()
    (root / "out").symlink_to(tmp_path / "elsewhere")
    assert list(FolderWatcher.files_under(root)) == [root / "out"]


def test_a_file_nested_past_path_max_is_listed(tmp_path):
    root = tmp_path / "scan"
    root.mkdir()
    fd = os.open(root, os.O_RDONLY)
    names = [f"d{i:02d}" + "x" * 200 for i in range(25)]
    for name in names:
        os.mkdir(name, dir_fd=fd)
        inner = os.open(name, os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = inner
    os.close(os.open("deep.pdf", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
    os.close(fd)
    assert list(FolderWatcher.files_under(root)) == [Path(root, *names, "deep.pdf")]


def test_a_missing_watched_folder_lists_nothing(tmp_path):
    assert list(FolderWatcher.files_under(tmp_path / "gone")) == []
