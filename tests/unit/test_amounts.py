"""大写 amounts: written as invoices print them, read back in every accepted spelling."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.errors import AgentError
from agent.validate.amounts import WordsError, parse_words, to_words

PRINTED = [
    ("17.14", "壹拾柒圆壹角肆分"), ("300", "叁佰圆整"), ("10600", "壹万零陆佰圆整"),
    ("21800", "贰万壹仟捌佰圆整"), ("73.20", "柒拾叁圆贰角整"), ("307.64", "叁佰零柒圆陆角肆分"),
    ("2150.63", "贰仟壹佰伍拾圆陆角叁分"), ("10", "壹拾圆整"), ("100.05", "壹佰圆零伍分"),
    ("0.05", "伍分"), ("0.50", "伍角整"), ("0.15", "壹角伍分"), ("0", "零圆整"),
    ("1001", "壹仟零壹圆整"), ("1010", "壹仟零壹拾圆整"), ("101010", "壹拾万壹仟零壹拾圆整"),
    ("100000000", "壹亿圆整"), ("100000001", "壹亿零壹圆整"), ("100010000", "壹亿零壹万圆整"),
    ("110000000", "壹亿壹仟万圆整"), ("999999999.99", "玖亿玖仟玖佰玖拾玖万玖仟玖佰玖拾玖圆玖角玖分"),
    ("-300", "（负数）叁佰圆整"),
]


@pytest.mark.parametrize("amount,words", PRINTED)
def test_written_as_printed_and_read_back(amount, words):
    assert to_words(Decimal(amount)) == words
    assert parse_words(words) == Decimal(amount)


def test_every_sample_total_in_words(expected_fields):
    # Issuers print 圆 or 元 (深圳's blockchain invoices write 玖佰陆拾贰元整):
    # the 大写 as printed must read as the 小写 and pass the words rule, and
    # what we write must read back to the same value, whichever unit it uses.
    import datetime as dt

    from agent.model import Invoice
    from agent.validate import ValidationSettings, validate

    pairs = [(v["total"], v["total_in_words"]) for v in expected_fields.values() if v.get("total_in_words")]
    assert len(pairs) >= 10
    assert any("元" in words for _, words in pairs) and any("圆" in words for _, words in pairs)
    for total, words in pairs:
        assert parse_words(words) == Decimal(total), words
        assert parse_words(to_words(Decimal(total))) == Decimal(total)
        inv = Invoice()
        inv.offer("total", Decimal(total), "xml")
        inv.offer("total_in_words", words, "xml")
        problems = validate(inv, ValidationSettings(), today=dt.date(2026, 1, 1))
        assert "words-mismatch" not in {p.code for p in problems}, words


@pytest.mark.parametrize("words,amount", [
    ("壹拾柒元壹角肆分", "17.14"), ("叁佰元正", "300"), ("拾柒圆壹角肆分", "17.14"),
    ("拾万圆整", "100000"), ("壹仟伍拾圆整", "1050"), ("壹万 零陆佰 圆整", "10600"),
    ("叁佰圆", "300"), ("负叁佰圆整", "-300"), ("(负数)叁佰圆整", "-300"),
    ("壹佰圆伍分", "100.05"), ("柒拾叁圆贰角", "73.20"), ("壹亿零伍拾万圆整", "100500000"),
    ("玖佰陆拾贰元整", "962"), ("叁佰零柒元陆角肆分", "307.64"),
])
def test_accepted_variants(words, amount):
    assert parse_words(words) == Decimal(amount)


@pytest.mark.parametrize("garbage", [
    "", "   ", "整", "圆整", "壹贰圆", "壹佰伍圆整", "壹万伍圆整", "零零壹圆", "壹佰零圆整",
    "佰圆整", "壹拾佰圆", "壹佰仟圆", "壹万亿圆", "壹亿壹亿圆", "伍分整", "壹圆伍", "三百元",
    "叁佰圆整整", "壹佰圆X", "伍角伍角", "壹拾拾圆", None, 300,
])
def test_garbage_raises_a_typed_error(garbage):
    with pytest.raises(WordsError) as e:
        parse_words(garbage)
    assert isinstance(e.value, AgentError) and isinstance(e.value, ValueError)


@pytest.mark.parametrize("bad", [Decimal("0.001"), Decimal("NaN"), Decimal("Infinity"),
                                 Decimal("1000000000000"), "abc"])
def test_unwritable_amounts_raise_a_typed_error(bad):
    with pytest.raises(WordsError):
        to_words(bad)


@settings(max_examples=2000, deadline=None)
@given(cents=st.integers(min_value=1, max_value=99_999_999_999))
def test_round_trip_from_one_cent_to_a_billion(cents):
    amount = Decimal(cents) / 100
    words = to_words(amount)
    assert parse_words(words) == amount
    # The 元/正 spellings and a bare leading 拾 mean the same amount.
    assert parse_words(words.replace("圆", "元").replace("整", "正")) == amount
    if words.startswith("壹拾"):
        assert parse_words(words[1:]) == amount
