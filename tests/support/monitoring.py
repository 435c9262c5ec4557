"""The shipped monitoring files (docs/monitoring/alerts.yml, dashboard.json):
their PromQL expressions and the series names those use, for tests that
check every name against what a real collector or daemon exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

MONITORING = Path(__file__).resolve().parents[2] / "docs" / "monitoring"
ALERTS = MONITORING / "alerts.yml"
DASHBOARD = MONITORING / "dashboard.json"
# Series Prometheus makes itself, not the agent.
PROMETHEUS_OWN = frozenset({"up"})
_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
                       "unless", "bool", "offset", "inf", "nan"})


def alert_rules() -> list[dict]:
    """Every rule of alerts.yml as a dict (alert, expr, ...): read with PyYAML
    when it is installed (it comes with the OCR extra), else `plain_rules`."""
    try:
        import yaml
    except ImportError:
        return plain_rules()
    return [r for g in yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"] for r in g["rules"]]


def plain_rules() -> list[dict]:
    """alert and expr of each rule, read from the file's own plain layout
    (`- alert: X`, then `expr: ...` on one line); fails loudly on any other
    layout rather than miss an expression."""
    rules: list[dict] = []
    for line in ALERTS.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped.startswith("- alert:"):
            rules.append({"alert": stripped.split(":", 1)[1].strip()})
        elif stripped.startswith("expr:"):
            expr = stripped.split(":", 1)[1].strip()
            assert expr and expr not in ("|", ">", "|-", ">-"), f"multi-line expr: {line!r}"
            rules[-1]["expr"] = expr
    return rules


def dashboard_expressions() -> list[str]:
    """Every query of dashboard.json's panels."""
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [t["expr"] for p in board["panels"] for t in p.get("targets", [])]


def series_names(expr: str) -> set[str]:
    """The series a PromQL expression selects: identifiers left once strings,
    label matchers, ranges, grouping clauses, functions and keywords are
    taken out."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
        rest = expr[m.end():].lstrip()
        word = m.group()
        if rest.startswith("(") or word.lower() in _KEYWORDS:
            continue
        if re.fullmatch(r"\d+[smhdwy]", word) or expr[max(0, m.start() - 1)].isdigit():
            continue
        names.add(word)
    return names


def exported_names(exposition: str) -> set[str]:
    """Every sample name (and family name) in an exposition text."""
    names = set()
    for family in text_string_to_metric_families(exposition):
        names.add(family.name)
        names.update(s.name for s in family.samples)
    return names


def unexported(exposition: str) -> dict[str, set[str]]:
    """{where: names} of the names the shipped files use that `exposition`
    lacks; empty when every one is exported."""
    have = exported_names(exposition) | PROMETHEUS_OWN
    out = {}
    for rule in alert_rules():
        missing = series_names(rule["expr"]) - have
        if missing:
            out[f"alerts.yml {rule['alert']}"] = missing
    for expr in dashboard_expressions():
        missing = series_names(expr) - have
        if missing:
            out[f"dashboard.json {expr}"] = missing
    return out
