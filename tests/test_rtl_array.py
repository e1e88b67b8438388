"""Tier B: the systolic array core in Verilator under cocotb, bit-exact against the golden model."""

from __future__ import annotations

import pytest

from hw.array import ArrayCore
from hw.config import ArrayConfig, LaneConfig, LaneKind, PEConfig
from sim import rtl

CONFIGS = {
    "adder8_1x1x1": ("adder", 8, 0, 1, 1, 1, 0),
    # name: (kind, data_bits, shift_max, lanes, rows, cols, register_every)
    "adder8_4x3x4": ("adder", 8, 0, 4, 4, 3, 2),
    "adder8_2x2x3": ("adder", 8, 0, 3, 2, 2, 1),  # one AdderPair and an odd lane
    "shift8_3x4x4_k7": ("shift", 8, 7, 4, 3, 4, 1),
    "shift8_2x2x3_k14": ("shift", 8, 14, 3, 2, 2, 0),
    "adder32_2x2x2": ("adder", 32, 0, 2, 2, 2, 1),
}


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("traffic", ["smooth", "idle_backpressure"])
def test_array_core(name, traffic, seed):
    kind, b, smax, lanes, rows, cols, every = CONFIGS[name]
    steps = 5
    lane = LaneConfig(LaneKind(kind), b, smax)
    acc = lane.acc_bits_for(lanes * steps)
    cfg = ArrayConfig(PEConfig(lane, lanes, acc, every), rows, cols)
    build = rtl.build(lambda: ArrayCore(cfg), f"array_{name}",
                      {"cfg": repr(cfg)})
    tb = {"kind": kind, "data_bits": b, "shift_max": smax, "lanes": lanes, "rows": rows,
          "cols": cols, "acc_bits": acc, "steps": steps, "tiles": 6,
          "idle": 0.3 if traffic != "smooth" else 0.0,
          "backpressure": 0.4 if traffic != "smooth" else 0.0}
    rtl.run(build, "sim.tb.array_tb", tb, seed=seed, tests="dot_products")
