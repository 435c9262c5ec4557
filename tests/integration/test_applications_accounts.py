"""补录 applications with real accounts (issue 14): users and groups made
with useradd/groupadd, the real CLI run as them through setpriv (as the
service user with the person's SUDO_UID, as `sudo -u fapiao` leaves it),
everything removed afterwards. Four eyes on a conflict, an approver who is
someone else, self-approval of an empty field (and its refusal when the
config turns it off), a faked LOGNAME, two filers at once, and the trail
and the ledger sound at the end."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from agent.ledger import Ledger
from tests.integration.test_access_accounts import (REPO, Accounts, _as, _config, _root_owned, accounts,  # noqa: F401
                                                    cli, pytestmark, site)
from tests.support.audit import assert_ledger_sound

AUTHORITY = ("qr", "xml", "ofd")
FAKE = {"LOGNAME": "财务总监", "USER": "财务总监"}


@pytest.fixture
def team(accounts):
    """Two more people: `both` may amend and approve, `approver` only approves."""
    tag = secrets.token_hex(3)
    made = []
    people = {"both": (f"fboth{tag}", f"{accounts.read_group},{accounts.amend_group},{accounts.approve_group}"),
              "approver": (f"fappr{tag}", f"{accounts.read_group},{accounts.approve_group}")}
    try:
        for name, groups in people.values():
            subprocess.run(["useradd", "-M", "-N", "-d", "/nonexistent", "-s", "/usr/sbin/nologin", "-G", groups,
                            name], check=True)
            made.append(name)
        yield {role: name for role, (name, _) in people.items()}
    finally:
        for name in made:
            subprocess.run(["userdel", name], check=False)


def as_person(acc: Accounts, person: str, cfg: Path, *args: str, env: dict | None = None):
    """`sudo -u <service> fapiao-agent ARGS` run by `person`: the service user with their SUDO_UID."""
    return cli(acc.svc, cfg, *args, env={"SUDO_UID": str(acc.uid(person)), **FAKE, **(env or {})})


def documents(acc: Accounts, cfg: Path) -> list[dict]:
    listed = cli(acc.reader, cfg, "list", "--json", "--limit", "0")
    assert listed.returncode == 0, listed.stderr
    out = []
    for row in map(json.loads, listed.stdout.splitlines()):
        shown = cli(acc.reader, cfg, "show", str(row["id"]), "--json")
        assert shown.returncode == 0, shown.stderr
        out.append(json.loads(shown.stdout.splitlines()[0]))
    return out


def number_of(result) -> str:
    found = re.match(r"(BL-\d{8}-\d{4}) ", result.stdout)
    assert found, (result.stdout, result.stderr)
    return found[1]


def _config_with_outbox(site: Path, acc: Accounts) -> Path:
    cfg = _config(site, acc)
    cfg.write_text(cfg.read_text(encoding="utf-8") + '[[destination]]\nname = "outbox"\nurl = "folder://outbox"\n',
                   encoding="utf-8")
    return cfg


def test_four_eyes_self_approval_and_the_trail_with_real_accounts(site, accounts, team):
    cfg = _config_with_outbox(site, accounts)
    assert cli(None, cfg, "ingest", str(site / "drop")).returncode == 0
    docs = documents(accounts, cfg)
    # A name the invoice's own data carried, on a document that passed: changing it is a conflict.
    doc, name = next((d, n) for d in docs if d["state"] == "queued" for n in ("buyer_name", "seller_name")
                     if (d["fields"] or {}).get("sources", {}).get(n) in AUTHORITY)
    both, approver = team["both"], team["approver"]

    filed = as_person(accounts, both, cfg, "amend", str(doc["id"]), "--set", f"{name}=某某公司（补录）",
                      "--reason", "名称以纸质发票为准")
    assert filed.returncode == 0, filed.stderr      # filed as asked: it waits for a second person
    number = number_of(filed)
    assert f"waiting for an approver other than {both}" in filed.stdout and "conflict" in filed.stdout
    held = json.loads(cli(accounts.reader, cfg, "show", str(doc["id"]), "--json").stdout)
    assert held["state"] == "quarantined" and held["problems"][0]["code"] == "application-pending"
    assert held["fields"][name] == doc["fields"][name]
    listed = cli(accounts.reader, cfg, "requests", "--state", "pending", "--json")
    assert listed.returncode == 0 and [json.loads(x)["number"] for x in listed.stdout.splitlines()] == [number]
    assert number in cli(accounts.reader, cfg, "quarantine").stdout
    assert "applications  1 pending" in cli(accounts.reader, cfg, "status").stdout

    # The filer, an approver too, cannot approve their own conflict.
    own = as_person(accounts, both, cfg, "approve", number)
    assert own.returncode == 3 and f"other than its filer {both}" in own.stderr, own.stderr
    # A reader and an amender cannot decide at all.
    assert cli(accounts.reader, cfg, "approve", number).returncode == 3
    assert as_person(accounts, accounts.amender, cfg, "approve", number).returncode == 3
    assert json.loads(cli(accounts.reader, cfg, "show", str(doc["id"]), "--json").stdout)["state"] == "quarantined"

    done = as_person(accounts, approver, cfg, "approve", number, "--reason", "核对无误")
    assert done.returncode == 0, (done.stdout, done.stderr)
    after = json.loads(cli(accounts.reader, cfg, "show", str(doc["id"]), "--json").stdout)
    assert after["state"] == "queued" and after["fields"][name] == "某某公司（补录）"
    again = as_person(accounts, approver, cfg, "approve", number)
    assert again.returncode == 1 and "already approved" in again.stderr
    story = json.loads(cli(accounts.reader, cfg, "requests", "show", number, "--json").stdout)
    assert (story["state"], story["filer"], story["decider"], story["decision_reason"], story["outcome"]) == (
        "approved", both, approver, "核对无误", "queued")
    assert story["changes"][name]["kind"] == "conflict"
    assert [e["details"].get("action") for e in story["events"] if e["details"].get("action")] == ["filed", "approved"]

    # Root acting as itself is one person for four eyes too.
    other = next(d for d in docs if d["id"] != doc["id"] and d["state"] in ("queued", "quarantined")
                 and any((d["fields"] or {}).get("sources", {}).get(n) in AUTHORITY for n in ("buyer_name", "seller_name")))
    field = next(n for n in ("buyer_name", "seller_name") if other["fields"]["sources"].get(n) in AUTHORITY)
    by_root = cli(None, cfg, "amend", str(other["id"]), "--set", f"{field}=另一家公司", "--reason", "root at night")
    root_number = number_of(by_root)
    refused = cli(None, cfg, "approve", root_number)
    assert refused.returncode == 3 and "other than its filer root" in refused.stderr, refused.stderr
    declined = as_person(accounts, approver, cfg, "decline", root_number, "--reason", "二维码为准")
    assert declined.returncode == 0, declined.stderr

    # Filling a field no source carried: the amender approves it at once by default...
    empty = {d["id"]: (d, n) for d in reversed(docs) for n in ("buyer_tax_id", "check_code")
             if d["fields"] and d["fields"].get(n) is None and d["id"] not in (doc["id"], other["id"])}
    assert len(empty) >= 2, "the samples have documents with an empty field"
    values = {"check_code": "12345678901234567890", "buyer_tax_id": "91310115MA1K3XY40A"}
    (fill_doc, fill), (strict_doc, strict_field) = list(empty.values())[:2]
    filled = as_person(accounts, accounts.amender, cfg, "amend", str(fill_doc["id"]), "--set",
                       f"{fill}={values[fill]}", "--reason", "补录：纸质发票上的校验码")
    assert filled.returncode in (0, 1), filled.stderr
    assert f"filed and approved by {accounts.amender}" in filled.stdout, filled.stdout
    row = json.loads(cli(accounts.reader, cfg, "requests", "show", number_of(filled), "--json").stdout)
    assert (row["state"], row["approval"], row["decider"]) == ("approved", "self", accounts.amender)

    # ...and not when the config says so: then it needs another approver.
    cfg.write_text(cfg.read_text(encoding="utf-8").replace("[access]\n", "[access]\nself_approve_empty_fields = false\n"),
                   encoding="utf-8")
    strict = as_person(accounts, both, cfg, "amend", str(strict_doc["id"]), "--set",
                       f"{strict_field}={values[strict_field]}", "--reason", "补录")
    assert strict.returncode == 0 and "waiting for an approver" in strict.stdout, strict.stdout
    own_fill = as_person(accounts, both, cfg, "approve", number_of(strict))
    assert own_fill.returncode == 3 and "self_approve_empty_fields" in own_fill.stderr, own_fill.stderr
    assert as_person(accounts, approver, cfg, "approve", number_of(strict)).returncode in (0, 1)

    # Reject asks on a terminal only; here --yes. Then reopen.
    target = str(doc["id"])
    assert "add --yes" in as_person(accounts, accounts.amender, cfg, "reject", target, "--reason", "x").stderr
    assert as_person(accounts, accounts.amender, cfg, "reject", target, "--reason", "作废", "--yes").returncode == 0
    back = as_person(accounts, accounts.amender, cfg, "reopen", target, "--reason", "误作废")
    assert back.returncode == 0 and f"document {target}: rejected -> quarantined" in back.stdout, back.stdout

    # The faked LOGNAME/USER is nowhere; every actor is a real account.
    with Ledger(cfg.parent / "state" / "ledger.sqlite3", readonly=True) as ledger:
        actors = {r[0] for r in ledger.conn.execute("SELECT actor FROM events")}
        filers = {r[0] for r in ledger.conn.execute("SELECT filed_by FROM applications")}
        numbers = [r[0] for r in ledger.conn.execute("SELECT number FROM applications ORDER BY id")]
    assert not any("财务总监" in a for a in actors | filers)
    assert f"cli:{both} (sudo → {accounts.svc})" in filers and f"cli:{accounts.amender} (sudo → {accounts.svc})" in filers
    day = numbers[0][3:11]
    assert numbers == [f"BL-{day}-{i:04d}" for i in range(1, len(numbers) + 1)]
    assert _root_owned(site / "state") == []
    verify = cli(accounts.reader, cfg, "audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert_ledger_sound(cfg)


def test_two_filers_at_once_get_unique_sequential_numbers(site, accounts, team):
    cfg = _config_with_outbox(site, accounts)
    assert cli(None, cfg, "ingest", str(site / "drop")).returncode == 0
    docs = [d for d in documents(accounts, cfg) if d["state"] in ("queued", "quarantined") and d["fields"]]
    assert len(docs) >= 2
    # Two real CLI processes, started together, as two people, each filing for its own document.
    procs = []
    for person, doc in ((accounts.amender, docs[0]), (team["both"], docs[1])):
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "LANG": "C.UTF-8",
               "SUDO_UID": str(accounts.uid(person))}
        cmd = [*_as(accounts.svc), sys.executable, "-m", "service", "--config", str(cfg), "amend", str(doc["id"]),
               "--set", "buyer_name=并发测试公司", "--reason", "concurrent"]
        procs.append(subprocess.Popen(cmd, env=env, cwd=cfg.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode in (0, 1) for p in procs), outs
    got = sorted(re.match(r"(BL-\d{8}-\d{4}) ", out)[1] for out, _ in outs)
    day = got[0][3:11]
    assert got == [f"BL-{day}-0001", f"BL-{day}-0002"]
    assert_ledger_sound(cfg)


def test_a_config_of_ones_own_under_sudo_cannot_approve_ones_own_conflict(site, accounts, team):
    """Attack: the filer brings a config of their own to `sudo -u <service>`,
    naming the real ledger but a service user this host lacks and the
    service's own group as approve_group. The config's [access] must not be
    what decides whether that config is trusted."""
    import grp
    import pwd
    import shutil

    cfg = _config_with_outbox(site, accounts)
    assert cli(None, cfg, "ingest", str(site / "drop")).returncode == 0
    doc, name = next((d, n) for d in documents(accounts, cfg) if d["state"] == "queued"
                     for n in ("buyer_name", "seller_name") if (d["fields"] or {}).get("sources", {}).get(n) in AUTHORITY)
    both = team["both"]
    number = number_of(as_person(accounts, both, cfg, "amend", str(doc["id"]), "--set", f"{name}=自己批准公司",
                                 "--reason", "attack"))
    svc_group = grp.getgrgid(pwd.getpwnam(accounts.svc).pw_gid).gr_name
    own = site / "own.toml"
    own.write_text(f'[agent]\nstate_dir = "{site / "state"}"\n[validation]\nmax_age_days = 100000\n'
                   f'[access]\nread_group = "{svc_group}"\namend_group = "{svc_group}"\n'
                   f'approve_group = "{svc_group}"\nservice_user = "nosuchuser{secrets.token_hex(3)}"\n'
                   '[[destination]]\nname = "outbox"\nurl = "folder://outbox"\n', encoding="utf-8")
    shutil.chown(own, both)
    own.chmod(0o644)
    stolen = as_person(accounts, both, own, "approve", number, "--reason", "myself")
    assert stolen.returncode == 3, (stolen.stdout, stolen.stderr)
    shown = json.loads(cli(accounts.reader, cfg, "show", str(doc["id"]), "--json").stdout)
    assert shown["state"] == "quarantined" and shown["fields"][name] == doc["fields"][name]


def test_the_filer_withdraws_their_own_application_with_the_amend_role_alone(site, accounts, team):
    """An amend-only filer (the usual 补录 clerk) who typed a wrong value
    withdraws the application with `decline`, as its help says its filer
    may; before, only the approve group could, so the document stayed held
    (refusing the filer's own corrected amend) until an approver came.
    Anyone else's application still needs an approver to decline it."""
    cfg = _config_with_outbox(site, accounts)
    assert cli(None, cfg, "ingest", str(site / "drop")).returncode == 0
    doc, name = next((d, n) for d in documents(accounts, cfg) if d["state"] == "queued"
                     for n in ("buyer_name", "seller_name") if (d["fields"] or {}).get("sources", {}).get(n) in AUTHORITY)
    clerk, both, approver = accounts.amender, team["both"], team["approver"]

    typo = as_person(accounts, clerk, cfg, "amend", str(doc["id"]), "--set", f"{name}=打错的公司", "--reason", "纸质发票")
    assert typo.returncode == 0 and "waiting for an approver" in typo.stdout, typo.stdout + typo.stderr
    mine = number_of(typo)
    again = as_person(accounts, clerk, cfg, "amend", str(doc["id"]), "--set", f"{name}=对的公司", "--reason", "纸质发票")
    assert again.returncode == 1 and f"held by the pending application {mine}" in again.stderr, again.stderr

    withdrawn = as_person(accounts, clerk, cfg, "decline", mine, "--reason", "typed the name wrong")
    assert withdrawn.returncode == 0, withdrawn.stdout + withdrawn.stderr
    assert f"{mine} declined by {clerk}" in withdrawn.stdout, withdrawn.stdout
    story = json.loads(cli(accounts.reader, cfg, "requests", "show", mine, "--json").stdout)
    assert (story["state"], story["filer"], story["decider"], story["outcome"]) == ("declined", clerk, clerk, "queued")
    after = json.loads(cli(accounts.reader, cfg, "show", str(doc["id"]), "--json").stdout)
    assert after["state"] == "queued" and after["fields"][name] == doc["fields"][name]

    # Someone else's application: the clerk may neither withdraw nor approve it, nor may a reader.
    theirs = number_of(as_person(accounts, both, cfg, "amend", str(doc["id"]), "--set", f"{name}=对的公司",
                                 "--reason", "纸质发票"))
    for verb in ("decline", "approve"):
        denied = as_person(accounts, clerk, cfg, verb, theirs, "--reason", "not mine")
        assert denied.returncode == 3 and accounts.approve_group in denied.stderr, (verb, denied.stderr)
    assert cli(accounts.reader, cfg, "decline", theirs, "--reason", "x").returncode == 3
    assert json.loads(cli(accounts.reader, cfg, "requests", "show", theirs, "--json").stdout)["state"] == "pending"
    done = as_person(accounts, approver, cfg, "approve", theirs, "--reason", "核对无误")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(cli(accounts.reader, cfg, "show", str(doc["id"]), "--json").stdout)["fields"][name] == "对的公司"
    assert _root_owned(site / "state") == []
    verify = cli(accounts.reader, cfg, "audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert_ledger_sound(cfg)
