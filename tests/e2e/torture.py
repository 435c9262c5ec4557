"""Crash torture: a real daemon fed invoices while it is SIGKILLed again and
again, delivering to a fault-injecting finance server and backing up to
SeaweedFS and a folder. Shared by the short test and bench/torture.py.

At the end it checks the promise: every invoice delivered exactly once
(counted at the server by idempotency key), every document on every backup
target with the right hash, a sound ledger, a vault whose objects hash to
their names, no source file gone without its vault copy, and a clean
`audit ledger`.
"""

from __future__ import annotations

import datetime as dt
import email.message
import hashlib
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from agent.backup.base import object_key, open_target
from agent.vault import Vault
from tests.e2e.daemon_harness import DaemonUnderTest
from tests.support.audit import assert_ledger_sound
from tests.support.http_destination import FaultyFinanceServer

XML_SAMPLE = "renoyuan__easyofd/original_invoice.xml"
TEXT_STYLES = {"digital": 3, "digital-spaced": 1, "legacy": 2, "legacy-labels-first": 1}


@dataclass
class Feed:
    """What was dropped: source path -> sha256, and the invoice keys expected."""

    sources: dict[Path, str] = field(default_factory=dict)
    keys: set[str] = field(default_factory=set)


def _xml_invoice(template: bytes, n: int) -> tuple[bytes, str]:
    number = f"{n:08d}"
    return template.replace(b"00008006", number.encode()), f"052002100113-{number}"


def make_feed(samples_dir: Path, count: int, seed: int) -> list[tuple[str, str, bytes, list[str]]]:
    """(folder, name, bytes, invoice keys) to drop: XML copies of a real sample
    with new numbers, generated PDFs, and e-mails carrying XML attachments."""
    from tests.corpus.generate import make_corpus

    rng = random.Random(seed)
    template = (samples_dir / XML_SAMPLE).read_bytes()
    n_pdf = count * 2 // 5
    pdfs = make_corpus(seed, n_pdf, today=dt.date.today(), styles=TEXT_STYLES, workers=2)
    items: list[tuple[str, str, bytes, list[str]]] = []
    for i, g in enumerate(pdfs):
        key = f"{g.expected['code']}-{g.expected['number']}" if g.expected.get("code") else g.expected["number"]
        items.append(("scan", f"gen-{i:05d}.pdf", g.data, [key]))
    n = 10_000_000 + seed * 100_000
    while len(items) < count:
        if rng.random() < 0.35:
            atts = []
            msg = email.message.EmailMessage()
            msg["From"] = "supplier@example.cn"
            msg["Subject"] = "发票"
            msg["Message-ID"] = f"<torture-{n}@example.cn>"
            msg.set_content("invoices attached")
            for _ in range(rng.randint(1, 3)):
                data, key = _xml_invoice(template, n)
                n += 1
                msg.add_attachment(data, maintype="application", subtype="xml", filename=f"发票{n}.xml")
                atts.append(key)
            items.append(("mail", f"m{n}.eml", msg.as_bytes(), atts))
        else:
            data, key = _xml_invoice(template, n)
            n += 1
            items.append(("scan", f"x{n}.xml", data, [key]))
    rng.shuffle(items)
    return items


def config(server: FaultyFinanceServer, seaweed, bucket: str, backup_dir: Path) -> str:
    s3 = seaweed.target_config(bucket, name="offsite")
    s3_toml = "".join(f"{k} = {json.dumps(v)}\n" for k, v in s3.items() if v is not None)
    return (
        "[delivery]\nreconcile_interval_s = 0\n\n"
        "[backup_policy]\nretry_max_s = 1.0\nprobe_interval_s = 1.0\nsnapshot_interval_s = 5\n\n"
        f'[[destination]]\nname = "erp"\nurl = "{server.url}"\nconcurrency = 2\ntimeout_s = 5\n'
        "max_attempts = 1000\nmax_delay_s = 1.0\nbase_delay_s = 0.05\n\n"
        f"[[backup]]\n{s3_toml}\n"
        f'[[backup]]\nname = "nas"\nurl = "file://{backup_dir}"\n'
    )


def drop(root: Path, item: tuple[str, str, bytes, list[str]], feed: Feed) -> None:
    folder, name, data, keys = item
    staging = root / "staging"
    staging.mkdir(exist_ok=True)
    tmp = staging / name
    tmp.write_bytes(data)
    target = root / folder / name
    tmp.rename(target)  # appear whole, as a scanner's rename does
    feed.sources[target] = hashlib.sha256(data).hexdigest()
    feed.keys.update(keys)


def run(root: Path, samples_dir: Path, seaweed, *, invoices: int, kills: int, seed: int = 1,
        fail_rate: float = 0.1, settle_timeout: float = 600, log=print) -> dict:
    """Run the torture; returns the counts. Raises AssertionError on any loss or duplicate."""
    rng = random.Random(seed)
    backup_dir = root / "nas"
    backup_dir.mkdir(parents=True)
    bucket = seaweed.make_bucket()
    with FaultyFinanceServer(fail_rate=fail_rate, seed=seed) as server:
        daemon = DaemonUnderTest(root, scan_extra='after = "delete"', extra=config(server, seaweed, bucket, backup_dir))
        daemon.config.chmod(0o600)
        feed = Feed()
        items = make_feed(samples_dir, invoices, seed)
        log(f"feed: {len(items)} files holding {sum(len(i[3]) for i in items)} invoices")
        batches = [items[i::kills + 1] for i in range(kills + 1)]
        try:
            daemon.start()
            for k, batch in enumerate(batches):
                for item in batch:
                    drop(root, item, feed)
                if k < kills:
                    time.sleep(rng.uniform(0.3, 2.0))
                    daemon.kill()
                    daemon.start()
            log(f"fed and killed {kills} times; waiting for the pipeline to settle")
            counts = _wait_settled(daemon, feed, settle_timeout, log)
            result = _check(daemon, server, feed, seaweed, bucket, backup_dir)
            result.update(counts, kills=kills, posts=server.posts)
            assert daemon.stop() == 0
            assert_ledger_sound(daemon.config)  # `audit ledger`: every invariant of the ledger and vault
            return result
        finally:
            daemon.ensure_gone()


def _wait_settled(daemon: DaemonUnderTest, feed: Feed, timeout: float, log=print) -> dict:
    busy = ("captured", "extracted", "valid", "queued", "delivering", "missing", "failed")
    deadline = time.monotonic() + timeout
    counts: dict = {}
    while time.monotonic() < deadline:
        with daemon.ledger() as led:
            counts = led.counts()
            delivered = counts["delivered"] + counts["confirmed"]
        if delivered >= len(feed.keys) and not any(counts[s] for s in busy):
            return {"states": {k: v for k, v in counts.items() if v}}
        if int(time.monotonic()) % 10 == 0:
            log(f"  {', '.join(f'{k} {v}' for k, v in counts.items() if v)}")
        time.sleep(0.5)
    raise AssertionError(f"not settled after {timeout}s: {counts}\n" + "\n".join(daemon.lines[-40:]))


def _check(daemon, server, feed: Feed, seaweed, bucket: str, backup_dir: Path) -> dict:
    docs = daemon.documents()
    delivered = [d for d in docs if d.state in ("delivered", "confirmed")]
    # exactly once, counted at the server by idempotency key
    assert set(server.accepted) == feed.keys, (feed.keys ^ set(server.accepted))
    assert all(n == 1 for n in server.accepted.values()), {k: n for k, n in server.accepted.items() if n != 1}
    assert sorted(d.invoice_key for d in delivered) == sorted(feed.keys)
    with daemon.ledger() as led:
        assert led.integrity_check() == "ok"
    vault = Vault(daemon.root / "state" / "vault")
    objects = list(vault.iter_objects())
    bad = [sha for sha in objects if not vault.verify(sha)]
    assert not bad, f"vault objects not matching their names: {bad[:5]}"
    # no source gone without its durable vault copy
    lost = [p for p, sha in feed.sources.items() if not p.exists() and not vault.verify(sha)]
    assert not lost, f"sources deleted without a vault copy: {lost[:5]}"
    # every document's object on every backup target, with the right hash
    targets = [open_target({**seaweed.target_config(bucket, name="offsite")}),
               open_target({"name": "nas", "url": f"file://{backup_dir}"})]
    missing = _wait_backed_up(targets, {d.sha256 for d in docs}, daemon)
    assert not missing, f"not backed up: {missing[:5]}"
    return {"documents": len(docs), "delivered_once": len(delivered), "vault_objects": len(objects),
            "server_keys": len(server.accepted), "backed_up_per_target": len({d.sha256 for d in docs})}


def _wait_backed_up(targets, shas: set[str], daemon, timeout: float = 120) -> list:
    deadline = time.monotonic() + timeout
    missing: list = []
    while time.monotonic() < deadline:
        missing = []
        for t in targets:
            for sha in shas:
                info = t.head(object_key(sha))
                if info is None or (info.sha256 and info.sha256 != sha):
                    missing.append((getattr(t, "name", "?"), sha))
        if not missing:
            return []
        time.sleep(1)
    return missing
