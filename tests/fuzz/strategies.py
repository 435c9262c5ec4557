"""Shared hypothesis strategies and settings for the fuzz tests."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# 2,000 examples each in CI (issue 8); inputs stay small so the whole fuzz
# run fits in about a minute.
FUZZ = settings(max_examples=2000, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def mutated(seed: bytes) -> st.SearchStrategy[bytes]:
    """`seed` with a few byte flips, an insertion, a deletion and/or a cut."""
    n = len(seed)

    @st.composite
    def build(draw) -> bytes:
        data = bytearray(seed)
        for _ in range(draw(st.integers(0, 6))):
            if not data:
                break
            i = draw(st.integers(0, len(data) - 1))
            op = draw(st.sampled_from(["flip", "insert", "delete", "dup"]))
            if op == "flip":
                data[i] = draw(st.integers(0, 255))
            elif op == "insert":
                data[i:i] = draw(st.binary(min_size=1, max_size=16))
            elif op == "delete":
                del data[i:i + draw(st.integers(1, 64))]
            else:
                j = draw(st.integers(i, min(len(data), i + 64)))
                data[i:i] = data[i:j]
        if draw(st.booleans()):
            data = data[:draw(st.integers(0, max(0, n)))]
        return bytes(data)

    return build()
