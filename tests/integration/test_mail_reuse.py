"""A message is the same only if its bytes are: a reused Message-ID (a copier
that restarted its counter, a resent mail) never drops a message, and the
same bytes again are recorded as another source, with a line, and backed up."""

from __future__ import annotations

import datetime as dt
import email.message
import hashlib
import logging
import random
from pathlib import Path

import pytest

from agent.backup.base import object_key, open_target
from agent.backup.mirror import mirror_step
from agent.config import WatchConfig
from agent.ledger import Ledger, utc
from agent.mail import MailLimits
from agent.vault import Vault
from service.intake import Intake

T0 = dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.timezone.utc)


def pdf(tag: str) -> bytes:
    return b"%PDF-1.4\n%" + tag.encode() * 60 + b"\n%%EOF\n"


def message(message_id: str, subject: str, attachments: list[tuple[str, bytes]]) -> bytes:
    msg = email.message.EmailMessage()
    msg["Message-ID"] = message_id
    msg["From"] = "scanner@example.cn"
    msg["Subject"] = subject
    msg.set_content("scanned")
    for name, data in attachments:
        msg.add_attachment(data, maintype="application", subtype="pdf", filename=name)
    return msg.as_bytes()


@pytest.fixture
def box(tmp_path):
    drop = tmp_path / "mail"
    drop.mkdir()
    nas = tmp_path / "nas"
    nas.mkdir()
    with Ledger(tmp_path / "state" / "ledger.sqlite3") as ledger:
        vault = Vault(tmp_path / "state" / "vault")
        intake = Intake(ledger, vault, max_bytes=10 << 20, mail_limits=MailLimits(), actor="t")
        target = open_target({"name": "nas", "url": f"file://{nas}"})
        yield drop, ledger, vault, intake, target


def take(intake: Intake, drop: Path, name: str, raw: bytes, minute: int = 0):
    (drop / name).write_bytes(raw)
    now = T0 + dt.timedelta(minutes=minute)
    return intake.take(drop / name, WatchConfig(path=drop, kind="email"), now=utc(now), today=now.date())


def drain(ledger: Ledger, vault: Vault, target) -> None:
    rng = random.Random(7)
    while mirror_step(ledger, vault, target, now=T0 + dt.timedelta(hours=1), rng=rng).more:
        pass


def test_two_messages_with_one_message_id_are_both_taken_and_backed_up(box):
    drop, ledger, vault, intake, target = box
    first = message("<1@copier.local>", "scan 1", [("a.pdf", pdf("first"))])
    second = message("<1@copier.local>", "scan 2", [("b.pdf", pdf("second"))])
    # No attachment at all, same reused ID: a refusal names its bytes.
    third = message("<1@copier.local>", "scan 3", [])
    got1 = take(intake, drop, "1.eml", first)
    got2 = take(intake, drop, "2.eml", second, minute=1)
    got3 = take(intake, drop, "3.eml", third, minute=2)
    assert len(got1.documents) == 1 and len(got2.documents) == 1 and got3.documents == []
    names = {d.original_name for d in ledger.list_documents(limit=0)}
    assert names == {"a.pdf", "b.pdf"}
    shas = [hashlib.sha256(raw).hexdigest() for raw in (first, second, third)]
    assert [r["sha256"] for r in ledger.refusals() if "no-attachment" in r["reason"]] == [shas[2]]
    drain(ledger, vault, target)
    for sha, raw in zip(shas, (first, second, third)):
        assert target.head(object_key(sha)).size == len(raw)  # every raw message is backed up


def test_the_same_bytes_again_are_another_source_with_a_line(box, caplog):
    drop, ledger, vault, intake, target = box
    raw = message("<7@example.cn>", "invoices", [("x.pdf", pdf("x")), ("y.pdf", pdf("y"))])
    sha = hashlib.sha256(raw).hexdigest()
    got = take(intake, drop, "a.eml", raw)
    assert len(got.documents) == 2
    with caplog.at_level(logging.INFO, logger="fapiao.intake"):
        again = take(intake, drop, "copy of a.eml", raw, minute=5)
    assert again.documents == []  # no new document: the same attachments
    for doc in ledger.list_documents(limit=0):
        sources = ledger.sources(doc.id)
        assert len(sources) == 2, doc.original_name
        assert all(s.details["message_sha256"] == sha for s in sources)
    assert ledger.mail_seen(sha) == 2
    lines = [r.getMessage() for r in caplog.records]
    assert any("taken again" in line and "another source" in line for line in lines), lines
    drain(ledger, vault, target)
    assert target.head(object_key(sha)).size == len(raw)
