"""Three sites, one SeaweedFS (issue 16): three real daemons, each with its own
state folder, deliver to one real HTTP finance server and one shared folder.
The same 100 invoices are dropped into every site at once under different
names and containers: a 数电 XML at one site is the same invoice as an OFD
(its number rewritten in every XML part) at another, or an e-mail attachment
at the third; ten real PDF and OFD samples go to every site as they are.
Shanghai is SIGKILLed at its first claim and Beijing in mid-stream, each
restarted at once. Each invoice must reach the HTTP server once and the folder
once (one put per key and destination across the three ledgers), `fleet
status` must show the three sites, and `audit ledger` must pass on every site.

The test waits on the pipeline, never on fixed sleeps: the fleet's pace is set
short for it (a waiting copy asks the store again every second, the fleet
loop settles every second and at once after a delivery), so 300 files cost
about what reading them costs."""

from __future__ import annotations

import email.message
import io
import json
import os
import signal
import subprocess
import sys
import zipfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.daemon_harness import DaemonUnderTest
from tests.support.audit import assert_ledger_sound
from tests.support.http_destination import FaultyFinanceServer
from tests.support.seaweed import seaweed  # noqa: F401  (fixture)

# Long (three daemons and SeaweedFS): started first, so it never runs alone at the end (tests/conftest.py).
pytestmark = pytest.mark.slow

INVOICES = 100
# One real 数电 invoice as XML and as its OFD (the same number, 052002100113-00008006).
XML_SAMPLE = "renoyuan__easyofd/original_invoice.xml"
OFD_SAMPLE = "renoyuan__easyofd/增值税电子专票5.ofd"
TEMPLATE_NUMBER = b"00008006"
# Real invoices of their own (text PDFs and OFDs that read and validate without
# OCR), each dropped into every site unchanged: the same bytes under three names.
REAL = {"mxvc__invoice/发票.pdf": "051002000711-21895665", "mxvc__invoice/发票2.pdf": "031002200311-78837327",
        "mxvc__invoice/65.32.pdf": "053002200111-44793523",
        "kudeerliu48-web__fapiaohezi/238bd1f5_26427000000145889304.pdf": "26427000000145889304",
        "kudeerliu48-web__fapiaohezi/270a4c65_26427000000145891088.pdf": "26427000000145891088",
        "ruitang-git__Autonomous-Driving/电子发票.pdf": "25322000000011764973",
        "renoyuan__easyofd/dzfp_25442000000127444519.ofd": "25442000000127444519",
        "ofdrw__ofdrw/1.ofd": "033002000211-83089647", "CoderWanFeng__poocr/suzhou.ofd": "24322000000400497801",
        "theJinFei__Distributed-Storage-Paper/发票.pdf": "011001900411-04616346"}
SITES = ("beijing", "shanghai", "shenzhen")
REPO = Path(__file__).resolve().parent.parent.parent


@dataclass(frozen=True)
class Item:
    """One invoice as the sites get it: its key and its forms (extension -> bytes)."""

    key: str
    forms: dict[str, bytes]


def _ofd_with_number(ofd: bytes, number: bytes) -> bytes:
    # Every XML part of the OFD (OFD.xml's CustomDatas, the page text, the
    # attached original_invoice.xml) carries the number: all rewritten.
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(ofd)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info, data.replace(TEMPLATE_NUMBER, number) if info.filename.endswith(".xml") else data)
    return out.getvalue()


@pytest.fixture(scope="session")
def fleet_invoices(samples_dir: Path) -> list[Item]:
    """The 100 invoices, built once per session: 90 copies of the real XML with
    new numbers (every third also as the matching OFD), then the real samples."""
    xml, ofd = (samples_dir / XML_SAMPLE).read_bytes(), (samples_dir / OFD_SAMPLE).read_bytes()
    out = []
    for i in range(INVOICES - len(REAL)):
        number = f"{31_000_000 + i:08d}".encode()
        forms = {"xml": xml.replace(TEMPLATE_NUMBER, number)}
        if i % 3 == 0:
            forms["ofd"] = _ofd_with_number(ofd, number)
        out.append(Item(f"052002100113-{number.decode()}", forms))
    for path, key in REAL.items():
        out.append(Item(key, {path.rsplit(".", 1)[1]: (samples_dir / path).read_bytes()}))
    assert len({i.key for i in out}) == INVOICES
    return out


def site_config(site: str, server: FaultyFinanceServer, seaweed, bucket: str, outbox: Path) -> str:
    store = seaweed.target_config(bucket, prefix="fleet")
    store.pop("name")
    keys = "".join(f"{k} = {json.dumps(v)}\n" for k, v in store.items() if v is not None)
    # retry_s and settle_s: the fleet's pace, short here so nothing waits on a
    # timer (the defaults, 15 s and 5 s, suit a store shared over a WAN).
    return ("[delivery]\nreconcile_interval_s = 0\n\n"
            f'[fleet]\nsite = "{site}"\nlease_s = 60\nstatus_interval_s = 2\nretry_s = 1\nsettle_s = 1\n{keys}\n'
            f'[[destination]]\nname = "erp"\nurl = "{server.url}"\nconcurrency = 2\ntimeout_s = 5\n'
            "max_delay_s = 1.0\nbase_delay_s = 0.05\n\n"
            f'[[destination]]\nname = "outbox"\nurl = "folder://{outbox}"\nconcurrency = 1\n')


MEDIA = {"xml": ("application", "xml"), "ofd": ("application", "ofd"), "pdf": ("application", "pdf")}


def drop_one(daemon: DaemonUnderTest, site_index: int, n: int, item: Item) -> None:
    """Invoice `n` into one site, named and wrapped as that site gets it:
    Beijing its first form under the invoice key, Shanghai the OFD when there
    is one under a scanner's name, Shenzhen half by e-mail and half forwarded."""
    staging = daemon.root / "staging"
    staging.mkdir(exist_ok=True)
    ext = ("ofd" if site_index == 1 and "ofd" in item.forms else next(iter(item.forms)))
    data = item.forms[ext]
    if site_index == 2 and n % 2 == 0:
        msg = email.message.EmailMessage()
        msg["From"] = "supplier@example.cn"
        msg["Subject"] = "发票"
        msg["Message-ID"] = f"<fleet-{item.key}@example.cn>"
        msg.set_content("invoice attached")
        msg.add_attachment(data, maintype=MEDIA[ext][0], subtype=MEDIA[ext][1], filename=f"发票{n}.{ext}")
        name, folder, body = f"m{n}.eml", "mail", msg.as_bytes()
    else:
        name = (f"{item.key}.{ext}", f"scan-{n:04d}-报销.{ext}", f"fwd_{n}.{ext.upper()}")[site_index]
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


def test_three_sites_deliver_each_invoice_once_across_the_fleet(tmp_path, server, seaweed, fleet_invoices):
    bucket = seaweed.make_bucket()
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    items = fleet_invoices
    keys = sorted(i.key for i in items)
    daemons = [DaemonUnderTest(tmp_path / site, extra=site_config(site, server, seaweed, bucket, outbox))
               for site in SITES]
    for d in daemons:
        d.config.chmod(0o600)    # it holds the store's secret key: refused when every user can read it
    try:
        for d in daemons:        # the three start side by side
            d.start(wait_ready=False)
        for d in daemons:
            d.wait_for_line("msg=started", timeout=60)
        for n, item in enumerate(items):     # at once: each invoice lands at the three sites together
            for i, d in enumerate(daemons):
                drop_one(d, i, n, item)

        marks: dict[int, int] = {}

        def restart(victim: DaemonUnderTest) -> None:
            # Killed and started again at once; its start is awaited at the end
            # (the others go on meanwhile, as in a real fleet).
            victim.kill()
            marks[id(victim)] = len(victim.lines)
            victim.start(wait_ready=False)

        def claims(d: DaemonUnderTest) -> Counter:
            with d.ledger() as led:
                return Counter(led.fleet_summary()["claims"])
        # SIGKILL Shanghai while it claims: once its first claim row (won, or
        # waiting/lost to a faster site: which site wins a key is a race) is in
        # its ledger; then Beijing in the middle of the stream, once it has
        # claimed a tenth of the keys (won with puts under way, or lost or
        # waiting: on a loaded machine another site may win every race).
        daemons[1].wait_until(lambda: sum(claims(daemons[1]).values()) >= 1, 60, "shanghai's first claim")
        restart(daemons[1])
        daemons[0].wait_until(lambda: sum(claims(daemons[0]).values()) >= INVOICES // 10,
                              90, "beijing to claim a tenth of the keys")
        restart(daemons[0])

        def conflict(doc) -> bool:
            # A site that took a key over (the holder's restart outlived its
            # lease) and found the holder's other file (its XML, this OFD)
            # under the key: quarantined as delivery-conflict, explained, not put.
            return doc.state == "quarantined" and any(p.get("code") == "delivery-conflict" for p in doc.problems)

        def settled():
            # Polled every 50 ms beside three daemons on two cores: the state
            # counts (one small table), each document only when one is quarantined.
            if sorted(server.accepted) != keys:
                return None
            states = Counter()
            for d in daemons:
                with d.ledger() as led:
                    counts = led.counts()
                states.update(counts)
                if counts["quarantined"]:
                    n = sum(conflict(doc) for doc in d.documents())
                    states.update({"delivery-conflict": n, "quarantined": -n})
            done = states["delivered"] + states["confirmed"] + states["duplicate"] + states["delivery-conflict"]
            return states if done == INVOICES * len(SITES) else None
        states = daemons[0].wait_until(settled, 180, "every copy delivered once or a duplicate")
        for d in daemons[:2]:
            d.wait_for_line("msg=started", timeout=60, start=marks[id(d)])
        why = f"states {states}, server {server.stats()}"
        assert all(n == 1 for n in server.accepted.values()), why
        # The folder: one file per invoice (and its sidecar). A SIGKILL mid-put may
        # leave the folder destination's hidden temp file, which no importer reads.
        files = sorted(p.name for p in outbox.rglob("*")
                       if p.is_file() and p.suffix != ".json" and not p.name.startswith("."))
        assert len(files) == INVOICES, files
        assert sorted(p.stem for p in outbox.rglob("*.json")) == sorted(p.rsplit(".", 1)[0] for p in files)
        # Across the three ledgers, at most one site put each key to each destination
        # (an attempt `delivered`), and every key was delivered or found there. (A site
        # may POST a key again after a timeout: the server's idempotency answers it and
        # `accepted` stays 1. A site that took a claim over, lapsed or released, or that
        # was SIGKILLed between its put and recording it, looks up first: `found`, no
        # put; when the holder had recorded its put before it died, both ledgers hold
        # a delivered row for the key, one put between them.)
        put_by: dict[tuple[str, str], set[str]] = {}
        reached: set[tuple[str, str]] = set()
        for site, d in zip(SITES, daemons):
            with d.ledger() as led:
                for doc in d.documents():
                    for r in led.deliveries_of(doc.id):
                        outcomes = {x["outcome"] for x in r["attempts_log"]}
                        if "delivered" in outcomes:
                            put_by.setdefault((r["destination"], doc.invoice_key), set()).add(site)
                        if r["state"] in ("delivered", "confirmed") and outcomes & {"delivered", "found"}:
                            reached.add((r["destination"], doc.invoice_key))
        assert sorted(reached) == sorted((dest, k) for dest in ("erp", "outbox") for k in keys), reached
        twice = {k: v for k, v in put_by.items() if len(v) != 1}
        assert not twice, twice
        # Every site published its status (each every 2 s, so all three are
        # there by now); `fleet status` lists all three, from any site. The
        # three commands run side by side, as do the stops and the audits.
        with ThreadPoolExecutor(3) as pool:
            as_json, table, found = pool.map(lambda args: cli(*args), [
                (daemons[0].config, "fleet", "status", "--json"), (daemons[2].config, "fleet", "status"),
                (daemons[1].config, "fleet", "find", keys[0].split("-")[1], "--json")])
        sites = json.loads(as_json.stdout) if as_json.returncode == 0 else as_json.stderr
        assert sorted(s["site"] for s in sites) == list(SITES) and not any(s["stale"] for s in sites), sites
        assert table.returncode == 0 and all(site in table.stdout for site in SITES), table.stdout
        assert found.returncode == 0 and json.loads(found.stdout)[0]["state"] == "delivered", found.stdout
        for d in daemons:
            assert not any("Traceback" in line for line in d.lines), "\n".join(d.lines[-30:])
        for d in daemons:
            d.signal(signal.SIGTERM)
        assert [d.proc.wait(timeout=30) for d in daemons] == [0, 0, 0]
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(lambda d: assert_ledger_sound(d.config), daemons))
    finally:
        for d in daemons:
            d.ensure_gone()
