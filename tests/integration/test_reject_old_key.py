"""A rejected invoice a destination holds under an old key.

Delivered under one number, then amended to another (the destination's row
`superseded`: it holds the old key), then rejected with
`--acknowledge-delivered`: `status`, `audit ledger` and the
rejected-at-destination alert name it "under its old key". Before,
`reconcile` never looked a superseded row up, so removing the old copy by
hand cleared nothing: it was named for ever. Now reconcile looks the old key
up: still there, the row stays superseded (named); gone, it is `missing`,
as a delivered row found gone is; put back, it is superseded again (never a
delivered row under a key the document no longer has).

And a row requeued by name after such an amend (`requeue --destination`),
then rejected: `reject --acknowledge-delivered` set it back to `delivered`
under the old key, which `audit ledger` reported as delivered-key-changed;
it is `superseded` now, as the amend had left it.

Real ledger, vault and CLI; a folder destination and a real HTTP server on
127.0.0.1.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import threading

import pytest

from agent.config import load_config
from service.notify import NotifyRunner
from tests.integration.test_notify_config_and_rejections import notify_entry, round_trip, told
from tests.integration.test_reject_delivered import files_in, remove_by_hand
from tests.support.audit import assert_ledger_sound, audit_ledger
from tests.support.http_destination import FaultyFinanceServer
from tests.support.judged import NUMBER, Site, invoice, number
from tests.support.notify_servers import RobotServer

NEW = number("12345699")


def codes(site: Site) -> list[tuple[str, int]]:
    _, report, _ = audit_ledger(site.config_path)
    return [(v["code"], v["document"]) for v in (report or {}).get("violations") or []]


def named(site: Site, doc: int) -> str | None:
    """The status line naming the rejected document at a destination, or None."""
    lines = [ln for ln in site.cli("status").stdout.splitlines() if ln.strip().startswith("REJECTED")]
    return next((ln for ln in lines if f"document {doc} at" in ln), None)


def reconcile(site: Site, *args: str) -> dict:
    out = site.cli("reconcile", "--json", *args)
    return {"exit": out.exit_code, "stderr": out.stderr, **json.loads(out.stdout)}


def refuser(server: FaultyFinanceServer) -> dict:
    """A destination refusing the invoice for good (400): the document is
    quarantined while the other destination holds it, so a person amends it."""
    server.inject("400", times=100, message="buyer unknown")
    return {"name": "refuser", "url": server.url, "timeout_s": 5}


def amended_then_rejected(site: Site, holder: str) -> int:
    """Delivered to `holder` under NUMBER and refused by the refuser, then
    amended to NEW (the holder's row superseded under NUMBER) and rejected
    knowingly."""
    doc = site.add(invoice(dt.date.today()), "first")
    site.deliver()
    assert site.state(doc) == "quarantined" and site.rows(doc)[holder]["state"] == "delivered"
    amended = site.amend_approved(str(doc), "--set", f"number={NEW}")
    assert amended.exit_code == 0, amended.output
    row = site.rows(doc)[holder]
    assert (row["state"], row["delivered_key"]) == ("superseded", NUMBER)
    done = site.cli("reject", str(doc), "--reason", "the seller cancelled it", "--yes", "--acknowledge-delivered")
    assert done.exit_code == 0, done.output
    assert f"stays at {holder} (under its old key {NUMBER})" in done.stderr
    assert site.state(doc) == "rejected"
    return doc


@pytest.fixture
def refusing():
    with FaultyFinanceServer() as server:
        yield server


def test_an_old_key_removed_by_hand_is_found_gone_and_no_longer_named(tmp_path, refusing):
    (tmp_path / "import").mkdir()
    site = Site(tmp_path, [{"name": "inbox", "url": f"folder://{tmp_path / 'import'}"}, refuser(refusing)])
    try:
        doc = amended_then_rejected(site, "inbox")
        assert f"document {doc} at inbox (under its old key {NUMBER})" in named(site, doc)
        assert codes(site) == [("rejected-at-destination", doc)]

        # Still there: looked up under the old key, found, left superseded and named.
        kept = tmp_path / "kept"
        shutil.copytree(tmp_path / "import", kept)
        still = reconcile(site)
        assert still["exit"] == 0, still
        assert [(c["destination"], c["result"]) for c in still["checks"]] == [("inbox", "superseded")]
        assert still["summary"]["superseded"] == 1 and still["summary"]["checked"] == 1
        assert f"inbox holds document {doc} under an old invoice key" in still["stderr"]
        row = site.rows(doc)["inbox"]
        assert (row["state"], row["delivered_key"]) == ("superseded", NUMBER)
        assert row["attempts_log"][-1]["outcome"] == "found"
        assert f"under its old key {NUMBER}" in named(site, doc)

        # Removed by hand: found gone under the old key; nothing names it, nothing is sent.
        remove_by_hand(tmp_path / "import")
        gone = reconcile(site)
        assert gone["exit"] == 0 and gone["summary"]["missing"] == 1 and gone["summary"]["requeued"] == 0, gone
        row = site.rows(doc)["inbox"]
        assert (row["state"], row["delivered_key"]) == ("missing", NUMBER)
        assert f"does not hold it under its old key {NUMBER}" in row["attempts_log"][-1]["error"]
        assert named(site, doc) is None and site.ledger.held_at(doc) == []
        assert json.loads(site.cli("show", str(doc), "--json").stdout)["rejected_yet_at"] == []
        assert site.state(doc) == "rejected" and site.deliver() == [] and files_in(tmp_path / "import") == []
        assert_ledger_sound(site.config_path)

        # Put back there (a restore of the folder): the missing row is looked
        # up under its old key again and is superseded, never delivered under
        # a key the document no longer has.
        for p in kept.iterdir():
            shutil.copy2(p, tmp_path / "import" / p.name)
        back = reconcile(site)
        assert [c["result"] for c in back["checks"]] == ["superseded"], back
        assert site.rows(doc)["inbox"]["state"] == "superseded"
        assert f"under its old key {NUMBER}" in named(site, doc)
        assert codes(site) == [("rejected-at-destination", doc)]
        remove_by_hand(tmp_path / "import")
        assert reconcile(site)["summary"]["missing"] == 1
        assert_ledger_sound(site.config_path)
    finally:
        site.close()


def test_an_http_destination_holding_the_old_key_keeps_the_alert_until_it_is_gone(tmp_path, refusing):
    with FaultyFinanceServer() as erp, RobotServer() as robot:
        site = Site(tmp_path, [{"name": "erp", "url": erp.url, "timeout_s": 5}, refuser(refusing)])
        try:
            site.config_path.write_text(site.config_path.read_text()
                                        + notify_entry(robot.url, "rejected-at-destination"))
            runner = NotifyRunner(load_config(site.config_path), threading.Event())
            doc = amended_then_rejected(site, "erp")
            assert round_trip(runner, site.ledger) == 1
            assert f"under its old key `{NUMBER}`" in told(robot)[-1]

            # A lookup that fails changes nothing.
            erp.inject("500", times=3, on="get")
            failed = site.cli("reconcile")
            assert failed.exit_code == 1, failed.output
            assert site.rows(doc)["erp"]["state"] == "superseded"
            erp.clear()

            assert reconcile(site)["summary"]["superseded"] == 1
            assert round_trip(runner, site.ledger) == 0            # still open, told once
            erp._forget(NUMBER)                                     # removed there by hand
            gone = reconcile(site)
            assert [c["result"] for c in gone["checks"]] == ["missing"], gone
            assert site.rows(doc)["erp"]["state"] == "missing" and named(site, doc) is None
            assert json.loads(site.cli("status", "--json").stdout)["rejected_there"]["count"] == 0
            assert round_trip(runner, site.ledger) == 1
            assert "已恢复 RESOLVED" in told(robot)[-1]
            assert site.deliver() == [] and erp.stats()["accepted"] == {NUMBER: 1}   # nothing sent again
            assert reconcile(site)["summary"]["superseded"] == 0
            assert_ledger_sound(site.config_path)
        finally:
            site.close()


def delivered_then_amended(site: Site) -> int:
    """A document delivered to `site`'s destinations under NUMBER, then
    requeued (amend works on queued documents) and amended to NEW."""
    doc = site.add(invoice(dt.date.today()), "first")
    site.deliver()
    assert site.cli("requeue", str(doc)).exit_code == 0
    assert site.amend_approved(str(doc), "--set", f"number={NEW}").exit_code == 0
    return doc


def test_a_live_documents_old_key_is_looked_up_and_once_gone_the_row_is_missing(tmp_path):
    # It was history, never looked up: the old copy removed there by hand
    # stayed `superseded`, and a copy left there stayed named by nothing.
    # Looked up under its old key now: there, it stays superseded; gone,
    # inbox holds nothing of the invoice: the row is missing (never sent
    # again by reconciliation itself), and `requeue` sends it under its key.
    (tmp_path / "import").mkdir()
    site = Site(tmp_path, [{"name": "inbox", "url": f"folder://{tmp_path / 'import'}"}])
    try:
        doc = delivered_then_amended(site)
        assert site.rows(doc)["inbox"]["state"] == "superseded" and site.state(doc) == "delivered"
        still = reconcile(site)
        assert [(c["key"], c["result"]) for c in still["checks"]] == [(NUMBER, "superseded")], still
        assert site.rows(doc)["inbox"]["state"] == "superseded"
        assert [(h["key"], h["old"]) for h in site.ledger.held_keys(doc)] == [(NUMBER, True)]

        remove_by_hand(tmp_path / "import")
        gone = reconcile(site)
        assert [(c["key"], c["result"]) for c in gone["checks"]] == [(NUMBER, "missing")], gone
        assert gone["summary"]["requeued"] == 0
        assert (site.rows(doc)["inbox"]["state"], site.state(doc)) == ("missing", "missing")
        assert site.ledger.held_keys(doc) == [] and site.deliver() == []
        assert f"inbox no longer holds it under its old key {NUMBER}" in site.ledger.events(doc)[-1].reason
        assert site.cli("requeue", str(doc)).exit_code == 0
        site.deliver()
        assert site.state(doc) == "delivered" and files_in(tmp_path / "import") == [f"{NEW}.pdf"]
        assert [(h["key"], h["old"]) for h in site.ledger.held_keys(doc)] == [(NEW, False)]
        assert_ledger_sound(site.config_path)
    finally:
        site.close()


def test_a_row_requeued_by_name_after_an_amend_is_rejected_as_superseded_not_delivered(tmp_path):
    (tmp_path / "import").mkdir()
    site = Site(tmp_path, [{"name": "inbox", "url": f"folder://{tmp_path / 'import'}"}])
    try:
        doc = delivered_then_amended(site)
        assert site.cli("requeue", str(doc), "--destination", "inbox").exit_code == 0
        row = site.rows(doc)["inbox"]
        assert (row["state"], row["delivered_key"]) == ("queued", NUMBER)   # not sent under NEW yet

        done = site.cli("reject", str(doc), "--reason", "the seller cancelled it", "--yes", "--acknowledge-delivered")
        assert done.exit_code == 0, done.output
        # inbox holds what it got: NUMBER, the key the amend superseded; never
        # `delivered` under a key the document no longer has.
        row = site.rows(doc)["inbox"]
        assert (row["state"], row["delivered_key"]) == ("superseded", NUMBER)
        assert f"stays at inbox (under its old key {NUMBER})" in done.stderr
        assert "To deliver it there again" not in done.stderr       # no requeue advice for a rejected one
        assert f"document {doc} at inbox (under its old key {NUMBER})" in named(site, doc)
        assert codes(site) == [("rejected-at-destination", doc)]    # no delivered-key-changed
        assert site.deliver() == [] and files_in(tmp_path / "import") == [f"{NUMBER}.pdf"]

        remove_by_hand(tmp_path / "import")
        assert reconcile(site)["summary"]["missing"] == 1
        assert named(site, doc) is None
        assert_ledger_sound(site.config_path)
    finally:
        site.close()


def test_a_row_requeued_under_its_own_key_is_rejected_as_delivered_still(tmp_path):
    (tmp_path / "import").mkdir()
    site = Site(tmp_path, [{"name": "inbox", "url": f"folder://{tmp_path / 'import'}"}])
    try:
        doc = site.add(invoice(dt.date.today()), "first")
        site.deliver()
        assert site.cli("requeue", str(doc)).exit_code == 0
        done = site.cli("reject", str(doc), "--reason", "paper copy booked", "--yes", "--acknowledge-delivered")
        assert done.exit_code == 0, done.output
        row = site.rows(doc)["inbox"]
        assert (row["state"], row["delivered_key"]) == ("delivered", NUMBER)
        assert codes(site) == [("rejected-at-destination", doc)]
        remove_by_hand(tmp_path / "import")
        assert reconcile(site)["summary"]["missing"] == 1
        assert_ledger_sound(site.config_path)
    finally:
        site.close()


def test_a_reopened_invoice_found_gone_is_sent_under_its_new_key_not_superseded(tmp_path):
    # Rejected, removed there by hand and found gone (`missing`), reopened and
    # amended twice before the loop sent it: the row queued again kept the key
    # the destination had said it does not hold, so the second amend made it
    # `superseded` and the document `delivered` with nothing there at all.
    import re

    (tmp_path / "import").mkdir()
    site = Site(tmp_path, [{"name": "inbox", "url": f"folder://{tmp_path / 'import'}"}])
    try:
        doc = site.add(invoice(dt.date.today()), "first")
        site.deliver()
        assert site.cli("requeue", str(doc)).exit_code == 0
        assert site.cli("reject", str(doc), "--reason", "paper copy booked", "--yes",
                        "--acknowledge-delivered").exit_code == 0
        remove_by_hand(tmp_path / "import")
        assert reconcile(site)["summary"]["missing"] == 1
        filed = site.cli("reopen", str(doc), "--reason", "the paper copy was another invoice")
        pending = re.match(r"(BL-\d{8}-\d{4}) filed: ", filed.stdout)
        if pending:
            assert site.cli("approve", pending[1], env={"SUDO_UID": "65534"}).exit_code == 0
        assert site.state(doc) == "quarantined"
        assert site.amend_approved(str(doc), "--set", f"number={NEW}").exit_code == 0
        row = site.rows(doc)["inbox"]
        assert (row["state"], row["delivered_key"]) == ("queued", None)
        assert site.ledger.held_at(doc) == []
        again = site.amend_approved(str(doc), "--set", f"number={number('12345698')}")
        assert again.exit_code == 0 and "already delivered" not in again.stderr, again.output
        assert site.state(doc) == "queued" and site.rows(doc)["inbox"]["state"] == "queued"
        site.deliver()
        assert site.state(doc) == "delivered" and files_in(tmp_path / "import") == [f"{number('12345698')}.pdf"]
        assert_ledger_sound(site.config_path)
    finally:
        site.close()
