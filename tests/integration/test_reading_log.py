"""The "processed" line each recorded document gets (service/reading.py):
its state, number and problem codes as the ledger holds them after the
batch, read for the whole batch at once (`Ledger.briefs`)."""

from __future__ import annotations

import datetime as dt
import logging

from agent.capture import capture_bytes
from agent.ledger import Ledger
from agent.pipeline import Analysis, analyse
from agent.validate import ValidationSettings
from agent.vault import Vault
from service.reading import Reading

NOW = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_each_recorded_document_is_logged_with_its_state_number_and_problems(tmp_path, samples_dir, caplog):
    template = (samples_dir / "renoyuan__easyofd" / "original_invoice.xml").read_bytes()
    vault, ledger = Vault(tmp_path / "vault"), Ledger(tmp_path / "ledger.sqlite3")
    # A valid invoice, a second file of the same invoice (other bytes), and junk.
    files = [template, template.replace(b"</", b" </", 1), b"%PDF-1.4\nnot really"]
    ids = [capture_bytes(ledger, vault, data, name=f"f{i}", source_kind="scanner", source="t", now=NOW,
                         actor="t").document_id for i, data in enumerate(files)]
    analyses = [analyse(files[0]), analyse(files[1]),
                Analysis(error_reason="corrupt", error_message="cut off")]
    number = analyses[0].invoices[0]["number"]
    reading = Reading(ledger, pool=None, actor="t", on_read=lambda ids: None)
    reading.configure(ValidationSettings(max_age_days=100_000), ["out"])
    with caplog.at_level(logging.INFO, logger="fapiao.daemon"):
        reading.record_all(list(zip(ids, analyses)))
    lines = {r.document: (r.state, r.number, r.problems) for r in caplog.records if r.msg == "processed"}
    assert lines == {ids[0]: ("queued", number, ""),
                     ids[1]: ("duplicate", number, "duplicate"),
                     ids[2]: ("quarantined", "", "unreadable")}
    for doc_id, (state, _, _) in lines.items():
        assert ledger.get(doc_id).state == state
    ledger.close()
