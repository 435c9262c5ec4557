"""A destination removed from the config (or renamed) can be let go of.

Attack finding 7 (c06, c01): `retry --all-failed` silently queued again a
failed delivery to a destination no longer configured (health turned
CRITICAL), `requeue` answered "queued again for a, b" and "queued again for
fin" for destinations that no loop sends to, and nothing let an operator
let go of a destination removed on purpose. Now requeue and retry touch
only configured destinations and say which deliveries they left and how to
let them go; `drop-destination NAME` does that, one event per document.
"""

from __future__ import annotations

import datetime as dt
import json
import textwrap

import pytest

from tests.support.audit import assert_ledger_sound
from tests.support.http_destination import FaultyFinanceServer, http_destination  # noqa: F401
from tests.support.judged import NUMBER, Site, invoice, number


@pytest.fixture
def second():
    with FaultyFinanceServer() as srv:
        yield srv


@pytest.fixture
def site(tmp_path, http_destination, second):
    s = Site(tmp_path, [{"name": "a", "url": http_destination.url, "timeout_s": 5},
                        {"name": "b", "url": second.url, "timeout_s": 5, "max_attempts": 1}])
    yield s
    s.close()


def configure(site: Site, *entries: tuple[str, str]) -> None:
    """Rewrite the config with only these (name, url) destinations, as an operator edits it."""
    text = '[agent]\nstate_dir = "state"\n[validation]\nmax_age_days = 360\n'
    for name, url in entries:
        text += f'[[destination]]\nname = "{name}"\nurl = "{url}"\ntimeout_s = 5\n'
    site.config_path.write_text(textwrap.dedent(text), encoding="utf-8")


def b_failed_and_b_waiting(site: Site, a: FaultyFinanceServer, b: FaultyFinanceServer) -> tuple[int, int]:
    """Two invoices delivered to a; b failed the first and has not yet tried the second."""
    b.inject("500", times=1)
    failed = site.add(invoice(dt.date.today()), "one")
    site.deliver()
    waiting = site.add(invoice(dt.date.today(), number=number("22222222")), "two")
    site.dests.pop("b")   # b's loop does not get to it
    site.deliver()
    assert site.state(failed) == "failed" and site.state(waiting) == "queued"
    assert {n: r["state"] for n, r in site.rows(waiting).items()} == {"a": "delivered", "b": "queued"}
    return failed, waiting


def test_retry_and_requeue_leave_a_removed_destination_and_say_how_to_let_it_go(site, http_destination, second):
    failed, waiting = b_failed_and_b_waiting(site, http_destination, second)
    configure(site, ("a", http_destination.url))

    retried = site.cli("retry", "--all-failed")
    assert retried.exit_code == 0, retried.output
    assert retried.stdout == "0 documents queued again\n"
    assert ("note: left 1 failed delivery to b: b is no longer in the config; put it back, or let them go: "
            "fapiao-agent drop-destination b --reason TEXT") in retried.stderr
    assert site.rows(failed)["b"]["state"] == "failed" and site.state(failed) == "failed"

    one = site.cli("retry", str(failed))
    assert one.exit_code == 1 and "note: left b (failed)" in one.stderr
    assert "no failed or waiting delivery to a configured destination" in one.stderr

    again = site.cli("requeue", str(waiting))
    assert again.exit_code == 0, again.output
    assert again.stdout == f"document {waiting}: queued again for a\n"
    assert "note: left b (queued): b is no longer in the config" in again.stderr
    assert site.rows(waiting)["b"]["attempts"] == 0 and site.rows(waiting)["b"]["state"] == "queued"
    assert site.cli("requeue", str(waiting), "--destination", "b").exit_code == 1   # no destination named b


def test_drop_destination_lets_go_of_a_removed_destination(site, http_destination, second):
    failed, waiting = b_failed_and_b_waiting(site, http_destination, second)
    configure(site, ("a", http_destination.url))
    status = site.cli("status", "--check")
    assert "fapiao-agent drop-destination b --reason TEXT" in status.stdout

    refused = site.cli("drop-destination", "a", "--reason", "oops")
    assert refused.exit_code == 2 and "a is in the config" in refused.stderr

    dropped = site.cli("drop-destination", "b", "--reason", "b retired (CHG-1)")
    assert dropped.exit_code == 0, dropped.output
    assert dropped.stdout == (f"document {failed}: b (failed) let go; failed -> delivered\n"
                              f"document {waiting}: b (queued) let go; queued -> delivered\n")
    assert "2 documents: deliveries to b let go" in dropped.stderr
    for doc in (failed, waiting):
        assert {n: r["state"] for n, r in site.rows(doc).items()} == {"a": "delivered", "b": "dropped"}
        assert site.rows(doc)["b"]["attempts_log"][-1]["outcome"] == "dropped"
        events = [e for e in site.ledger.events(doc) if e.reason and "let go" in e.reason]
        assert len(events) == 1 and "b retired (CHG-1)" in events[0].reason
    shown = site.cli("show", str(failed)).stdout
    assert "b: dropped" in shown and "delivery to b let go (failed; b is no longer configured)" in shown

    # Nothing is sent to b again, not by retry nor by requeue.
    assert site.cli("retry", "--all-failed").stderr == ""
    assert site.cli("requeue", str(failed)).stderr == ""
    assert site.rows(failed)["b"]["state"] == "dropped"
    nothing = site.cli("drop-destination", "b", "--reason", "again")
    assert nothing.exit_code == 0 and "nothing waits for b" in nothing.stderr
    assert "drop-destination" not in site.cli("status", "--check").stdout
    assert_ledger_sound(site.config_path)

    # b back in the config: naming it brings a dropped delivery back.
    configure(site, ("a", http_destination.url), ("b", second.url))
    back = site.cli("requeue", str(failed), "--destination", "b")
    assert back.exit_code == 0 and back.stdout == f"document {failed}: queued again for b\n"
    assert site.state(failed) == "queued" and site.rows(failed)["b"]["state"] == "queued"


def test_a_renamed_destination_let_go_is_delivered_under_its_new_name(tmp_path, http_destination):
    site = Site(tmp_path, [{"name": "fin", "url": http_destination.url, "timeout_s": 5}])
    try:
        http_destination.inject("503", times=100)
        docs = [site.add(invoice(dt.date.today(), number=number(f"{i:08d}")), f"inv{i}") for i in (1, 2)]
        site.deliver()
        assert [site.state(d) for d in docs] == ["queued", "queued"]
        configure(site, ("finance", http_destination.url))
        http_destination.clear()

        requeued = site.cli("requeue", str(docs[0]))
        assert requeued.exit_code == 1 and "queued again" not in requeued.stdout
        assert "note: left fin (queued): fin is no longer in the config" in requeued.stderr

        out = site.cli("drop-destination", "fin", "--reason", "renamed to finance", "--json")
        assert out.exit_code == 0, out.output
        lines = [json.loads(line) for line in out.stdout.splitlines()]
        assert [(r["document_id"], r["dropped"], r["state"], r["queued_for"], r["left"]) for r in lines] == [
            (d, ["queued"], "queued", ["finance"], None) for d in docs]

        # As the daemon opens the config it now has.
        from agent.config import load_config
        from agent.deliver import open_destination
        from agent.deliver.loop import Gate
        from agent.deliver.retry import DeliveryPolicy

        entry = load_config(site.config_path).destinations[0]
        site.dests = {"finance": open_destination(entry)}
        site.policies = {"finance": DeliveryPolicy.from_config(entry)}
        site.gates = {"finance": Gate.fresh(site.policies["finance"], tz=dt.timezone.utc)}
        site.deliver()
        assert [site.state(d) for d in docs] == ["delivered", "delivered"]
        assert sum(http_destination.accepted.values()) == 2
        assert_ledger_sound(site.config_path)
    finally:
        site.close()


def test_a_row_being_sent_is_left_and_a_held_document_keeps_its_state(site, http_destination, second):
    from agent.deliver.loop import claim

    second.inject("400", message="buyer unknown at b")
    held = site.add(invoice(dt.date.today()), "held")
    site.deliver()
    assert site.state(held) == "quarantined" and site.rows(held)["b"]["state"] == "quarantined"
    sending = site.add(invoice(dt.date.today(), number=number("33333333")), "sending")
    site.dests.pop("b")
    site.deliver()
    [_] = claim(site.ledger, "b", now=dt.datetime.now(dt.timezone.utc), lease_s=60, token="slow", actor="test")
    configure(site, ("a", http_destination.url))

    out = site.cli("drop-destination", "b", "--reason", "b retired")
    assert out.exit_code == 1, out.output
    assert f"document {held}: b (quarantined) let go; stays quarantined" in out.stdout
    assert f"document {sending} (delivering): left: being sent to b right now" in out.stdout
    assert site.rows(sending)["b"]["state"] == "delivering"
    note = [e for e in site.ledger.events(held) if e.reason and "let go" in e.reason][0]
    assert "document stays quarantined: a person decides it" in note.reason

    # The person lets it through: a holds it already, b is let go: delivered, nothing sent.
    accepted = site.cli("accept", str(held), "--reason", "b's refusal does not matter any more")
    assert accepted.exit_code == 0, accepted.output
    assert site.state(held) == "delivered" and dict(http_destination.accepted)[NUMBER] == 1

    # Its worker died: once the lease has ended the row is let go too.
    site.ledger.conn.execute("UPDATE deliveries SET lease_until = '2000-01-01T00:00:00.000000Z' "
                             "WHERE document_id = ? AND destination = 'b'", (sending,))
    again = site.cli("drop-destination", "b", "--reason", "b retired")
    assert again.exit_code == 0 and f"document {sending}: b (delivering) let go; delivering -> delivered" in again.stdout
    assert_ledger_sound(site.config_path)


def test_requeue_of_a_document_a_removed_destination_holds_asks_nothing_of_it(site, http_destination, second):
    # Its delivery there is finished: nothing waits for it, so no
    # drop-destination to run (it would say "nothing waits for b").
    doc = site.add(invoice(dt.date.today()), "both")
    site.deliver()
    assert {n: r["state"] for n, r in site.rows(doc).items()} == {"a": "delivered", "b": "delivered"}
    configure(site, ("a", http_destination.url))
    again = site.cli("requeue", str(doc))
    assert again.exit_code == 0, again.output
    assert "note: not sent again to b (delivered): b is no longer in the config" in again.stderr
    assert "drop-destination" not in again.stderr
    assert site.rows(doc)["b"]["state"] == "delivered"
    assert_ledger_sound(site.config_path)
