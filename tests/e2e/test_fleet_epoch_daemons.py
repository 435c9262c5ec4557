"""The fleet store loses its claims under two running sites (real daemons,
one real SeaweedFS, one real HTTP finance server): Beijing delivers an
invoice, the bucket is deleted and made anew, then Shanghai, which never saw
that invoice's claim, gets a copy. Before, Shanghai claimed it from nothing
and put it a second time, and nothing anywhere said a word. Now Shanghai
looks it up first (found: no second put), every site says why (`status`,
`show`, `fleet status`, the log), an operator acknowledges at Beijing, and
claims go on as usual at both: the next invoice is put without a look-up.
Every ledger passes `audit ledger` at the end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.daemon_harness import DaemonUnderTest
from tests.support.audit import assert_ledger_sound
from tests.support.http_destination import FaultyFinanceServer
from tests.support.seaweed import seaweed  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow

SAMPLE = "renoyuan__easyofd/original_invoice.xml"
KEY = "052002100113-00008006"
NEXT = b"31000001"
REPO = Path(__file__).resolve().parent.parent.parent


def config(site: str, server: FaultyFinanceServer, store: dict) -> str:
    keys = "".join(f"{k} = {json.dumps(v)}\n" for k, v in store.items() if v is not None)
    return ("[delivery]\nreconcile_interval_s = 0\n\n"
            f'[fleet]\nsite = "{site}"\nlease_s = 60\nstatus_interval_s = 2\nretry_s = 1\nsettle_s = 1\n{keys}\n'
            f'[[destination]]\nname = "erp"\nurl = "{server.url}"\nconcurrency = 1\ntimeout_s = 10\n'
            "max_delay_s = 1.0\nbase_delay_s = 0.05\n")


def cli(d: DaemonUnderTest, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "service", "--config", str(d.config), *args],
                          capture_output=True, text=True, timeout=60, env=env, cwd=d.config.parent)


def drop(d: DaemonUnderTest, name: str, data: bytes) -> None:
    staging = d.root / "staging"
    staging.mkdir(exist_ok=True)
    (staging / name).write_bytes(data)
    os.rename(staging / name, d.root / "scan" / name)      # appears whole, like a scanner's rename


def doc_of(d: DaemonUnderTest, key: str):
    return next((doc for doc in d.documents() if doc.invoice_key == key), None)


def attempts(d: DaemonUnderTest, key: str) -> list[str]:
    doc = doc_of(d, key)
    if doc is None:
        return []
    with d.ledger() as led:
        return [a["outcome"] for r in led.deliveries_of(doc.id) for a in r["attempts_log"]]


@pytest.fixture
def server():
    with FaultyFinanceServer() as srv:
        yield srv


def test_a_site_that_never_saw_the_claim_looks_up_after_the_bucket_is_made_anew(tmp_path, server, seaweed,
                                                                                samples_dir):
    bucket = seaweed.make_bucket()
    store = seaweed.target_config(bucket, prefix="fleet")
    store.pop("name")
    xml = (samples_dir / SAMPLE).read_bytes()
    bj = DaemonUnderTest(tmp_path / "beijing", extra=config("beijing", server, store))
    sh = DaemonUnderTest(tmp_path / "shanghai", extra=config("shanghai", server, store))
    for d in (bj, sh):
        d.config.chmod(0o600)
    try:
        for d in (bj, sh):
            d.start()

        def joined(d):
            with d.ledger() as led:
                return led.fleet_epoch()
        for d in (bj, sh):                  # each fleet loop joins the new fleet's epoch, without a word
            d.wait_until(lambda: joined(d), 30, "the site to join the fleet's epoch")
        assert joined(bj)["epoch"] == joined(sh)["epoch"]
        drop(bj, "发票.xml", xml)
        bj.wait_until(lambda: doc_of(bj, KEY) and doc_of(bj, KEY).state == "delivered", 60, "beijing's delivery")
        assert dict(server.accepted) == {KEY: 1} and server.posts == 1

        def settled():
            with bj.ledger() as led:
                return led.fleet_claim(doc_of(bj, KEY).id)["state"] == "delivered"
        bj.wait_until(settled, 30, "`delivered` on beijing's claim")
        for d in (bj, sh):                  # a new fleet: no doubt, no warning
            assert not any("may have lost its claims" in line for line in d.lines)
            assert "fleet store" not in cli(d, "status", "--check").stdout
        client = seaweed.client()           # the bucket deleted and made anew: every claim gone
        client.delete_bucket(Bucket=bucket)
        client.create_bucket(Bucket=bucket)
        drop(sh, "fwd_invoice.xml", xml)    # a copy Shanghai never saw the claim of
        sh.wait_until(lambda: doc_of(sh, KEY) and doc_of(sh, KEY).state == "delivered", 60,
                      "shanghai's copy settled")
        # Was: claimed from nothing and POSTed a second time ("delivered").
        assert attempts(sh, KEY) == ["found"] and server.posts == 1, (attempts(sh, KEY), server.stats())
        # Said without being asked, at the site and across the fleet.
        shown = cli(sh, "show", str(doc_of(sh, KEY).id))
        assert "may have lost its claims" in shown.stdout and "looked up before any put" in shown.stdout, shown.stdout
        status = cli(sh, "status")
        assert "CLAIMS MAY BE LOST since" in status.stdout, status.stdout
        sh.wait_for_line("the fleet store may have lost its claims", timeout=10)

        def both_in_doubt():
            r = cli(bj, "fleet", "status")
            return r if r.stdout.count("CLAIMS MAY BE LOST") == 2 else None
        table = bj.wait_until(both_in_doubt, 30, "both sites' status to say the claims may be lost").stdout
        assert "fleet store epoch: generation 1 (written as lost by site" in table, table
        # An operator acknowledges at Beijing; Shanghai follows at its next look.
        ack = cli(bj, "fleet", "acknowledge", "--reason", "bucket made anew in the e2e test", "--json")
        assert ack.returncode == 0 and json.loads(ack.stdout)["acknowledged"], (ack.stdout, ack.stderr)
        sh.wait_until(lambda: cli(sh, "fleet", "epoch").returncode == 0, 30, "shanghai to follow the acknowledgement")
        assert "CLAIMS MAY BE LOST" not in cli(sh, "status").stdout
        # Claims go on as usual: the next invoice is put without a look-up.
        key = KEY.replace("00008006", NEXT.decode())
        drop(sh, "发票2.xml", xml.replace(b"00008006", NEXT))
        sh.wait_until(lambda: doc_of(sh, key) and doc_of(sh, key).state == "delivered", 60, "the next invoice")
        assert attempts(sh, key) == ["delivered"] and dict(server.accepted) == {KEY: 1, key: 1}
        with sh.ledger() as led:
            assert led.fleet_claim(doc_of(sh, key).id)["reason"] is None
        for d in (bj, sh):
            assert not any("Traceback" in line for line in d.lines), "\n".join(d.lines[-30:])
            assert d.stop() == 0
            assert_ledger_sound(d.config)
    finally:
        for d in (bj, sh):
            d.ensure_gone()
