"""Issue 12, item 6: an amend after delivery never delivers the invoice twice.

The invoice goes to destination `erp` (a real HTTP finance server on
127.0.0.1) and destination `archive` (another one) refuses it. The operator
amends its number. `erp` holds it under the old key: the row keeps that key,
is marked superseded, reconciliation checks the key it was delivered under
(the old one, as an old key erp holds), and only an explicit `requeue
--destination erp` sends it there again.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from agent.deliver.loop import claim, record, send
from agent.deliver.retry import DeliveryPolicy
from agent.ledger.deliveries import summary_state
from agent.model import State
from agent.reconcile import reconcile
from tests.support.http_destination import FaultyFinanceServer, http_destination  # noqa: F401
from tests.support.judged import NUMBER, Site, invoice, number

NEW = number("87654321")
UTC = dt.timezone.utc


@pytest.fixture
def archive():
    with FaultyFinanceServer() as srv:
        yield srv


@pytest.fixture
def site(tmp_path, http_destination, archive):
    s = Site(tmp_path, [{"name": "erp", "url": http_destination.url, "timeout_s": 5},
                        {"name": "archive", "url": archive.url, "timeout_s": 5}])
    yield s
    s.close()


def delivered_to_erp_refused_by_archive(site: Site, archive: FaultyFinanceServer) -> int:
    doc = site.add(invoice(dt.date.today()), "invoice")
    archive.inject("400", message="buyer not registered here")
    site.deliver()
    assert site.state(doc) == "quarantined"
    assert {n: r["state"] for n, r in site.rows(doc).items()} == {"erp": "delivered", "archive": "quarantined"}
    assert site.rows(doc)["erp"]["delivered_key"] == NUMBER
    return doc


def test_amend_after_delivery_says_so_and_never_delivers_twice(site, http_destination, archive):
    erp = http_destination
    doc = delivered_to_erp_refused_by_archive(site, archive)

    amended = site.amend_approved(str(doc), "--set", f"number={NEW}", "--reason", "the scan misread it")
    assert amended.exit_code == 0, amended.output
    assert amended.stdout.endswith(f"document {doc}: quarantined -> valid -> queued\n")
    assert (f"warning: document {doc} was already delivered to erp under invoice key {NUMBER}; that delivery "
            f"is now superseded and it is not sent there again under {NEW}") in amended.stderr
    assert f"fapiao-agent requeue {doc} --destination erp" in amended.stderr
    rows = site.rows(doc)
    assert (rows["erp"]["state"], rows["erp"]["delivered_key"]) == ("superseded", NUMBER)
    assert rows["archive"]["state"] == "queued"
    note = [e for e in site.ledger.events(doc) if e.details and "old_key" in (e.details or {})]
    assert note and note[0].details["deliveries"] == [{"destination": "erp", "key": NUMBER, "state": "superseded"}]

    site.deliver()
    assert site.state(doc) == "delivered"
    assert site.rows(doc)["archive"]["delivered_key"] == NEW

    checked = site.cli("reconcile", "--json")
    report = json.loads(checked.stdout)
    # erp is looked up under the key it holds: found there, it stays superseded.
    assert [(c["destination"], c["key"], c["result"]) for c in report["checks"]] == [
        ("erp", NUMBER, "superseded"), ("archive", NEW, "confirmed")]
    assert report["summary"]["missing"] == 0
    site.deliver()
    assert dict(erp.accepted) == {NUMBER: 1} and dict(archive.accepted) == {NEW: 1}

    status = site.cli("status").stdout
    assert "superseded 1" in status

    # Without naming the destination, `requeue` leaves erp alone and says why.
    again = site.cli("requeue", str(doc))
    assert again.exit_code == 1 and "is confirmed at every destination it is due at" in again.stderr
    assert f"only `requeue {doc} --destination erp` sends it there again" in again.stderr
    site.deliver()
    assert dict(erp.accepted) == {NUMBER: 1} and site.rows(doc)["erp"]["state"] == "superseded"

    # Naming it is the explicit act that delivers it there under the new key.
    explicit = site.cli("requeue", str(doc), "--destination", "erp")
    assert explicit.exit_code == 0, explicit.output
    assert f"erp holds document {doc} under invoice key {NUMBER}" in explicit.stderr
    site.deliver()
    assert dict(erp.accepted) == {NUMBER: 1, NEW: 1}
    assert (site.rows(doc)["erp"]["state"], site.rows(doc)["erp"]["delivered_key"]) == ("delivered", NEW)


def test_a_good_copy_never_takes_the_place_of_one_already_delivered_somewhere(site, http_destination, archive):
    doc = delivered_to_erp_refused_by_archive(site, archive)
    copy = site.add(invoice(dt.date.today()), "downloaded-again")
    assert (site.state(copy), site.ledger.get(copy).duplicate_of) == ("duplicate", doc)
    assert site.state(doc) == "quarantined" and site.ledger.deliveries_of(copy) == []
    assert site.deliver() == [] and dict(http_destination.accepted) == {NUMBER: 1}


def test_reconciliation_looks_up_the_key_a_row_was_delivered_under(site, http_destination, archive):
    doc = site.add(invoice(dt.date.today()), "invoice")
    site.deliver()
    assert site.state(doc) == "delivered"
    # The document's key changed after delivery without its rows knowing (as
    # an amend by an older version left it): the destinations hold NUMBER.
    site.ledger.conn.execute("UPDATE documents SET invoice_key = ?, invoice_number = ? WHERE id = ?",
                             (NEW, NEW, doc))
    report = reconcile(site.ledger, site.dests, now=dt.datetime.now(UTC), actor="test", requeue_missing=True)
    assert [c.result for c in report.checks] == ["confirmed", "confirmed"]
    assert site.deliver() == [] and dict(http_destination.accepted) == {NUMBER: 1}


def test_amend_back_to_the_delivered_key_restores_the_delivery(site, http_destination, archive):
    doc = delivered_to_erp_refused_by_archive(site, archive)
    assert site.amend_approved(str(doc), "--set", f"number={NEW}").exit_code == 0
    back = site.amend_approved(str(doc), "--set", f"number={NUMBER}", "--reason", "it was right after all")
    assert back.exit_code == 0 and "warning" not in back.stderr
    assert (site.rows(doc)["erp"]["state"], site.rows(doc)["erp"]["delivered_key"]) == ("delivered", NUMBER)
    site.deliver()
    assert dict(http_destination.accepted) == {NUMBER: 1} and dict(archive.accepted) == {NUMBER: 1}
    assert site.state(doc) == "delivered"


def test_an_amend_during_a_delivery_in_flight_supersedes_it(site, http_destination, archive):
    doc = site.add(invoice(dt.date.today()), "invoice")
    now = dt.datetime.now(UTC)
    # The same lease as the site's own workers: a lease longer than any a worker
    # takes now would be read as one set before the clock went back.
    [in_flight] = claim(site.ledger, "erp", now=now, lease_s=60, token="slow-worker", actor="test")
    archive.inject("400", message="refused")
    site.deliver()  # archive refuses it; erp's row is still leased to the slow worker
    assert site.state(doc) == "quarantined" and site.rows(doc)["erp"]["state"] == "delivering"

    amended = site.amend_approved(str(doc), "--set", f"number={NEW}")
    assert amended.exit_code == 0 and "already delivered to erp" in amended.stderr
    # The slow worker's put lands under the old key; its late record changes nothing.
    outcome = send(site.dests["erp"], in_flight, site.vault)
    result = record(site.ledger, in_flight, outcome, DeliveryPolicy.from_config({"name": "erp"}),
                    now=dt.datetime.now(UTC), rng=site.rng, actor="test", tz=UTC)
    assert outcome.kind == "delivered" and not result.recorded
    assert (site.rows(doc)["erp"]["state"], site.rows(doc)["erp"]["delivered_key"]) == ("superseded", NUMBER)
    site.deliver()
    assert dict(http_destination.accepted) == {NUMBER: 1} and dict(archive.accepted) == {NEW: 1}


def test_superseded_rows_count_only_when_they_are_all_there_is():
    assert summary_state(["superseded", "queued"]) == State.QUEUED
    assert summary_state(["superseded", "confirmed"]) == State.CONFIRMED
    assert summary_state(["superseded", "failed"]) == State.FAILED
    assert summary_state(["superseded"]) == State.DELIVERED


def test_the_migration_takes_each_delivered_key_from_the_receipt(tmp_path):
    import sqlite3

    from agent.ledger import Ledger, _statements
    from agent.ledger.schema import MIGRATIONS

    mine = next(i for i, m in enumerate(MIGRATIONS) if "ADD COLUMN delivered_key" in m)
    path = tmp_path / "ledger.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    for migration in MIGRATIONS[:mine]:
        for statement in _statements(migration):
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {mine}")
    t = "2026-01-01T00:00:00.000000Z"
    # Amended by an older version after delivery: the document says NEW, erp holds NUMBER.
    conn.execute("INSERT INTO documents (id, sha256, size, source_kind, received_at, updated_at, state, "
                 "invoice_key) VALUES (1, 'a', 1, 'ingest', ?, ?, 'delivered', ?)", (t, t, NEW))
    for dest, state, receipt in [("erp", "delivered", json.dumps({"key": NUMBER})),
                                 ("archive", "confirmed", None), ("later", "queued", None)]:
        conn.execute("INSERT INTO deliveries (document_id, destination, state, receipt, queued_at, updated_at) "
                     "VALUES (1, ?, ?, ?, ?, ?)", (dest, state, receipt, t, t))
    conn.close()
    with Ledger(path) as ledger:
        keys = {d["destination"]: d["delivered_key"] for d in ledger.deliveries_of(1)}
        assert keys == {"erp": NUMBER, "archive": NEW, "later": None}
        plan = " ".join(r[3] for r in ledger.conn.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM documents WHERE invoice_key = ? AND state = ?", (NEW, "duplicate")))
        assert "(invoice_key=? AND state=?)" in plan
