"""Backup state in a real ledger against real targets: SeaweedFS with enforced
access keys (two buckets standing for two locations) and a file:// folder."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import random
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.backup.base import manifest_key, object_key, open_target
from agent.backup.sidecars import sidecars_on
from agent.backup.mirror import mirror_step, snapshot_step
from agent.backup.verification import verify_step
from agent.backup.restore import RestoreRefused, restore
from agent.config import load_config
from agent.errors import NotFound
from agent.ledger import Ledger, utc
from agent.vault import Vault
from service.cli import main
from tests.support.seaweed import seaweed  # noqa: F401  (fixture)

SAMPLE = "renoyuan__easyofd/original_invoice.xml"
T0 = dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.timezone.utc)


def invoice_xml(samples_dir: Path, n: int) -> bytes:
    """A distinct valid XML invoice: the sample with invoice number `n`."""
    return (samples_dir / SAMPLE).read_bytes().replace(b"00008006", f"{n:08d}".encode())


def write_config(root: Path, backups: list[dict], policy: str = "") -> Path:
    lines = ['[agent]\nstate_dir = "state"\n', "[validation]\nmax_age_days = 100000\n",
             f"[backup_policy]\n{policy}\n"]
    for b in backups:
        lines.append("[[backup]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in b.items()))
    path = root / "agent.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    path.chmod(0o600)  # it holds access keys
    return path


def cli(config: Path, *args: str):
    return CliRunner().invoke(main, ["--config", str(config), *args], catch_exceptions=False)


def ingest(config: Path, samples_dir: Path, numbers: range, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in numbers:
        (folder / f"inv-{n}.xml").write_bytes(invoice_xml(samples_dir, n))
    result = cli(config, "ingest", str(folder))
    assert result.exit_code == 0, result.output


def drain(ledger: Ledger, vault: Vault, target, now: dt.datetime = T0):
    rng = random.Random(7)
    while True:
        out = mirror_step(ledger, vault, target, now=now, rng=rng)
        assert out.unavailable is None and out.paused is None, out
        if not out.more:
            return


@pytest.fixture
def setup(tmp_path, seaweed, samples_dir):
    bucket = seaweed.make_bucket()
    (tmp_path / "nas").mkdir()
    config = write_config(tmp_path, [seaweed.target_config(bucket, prefix="site-a", name="s3a"),
                                     {"name": "nas", "url": "file://nas"}])
    cfg = load_config(config)
    return config, cfg, bucket


def test_both_targets_hold_every_object_and_sidecar_and_the_day_manifest(setup, samples_dir, tmp_path, seaweed):
    config, cfg, bucket = setup
    ingest(config, samples_dir, range(1, 6), tmp_path / "in")
    targets = [open_target(b) for b in cfg.backups]
    with Ledger(cfg.ledger_path) as ledger:
        vault = Vault(cfg.vault_dir)
        shas = sorted(vault.iter_objects())
        assert len(shas) == 5
        status = json.loads(cli(config, "backup", "status", "--json").output)
        assert status["backed_up"] == 0 and status["objects"] == 5
        # Not queued yet (no backup thread ran) still counts as backlog.
        assert [t["backlog"] for t in status["targets"]] == [5, 5]
        assert all(t["backlog_oldest"] for t in status["targets"])
        drain(ledger, vault, targets[0])
        # min_copies defaults to every target: one of two is not enough.
        assert ledger.backed_up_count(["s3a", "nas"], 0) == {"objects": 5, "backed_up": 0, "documents": 5,
                                                              "documents_backed_up": 0}
        drain(ledger, vault, targets[1])
        assert ledger.backed_up_count(["s3a", "nas"], 0) == {"objects": 5, "backed_up": 5, "documents": 5,
                                                              "documents_backed_up": 5}
    for sha in shas:  # the vault describes its objects too
        assert vault.read_sidecar(sha)["documents"][0]["state"] == "valid"
    for target in targets:
        for sha in shas:
            assert target.head(object_key(sha)).sha256 == sha
            side = sidecars_on(target)[sha]
            assert side["documents"][0]["state"] == "valid"
            assert side["documents"][0]["fields"]["number"].lstrip("0")
            assert side["documents"][0]["sources"][0]["original_name"].startswith("inv-")
        manifest = json.loads(target.get(manifest_key(T0.date())))
        assert sorted(o["sha256"] for o in manifest["objects"]) == shas
    # Stored in the bucket under the target's prefix, keyed by SHA-256.
    raw = seaweed.client().get_object(Bucket=bucket, Key="site-a/" + object_key(shas[0]))["Body"].read()
    assert hashlib.sha256(raw).hexdigest() == shas[0]
    status = json.loads(cli(config, "backup", "status", "--json").output)
    by_name = {t["name"]: t for t in status["targets"]}
    assert status["backed_up"] == 5
    for name in ("s3a", "nas"):
        assert by_name[name]["objects"] == 5 and by_name[name]["backlog"] == 0
        assert by_name[name]["bytes"] == sum((cfg.vault_dir / "objects" / s[:2] / s[2:4] / s).stat().st_size
                                             for s in shas)
        assert by_name[name]["last_put_at"] and by_name[name]["paused_error"] is None


def test_wrong_keys_pause_the_target_with_one_error_line_and_status(tmp_path, seaweed, samples_dir, caplog):
    from service.backup import BackupService

    bucket = seaweed.make_bucket()
    bad = {**seaweed.target_config(bucket, name="offsite"), "secret_access_key": "not-the-secret"}
    config = write_config(tmp_path, [bad], policy="probe_interval_s = 0.3")
    ingest(config, samples_dir, range(1, 4), tmp_path / "in")
    cfg = load_config(config)
    service = BackupService(cfg).start()
    try:
        with caplog.at_level(logging.INFO, logger="fapiao.backup"):
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                with Ledger(cfg.ledger_path) as ledger:
                    if ledger.backup_target("offsite")["paused_error"]:
                        break
                time.sleep(0.1)
            time.sleep(1.0)  # several probes fail meanwhile: still one error line
    finally:
        service.stop()
        service.join(10)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert errors[0].startswith("backup paused: backup target 'offsite': access denied") and bucket in errors[0]
    assert "not-the-secret" not in errors[0]
    status = json.loads(cli(config, "backup", "status", "--json").output)
    target = status["targets"][0]
    assert target["paused_error"] and bucket in target["paused_error"]
    # Nothing was marked failed: the objects wait for the fix.
    assert target["backlog"] == 3 and target["failed"] == 0 and target["objects"] == 0
    assert "PAUSED" in cli(config, "backup", "status").output
    # Fixed credentials: the first success resumes the target and the backlog drains.
    with Ledger(cfg.ledger_path) as ledger:
        good = open_target(seaweed.target_config(bucket, name="offsite"))
        out = mirror_step(ledger, Vault(cfg.vault_dir), good, now=dt.datetime.now(dt.timezone.utc),
                          rng=random.Random(1))
        assert out.resumed and out.put == 3
        assert ledger.backup_target("offsite")["paused_error"] is None


def test_verify_finds_an_overwritten_object_and_repairs_it(setup, samples_dir, tmp_path, seaweed):
    config, cfg, bucket = setup
    ingest(config, samples_dir, range(1, 6), tmp_path / "in")
    target = open_target(cfg.backups[0])
    with Ledger(cfg.ledger_path) as ledger:
        drain(ledger, Vault(cfg.vault_dir), target)
    victim = sorted(Vault(cfg.vault_dir).iter_objects())[2]
    seaweed.client().put_object(Bucket=bucket, Key="site-a/" + object_key(victim), Body=b"bit rot")
    result = cli(config, "backup", "verify", "--target", "s3a", "--full")
    assert result.exit_code == 0, result.output
    assert "5 checked, 4 ok, 0 missing, 1 mismatched, 1 repaired" in result.output
    assert f"mismatch: {victim}: repaired" in result.output
    raw = seaweed.client().get_object(Bucket=bucket, Key="site-a/" + object_key(victim))["Body"].read()
    assert hashlib.sha256(raw).hexdigest() == victim
    again = cli(config, "backup", "verify", "--target", "s3a", "--full", "--json")
    assert json.loads(again.stdout)["mismatch"] == 0
    status = json.loads(cli(config, "backup", "status", "--json").output)
    assert status["targets"][0]["last_verify"]["checked"] == 5
    # The daily job reads a sample: here at least 2, of 0 %, drawn without repeats.
    with Ledger(cfg.ledger_path) as ledger:
        seen = []
        report = verify_step(ledger, Vault(cfg.vault_dir), target, now=T0, rng=random.Random(3),
                             fraction=0.0, minimum=2, progress=lambda i, n: seen.append((i, n)))
        assert (report.checked, report.ok, report.full) == (2, 2, False) and seen == [(1, 2), (2, 2)]
        assert ledger.backup_target("s3a")["last_verify"]["checked"] == 2


def test_restore_takes_the_snapshot_and_recovers_later_documents_from_sidecars(setup, samples_dir, tmp_path):
    config, cfg, _ = setup
    ingest(config, samples_dir, range(1, 4), tmp_path / "in1")
    nas = open_target(cfg.backups[1])
    with Ledger(cfg.ledger_path) as ledger:
        vault = Vault(cfg.vault_dir)
        drain(ledger, vault, nas)
        snapshot_step(ledger, nas, now=T0)
    ingest(config, samples_dir, range(4, 6), tmp_path / "in2")
    with Ledger(cfg.ledger_path) as ledger:
        drain(ledger, vault, nas, now=T0 + dt.timedelta(minutes=5))
        before = {d.sha256: (d.state, d.invoice_number, d.received_at) for d in ledger.list_documents(limit=0)}
    out = tmp_path / "restored"
    report = restore(nas, out / "state", now=T0 + dt.timedelta(hours=1), actor="test")
    assert report.objects == 5 and report.recovered_documents == 2 and not report.problems
    with Ledger(out / "state" / "ledger.sqlite3") as ledger:
        after = {d.sha256: (d.state, d.invoice_number, d.received_at) for d in ledger.list_documents(limit=0)}
    # The snapshot's as they were; the two captured after it read again
    # (their sidecars are not ledger truth), arriving when they did.
    later = {sha for sha in before if after[sha] != before[sha]}
    assert len(later) == 2 and {after[s] for s in later} == {("captured", None, before[s][2]) for s in later}
    restored_vault = Vault(out / "state" / "vault")
    assert all(restored_vault.verify(s) for s in before)
    with pytest.raises(RestoreRefused):
        restore(nas, out / "state", now=T0, actor="test")
    # --at before every snapshot: refused with a clear error, not an empty ledger.
    with pytest.raises(NotFound, match="no ledger snapshot at or before"):
        restore(nas, tmp_path / "early" / "state", now=T0, actor="test", at=T0 - dt.timedelta(days=1))


def test_a_vault_object_gone_missing_fails_its_row_not_the_target(setup, samples_dir, tmp_path):
    config, cfg, _ = setup
    ingest(config, samples_dir, range(1, 3), tmp_path / "in")
    vault = Vault(cfg.vault_dir)
    lost = sorted(vault.iter_objects())[0]
    vault.path(lost).unlink()
    with Ledger(cfg.ledger_path) as ledger:
        out = mirror_step(ledger, vault, open_target(cfg.backups[1]), now=T0, rng=random.Random(1))
        assert (out.put, out.failed, out.paused) == (1, 1, None)
        t = ledger.backup_target("nas")
        assert (t["objects"], t["failed"], t["backlog"]) == (1, 1, 0)


def test_a_document_that_changes_after_backup_gets_its_sidecar_put_again(setup, samples_dir, tmp_path):
    from agent.model import State

    config, cfg, _ = setup
    ingest(config, samples_dir, range(1, 3), tmp_path / "in")
    nas = open_target(cfg.backups[1])
    with Ledger(cfg.ledger_path) as ledger:
        vault = Vault(cfg.vault_dir)
        drain(ledger, vault, nas)
        doc = ledger.list_documents(limit=0)[0]
        ledger.transition(doc.id, State.QUARANTINED, now="2026-05-01T08:01:00.000000Z", actor="test",
                          reason="held by a person")
        later = T0 + dt.timedelta(minutes=2)
        out = mirror_step(ledger, vault, nas, now=later, rng=random.Random(1))
        assert out.put == 0 and out.failed == 0
        assert ledger.backup_target("nas")["stale_sidecars"] == 0
        assert ledger.backup_target("nas")["objects"] == 2
    side = sidecars_on(nas)[doc.sha256]
    assert side["documents"][0]["state"] == "quarantined"
    assert vault.read_sidecar(doc.sha256) == side


def test_snapshots_follow_retention_and_restore_picks_the_one_at_a_time(setup, samples_dir, tmp_path):
    config, cfg, _ = setup
    ingest(config, samples_dir, range(1, 3), tmp_path / "in")
    nas = open_target(cfg.backups[1])
    # Hourly snapshots over three days: the hours of the last two days stay,
    # older ones thin out to one per day.
    start = dt.datetime(2026, 5, 1, tzinfo=dt.timezone.utc)
    times = [start + dt.timedelta(hours=h) for h in range(0, 72, 6)]
    with Ledger(cfg.ledger_path) as ledger:
        drain(ledger, Vault(cfg.vault_dir), nas)   # the originals too: a restore missing them fails
        for t in times:
            snapshot_step(ledger, nas, now=t)
        lid = ledger.ledger_id(now=utc(start))
        assert ledger.backup_target("nas")["last_snapshot"].endswith(f"20260503T180000Z-{lid}.sqlite.gz")
    kept = sorted(info.key for info in nas.list("ledger/"))
    assert f"ledger/ledger-20260501T000000Z-{lid}.sqlite.gz" not in kept  # superseded on its day (UTC)
    assert f"ledger/ledger-20260501T060000Z-{lid}.sqlite.gz" not in kept
    assert f"ledger/ledger-20260501T180000Z-{lid}.sqlite.gz" in kept      # the newest of its day
    assert f"ledger/ledger-20260502T000000Z-{lid}.sqlite.gz" in kept      # within two days: hourly
    assert len(kept) == 9
    out = tmp_path / "at"
    result = CliRunner().invoke(main, ["--config", str(config), "backup", "restore", "--from", "nas",
                                       "--to", str(out), "--at", "2026-05-02T07:00:00", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["snapshot"] == f"ledger/ledger-20260502T060000Z-{lid}.sqlite.gz"
    status = json.loads(cli(out / "restored.toml", "status", "--json").stdout)
    assert sum(status["states"].values()) == 2


def test_objects_put_off_by_an_outage_are_due_again_when_the_target_answers(tmp_path, samples_dir):
    (tmp_path / "nas").mkdir()
    config = write_config(tmp_path, [{"name": "nas", "url": "file://nas"}])
    ingest(config, samples_dir, range(1, 4), tmp_path / "in")
    cfg = load_config(config)
    (tmp_path / "nas").rename(tmp_path / "unmounted")
    nas = open_target(cfg.backups[0])
    with Ledger(cfg.ledger_path) as ledger:
        vault = Vault(cfg.vault_dir)
        now = dt.datetime.now(dt.timezone.utc)
        out = mirror_step(ledger, vault, nas, now=now, rng=random.Random(1))
        assert out.unavailable and "nas" in out.unavailable and out.put == 0
        t = ledger.backup_target("nas")
        assert (t["backlog"], t["failed"], t["paused_error"]) == (3, 0, None) and t["last_error"]
        # The object tried is put off; the others stay due.
        assert len(ledger.due_backups("nas", now=utc(now))) == 2
        (tmp_path / "unmounted").rename(tmp_path / "nas")
        assert ledger.retry_backups_now("nas", now=utc(now)) == 1
        drain(ledger, vault, nas, now=now)
        assert ledger.backup_target("nas")["objects"] == 3


def test_verify_reports_what_it_cannot_repair_and_exits_1(setup, samples_dir, tmp_path):
    config, cfg, _ = setup
    ingest(config, samples_dir, range(1, 3), tmp_path / "in")
    nas = open_target(cfg.backups[1])
    vault = Vault(cfg.vault_dir)
    with Ledger(cfg.ledger_path) as ledger:
        drain(ledger, vault, nas)
    lost = sorted(vault.iter_objects())[0]
    (tmp_path / "nas" / object_key(lost)).unlink()
    vault.path(lost).unlink()
    result = CliRunner().invoke(main, ["--config", str(config), "backup", "verify", "--target", "nas", "--full"])
    assert result.exit_code == 1
    assert f"missing: {lost}: vault copy missing or corrupt; requeued" in result.stdout
    assert "2 checked, 1 ok, 1 missing, 0 mismatched, 0 repaired" in result.stdout
    with Ledger(cfg.ledger_path) as ledger:
        assert ledger.backup_target("nas")["backlog"] == 1


def test_raw_emails_are_backed_up_and_restored_without_becoming_documents(tmp_path, samples_dir):
    import email.message

    from agent.mail import parse_message
    from agent.capture import capture_bytes

    msg = email.message.EmailMessage()
    msg["Message-ID"] = "<raw-1@example.cn>"
    msg["From"] = "supplier@example.cn"
    msg.set_content("see attached")
    msg.add_attachment(invoice_xml(samples_dir, 4242), maintype="application", subtype="xml",
                       filename="发票.xml")
    raw = msg.as_bytes()
    nas = tmp_path / "nas"
    nas.mkdir()
    target = open_target({"name": "nas", "url": f"file://{nas}"})
    with Ledger(tmp_path / "state" / "ledger.sqlite3") as ledger:
        vault = Vault(tmp_path / "state" / "vault")
        message_sha = vault.put_bytes(raw).sha256
        att = parse_message(raw).attachments[0]
        capture_bytes(ledger, vault, att.data, name=att.filename, source_kind="email", source="mail",
                      now=utc(T0), actor="t", details={"message_id": "<raw-1@example.cn>",
                                                        "message_sha256": message_sha})
        drain(ledger, vault, target)
        assert target.head(object_key(message_sha)).size == len(raw)
        side = sidecars_on(target)[message_sha]
        assert side["kind"] == "email-message" and side["message_id"] == "<raw-1@example.cn>"
        docs_before = len(ledger.list_documents(limit=0))
    restored = tmp_path / "restored"
    restore(target, restored / "state", now=T0, actor="t")
    with Ledger(restored / "state" / "ledger.sqlite3") as ledger:
        assert len(ledger.list_documents(limit=0)) == docs_before == 1
    assert Vault(restored / "state" / "vault").verify(message_sha)


@pytest.mark.parametrize("attachment", ["refused", "none"])
def test_an_email_that_gave_no_document_is_backed_up_all_the_same(tmp_path, attachment):
    # Its only copy may be the vault (the watch deletes taken files), so it is
    # mirrored from its refusal: every attachment refused, or none at all.
    import email.message

    from agent.config import WatchConfig
    from agent.mail import MailLimits
    from service.intake import Intake

    msg = email.message.EmailMessage()
    msg["Message-ID"] = f"<{attachment}@example.cn>"
    msg["From"] = "supplier@example.cn"
    msg["Subject"] = "发票"
    msg.set_content("see attached")
    if attachment == "refused":
        msg.add_attachment(b"MZ\x90\x00 not an invoice", maintype="application", subtype="octet-stream",
                           filename="invoice.exe")
    raw = msg.as_bytes()
    drop = tmp_path / "mail"
    drop.mkdir()
    (drop / "m.eml").write_bytes(raw)
    nas = tmp_path / "nas"
    nas.mkdir()
    target = open_target({"name": "nas", "url": f"file://{nas}"})
    with Ledger(tmp_path / "state" / "ledger.sqlite3") as ledger:
        vault = Vault(tmp_path / "state" / "vault")
        intake = Intake(ledger, vault, max_bytes=10 << 20, mail_limits=MailLimits(), actor="t")
        got = intake.take(drop / "m.eml", WatchConfig(path=drop, kind="email"), now=utc(T0), today=T0.date())
        assert got.documents == [] and not got.retry
        (refusal,) = ledger.refusals()
        sha = hashlib.sha256(raw).hexdigest()
        assert refusal["sha256"] == sha
        assert ("no-attachment" in refusal["reason"]) == (attachment == "none")
        drain(ledger, vault, target)
        assert target.head(object_key(sha)).size == len(raw)
        side = sidecars_on(target)[sha]
        assert side["kind"] == "email-message" and side["document_ids"] == []
        assert side["refusals"][0]["reason"] == refusal["reason"]
    restore(target, tmp_path / "restored" / "state", now=T0, actor="t")
    assert Vault(tmp_path / "restored" / "state" / "vault").verify(sha)
    with Ledger(tmp_path / "restored" / "state" / "ledger.sqlite3") as ledger:
        assert ledger.list_documents(limit=0) == []
        # No snapshot was ever stored: the sidecar alone brings back why it
        # was refused, so `refused` and the audit explain the object again.
        restored = [(r["name"], r["reason"], r["sha256"]) for r in ledger.refusals()]
        assert restored == [(refusal["name"], refusal["reason"], sha)]
        ledger.restore_documents(sha, len(raw), side, target="nas", now=utc(T0), actor="t")
        assert len(ledger.refusals()) == 1, "restored once, however often the sidecar is read"


def test_a_pause_left_from_the_last_run_is_reported_once_at_start(tmp_path, samples_dir, caplog):
    from service.backup import BackupService

    (tmp_path / "nas").mkdir()
    config = write_config(tmp_path, [{"name": "nas", "url": "file://nas"}], policy="workers = 4")
    ingest(config, samples_dir, range(1, 3), tmp_path / "in")
    cfg = load_config(config)
    with Ledger(cfg.ledger_path) as ledger:
        assert ledger.pause_backup_target("nas", "backup target 'nas': disk not mounted", now=utc(T0))
    with caplog.at_level(logging.INFO, logger="fapiao.backup"):
        service = BackupService(cfg).start()
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                with Ledger(cfg.ledger_path) as ledger:
                    if ledger.backup_target("nas")["paused_error"] is None:
                        break  # the folder works: the first put resumed it
                time.sleep(0.1)
        finally:
            service.stop()
            service.join(10)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == ["backup still paused: backup target 'nas': disk not mounted; "
                      "it resumes by itself once a probe succeeds"]


def test_documents_restored_past_validation_are_queued_again_for_every_destination(tmp_path, samples_dir):
    # Captured after the last snapshot and already queued: their delivery rows
    # were only in the lost ledger, so the restore must not leave them
    # `queued` with nothing to deliver. They come back `captured` (a sidecar
    # is not ledger truth) and reading them again queues them.
    from agent.pipeline import process_captured
    from agent.validate import ValidationSettings

    (tmp_path / "nas").mkdir()
    (tmp_path / "out").mkdir()
    config = write_config(tmp_path, [{"name": "nas", "url": "file://nas"}])
    config.write_text(config.read_text() + '\n[[destination]]\nname = "erp"\nurl = "folder://out"\n')
    cfg = load_config(config)
    nas = open_target(cfg.backups[0])
    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    with Ledger(cfg.ledger_path) as ledger:
        snapshot_step(ledger, nas, now=T0 - dt.timedelta(hours=1))  # the last snapshot: before them
    ingest(config, samples_dir, range(1, 3), tmp_path / "in")
    with Ledger(cfg.ledger_path) as ledger:
        assert {d.state for d in ledger.list_documents(limit=0)} == {"queued"}
        drain(ledger, Vault(cfg.vault_dir), nas)
    out = tmp_path / "restored" / "state"   # the live ledger is lost; restore from "nas"
    report = restore(nas, out, now=T0, actor="test")
    assert report.recovered_documents == 2
    with Ledger(out / "ledger.sqlite3") as ledger:
        docs = ledger.list_documents(limit=0)
        assert {d.state for d in docs} == {"captured"}
        assert "its sidecar said queued" in ledger.events(docs[0].id)[-1].reason
        for d in docs:
            process_captured(ledger, Vault(out / "vault"), d.id, settings=ValidationSettings(max_age_days=100000),
                             destinations=["erp"], today=T0.date(), now=utc(T0), actor="daemon", ocr=False)
        for d in docs:
            assert ledger.get(d.id).state == "queued"
            assert [r["destination"] for r in ledger.deliveries_of(d.id)] == ["erp"]


def test_documents_rebuilt_from_sidecars_keep_their_ids(tmp_path, samples_dir):
    # Captured after the last snapshot: rebuilt from their sidecars, each
    # under the id it had (applications, exports and people refer to it),
    # not renumbered in the order the restore meets the objects.
    (tmp_path / "nas").mkdir()
    config = write_config(tmp_path, [{"name": "nas", "url": "file://nas"}])
    cfg = load_config(config)
    nas = open_target(cfg.backups[0])
    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    with Ledger(cfg.ledger_path) as ledger:
        snapshot_step(ledger, nas, now=T0 - dt.timedelta(hours=1))
    ingest(config, samples_dir, range(1, 9), tmp_path / "in")
    with Ledger(cfg.ledger_path) as ledger:
        ids = {d.id: d.sha256 for d in ledger.list_documents(limit=0)}
        drain(ledger, Vault(cfg.vault_dir), nas)
    assert len(ids) == 8
    out = tmp_path / "restored" / "state"
    assert restore(nas, out, now=T0, actor="test").recovered_documents == 8
    with Ledger(out / "ledger.sqlite3") as ledger:
        assert {d.id: d.sha256 for d in ledger.list_documents(limit=0)} == ids


def test_a_sidecar_with_odd_refusals_restores_what_it_can_once(tmp_path):
    # A sidecar is a file on a backup target (hand-edited, damaged, or
    # tampered with): a field of the wrong kind must not fail the restore of
    # the object, let alone of every object after it.
    sha = "ab" * 32
    sidecar = {"sha256": sha, "kind": "refused-file", "document_ids": [], "refusals": [
        {"at": "2026-12-01T08:00:00.000000Z", "source": "/srv/scan", "name": "junk.bin",
         "reason": "unsupported-format: not a PDF"},
        {"reason": "no-invoice"},                                   # no time: the restore's
        {"at": ["not", "text"], "source": {"a": 1}, "name": 5, "reason": "odd"},
        {"at": "2026-12-01T08:00:00.000000Z", "reason": None},      # no reason: nothing to say
        "not a refusal", None]}
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        for hours in range(2):   # read again, later (a batch and its older sidecar, a resumed restore): once
            assert ledger.restore_documents(sha, 10, sidecar, target="nas", now=utc(T0 + dt.timedelta(hours=hours)),
                                            actor="t") == 0
        rows = sorted(((r["name"] or ""), r["reason"], r["at"]) for r in ledger.refusals())
        assert rows == [("", "no-invoice", utc(T0)), ("5", "odd", '["not", "text"]'),
                        ("junk.bin", "unsupported-format: not a PDF", "2026-12-01T08:00:00.000000Z")]
        assert all(r["sha256"] == sha for r in ledger.refusals())
        ledger.restore_documents(sha, 10, {**sidecar, "refusals": "not a list"}, target="nas", now=utc(T0),
                                 actor="t")


def test_restore_at_a_time_leaves_out_refusals_made_after_it(tmp_path, samples_dir):
    # `backup restore --at T` gives the ledger as it was at T: a file
    # refused after T (its sidecar says when) is not brought back.
    from agent.config import WatchConfig
    from agent.mail import MailLimits
    from service.intake import Intake

    scan = tmp_path / "scan"
    scan.mkdir()
    nas = tmp_path / "nas"
    nas.mkdir()
    target = open_target({"name": "nas", "url": f"file://{nas}"})
    watch = WatchConfig(path=scan, kind="scanner")
    with Ledger(tmp_path / "state" / "ledger.sqlite3") as ledger:
        vault = Vault(tmp_path / "state" / "vault")
        intake = Intake(ledger, vault, max_bytes=10 << 20, mail_limits=MailLimits(), actor="t")
        (scan / "inv.xml").write_bytes(invoice_xml(samples_dir, 1))
        assert intake.take(scan / "inv.xml", watch, now=utc(T0), today=T0.date()).documents
        drain(ledger, vault, target)
        snapshot_step(ledger, target, now=T0)
        later = T0 + dt.timedelta(minutes=10)
        (scan / "junk.bin").write_bytes(b"\x00\x01 not an invoice")
        assert intake.take(scan / "junk.bin", watch, now=utc(later), today=later.date()).refused
        drain(ledger, vault, target, now=later)
    early = restore(target, tmp_path / "early" / "state", now=T0 + dt.timedelta(hours=1), actor="t",
                    at=T0 + dt.timedelta(minutes=5))
    assert early.skipped_after_at == 1
    with Ledger(tmp_path / "early" / "state" / "ledger.sqlite3") as ledger:
        assert ledger.refusals() == []
    full = restore(target, tmp_path / "full" / "state", now=T0 + dt.timedelta(hours=1), actor="t")
    assert full.skipped_after_at == 0
    with Ledger(tmp_path / "full" / "state" / "ledger.sqlite3") as ledger:
        assert [r["name"] for r in ledger.refusals()] == ["junk.bin"]
