"""Mirror 1,000 vault files of ~100 KB to SeaweedFS through the s3 target, and
time `rclone copy` of the same files to another bucket for comparison.

    .venv/bin/python bench/backup.py [--files 1000] [--kb 100] [--workers 8] [--rounds 5]

Both tools get the same concurrency (--workers threads calling `put` for
the agent, --transfers/--checkers for rclone) against one local `weed mini`,
in alternating rounds (medians reported) because the machine is shared.
The agent side is what the backup loop does per document: `put` with a
server-checked SHA-256 and If-None-Match; the hashes are known beforehand,
as the vault names files by them. Prints seconds, MB/s, CPU (client and
server), peak RSS and the ratio agent/rclone (target <= 1.0). rclone is
Debian's package, installed with apt-get only when missing (this script
only; tests never need it).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.backup import object_key, open_target  # noqa: E402
from tests.support.seaweed import SeaweedServer  # noqa: E402


def make_vault(root: Path, files: int, kb: int) -> list[tuple[str, Path]]:
    """`files` random files of kb ±20 % under root/objects/ab/cd/<sha256>."""
    out = []
    rng = os.urandom
    for i in range(files):
        size = int(kb * 1024 * (0.8 + 0.4 * (i % 101) / 100))
        data = rng(size)
        digest = hashlib.sha256(data).hexdigest()
        path = root / object_key(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        out.append((digest, path))
    return out


def mirror_with_agent(target, items, workers: int) -> float:
    """Seconds to head+put every item through the target with a thread pool."""
    def one(item):
        digest, path = item
        target.put(object_key(digest), path, digest)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(one, items):
            pass
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


def copy_with_rclone(rclone: str, server: SeaweedServer, src: Path, bucket: str,
                     workers: int) -> tuple[float, int]:
    """Seconds and peak RSS (KB) of `rclone copy src remote:bucket/objects`."""
    # The sandbox's AWS_CA_BUNDLE makes rclone's AWS SDK refuse its own HTTP
    # transport; the endpoint is plain http on loopback, so drop it.
    env = {**{k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"},
           "RCLONE_CONFIG_SW_TYPE": "s3", "RCLONE_CONFIG_SW_PROVIDER": "Other",
           "RCLONE_CONFIG_SW_ENDPOINT": server.endpoint_url,
           "RCLONE_CONFIG_SW_REGION": server.region,
           "RCLONE_CONFIG_SW_ACCESS_KEY_ID": server.access_key_id,
           "RCLONE_CONFIG_SW_SECRET_ACCESS_KEY": server.secret_access_key,
           "RCLONE_CONFIG_SW_FORCE_PATH_STYLE": "true"}
    cmd = [rclone, "copy", str(src), f"sw:{bucket}/objects", f"--transfers={workers}",
           f"--checkers={workers}", "--s3-no-check-bucket", "--config=/dev/null", "-q"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env)
    # rusage of a child forked from this big process starts at our own RSS,
    # so sample the child's own high-water mark (VmHWM) while it runs.
    peak_kb = 0
    while proc.poll() is None:
        peak_kb = max(peak_kb, _vm_hwm_kb(proc.pid))
        time.sleep(0.02)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"rclone copy failed with exit code {proc.returncode}")
    return seconds, peak_kb


def _proc_cpu_s(pid: int) -> float:
    """User+system CPU seconds a running process has used so far."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _vm_hwm_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def listed_rerun_with_agent(target, items, workers: int) -> float:
    """Seconds to list the target once and put only what it lacks (here: nothing)."""
    t0 = time.perf_counter()
    present = {o.key for o in target.list("objects/")}
    missing = [(d, p) for d, p in items if object_key(d) not in present]
    mirror_with_agent(target, missing, workers)
    return time.perf_counter() - t0


def count_objects(client, bucket: str) -> int:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sum(len(p.get("Contents", [])) for p in pages)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--kb", type=int, default=100)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=5,
                    help="alternate agent and rclone this many times; medians are reported")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-backup-") as tmp, \
            SeaweedServer(Path(tmp) / "seaweed") as server:
        vault = Path(tmp) / "vault"
        items = make_vault(vault, args.files, args.kb)
        total_mb = sum(p.stat().st_size for _, p in items) / 1e6
        print(f"files: {len(items)}  size: {total_mb:.1f} MB  workers: {args.workers}  "
              f"rounds: {args.rounds}  cpus: {os.cpu_count()}  weed mini at {server.endpoint_url}")
        client = server.client()
        rclone = find_rclone()
        if rclone:
            version = subprocess.run([rclone, "version"], capture_output=True, text=True).stdout
            print(f"rclone: {version.splitlines()[0] if version else rclone}")
        else:
            print("rclone: unavailable, no ratio")

        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # vault made, no S3 yet
        agent, agent_again, agent_listed, rcl, rcl_again, rcl_rss = [], [], [], [], [], 0
        # CPU seconds of the first (uploading) pass: client side, server side.
        cpu = {"agent": [0.0, 0.0], "rclone": [0.0, 0.0]}
        for r in range(args.rounds):
            # Alternate who goes first, so load from elsewhere on the machine
            # drifts onto both sides alike.
            order = ["agent", "rclone"] if r % 2 == 0 else ["rclone", "agent"]
            for who in order:
                if who == "agent":
                    bucket = server.make_bucket(f"bench-agent-{r}")
                    target = open_target(server.target_config(bucket, name="bench"))
                    c0, w0 = time.process_time(), _proc_cpu_s(server.pid)
                    agent.append(mirror_with_agent(target, items, args.workers))
                    cpu["agent"][0] += time.process_time() - c0
                    cpu["agent"][1] += _proc_cpu_s(server.pid) - w0
                    agent_again.append(mirror_with_agent(target, items, args.workers))
                    agent_listed.append(listed_rerun_with_agent(target, items, args.workers))
                    assert count_objects(client, bucket) == len(items)
                elif rclone:
                    bucket = server.make_bucket(f"bench-rclone-{r}")
                    c0, w0 = _children_cpu_s(), _proc_cpu_s(server.pid)
                    secs, rss = copy_with_rclone(rclone, server, vault / "objects", bucket,
                                                 args.workers)
                    cpu["rclone"][0] += _children_cpu_s() - c0
                    cpu["rclone"][1] += _proc_cpu_s(server.pid) - w0
                    again, _ = copy_with_rclone(rclone, server, vault / "objects", bucket,
                                                args.workers)
                    rcl.append(secs)
                    rcl_again.append(again)
                    rcl_rss = max(rcl_rss, rss)
                    assert count_objects(client, bucket) == len(items)
            line = f"round {r + 1}: agent {agent[-1]:.2f} s"
            if rclone:
                line += f", rclone {rcl[-1]:.2f} s, ratio {agent[-1] / rcl[-1]:.2f}"
            print(line, flush=True)
        agent_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

        a, a2 = statistics.median(agent), statistics.median(agent_again)
        print(f"agent  mirror: {a:6.2f} s  {total_mb / a:6.1f} MB/s  {len(items) / a:6.0f} files/s"
              f"  peak RSS {agent_rss / 1024:.0f} MB (before mirroring {rss_before / 1024:.0f} MB)")
        a3 = statistics.median(agent_listed)
        n = args.rounds
        print(f"agent  CPU per mirror: client {cpu['agent'][0] / n:.2f} s, "
              f"weed {cpu['agent'][1] / n:.2f} s")
        print(f"agent  re-run, all present: {a2:6.2f} s put each; {a3:6.2f} s list then put missing")
        if rclone:
            c, c2 = statistics.median(rcl), statistics.median(rcl_again)
            print(f"rclone copy:   {c:6.2f} s  {total_mb / c:6.1f} MB/s  {len(items) / c:6.0f} files/s"
                  f"  peak RSS {rcl_rss / 1024:.0f} MB")
            print(f"rclone CPU per copy:   client {cpu['rclone'][0] / n:.2f} s, "
                  f"weed {cpu['rclone'][1] / n:.2f} s")
            print(f"rclone re-run, all present: {c2:6.2f} s")
            print(f"ratio agent/rclone (median): {a / c:.2f} (target <= 1.0); "
                  f"re-run {a2 / c2:.2f} put each, {a3 / c2:.2f} list first")


if __name__ == "__main__":
    main()
