"""The daemon's backup loop against `rclone copy` and bare boto3, on one local SeaweedFS.

    .venv/bin/python bench/backup.py [--files 1000] [--kb 100] [--rounds 3]

A ledger and vault hold `--files` documents of ~`--kb` KB (captured as
e-mail attachments, so each has a real sidecar). Each round, in rotating
order against one `weed mini`, each into a fresh bucket:

  agent      the daemon's own backup thread (service.backup.TargetRunner:
             mirror_step, its put pool of [backup_policy] workers, the
             sidecar batch, the ledger), timed from start until the ledger
             says every object is backed up. The vault's own sidecars are
             removed first, so each round writes them as a first backup does.
  rclone-4   `rclone copy` of the same originals (rclone's defaults: 4 transfers)
  rclone-16  the same with --transfers 16 (the goal)
  boto3      bare put_object of each file from a thread pool of the
             daemon's worker count (no checksum, no ledger): the floor of
             the client library

Prints the medians, the ratios agent/rclone-4 (target <= 1.0), agent/rclone-16
(goal <= 1.0) and agent/boto3, and the objects each agent round left in its
bucket (originals + sidecar batches). rclone is Debian's package, installed
with apt-get only when missing (this script only; tests never need it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.backup import open_target  # noqa: E402
from agent.capture import capture_bytes  # noqa: E402
from agent.config import load_config  # noqa: E402
from agent.ledger import Ledger  # noqa: E402
from agent.vault import Vault  # noqa: E402
from service.backup import TargetRunner  # noqa: E402
from tests.support.seaweed import SeaweedServer  # noqa: E402

NOW = "2026-12-01T08:00:00.000000Z"


def make_site(root: Path, files: int, kb: int) -> tuple:
    """A config, ledger and vault holding `files` documents of kb +-20 % (random bytes)."""
    (root / "agent.toml").write_text('[agent]\nstate_dir = "state"\n[backup_policy]\n', encoding="utf-8")
    cfg = load_config(root / "agent.toml")
    vault = Vault(cfg.vault_dir)
    with Ledger(cfg.ledger_path) as ledger:
        for i in range(files):
            data = os.urandom(int(kb * 1024 * (0.8 + 0.4 * (i % 101) / 100)))
            capture_bytes(ledger, vault, data, name=f"invoice-{i:05d}.pdf", source_kind="email",
                          source="mail", now=NOW, actor="bench",
                          details={"message_id": f"<{i}@example.cn>", "from": "supplier@example.cn",
                                   "subject": f"发票 {i}"})
    return cfg, vault


def agent_round(cfg, vault: Vault, server: SeaweedServer, bucket: str, name: str, files: int) -> float:
    """Seconds for the daemon's backup thread to back up every object to `bucket`."""
    for side in cfg.vault_dir.glob("objects/*/*/*.json"):
        side.unlink()   # as at a first backup: the loop writes the vault's sidecars too
    target = open_target(server.target_config(bucket, name=name))
    stopping = threading.Event()
    runner = TargetRunner(cfg, target, stopping)
    with Ledger(cfg.ledger_path, readonly=True) as watch:
        t0 = time.perf_counter()
        runner.start()
        while watch.conn.execute("SELECT count(*) FROM backups WHERE target = ? AND state = 'done'",
                                 (name,)).fetchone()[0] < files:
            time.sleep(0.05)
        seconds = time.perf_counter() - t0
    stopping.set()
    runner.kick()
    for t in runner.threads:
        t.join(120)
    return seconds


def boto3_round(server: SeaweedServer, bucket: str, paths: list[Path], workers: int) -> float:
    """Seconds to put_object every file from `workers` threads, nothing else."""
    client = server.client()

    def one(path: Path) -> None:
        client.put_object(Bucket=bucket, Key=f"objects/{path.name}", Body=path.read_bytes())

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, paths))
    return time.perf_counter() - t0


def find_rclone() -> str | None:
    """rclone on PATH, installing Debian's package when missing (None if that fails)."""
    found = shutil.which("rclone")
    if found:
        return found
    print("rclone missing: apt-get install rclone (bench only)", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "rclone"]):
        try:
            subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, timeout=600)
        except (OSError, subprocess.SubprocessError) as e:
            print(f"  could not install rclone: {e}")
            return None
    return shutil.which("rclone")


def rclone_round(rclone: str, server: SeaweedServer, src: Path, bucket: str, transfers: int | None) -> float:
    """Seconds of `rclone copy src remote:bucket/objects` (originals only), at
    rclone's defaults but for `transfers`."""
    # The sandbox's AWS_CA_BUNDLE makes rclone's AWS SDK refuse its own HTTP
    # transport; the endpoint is plain http on loopback, so drop it.
    env = {**{k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"},
           "RCLONE_CONFIG_SW_TYPE": "s3", "RCLONE_CONFIG_SW_PROVIDER": "Other",
           "RCLONE_CONFIG_SW_ENDPOINT": server.endpoint_url,
           "RCLONE_CONFIG_SW_REGION": server.region,
           "RCLONE_CONFIG_SW_ACCESS_KEY_ID": server.access_key_id,
           "RCLONE_CONFIG_SW_SECRET_ACCESS_KEY": server.secret_access_key,
           "RCLONE_CONFIG_SW_FORCE_PATH_STYLE": "true"}
    cmd = [rclone, "copy", str(src), f"sw:{bucket}/objects", "--exclude", "*.json",
           "--s3-no-check-bucket", "--config=/dev/null", "-q"]
    if transfers:
        cmd.append(f"--transfers={transfers}")
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True)
    return time.perf_counter() - t0


def count_objects(client, bucket: str) -> int:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sum(len(p.get("Contents", [])) for p in pages)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--kb", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3, help="rounds of all four, in rotating order; medians")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-backup-") as tmp, \
            SeaweedServer(Path(tmp) / "seaweed") as server:
        cfg, vault = make_site(Path(tmp), args.files, args.kb)
        paths = [vault.path(sha) for sha in vault.iter_objects()]
        workers = int(cfg.backup_policy["workers"])
        total_mb = sum(p.stat().st_size for p in paths) / 1e6
        print(f"files: {len(paths)}  size: {total_mb:.1f} MB  daemon backup workers: {workers}  "
              f"rounds: {args.rounds}  cpus: {os.cpu_count()}  weed mini at {server.endpoint_url}")
        client = server.client()
        rclone = find_rclone()
        if rclone:
            version = subprocess.run([rclone, "version"], capture_output=True, text=True).stdout
            print(f"rclone: {version.splitlines()[0] if version else rclone}")
        kinds = ["agent", "boto3"] + (["rclone-4", "rclone-16"] if rclone else [])
        times: dict[str, list[float]] = {k: [] for k in kinds}
        objects = []
        for r in range(args.rounds):
            order = kinds[r % len(kinds):] + kinds[:r % len(kinds)]
            for kind in order:
                bucket = server.make_bucket(f"bench-{kind}-{r}")
                if kind == "agent":
                    times[kind].append(agent_round(cfg, vault, server, bucket, f"agent-{r}", len(paths)))
                    objects.append(count_objects(client, bucket))
                elif kind == "boto3":
                    times[kind].append(boto3_round(server, bucket, paths, workers))
                else:
                    times[kind].append(rclone_round(rclone, server, cfg.vault_dir / "objects", bucket,
                                                    None if kind == "rclone-4" else 16))
                    assert count_objects(client, bucket) == len(paths)
            print(f"round {r + 1}: " + ", ".join(f"{k} {times[k][-1]:.2f} s" for k in kinds), flush=True)
        med = {k: statistics.median(v) for k, v in times.items()}
        for k in kinds:
            print(f"{k:10s} {med[k]:6.2f} s  {total_mb / med[k]:6.1f} MB/s  {len(paths) / med[k]:6.0f} files/s")
        print(f"agent bucket objects per round: {objects} (originals {len(paths)} + sidecar batches)")
        print(f"ratio agent/boto3: {med['agent'] / med['boto3']:.2f}")
        if rclone:
            print(f"ratio agent/rclone --transfers 4 (default): {med['agent'] / med['rclone-4']:.2f} (target <= 1.0)")
            print(f"ratio agent/rclone --transfers 16: {med['agent'] / med['rclone-16']:.2f} (goal <= 1.0)")


if __name__ == "__main__":
    main()
