"""The requantizer (post-processing) in Verilator, bit-exact against the golden model."""

from __future__ import annotations

import pytest

from hw.ppu import RequantConfig, Requantizer
from sim import rtl


@pytest.mark.parametrize("acc_bits,bias_bits,out_bits", [(26, 40, 8), (44, 48, 32)])
def test_requantizer(acc_bits, bias_bits, out_bits, seed):
    cfg = RequantConfig(acc_bits, bias_bits, out_bits)
    build = rtl.build(lambda: Requantizer(cfg), "requant", {"cfg": repr(cfg)})
    shifts = [0, 1, 2, 7, 15, 23, 31, 47, 62]
    rtl.run(build, "sim.tb.ppu_tb", {"acc_bits": acc_bits, "bias_bits": bias_bits,
                                     "out_bits": out_bits, "shifts": shifts}, seed=seed)
