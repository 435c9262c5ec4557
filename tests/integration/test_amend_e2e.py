"""Issue 4 end to end through the ledger, with the real CLI and real files:
a valid invoice ends queued, a bad one quarantined with its reasons, amend
makes it valid, and the events table shows who did what."""

from __future__ import annotations

import getpass
import hashlib
import json
import random
import re
import datetime as dt
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent import applications as apps
from agent.config import load_config
from agent.defaults import DEFAULT_CONFIG
from agent.ledger import Ledger
from agent.validate import ValidationSettings
from service.cli import main
from service.context import now, today
from tests.corpus.generate import make_invoice

GENUINE = "renoyuan__easyofd/original_invoice.xml"   # 2022, genuine ids
FAKE_SELLER = "ofdrw__ofdrw/999.ofd"                 # 2020, seller id fails the check digit
FAKE_BOTH = "kaihu8766-netizen__invoice-precheck/official-gd-special.xml"  # both ids fake
RIGHT_SELLER = "915001025636387295"                  # 999.ofd's seller id with a right check character
WHO = f"cli:{getpass.getuser()}"
BOB = apps.Operator("cli:bob (sudo → fapiao)", "bob")   # another approver (a real one: test_applications_accounts.py)


def approve_as_bob(cfg: Path, number: str) -> apps.Outcome:
    """What `approve NUMBER` does when another approver runs it."""
    conf = load_config(cfg)
    with Ledger(conf.ledger_path) as ledger:
        return apps.approve(ledger, number, reason="checked the paper",
                            settings=ValidationSettings.from_config(conf.validation, conf.company),
                            destinations=["outbox"], today=today(), now=now(), decider=BOB)


def write_config(tmp_path: Path, max_age_days: int = 360) -> Path:
    path = tmp_path / "agent.toml"
    text = DEFAULT_CONFIG.replace("max_age_days = 360", f"max_age_days = {max_age_days}")
    assert f"max_age_days = {max_age_days}" in text
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    """The real samples are years old: judge them without the age limit."""
    return write_config(tmp_path, max_age_days=100000)


def run(cfg: Path, *args: str):
    return CliRunner().invoke(main, ["--config", str(cfg), *args], catch_exceptions=False)


def show(cfg: Path, ref: str) -> dict:
    result = run(cfg, "show", ref, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def ingest(cfg: Path, samples_dir: Path, *names: str) -> None:
    result = run(cfg, "ingest", *(str(samples_dir / n) for n in names))
    assert result.exit_code == 0, result.output


def test_valid_ends_queued_bad_ends_quarantined_and_amend_makes_it_valid(cfg, samples_dir, expected_fields):
    ingest(cfg, samples_dir, GENUINE, FAKE_SELLER)
    genuine, bad = show(cfg, "1"), show(cfg, "2")
    assert genuine["state"] == "queued" and genuine["problems"] == []
    assert bad["state"] == "quarantined"
    assert bad["fields"]["seller_tax_id"] == expected_fields[FAKE_SELLER]["seller_tax_id"]
    assert [(p["code"], p["field"]) for p in bad["problems"]] == [("tax-id-check-digit", "seller_tax_id")]

    listed = run(cfg, "quarantine")
    assert listed.exit_code == 0
    assert "document 2  12235358  2020-08-05  10600.00  999.ofd" in listed.stdout
    assert "ERROR   tax-id-check-digit (seller_tax_id): seller tax id 91500102563638729E" in listed.stdout
    assert "销售方纳税人识别号 91500102563638729E 校验位错误" in listed.stdout
    rows = [json.loads(line) for line in run(cfg, "quarantine", "--json").stdout.splitlines()]
    assert [r["id"] for r in rows] == [2] and rows[0]["problems"][0]["message_zh"]

    # By invoice number, as an operator reads it off the paper: the OFD
    # carried the old value, so it waits for a second person.
    fixed = run(cfg, "amend", "12235358", "--set", f"seller_tax_id={RIGHT_SELLER}",
                "--reason", "scan misread the last character")
    assert fixed.exit_code == 0, fixed.output     # filed as asked, for a second person
    number = re.match(r"BL-\d{8}-0001", fixed.stdout)[0]
    assert fixed.stdout.startswith(f"{number} filed: amend of document 2, waiting for an approver other than ")
    assert "document 2: quarantined -> quarantined (held until" in fixed.stdout
    assert show(cfg, "2")["problems"][0]["code"] == "application-pending"
    assert "application-pending (seller_tax_id)" in run(cfg, "quarantine").stdout
    mine = run(cfg, "approve", number)
    assert mine.exit_code == 3 and "needs an approver other than its filer" in mine.stderr
    assert approve_as_bob(cfg, number).document_state == "queued"

    doc = show(cfg, "2")
    assert doc["state"] == "queued" and doc["problems"] == []
    assert doc["fields"]["seller_tax_id"] == RIGHT_SELLER
    assert doc["fields"]["sources"]["seller_tax_id"] == "manual"
    assert doc["fields"]["sources"]["number"] != "manual"
    assert [d["destination"] for d in doc["deliveries"]] == ["outbox"]
    history = [(e["actor"], e["from_state"], e["to_state"]) for e in doc["events"]]
    assert history[-3:] == [(BOB.actor, "quarantined", "extracted"), (BOB.actor, "extracted", "valid"),
                            (BOB.actor, "valid", "queued")]
    amended = doc["events"][-3]
    assert amended["details"] == {"source": "manual", "reason": "scan misread the last character",
                                  "application": number,
                                  "fields": {"seller_tax_id": {"old": "91500102563638729E",
                                                               "old_source": "ofd", "new": RIGHT_SELLER}}}
    assert "91500102563638729E -> 915001025636387295" in amended["reason"]
    assert doc["events"][-2]["reason"] == "after amend: valid"
    assert [a["number"] for a in doc["applications"]] == [number]
    # The human history says the same.
    assert f"{WHO}" in run(cfg, "show", "2").stdout

    empty = run(cfg, "quarantine")
    assert empty.exit_code == 0 and empty.stdout == "" and "nothing is quarantined" in empty.stderr


def test_amend_filed_for_an_approver_exits_0_and_one_that_still_fails_exits_1(cfg, samples_dir):
    ingest(cfg, samples_dir, FAKE_SELLER)
    result = run(cfg, "amend", "1", "--set", "seller_tax_id=915001025636387290", "--reason", "typed")
    # Filed and waiting for a second person is what was asked: its first line says it waits.
    assert result.exit_code == 0, result.output
    assert "waiting for an approver other than" in result.stdout.splitlines()[0]
    lines = result.stdout.splitlines()
    assert lines[2] == "document 1: quarantined -> quarantined (held until " + lines[0][:16] + " is decided)"
    assert "application-pending (seller_tax_id)" in lines[3] and "should be 5, not E" in lines[5]
    assert approve_as_bob(cfg, lines[0][:16]).document_state == "quarantined"
    doc = show(cfg, "1")
    assert doc["state"] == "quarantined" and doc["fields"]["seller_tax_id"] == "915001025636387290"
    assert [p["code"] for p in doc["problems"]] == ["tax-id-check-digit"]
    assert "should be 5, not 0" in doc["problems"][0]["message"]
    assert doc["events"][-2]["actor"] == BOB.actor and doc["events"][-2]["details"]["reason"] == "typed"
    # Carried out at once (it changes no value) and still failing: not done, exit 1, with the reasons.
    buyer = doc["fields"]["buyer_name"]
    again = run(cfg, "amend", "1", "--set", f"buyer_name={buyer}", "--reason", "as on the paper")
    assert again.exit_code == 1, again.output
    assert "filed and approved by" in again.stdout and "should be 5, not 0" in again.stdout


def test_default_age_limit_expired_samples_accepted_or_rejected(tmp_path, samples_dir):
    cfg = write_config(tmp_path)  # the shipped default: 360 days
    fresh = make_invoice(random.Random(4), "digital", dt.date.today())
    (tmp_path / "fresh.pdf").write_bytes(fresh.data)
    result = run(cfg, "ingest", str(tmp_path / "fresh.pdf"), str(samples_dir / FAKE_SELLER),
                 str(samples_dir / GENUINE))
    assert result.exit_code == 0, result.output
    assert show(cfg, "1")["state"] == "queued"  # a recent generated invoice passes
    assert show(cfg, fresh.expected["number"])["id"] == 1
    by_amount = [json.loads(x) for x in run(cfg, "quarantine", "--json", "--sort", "amount").stdout.splitlines()]
    assert [r["id"] for r in by_amount] == [3, 2]  # 25254.62 before 10600.00
    assert {p["code"] for p in by_amount[1]["problems"]} == {"expired", "tax-id-check-digit"}
    assert [r["id"] for r in map(json.loads, run(cfg, "quarantine", "--json", "--sort", "date",
                                                 "--limit", "1").stdout.splitlines())] == [3]

    accepted = run(cfg, "accept", "3", "--reason", "finance books it late (FIN-88)")
    assert accepted.exit_code == 0, accepted.output
    first, second = accepted.stdout.splitlines()
    assert re.fullmatch(r"BL-\d{8}-0001 filed and approved by \S+: accept of document 3", first)
    assert second == "document 3: quarantined -> valid -> queued (accepted over expired)"
    refused = run(cfg, "reject", "2", "--reason", "test invoice from the OFD library")
    assert refused.exit_code == 2 and "add --yes" in refused.stderr and show(cfg, "2")["state"] == "quarantined"
    rejected = run(cfg, "reject", "2", "--reason", "test invoice from the OFD library", "--yes")
    assert rejected.stdout.splitlines()[1] == "document 2: quarantined -> rejected"

    accept_event = [e for e in show(cfg, "3")["events"] if e["to_state"] == "valid"][0]
    assert accept_event["actor"] == WHO
    assert accept_event["reason"] == f"{first[:16]} accepted over expired: finance books it late (FIN-88)"
    assert accept_event["details"]["application"] == first[:16]
    assert [p["code"] for p in accept_event["details"]["overridden"]] == ["expired"]
    last = show(cfg, "2")["events"][-1]
    assert (last["actor"], last["to_state"], last["details"]) == (
        WHO, "rejected", {"reason": "test invoice from the OFD library", "application": rejected.stdout[:16]})
    again = run(cfg, "amend", "2", "--set", f"seller_tax_id={RIGHT_SELLER}", "--reason", "x")
    assert again.exit_code == 1 and "document 2 is rejected" in again.stderr


def test_amend_accept_and_reject_never_change_the_vault(cfg, tmp_path, samples_dir):
    ingest(cfg, samples_dir, FAKE_SELLER, FAKE_BOTH)
    vault = tmp_path / "state" / "vault"

    def digest() -> dict[str, str]:
        return {str(p.relative_to(vault)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(vault.rglob("*")) if p.is_file()}

    before = digest()
    sha = show(cfg, "1")["sha256"]
    assert before[f"objects/{sha[:2]}/{sha[2:4]}/{sha}"] == sha
    assert run(cfg, "amend", "1", "--set", f"seller_tax_id={RIGHT_SELLER}", "--set", "total=10600.00",
               "--set", "date=2020-08-05", "--reason", "paper").exit_code == 0   # filed, held: a conflict
    assert run(cfg, "accept", "2", "--reason", "demo").exit_code == 0
    assert digest() == before
    assert (samples_dir / FAKE_SELLER).read_bytes() == (vault / f"objects/{sha[:2]}/{sha[2:4]}/{sha}").read_bytes()


def test_references_and_bad_input_are_refused_clearly(cfg, tmp_path, samples_dir):
    xml = (samples_dir / FAKE_BOTH).read_bytes()
    (tmp_path / "a.xml").write_bytes(xml)
    (tmp_path / "b.xml").write_bytes(xml + b"\n<!-- downloaded again -->\n")  # other bytes, same invoice
    assert run(cfg, "ingest", str(tmp_path / "a.xml"), str(tmp_path / "b.xml")).exit_code == 0
    assert show(cfg, "2")["state"] == "duplicate"
    events_before = len(show(cfg, "1")["events"])

    ambiguous = run(cfg, "amend", "23440000000000100001", "--set", "total=2.12", "--reason", "x")
    assert ambiguous.exit_code == 1
    assert ("'23440000000000100001' matches 2 documents: 1 (quarantined, a.xml); "
            "2 (duplicate, b.xml); give the one you mean as #ID (the id alone)") in ambiguous.stderr
    missing = run(cfg, "accept", "77", "--reason", "x")
    assert missing.exit_code == 1 and "no document matches '77'" in missing.stderr

    for args, message in [
        (("amend", "1", "--set", "colour=red", "--reason", "x"), "--set colour: unknown field"),
        (("amend", "1", "--set", "total=2.123", "--reason", "x"), "--set total=2.123: not an amount"),
        (("amend", "1", "--set", "date=23/02/2023", "--reason", "x"), "--set date=23/02/2023: not a real date"),
        (("amend", "1", "--set", "number", "--reason", "x"), "expected name=value"),
        (("amend", "1", "--set", "total=2.12", "--reason", " "), "amend needs a reason"),
        (("amend", "1", "--set", "total=2.12"), "Missing option '--reason'"),
        (("accept", "1", "--reason", "  "), "accept needs a reason"),
        (("decline", "BL-20260101-0001"), "Missing option '--reason'"),
    ]:
        result = run(cfg, *args)
        assert result.exit_code == 2 and message in result.output, (args, result.output)
    assert "Missing option '--reason'" in run(cfg, "reject", "1").output
    assert run(cfg, "reject", "1").exit_code == 2
    after = show(cfg, "1")
    assert after["state"] == "quarantined" and len(after["events"]) == events_before


def test_help_teaches_with_examples(cfg):
    for name, example in [("quarantine", "quarantine --sort amount"),
                          ("amend", "amend 12 --set number=12345678 --set date=2024-03-15"),
                          ("accept", "accept 12 --reason"), ("reject", "reject 12 --reason"),
                          ("reopen", "reopen 12 --reason"), ("requests", "requests --state pending"),
                          ("approve", "approve BL-20261203-0007"), ("decline", "decline BL-20261203-0007 --reason")]:
        result = run(cfg, name, "--help")
        assert result.exit_code == 0 and example in result.stdout, name
