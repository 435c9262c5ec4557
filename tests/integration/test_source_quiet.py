"""Source steps that wait (their file not quiet for its folder's
quiet_seconds yet) never hold back the steps behind them: the pass pages
through every waiting step, in every folder, not only the oldest 500."""

from __future__ import annotations

import json
import time

from click.testing import CliRunner

from agent.config import WatchConfig, load_config
from agent.defaults import DEFAULT_CONFIG
from agent.ledger import Ledger
from agent.mail import MailLimits
from agent.vault import Vault
from service.cli import main
from service.intake import Intake
from tests.integration.test_mail_slow_writer import stamp
from tests.support.intake_site import NOW, TODAY, IntakeSite

SAMPLE = "renoyuan__easyofd/original_invoice.xml"


class Site(IntakeSite):
    def __init__(self, tmp):
        self.ledger, self.vault = Ledger(tmp / "ledger.sqlite3"), Vault(tmp / "vault")
        self.intake = Intake(self.ledger, self.vault, max_bytes=10 << 20, mail_limits=MailLimits(), actor="t")


def test_a_page_of_steps_waiting_in_one_folder_does_not_hold_back_another(tmp_path, samples_dir, monkeypatch):
    import service.source_steps

    monkeypatch.setattr(service.source_steps, "PAGE", 5)   # 500 in the daemon: 12 waiting make two pages
    site = Site(tmp_path)
    slow = WatchConfig(path=tmp_path / "slow", after="delete", quiet_seconds=1e9)   # waits "forever"
    quick = WatchConfig(path=tmp_path / "quick", after="delete", quiet_seconds=5)
    xml = (samples_dir / SAMPLE).read_bytes()
    for watch, n in ((slow, 12), (quick, 2)):
        watch.path.mkdir()
        with site.intake.group(now=NOW, today=TODAY):
            for i in range(n):
                path = watch.path / f"{i}.xml"
                path.write_bytes(xml.replace(b"00008006", b"%08d" % (hash((watch.path.name, i)) % 10**8)))
                site.intake.take(path, watch, now=NOW, today=TODAY)
    site.read_all()
    later = stamp(time.time() + 60)   # the quick folder's files are quiet by then, the slow ones never
    assert site.intake.finish_sources([slow, quick], now=later, today=TODAY) == 2
    assert sorted(p.name for p in quick.path.iterdir()) == []
    assert len(list(slow.path.iterdir())) == 12
    waiting = site.ledger.conn.execute("SELECT count(*) FROM source_actions WHERE state = 'waiting'").fetchone()[0]
    assert waiting == 12


def test_a_file_dated_past_2262_is_taken_moved_and_audited(tmp_path, samples_dir):
    # Its mtime in nanoseconds does not fit SQLite's 64-bit integers: it was
    # never taken (an OverflowError logged at each try), and `audit ledger`
    # raised on it. Times are held at the largest SQLite can store.
    import datetime as dt
    import os

    from agent.audit import AuditSettings, audit_ledger

    site = Site(tmp_path)
    watch = WatchConfig(path=tmp_path / "scan", after="move")
    watch.path.mkdir()
    path = watch.path / "far.xml"
    path.write_bytes((samples_dir / SAMPLE).read_bytes())
    far = dt.datetime(2300, 1, 1, tzinfo=dt.timezone.utc).timestamp()
    os.utime(path, (far, far))
    assert len(site.intake.take(path, watch, now=NOW, today=TODAY).documents) == 1
    assert site.intake.take(path, watch, now=NOW, today=TODAY).skipped   # remembered: not taken again
    site.read_all()
    assert site.intake.finish_sources([watch], now=NOW, today=TODAY) == 1
    (moved,) = (watch.path / "processed").rglob("far.xml")
    settings = AuditSettings(watched=((str(watch.path), "move"),), unhandled_after_s=0, hash_objects=False)
    assert not [v.message for v in audit_ledger(site.ledger, site.vault.root, settings,
                                                now=dt.datetime.now(dt.timezone.utc))]


def _default_site(tmp_path):
    """The default config written under `tmp_path`, its ledger and an intake on it."""
    config = tmp_path / "agent.toml"
    config.write_text(DEFAULT_CONFIG, encoding="utf-8")
    cfg = load_config(config)
    ledger = Ledger(cfg.ledger_path)
    return config, ledger, Intake(ledger, Vault(cfg.vault_dir), max_bytes=10 << 20, mail_limits=MailLimits(),
                                  actor="t")


def test_status_shows_the_sources_waiting_to_be_moved(tmp_path, samples_dir):
    # A source left in place for its quiet time (or its reading) is in
    # sight: a line of `status`, and `source_steps` in `status --json`.
    config, ledger, intake = _default_site(tmp_path)
    watch = WatchConfig(path=tmp_path / "scan", after="delete", quiet_seconds=1e9)
    watch.path.mkdir()
    (watch.path / "a.xml").write_bytes((samples_dir / SAMPLE).read_bytes())
    intake.take(watch.path / "a.xml", watch, now=NOW, today=TODAY)
    ledger.close()
    shown = CliRunner().invoke(main, ["--config", str(config), "status"])
    line = next(line for line in shown.output.splitlines() if line.strip().startswith("to move"))
    assert line.split()[:3] == ["to", "move", "1"] and "quiet_seconds" in line, shown.output
    report = json.loads(CliRunner().invoke(main, ["--config", str(config), "status", "--json"]).output)
    assert report["source_steps"] == {"waiting": 1, "oldest_at": NOW}


def test_show_names_the_waiting_step_of_every_document_an_email_brought(tmp_path, samples_dir):
    # An e-mail with two invoices: its delete waits on both documents, and
    # `show` of either one says so (the step is recorded on the first).
    import base64

    config, ledger, intake = _default_site(tmp_path)
    watch = WatchConfig(path=tmp_path / "mail", kind="email", after="delete", quiet_seconds=1e9)
    watch.path.mkdir()
    xml = (samples_dir / SAMPLE).read_bytes()
    parts = b"".join(
        b"--B\r\nContent-Type: text/xml\r\nContent-Disposition: attachment; filename=\"inv%d.xml\"\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" % n
        + base64.encodebytes(xml.replace(b"00008006", b"%08d" % n)) + b"\r\n" for n in (1, 2))
    (watch.path / "two.eml").write_bytes(
        b"From: a@example.cn\r\nTo: ap@example.cn\r\nSubject: two\r\nMessage-ID: <two@example.cn>\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"B\"\r\n\r\n" + parts + b"--B--\r\n")
    docs = intake.take(watch.path / "two.eml", watch, now=NOW, today=TODAY).documents
    ledger.close()
    assert len(docs) == 2
    for doc in docs:
        shown = CliRunner().invoke(main, ["--config", str(config), "show", f"#{doc}"])
        assert shown.exit_code == 0, shown.output
        line = next(x for x in shown.output.splitlines() if "waiting since" in x)
        assert line.rstrip().endswith("(until every document it brought is read and the file is quiet)")
        assert str(watch.path / "two.eml") in line
        detail = json.loads(CliRunner().invoke(main, ["--config", str(config), "show", f"#{doc}", "--json"]).output)
        assert [(s["state"], s["path"]) for s in detail["source_steps"]] == [("waiting", str(watch.path / "two.eml"))]
