"""A document queued again is in the state its delivery rows add up to.

Attack finding 2 (c21): a delivered invoice requeued, then its number
amended and approved: its only row became `superseded` (the destination
holds it under the old key) and the document stayed `queued` for good,
counted "on its way" by `status`, while no loop had anything to send. The
class: after any queueing the document's state is `summary_state` of its
rows, as the delivery loop keeps it.
"""

from __future__ import annotations

import datetime as dt

from agent.ledger import utc
from agent.ledger.deliveries import summary_state
from agent.model import State
from tests.support.audit import assert_ledger_sound
# The same site as there: destinations erp and archive, real HTTP servers.
from tests.integration.test_amend_after_delivery import archive, site  # noqa: F401  (fixtures)
from tests.support.http_destination import http_destination  # noqa: F401
from tests.support.judged import NUMBER, invoice, number

NEW = number("87654321")


def test_a_key_amend_after_a_requeue_leaves_the_document_delivered_not_queued(site, http_destination, archive):
    doc = site.add(invoice(dt.date.today()), "invoice")
    site.deliver()
    assert site.state(doc) == "delivered"
    assert site.cli("requeue", str(doc)).exit_code == 0
    assert site.state(doc) == "queued"

    amended = site.amend_approved(str(doc), "--set", f"number={NEW}", "--reason", "the paper says otherwise")
    assert amended.exit_code == 0, amended.output
    # Both destinations hold it under NUMBER: nothing is sent, and the
    # document says so instead of waiting "on its way" for ever.
    assert amended.stdout.endswith(f"document {doc}: quarantined -> valid -> queued -> delivered\n")
    assert {n: r["state"] for n, r in site.rows(doc).items()} == {"erp": "superseded", "archive": "superseded"}
    assert site.state(doc) == "delivered"
    moves = [(e.from_state, e.to_state, e.reason) for e in site.ledger.events(doc) if e.to_state][-2:]
    assert moves[0][:2] == ("valid", "queued") and "nothing to send" in moves[0][2]
    assert moves[1][:2] == ("queued", "delivered") and "erp superseded under " + NUMBER in moves[1][2]
    assert site.deliver() == []
    assert dict(http_destination.accepted) == {NUMBER: 1} and dict(archive.accepted) == {NUMBER: 1}
    assert "      queued  0\n" in site.cli("status").stdout
    assert_ledger_sound(site.config_path)


def test_queueing_with_one_destination_still_to_go_is_queued(site, http_destination, archive):
    archive.inject("400", message="buyer unknown here")
    doc = site.add(invoice(dt.date.today()), "invoice")
    site.deliver()
    assert site.state(doc) == "quarantined"
    amended = site.amend_approved(str(doc), "--set", "buyer_name=上海另一家有限公司")
    assert amended.exit_code == 0, amended.output
    assert site.state(doc) == "queued"
    assert {n: r["state"] for n, r in site.rows(doc).items()} == {"erp": "delivered", "archive": "queued"}
    site.deliver()
    assert site.state(doc) == "delivered"
    assert_ledger_sound(site.config_path)


def test_queue_deliveries_returns_and_writes_the_summary_for_every_row_mix(site):
    """Every mix of rows a queueing can leave: the document ends where its rows say."""
    now = utc(dt.datetime.now(dt.timezone.utc))
    mixes = [((), State.QUEUED), (("delivered",), State.DELIVERED), (("confirmed",), State.CONFIRMED),
             (("superseded",), State.DELIVERED), (("confirmed", "failed"), State.FAILED),
             (("delivered", "missing"), State.MISSING), (("delivered", "quarantined"), State.QUARANTINED)]
    for i, (others, expected) in enumerate(mixes):
        doc = site.add(invoice(dt.date.today(), number=number(f"{i + 100:08d}")), f"mix-{i}")
        site.ledger.conn.execute("DELETE FROM deliveries WHERE document_id = ?", (doc,))
        site.ledger.conn.execute("UPDATE documents SET state = 'valid' WHERE id = ?", (doc,))
        # The first is erp's row, held already; any second one a removed destination's.
        for name, state in zip(("erp", "gone"), others):
            site.ledger.conn.execute("INSERT INTO deliveries (document_id, destination, state, delivered_key, "
                                     "last_error, queued_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                                     (doc, name, state, NUMBER, "refused" if state == "quarantined" else None,
                                      now, now))
        got = site.ledger.queue_deliveries(doc, ["erp"], now=now, actor="test")
        rows = [r["state"] for r in site.ledger.deliveries_of(doc)]
        assert got == expected == summary_state(rows) == State(site.state(doc)), (others, rows, got)
        if expected == State.QUARANTINED:
            assert any(p["code"] == "delivery-rejected" and "gone" in p["message"]
                       for p in site.ledger.get(doc).problems)
