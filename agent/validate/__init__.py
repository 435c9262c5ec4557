"""Validation: Invoice -> problems, one small module per family of rules.

`validate` is the whole stage; `RULES` lists every rule code with its
default severity and description; `ValidationSettings` is what ops tune.
"""

from agent.validate.codes import region_of
from agent.validate.rules import RULES, Rule
from agent.validate.settings import SEVERITIES, ValidationSettings
from agent.validate.validator import has_errors, validate

__all__ = ["RULES", "Rule", "SEVERITIES", "ValidationSettings", "has_errors", "region_of", "validate"]
