"""价税合计大写: amounts in the financial Chinese numerals printed on invoices.

`to_words` writes the form the tax system prints (圆, 整 after 圆 or 角, one
零 per run of zeros, a leading 壹拾 kept). `parse_words` reads back any
accepted spelling (元 for 圆, 正 for 整, a bare leading 拾, 零 omitted where
the value stays unambiguous), so a 大写 is judged by its value, not its text.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from agent.errors import AgentError

DIGITS = "零壹贰叁肆伍陆柒捌玖"
_DIGIT_VALUE = {c: i for i, c in enumerate(DIGITS)}
_SMALL_UNITS = {"拾": 10, "佰": 100, "仟": 1000}
_BIG_UNITS = {"万": 10**4, "亿": 10**8}
_GROUP_NAMES = ("", "万", "亿")
_YUAN = "圆元"
_WHOLE = "整正"
# Red-letter (红字) invoices print the negative total with this prefix.
NEGATIVE_PREFIX = "（负数）"
_NEGATIVE_PREFIXES = ("（负数）", "(负数)", "负数", "负")
MAX_AMOUNT = Decimal("999999999999.99")
_CENT = Decimal("0.01")


class WordsError(AgentError, ValueError):
    """A 大写 text cannot be read as an amount, or an amount cannot be written."""


def to_words(amount: Decimal) -> str:
    """The 大写 of `amount` as printed on invoices, e.g. 壹万零陆佰圆整.

    Raises WordsError for non-finite values, fractions of a cent and
    magnitudes above MAX_AMOUNT.
    """
    try:
        value = Decimal(amount)
        exact = value.quantize(_CENT)
    except (InvalidOperation, TypeError, ValueError):
        raise WordsError(f"not an amount: {amount!r}") from None
    if exact != value:
        raise WordsError(f"{amount} has fractions of a cent")
    if abs(exact) > MAX_AMOUNT:
        raise WordsError(f"{amount} is beyond {MAX_AMOUNT}")
    if exact < 0:
        return NEGATIVE_PREFIX + to_words(-exact)
    cents = int(exact * 100)
    yuan, jiao, fen = cents // 100, cents // 10 % 10, cents % 10
    if yuan:
        head = _integer_words(yuan) + "圆"
        if not jiao and not fen:
            return head + "整"
        if not fen:
            return f"{head}{DIGITS[jiao]}角整"
        if not jiao:
            return f"{head}零{DIGITS[fen]}分"
        return f"{head}{DIGITS[jiao]}角{DIGITS[fen]}分"
    if not jiao and not fen:
        return "零圆整"
    if not fen:
        return f"{DIGITS[jiao]}角整"
    return (f"{DIGITS[jiao]}角" if jiao else "") + f"{DIGITS[fen]}分"


def _integer_words(n: int) -> str:
    groups = []
    while n:
        groups.append(n % 10000)
        n //= 10000
    out = ""
    zero_pending = False
    for index in range(len(groups) - 1, -1, -1):
        group = groups[index]
        if group == 0:
            zero_pending = bool(out)
            continue
        if out and (zero_pending or group < 1000):
            out += "零"
        out += _group_words(group) + _GROUP_NAMES[index]
        zero_pending = False
    return out


def _group_words(group: int) -> str:
    out = ""
    zero_pending = False
    for unit, name in ((1000, "仟"), (100, "佰"), (10, "拾"), (1, "")):
        digit = group // unit % 10
        if digit == 0:
            zero_pending = bool(out)
            continue
        if zero_pending:
            out += "零"
            zero_pending = False
        out += DIGITS[digit] + name
    return out


def parse_words(text: str) -> Decimal:
    """The amount a 大写 text stands for, with two decimals.

    Accepts 圆/元, 整/正, a leading 拾 with or without 壹, 零 where the rules
    put it (or left out where the value stays unambiguous), 万/亿, inner
    whitespace and a （负数）/负 prefix. Raises WordsError for anything else.
    """
    if not isinstance(text, str):
        raise WordsError(f"not a text: {text!r}")
    s = "".join(text.split())
    negative = False
    for prefix in _NEGATIVE_PREFIXES:
        if s.startswith(prefix):
            s, negative = s[len(prefix):], True
            break
    if not s:
        raise WordsError(f"empty 大写: {text!r}")
    yuan_at = next((i for i, c in enumerate(s) if c in _YUAN), -1)
    if yuan_at >= 0:
        integer_text, fraction_text = s[:yuan_at], s[yuan_at + 1:]
        if not integer_text:
            raise WordsError(f"nothing before 圆 in {text!r}")
        yuan = 0 if integer_text == "零" else _parse_integer(integer_text, text)
    else:
        yuan, fraction_text = 0, s
        if not any(c in fraction_text for c in "角分"):
            raise WordsError(f"no 圆, 角 or 分 in {text!r}")
    cents = yuan * 100 + _parse_fraction(fraction_text, text)
    value = (Decimal(cents) / 100).quantize(_CENT)
    return -value if negative else value


def _parse_integer(s: str, text: str) -> int:
    total = 0       # completed 亿/万 sections
    section = 0     # value below the next 万/亿
    digit: int | None = None
    zero_before = False
    last_unit: int | None = None       # the last unit seen anywhere
    section_unit = 10**4               # small units must fall within a section
    big_unit = 10**12                  # 亿 before 万, each at most once
    for i, ch in enumerate(s):
        if ch in _DIGIT_VALUE:
            if digit is not None:
                raise WordsError(f"two digits in a row in {text!r}")
            value = _DIGIT_VALUE[ch]
            if value == 0:
                if i == 0 or zero_before:
                    raise WordsError(f"misplaced 零 in {text!r}")
                zero_before = True
            else:
                digit = value
        elif ch in _SMALL_UNITS:
            unit = _SMALL_UNITS[ch]
            if unit >= section_unit:
                raise WordsError(f"{ch} out of order in {text!r}")
            if digit is None:
                # Only a number's very first 拾 may stand without its 壹.
                if not (unit == 10 and i == 0):
                    raise WordsError(f"{ch} without a digit in {text!r}")
                digit = 1
            section += digit * unit
            digit, zero_before, section_unit, last_unit = None, False, unit, unit
        elif ch in _BIG_UNITS:
            unit = _BIG_UNITS[ch]
            if digit is not None:
                section += _final_digit(digit, zero_before, last_unit, text)
            if unit >= big_unit or section == 0 or zero_before and digit is None:
                raise WordsError(f"{ch} out of place in {text!r}")
            total += section * unit
            section, digit, zero_before = 0, None, False
            section_unit, big_unit, last_unit = 10**4, unit, unit
        else:
            raise WordsError(f"{ch!r} is not a 大写 numeral in {text!r}")
    if digit is not None:
        section += _final_digit(digit, zero_before, last_unit, text)
    elif zero_before:
        raise WordsError(f"trailing 零 in {text!r}")
    return total + section


def _final_digit(digit: int, zero_before: bool, last_unit: int | None, text: str) -> int:
    # 壹佰伍 or 壹万伍 mean 150/15000 in speech but 105/10005 by the digits:
    # ambiguous, so only 零, 拾 or nothing may precede a units digit.
    if zero_before or last_unit in (None, 10):
        return digit
    raise WordsError(f"ambiguous units digit in {text!r}")


def _parse_fraction(s: str, text: str) -> int:
    i = 0
    cents = 0
    if s[i:i + 1] == "零":
        i += 1
    if s[i + 1:i + 2] == "角":
        if s[i:i + 1] not in _DIGIT_VALUE:
            raise WordsError(f"bad 角 in {text!r}")
        cents += 10 * _DIGIT_VALUE[s[i]]
        i += 2
        if s[i:i + 1] == "零":
            i += 1
    has_fen = False
    if s[i + 1:i + 2] == "分":
        if s[i:i + 1] not in _DIGIT_VALUE:
            raise WordsError(f"bad 分 in {text!r}")
        cents += _DIGIT_VALUE[s[i]]
        i += 2
        has_fen = True
    if s[i:i + 1] and s[i] in _WHOLE and not has_fen:
        i += 1
    if i != len(s):
        raise WordsError(f"cannot read {s[i:]!r} in {text!r}")
    return cents
