"""Sizing from a trained model and a board budget."""

from __future__ import annotations

import pytest

from gen import checkpoint
from gen.cost import CostModel
from gen.evaluate import calibration_batch
from gen.ir import AdderConv, ShiftConv
from gen.nn.data import load_digits_splits
from gen.quantize import quantize
from gen.size import BOARDS, SizingError, shift_range, size


@pytest.fixture(scope="module")
def digits_fix8(quick_digits):
    loaded = checkpoint.load(quick_digits)
    train, _ = load_digits_splits()
    return quantize(loaded.model, calibration_batch(train, loaded.normalization), "fix8",
                    loaded.normalization)


def test_widths_come_from_the_trained_model(digits_fix8):
    net = digits_fix8
    spread = max(op.exp_max - int(op.exp[op.sign != 0].min())
                 for op in net.ops if isinstance(op, ShiftConv) and (op.sign != 0).any())
    assert shift_range(net) == spread
    plan = size(net, BOARDS["zc706"])
    sh, ad = plan.arrays["shift"], plan.arrays["adder"]
    assert sh.pe.lane.shift_max == spread and sh.pe.lane.data_bits == 8
    assert ad.pe.acc_bits >= max(net.tensors[o.output].fmt.bits for o in net.ops
                                 if isinstance(o, AdderConv))


def test_plan_fits_the_budget_and_overrides_hold(digits_fix8):
    model = CostModel.load()
    board = BOARDS["zc706"]
    plan = size(digits_fix8, board, lut_share=0.05, rows=4, lanes=8)
    assert plan.luts <= 0.05 * board.luts
    assert sum(model.array(c).lut for c in plan.arrays.values()) == pytest.approx(plan.luts)
    for c in plan.arrays.values():
        assert c.rows == 4 and c.pe.lanes == 8
    assert all(0 < layer["utilization"] <= 1 for layer in plan.layers)


def test_impossible_budgets_are_clear_errors(digits_fix8):
    with pytest.raises(SizingError, match="no array pair fits"):
        size(digits_fix8, BOARDS["zc706"], lut_share=0.0005)
    with pytest.raises(SizingError, match="below the network's trained range"):
        size(digits_fix8, BOARDS["zc706"], shift_max=0)
