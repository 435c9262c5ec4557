"""A watched subfolder swapped for a symlink (renameat2 RENAME_EXCHANGE, or a
plain rename and symlink) between the moment a path is noticed and the
moment it is taken, or between capture and the after-action: nothing outside
the watched folder is read, moved or deleted, and the live ledger stays."""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
from pathlib import Path

import pytest

from agent.config import WatchConfig
from agent.ledger import Ledger
from agent.mail import MailLimits
from agent.vault import Vault
from service.intake import Intake
from tests.support.intake_site import NOW, TODAY, IntakeSite

SAMPLE = "renoyuan__easyofd/original_invoice.xml"
AT_FDCWD = -100
RENAME_EXCHANGE = 2


def exchange(a: Path, b: Path) -> None:
    """Swap two names atomically with renameat2(RENAME_EXCHANGE)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def exchange_supported(tmp: Path) -> bool:
    (tmp / "x1").mkdir()
    (tmp / "x2").symlink_to("x1")
    try:
        exchange(tmp / "x1", tmp / "x2")
        return True
    except (OSError, AttributeError) as e:
        if getattr(e, "errno", None) in (errno.EINVAL, errno.ENOSYS, None):
            return False
        raise
    finally:
        for n in ("x1", "x2"):
            p = tmp / n
            p.unlink() if p.is_symlink() else p.rmdir()


def swap_for_symlink(folder: Path, target: Path, how: str) -> Path:
    """Make `folder` a symlink to `target`; returns where the real folder is now."""
    real = folder.with_name(folder.name + ".real")
    if how == "exchange":
        link = folder.with_name(folder.name + ".real")
        link.symlink_to(target, target_is_directory=True)
        exchange(folder, link)  # folder is now the symlink, the real one is at `.real`
    else:
        folder.rename(real)
        folder.symlink_to(target, target_is_directory=True)
    return real


class Site(IntakeSite):
    """A server: a watched folder, the live state folder (ledger, vault) and
    a config.toml with tokens beside them."""

    def __init__(self, tmp: Path, after: str):
        self.tmp = tmp
        self.scan = tmp / "scan"
        (self.scan / "dept").mkdir(parents=True)
        self.state = tmp / "state"
        self.ledger = Ledger(self.state / "ledger.sqlite3")
        self.vault = Vault(self.state / "vault")
        self.config = tmp / "config.toml"
        self.config.write_text('[[destination]]\ntoken = "s3cr3t-token"\n')
        self.outside = tmp / "outside"
        self.outside.mkdir()
        (self.outside / "payroll.xlsx").write_bytes(b"outside file, not to be read")
        self.watch = WatchConfig(path=self.scan, kind="scanner", after=after)
        self.intake = Intake(self.ledger, self.vault, max_bytes=10 << 20, mail_limits=MailLimits(), actor="t")
        self.ledger_bytes_before = (self.state / "ledger.sqlite3").stat().st_size

    def assert_outside_untouched(self) -> None:
        assert (self.state / "ledger.sqlite3").is_file()
        assert self.ledger.integrity_check() == "ok"
        assert self.config.read_text() == '[[destination]]\ntoken = "s3cr3t-token"\n'
        assert (self.outside / "payroll.xlsx").read_bytes() == b"outside file, not to be read"
        vault = set(self.vault.iter_objects())
        for secret in (self.config.read_bytes(), (self.outside / "payroll.xlsx").read_bytes()):
            assert hashlib.sha256(secret).hexdigest() not in vault, "a file outside the watched folder was read"
        assert not list(self.state.glob("processed")) and not list(self.tmp.glob("processed"))
        assert not list(self.outside.glob("processed"))


HOWS = ["exchange", "rename"]


@pytest.fixture
def can_exchange(tmp_path):
    return exchange_supported(tmp_path)


@pytest.mark.parametrize("how", HOWS)
@pytest.mark.parametrize("after", ["keep", "move", "delete"])
@pytest.mark.parametrize("target,name", [("state", "ledger.sqlite3"), ("site", "config.toml"),
                                         ("outside", "payroll.xlsx")])
def test_a_subfolder_swapped_between_notice_and_take(tmp_path, can_exchange, how, after, target, name):
    if how == "exchange" and not can_exchange:
        pytest.skip("this filesystem has no RENAME_EXCHANGE")
    site = Site(tmp_path, after)
    noticed = site.scan / "dept" / name
    noticed.write_bytes(b"decoy the attacker dropped so the path is noticed")
    where = {"state": site.state, "site": site.tmp, "outside": site.outside}[target]
    real = swap_for_symlink(site.scan / "dept", where, how)

    result = site.take(noticed)

    site.assert_outside_untouched()
    assert result.documents == [] and not result.retry
    assert site.ledger.list_documents(limit=0) == []
    (refusal,) = site.ledger.refusals()
    assert "symlink" in refusal["reason"] and "not taken" in refusal["reason"]
    assert (real / name).read_bytes() == b"decoy the attacker dropped so the path is noticed"


@pytest.mark.parametrize("how", HOWS)
@pytest.mark.parametrize("after", ["move", "delete"])
@pytest.mark.parametrize("target", ["state", "outside"])
def test_a_subfolder_swapped_between_capture_and_after_action(tmp_path, samples_dir, can_exchange, how,
                                                              after, target):
    if how == "exchange" and not can_exchange:
        pytest.skip("this filesystem has no RENAME_EXCHANGE")
    site = Site(tmp_path, after)
    name = "ledger.sqlite3" if target == "state" else "payroll.xlsx"
    invoice = (samples_dir / SAMPLE).read_bytes()
    noticed = site.scan / "dept" / name
    noticed.write_bytes(invoice)
    (doc_id,) = site.take(noticed).documents
    assert noticed.exists(), "the source is moved or deleted only once its capture was read"

    where = site.state if target == "state" else site.outside
    real = swap_for_symlink(site.scan / "dept", where, how)
    site.read_all()
    assert site.ledger.get(doc_id).state in ("valid", "quarantined", "duplicate")
    site.intake.finish_sources([site.watch], now=NOW, today=TODAY)

    site.assert_outside_untouched()
    assert (real / name).read_bytes() == invoice, "the captured file stays where it really is"
    (action,) = site.ledger.source_actions(doc_id)
    assert action["state"] == "kept" and "symlink" in action["outcome"]
    assert any("source kept" in (e.reason or "") for e in site.ledger.events(doc_id))


@pytest.mark.parametrize("after", ["move", "delete"])
def test_the_after_action_needs_the_very_file_captured(tmp_path, samples_dir, after):
    """Another file put at the captured name (same size, same mtime) is not acted on."""
    site = Site(tmp_path, after)
    invoice = (samples_dir / SAMPLE).read_bytes()
    path = site.scan / "dept" / "inv.xml"
    path.write_bytes(invoice)
    (doc_id,) = site.take(path).documents
    st = path.stat()
    other = site.scan / "dept" / ".other"
    other.write_bytes(invoice.replace(b"00008006", b"00009999"))
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    other.rename(path)  # rsync -t: same name, size and mtime; another inode
    site.read_all()
    site.intake.finish_sources([site.watch], now=NOW, today=TODAY)
    assert path.read_bytes() == invoice.replace(b"00008006", b"00009999")
    (action,) = site.ledger.source_actions(doc_id)
    assert action["state"] == "kept" and "changed since its capture" in action["outcome"]


@pytest.mark.parametrize("after", ["move", "delete"])
def test_the_after_action_happens_once_read(tmp_path, samples_dir, after):
    site = Site(tmp_path, after)
    invoice = (samples_dir / SAMPLE).read_bytes()
    path = site.scan / "dept" / "inv.xml"
    path.write_bytes(invoice)
    os.chmod(path, 0o644)
    old = os.umask(0o022)
    try:
        (doc_id,) = site.take(path).documents
        assert path.exists()
        site.read_all()
        site.intake.finish_sources([site.watch], now=NOW, today=TODAY)
    finally:
        os.umask(old)
    assert not path.exists()
    (action,) = site.ledger.source_actions(doc_id)
    assert action["state"] == "done"
    if after == "move":
        moved = site.scan / "dept" / "processed" / TODAY.isoformat() / "inv.xml"
        assert moved.read_bytes() == invoice
        for folder in (moved.parent, moved.parent.parent):
            assert folder.stat().st_mode & 0o777 == 0o750
        assert moved.stat().st_mode & 0o777 == 0o640
    site.ledger.close()
