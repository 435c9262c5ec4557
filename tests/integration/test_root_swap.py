"""The watched folder ITSELF exchanged for a symlink (renameat2
RENAME_EXCHANGE, or rename + symlink) to the outbox, the state folder or any
other folder: its identity is pinned when watching starts, so nothing there
is listed, read, moved or deleted until the folder is back."""

from __future__ import annotations

import errno
import hashlib
from pathlib import Path

import pytest

from agent.config import WatchConfig
from agent.ledger import Ledger
from agent.mail import MailLimits
from agent.vault import Vault
from service.intake import Intake
from tests.integration.test_symlink_swap import exchange
from tests.support.intake_site import NOW, TODAY, IntakeSite
from service.watch import FolderWatcher

SAMPLE = "renoyuan__easyofd/original_invoice.xml"


def swap_root(root: Path, target: Path, how: str) -> Path:
    """Make `root` a symlink to `target`; returns where the real folder is now."""
    real = root.with_name(root.name + ".real")
    if how == "exchange":
        real.symlink_to(target, target_is_directory=True)
        try:
            exchange(root, real)
        except OSError as e:
            if e.errno in (errno.EINVAL, errno.ENOSYS):
                pytest.skip("this filesystem has no RENAME_EXCHANGE")
            raise
    else:
        root.rename(real)
        root.symlink_to(target, target_is_directory=True)
    return real


def swap_back(root: Path, real: Path) -> None:
    root.unlink()
    real.rename(root)


class Site(IntakeSite):
    def __init__(self, tmp: Path, after: str):
        self.tmp = tmp
        self.scan = tmp / "scan"
        self.scan.mkdir()
        self.state = tmp / "state"
        self.ledger = Ledger(self.state / "ledger.sqlite3")
        self.vault = Vault(self.state / "vault")
        self.outbox = tmp / "outbox"
        self.outbox.mkdir()
        self.delivered = {f"{i}.xml": f"delivered invoice {i}".encode() * 40 for i in range(3)}
        for name, data in self.delivered.items():
            (self.outbox / name).write_bytes(data)
        self.watch = WatchConfig(path=self.scan, kind="scanner", after=after)
        self.intake = Intake(self.ledger, self.vault, max_bytes=10 << 20, mail_limits=MailLimits(), actor="t")
        self.watcher = FolderWatcher([self.watch], wake=lambda: None)
        self.watcher.start()  # pins the watched folder, as the daemon does

    def assert_outbox_untouched(self) -> None:
        assert sorted(p.name for p in self.outbox.iterdir()) == sorted(self.delivered)
        vault = set(self.vault.iter_objects())
        for name, data in self.delivered.items():
            assert (self.outbox / name).read_bytes() == data
            assert hashlib.sha256(data).hexdigest() not in vault, "a file outside the watched folder was read"
        assert self.ledger.refusals() == [], "names outside the watched folder are not even recorded"


@pytest.fixture
def site_factory(tmp_path):
    sites = []

    def make(after):
        sites.append(Site(tmp_path, after))
        return sites[-1]
    yield make
    for s in sites:
        s.watcher.stop()


@pytest.mark.parametrize("how", ["exchange", "rename"])
@pytest.mark.parametrize("after", ["keep", "move", "delete"])
def test_a_root_swapped_for_the_outbox_is_neither_listed_nor_read(site_factory, how, after):
    site = site_factory(after)
    for name in site.delivered:  # decoys so the names are noticed
        (site.scan / name).write_bytes(b"<?xml version=\"1.0\"?><decoy/>")  # a readable format: taken, not refused as junk
    real = swap_root(site.scan, site.outbox, how)

    assert site.watcher.scan() == 0, "a replaced folder is not listed"
    for name in site.delivered:
        result = site.take(site.scan / name)
        assert result.documents == [] and not result.retry
    site.intake.finish_sources([site.watch], now=NOW, today=TODAY)
    site.assert_outbox_untouched()
    assert site.ledger.list_documents(limit=0) == []

    swap_back(site.scan, real)
    assert site.watcher.scan() == len(site.delivered), "taken once the folder is back"
    assert site.take(site.scan / "0.xml").documents


@pytest.mark.parametrize("how", ["exchange", "rename"])
@pytest.mark.parametrize("after", ["move", "delete"])
def test_a_root_swapped_between_capture_and_after_action_waits(site_factory, samples_dir, how, after):
    site = site_factory(after)
    invoice = (samples_dir / SAMPLE).read_bytes()
    (site.scan / "0.xml").write_bytes(invoice)  # the same name as an outbox file
    (doc_id,) = site.take(site.scan / "0.xml").documents
    real = swap_root(site.scan, site.outbox, how)
    site.read_all()
    site.intake.finish_sources([site.watch], now=NOW, today=TODAY)

    site.assert_outbox_untouched()
    assert not list(site.outbox.glob("processed"))
    (action,) = site.ledger.source_actions(doc_id)
    assert action["state"] == "waiting", "not acted on, and not given up: the folder may come back"
    assert (real / "0.xml").read_bytes() == invoice

    swap_back(site.scan, real)
    site.intake.finish_sources([site.watch], now=NOW, today=TODAY)
    (action,) = site.ledger.source_actions(doc_id)
    assert action["state"] == "done"
    assert not (site.scan / "0.xml").exists()


@pytest.mark.parametrize("watched", ["outbox", ".", "state", "state/vault", "backup/sub"])
def test_config_check_refuses_a_watched_folder_overlapping_the_agents_own(tmp_path, watched):
    from agent.config import load_config
    from agent.config_paths import check_paths, watch_overlaps
    from agent.defaults import DEFAULT_CONFIG

    text = DEFAULT_CONFIG.replace('path = "inbox/scanner"', f'path = "{watched}"', 1)
    assert text != DEFAULT_CONFIG
    (tmp_path / "c.toml").write_text(text, encoding="utf-8")
    for rel in ("inbox/email", "outbox", "backup/sub", "state/vault"):
        (tmp_path / rel).mkdir(parents=True)
    cfg = load_config(tmp_path / "c.toml", env={})
    problems = check_paths(cfg)
    assert any(p.startswith("watch[0].path:") and "overlaps" in p for p in problems), problems
    assert not any(p.startswith("watch[1].path:") and "overlaps" in p for p in problems)
    assert watch_overlaps(cfg, cfg.watches[0]) and not watch_overlaps(cfg, cfg.watches[1])
    # "." also holds the other watch (inbox/email): said as such.
    assert any(p.startswith("watch[1].path:") and "lies inside watch[0].path" in p for p in problems) == \
        (watched == ".")


@pytest.mark.parametrize("inner", ["inbox/scanner/dept", "inbox/scanner", "inbox/scanner-2"])
def test_config_check_refuses_a_watched_folder_inside_another(tmp_path, inner):
    # Every watch is recursive and a file is the first watch's it lies in:
    # a watch inside another (or a second on the same folder) would never
    # apply its own kind, after and label, and its files would be seen twice.
    from agent.config import load_config
    from agent.config_paths import check_paths
    from agent.defaults import DEFAULT_CONFIG

    text = DEFAULT_CONFIG.replace('path = "inbox/email"', f'path = "{inner}"', 1)
    assert text != DEFAULT_CONFIG
    (tmp_path / "c.toml").write_text(text, encoding="utf-8")
    for rel in ("inbox/scanner/dept", "inbox/scanner-2", "outbox", "backup"):
        (tmp_path / rel).mkdir(parents=True, exist_ok=True)
    problems = check_paths(load_config(tmp_path / "c.toml", env={}))
    nested = [p for p in problems if "lies inside" in p]
    if inner == "inbox/scanner-2":   # a name that merely begins the same: its own folder
        assert nested == [], problems
    else:
        assert nested == [f"watch[1].path: folder {tmp_path / inner} lies inside watch[0].path "
                          f"({tmp_path / 'inbox/scanner'}), which takes its files with its own settings; give "
                          "each watch its own folder"], problems


def test_config_check_refuses_the_same_watch_written_twice(tmp_path):
    # Two [[watch]] blocks alike are equal values: the second is still the one said.
    from agent.config import load_config
    from agent.config_paths import check_paths
    from agent.defaults import DEFAULT_CONFIG

    text = DEFAULT_CONFIG.replace('path = "inbox/email"\nkind = "email"', 'path = "inbox/scanner"\nkind = "scanner"\n'
                                  'after = "keep"', 1)
    assert text != DEFAULT_CONFIG
    (tmp_path / "c.toml").write_text(text, encoding="utf-8")
    for rel in ("inbox/scanner", "outbox", "backup"):
        (tmp_path / rel).mkdir(parents=True, exist_ok=True)
    cfg = load_config(tmp_path / "c.toml", env={})
    assert cfg.watches[0] == cfg.watches[1]
    assert [p for p in check_paths(cfg) if "lies inside" in p] == [
        f"watch[1].path: folder {tmp_path / 'inbox/scanner'} lies inside watch[0].path "
        f"({tmp_path / 'inbox/scanner'}), which takes its files with its own settings; give each watch its own folder"]
