"""The golden model: executes an :class:`~gen.ir.IntegerNetwork` with integer arithmetic only.

This is the reference every piece of hardware is compared against, by exact equality. All values
are ``numpy.int64``; :meth:`gen.ir.IntegerNetwork.bounds` has proven (at construction) that no
intermediate value of any op exceeds 63 bits, so ``int64`` here is exact. The dot products
compute in a narrower integer type when the values at hand prove it holds every intermediate
(:func:`narrowest`): the same integers, faster. Every rounding and
saturation rule is a call into :mod:`gen.numerics`.
"""

from __future__ import annotations

import numpy as np

from gen.ir import Add, AdderConv, AvgPool, IntegerNetwork, Op, Requant, ShiftConv
from gen.numerics import pool_shift, rshift_round_array, saturate_array

__all__ = ["run", "check_input", "run_op", "im2col", "shift_conv", "adder_conv", "shift_dot", "adder_dot",
           "narrowest"]


def im2col(x: np.ndarray, k: int, stride: int, padding: int) -> np.ndarray:
    """``x[N, C, H, W]`` -> ``[N, C*k*k, OH*OW]`` with zero padding (index order c, ky, kx)."""
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    oh = (h + 2 * padding - k) // stride + 1
    ow = (w + 2 * padding - k) // stride + 1
    cols = np.empty((n, c, k, k, oh, ow), dtype=np.int64)
    for ky in range(k):
        for kx in range(k):
            cols[:, :, ky, kx] = xp[:, :, ky:ky + stride * oh:stride, kx:kx + stride * ow:stride]
    return cols.reshape(n, c * k * k, oh * ow)


def magnitude(a: np.ndarray) -> int:
    """The largest ``|v|`` in ``a``, as a Python int (0 for an empty array)."""
    return max(-int(a.min()), int(a.max())) if a.size else 0


def narrowest(bound: int) -> type:
    """The narrowest of int16, int32 and int64 that holds every value of magnitude
    ``<= bound``. The dot products below compute in it: the same integers, fewer bytes to move
    (the adder convs 2-8x faster in int16 than in int64)."""
    for dt in (np.int16, np.int32, np.int64):
        if bound <= np.iinfo(dt).max:
            return dt
    raise OverflowError(f"{bound} does not fit 64 bits")


def shift_dot(x: np.ndarray, sign: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``y[p, o] = sum_j sign[o, j] * (x[p, j] << shift[o, j])``: the shift-conv dot product
    with each term aligned to the accumulator (``shift = exp_max - exp``). Computed in the
    narrowest type that holds every partial sum (``J * max|x| * max|w|``), returned as int64."""
    x = np.asarray(x, dtype=np.int64)
    wint = sign.astype(np.int64) << shift.astype(np.int64)
    dt = narrowest(max(x.shape[-1], 1) * magnitude(x) * magnitude(wint))
    return np.einsum("pj,oj->po", x.astype(dt), wint.astype(dt),
                     optimize=False).astype(np.int64)


def adder_dot(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``y[p, o] = -sum_j |x[p, j] - w[o, j]|``: the adder-conv dot product. The differences
    are computed in the narrowest type that holds ``max|x| + max|w|``, the sums in the one that
    holds ``J`` times that; the result is int64."""
    x = np.asarray(x, dtype=np.int64)
    w = np.asarray(w, dtype=np.int64)
    diff = magnitude(x) + magnitude(w)
    xs, ws = x.astype(narrowest(diff)), w.astype(narrowest(diff))
    total = narrowest(max(x.shape[-1], 1) * diff)
    y = np.empty((x.shape[0], w.shape[0]), dtype=np.int64)
    for o in range(w.shape[0]):  # one output channel at a time keeps the temporary at [P, J]
        y[:, o] = -np.abs(xs - ws[o][None, :]).sum(axis=1, dtype=total)
    return y


def _conv(x: np.ndarray, k: int, stride: int, padding: int, out_channels: int, dot) -> np.ndarray:
    n, _, h, w = x.shape
    cols = im2col(x, k, stride, padding)  # [n, J, P]
    oh = (h + 2 * padding - k) // stride + 1
    acc = np.stack([dot(cols[b].T).T for b in range(n)])  # [n, O, P]
    return acc.reshape(n, out_channels, oh, -1)


def shift_conv(x: np.ndarray, sign: np.ndarray, exp: np.ndarray, exp_max: int, stride: int,
               padding: int) -> np.ndarray:
    """``acc[n, o, p] = sum_j sign[o, j] * (x[n, j, p] << (exp_max - exp[o, j]))``."""
    o, _, k, _ = sign.shape
    sg = sign.reshape(o, -1)
    sh = exp_max - exp.reshape(o, -1).astype(np.int64)
    return _conv(x, k, stride, padding, o, lambda cols: shift_dot(cols, sg, sh))


def adder_conv(x: np.ndarray, weight: np.ndarray, stride: int, padding: int) -> np.ndarray:
    """``acc[n, o, p] = -sum_j |x[n, j, p] - w[o, j]|`` (padded positions have ``x = 0``)."""
    o, _, k, _ = weight.shape
    wf = weight.reshape(o, -1)
    return _conv(x, k, stride, padding, o, lambda cols: adder_dot(cols, wf))


def run_op(net: IntegerNetwork, op: Op, env: dict[str, np.ndarray]) -> np.ndarray:
    """Execute one op on the tensors in ``env`` (``[N, C, H, W]`` int64) and return its output."""
    out_fmt = net.tensors[op.output].fmt
    x = env[op.inputs[0]]
    if isinstance(op, ShiftConv):
        return shift_conv(x, op.sign, op.exp, op.exp_max, op.stride, op.padding)
    if isinstance(op, AdderConv):
        return adder_conv(x, op.weight, op.stride, op.padding)
    if isinstance(op, Requant):
        v = x * op.mult.astype(np.int64)[None, :, None, None] + \
            op.bias.astype(np.int64)[None, :, None, None]
        v = rshift_round_array(v, op.shift)
        if op.relu:
            v = np.maximum(v, 0)
        return saturate_array(v, out_fmt.bits)
    if isinstance(op, Add):
        fa, fb = (net.tensors[t].fmt.frac for t in op.inputs)
        big = max(fa, fb)
        v = (x << (big - fa)) + (env[op.inputs[1]] << (big - fb))
        v = rshift_round_array(v, big - out_fmt.frac)
        if op.relu:
            v = np.maximum(v, 0)
        return saturate_array(v, out_fmt.bits)
    if isinstance(op, AvgPool):
        k = op.kernel
        n, c, h, w = x.shape
        s = x.reshape(n, c, h // k, k, w // k, k).sum(axis=(3, 5))
        shift = pool_shift(k, net.tensors[op.inputs[0]].fmt.frac, out_fmt.frac)
        return saturate_array(rshift_round_array(s, shift), out_fmt.bits)
    raise TypeError(f"unknown op {op!r}")


def check_input(net: IntegerNetwork, x: np.ndarray) -> np.ndarray:
    """``x`` as the network's input: ``[N, C, H, W]`` (or one ``[C, H, W]``) integers in the
    input tensor's format, as int64; ``ValueError`` for a wrong shape, a non-integer dtype or
    out-of-range values."""
    spec = net.tensors[net.input]
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or tuple(x.shape[1:]) != spec.shape:
        raise ValueError(f"input must have shape [N, {', '.join(map(str, spec.shape))}], "
                         f"not {list(x.shape)}")
    if not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"input must be integers in {spec.fmt}, not dtype {x.dtype}; "
                         "quantize with gen.numerics.quantize_real first")
    x = x.astype(np.int64)
    if x.size and (x.min() < spec.fmt.lo or x.max() > spec.fmt.hi):
        raise ValueError(f"input values must lie in [{spec.fmt.lo}, {spec.fmt.hi}]")
    return x


def run(net: IntegerNetwork, x: np.ndarray, *, keep: bool = False
        ) -> np.ndarray | dict[str, np.ndarray]:
    """Run the network on integer inputs ``x[N, C, H, W]`` in the input tensor's format.

    Returns the output tensor ``[N, C, H, W]`` (int64), or with ``keep=True`` every tensor.
    Raises ``ValueError`` for a wrong shape, a non-integer dtype or out-of-range values.
    """
    env = {net.input: check_input(net, x)}
    # without keep, each tensor goes after its last reader: a ResNet-110 batch holds a few
    # tensors instead of all of them (about 4.6 GB for 128 FIX32 images)
    last = {t: i for i, op in enumerate(net.ops) for t in op.inputs}
    for i, op in enumerate(net.ops):
        env[op.output] = run_op(net, op, env)
        if not keep:
            for t in op.inputs:
                if last[t] == i and t != net.output:
                    env.pop(t, None)
    return env if keep else env[net.output]
