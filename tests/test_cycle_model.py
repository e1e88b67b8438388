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


def test_write_width_what_if_is_the_model_at_one_word(monkeypatch):
    """``benchmarks/write_width.py`` asks the engine's cycle model what a write path P words wide
    would give: at one word it is the model ``shiftadd gen`` sizes with, at R words the 1x1
    downsample conv (J = 16: one step per tile) is no longer bound by its writes, and the model
    is itself again afterwards."""
    import sys
    from pathlib import Path

    import gen.cycles
    from gen.compile import Geometry
    from gen.cost import CostModel
    from gen.generate import design_for
    from gen.size import BOARDS

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    sys.modules.pop("write_width", None)
    from write_width import evaluate, resnet20

    net, model, geo = resnet20(), CostModel.load(), Geometry(10, 16, 16)
    d = design_for(net, geo, model, weights=False)
    one = evaluate(net, geo, 1, model, BOARDS["zc706"])
    assert one["cycles"] == d.cycles
    assert one["lut_share"] == round(d.luts_total / BOARDS["zc706"].luts, 4)
    wide = evaluate(net, geo, 10, model, BOARDS["zc706"])
    ds = "layer2.0.downsample.0"
    assert one["utilization"][ds] < 0.15 < 0.85 < wide["utilization"][ds]
    assert wide["cycles"] < one["cycles"] and wide["lut_share"] > one["lut_share"]
    assert wide["bram36"] > one["bram36"]
    assert gen.cycles.drain_cycles(d.cfg) == 10
