"""Only a backlog makes intake "busy" (service/intake_step.py, service/pace.py):
ready files left for the next step hold back backup rounds and delivery; a
file or two taken at once, or files still settling, delay nothing. A real watcher, intake, ledger, vault and
extraction pool on temp folders."""

from __future__ import annotations

import time

import pytest

from agent.config import WatchConfig
from agent.ledger import Ledger
from agent.mail import MailLimits
from agent.vault import Vault
from service import intake_step, pace
from service.intake import Intake
from service.intake_step import IntakeStep
from service.reading import Reading
from service.watch import FolderWatcher
from service.workers import ExtractionPool

SAMPLE = "renoyuan__easyofd/original_invoice.xml"


@pytest.fixture
def step(tmp_path):
    scan = tmp_path / "scan"
    scan.mkdir()
    ledger = Ledger(tmp_path / "state" / "ledger.sqlite3")
    vault = Vault(tmp_path / "state" / "vault")
    pool = ExtractionPool(str(vault.root), workers=1, ocr=False)
    reading = Reading(ledger, pool, actor="t", on_read=lambda ids: None)
    watcher = FolderWatcher([WatchConfig(path=scan, kind="scanner", after="keep", settle_seconds=60)],
                            wake=lambda: None)
    intake = Intake(ledger, vault, max_bytes=10 << 20, mail_limits=MailLimits(), actor="t")
    s = IntakeStep(intake, watcher, reading, vault, stopping=lambda: False, on_pause_change=lambda: None)
    s.scan_folder = scan
    pace._busy_until = 0.0
    yield s
    pace._busy_until = 0.0
    pool.shutdown(5)
    ledger.close()


def _plant(step, template: bytes, n: int) -> None:
    # Written, then noted as closed (moved in whole): ready at once.
    for i in range(n):
        path = step.scan_folder / f"inv{i:04d}.xml"
        path.write_bytes(template.replace(b"00008006", b"%08d" % (30_000_000 + i)))
        step.watcher.note(path, closed=True)


def _busy() -> bool:
    return pace._busy_until > time.monotonic()


def test_a_few_files_taken_at_once_are_no_backlog(step, samples_dir):
    _plant(step, (samples_dir / SAMPLE).read_bytes(), 3)
    assert step.run() == 3
    assert step.watcher.pending_count == 0
    assert not _busy(), "three files taken in one step held back backup and delivery"


def test_ready_files_left_after_a_step_mark_intake_busy(step, samples_dir, monkeypatch):
    monkeypatch.setattr(intake_step, "INTAKE_BATCH", 5)
    _plant(step, (samples_dir / SAMPLE).read_bytes(), 12)
    assert step.run() == 5
    assert step.watcher.pending_count == 7
    assert _busy()
    pace._busy_until = 0.0
    assert step.run() == 5 and _busy()
    pace._busy_until = 0.0
    assert step.run() == 2
    assert not _busy(), "the step that took the last files left no backlog"
    assert step.intake.ledger.conn.execute("SELECT count(*) FROM documents").fetchone()[0] == 12


def test_files_still_settling_are_no_backlog(step, samples_dir):
    # A trickle: one file ready, others written but not settled yet.
    template = (samples_dir / SAMPLE).read_bytes()
    _plant(step, template, 1)
    for i in range(5):
        path = step.scan_folder / f"settling{i}.xml"
        path.write_bytes(template.replace(b"00008006", b"%08d" % (31_000_000 + i)))
        step.watcher.note(path)  # written to: waits settle_seconds
    assert step.run() == 1
    assert step.watcher.pending_count == 5
    assert not _busy(), "files still settling held back backup and delivery"
