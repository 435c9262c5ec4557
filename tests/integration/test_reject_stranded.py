"""A rejected invoice whose put was cut off (its worker killed mid-put):
the row stays `delivering`, no loop claims it again (a person holds the
document), and before `reconcile` looked at such rows nothing could ever
settle it: `status`, `audit ledger` and the rejected-at-destination alert
named it for ever. Now `reconcile`, once the lease has ended, asks the
destination: held there, the row is `delivered` (remove it by hand, then
the next `reconcile` finds it gone); not there, it ends as a put that never
landed. A live lease is left alone.

The stranded row is made by the delivery loop's own calls (`claim`, then
`send` or nothing, and no `record`: the worker died); real ledger, vault and
CLI; a folder destination and a real HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time

import pytest

from agent.config import load_config
from agent.deliver.loop import claim, record, send
from service.notify import NotifyRunner
from tests.integration.test_notify_config_and_rejections import notify_entry, round_trip, told
from tests.integration.test_reject_delivered import files_in, remove_by_hand
from tests.support.audit import assert_ledger_sound, audit_ledger
from tests.support.http_destination import FaultyFinanceServer
from tests.support.judged import NUMBER, Site, invoice
from tests.support.notify_servers import RobotServer

LEASE_S = 1.0


def refuser(server: FaultyFinanceServer) -> dict:
    """A destination refusing the invoice for good (400): its document is
    quarantined, so a person can reject it while another put is cut off."""
    server.inject("400", times=100, message="buyer unknown")
    return {"name": "refuser", "url": server.url, "timeout_s": 5}


def refused(site: Site, doc: int) -> None:
    from agent.deliver.loop import deliver_step

    r = deliver_step(site.ledger, site.dests["refuser"], site.policies["refuser"], site.gates["refuser"],
                     vault=site.vault, now=dt.datetime.now(dt.timezone.utc), rng=site.rng, lease_s=60,
                     token="t", actor="test", tz=dt.timezone.utc)
    assert r is not None and r.row_state == "quarantined" and site.state(doc) == "quarantined"


def cut_off(site: Site, doc: int, destination: str, *, put: bool, lease_s: float = LEASE_S):
    """A worker claims the row and dies: after its put landed (`put`) or
    before it reached the destination; nothing recorded either way. The
    refuser meanwhile quarantines the document."""
    [claimed] = claim(site.ledger, destination, now=dt.datetime.now(dt.timezone.utc), lease_s=lease_s,
                      token="4242:dead", actor="daemon:test")
    if put:
        assert send(site.dests[destination], claimed, site.vault).kind == "delivered"
    refused(site, doc)
    return claimed


def lease_ended() -> None:
    time.sleep(LEASE_S + 0.1)


def reject(site: Site, doc: int) -> None:
    done = site.cli("reject", str(doc), "--reason", "not ours after all", "--yes", "--acknowledge-delivered")
    assert done.exit_code == 0, done.output
    assert "a put in flight" in done.stderr


def named(site: Site, doc: int) -> str | None:
    """The status line naming the rejected document at a destination, or None."""
    lines = [ln for ln in site.cli("status").stdout.splitlines() if ln.strip().startswith("REJECTED")]
    return next((ln for ln in lines if f"document {doc} at" in ln), None)


def codes(site: Site) -> list[tuple[str, int]]:
    code, report, _ = audit_ledger(site.config_path)
    return [(v["code"], v["document"]) for v in (report or {}).get("violations") or []]


def reconcile(site: Site, *args: str) -> dict:
    out = site.cli("reconcile", "--json", *args)
    return {"exit": out.exit_code, **json.loads(out.stdout)}


@pytest.fixture
def site(tmp_path):
    (tmp_path / "import").mkdir()
    with FaultyFinanceServer() as server:
        s = Site(tmp_path, [{"name": "inbox", "url": f"folder://{tmp_path / 'import'}"}, refuser(server)])
        yield s
        s.close()


@pytest.fixture
def erp():
    with FaultyFinanceServer() as server:
        yield server


def test_a_put_that_landed_becomes_delivered_and_is_named_until_removed(site, tmp_path):
    doc = site.add(invoice(dt.date.today()), "first")
    cut_off(site, doc, "inbox", put=True)
    assert files_in(tmp_path / "import") == [f"{NUMBER}.pdf"]
    reject(site, doc)
    lease_ended()

    out = site.cli("reconcile")
    assert out.exit_code == 0, out.output
    assert f"warning: document {doc} is rejected, but its put cut off landed at inbox" in out.stderr
    assert "landed 1" in out.stdout and " landed " in out.stdout.splitlines()[1], out.stdout
    row = site.rows(doc)["inbox"]
    assert (row["state"], row["delivered_key"], row["lease_token"]) == ("delivered", NUMBER, None)
    assert site.state(doc) == "rejected"
    event = site.ledger.events(doc)[-1]
    assert "landed: reconciliation found it there under key" in event.reason, event.reason
    # Still there, and named so, as the status line and the audit say.
    assert f"document {doc} at inbox (delivered under key {NUMBER})" in named(site, doc)
    assert codes(site) == [("rejected-at-destination", doc)]
    assert site.deliver() == []          # never sent again

    remove_by_hand(tmp_path / "import")
    again = reconcile(site)
    assert again["exit"] == 0 and again["summary"]["missing"] == 1, again
    assert site.rows(doc)["inbox"]["state"] == "missing"
    assert named(site, doc) is None
    assert json.loads(site.cli("show", str(doc), "--json").stdout)["rejected_yet_at"] == []
    assert_ledger_sound(site.config_path)


def test_a_put_that_never_landed_is_no_longer_named_and_the_alert_resolves(tmp_path, erp):
    with FaultyFinanceServer() as other, RobotServer() as robot:
        site = Site(tmp_path, [{"name": "erp", "url": erp.url, "timeout_s": 5}, refuser(other)])
        try:
            site.config_path.write_text(site.config_path.read_text()
                                        + notify_entry(robot.url, "rejected-at-destination"))
            runner = NotifyRunner(load_config(site.config_path), threading.Event())
            doc = site.add(invoice(dt.date.today()), "first")
            cut_off(site, doc, "erp", put=False)
            reject(site, doc)
            assert "a put in flight" in named(site, doc)
            assert round_trip(runner, site.ledger) == 1
            assert "1 rejected invoice(s) still at a destination" in told(robot)[-1]
            lease_ended()

            done = reconcile(site)
            assert done["exit"] == 0, done
            assert [c["result"] for c in done["checks"]] == ["never-landed"]
            assert done["summary"]["never_landed"] == 1 and done["summary"]["checked"] == 1
            row = site.rows(doc)["erp"]
            assert (row["state"], row["delivered_key"], row["lease_until"]) == ("queued", None, None)
            assert row["attempts_log"][-1]["outcome"] == "absent"
            assert "never landed" in site.ledger.events(doc)[-1].reason
            assert site.ledger.held_at(doc) == [] and named(site, doc) is None
            assert json.loads(site.cli("status", "--json").stdout)["rejected_there"]["count"] == 0
            assert round_trip(runner, site.ledger) == 1
            assert "已恢复 RESOLVED" in told(robot)[-1] and "rejected invoice(s)" in told(robot)[-1]
            assert site.deliver() == [] and erp.stats()["posts"] == 0   # never sent
            assert reconcile(site)["checks"] == []                       # nothing left to look at
            assert_ledger_sound(site.config_path)
        finally:
            site.close()


def test_a_live_lease_is_left_alone_until_its_put_ends(site, tmp_path):
    doc = site.add(invoice(dt.date.today()), "first")
    claimed = cut_off(site, doc, "inbox", put=False, lease_s=3600)
    reject(site, doc)

    done = reconcile(site)
    assert done["exit"] == 0, done
    [check] = done["checks"]
    assert check["result"] == "in-flight" and "a put may be in flight" in check["error"]
    assert done["summary"]["in_flight"] == 1 and done["summary"]["checked"] == 0
    assert site.rows(doc)["inbox"]["state"] == "delivering" and site.rows(doc)["inbox"]["lease_token"] == "4242:dead"
    assert "a put in flight" in named(site, doc)

    # The put goes on, lands and is recorded by its own worker: the usual way out.
    outcome = send(site.dests["inbox"], claimed, site.vault)
    result = record(site.ledger, claimed, outcome, site.policies["inbox"], now=dt.datetime.now(dt.timezone.utc),
                    rng=site.rng, actor="test")
    assert result.recorded and site.rows(doc)["inbox"]["state"] == "delivered"
    remove_by_hand(tmp_path / "import")
    assert reconcile(site)["exit"] == 0
    assert named(site, doc) is None
    assert_ledger_sound(site.config_path)


def test_a_destination_that_cannot_answer_leaves_the_row_as_it_is(tmp_path, erp):
    with FaultyFinanceServer() as other:
        site = Site(tmp_path, [{"name": "erp", "url": erp.url, "timeout_s": 5}, refuser(other)])
        try:
            doc = site.add(invoice(dt.date.today()), "first")
            cut_off(site, doc, "erp", put=False)
            reject(site, doc)
            lease_ended()
            erp.inject("500", times=3, on="get")
            out = site.cli("reconcile")
            assert out.exit_code == 1, out.output
            assert "erp cannot say whether it holds it" in out.stdout, out.stdout
            assert site.rows(doc)["erp"]["state"] == "delivering"
            assert "a put in flight" in named(site, doc)
            erp.clear()
            assert reconcile(site)["summary"]["never_landed"] == 1
            assert_ledger_sound(site.config_path)
        finally:
            site.close()


def test_another_file_under_the_key_is_not_this_documents_put(tmp_path, erp):
    with FaultyFinanceServer() as other:
        site = Site(tmp_path, [{"name": "erp", "url": erp.url, "timeout_s": 5}, refuser(other)])
        try:
            doc = site.add(invoice(dt.date.today()), "first")
            cut_off(site, doc, "erp", put=False)
            reject(site, doc)
            lease_ended()
            # Someone else's file under the invoice's key: the lookup finds
            # the key, but not this document's file, so its put did not land.
            erp._store(NUMBER, {"number": NUMBER}, b"another file", "0" * 64, "other.pdf")
            done = reconcile(site)
            [check] = done["checks"]
            assert check["result"] == "never-landed" and "holds another file under key" in check["error"], done
            row = site.rows(doc)["erp"]
            assert row["state"] == "queued" and "holds another file" in row["attempts_log"][-1]["error"]
            assert named(site, doc) is None
        finally:
            site.close()
