"""A destination added to the config (at a start, or by a reload: both run
`resume_stranded`) gets every document still on its way (queued,
delivering, failed); documents already delivered, confirmed or missing do
not get it by themselves, and `requeue ID --destination NAME` sends one
there. Before, only `valid` documents were queued for it: one queued for
the first destination ended `delivered` with no row for the new one, and
`requeue --destination` said "nothing to requeue"."""

from __future__ import annotations

import datetime as dt

from click.testing import CliRunner

from agent import pipeline
from agent.ledger import Ledger, utc
from agent.validate import ValidationSettings
from agent.vault import Vault
from service.cli import main
from tests.support.audit import assert_ledger_sound
from tests.support.queued import queue_invoice

T0 = dt.datetime(2026, 3, 4, 10, 0, tzinfo=dt.timezone.utc)
NOW, LATER = utc(T0), utc(T0 + dt.timedelta(minutes=5))
CONFIG = """
[agent]
state_dir = "state"
[validation]
max_age_days = 100000
[[destination]]
name = "a"
url = "folder://out-a"
[[destination]]
name = "b"
url = "folder://out-b"
"""


def _site(tmp_path):
    (tmp_path / "out-a").mkdir()
    (tmp_path / "out-b").mkdir()
    config = tmp_path / "agent.toml"
    config.write_text(CONFIG, encoding="utf-8")
    return config, Ledger(tmp_path / "state" / "ledger.sqlite3"), Vault(tmp_path / "state" / "vault")


def _finish(ledger: Ledger, doc_id: int, state: str) -> None:
    # One attempt at `a` for this document, ended as `state`.
    (row,) = [r for r in ledger.claim_deliveries("a", now=NOW, lease_until=LATER, token=f"t{doc_id}", actor="t",
                                                 limit=10) if r["document_id"] == doc_id]
    ledger.finish_delivery(row["delivery_id"], f"t{doc_id}", state=state, now=NOW, actor="t", outcome=state,
                           error="refused: 422" if state == "failed" else None)


def _rows(ledger: Ledger, doc_id: int) -> dict[str, str]:
    return {r["destination"]: r["state"] for r in ledger.deliveries_of(doc_id)}


def test_documents_on_their_way_get_the_added_destination_and_delivered_ones_do_not(tmp_path):
    config, ledger, vault = _site(tmp_path)
    ids = {}
    # Each queued for `a` alone (the config before `b` was added), one after
    # another, so each claim below takes only its own row.
    for i, end in enumerate(("failed", "delivered", "delivering", "queued")):
        ids[end] = queue_invoice(ledger, vault, i, destinations=["a"], now=NOW)
        if end in ("failed", "delivered"):
            _finish(ledger, ids[end], end)
        elif end == "delivering":
            ledger.claim_deliveries("a", now=NOW, lease_until=LATER, token="held", actor="t", limit=10)
    assert {k: ledger.state_of(v) for k, v in ids.items()} == {
        "failed": "failed", "delivered": "delivered", "delivering": "delivering", "queued": "queued"}

    added: dict[str, int] = {}
    pipeline.resume_stranded(ledger, settings=ValidationSettings(), destinations=["a", "b"], today=T0.date(),
                             now=LATER, actor="daemon", added_to=added)

    assert added == {"b": 3}
    for end in ("failed", "delivering", "queued"):
        assert _rows(ledger, ids[end]) == {"a": end, "b": "queued"}, end
        assert ledger.state_of(ids[end]) == end    # its other row decides as before
        assert any("a destination added to the config: queued for b" in (e.reason or "")
                   for e in ledger.events(ids[end]))
    assert _rows(ledger, ids["delivered"]) == {"a": "delivered"}
    assert ledger.count_without_delivery("b") == 1
    # Again (the next start): nothing more.
    again: dict[str, int] = {}
    pipeline.resume_stranded(ledger, settings=ValidationSettings(), destinations=["a", "b"], today=T0.date(),
                             now=LATER, actor="daemon", added_to=again)
    assert again == {}
    delivered = ids["delivered"]
    ledger.close()

    # The way to send one delivered before `b` existed.
    r = CliRunner().invoke(main, ["--config", str(config), "requeue", str(delivered), "--destination", "b"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert f"document {delivered}: queued for b" in r.output
    with Ledger(tmp_path / "state" / "ledger.sqlite3") as ledger:
        assert _rows(ledger, delivered) == {"a": "delivered", "b": "queued"}
        assert ledger.state_of(delivered) == "queued"
        # `a` keeps its delivery: only the row asked for was added.
        assert next(r for r in ledger.deliveries_of(delivered) if r["destination"] == "a")["delivered_at"]
    assert_ledger_sound(config)


def test_add_deliveries_never_touches_an_existing_row(tmp_path):
    _, ledger, vault = _site(tmp_path)
    doc = queue_invoice(ledger, vault, 1, destinations=["a"], now=NOW)
    _finish(ledger, doc, "delivered")
    assert ledger.add_deliveries(doc, ["a"], now=LATER, actor="t", reason="test") == []
    assert _rows(ledger, doc) == {"a": "delivered"} and ledger.state_of(doc) == "delivered"
    ledger.close()
