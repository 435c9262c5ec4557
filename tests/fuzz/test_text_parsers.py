"""The QR payload parser and the 大写 parser over random and mutated text."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from agent.errors import AgentError
from agent.extract.qr import QrPayload, parse_qr
from agent.validate.amounts import parse_words
from tests.fuzz.strategies import FUZZ

_FIELD = st.one_of(
    st.text(alphabet="0123456789", max_size=22),
    st.text(alphabet="0123456789.-", max_size=14),
    st.text(alphabet="0123456789abcdefABCDEF", max_size=5),
    st.sampled_from(["", " ", "01", "04", "10", "31", "32", "51", "99", "2026-02-30", "20261301",
                     "１２３", "٣٤٥", "1e5", "NaN", "-0", "9" * 40, "\x00", "，"]),
    st.text(max_size=8),
)


@st.composite
def qr_payloads(draw) -> str:
    fields = draw(st.lists(_FIELD, min_size=0, max_size=11))
    sep = draw(st.sampled_from([",", "，", ",", ", "]))
    return sep.join(fields) + draw(st.sampled_from(["", ",", "\n", " "]))


@FUZZ
@given(st.one_of(qr_payloads(), st.text(max_size=120)))
def test_parse_qr_returns_a_payload_or_none(text):
    try:
        result = parse_qr(text)
    except AgentError:
        return
    assert result is None or isinstance(result, QrPayload)
    if result is not None:
        assert result.raw == text or text.strip() == result.raw.strip()
        assert result.crc_ok in (True, False, None)
        assert result.signed_texts


_WORD_CHARS = "零壹贰叁肆伍陆柒捌玖拾佰仟万亿圆元角分整正负（）() 　"


@FUZZ
@given(st.one_of(st.text(alphabet=_WORD_CHARS, max_size=30), st.text(max_size=20),
                 st.lists(st.sampled_from(list(_WORD_CHARS) + ["壹万", "零", "圆整", "（负数）"]),
                          max_size=20).map("".join)))
def test_parse_words_gives_cents_or_a_typed_error(text):
    try:
        value = parse_words(text)
    except AgentError:
        return
    assert isinstance(value, Decimal)
    assert value == value.quantize(Decimal("0.01"))
