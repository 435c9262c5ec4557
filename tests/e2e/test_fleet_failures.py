"""The fleet's failure modes with real daemons (issue 16): a holder SIGKILLed
before its put is taken over after its lease, exactly once; a store that does
not answer holds every delivery, says why, and lets them flow once it is back."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.daemon_harness import DaemonUnderTest
from tests.support.audit import assert_ledger_sound
from tests.support.http_destination import FaultyFinanceServer
from tests.support.seaweed import seaweed  # noqa: F401  (fixture)

SAMPLE = "renoyuan__easyofd/original_invoice.xml"
KEY = "052002100113-00008006"
REPO = Path(__file__).resolve().parent.parent.parent


def config(site: str, server: FaultyFinanceServer, fleet: dict) -> str:
    keys = "".join(f"{k} = {json.dumps(v)}\n" for k, v in fleet.items() if v is not None)
    return ("[delivery]\nreconcile_interval_s = 0\n\n"
            f'[fleet]\nsite = "{site}"\nstatus_interval_s = 2\n{keys}\n'
            f'[[destination]]\nname = "erp"\nurl = "{server.url}"\nconcurrency = 1\ntimeout_s = 60\n'
            "max_delay_s = 1.0\nbase_delay_s = 0.05\n")


def cli(config_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "service", "--config", str(config_path), *args],
                          capture_output=True, text=True, timeout=60, env=env, cwd=config_path.parent)


def drop(daemon: DaemonUnderTest, samples_dir: Path, name: str) -> None:
    staging = daemon.root / "staging"
    staging.mkdir(exist_ok=True)
    shutil.copy(samples_dir / SAMPLE, staging / name)
    os.rename(staging / name, daemon.root / "scan" / name)


def state_of(daemon: DaemonUnderTest) -> str | None:
    docs = daemon.documents()
    return docs[0].state if docs else None


@pytest.fixture
def server():
    with FaultyFinanceServer() as srv:
        yield srv


def attempts_of(d: DaemonUnderTest) -> list[str]:
    docs = d.documents()
    if not docs:
        return []
    with d.ledger() as led:
        return [a["outcome"] for r in led.deliveries_of(docs[0].id) for a in r["attempts_log"]]


def test_a_holder_killed_before_its_put_is_taken_over_after_its_lease_exactly_once(
        tmp_path, server, seaweed, samples_dir):
    store = seaweed.target_config(seaweed.make_bucket(), prefix="fleet")
    store.pop("name")
    fleet = {**store, "lease_s": 10}
    bj = DaemonUnderTest(tmp_path / "beijing", extra=config("beijing", server, fleet))
    sh = DaemonUnderTest(tmp_path / "shanghai", extra=config("shanghai", server, fleet))
    for d in (bj, sh):
        d.config.chmod(0o600)
    server.inject("hold")                    # Beijing's put is held at the server, stored only when released
    try:
        bj.start()
        sh.start()
        drop(bj, samples_dir, "发票.xml")
        bj.wait_until(lambda: server.posts >= 1, 30, "beijing's put to reach the server")
        with bj.ledger() as led:
            assert led.fleet_summary()["claims"]["won"] == 1
        # Shanghai gets the same invoice while Beijing holds the claim: it
        # waits (fleet-wait), however slow this machine is.
        drop(sh, samples_dir, "fwd_invoice.xml")
        sh.wait_until(lambda: "fleet-wait" in attempts_of(sh), 60, "shanghai to wait for beijing's claim")
        bj.kill()                                # SIGKILL before its put was stored
        # Shanghai waits out the lease (10 s), takes the claim over, looks up, puts.
        sh.wait_until(lambda: state_of(sh) == "delivered", 60, "shanghai to deliver after the lease")
        # Taken over from Beijing: the trail says so. (The claim row's
        # remote_site says it only until the fleet loop records the
        # delivery on the claim, which may already have happened.)
        with sh.ledger() as led:
            doc_id = sh.documents()[0].id
            reasons = [e.reason or "" for e in led.events(doc_id)]
            claim = led.fleet_claim(doc_id)
        assert any("won (taken over from site beijing (its lease ran out))" in r for r in reasons), reasons
        assert claim["state"] in ("won", "delivered") and claim["generation"] >= 2, claim
        assert dict(server.accepted) == {KEY: 1} and server.released_served == 0
        # The dead holder's put arrives after all: the server has the invoice
        # under the same key, so it is not taken twice.
        server.release()
        bj.wait_until(lambda: server.released_served == 1, 30, "beijing's late put to be served")
        mark = len(bj.lines)
        bj.start(wait_ready=False)
        bj.wait_for_line("msg=started", timeout=60, start=mark)
        bj.wait_until(lambda: state_of(bj) == "duplicate", 60, "beijing's copy to become a duplicate")
        shown = cli(bj.config, "show", str(bj.documents()[0].id))
        assert "held by site shanghai" in shown.stdout, shown.stdout
        server.clear()
        assert dict(server.accepted) == {KEY: 1}, server.stats()
        for d in (bj, sh):
            assert not any("Traceback" in line for line in d.lines), "\n".join(d.lines[-30:])
            assert d.stop() == 0
            assert_ledger_sound(d.config)
    finally:
        for d in (bj, sh):
            d.ensure_gone()


def test_hold_while_the_store_is_unreachable_then_flow(tmp_path, server, samples_dir):
    nas = tmp_path / "nas"                   # the shared folder, not mounted yet
    daemon = DaemonUnderTest(tmp_path / "beijing", extra=config("beijing", server, {"url": f"file://{nas}"}))
    try:
        daemon.start()
        drop(daemon, samples_dir, "发票.xml")

        def held():
            with daemon.ledger() as led:
                return led.fleet_summary()["claims"]["held"] == 1
        daemon.wait_until(held, 30, "the delivery to be held")
        assert server.posts == 0 and state_of(daemon) in ("queued", "delivering")
        status = cli(daemon.config, "status")
        assert "HELD since" in status.stdout and "fleet store unreachable" in status.stdout, status.stdout
        check = cli(daemon.config, "status", "--check")
        assert "held" in check.stdout and "unreachable" in check.stdout, check.stdout
        nas.mkdir()                              # the store is back
        daemon.wait_until(lambda: state_of(daemon) == "delivered", 40, "delivery once the store is back")
        assert dict(server.accepted) == {KEY: 1}
        assert (nas / "sites" / "beijing" / "status.json").exists()
        assert not any("Traceback" in line for line in daemon.lines)
        assert daemon.stop() == 0
        assert_ledger_sound(daemon.config)
    finally:
        daemon.ensure_gone()
