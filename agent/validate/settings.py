"""What ops can tune about validation: the `[validation]` and `[company]` config sections."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent.errors import ConfigError
from agent.validate.codes import known_region
from agent.validate.uscc import classify_tax_id

SEVERITIES = ("off", "warning", "error")
_VALIDATION_KEYS = frozenset({"max_age_days", "expected_region", "rules"})


@dataclass
class ValidationSettings:
    """Tunable limits and switches. `rules` maps a rule code to "off",
    "warning" or "error", replacing that rule's default severity."""

    max_age_days: int = 360
    expected_region: str | None = None
    company_tax_ids: tuple[str, ...] = ()
    company_names: tuple[str, ...] = ()
    rules: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_config(cls, validation: dict[str, Any] | None, company: dict[str, Any] | None
                    ) -> "ValidationSettings":
        """Settings from the `[validation]` table (max_age_days,
        expected_region, rules = {code = severity}) and the `[company]` table
        (tax_ids, names; other company keys are ignored).

        Raises ConfigError naming the key for unknown validation keys, unknown
        rule codes, bad severities, a non-positive age, an unknown region or a
        company tax id that is not a valid id. Missing keys take defaults.
        """
        from agent.validate.rules import RULES  # rules import this module

        validation = dict(validation or {})
        company = dict(company or {})
        errors: list[str] = []
        for key in validation:
            if key not in _VALIDATION_KEYS:
                errors.append(f"validation.{key}: unknown key (known: {', '.join(sorted(_VALIDATION_KEYS))})")
        max_age = validation.get("max_age_days", 360)
        if isinstance(max_age, bool) or not isinstance(max_age, int) or max_age <= 0:
            errors.append(f"validation.max_age_days: must be a positive whole number of days, not {max_age!r}")
        region = validation.get("expected_region")
        if region is not None and (not isinstance(region, str) or not known_region(region)):
            errors.append(f"validation.expected_region: {region!r} is not a province or 计划单列市 "
                          "code or name (e.g. \"11\", \"北京\", \"3502\")")
        rules = validation.get("rules") or {}
        if not isinstance(rules, dict):
            errors.append("validation.rules: must be a table such as { \"tax-id-legacy\" = \"off\" }")
            rules = {}
        for code, severity in rules.items():
            if code not in RULES:
                errors.append(f"validation.rules.{code}: unknown rule code (known: {', '.join(RULES)})")
            elif severity not in SEVERITIES:
                errors.append(f"validation.rules.{code}: severity must be one of "
                              f"{', '.join(SEVERITIES)}, not {severity!r}")
        tax_ids = _strings(company.get("tax_ids"), "company.tax_ids", errors)
        for i, tax_id in enumerate(tax_ids):
            if classify_tax_id(tax_id.strip().upper()) == "invalid":
                errors.append(f"company.tax_ids[{i}]: {tax_id!r} is not a valid tax id (check digit or form)")
        names = _strings(company.get("names"), "company.names", errors)
        if errors:
            raise ConfigError("\n".join(errors))
        return cls(max_age_days=max_age, expected_region=region.strip() if region else None,
                   company_tax_ids=tuple(t.strip().upper() for t in tax_ids),
                   company_names=tuple(n.strip() for n in names if n.strip()),
                   rules=dict(rules))


def _strings(value: Any, key: str, errors: list[str]) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        errors.append(f"{key}: must be a list of strings")
        return []
    return list(value)
