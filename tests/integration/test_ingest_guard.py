"""`ingest` takes only what the person running it could read: never a
kernel file, never the agent's config (its tokens), and through sudo only
files the person behind it may read by their own permissions."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support.cli import default_config, run


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    # No such account here: the command is not handed over to it, so a test
    # run as root acts as root with SUDO_UID naming the person.
    path = default_config(tmp_path, **{'service_user = "fapiao"': 'service_user = "no-such-fapiao-user"'})
    path.chmod(0o600)
    return path


@pytest.fixture
def public() -> Path:
    # A folder every account can search (pytest's own is root's alone, 0700:
    # nothing in it is reachable by another person).
    with tempfile.TemporaryDirectory(dir="/tmp") as folder:
        os.chmod(folder, 0o755)
        yield Path(folder)


def documents(cfg: Path) -> int:
    return sum(json.loads(run(cfg, "status", "--json").output)["states"].values())


def test_kernel_files_and_the_config_are_refused_even_through_a_symlink(cfg, tmp_path):
    link = tmp_path / "harmless.xml"
    link.symlink_to(cfg)
    for path in ("/proc/self/environ", "/proc/self/status", str(cfg), str(link)):
        r = run(cfg, "ingest", path)
        assert r.exit_code == 1, r.output
        assert "not taken" in r.output and ("kernel file" in r.output or "own config" in r.output), r.output
    assert documents(cfg) == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="SUDO_UID names a person only when the command runs as root")
def test_through_sudo_only_what_the_person_could_read_is_taken(cfg, public, samples_dir):
    person = pwd.getpwnam("nobody")
    invoice = (samples_dir / "renoyuan__easyofd/original_invoice.xml").read_bytes()
    secret, shared = public / "secret.xml", public / "shared.xml"
    secret.write_bytes(invoice)
    secret.chmod(0o600)  # root's alone
    shared.write_bytes(invoice.replace(b"00008006", b"00008007"))
    shared.chmod(0o644)
    env = dict(os.environ, SUDO_UID=str(person.pw_uid), SUDO_USER=person.pw_name)
    r = subprocess.run([sys.executable, "-m", "service", "--config", str(cfg), "ingest", str(secret), str(shared)],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"{person.pw_name} cannot read this file" in r.stderr and str(secret) in r.stderr
    assert "1 new, 0 already known, 1 failed" in r.stdout
    assert documents(cfg) == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="SUDO_UID names a person only when the command runs as root")
def test_through_sudo_a_readable_file_in_a_folder_the_person_cannot_enter_is_refused(cfg, public, samples_dir):
    person = pwd.getpwnam("nobody")
    private = public / "private"
    private.mkdir(mode=0o700)  # root's: nobody cannot search it
    inside = private / "inside.xml"
    inside.write_bytes((samples_dir / "renoyuan__easyofd/original_invoice.xml").read_bytes())
    inside.chmod(0o644)
    env = dict(os.environ, SUDO_UID=str(person.pw_uid), SUDO_USER=person.pw_name)
    r = subprocess.run([sys.executable, "-m", "service", "--config", str(cfg), "ingest", str(inside)],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 1 and f"{person.pw_name} cannot read this file" in r.stderr, r.stdout + r.stderr
    assert documents(cfg) == 0


def test_a_file_on_a_mount_below_dev_is_refused(cfg):
    shm = Path("/dev/shm")
    if not shm.is_dir() or not os.access(shm, os.W_OK):
        pytest.skip("no writable /dev/shm here")
    path = shm / f"fapiao-test-{os.getpid()}.xml"
    path.write_bytes(b"<?xml version='1.0'?><EInvoice/>")
    try:
        r = run(cfg, "ingest", str(path))
        assert r.exit_code == 1 and "kernel file" in r.output, r.output
    finally:
        path.unlink()
    assert documents(cfg) == 0


def _acl_denying(uid: int) -> bytes:
    # A POSIX access ACL (the xattr's binary form, version 2): owner rw,
    # `uid` nothing, group r, mask r, other r.
    import struct

    entries = [(0x01, 6, 0xFFFFFFFF), (0x02, 0, uid), (0x04, 4, 0xFFFFFFFF), (0x10, 4, 0xFFFFFFFF),
               (0x20, 4, 0xFFFFFFFF)]
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)


@pytest.mark.skipif(os.geteuid() != 0, reason="SUDO_UID names a person only when the command runs as root")
def test_through_sudo_a_file_under_an_acl_is_refused_not_guessed_at(cfg, public, samples_dir):
    # Mode bits say "other may read"; the ACL says this person may not.
    person = pwd.getpwnam("nobody")
    path = public / "acl.xml"
    path.write_bytes((samples_dir / "renoyuan__easyofd/original_invoice.xml").read_bytes())
    path.chmod(0o644)
    try:
        os.setxattr(path, "system.posix_acl_access", _acl_denying(person.pw_uid))
    except OSError as e:
        pytest.skip(f"this filesystem takes no POSIX ACL: {e.strerror}")
    env = dict(os.environ, SUDO_UID=str(person.pw_uid), SUDO_USER=person.pw_name)
    r = subprocess.run([sys.executable, "-m", "service", "--config", str(cfg), "ingest", str(path)],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 1 and "carries an ACL" in r.stderr, r.stdout + r.stderr
    assert documents(cfg) == 0
