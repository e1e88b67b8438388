"""ShiftPair testbench: every pair of shift weights (sign in {-1, 0, +1} x every shift amount,
for both lanes) against extreme activations, then random ones; ``y + neg`` must equal the golden
model's two-term shift dot product exactly."""

from __future__ import annotations

import itertools

import cocotb
import numpy as np
from cocotb.triggers import Timer

from sim import golden
from sim.pack import shift_weight
from sim.tb.common import seeded, tb_config


def _signed(v: int, bits: int) -> int:
    return v - (1 << bits) if v >> (bits - 1) else v


@cocotb.test()
async def every_weight_pair(dut) -> None:
    cfg = tb_config()
    _, rng = seeded(dut)
    for i, (b, smax, n_extremes) in enumerate(cfg["configs"]):
        n = await check_pair(dut, i, b, smax, n_extremes, cfg["random"], rng)
        dut._log.info("pair %d (B=%d, shift 0..%d): %d cases, all exact", i, b, smax, n)


async def check_pair(dut, i: int, b: int, smax: int, n_extremes: int, n_random: int,
                     rng) -> int:
    x_port, w_port = getattr(dut, f"x{i}"), getattr(dut, f"w{i}")
    y_port, neg_port = getattr(dut, f"y{i}"), getattr(dut, f"neg{i}")
    wbits = 2 + smax.bit_length()
    out_bits = b + smax + 1
    lo, hi = -(1 << (b - 1)), (1 << (b - 1)) - 1
    extremes = [lo, hi, -1, 0, 1, lo + 1][:n_extremes]
    weights = [(s, k) for s in (-1, 0, 1) for k in range(smax + 1)]
    cases = [(xs, ws) for ws in itertools.product(weights, repeat=2)
             for xs in itertools.product(extremes, repeat=2)]
    for _ in range(n_random):
        xs = tuple(int(v) for v in rng.integers(lo, hi, size=2, endpoint=True))
        ws = tuple(weights[int(i)] for i in rng.integers(0, len(weights), size=2))
        cases.append((xs, ws))
    mask = (1 << b) - 1
    for n, (xs, ws) in enumerate(cases):
        x_port.value = (xs[0] & mask) | ((xs[1] & mask) << b)
        codes = [int(shift_weight(s, k)) for s, k in ws]
        w_port.value = codes[0] | (codes[1] << wbits)
        await Timer(1, unit="ns")
        got = _signed(int(y_port.value), out_bits) + int(neg_port.value)
        want = int(golden.shift_dot(np.array([xs]), np.array([[s for s, _ in ws]]),
                                    np.array([[k for _, k in ws]]))[0, 0])
        assert got == want, (f"pair {i} (B={b}, shift 0..{smax}) case {n}: x={xs} "
                             f"(sign, shift)={ws}: got {got}, want {want}")
    return len(cases)
