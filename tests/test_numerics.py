"""Property tests of every integer rule in gen.numerics against exact rational arithmetic."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from gen import numerics as N

wide = st.integers(min_value=-(2**62), max_value=2**62)
shifts = st.integers(min_value=-8, max_value=40)


def exact_round(v: int, s: int) -> int:
    """Nearest integer to v / 2**s, ties toward +infinity, with Fractions."""
    return math.floor(Fraction(v, 2**s) + Fraction(1, 2)) if s >= 0 else v * 2**-s


@given(wide, shifts)
@example(-3, 1)   # -1.5 -> -1 (tie toward +inf)
@example(-5, 1)   # -2.5 -> -2
@example(3, 1)    # 1.5 -> 2
@example(-1, 1)   # -0.5 -> 0
@example(-(2**62), 62)
def test_rshift_round_is_exact_nearest_ties_up(v, s):
    assert N.rshift_round(v, s) == exact_round(v, s)


@given(st.lists(st.integers(min_value=-(2**50), max_value=2**50), min_size=1, max_size=20),
       st.integers(min_value=-4, max_value=12))
def test_rshift_round_array_matches_scalar(vals, s):
    got = N.rshift_round_array(np.array(vals, dtype=np.int64), s)
    assert got.tolist() == [N.rshift_round(v, s) for v in vals]


@given(st.lists(st.tuples(st.integers(-(2**40), 2**40), st.integers(-3, 20)), min_size=1,
                max_size=20))
def test_rshift_round_array_per_element_shift(pairs):
    v = np.array([p[0] for p in pairs], dtype=np.int64)
    s = np.array([p[1] for p in pairs], dtype=np.int64)
    assert N.rshift_round_array(v, s).tolist() == [N.rshift_round(a, b) for a, b in pairs]


@given(wide, st.integers(min_value=2, max_value=64))
@example(-(2**7) - 1, 8)
@example(2**7, 8)
@example(-(2**31), 32)
def test_saturate_clamps_never_wraps(v, bits):
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    assert N.saturate(v, bits) == min(max(v, lo), hi)
    assert N.saturate_array(np.array([v]), bits)[0] == min(max(v, lo), hi)


@given(wide, wide)
def test_signed_bits_is_minimal(a, b):
    lo, hi = min(a, b), max(a, b)
    n = N.signed_bits(lo, hi)
    assert -(2 ** (n - 1)) <= lo and hi <= 2 ** (n - 1) - 1
    if n > 1:
        assert not (-(2 ** (n - 2)) <= lo and hi <= 2 ** (n - 2) - 1)


def test_signed_bits_extremes():
    assert N.signed_bits(-128, 127) == 8
    assert N.signed_bits(-129, 0) == 9
    assert N.signed_bits(0, 128) == 9
    assert N.signed_bits(0, 0) == 1
    with pytest.raises(ValueError):
        N.signed_bits(1, 0)


@given(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
       st.sampled_from([N.Format(8, 4), N.Format(8, -2), N.Format(32, 20), N.Format(8, 7)]))
def test_quantize_real_is_round_half_up_then_saturate(x, fmt):
    q = int(N.quantize_real(np.array([x]), fmt)[0])
    exact = math.floor(Fraction(x) * Fraction(2) ** fmt.frac + Fraction(1, 2))
    assert q == min(max(exact, fmt.lo), fmt.hi)


def test_saturated_count_counts_the_values_quantize_real_clips():
    fmt = N.Format(8, 4)   # [-128, 127] / 16: [-8, 7.9375]
    ulp = 2.0 ** -4
    x = np.array([7.9375 + 0.49 * ulp,    # rounds to 127: in range
                  7.9375 + 0.5 * ulp,     # rounds up to 128: saturates
                  -8 - 0.5 * ulp,         # floor(-128.5 + 0.5) = -128: in range
                  -8 - 0.51 * ulp,        # -129: saturates
                  1e9, -1e9, 0.0])
    assert N.saturated_count(x, fmt) == 4
    q = N.quantize_real(x, fmt)
    assert q.tolist() == [127, 127, -128, -128, 127, -128, 0]
    assert N.saturated_count(x.reshape(7, 1, 1), fmt) == 4 and N.saturated_count(x[:0], fmt) == 0


def test_quantize_real_rejects_nan_and_inf():
    for bad in (np.nan, np.inf, -np.inf):
        with pytest.raises(ValueError, match="NaN or infinity"):
            N.quantize_real(np.array([0.0, bad]), N.Format(8, 4))


def test_check_int64_boundary():
    N.check_int64(-(2**62), 2**62 - 1, "ok")
    with pytest.raises(OverflowError, match="need 65 bits"):
        N.check_int64(0, 2**63, "too wide")


def test_format_validation_and_precision_parse():
    assert N.Format(8, 3).lo == -128 and N.Format(8, 3).hi == 127
    with pytest.raises(ValueError, match="bits"):
        N.Format(1, 0)
    assert N.Precision.parse("FIX8") is N.Precision.FIX8 and N.Precision.FIX32.bits == 32
    with pytest.raises(ValueError, match="fix8"):
        N.Precision.parse("fix16")


@given(st.lists(st.integers(-(2**15), 2**15 - 1), min_size=1, max_size=4),
       st.integers(-(2**40), 2**40), st.integers(0, 40), st.integers(0, 8),
       st.integers(-(2**30), 2**30))
@example([-(2**15)], -(2**40), 0, 0, -(2**30))
@example([1], 0, 0, 5, -1)
@example([0, 0], -7, 3, 0, 12345)
def test_floor_requant_is_the_rounding_requant(mults, bias, shift, k, acc):
    to = shift + k
    m, b = N.floor_requant(mults, [bias] * len(mults), shift, to)
    for j, mult in enumerate(mults):
        assert (acc * int(m[j]) + int(b[j])) >> to == N.rshift_round(acc * mult + bias, shift)


@given(st.integers(-(2**40), 2**40), st.integers(0, 40), st.integers(0, 40),
       st.integers(-(2**30), 2**30))
def test_floor_requant_of_a_constant_takes_any_shift(bias, shift, to, acc):
    m, b = N.floor_requant([0, 0], [bias, -bias], shift, to)
    assert [(acc * int(mi) + int(bi)) >> to for mi, bi in zip(m, b, strict=True)] == \
        [N.rshift_round(bias, shift), N.rshift_round(-bias, shift)]


def test_floor_requant_never_lowers_a_shift():
    with pytest.raises(ValueError, match="cannot be made a floor shift"):
        N.floor_requant([3], [0], 5, 4)
