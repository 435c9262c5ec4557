"""A destination's old keys are never forgotten until it no longer holds them.

An amend corrected the 号码 of an invoice `erp` already held: its row there
became `superseded` under the old key, and the amend said so once. A person
then ran `requeue --destination erp`: erp got it under the new key, the row's
delivered_key became the new key, and the ledger forgot that erp still holds
the invoice under the old one too. No command listed that copy, reconcile
never looked at it, `status` and `show` never named it: a stale copy under
a wrong number in the finance system, on a silent path.

Now every key a destination was told it holds a document under is kept
(agent/ledger/held_keys.py) until reconciliation finds it gone or a person
says so (`forget-key`): `show` lists it per destination with what to do,
`status` (text, --json, --check) counts it, a [[notify]] entry is told
(`held-under-old-key`), the metrics export it, reconcile looks it up, and
`audit ledger` checks that every key a row stands for is among them.

Real ledgers, the real CLI, real HTTP destinations on 127.0.0.1 (the site
of test_amend_after_delivery: erp, and archive refusing the first put) and
a real folder destination.
"""

from __future__ import annotations

import datetime as dt
import json
import threading

import pytest
from prometheus_client import generate_latest

from agent.config import load_config
from service.metrics import registry_for
from service.notify import NotifyRunner
from tests.integration.test_amend_after_delivery import archive, site  # noqa: F401  (fixtures)
from tests.integration.test_amend_after_delivery import delivered_to_erp_refused_by_archive
from tests.integration.test_metrics import samples, value
from tests.integration.test_notify_config_and_rejections import notify_entry, round_trip, told
from tests.integration.test_reject_delivered import files_in, remove_by_hand
from tests.support.audit import assert_ledger_sound
from tests.support.http_destination import http_destination  # noqa: F401  (fixture)
from tests.support.judged import NUMBER, Site, inbox_site, invoice, number
from tests.support.notify_servers import RobotServer

NEW = number("87654321")


def amended_requeued_delivered(site: Site, archive) -> int:
    """The silent path: delivered to erp under NUMBER (archive refused it),
    amended to NEW (erp's row superseded under NUMBER), `requeue
    --destination erp` (what it said kept as `site.requeue_said`),
    delivered there under NEW."""
    doc = delivered_to_erp_refused_by_archive(site, archive)
    assert site.amend_approved(str(doc), "--set", f"number={NEW}").exit_code == 0
    requeued = site.cli("requeue", str(doc), "--destination", "erp")
    assert requeued.exit_code == 0, requeued.output
    site.requeue_said = requeued.stderr
    site.deliver()
    row = site.rows(doc)["erp"]
    assert (row["state"], row["delivered_key"], site.state(doc)) == ("delivered", NEW, "delivered")
    return doc


def old_keys(site: Site) -> dict:
    return json.loads(site.cli("status", "--json").stdout)["old_keys_held"]


def test_a_requeued_amend_keeps_the_old_key_named_by_show_status_and_check(site, http_destination, archive):
    erp = http_destination
    doc = amended_requeued_delivered(site, archive)
    assert dict(erp.accepted) == {NUMBER: 1, NEW: 1}      # erp holds both copies

    shown = site.cli("show", str(doc)).stdout
    assert f"held there under: {NUMBER} (OLD), {NEW} (its key)" in shown, shown
    assert (f"OLD KEY {NUMBER} held there since" in shown and "remove that copy at erp by hand, then "
            f"`fapiao-agent forget-key {doc} --destination erp --key {NUMBER} --reason TEXT`" in shown), shown
    detail = json.loads(site.cli("show", str(doc), "--json").stdout)
    assert [(h["destination"], h["key"], h["old"], h["by_row"]) for h in detail["held_keys"]] == [
        ("archive", NEW, False, True), ("erp", NUMBER, True, False), ("erp", NEW, False, True)]

    status = site.cli("status").stdout
    assert f"OLD KEYS  1 held at a destination under an old key: document {doc} at erp ({NUMBER})" in status
    assert "1 HELD UNDER AN OLD KEY (remove by hand)" in status
    report = json.loads(site.cli("status", "--json").stdout)
    held = report["old_keys_held"]
    assert (held["count"], held["by_destination"]) == (1, {"erp": 1})
    assert held["documents"] == [{"document_id": doc, "state": "delivered",
                                  "at": [{"destination": "erp", "key": NUMBER, "since": held["documents"][0]["at"][0]["since"]}]}]
    assert {d["name"]: d["old_keys"] for d in report["delivery"]["destinations"]} == {"erp": 1, "archive": 0}
    check = site.cli("status", "--check")
    assert f"WARNING: 1 invoice held at a destination under an old key (document {doc})" in check.stdout
    assert [(h["destination"], h["key"], h["old"]) for h in site.ledger.held_keys(doc)] == [
        ("archive", NEW, False), ("erp", NUMBER, True), ("erp", NEW, False)]
    # The requeue that sent it under NEW said how to end it.
    assert (f"remove the old copy there by hand, then `fapiao-agent forget-key {doc} --destination erp --key "
            f"{NUMBER} --reason TEXT`") in site.requeue_said, site.requeue_said
    assert_ledger_sound(site.config_path)


def test_reconcile_looks_old_keys_up_and_forgets_one_gone(site, http_destination, archive, tmp_path):
    erp = http_destination
    with RobotServer() as robot:
        site.config_path.write_text(site.config_path.read_text() + notify_entry(robot.url, "held-under-old-key"))
        runner = NotifyRunner(load_config(site.config_path), threading.Event())
        doc = amended_requeued_delivered(site, archive)
        assert round_trip(runner, site.ledger) == 1
        [opened] = told(robot)
        assert "1 invoice(s) still held at a destination under an old key" in opened
        assert f"#{doc} `erp` (old key `{NUMBER}`)" in opened and "fapiao-agent forget-key" in opened
        registry = registry_for(site.cfg)
        assert value(samples(generate_latest(registry).decode()), "fapiao_held_under_old_key") == 1

        # Still there: looked up under the old key, left held and named.
        out = site.cli("reconcile", "--json")
        report = json.loads(out.stdout)
        assert sorted((c["destination"], c["key"], c["result"]) for c in report["checks"]) == [
            ("archive", NEW, "confirmed"), ("erp", NUMBER, "superseded"), ("erp", NEW, "confirmed")]
        assert f"erp holds document {doc} under an old invoice key, not its own ({NUMBER};" in out.stderr
        assert old_keys(site)["count"] == 1 and round_trip(runner, site.ledger) == 0

        # A lookup that fails forgets nothing.
        erp.inject("500", times=10, on="get")
        assert site.cli("reconcile", "--destination", "erp").exit_code == 1
        assert old_keys(site)["count"] == 1
        erp.clear()

        erp._forget(NUMBER)                                       # removed there by hand
        out = site.cli("reconcile", "--json")
        report = json.loads(out.stdout)
        assert [(c["key"], c["result"]) for c in report["checks"] if c["destination"] == "erp"] == [
            (NEW, "confirmed"), (NUMBER, "forgotten")], report
        assert report["summary"]["forgotten"] == 1 and report["summary"]["missing"] == 0
        note = site.ledger.events(doc)[-1]
        assert (note.actor.startswith("cli:") and note.reason == f"erp no longer holds it under its old key {NUMBER} "
                "(reconciliation found it gone): forgotten")
        assert note.details["forgot_key"] == {"destination": "erp", "key": NUMBER, "by": "reconcile",
                                              "why": "reconciliation found it gone"}
        assert old_keys(site) == {"count": 0, "by_destination": {}, "documents": []}
        assert "OLD KEY" not in site.cli("show", str(doc)).stdout
        assert "OLD KEYS" not in site.cli("status").stdout
        assert site.rows(doc)["erp"]["state"] == "confirmed"          # its delivery under NEW is untouched
        assert round_trip(runner, site.ledger) == 1 and "已恢复 RESOLVED" in told(robot)[-1]
        assert value(samples(generate_latest(registry).decode()), "fapiao_held_under_old_key") == 0
        # Nothing left to look up under the old key; nothing was sent again.
        again = json.loads(site.cli("reconcile", "--json").stdout)
        assert NUMBER not in [c["key"] for c in again["checks"]]
        assert dict(erp.accepted) == {NUMBER: 1, NEW: 1}
    assert_ledger_sound(site.config_path)


def test_another_invoice_under_the_old_number_names_the_document_held_there(site, http_destination, archive):
    # The misread number was another real invoice's: its put to erp meets
    # the first document's old copy, and the conflict names that document.
    doc = amended_requeued_delivered(site, archive)
    other = site.add(invoice(dt.date.today()), "the-real-one")
    site.deliver()
    assert site.state(other) == "quarantined"
    error = site.rows(other)["erp"]["last_error"]
    assert f"erp already holds another file under key {NUMBER} (document {doc})" in error, error
    assert_ledger_sound(site.config_path)


@pytest.fixture
def inbox(tmp_path):
    yield from inbox_site(tmp_path)


def held_twice(site: Site, folder) -> int:
    """Delivered to the folder under NUMBER, requeued, amended to NEW (the
    row superseded under NUMBER), requeued by name and delivered under NEW:
    the folder holds both files."""
    doc = site.add(invoice(dt.date.today()), "first")
    site.deliver()
    assert site.cli("requeue", str(doc)).exit_code == 0
    assert site.amend_approved(str(doc), "--set", f"number={NEW}").exit_code == 0
    assert site.cli("requeue", str(doc), "--destination", "inbox").exit_code == 0
    site.deliver()
    assert files_in(folder) == sorted([f"{NUMBER}.pdf", f"{NEW}.pdf"])
    return doc


def test_forget_key_is_refused_for_a_key_not_held_idempotent_and_audited(inbox, tmp_path):
    site, folder = inbox, tmp_path / "import"
    doc = held_twice(site, folder)
    events = len(site.ledger.events(doc))

    stranger = site.cli("forget-key", str(doc), "--destination", "inbox", "--key", number("11111111"),
                        "--reason", "typo")
    assert stranger.exit_code == 1
    assert (f"document {doc} is not held at inbox under key {number('11111111')}, as far as the ledger knows: "
            f"nothing forgotten; it is held there under {NUMBER}, {NEW}") in stranger.stderr, stranger.stderr
    elsewhere = site.cli("forget-key", str(doc), "--destination", "erp", "--key", NUMBER, "--reason", "x")
    assert elsewhere.exit_code == 1 and "the ledger lists no key of it at erp" in elsewhere.stderr
    current = site.cli("forget-key", str(doc), "--destination", "inbox", "--key", NEW, "--reason", "x")
    assert current.exit_code == 1 and f"inbox holds document {doc} under {NEW} as its delivery there" in current.stderr
    assert "`fapiao-agent reconcile --destination inbox`" in current.stderr
    assert site.cli("forget-key", str(doc), "--destination", "inbox", "--key", NUMBER, "--reason", " ").exit_code == 2
    assert len(site.ledger.events(doc)) == events and old_keys(site)["count"] == 1

    remove_by_hand(folder)
    done = site.cli("forget-key", str(doc), "--destination", "inbox", "--key", NUMBER,
                    "--reason", "deleted from the import folder (FIN-88)")
    assert done.exit_code == 0, done.output
    assert done.stdout == (f"document {doc}: inbox no longer listed as holding it under key {NUMBER}\n"
                           f"  still held there under {NEW} (`fapiao-agent show {doc}`)\n")
    [note] = site.ledger.events(doc)[events:]
    assert note.actor.startswith("cli:") and note.reason == (
        f"inbox no longer holds it under its old key {NUMBER} (deleted from the import folder (FIN-88)): forgotten")
    assert note.details == {"forgot_key": {"destination": "inbox", "key": NUMBER, "by": "operator",
                                           "why": "deleted from the import folder (FIN-88)"}}
    assert old_keys(site)["count"] == 0 and site.rows(doc)["inbox"]["state"] == "delivered"

    again = site.cli("forget-key", str(doc), "--destination", "inbox", "--key", NUMBER, "--reason", "again", "--json")
    assert again.exit_code == 0, again.output
    said = json.loads(again.stdout)
    assert (said["forgotten"], said["already"]["actor"], said["already"]["by"], said["held"]) == (
        False, note.actor, "operator", [NEW])
    assert len(site.ledger.events(doc)) == events + 1                   # no second event
    trail = site.cli("audit", "export", "--since", "2000-01-01", "--json")
    assert trail.exit_code == 0, trail.output
    assert [e["actor"] for e in json.loads(trail.stdout)["events"]
            if "(FIN-88)" in (e["reason"] or "")] == [note.actor]
    assert site.cli("audit", "verify").exit_code == 0
    assert_ledger_sound(site.config_path)


def test_forget_key_of_a_superseded_copy_leaves_nothing_there_and_requeue_sends_the_new_key(inbox, tmp_path):
    site, folder = inbox, tmp_path / "import"
    doc = site.add(invoice(dt.date.today()), "first")
    site.deliver()
    assert site.cli("requeue", str(doc)).exit_code == 0
    assert site.amend_approved(str(doc), "--set", f"number={NEW}").exit_code == 0
    assert (site.rows(doc)["inbox"]["state"], site.state(doc)) == ("superseded", "delivered")
    assert old_keys(site)["documents"][0]["at"][0]["key"] == NUMBER

    remove_by_hand(folder)
    done = site.cli("forget-key", str(doc), "--destination", "inbox", "--key", NUMBER, "--reason", "removed")
    assert done.exit_code == 0, done.output
    assert (f"inbox holds nothing of it now (its delivery there is missing): `fapiao-agent requeue {doc} "
            f"--destination inbox` sends it under {NEW}") in done.stdout
    row = site.rows(doc)["inbox"]
    assert (row["state"], site.state(doc), row["attempts_log"][-1]["outcome"]) == ("missing", "missing", "absent")
    assert site.deliver() == [] and old_keys(site)["count"] == 0
    assert site.cli("requeue", str(doc), "--destination", "inbox").exit_code == 0
    site.deliver()
    assert (site.state(doc), files_in(folder)) == ("delivered", [f"{NEW}.pdf"])
    assert_ledger_sound(site.config_path)


def test_amended_back_to_a_key_held_there_the_row_is_delivered_under_it_and_the_other_is_the_old_one(inbox, tmp_path):
    # Sent under NUMBER, amended to NEW and sent under it too, then amended
    # back: inbox holds the invoice under NUMBER (its file is there), so its
    # row is delivered under NUMBER, not superseded under NEW with nothing
    # standing for NUMBER; NEW is the old key now, named until it is gone.
    site, folder = inbox, tmp_path / "import"
    doc = held_twice(site, folder)
    assert site.cli("requeue", str(doc)).exit_code == 0
    back = site.amend_approved(str(doc), "--set", f"number={NUMBER}", "--reason", "it was right after all")
    assert back.exit_code == 0, back.output
    row = site.rows(doc)["inbox"]
    assert (row["state"], row["delivered_key"], site.state(doc)) == ("delivered", NUMBER, "delivered")
    assert f"the invoice key is {NUMBER} again, which inbox holds it under from before" in (
        row["attempts_log"][-1]["error"])
    assert [(a["destination"], a["key"]) for a in old_keys(site)["documents"][0]["at"]] == [("inbox", NEW)]
    assert site.deliver() == [] and files_in(folder) == sorted([f"{NUMBER}.pdf", f"{NEW}.pdf"])
    report = json.loads(site.cli("reconcile", "--json").stdout)
    assert [(c["key"], c["result"]) for c in report["checks"]] == [(NUMBER, "confirmed"), (NEW, "superseded")]
    assert_ledger_sound(site.config_path)
