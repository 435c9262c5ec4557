"""A rejection takes nothing back from a destination (attack M, finding 1).

A person rejecting an invoice a destination holds already (delivered, then
requeued; delivered to one destination while another failed; a put in
flight) is refused, naming where it is, unless `--acknowledge-delivered`;
then `status`, `status --check`, `show` and `audit ledger` name it until a
person removed it there by hand and `reconcile` found it gone. A copy of the
same invoice released by that rejection is held for a person, and its
refusal at the destination names the rejected document holding the key.

Real ledger, vault and CLI; folder destinations and a real HTTP server.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from agent import amend
from agent.deliver.loop import claim, record, send
from tests.support.audit import assert_ledger_sound, audit_ledger
from tests.support.http_destination import FaultyFinanceServer
from tests.support.judged import NUMBER, SETTINGS, Site, inbox_site, invoice, number


def today() -> dt.date:
    return dt.date.today()


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".") and p.suffix != ".json")


def remove_by_hand(folder: Path) -> None:
    """What a person does at a folder destination: the invoice and its sidecar go."""
    for p in folder.glob(f"{NUMBER}.*"):
        p.unlink()


def violations(site: Site) -> list[tuple[str, int]]:
    code, report, _ = audit_ledger(site.config_path)
    return [(v["code"], v["document"]) for v in (report or {}).get("violations") or []]


@pytest.fixture
def site(tmp_path):
    yield from inbox_site(tmp_path)


def test_a_delivered_invoice_requeued_is_rejected_only_knowingly_and_named_until_removed(site, tmp_path):
    doc = site.add(invoice(today()), "first")
    site.deliver()
    assert site.state(doc) == "delivered" and files_in(tmp_path / "import") == [f"{NUMBER}.pdf"]
    assert site.cli("requeue", str(doc)).exit_code == 0
    assert site.state(doc) == "queued"

    refused = site.cli("reject", str(doc), "--reason", "paper copy booked already", "--yes")
    assert refused.exit_code == 1
    assert f"inbox (delivered under key {NUMBER}, then queued again)" in refused.stderr
    assert "--acknowledge-delivered" in refused.stderr and "remove it there by hand" in refused.stderr
    assert site.state(doc) == "queued" and site.ledger.applications_of(doc) == []   # nothing written

    done = site.cli("reject", str(doc), "--reason", "paper copy booked already", "--yes", "--acknowledge-delivered")
    assert done.exit_code == 0, done.output
    assert f"document {doc}: queued -> rejected" in done.stdout
    assert f"warning: document {doc} is rejected, but stays at inbox (delivered under key {NUMBER})" in done.stderr
    assert site.state(doc) == "rejected"
    # Truthful rows: the destination holds what it got; nothing more is sent.
    assert site.rows(doc)["inbox"]["state"] == "delivered"
    assert site.deliver() == []
    event = [e for e in site.ledger.events(doc) if e.to_state == "rejected"][-1]
    assert event.details["at_destinations"][0]["destination"] == "inbox"
    assert "still at inbox" in event.reason
    decided = [e.reason for e in site.ledger.events(doc) if "approved by" in (e.reason or "")]
    assert "takes nothing back from inbox" in decided[-1]

    status = site.cli("status")
    assert f"REJECTED  1 yet at a destination: document {doc} at inbox" in status.stdout
    assert "1 REJECTED YET HELD THERE" in status.stdout
    figures = json.loads(site.cli("status", "--json").stdout)
    assert figures["rejected_there"]["count"] == 1
    assert "1 rejected invoice still at a destination (document 1)" in site.cli("status", "--check").stdout
    shown = site.cli("show", str(doc))
    assert f"REJECTED, yet at inbox (delivered under key {NUMBER})" in shown.stdout
    assert violations(site) == [("rejected-at-destination", doc)]

    # A person removes it there; reconciliation finds it gone, and sends nothing again.
    remove_by_hand(tmp_path / "import")
    assert site.cli("reconcile").exit_code == 0
    assert site.rows(doc)["inbox"]["state"] == "missing" and site.state(doc) == "rejected"
    assert site.deliver() == [] and files_in(tmp_path / "import") == []
    assert "REJECTED" not in site.cli("status").stdout
    assert json.loads(site.cli("show", str(doc), "--json").stdout)["rejected_yet_at"] == []
    assert_ledger_sound(site.config_path)


def test_failed_at_one_destination_delivered_at_the_other(tmp_path):
    (tmp_path / "import").mkdir()
    with FaultyFinanceServer() as erp:
        erp.inject("reset", times=100, on="any")
        site = Site(tmp_path, [{"name": "erp", "url": erp.url, "max_attempts": 1, "timeout_s": 5},
                               {"name": "inbox", "url": f"folder://{tmp_path / 'import'}"}])
        try:
            doc = site.add(invoice(today()), "first")
            site.deliver()
            assert site.state(doc) == "failed"
            assert {n: r["state"] for n, r in site.rows(doc).items()} == {"erp": "failed", "inbox": "delivered"}
            refused = site.cli("reject", str(doc), "--reason", "failed anyway, drop it", "--yes")
            assert refused.exit_code == 1 and f"inbox (delivered under key {NUMBER})" in refused.stderr
            assert "erp" not in refused.stderr.split("already:")[1].split(".")[0]   # erp never got it
            assert site.state(doc) == "failed"
            assert site.cli("reject", str(doc), "--reason", "failed anyway, drop it", "--yes",
                            "--acknowledge-delivered").exit_code == 0
            # erp's failed row is no failure of erp any more: the document is ended.
            dests = {d["name"]: d["counts"] for d in json.loads(site.cli("status", "--json").stdout)["delivery"]
                     ["destinations"]}
            assert (dests["erp"]["failed"], dests["erp"]["rejected"], dests["erp"]["rejected_there"]) == (0, 1, 0)
            assert (dests["inbox"]["rejected_there"], dests["inbox"]["delivered"]) == (1, 1)
            line = [ln for ln in site.cli("status").stdout.splitlines() if ln.strip().startswith("erp")][0]
            assert "failed 0" in line and "on hold" not in line
            assert violations(site) == [("rejected-at-destination", doc)]
            remove_by_hand(tmp_path / "import")
            assert site.cli("reconcile", "--destination", "inbox").exit_code == 0
            assert_ledger_sound(site.config_path)
        finally:
            site.close()


def test_a_put_in_flight_is_named_and_counted_once_it_lands(tmp_path):
    (tmp_path / "import").mkdir()
    with FaultyFinanceServer() as erp:
        erp.inject("400", times=5, message="buyer unknown")
        site = Site(tmp_path, [{"name": "erp", "url": erp.url},
                               {"name": "inbox", "url": f"folder://{tmp_path / 'import'}"}])
        try:
            doc = site.add(invoice(today()), "first")
            now = dt.datetime.now(dt.timezone.utc)
            # inbox's put is under way while erp refuses the invoice for good.
            [claimed] = claim(site.ledger, "inbox", now=now, lease_s=60, token="w1", actor="test")
            [refusal] = [r for r in site.deliver() if r.destination == "erp"]
            assert refusal.row_state == "quarantined" and site.state(doc) == "quarantined"
            assert site.rows(doc)["inbox"]["state"] == "delivering"

            def do_reject(**kw):
                return amend.reject(site.ledger, doc, reason="erp says buyer unknown; not ours", settings=SETTINGS,
                              destinations=site.names, today=today(), now=site.rows(doc)["inbox"]["updated_at"],
                              actor="cli:test", **kw)

            with pytest.raises(amend.StillAtDestination, match=r"inbox \(a put in flight: it may hold it under key"):
                do_reject()
            assert site.state(doc) == "quarantined"
            do_reject(acknowledge_delivered=True)
            assert site.state(doc) == "rejected"
            assert "REJECTED  1 yet at a destination" in site.cli("status").stdout   # it may, already
            outcome = send(site.dests["inbox"], claimed, site.vault)
            result = record(site.ledger, claimed, outcome, site.policies["inbox"], now=now, rng=site.rng,
                            actor="test")
            assert result.row_state == "delivered" and files_in(tmp_path / "import") == [f"{NUMBER}.pdf"]
            assert site.state(doc) == "rejected"
            assert f"document {doc} at inbox (delivered under key {NUMBER})" in site.cli("status").stdout
            assert violations(site) == [("rejected-at-destination", doc)]
            remove_by_hand(tmp_path / "import")
            assert site.cli("reconcile", "--destination", "inbox").exit_code == 0
            assert_ledger_sound(site.config_path)
        finally:
            site.close()


def test_a_copy_released_by_the_rejection_waits_for_a_person_and_its_conflict_names_the_holder(site, tmp_path):
    first = site.add(invoice(today()), "first")
    site.deliver()
    copy = site.add(invoice(today()), "second-download")
    assert site.state(copy) == "duplicate"
    assert site.cli("requeue", str(first)).exit_code == 0
    rejected = site.cli("reject", str(first), "--reason", "wrong file, use the other download", "--yes",
                        "--acknowledge-delivered")
    assert rejected.exit_code == 0, rejected.output
    assert (f"document {copy} (a copy of invoice {NUMBER}): duplicate -> quarantined (still failing: "
            "rejected-before)") in rejected.stdout
    assert site.deliver() == []
    assert site.cli("accept", str(copy), "--reason", "this download is the right one").exit_code == 0
    site.deliver()
    # inbox still holds the rejected document's file under the key: never
    # overwritten, and the refusal says whose it is and what to do.
    problem = [p for p in site.ledger.get(copy).problems if p["code"] == "delivery-conflict"][0]
    assert f"(document {first}, rejected: remove its copy there by hand, then `accept` this one)" in problem["message"]
    remove_by_hand(tmp_path / "import")
    assert site.cli("reconcile").exit_code == 0
    assert site.cli("accept", str(copy), "--reason", "the old file is gone now").exit_code == 0
    site.deliver()
    assert site.state(copy) == "delivered"
    assert_ledger_sound(site.config_path)


def test_a_conflict_names_the_holder_whose_row_is_superseded(site):
    # The holder of the key there need not be delivered by its row's state:
    # amended to another number, its row is superseded under the old key,
    # and the copy of the old number that goes out in its place meets it.
    first = site.add(invoice(today()), "first")
    site.deliver()
    copy = site.add(invoice(today()), "second-download")
    assert site.cli("requeue", str(first)).exit_code == 0     # amend works on queued documents
    amended = site.amend_approved(str(first), "--set", f"number={number('12345699')}")
    assert amended.exit_code == 0, amended.output
    assert site.rows(first)["inbox"]["state"] == "superseded" and site.state(copy) == "queued"
    site.deliver()
    problem = [p for p in site.ledger.get(copy).problems if p["code"] == "delivery-conflict"][0]
    assert f"already holds another file under key {NUMBER} (document {first});" in problem["message"]
    # The amended one goes out under its new number too, as its operator asks.
    assert site.cli("requeue", str(first), "--destination", "inbox").exit_code == 0
    site.deliver()
    assert site.state(first) == "delivered"
    assert_ledger_sound(site.config_path)


def test_a_never_delivered_document_is_rejected_as_before(site):
    doc = site.add(invoice(today()), "first")
    done = site.cli("reject", str(doc), "--reason", "not ours", "--yes")
    assert done.exit_code == 0 and "warning" not in done.stderr
    decided = [e.reason for e in site.ledger.events(doc) if "approved by" in (e.reason or "")]
    assert decided[-1].endswith("a rejection delivers nothing; `reopen` undoes it")
    assert "REJECTED" not in site.cli("status").stdout
    assert_ledger_sound(site.config_path)
