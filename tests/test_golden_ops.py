"""Each golden-model op against an independent reference written with Python ints and loops."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gen.ir import Add, AvgPool, IntegerNetwork, Requant, TensorSpec
from gen.numerics import Format, Precision, rshift_round, saturate
from sim import golden


def conv_ref(x: np.ndarray, wshape, k, stride, pad, term) -> np.ndarray:
    n, c, h, w = x.shape
    o = wshape[0]
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    out = np.zeros((n, o, oh, ow), dtype=object)
    for b in range(n):
        for oc in range(o):
            for oy in range(oh):
                for ox in range(ow):
                    acc = 0
                    for ic in range(c):
                        for ky in range(k):
                            for kx in range(k):
                                iy, ix = oy * stride + ky - pad, ox * stride + kx - pad
                                v = int(x[b, ic, iy, ix]) if 0 <= iy < h and 0 <= ix < w else 0
                                acc += term(oc, ic, ky, kx, v)
                    out[b, oc, oy, ox] = acc
    return out


conv_geometry = st.tuples(
    st.integers(1, 3),             # in channels
    st.integers(1, 3),             # out channels
    st.sampled_from([1, 3]),       # kernel
    st.integers(1, 2),             # stride
    st.integers(3, 6),             # height = width
    st.booleans(),                 # padded
)


@settings(max_examples=40, deadline=None)
@given(conv_geometry, st.sampled_from([8, 32]), st.integers(0, 14), st.data())
def test_shift_conv_matches_exact_reference(geom, bits, exp_max, data):
    c, o, k, stride, hw, padded = geom
    pad = k // 2 if padded else 0
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = rng.integers(lo, hi, size=(2, c, hw, hw), endpoint=True)
    x[0, 0, 0, 0] = lo  # the most negative value always appears
    sign = rng.integers(-1, 1, size=(o, c, k, k), endpoint=True).astype(np.int8)
    exp = rng.integers(0, exp_max, size=(o, c, k, k), endpoint=True).astype(np.uint8)
    got = golden.shift_conv(x, sign, exp, exp_max, stride, pad)
    want = conv_ref(x, sign.shape, k, stride, pad,
                    lambda oc, ic, ky, kx, v: int(sign[oc, ic, ky, kx]) * v *
                    2 ** (exp_max - int(exp[oc, ic, ky, kx])))
    assert got.tolist() == want.tolist()


@settings(max_examples=40, deadline=None)
@given(conv_geometry, st.sampled_from([8, 32]), st.data())
def test_adder_conv_matches_exact_reference(geom, bits, data):
    c, o, k, stride, hw, padded = geom
    pad = k // 2 if padded else 0
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = rng.integers(lo, hi, size=(2, c, hw, hw), endpoint=True)
    w = rng.integers(lo, hi, size=(o, c, k, k), endpoint=True)
    x[0, 0, 0, 0], w[0, 0, 0, 0] = lo, hi  # the largest possible |x - w|
    got = golden.adder_conv(x, w, stride, pad)
    want = conv_ref(x, w.shape, k, stride, pad,
                    lambda oc, ic, ky, kx, v: -abs(v - int(w[oc, ic, ky, kx])))
    assert got.tolist() == want.tolist()


def one_op_net(op, in_specs, out_spec):
    tensors = {t.name: t for t in (*in_specs, out_spec)}
    if len(in_specs) == 2:
        # Add needs two produced inputs: produce the second with an identity requant.
        src = in_specs[0]
        first = Requant(name="mk_b", inputs=(src.name,), output=in_specs[1].name,
                        mult=np.ones(src.shape[0], np.int64), bias=np.zeros(src.shape[0], np.int64),
                        shift=0)
        return IntegerNetwork("t", Precision.FIX8, src.name, out_spec.name, tensors, [first, op])
    return IntegerNetwork("t", Precision.FIX8, in_specs[0].name, out_spec.name, tensors, [op])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-(2**30), 2**30), min_size=3, max_size=3),
       st.lists(st.integers(-(2**15), 2**15 - 1), min_size=3, max_size=3),
       st.lists(st.integers(-(2**30), 2**30), min_size=3, max_size=3),
       st.integers(0, 30), st.booleans(), st.sampled_from([8, 32]))
def test_requant_matches_exact_reference(acc, mult, bias, shift, relu, bits):
    x = TensorSpec("x", (3, 1, 1), Format(32, 0))
    y = TensorSpec("y", (3, 1, 1), Format(bits, 0))
    op = Requant(name="r", inputs=("x",), output="y", mult=np.array(mult, np.int64),
                 bias=np.array(bias, np.int64), shift=shift, relu=relu)
    net = one_op_net(op, [x], y)
    xv = np.array(acc, dtype=np.int64).clip(-(2**31), 2**31 - 1).reshape(1, 3, 1, 1)
    got = golden.run(net, xv).ravel().tolist()
    want = []
    for c in range(3):
        v = rshift_round(int(xv.ravel()[c]) * mult[c] + bias[c], shift)
        want.append(saturate(max(v, 0) if relu else v, bits))
    assert got == want


@settings(max_examples=60, deadline=None)
@given(st.integers(-128, 127), st.integers(-128, 127), st.integers(-3, 8), st.integers(-3, 8),
       st.integers(-3, 8), st.booleans())
def test_add_aligns_rounds_saturates(a, b, fa, fb, fy, relu):
    sa = TensorSpec("a", (1, 1, 1), Format(8, fa))
    sb = TensorSpec("b", (1, 1, 1), Format(8, fb))
    sy = TensorSpec("y", (1, 1, 1), Format(8, fy))
    # one_op_net derives 'b' from 'a'; give both operands independent values via run_op.
    net = one_op_net(Add(name="add", inputs=("a", "b"), output="y", relu=relu), [sa, sb], sy)
    env = {"a": np.array([[[[a]]]], np.int64), "b": np.array([[[[b]]]], np.int64)}
    got = int(golden.run_op(net, net.op("add"), env).ravel()[0])
    big = max(fa, fb)
    v = rshift_round(a * 2 ** (big - fa) + b * 2 ** (big - fb), big - fy)
    assert got == saturate(max(v, 0) if relu else v, 8)


@pytest.mark.parametrize("k, side, shift", [(1, 4, 0), (2, 4, 2), (4, 4, 4), (3, 6, 4),
                                            (7, 7, 6)])
def test_avgpool_divides_by_a_power_of_two(k, side, shift):
    """The window's sum, shifted right by ceil(log2(k*k)): the rounded mean when k*k is a
    power of two, else the mean times k*k / 2**shift (3x3: 9/16, 7x7: 49/64)."""
    rng = np.random.default_rng(k)
    x = rng.integers(-128, 127, size=(2, 3, side, side), endpoint=True)
    sx = TensorSpec("x", (3, side, side), Format(8, 5))
    sy = TensorSpec("y", (3, side // k, side // k), Format(8, 5))
    net = one_op_net(AvgPool(name="p", inputs=("x",), output="y", kernel=k), [sx], sy)
    got = golden.run(net, x)
    for n in range(2):
        for c in range(3):
            for i in range(side // k):
                for j in range(side // k):
                    s = int(x[n, c, i * k:(i + 1) * k, j * k:(j + 1) * k].sum())
                    assert got[n, c, i, j] == saturate(rshift_round(s, shift), 8)


def test_run_rejects_bad_inputs():
    sx = TensorSpec("x", (1, 2, 2), Format(8, 0))
    sy = TensorSpec("y", (1, 1, 1), Format(8, 0))
    net = one_op_net(AvgPool(name="p", inputs=("x",), output="y", kernel=2), [sx], sy)
    with pytest.raises(ValueError, match="shape"):
        golden.run(net, np.zeros((1, 2, 2, 2), np.int64))
    with pytest.raises(ValueError, match="dtype"):
        golden.run(net, np.zeros((1, 1, 2, 2), np.float32))
    with pytest.raises(ValueError, match=r"\[-128, 127\]"):
        golden.run(net, np.full((1, 1, 2, 2), 128, np.int64))


def adder_dot_ref(x, w) -> list:
    return [[-sum(abs(int(a) - int(b)) for a, b in zip(xr, wr, strict=True)) for wr in w]
            for xr in x]


def shift_dot_ref(x, sign, shift) -> list:
    return [[sum(int(s) * (int(a) << int(k)) for a, s, k in zip(xr, sr, kr, strict=True))
             for sr, kr in zip(sign, shift, strict=True)] for xr in x]


@pytest.mark.parametrize("diff,terms", [
    (32767, 3), (32768, 3),              # the differences' type: int16 up to 32767, then int32
    (32767, 65538), (2**31, 2),          # the sums' type: int32 up to 2^31 - 1, then int64
    (2**40, 3)])                         # beyond int32: int64 throughout
def test_dot_products_are_exact_at_each_narrower_types_edge(diff, terms):
    """``adder_dot`` and ``shift_dot`` compute in int16/int32 when the values prove every
    intermediate fits; at the edges of each type they equal the definitions in Python ints."""
    rng = np.random.default_rng(diff + terms)
    half = diff // 2
    x = rng.integers(-half, half + 1, (3, terms), dtype=np.int64)
    w = rng.integers(-(diff - half), diff - half + 1, (2, terms), dtype=np.int64)
    x[0, 0], w[0, 0] = -half, diff - half  # the extreme difference, reached
    assert golden.adder_dot(x, w).tolist() == adder_dot_ref(x, w)
    assert golden.narrowest(diff) == (np.int16 if diff < 2**15 else
                                      np.int32 if diff < 2**31 else np.int64)
    sign = rng.integers(-1, 2, (2, terms))
    shift = rng.integers(0, 4, (2, terms))
    assert golden.shift_dot(x, sign, shift).tolist() == shift_dot_ref(x, sign, shift)


def test_dot_products_are_exact_on_random_ranges(seed):
    """Random shapes and magnitudes from 2^2 to 2^40 (every type the dot products pick)."""
    rng = np.random.default_rng(seed)
    for _ in range(200):
        terms, bits = int(rng.integers(1, 40)), int(rng.integers(2, 41))
        x = rng.integers(-(1 << bits), 1 << bits, (int(rng.integers(1, 5)), terms))
        w = rng.integers(-(1 << bits), 1 << bits, (int(rng.integers(1, 4)), terms))
        sign, shift = rng.integers(-1, 2, w.shape), rng.integers(0, 8, w.shape)
        assert golden.adder_dot(x, w).tolist() == adder_dot_ref(x, w)
        assert golden.shift_dot(x, sign, shift).tolist() == shift_dot_ref(x, sign, shift)
