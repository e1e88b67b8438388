"""The calibrated cost model against a fresh synthesis of an array outside its calibration set."""

from __future__ import annotations

import pytest

from gen.cost import CostModel
from gen.synth import synthesize_component
from hw.array import ArrayCore
from hw.config import ArrayConfig, LaneConfig, LaneKind, PEConfig


@pytest.mark.slow
@pytest.mark.parametrize("kind,k,v,rows,cols", [("shift", 5, 8, 2, 3), ("adder", 0, 6, 3, 3)])
def test_cost_model_within_10_percent(kind, k, v, rows, cols):
    lane = LaneConfig(LaneKind(kind), 8, k)
    cfg = ArrayConfig(PEConfig(lane, v, 22 if kind == "adder" else 28, 2), rows, cols)
    est = CostModel.load().array(cfg)
    real = synthesize_component(ArrayCore(cfg))
    assert real.dsp == 0, "the compute array must not use DSPs"
    assert abs(est.lut - real.lut) <= 0.10 * real.lut, (est, real)
    assert abs(est.ff - real.ff) <= 0.10 * real.ff, (est, real)
