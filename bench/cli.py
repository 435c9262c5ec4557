"""CLI start-up: each read command, start to exit, beside `python -c "import
click"` in the same run (issue 17: each ≤ 2× the anchor).

    .venv/bin/python bench/cli.py [--documents 3000] [--rounds 15]

Builds a ledger in a temporary folder: `--documents` invoices with buyer,
seller, line items and a mix of states (quarantined ones included), plus
300 that went through the ledger's own transitions and were delivered or
failed (events and delivery attempts for `show`), with a destination and a
file backup target in the config, which holds all but 20 of the originals
(as a running daemon's backup thread leaves it). Then runs, in interleaved rounds (the
machine is shared: each command sees the same load), the anchor and
`--version`, `status`, `list`, `show ID` and `quarantine`, each as its own
process the way an operator runs it, and prints the median wall time of each,
its ratio to the anchor's median and PASS/FAIL against 2×.

Bytecode: the children write and use compiled bytecode (in a temporary
PYTHONPYCACHEPREFIX, even when PYTHONDONTWRITEBYTECODE is set here), as an
installed package has it; one round first, not counted, fills it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import grp
import os
import pwd
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from agent.config import load_config  # noqa: E402
from agent.ledger import Ledger, utc  # noqa: E402
from agent.vault import Vault  # noqa: E402
from ledger import fill_invoices  # noqa: E402  (bench/ledger.py)
from tests.support.queued import queue_invoice  # noqa: E402

LIMIT = 2.0


def config_text() -> str:
    """A config with one destination and one backup target, whose [access]
    names the running account, so every read command passes its check."""
    group = grp.getgrgid(os.getgid()).gr_name
    user = pwd.getpwuid(os.geteuid()).pw_name
    return f"""\
[agent]
state_dir = "state"

[[destination]]
name = "erp"
url = "folder://out"

[[backup]]
name = "nas"
url = "file://nas"

[access]
read_group = "{group}"
amend_group = "{group}"
approve_group = "{group}"
service_user = "{user}"
"""


def build(folder: Path, documents: int) -> int:
    """The ledger of the config in `folder`; returns the id `show` reads (a
    delivered invoice with its events)."""
    (folder / "c.toml").write_text(config_text(), encoding="utf-8")
    cfg = load_config(folder / "c.toml", env={})
    now = dt.datetime.now(dt.timezone.utc)
    with Ledger(cfg.ledger_path) as ledger:
        ledger.conn.execute("PRAGMA synchronous = OFF")   # building the fixture only
        fill_invoices(ledger, documents)
        vault = Vault(cfg.vault_dir)
        ids = [queue_invoice(ledger, vault, i, destinations=["erp"], now=utc(now)) for i in range(300)]
        lease = utc(now + dt.timedelta(minutes=5))
        while claimed := ledger.claim_deliveries("erp", now=utc(now), lease_until=lease, token="t", actor="bench",
                                                 limit=100):
            for c in claimed:
                failed = c["document_id"] % 5 == 0
                ledger.finish_delivery(c["delivery_id"], "t", state="failed" if failed else "delivered",
                                       now=utc(now), actor="bench", outcome="transient" if failed else "delivered",
                                       error="HTTP 503" if failed else None)
        # What a running daemon's backup thread leaves: every original queued
        # for the target, all but the newest 20 held there.
        ledger.enqueue_backups("nas", now=utc(now))
        due = ledger.due_backups("nas", now=utc(now), limit=10**9)
        ledger.backups_done("nas", [(d["sha256"], d["size"] or 0) for d in due[:-20]], now=utc(now),
                            day=utc(now)[:10])
        return ids[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--documents", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        show_id = build(tmp, args.documents)
        print(f"ledger of {args.documents + 300:,} documents built in {time.perf_counter() - t:.1f} s")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
        env.pop("FAPIAO_AGENT_CONFIG", None)
        cli = [sys.executable, "-m", "service", "--config", str(tmp / "c.toml")]
        runs = {
            'python -c "import click"': [sys.executable, "-c", "import click"],
            "--version": cli + ["--version"],
            "status": cli + ["status"],
            "list": cli + ["list"],
            f"show {show_id}": cli + ["show", str(show_id)],
            "quarantine": cli + ["quarantine"],
        }
        times: dict[str, list[float]] = {name: [] for name in runs}
        cpu: dict[str, list[float]] = {name: [] for name in runs}
        for round_ in range(args.rounds + 1):
            for name, argv in runs.items():
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                t = time.perf_counter()
                done = subprocess.run(argv, env=env, cwd=tmp, capture_output=True)
                took = time.perf_counter() - t
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                if done.returncode != 0:
                    sys.exit(f"{name} failed ({done.returncode}): {done.stderr.decode(errors='replace')}")
                if round_:   # round 0 compiles the bytecode
                    times[name].append(took * 1000)
                    cpu[name].append((after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000)
        anchor = 'python -c "import click"'
        wall0, cpu0 = statistics.median(times[anchor]), statistics.median(cpu[anchor])
        print(f"median of {args.rounds} interleaved rounds, each a new process; the verdict is on wall time "
              f"(limit: {LIMIT:g}× the anchor); CPU time (user + system) beside it, less moved by other load:")
        failed = []
        for name, ms in times.items():
            ratio = statistics.median(ms) / wall0
            verdict = "" if name == anchor else ("PASS" if ratio <= LIMIT else "FAIL")
            if verdict == "FAIL":
                failed.append(name)
            print(f"  {name:<26} wall median {statistics.median(ms):6.0f} ms (min {min(ms):5.0f})  {ratio:5.2f}×  "
                  f"cpu median {statistics.median(cpu[name]):5.0f} ms  {statistics.median(cpu[name]) / cpu0:5.2f}×  "
                  f"{verdict}")
        print("PASS: every command within 2× the anchor" if not failed else f"FAIL: {', '.join(failed)}")


if __name__ == "__main__":
    main()
