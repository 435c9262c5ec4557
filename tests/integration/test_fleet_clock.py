"""A site whose clock is further off than the store's signature window
(~15 min): S3 refuses every request with RequestTimeTooSkewed (HTTP 403).
That was read as "access denied": in `on_unreachable = "deliver"` mode the
site delivered without a claim and the invoice went twice (attackF, finding 2),
and the operator was told to check keys that were right. Real SeaweedFS,
which enforces the window; the site's clock is botocore's signing clock,
moved like the LD_PRELOAD shim of the attack moved the whole process's."""

from __future__ import annotations

import datetime as dt

import botocore.auth
import pytest

from agent.backup.s3 import S3Target
from agent.errors import ClockSkewed
from agent.fleet.claims import head
from agent.fleet.store import open_store
from tests.integration.test_fleet_claims import Site, delivered_files
from tests.support.queued import number_of
from tests.support.seaweed import seaweed  # noqa: F401  (fixture)

UTC = dt.timezone.utc
AHEAD = dt.timedelta(hours=2)


@pytest.fixture
def skewed(monkeypatch):
    """Call it to move this process's signing clock (every S3 request from then
    on) AHEAD; call its `undo` to set it right again."""
    real = botocore.auth.get_current_datetime

    def move():
        monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: real(*a, **k) + AHEAD)
    move.undo = monkeypatch.undo
    return move


@pytest.mark.parametrize("mode", ["deliver", "hold"])
def test_a_site_two_hours_ahead_holds_in_both_modes_and_says_it_is_the_clock(mode, tmp_path, seaweed, skewed):
    cfg = seaweed.target_config(seaweed.make_bucket(), prefix="fleet")
    cfg.pop("name")
    store = open_store(cfg)
    (tmp_path / "out").mkdir()
    bj = Site(tmp_path, "beijing", store, tmp_path / "out")
    sh = Site(tmp_path, "shanghai", store, tmp_path / "out", on_unreachable=mode)
    try:
        real = dt.datetime.now(UTC)
        bj.add(21, real), sh.add(21, real)
        assert bj.step(real) == ["go"]                  # Beijing's clock is right: claimed, delivered
        skewed()
        ahead = real + AHEAD
        assert sh.step(ahead) == ["held"]               # was "go": delivered without a claim
        assert delivered_files(tmp_path / "out") == [f"{number_of(21)}.pdf"]
        (row,) = sh.ledger.deliveries_of(1)
        why = row["last_error"]
        assert row["state"] == "queued" and row["attempts"] == 0, row
        assert "clock is 72" in why and "ahead of the fleet store's" in why and "RequestTimeTooSkewed" in why, why
        assert "access_key_id" not in why and "unreachable" not in why, why
        summary = sh.ledger.fleet_summary()
        assert summary["claims"]["held"] == 1 and "clock" in summary["held_reason"]
    finally:
        bj.ledger.close(), sh.ledger.close()
    skewed.undo()
    assert head(store, number_of(21)).site == "beijing"


def test_the_backup_target_reports_a_refused_clock_as_the_clock_not_the_keys(seaweed, skewed):
    cfg = seaweed.target_config(seaweed.make_bucket(), prefix="shared")
    target = S3Target.from_config(cfg)
    target.put("objects/x", b"before", sha256=_sha(b"before"))       # right clock: fine
    skewed()
    for call in (lambda: target.put("objects/y", b"after", sha256=_sha(b"after")),
                 lambda: target.get("objects/x"), lambda: list(target.list("objects/"))):
        with pytest.raises(ClockSkewed) as got:
            call()
        text = str(got.value)
        assert "RequestTimeTooSkewed" in text and "clock" in text and "access_key_id" not in text, text
        assert got.value.server_time is not None
        assert abs((got.value.server_time - dt.datetime.now(UTC)).total_seconds()) < 120
    # A HEAD answer has no body, so no code to tell the clock by: it stays a
    # plain 403 (the mirror's puts and lists, which have one, name the clock).


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def test_a_clock_stepped_back_after_a_claim_does_not_put_on_the_lapsed_lease(tmp_path, seaweed):
    # attackF finding 4: Beijing claims with a right clock, then its clock is
    # stepped back; its renewals come late, the store's lease lapses and
    # Shanghai takes the key over. Beijing's cached lease still looked long
    # enough by its own clock, so its next retry put the invoice too.
    import time

    from agent.deliver.loop import claim
    from agent.fleet.gate import screen

    cfg = seaweed.target_config(seaweed.make_bucket(), prefix="fleet")
    cfg.pop("name")
    store = open_store(cfg)
    (tmp_path / "out").mkdir()
    # A 10 s lease: each clock within 2.5 s of the store's (whose Date has whole seconds).
    bj = Site(tmp_path, "beijing", store, tmp_path / "out", lease_s=10)
    sh = Site(tmp_path, "shanghai", store, tmp_path / "out", lease_s=10)
    try:
        start = dt.datetime.now(UTC) - dt.timedelta(seconds=1.5)
        bj.add(23, start), sh.add(23, start)
        first = claim(bj.ledger, "erp", now=start, lease_s=60, token="bj", actor="bj")
        assert [s.kind for s in screen(bj.ledger, store, bj.settings, first, now=start, actor="bj")] == ["go"]
        # Its destination was down: the row goes back to the queue (not shown), the lease runs out.
        time.sleep(8.5)
        later = dt.datetime.now(UTC) + dt.timedelta(seconds=1)
        assert sh.step(later) == ["go"]                       # took over, looked up, delivered
        assert head(store, number_of(23)).site == "shanghai"
        # Beijing's clock now reads 8 s behind: its cached lease seems to have about 7 s of 10 left.
        back = later - dt.timedelta(seconds=8)
        again = [s.kind for s in screen(bj.ledger, store, bj.settings, first, now=back, actor="bj")]
        assert again != ["go"], again                         # was "go": put a second time
        assert delivered_files(tmp_path / "out") == [f"{number_of(23)}.pdf"]
    finally:
        bj.ledger.close(), sh.ledger.close()
