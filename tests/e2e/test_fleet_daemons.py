"""Three sites, one SeaweedFS (issue 16): three real daemons, each with its own
state folder, deliver to one real HTTP finance server and one shared folder.
The same invoices are dropped into every site under different names and
containers (a plain XML, a renamed XML, an e-mail attachment); one agent is
SIGKILLed while it claims and is restarted. Each invoice must reach the
HTTP server once and the folder once, `fleet status` must show the three
sites, and `audit ledger` must pass on every site.

30 invoices (not 100): each site reads every copy, so 90 files on a 2-core
machine shared with other test runs; the mechanism is the same at 100."""

from __future__ import annotations

import email.message
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.e2e.daemon_harness import DaemonUnderTest
from tests.support.audit import assert_ledger_sound
from tests.support.http_destination import FaultyFinanceServer
from tests.support.seaweed import seaweed  # noqa: F401  (fixture)

# Long (three daemons and SeaweedFS, ~30 s): started first, so it never runs alone at the end (tests/conftest.py).
pytestmark = pytest.mark.slow

XML_SAMPLE = "renoyuan__easyofd/original_invoice.xml"
INVOICES = 30
SITES = ("beijing", "shanghai", "shenzhen")
REPO = Path(__file__).resolve().parent.parent.parent


def invoices(samples_dir: Path) -> list[tuple[str, bytes]]:
    """(invoice key, XML bytes): copies of a real 数电 XML sample with new numbers."""
    template = (samples_dir / XML_SAMPLE).read_bytes()
    out = []
    for i in range(INVOICES):
        number = f"{31_000_000 + i:08d}"
        out.append((f"052002100113-{number}", template.replace(b"00008006", number.encode())))
    return out


def site_config(site: str, server: FaultyFinanceServer, seaweed, bucket: str, outbox: Path) -> str:
    store = seaweed.target_config(bucket, prefix="fleet")
    store.pop("name")
    keys = "".join(f"{k} = {json.dumps(v)}\n" for k, v in store.items() if v is not None)
    return ("[delivery]\nreconcile_interval_s = 0\n\n"
            f'[fleet]\nsite = "{site}"\nlease_s = 30\nstatus_interval_s = 2\n{keys}\n'
            f'[[destination]]\nname = "erp"\nurl = "{server.url}"\nconcurrency = 2\ntimeout_s = 5\n'
            "max_delay_s = 1.0\nbase_delay_s = 0.05\n\n"
            f'[[destination]]\nname = "outbox"\nurl = "folder://{outbox}"\nconcurrency = 1\n')


def drop(daemon: DaemonUnderTest, site_index: int, items: list[tuple[str, bytes]]) -> None:
    """Every invoice into one site, named and wrapped as that site gets it."""
    staging = daemon.root / "staging"
    staging.mkdir(exist_ok=True)
    for n, (key, data) in enumerate(items):
        if site_index == 2 and n % 2 == 0:     # Shenzhen gets half of them by e-mail
            msg = email.message.EmailMessage()
            msg["From"] = "supplier@example.cn"
            msg["Subject"] = "发票"
            msg["Message-ID"] = f"<fleet-{key}@example.cn>"
            msg.set_content("invoice attached")
            msg.add_attachment(data, maintype="application", subtype="xml", filename=f"发票{n}.xml")
            name, folder, body = f"m{n}.eml", "mail", msg.as_bytes()
        else:
            name = (f"{key}.xml", f"scan-{n:04d}-报销.xml", f"fwd_{n}.XML")[site_index]
            folder, body = "scan", data
        (staging / name).write_bytes(body)
        os.rename(staging / name, daemon.root / folder / name)   # appears whole, like a scanner's rename


def cli(config: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "service", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=60, env=env, cwd=config.parent)


@pytest.fixture
def server():
    with FaultyFinanceServer() as srv:
        yield srv


def test_three_sites_deliver_each_invoice_once_across_the_fleet(tmp_path, server, seaweed, samples_dir):
    bucket = seaweed.make_bucket()
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    items = invoices(samples_dir)
    keys = sorted(k for k, _ in items)
    daemons = [DaemonUnderTest(tmp_path / site, extra=site_config(site, server, seaweed, bucket, outbox))
               for site in SITES]
    for d in daemons:
        d.config.chmod(0o600)    # it holds the store's secret key: refused when every user can read it
    try:
        for d in daemons:
            d.start()
        for i, d in enumerate(daemons):
            drop(d, i, items)
        # SIGKILL Shanghai while it claims: once its first claim row (won, or
        # waiting/lost to a faster site: which site wins a key is a race) is in
        # its ledger.
        victim = daemons[1]

        def claiming():
            with victim.ledger() as led:
                return sum(led.fleet_summary()["claims"].values()) >= 1
        victim.wait_until(claiming, 60, "shanghai's first claim")
        victim.kill()
        mark = len(victim.lines)
        victim.start(wait_ready=False)
        victim.wait_for_line("msg=started", timeout=60, start=mark)

        def settled():
            if sorted(server.accepted) != keys:
                return None
            states = Counter()
            for d in daemons:
                for doc in d.documents():
                    states[doc.state] += 1
            done = states["delivered"] + states["confirmed"] + states["duplicate"]
            return states if done == INVOICES * len(SITES) else None
        states = daemons[0].wait_until(settled, 90, "every copy delivered once or a duplicate")
        why = f"states {states}, server {server.stats()}"
        assert all(n == 1 for n in server.accepted.values()), why
        # The folder: one file per invoice.
        files = [p for p in outbox.rglob("*.xml")]
        assert len(files) == INVOICES, [p.name for p in files]
        # Across the three ledgers, one site put each key, to both destinations. (A site
        # may POST a key again after a timeout: the server's idempotency answers it and
        # `accepted` stays 1. A site that took a claim over, lapsed or released, or that
        # was SIGKILLed between its put and recording it, looks up first: `found`, no put;
        # its row is the key's delivery, the other sites' copies are duplicates.)
        sites_of: dict[tuple[str, str], list[str]] = {}
        for site, d in zip(SITES, daemons):
            with d.ledger() as led:
                for doc in d.documents():
                    for r in led.deliveries_of(doc.id):
                        if r["state"] in ("delivered", "confirmed") and any(
                                x["outcome"] in ("delivered", "found") for x in r["attempts_log"]):
                            sites_of.setdefault((r["destination"], doc.invoice_key), []).append(site)
        assert sorted(sites_of) == sorted((dest, k) for dest in ("erp", "outbox") for k in keys), sites_of
        twice = {k: v for k, v in sites_of.items() if len(v) != 1}
        assert not twice, twice
        assert all(sites_of[("erp", k)] == sites_of[("outbox", k)] for k in keys), sites_of
        # Every site published its status; `fleet status` lists all three.
        def three_sites():
            r = cli(daemons[0].config, "fleet", "status", "--json")
            sites = json.loads(r.stdout) if r.returncode == 0 else []
            return sites if sorted(s["site"] for s in sites) == list(SITES) else None
        sites = daemons[0].wait_until(three_sites, 20, "three sites in fleet status")
        assert not any(s["stale"] for s in sites), sites
        table = cli(daemons[2].config, "fleet", "status")
        assert table.returncode == 0 and all(site in table.stdout for site in SITES), table.stdout
        found = cli(daemons[0].config, "fleet", "find", keys[0].split("-")[1], "--json")
        assert found.returncode == 0 and json.loads(found.stdout)[0]["state"] == "delivered", found.stdout
        for d in daemons:
            assert not any("Traceback" in line for line in d.lines), "\n".join(d.lines[-30:])
        for d in daemons:
            assert d.stop() == 0
        for d in daemons:
            assert_ledger_sound(d.config)
    finally:
        for d in daemons:
            if d.proc and d.proc.poll() is None:
                d.proc.kill()
                d.proc.wait()
