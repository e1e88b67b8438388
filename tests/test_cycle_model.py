"""The array-core cycle model against Verilator: cycles from the first step to the last result."""

from __future__ import annotations

import json

import pytest

from gen.cycles import schedule_cycles
from hw.array import ArrayCore
from hw.config import ArrayConfig, LaneConfig, LaneKind, PEConfig
from sim import rtl


@pytest.mark.xdist_group("cycle-model-rtl")  # one build: one pytest-xdist worker
@pytest.mark.parametrize("tile_steps", [[6, 6, 6, 6], [2, 2, 2, 2, 2], [1, 7, 3, 9, 4, 4]])
def test_cycle_model_matches_rtl(tile_steps, seed):
    lane = LaneConfig(LaneKind.ADDER, 8)
    cfg = ArrayConfig(PEConfig(lane, 4, 20, 2), 4, 3)
    build = rtl.build(lambda: ArrayCore(cfg), "cycles_adder_4x3x4", {"cfg": repr(cfg)})
    tb = {"kind": "adder", "data_bits": 8, "shift_max": 0, "lanes": 4, "rows": 4, "cols": 3,
          "acc_bits": 20, "steps": 1, "tiles": 1, "tile_steps": tile_steps}
    run_dir = rtl.run(build, "sim.tb.array_tb", tb, seed=seed, tests="schedule")
    measured = int(json.loads((run_dir / "schedule.json").read_text())["cycles"])
    assert measured == schedule_cycles(tile_steps, cfg)  # exact, not just within 2 %
