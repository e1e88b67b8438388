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


def _config(name: str, traffic: str, steps: int = 5) -> tuple[ArrayConfig, dict]:
    """The array of ``CONFIGS[name]`` and its testbench's parameters."""
    kind, b, smax, lanes, rows, cols, every = CONFIGS[name]
    lane = LaneConfig(LaneKind(kind), b, smax)
    acc = lane.acc_bits_for(lanes * steps)
    cfg = ArrayConfig(PEConfig(lane, lanes, acc, every), rows, cols)
    tb = {"kind": kind, "data_bits": b, "shift_max": smax, "lanes": lanes, "rows": rows,
          "cols": cols, "acc_bits": acc, "steps": steps, "tiles": 6,
          "idle": 0.3 if traffic != "smooth" else 0.0,
          "backpressure": 0.4 if traffic != "smooth" else 0.0}
    return cfg, tb


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("traffic", ["smooth", "idle_backpressure"])
def test_array_core(name, traffic, seed):
    cfg, tb = _config(name, traffic)
    build = rtl.build(lambda: ArrayCore(cfg), f"array_{name}", {"cfg": repr(cfg)})
    rtl.run(build, "sim.tb.array_tb", tb, seed=seed, tests="dot_products")


def test_array_core_flattened_by_yosys_is_bit_exact(seed):
    """Designs of thousands of modules are simulated from Yosys' netlist with lanes and trees
    flattened into their PEs (``rtl.FLATTEN_ABOVE_MODULES``); no design the tests build is that
    large, so one array is built that way here and checked like the others."""
    cfg, tb = _config("shift8_3x4x4_k7", "idle_backpressure")
    build = rtl.build(lambda: ArrayCore(cfg), "array_flat", {"cfg": repr(cfg)}, flatten=True)
    flat = (build.directory / f"{rtl.TOP}_sim.v").read_text()
    modules = build.verilog.read_text().count("\nmodule ")
    assert flat.count("\nmodule ") == cfg.rows * cfg.cols + 1 < modules  # the PEs and the top
    rtl.run(build, "sim.tb.array_tb", tb, seed=seed, tests="dot_products")
