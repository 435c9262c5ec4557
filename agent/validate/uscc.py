"""Tax ids: 统一社会信用代码 (GB 32100-2015) and the legacy forms still printed.

A failing check character is how most test and forged invoices give
themselves away (the samples' 9150010807MGZHI002, 91500102563638729E), so
the check is exact. Legacy ids (old 税务登记号, 个体 ids built from a 身份证)
carry no USCC check; they are recognised by structure and only warned about.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Literal

from agent.errors import AgentError
from agent.validate.regions import ID_CARD_EXTRA_PREFIXES, PROVINCES

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_VALUE = {c: i for i, c in enumerate(ALPHABET)}
_ALPHABET_SET = frozenset(ALPHABET)

# GB 11714 组织机构代码: 8 body characters (digits or A-Z) and a check.
ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
_ORG_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"

# GB 11643 公民身份号码 check (ISO 7064 MOD 11-2).
_ID_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
_ID_CHECK = "10X98765432"

_ID_PREFIXES = frozenset(PROVINCES) | frozenset(ID_CARD_EXTRA_PREFIXES)

TaxIdKind = Literal["uscc", "legacy", "invalid"]


class TaxIdError(AgentError, ValueError):
    """A string handed to a check-character function is not a well-formed body."""


def check_char(body17: str) -> str:
    """The USCC check character for 17 body characters from ALPHABET.

    Raises TaxIdError when the body has the wrong length or a character
    outside ALPHABET (I, O, S, V, Z and lower case are not in it).
    """
    if not isinstance(body17, str) or len(body17) != 17:
        raise TaxIdError(f"USCC body must be 17 characters, got {body17!r}")
    try:
        total = sum(map(int.__mul__, map(_VALUE.__getitem__, body17), WEIGHTS))
    except KeyError as e:
        raise TaxIdError(f"character {e.args[0]!r} is not in the USCC alphabet") from None
    return ALPHABET[(31 - total % 31) % 31]


def is_valid_uscc(s: str) -> bool:
    """True when `s` is exactly 18 ALPHABET characters whose last one is the
    GB 32100 check character of the first 17. Never raises."""
    if not isinstance(s, str) or len(s) != 18 or not _ALPHABET_SET.issuperset(s):
        return False
    return check_char(s[:17]) == s[17]


def org_check_char(body8: str) -> str:
    """The GB 11714 组织机构代码 check character ("0"-"9" or "X") of 8 body
    characters (digits or upper-case A-Z). Raises TaxIdError otherwise."""
    if not isinstance(body8, str) or len(body8) != 8 or any(c not in _ORG_CHARS for c in body8):
        raise TaxIdError(f"organisation code body must be 8 of 0-9/A-Z, got {body8!r}")
    total = sum(_ORG_CHARS.index(c) * w for c, w in zip(body8, ORG_WEIGHTS))
    c = 11 - total % 11
    return "X" if c == 10 else "0" if c == 11 else str(c)


def is_valid_org_code(s: str) -> bool:
    """True when `s` is a 9-character 组织机构代码 with a correct check. Never raises."""
    if not isinstance(s, str) or len(s) != 9 or any(c not in _ORG_CHARS for c in s[:8]):
        return False
    return org_check_char(s[:8]) == s[8]


def is_valid_resident_id(s: str) -> bool:
    """True for an 18-character 公民身份号码 with a known region prefix, a real
    birth date and a correct GB 11643 check. Never raises."""
    if not isinstance(s, str) or len(s) != 18 or not s[:17].isdigit() or not s.isascii():
        return False
    if s[:2] not in _ID_PREFIXES or not _is_date(s[6:14]):
        return False
    total = sum(int(c) * w for c, w in zip(s[:17], _ID_WEIGHTS))
    return _ID_CHECK[total % 11] == s[17]


def classify_tax_id(s: str | None) -> TaxIdKind:
    """"uscc" for a valid 统一社会信用代码; "legacy" for a structurally sound
    old form (15-character 税务登记号 or 身份证, 17/18/20-character 个体 ids built
    from a 身份证); "invalid" for anything else, None included. Never raises.
    """
    if not isinstance(s, str):
        return "invalid"
    return _classify(s.strip())


# Pure and hot (every invoice, both parties; the same sellers recur), so cached.
@functools.lru_cache(maxsize=4096)
def _classify(s: str) -> TaxIdKind:
    if not s.isascii() or not s.isalnum():
        return "invalid"
    n = len(s)
    if n == 18:
        if is_valid_uscc(s):
            return "uscc"
        return "legacy" if is_valid_resident_id(s) else "invalid"
    if n == 15:
        return "legacy" if _is_old_registration(s) or _is_old_resident_id(s) else "invalid"
    if n == 17:
        # 15-digit 身份证 + 2-digit sequence.
        return "legacy" if s.isdigit() and _is_old_resident_id(s[:15]) else "invalid"
    if n == 20:
        # 18-character 身份证 + 2-digit sequence.
        return "legacy" if s[18:].isdigit() and is_valid_resident_id(s[:18]) else "invalid"
    return "invalid"


def _is_old_registration(s: str) -> bool:
    # Old 税务登记号: 6-digit region code + 9-character 组织机构代码.
    return s[:6].isdigit() and s[:2] in _ID_PREFIXES and is_valid_org_code(s[6:])


def _is_old_resident_id(s: str) -> bool:
    # First-generation 身份证: 15 digits, birth date YYMMDD in the 1900s.
    return len(s) == 15 and s.isdigit() and s[:2] in _ID_PREFIXES and _is_date("19" + s[6:12])


def _is_date(yyyymmdd: str) -> bool:
    try:
        dt.date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8]))
    except ValueError:
        return False
    return True
