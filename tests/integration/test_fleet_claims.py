"""Cross-site exactly once (issue 16): claims in a shared store decide which
site delivers an invoice key. Real ledgers, a real folder destination, the
shared store a real folder or a real SeaweedFS; time walks by `now`."""

from __future__ import annotations

import datetime as dt
import random
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from agent.audit import audit_ledger
from agent.audit_rules import AuditSettings
from agent.deliver import open_destination
from agent.deliver.loop import claim, record, send
from agent.deliver.retry import DeliveryPolicy
from agent.fleet.claims import acquire, head, settle
from agent.fleet.gate import FleetSettings, screen, settle_claims
from agent.fleet.store import FileStore, open_store
from agent.ledger import Ledger, utc
from agent.model import State
from agent.vault import Vault
from tests.support.queued import number_of, queue_invoice
from tests.support.seaweed import seaweed  # noqa: F401  (fixture)

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 3, 4, 10, 0, tzinfo=UTC)
KEY = "24442000000000000007"
RAW_STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")   # a UTC stamp as stored


def at(s: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=s)


class Site:
    """One site: its own ledger and vault, the shared store, one shared outbox."""

    def __init__(self, root: Path, name: str, store, outbox: Path, **fleet):
        self.name = name
        self.ledger = Ledger(root / name / "ledger.sqlite3")
        self.vault = Vault(root / name / "vault")
        self.store = store
        self.settings = FleetSettings(site=name, **fleet)
        self.cfg = {"name": "erp", "url": f"folder://{outbox}"}
        self.dest = open_destination(self.cfg)
        self.policy = DeliveryPolicy.from_config(self.cfg)

    def add(self, i: int, now: dt.datetime) -> int:
        return queue_invoice(self.ledger, self.vault, i, destinations=["erp"], now=utc(now))

    def step(self, now: dt.datetime, token: str = "w") -> list[str]:
        """One worker pass as service/delivery.py runs it: claim, screen, send, record."""
        claims = claim(self.ledger, "erp", now=now, lease_s=60, token=token, actor=self.name, limit=8)
        kinds = []
        for s in screen(self.ledger, self.store, self.settings, claims, now=now, actor=self.name):
            kinds.append(s.kind)
            if s.kind == "go":
                record(self.ledger, s.claim, send(self.dest, s.claim, self.vault), self.policy, now=now,
                       rng=random.Random(1), actor=self.name, tz=UTC)
        return kinds

    def audit(self, now: dt.datetime) -> list[str]:
        return [v.line() for v in audit_ledger(self.ledger, self.vault.root,
                                               AuditSettings(destinations=("erp",)), now=now)]


@pytest.fixture
def shared(tmp_path):
    (tmp_path / "store").mkdir()
    (tmp_path / "out").mkdir()
    store = open_store({"url": f"file://{tmp_path / 'store'}"})
    sites = {}

    def make(name, **fleet):
        sites[name] = Site(tmp_path, name, store, tmp_path / "out", **fleet)
        return sites[name]
    yield make, tmp_path / "out", store
    for s in sites.values():
        s.ledger.close()


def delivered_files(out: Path) -> list[str]:
    # One invoice file (and its .json) per delivery.
    return sorted(p.name for p in out.rglob("*") if p.is_file() and not p.name.startswith(".")
                  and p.suffix != ".json")


# -- the claim chain ------------------------------------------------------------------------


def test_first_claim_wins_the_other_site_loses_and_learns_who_and_when(tmp_path):
    store = FileStore(tmp_path)
    a = acquire(store, KEY, site="beijing", sha256="a" * 64, document_id=1, now=T0, lease_s=300)
    b = acquire(store, KEY, site="shanghai", sha256="b" * 64, document_id=9, now=at(5), lease_s=300)
    assert a.kind == "won" and a.record.generation == 1
    assert b.kind == "lost" and b.record.site == "beijing" and b.record.at == "2026-03-04T10:00:00Z"


def test_the_holder_renews_only_past_half_its_lease_and_another_site_takes_over_only_after_it(tmp_path):
    store = FileStore(tmp_path)
    acquire(store, KEY, site="beijing", sha256="a" * 64, document_id=1, now=T0, lease_s=100)
    assert acquire(store, KEY, site="beijing", sha256="a" * 64, document_id=1, now=at(10),
                   lease_s=100).record.generation == 1
    renewed = acquire(store, KEY, site="beijing", sha256="a" * 64, document_id=1, now=at(60), lease_s=100)
    assert renewed.kind == "won" and renewed.record.generation == 2 and renewed.record.at == "2026-03-04T10:00:00Z"
    assert acquire(store, KEY, site="shanghai", sha256="b" * 64, document_id=2, now=at(159),
                   lease_s=100).kind == "lost"
    taken = acquire(store, KEY, site="shanghai", sha256="b" * 64, document_id=2, now=at(161), lease_s=100)
    assert taken.kind == "won" and taken.record.generation == 3 and taken.record.site == "shanghai"
    assert acquire(store, KEY, site="beijing", sha256="a" * 64, document_id=1, now=at(162),
                   lease_s=100).kind == "lost"


def test_a_name_that_only_ends_like_a_generation_is_no_part_of_the_chain(tmp_path):
    # A copy an operator or a sync tool left beside a claim ("copy-gen-...",
    # "x.gen-...") was counted as a generation: the chain's head pointed at
    # an object no site reads under that name, and a missing mark could hide.
    from agent.fleet.claims import claim_prefix, generations

    store = FileStore(tmp_path)
    acquire(store, KEY, site="beijing", sha256="a" * 64, document_id=1, now=T0, lease_s=300)
    first, _ = store.read(claim_prefix(KEY) + "gen-00000001")
    for stray in ("copy-gen-00000005", "x.gen-00000007", "gen-00000009.bak"):
        store.create(claim_prefix(KEY) + stray, first)
    assert generations(store, KEY) == [1]
    assert head(store, KEY).site == "beijing"
    assert acquire(store, KEY, site="shanghai", sha256="b" * 64, document_id=9, now=at(5), lease_s=300).kind == "lost"


def test_a_delivered_claim_is_never_taken_over_and_a_released_one_is(tmp_path):
    store = FileStore(tmp_path)
    acquire(store, KEY, site="beijing", sha256="a" * 64, document_id=1, now=T0, lease_s=100)
    assert settle(store, KEY, site="beijing", state="delivered", now=at(1)).kind == "won"
    assert acquire(store, KEY, site="shanghai", sha256="b" * 64, document_id=2, now=at(10_000),
                   lease_s=100).kind == "lost"
    assert settle(store, KEY, site="beijing", state="released", now=at(10_001)).kind == "won"
    assert acquire(store, KEY, site="shanghai", sha256="b" * 64, document_id=2, now=at(10_002),
                   lease_s=100).kind == "won"
    assert head(store, KEY).site == "shanghai"


def test_sites_racing_for_a_key_on_seaweedfs_have_one_winner(seaweed):
    cfg = seaweed.target_config(seaweed.make_bucket(), prefix="fleet")
    cfg.pop("name")
    stores = [open_store(cfg) for _ in range(8)]
    for k in range(5):
        key = f"{KEY}{k}"
        with ThreadPoolExecutor(8) as pool:
            verdicts = list(pool.map(lambda i: acquire(stores[i], key, site=f"site-{i}", sha256="c" * 64,
                                                       document_id=i, now=T0, lease_s=300), range(8)))
        winners = [v.record.site for v in verdicts if v.kind == "won"]
        assert len(winners) == 1, verdicts
        assert {v.record.site for v in verdicts if v.kind == "lost"} == set(winners)
        # Takeover after expiry is a race for one generation too.
        later = at(301)
        with ThreadPoolExecutor(8) as pool:
            verdicts = list(pool.map(lambda i: acquire(stores[i], key, site=f"late-{i}", sha256="c" * 64,
                                                       document_id=i, now=later, lease_s=300), range(8)))
        assert sum(v.kind == "won" for v in verdicts) == 1, verdicts


# -- claims in the delivery loop ---------------------------------------------------------------


def test_the_same_invoice_at_two_sites_is_delivered_once_and_the_other_is_a_duplicate(shared):
    make, out, _store = shared
    bj, sh = make("beijing"), make("shanghai")
    a, b = bj.add(7, T0), sh.add(7, T0)
    assert bj.step(at(1)) == ["go"]
    assert sh.step(at(2)) == ["wait"]             # delivered, but not yet recorded on the claim
    assert sh.ledger.fleet_claim(b)["state"] == "waiting"
    # Stored for `show`, so a span, never the other site's raw UTC stamps.
    waiting = sh.ledger.deliveries_of(b)[0]["last_error"]
    assert "site beijing claimed this invoice" in waiting and "its lease ends in " in waiting, waiting
    assert not RAW_STAMP.search(waiting), waiting
    settle_claims(bj.ledger, bj.store, bj.settings, now=at(3), actor="t")
    assert sh.step(at(10)) == []                  # not due again yet
    assert sh.step(at(20)) == ["lost"]
    assert len(delivered_files(out)) == 1
    doc = sh.ledger.get(b)
    assert doc.state == State.DUPLICATE.value and doc.duplicate_of is None
    claim_row = sh.ledger.fleet_claim(b)
    assert (claim_row["state"], claim_row["remote_site"], claim_row["remote_at"]) == (
        "lost", "beijing", "2026-03-04T10:00:01Z")
    assert [r["state"] for r in sh.ledger.deliveries_of(b)] == ["superseded"]
    assert any("site beijing" in (e.reason or "") for e in sh.ledger.events(b))
    # The claim's time is its row's remote_at (`show` gives it in local time): none in the stored texts.
    stored = [r["last_error"] for r in sh.ledger.deliveries_of(b)] + [e.reason or "" for e in sh.ledger.events(b)]
    assert not any(RAW_STAMP.search(t) for t in stored), stored
    assert sh.step(at(300)) == [] and len(delivered_files(out)) == 1      # never tried again
    assert bj.ledger.get(a).state == State.DELIVERED.value
    assert head(bj.store, number_of(7)).state == "delivered"
    assert bj.ledger.fleet_claim(a)["state"] == "delivered"
    assert bj.audit(at(5)) == [] and sh.audit(at(5)) == []


def test_lease_takeover_delivers_exactly_once(shared):
    make, out, store = shared
    bj, sh = make("beijing", lease_s=100), make("shanghai", lease_s=100)
    a, b = bj.add(8, T0), sh.add(8, T0)
    claims = claim(bj.ledger, "erp", now=at(1), lease_s=60, token="dead", actor="bj")
    assert [s.kind for s in screen(bj.ledger, store, bj.settings, claims, now=at(1), actor="bj")] == ["go"]
    # Beijing is SIGKILLed here: its row stays `delivering`, nothing was put.
    # Shanghai's copy waits while the lease lives (rechecked, never counted as an attempt) ...
    for t in (50, 65, 80, 95):
        assert sh.step(at(t)) == ["wait"]
    (row,) = sh.ledger.deliveries_of(b)
    assert row["attempts"] == 0 and "site beijing" in row["last_error"]
    assert delivered_files(out) == []
    # ... and takes the claim over once it has run out (at 101 s), then delivers.
    assert sh.step(at(102)) == ["go"]
    assert head(store, number_of(8)).site == "shanghai"
    settle_claims(sh.ledger, store, sh.settings, now=at(103), actor="t")
    # Beijing restarts: its row is found `delivering` with an expired lease; the claim is gone.
    assert bj.step(at(200)) == ["lost"]
    assert bj.ledger.get(a).state == State.DUPLICATE.value
    assert len(delivered_files(out)) == 1
    assert bj.audit(at(201)) == [] and sh.audit(at(201)) == []


def test_a_site_that_took_over_looks_up_before_putting(shared):
    make, out, store = shared
    bj, sh = make("beijing", lease_s=100), make("shanghai", lease_s=100)
    a, b = bj.add(12, T0), sh.add(12, T0)
    claims = claim(bj.ledger, "erp", now=at(1), lease_s=60, token="dead", actor="bj")
    (s,) = screen(bj.ledger, store, bj.settings, claims, now=at(1), actor="bj")
    assert send(bj.dest, s.claim, bj.vault).kind == "delivered"
    # SIGKILLed after the put landed, before it was recorded; away longer than the lease.
    assert sh.step(at(60)) == ["wait"]
    assert sh.step(at(102)) == ["go"]
    (row,) = sh.ledger.deliveries_of(b)
    assert row["state"] == "delivered" and [x["outcome"] for x in row["attempts_log"]][-1] == "found", row
    assert sh.ledger.fleet_claim(b)["remote_site"] == "beijing"
    assert len(delivered_files(out)) == 1
    settle_claims(sh.ledger, store, sh.settings, now=at(103), actor="t")
    assert bj.step(at(200)) == ["lost"]
    assert bj.audit(at(201)) == [] and sh.audit(at(201)) == []


def test_hold_delivers_nothing_while_the_store_is_unreachable_and_flows_once_it_returns(tmp_path):
    (tmp_path / "out").mkdir()
    store = FileStore(tmp_path / "nas")                     # not mounted yet
    site = Site(tmp_path, "beijing", store, tmp_path / "out", on_unreachable="hold")
    try:
        doc = site.add(9, T0)
        assert site.step(at(1)) == ["held"]
        assert delivered_files(tmp_path / "out") == []
        (row,) = site.ledger.deliveries_of(doc)
        assert row["state"] == "queued" and row["attempts"] == 0 and "fleet store unreachable" in row["last_error"]
        summary = site.ledger.fleet_summary()
        assert summary["claims"]["held"] == 1 and "missing" in summary["held_reason"]
        assert site.step(at(5)) == []                         # not due again before hold_retry_s
        (tmp_path / "nas").mkdir()                            # the store is back
        assert site.step(at(20)) == ["go"]
        assert len(delivered_files(tmp_path / "out")) == 1
        assert site.ledger.fleet_summary()["claims"]["held"] == 0
        assert site.audit(at(21)) == []
    finally:
        site.ledger.close()


def test_deliver_mode_sends_without_a_claim_and_claims_afterwards(tmp_path):
    (tmp_path / "out").mkdir()
    store = FileStore(tmp_path / "nas")
    site = Site(tmp_path, "beijing", store, tmp_path / "out", on_unreachable="deliver")
    try:
        doc = site.add(10, T0)
        assert site.step(at(1)) == ["go"]
        assert len(delivered_files(tmp_path / "out")) == 1
        assert site.ledger.fleet_claim(doc)["state"] == "unclaimed"
        (tmp_path / "nas").mkdir()
        settle_claims(site.ledger, store, site.settings, now=at(30), actor="t")
        assert site.ledger.fleet_claim(doc)["state"] == "delivered"
        assert head(store, number_of(10)).state == "delivered"
    finally:
        site.ledger.close()


def test_a_rejected_document_releases_its_claim_so_the_other_sites_copy_goes(shared):
    make, out, store = shared
    bj, sh = make("beijing"), make("shanghai")
    a, b = bj.add(11, T0), sh.add(11, T0)
    # Beijing wins the claim but its put is refused for now (a 4xx would quarantine; here an operator rejects).
    claims = claim(bj.ledger, "erp", now=at(1), lease_s=60, token="w", actor="bj")
    screen(bj.ledger, store, bj.settings, claims, now=at(1), actor="bj")
    from agent.deliver.loop import release
    release(bj.ledger, claims[0], now=at(1), actor="bj")
    bj.ledger.transition(a, State.REJECTED, now=utc(at(2)), actor="op", reason="wrong buyer")
    settle_claims(bj.ledger, store, bj.settings, now=at(3), actor="t")
    assert bj.ledger.fleet_claim(a)["state"] == "released"
    assert sh.step(at(4)) == ["go"]
    assert len(delivered_files(out)) == 1
    assert bj.audit(at(5)) == [] and sh.audit(at(5)) == []


def test_a_fleet_duplicate_is_judged_again_when_the_other_site_lets_the_key_go(shared):
    from agent.fleet.gate import recheck_lost
    from agent.judgement import judge
    from agent.model import Invoice
    from agent.validate import ValidationSettings

    make, out, store = shared
    bj, sh = make("beijing"), make("shanghai")
    a, b = bj.add(13, T0), sh.add(13, T0)
    assert bj.step(at(1)) == ["go"]
    settle_claims(bj.ledger, store, bj.settings, now=at(2), actor="t")
    assert sh.step(at(3)) == ["lost"]
    assert recheck_lost(sh.ledger, store, now=at(100)) == []     # still Beijing's
    assert recheck_lost(sh.ledger, store, now=at(150)) == []     # looked at 50 s ago
    # Beijing's operator amends its invoice to another number (the first was a typo):
    # (the ledger side of `amend`: the document carries another key and goes again)
    bj.ledger.transition(a, State.QUEUED, now=utc(at(200)), actor="op", reason="amended: typo",
                         invoice_key=number_of(14), invoice_number=number_of(14))
    assert any("released" in line for line in settle_claims(bj.ledger, store, bj.settings, now=at(201), actor="t"))
    ((doc_id, why),) = recheck_lost(sh.ledger, store, now=at(300))
    assert doc_id == b and "site beijing released" in why
    settings = ValidationSettings.from_config({"max_age_days": 100000, "rules": {"number-format": "off"}},
                                              {"tax_ids": [], "names": []})   # synthetic numbers
    with sh.ledger.transaction():     # as service/fleet.py does
        sh.ledger.fleet_reopen(b, now=utc(at(301)), actor="t", reason=why)
        state = judge(sh.ledger, b, Invoice.from_dict(sh.ledger.get(b).fields), settings=settings,
                      destinations=["erp"], today=T0.date(), now=utc(at(301)), actor="t")
    assert state == State.QUEUED, sh.ledger.get(b).problems
    assert sh.step(at(302)) == ["go"]
    assert sh.ledger.get(b).state == State.DELIVERED.value
    assert head(store, number_of(13)).site == "shanghai"
    assert delivered_files(out) == [f"{number_of(13)}.pdf"]   # the amended 14 is not sent in this test
    assert sh.audit(at(303)) == []


def test_two_agents_misconfigured_with_the_same_site_name_deliver_an_invoice_once(tmp_path):
    # Two offices both set [fleet] site = "beijing" (a copied config): each
    # took the other's claim for its own and both delivered (2 files).
    (tmp_path / "store").mkdir()
    (tmp_path / "out").mkdir()
    store = open_store({"url": f"file://{tmp_path / 'store'}"})
    one = Site(tmp_path / "office1", "beijing", store, tmp_path / "out")
    two = Site(tmp_path / "office2", "beijing", store, tmp_path / "out")
    try:
        one.add(9, T0), two.add(9, T0)
        assert one.step(at(1)) == ["go"]
        assert two.step(at(2)) == ["wait"]
        settle_claims(one.ledger, store, one.settings, now=at(3), actor="t")
        assert two.step(at(20)) == ["lost"]
        assert len(delivered_files(tmp_path / "out")) == 1
        (d,) = two.ledger.deliveries_of(two.ledger.fleet_claim(1)["document_id"])
        assert d["state"] == "superseded"
        assert "same site name" in (two.ledger.fleet_claim(1)["reason"] or "")
    finally:
        one.ledger.close(), two.ledger.close()


def test_a_site_whose_clock_runs_ten_minutes_ahead_holds_instead_of_taking_a_live_claim(tmp_path, seaweed):
    # Shanghai's clock is 600 s ahead: every live 300 s lease looked expired
    # to it, so it took Beijing's fresh claim over and both sites delivered.
    cfg = seaweed.target_config(seaweed.make_bucket(), prefix="fleet")
    cfg.pop("name")
    store = open_store(cfg)
    (tmp_path / "out").mkdir()
    bj, sh = (Site(tmp_path, n, store, tmp_path / "out") for n in ("beijing", "shanghai"))
    try:
        real = dt.datetime.now(UTC)
        bj.add(11, real), sh.add(11, real)
        bj_claims = claim(bj.ledger, "erp", now=real, lease_s=60, token="bj", actor="bj")
        assert [s.kind for s in screen(bj.ledger, store, bj.settings, bj_claims, now=real, actor="bj")] == ["go"]
        ahead = real + dt.timedelta(seconds=600)
        assert sh.step(ahead) == ["held"]
        (row,) = sh.ledger.deliveries_of(1)
        assert "clock" in row["last_error"] and row["attempts"] == 0
        assert head(store, number_of(11)).site == "beijing"
        # Beijing's put (it was slow) goes on; one delivery in all.
        record(bj.ledger, bj_claims[0], send(bj.dest, bj_claims[0], bj.vault), bj.policy, now=real,
               rng=random.Random(1), actor="bj", tz=UTC)
        assert len(delivered_files(tmp_path / "out")) == 1
        # A clock within a quarter lease of the store's is fine.
        near = acquire(store, number_of(11), site="shanghai", sha256="b" * 64, document_id=1,
                       now=real + dt.timedelta(seconds=30), lease_s=300, judge_clock=True)
        assert near.kind == "lost" and near.record.site == "beijing"
    finally:
        bj.ledger.close(), sh.ledger.close()


def test_a_key_released_after_a_partial_delivery_is_looked_up_before_the_other_site_puts_it(shared):
    # Beijing delivered to erp, its second destination was still pending when
    # its operator rejected the document: the release let Shanghai put the
    # invoice to erp blind, a second delivery where erp has no idempotency.
    make, out, store = shared
    bj, sh = make("beijing"), make("shanghai")
    a = queue_invoice(bj.ledger, bj.vault, 15, destinations=["erp", "erp2"], now=utc(T0))
    b = sh.add(15, T0)
    assert bj.step(at(1)) == ["go"]                               # erp has it; erp2 not yet
    assert sh.step(at(2)) == ["wait"]
    bj.ledger.transition(a, State.REJECTED, now=utc(at(3)), actor="op", reason="wrong buyer")
    settle_claims(bj.ledger, store, bj.settings, now=at(4), actor="t")
    assert head(store, number_of(15)).state == "released"
    assert sh.step(at(20)) == ["go"]
    (row,) = sh.ledger.deliveries_of(b)
    outcomes = [r[0] for r in sh.ledger.conn.execute("SELECT outcome FROM attempts WHERE delivery_id = ?",
                                                     (row["id"],))]
    assert outcomes[-1] == "found", outcomes                  # looked up, not put again
    assert "released" in (sh.ledger.fleet_claim(b)["reason"] or "")


def test_two_agents_publishing_as_one_site_are_named_in_fleet_status(tmp_path):
    # Two agents with one site name overwrote each other's status.json every
    # minute: `fleet status` showed one healthy site and hid the other agent.
    from agent.fleet.status import publish_status, read_sites

    store = FileStore(tmp_path)
    report = {"states": {"queued": 1}}
    assert publish_status(store, "beijing", "aaaa", report, now=T0, interval_s=60) is None
    assert publish_status(store, "beijing", "aaaa", report, now=at(60), interval_s=60) is None
    warning = publish_status(store, "beijing", "bbbb", report, now=at(70), interval_s=60)
    assert warning and "another agent" in warning
    (site,) = read_sites(store, now=at(71))
    assert "another agent" in site["same_name"]
    # The first one, publishing next, says so too; a long-gone agent is not a conflict.
    assert publish_status(store, "beijing", "aaaa", report, now=at(120), interval_s=60)
    assert publish_status(store, "beijing", "cccc", report, now=at(10_000), interval_s=60) is None
    assert "same_name" not in read_sites(store, now=at(10_001))[0]


def test_a_workers_late_wait_verdict_does_not_undo_the_other_destinations_duplicate(shared):
    # Seen in the 100-invoice e2e test: Shenzhen's erp worker read Beijing's
    # live claim (wait) and, before it could write that, its outbox worker read
    # Beijing's `delivered` and made the document a fleet duplicate; the erp
    # worker's `waiting` then landed on the claim row of a duplicate, which
    # `audit ledger` reported as a duplicate of no document.
    make, out, store = shared
    bj, sz = make("beijing"), make("shenzhen")
    bj.add(31, T0)
    doc = queue_invoice(sz.ledger, sz.vault, 31, destinations=["erp", "outbox"], now=utc(T0))
    assert bj.step(at(1)) == ["go"]
    late = head(store, number_of(31))                        # what the erp worker read: still claimed
    settle_claims(bj.ledger, store, bj.settings, now=at(2), actor="t")
    assert late.state == "claimed" and head(store, number_of(31)).state == "delivered"
    assert sz.ledger.fleet_lose(doc, invoice_key=number_of(31), remote_site="beijing", remote_at=late.at,
                                generation=late.generation + 1, now=utc(at(3)), actor="outbox")
    sz.ledger.set_fleet_claim(doc, invoice_key=number_of(31), state="waiting", now=utc(at(3)), actor="erp",
                              generation=late.generation, remote_site="beijing", remote_at=late.at)
    assert sz.ledger.fleet_claim(doc)["state"] == "lost"
    assert sz.audit(at(4)) == []


def test_a_rejected_fleet_duplicate_is_held_nowhere_by_this_site(shared):
    # The site that lost the claim never sent the invoice: its row is
    # superseded with no delivered_key. Rejecting that copy must not name it
    # as held "under its old key" there (that file is the other site's live
    # delivery: removing it by hand, as status would ask, loses the booking;
    # and no lookup could ever clear the line).
    from agent import amend
    from tests.support.judged import SETTINGS

    make, out, _store = shared
    bj, sh = make("beijing"), make("shanghai")
    a, b = bj.add(13, T0), sh.add(13, T0)
    assert bj.step(at(1)) == ["go"]
    settle_claims(bj.ledger, bj.store, bj.settings, now=at(3), actor="t")
    assert sh.step(at(20)) == ["lost"]
    assert [(r["state"], r["delivered_key"]) for r in sh.ledger.deliveries_of(b)] == [("superseded", None)]
    assert sh.ledger.held_at(b) == []
    amend.reject(sh.ledger, b, reason="a copy; beijing booked it", settings=SETTINGS, destinations=["erp"],
                 today=at(30).date(), now=utc(at(30)), actor="cli:op")
    assert sh.ledger.get(b).state == State.REJECTED.value
    assert sh.ledger.rejected_there()["count"] == 0
    assert sh.ledger.rejected_rows("erp")["there"] == 0
    # A copy a person ended here, with the key another site holds: sound.
    assert sh.audit(at(40)) == []
    assert bj.audit(at(40)) == []
    assert len(delivered_files(out)) == 1 and bj.ledger.get(a).state == State.DELIVERED.value


def test_a_rejected_fleet_duplicate_is_not_reopened_when_the_other_site_lets_the_key_go(shared):
    # Shanghai's operator rejected its copy; then Beijing released the key
    # (amended its own to another number). The rejected copy used to be
    # offered for reopening at every fleet pass: its reopen failed (it is no
    # duplicate), first in line each time, so no fleet duplicate behind it
    # was ever judged again and the pass never published status.json.
    from agent import amend
    from agent.fleet.gate import recheck_lost
    from tests.support.judged import SETTINGS

    make, out, store = shared
    bj, sh = make("beijing"), make("shanghai")
    a, b = bj.add(13, T0), sh.add(13, T0)
    c, d = bj.add(15, T0), sh.add(15, T0)        # a second invoice both sites have
    assert sorted(bj.step(at(1))) == ["go", "go"]
    settle_claims(bj.ledger, store, bj.settings, now=at(2), actor="t")
    assert sorted(sh.step(at(3))) == ["lost", "lost"]
    amend.reject(sh.ledger, b, reason="a copy; beijing booked it", settings=SETTINGS, destinations=["erp"],
                 today=at(10).date(), now=utc(at(10)), actor="cli:op")
    for doc, number in ((a, 14), (c, 16)):       # Beijing lets both keys go
        bj.ledger.transition(doc, State.QUEUED, now=utc(at(200)), actor="op", reason="amended: typo",
                             invoice_key=number_of(number), invoice_number=number_of(number))
    settle_claims(bj.ledger, store, bj.settings, now=at(201), actor="t")
    # Only the copy still a duplicate is offered; the rejected one stays as decided.
    assert [doc_id for doc_id, _ in recheck_lost(sh.ledger, store, now=at(300))] == [d]
    assert sh.ledger.get(b).state == State.REJECTED.value
    assert sh.audit(at(301)) == []
