"""Fleet claims against a real SeaweedFS: claims per second, the delay a
claim adds before a put (drop -> delivered), and whether racing If-Match puts
are exclusive on this store (the reason claims use If-None-Match only).

    .venv/bin/python bench/fleet.py [--claims 300] [--threads 4]

Claims/s: distinct invoice keys claimed by one site (list + create of
generation 1 each), sequentially and from --threads threads. Claim delay:
`agent.fleet.gate.screen` on a real ledger for queued documents, the time
it adds before each put (first claim of a key: a round trip; later rows of
the same document: the ledger's cached lease, no round trip).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import botocore.exceptions as bx  # noqa: E402

from agent.deliver.loop import claim  # noqa: E402
from agent.fleet.claims import acquire  # noqa: E402
from agent.fleet.gate import FleetSettings, screen  # noqa: E402
from agent.fleet.store import open_store  # noqa: E402
from agent.ledger import Ledger, utc  # noqa: E402
from agent.vault import Vault  # noqa: E402
from tests.support.queued import queue_invoice  # noqa: E402
from tests.support.seaweed import SeaweedServer  # noqa: E402


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--claims", type=int, default=300)
    ap.add_argument("--threads", type=int, default=4)
    args = ap.parse_args()
    with SeaweedServer() as server, tempfile.TemporaryDirectory() as tmp:
        cfg = server.target_config(server.make_bucket(), prefix="fleet")
        cfg.pop("name")
        store = open_store(cfg)
        now = dt.datetime.now(dt.timezone.utc)

        t0 = time.perf_counter()
        for i in range(args.claims):
            assert acquire(store, f"1{i:019d}", site="bench", sha256="0" * 64, document_id=i, now=now,
                           lease_s=300).kind == "won"
        seq = args.claims / (time.perf_counter() - t0)

        stores = [open_store(cfg) for _ in range(args.threads)]
        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.threads) as pool:
            kinds = list(pool.map(lambda i: acquire(stores[i % args.threads], f"2{i:019d}", site="bench",
                                                    sha256="0" * 64, document_id=i, now=now,
                                                    lease_s=300).kind, range(args.claims)))
        par = args.claims / (time.perf_counter() - t0)
        assert set(kinds) == {"won"}
        print(f"claims/s against SeaweedFS: {seq:.0f} sequential, {par:.0f} with {args.threads} threads "
              f"({args.claims} distinct keys each)")

        ledger = Ledger(Path(tmp) / "ledger.sqlite3")
        vault = Vault(Path(tmp) / "vault")
        settings = FleetSettings(site="bench")
        first, cached = [], []
        for i in range(min(args.claims, 200)):
            queue_invoice(ledger, vault, 50_000 + i, destinations=["erp", "outbox"], now=utc(now))
        for dest, bucket in (("erp", first), ("outbox", cached)):
            while rows := claim(ledger, dest, now=now, lease_s=60, token=dest, actor="bench"):
                t = time.perf_counter()
                (s,) = screen(ledger, store, settings, rows, now=now, actor="bench")
                bucket.append((time.perf_counter() - t) * 1000)
                assert s.kind == "go"
        ledger.close()
        print(f"claim delay before a put, first row of a document: p50 {pct(first, 50):.1f} ms, "
              f"p95 {pct(first, 95):.1f} ms; its other rows (lease cached in the ledger): "
              f"p50 {pct(cached, 50):.1f} ms, p95 {pct(cached, 95):.1f} ms ({len(first)} documents)")

        client = server.client()
        bucket = cfg["url"][5:].split("/")[0]
        broken = 0
        trials = 20
        for trial in range(trials):
            key = f"race/{trial}"
            etag = client.put_object(Bucket=bucket, Key=key, Body=b"0")["ETag"]
            clients = [server.client() for _ in range(8)]

            def put(i):
                try:
                    clients[i].put_object(Bucket=bucket, Key=key, Body=f"{i}".encode(), IfMatch=etag)
                    return 1
                except bx.ClientError:
                    return 0
            with ThreadPoolExecutor(8) as pool:
                broken += sum(pool.map(put, range(8))) > 1
        print(f"racing If-Match puts (8 writers, same ETag): more than one winner in {broken} of {trials} "
              "trials" + (" -> If-Match is NOT exclusive on this store" if broken else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
