"""E-mail parsing: peak memory and time of agent.mail.parse_message on hostile
shapes, against a plain `email.message_from_bytes` (+ decoding every part)
anchor on the same bytes in the same run.

Each figure comes from a fresh child process that reads the message from a
file and reports its VmHWM (peak RSS, interpreter and message included;
`ru_maxrss` would carry the parent's peak over the exec). The issue's case
is the 39 MB quoted-printable message made of soft line breaks (bound:
300 MB).

Usage: .venv/bin/python bench/mail.py [--shapes qp-soft-breaks,base64-junk,...] [--mb 39]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.integration.mail_shapes import SHAPES  # noqa: E402

CHILD = """
import json, sys, time
def peak_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
data = open(sys.argv[2], "rb").read()
start_mb = peak_mb()
t = time.perf_counter()
if sys.argv[1] == "anchor":
    import email
    for part in email.message_from_bytes(data).walk():
        part.get_payload(decode=True)
else:
    from agent.errors import ExtractError
    from agent.mail import MailLimits, parse_message
    try:
        parse_message(data, MailLimits(max_message_bytes=60 << 20))
    except ExtractError:
        pass
print(json.dumps({"s": time.perf_counter() - t, "peak_mb": peak_mb(), "loaded_mb": start_mb}))
"""


def run(which: str, path: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", CHILD, which, str(path)], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=1800)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else f"exit {done.returncode}"}
    return json.loads(done.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--mb", type=int, default=39)
    args = ap.parse_args()
    print(f"{'shape':<16} {'MB':>4}  {'parse_message':>22}  {'message_from_bytes anchor':>26}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.shapes.split(","):
            build = SHAPES[name]
            data = build() if name == "deep-multipart" else build(args.mb)
            path = Path(tmp) / f"{name}.eml"
            path.write_bytes(data)
            size = len(data) / 2**20
            del data
            ours, anchor = run("agent", path), run("anchor", path)

            def fmt(r: dict) -> str:
                return r["error"][:26] if "error" in r else f"{r['peak_mb']:6.0f} MB peak {r['s']:6.2f} s"
            print(f"{name:<16} {size:4.0f}  {fmt(ours):>22}  {fmt(anchor):>26}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
