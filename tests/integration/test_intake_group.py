"""Intake in groups (service/intake.py `Intake.group`) with a real ledger,
vault and files: the group's rows are committed at once, at its end, with
every object they name already durable; no source is deleted before that."""

from __future__ import annotations

import hashlib
from pathlib import Path

from agent.config import WatchConfig
from agent.ledger import Ledger
from agent.mail import MailLimits
from agent.vault import Vault
from service.intake import Intake
from tests.support.intake_site import NOW, TODAY, IntakeSite

SAMPLE = "renoyuan__easyofd/original_invoice.xml"


class Site(IntakeSite):
    def __init__(self, tmp: Path):
        self.scan = tmp / "scan"
        self.scan.mkdir()
        self.watch = WatchConfig(path=self.scan, kind="scanner", after="delete")
        self.path = tmp / "ledger.sqlite3"
        self.ledger, self.vault = Ledger(self.path), Vault(tmp / "vault")
        self.intake = Intake(self.ledger, self.vault, max_bytes=10 << 20, mail_limits=MailLimits(), actor="t")

    def committed(self) -> dict[str, str]:
        """original_path -> sha256 of every arrival another connection sees."""
        with Ledger(self.path, readonly=True) as other:
            return dict(other.conn.execute("SELECT s.original_path, d.sha256 FROM sources s JOIN documents d "
                                           "ON d.id = s.document_id"))


def test_a_group_commits_its_files_at_once_and_deletes_no_source_before(tmp_path, samples_dir):
    site = Site(tmp_path)
    template = (samples_dir / SAMPLE).read_bytes()
    # An invoice already taken and read: a second copy of its bytes may be
    # deleted as soon as it is recorded, which must wait for the COMMIT.
    (site.scan / "read.xml").write_bytes(template)
    site.take(site.scan / "read.xml")
    site.read_all()
    site.intake.finish_sources([site.watch], now=NOW, today=TODAY)
    assert not (site.scan / "read.xml").exists()
    files = {"copy.xml": template}
    files |= {f"x{i:02d}.xml": template.replace(b"00008006", b"%08d" % (50_000 + i)) for i in range(20)}
    for name, data in files.items():
        (site.scan / name).write_bytes(data)
    before = site.committed()
    with site.intake.group(now=NOW, today=TODAY):
        results = {name: site.take(site.scan / name) for name in files}
        assert site.committed() == before, "rows committed before the group's end"
        assert (site.scan / "copy.xml").exists(), "a source deleted before its group was durable"
        assert all(r.documents == [] for r in results.values()), "results complete before the COMMIT"
    after = site.committed()
    for name, data in files.items():
        sha = hashlib.sha256(data).hexdigest()
        assert after[str(site.scan / name)] == sha, name
        assert site.vault.verify(sha), f"{name}: its object is not whole in the vault"
    assert not (site.scan / "copy.xml").exists(), "the copy of read bytes is deleted once its group is durable"
    assert all(results[n].documents for n in files if n != "copy.xml")
    assert not list((site.vault.root / "tmp").iterdir()), "staged bytes left behind"


def test_a_group_undone_leaves_every_file_in_place_and_no_row(tmp_path, samples_dir):
    site = Site(tmp_path)
    template = (samples_dir / SAMPLE).read_bytes()
    files = {f"x{i:02d}.xml": template.replace(b"00008006", b"%08d" % (60_000 + i)) for i in range(5)}
    for name, data in files.items():
        (site.scan / name).write_bytes(data)
    try:
        with site.intake.group(now=NOW, today=TODAY):
            for name in files:
                site.take(site.scan / name)
            raise OSError("the ledger's disk went away")
    except OSError:
        pass
    assert site.committed() == {}
    assert all((site.scan / name).read_bytes() == data for name, data in files.items())
    assert not list((site.vault.root / "tmp").iterdir()), "staged bytes left behind"
    # Taken again later: all of them, once.
    for name in files:
        assert site.take(site.scan / name).documents
    assert len(site.committed()) == len(files)
