"""The requantizer (post-processing) in Verilator, bit-exact against the golden model."""

from __future__ import annotations

import pytest

from hw.ppu import (
    AddConfig,
    AvgPooler,
    PoolConfig,
    RequantConfig,
    Requantizer,
    ResidualAdder,
)
from sim import rtl


@pytest.mark.parametrize("acc_bits,bias_bits,out_bits", [(26, 40, 8), (44, 48, 32)])
def test_requantizer(acc_bits, bias_bits, out_bits, seed):
    cfg = RequantConfig(acc_bits, bias_bits, out_bits)
    build = rtl.build(lambda: Requantizer(cfg), "requant", {"cfg": repr(cfg)})
    shifts = [0, 1, 2, 7, 15, 23, 31, 47, 62]
    rtl.run(build, "sim.tb.ppu_tb", {"acc_bits": acc_bits, "bias_bits": bias_bits,
                                     "out_bits": out_bits, "shifts": shifts}, seed=seed, tests="requant")


@pytest.mark.parametrize("in_bits,out_bits", [(8, 8), (32, 32)])
def test_residual_adder(in_bits, out_bits, seed):
    cfg = AddConfig(in_bits, out_bits, 12)
    build = rtl.build(lambda: ResidualAdder(cfg), "residual_add", {"cfg": repr(cfg)})
    fracs = [(4, 4, 4), (3, 6, 5), (6, 2, 2), (5, 5, 3), (2, 7, 7), (7, 0, 4)]
    rtl.run(build, "sim.tb.ppu_tb", {"in_bits": in_bits, "out_bits": out_bits,
                                     "fracs": fracs}, seed=seed, tests="residual_add")


@pytest.mark.parametrize("bits,kernel", [(8, 4), (8, 8), (32, 2)])
def test_avg_pooler(bits, kernel, seed):
    cfg = PoolConfig(bits, kernel * kernel)
    build = rtl.build(lambda: AvgPooler(cfg), "avgpool", {"cfg": repr(cfg)})
    # fy < fx only within what the output can still hold: the golden rule saturates the rest
    fracs = [(5, 5), (5, 4), (3, 5), (6, 2)]
    rtl.run(build, "sim.tb.ppu_tb", {"bits": bits, "kernel": kernel, "fracs": fracs}, seed=seed,
            tests="avgpool")
