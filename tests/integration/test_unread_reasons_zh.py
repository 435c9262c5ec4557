"""A file the readers refuse is quarantined with its reason in Chinese as
the reader said it, not a generic "无法读取文件" (agent/pipeline.py): the
person at the 补录 desk reads what is wrong and what to do. Real readers,
real SQLite, real vault."""

from __future__ import annotations

import datetime as dt

from agent.ledger import Ledger
from agent.ledger.rows import utc
from agent.pipeline import Analysis, analyse, apply
from agent.validate import ValidationSettings
from agent.vault import Vault

NOW = dt.datetime(2026, 12, 6, 9, 0, tzinfo=dt.timezone.utc)


def _quarantined(tmp_path, data: bytes, analysis: Analysis | None = None) -> dict:
    ledger, vault = Ledger(tmp_path / "l.sqlite3"), Vault(tmp_path / "v")
    stored = vault.put_bytes(data)
    doc_id, _ = ledger.add_document(sha256=stored.sha256, size=stored.size, media_type=None, source_kind="ingest",
                                    source="test", original_name="f", original_path=None, now=utc(NOW), actor="t")
    apply(ledger, doc_id, analysis or analyse(data, ocr=False), settings=ValidationSettings(max_age_days=100000),
          destinations=[], today=NOW.date(), now=utc(NOW), actor="t")
    doc = ledger.get(doc_id)
    assert doc.state == "quarantined"
    [problem] = doc.problems
    return problem


def test_a_reader_reason_said_in_chinese_reaches_the_problem(tmp_path):
    # An OFD package that declares encryption: refused in both languages by the reader.
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("OFD.xml", '<ofd:OFD xmlns:ofd="http://www.ofdspec.org/2016"><ofd:DocBody>'
                              "<ofd:DocRoot>Doc_0/Document.xml</ofd:DocRoot></ofd:DocBody></ofd:OFD>")
        z.writestr("Encryptions.xml", "<Encryptions/>")
    problem = _quarantined(tmp_path, buf.getvalue())
    assert problem["code"] == "unreadable" and problem["message"].startswith("encrypted: ")
    assert "加密" in problem["message_zh"] and "补录" in problem["message_zh"]


def test_a_reason_said_in_english_only_gets_its_chinese_way_out(tmp_path):
    for sub, reason, words in (("a", "no-qr", "二维码"), ("b", "timeout", "时限"), ("c", "not-invoice", "没有找到发票")):
        (tmp_path / sub).mkdir()
        problem = _quarantined(tmp_path / sub, sub.encode(),
                               Analysis(error_reason=reason, error_message="said in English only"))
        assert words in problem["message_zh"] and problem["message_zh"] != "无法读取文件", (reason, problem)
