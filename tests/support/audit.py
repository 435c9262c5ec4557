"""`assert_ledger_sound(config)`: the end of every end-to-end test. Runs the
real `fapiao-agent audit ledger --json` on a config and fails with every
violation listed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent


def audit_ledger(config: str | os.PathLike, *, timeout: float = 300) -> tuple[int, dict | None, str]:
    """(exit status, parsed JSON report or None, stderr) of the real CLI."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    r = subprocess.run([sys.executable, "-m", "service", "--config", str(config), "audit", "ledger", "--json"],
                       capture_output=True, text=True, timeout=timeout, env=env, cwd=Path(config).parent)
    try:
        report = json.loads(r.stdout) if r.stdout.strip() else None
    except json.JSONDecodeError:
        report = None
    return r.returncode, report, r.stderr


def assert_ledger_sound(config: str | os.PathLike) -> None:
    """Fail, listing each violation with its rule code, unless the audit of
    `config`'s ledger and vault exits 0 with no violation."""
    code, report, stderr = audit_ledger(config)
    violations = (report or {}).get("violations") or []
    if code == 0 and report is not None and not violations:
        return
    listed = "\n".join(f"  {v['code']}  document {v['document']} object {v['object']}: {v['message']}"
                       for v in violations)
    raise AssertionError(f"audit ledger exited {code} with {len(violations)} violations:\n{listed}"
                         + (f"\nstderr:\n{stderr.strip()}" if stderr.strip() and code not in (0, 1) else ""))
