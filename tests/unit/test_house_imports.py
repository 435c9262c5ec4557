"""The import rules of docs/architecture.md, read from the source itself
(every import statement, at any depth, through ast): agent/ never imports
service/; only the S3 adapters import boto3 or botocore; only
service/watch_events.py imports watchdog. A helper module that moves code
across these lines fails here, not in review."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported_roots(path: Path) -> set[str]:
    """The top-level packages `path` imports anywhere (lazy imports inside functions included)."""
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def importers(package: str) -> set[str]:
    return {str(p.relative_to(ROOT)) for folder in ("agent", "service") for p in (ROOT / folder).rglob("*.py")
            if package in imported_roots(p)}


def test_the_scan_sees_lazy_imports(tmp_path):
    # The rule would hold vacuously if imports inside functions were missed.
    f = tmp_path / "m.py"
    f.write_text("def f():\n    import boto3.session\n    from watchdog.events import X\n")
    assert imported_roots(f) == {"boto3", "watchdog"}


def test_agent_never_imports_service():
    assert {p for p in importers("service") if p.startswith("agent/")} == set()


def test_only_the_s3_adapters_import_boto3():
    s3 = {"agent/deliver/s3.py", "agent/backup/s3.py", "agent/backup/s3_put.py", "agent/fleet/s3.py"}
    assert importers("boto3") | importers("botocore") <= s3
    assert importers("boto3"), "no adapter imports boto3: the scan is broken"


def test_only_watch_events_imports_watchdog():
    assert importers("watchdog") == {"service/watch_events.py"}
