"""The post-processing units in Verilator, bit-exact against the golden model."""

from __future__ import annotations

import pytest

from gen.numerics import pool_shift
from hw.ppu import (
    AddConfig,
    AvgPooler,
    PoolConfig,
    RequantConfig,
    Requantizer,
    ResidualAdder,
)
from sim import rtl


# the engine's shifts (each needs a bias at least one bit wider: its rounding constant)
@pytest.mark.parametrize("acc_bits,bias_bits,out_bits,shifts", [
    (26, 40, 8, [0, 1, 2, 7, 15, 23, 31, 39]),
    (44, 48, 32, [0, 1, 2, 7, 15, 23, 31, 47]),
    # a range narrowed to a network's shifts: 6 low bits dropped, a 0..16 shifter
    (20, 24, 8, [6, 7, 8, 13, 21, 22]),
    (20, 24, 8, [1, 2, 9]),
    (21, 31, 8, [20, 21, 22]),  # ResNet-20 FIX8's
    (21, 29, 8, [19]),  # digits': no shifter
])
def test_requantizer(acc_bits, bias_bits, out_bits, shifts, seed):
    cfg = RequantConfig(acc_bits, bias_bits, out_bits, min(shifts), max(shifts))
    build = rtl.build(lambda: Requantizer(cfg), "requant", {"cfg": repr(cfg)})
    rtl.run(build, "sim.tb.ppu_tb", {"acc_bits": acc_bits, "bias_bits": bias_bits,
                                     "out_bits": out_bits, "shifts": shifts}, seed=seed, tests="requant")


@pytest.mark.parametrize("in_bits,out_bits", [(8, 8), (32, 32)])
def test_residual_adder(in_bits, out_bits, seed):
    cfg = AddConfig(in_bits, out_bits, 7)  # the largest shift the cases below need
    build = rtl.build(lambda: ResidualAdder(cfg), "residual_add", {"cfg": repr(cfg)})
    fracs = [(4, 4, 4), (3, 6, 5), (6, 2, 2), (5, 5, 3), (2, 7, 7), (7, 0, 4)]
    rtl.run(build, "sim.tb.ppu_tb", {"in_bits": in_bits, "out_bits": out_bits,
                                     "fracs": fracs}, seed=seed, tests="residual_add")


@pytest.mark.parametrize("bits,kernel,sized,inputs,groups", [
    (8, 4, False, 1, 1), (8, 8, True, 1, 1), (32, 2, False, 1, 1),
    (8, 8, True, 4, 1),   # four window positions a transfer (the engine's AVGPOOL at 4+ rows)
    (32, 4, False, 2, 1),
    (8, 8, True, 1, 4),   # four windows interleaved (a conv's pool: ResNet-20's 64 channels)
    (32, 2, False, 1, 3),
    (8, 7, True, 2, 2),   # a 7x7 window: its sum divided by 64 (docs/NUMERICS.md)
])
def test_avg_pooler(bits, kernel, sized, inputs, groups, seed):
    # fy < fx only within what the output can still hold: the golden rule saturates the rest
    fracs = [(5, 5), (5, 4), (3, 5), (6, 2)]
    # sized: the shifter only as wide as these cases need
    need = max(pool_shift(kernel, fx, fy) for fx, fy in fracs)
    cfg = PoolConfig(bits, kernel * kernel, need if sized else 62, inputs, groups)
    build = rtl.build(lambda: AvgPooler(cfg), "avgpool", {"cfg": repr(cfg)})
    rtl.run(build, "sim.tb.ppu_tb", {"bits": bits, "kernel": kernel, "fracs": fracs,
                                     "inputs": inputs, "groups": groups}, seed=seed,
            tests="avgpool")
