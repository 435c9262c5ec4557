"""Attack on issue 16 from outside (attack16b): time stamps that parse with a
zone but fall off the calendar once moved to UTC or the local zone (year 1
at +01:00, year 9999 at -01:00). A hostile site with write access to the
bucket puts them in a claim or a status.json; the old code took them for
valid and then crashed converting them (OverflowError): `fleet find`,
`fleet status` and the delivery gate died with a traceback."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import pytest

from agent.fleet.claims import claim_prefix, head
from agent.fleet.status import read_sites
from agent.ledger import utc
from tests.integration.test_fleet_hostile import REPO, Site, bucket, good_claim, put  # noqa: F401
from tests.support.queued import number_of, queue_invoice
from tests.support.seaweed import seaweed  # noqa: F401  (fixture)

UTC = dt.timezone.utc
EDGES = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00Z"]


def cli(tmp_path, cfg, *args):
    config = tmp_path / "agent.toml"
    keys = "".join(f"{k} = {json.dumps(v)}\n" for k, v in cfg.items() if v is not None)
    config.write_text(f'[agent]\nstate_dir = "{tmp_path / "state"}"\n\n[fleet]\nsite = "beijing"\n{keys}',
                      encoding="utf-8")
    config.chmod(0o600)
    env = {**os.environ, "TZ": "America/Los_Angeles",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "service", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)


@pytest.mark.parametrize("stamp", EDGES)
def test_a_claim_stamped_off_the_calendar_is_invalid_not_a_crash(stamp, tmp_path, bucket):
    store, client, name, cfg = bucket
    now = dt.datetime.now(UTC)
    site = Site(tmp_path, "shanghai", store, on_unreachable="deliver")
    try:
        doc = queue_invoice(site.ledger, site.vault, 1, destinations=["erp"], now=utc(now))
        # A "delivered" claim by a site nobody runs, stamped off the calendar.
        put(client, name, f"{claim_prefix(number_of(1))}gen-00000001",
            good_claim(1, site="ghost", state="delivered", at=stamp, lease_until=stamp))
        assert site.step(now) == ["held"]           # was: OverflowError out of the gate, or a duplicate of it
        row = site.ledger.fleet_claim(doc)
        assert row["state"] == "held" and "fleet claim invalid" in row["reason"], row
        r = cli(tmp_path, cfg, "fleet", "find", number_of(1))
        assert "Traceback" not in r.stderr and r.returncode in (0, 1), r.stderr
        assert "not a claim any site writes" in r.stdout, r.stdout
        r = cli(tmp_path, cfg, "fleet", "repair", number_of(1), "--json")
        assert r.returncode == 0 and json.loads(r.stdout)["repaired"], (r.stdout, r.stderr)
        assert head(store, number_of(1), now=now).state == "released"
    finally:
        site.ledger.close()


@pytest.mark.parametrize("stamp", EDGES)
def test_a_status_written_off_the_calendar_is_marked_not_a_crash(stamp, tmp_path, bucket):
    store, client, name, cfg = bucket
    now = dt.datetime.now(UTC)
    put(client, name, "sites/ghost/status.json", {"written_at": stamp, "states": {"queued": 1},
                                                  "health": {"summary": "ok"}})
    (ghost,) = read_sites(store, now=now)
    assert ghost["stale"] and "written_at" in ghost["error"], ghost
    r = cli(tmp_path, cfg, "fleet", "status")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert r.stdout.splitlines()[1].split()[0] == "ghost" and "STALE" in r.stdout, r.stdout


def test_a_status_deleted_between_list_and_read_is_listed_not_dropped(bucket):
    # The old read_sites skipped a status.json listed and then gone: the site
    # vanished from `fleet status` without a word.
    store, client, name, _cfg = bucket
    now = dt.datetime.now(UTC)
    for site in ("beijing", "shanghai"):
        put(client, name, f"sites/{site}/status.json", {"written_at": now.isoformat(), "states": {}})

    class Racing:          # the real store; another hand deletes Shanghai's status right after the listing
        def __getattr__(self, attr):
            return getattr(store, attr)

        def list(self, prefix):
            keys = store.list(prefix)
            client.delete_object(Bucket=name, Key="fleet/sites/shanghai/status.json")
            return keys

    sites = {s["site"]: s for s in read_sites(Racing(), now=now)}
    assert sorted(sites) == ["beijing", "shanghai"], sites
    assert sites["shanghai"]["stale"] and "deleted" in sites["shanghai"]["error"]


def test_a_status_written_in_the_future_is_stale_not_fresh(tmp_path, bucket):
    # A site whose clock is two hours ahead (or a forged stamp) published,
    # then died: the old view showed it fresh ("seen -1h 59m ...") until its
    # stamp plus three intervals had passed, two hours of a dead site shown alive.
    store, client, name, cfg = bucket
    now = dt.datetime.now(UTC)
    put(client, name, "sites/ahead/status.json", {"written_at": (now + dt.timedelta(hours=2)).isoformat(),
                                                  "interval_s": 60, "states": {"queued": 1}})
    put(client, name, "sites/fine/status.json", {"written_at": now.isoformat(), "interval_s": 60, "states": {}})
    sites = {s["site"]: s for s in read_sites(store, now=now)}
    assert sites["ahead"]["stale"] and not sites["fine"]["stale"], sites
    r = cli(tmp_path, cfg, "fleet", "status")
    assert r.returncode == 0, r.stderr
    (line,) = [x for x in r.stdout.splitlines() if x.startswith("ahead")]
    assert "ahead STALE" in line, r.stdout
