"""Sizing from a trained model and a board budget (``gen.generate.size_engine``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gen import checkpoint
from gen.compile import (
    CompileError,
    Geometry,
    compile_network,
    engine_config,
    engine_requants,
    fuse,
    requant_window,
    schedule,
    shift_room,
)
from gen.cost import CostModel
from gen.cycles import program_cycles
from gen.evaluate import calibration_batch
from gen.generate import design_for, pe_configs, shift_lane_bits, size_engine
from gen.ir import AdderConv, Requant, ShiftConv
from gen.nn.data import load_digits_splits
from gen.numerics import rshift_round
from gen.quantize import quantize
from gen.size import BOARDS, LUT_BUDGET_SHARE, SizingError, shift_range
from hw.program import MemoryId


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
    cfg = size_engine(net, BOARDS["zc706"]).cfg
    assert cfg.shift.lane.shift_max == spread and cfg.shift.lane.data_bits == 8
    assert cfg.adder.acc_bits >= max(net.tensors[o.output].fmt.bits for o in net.ops
                                     if isinstance(o, AdderConv))


def test_the_fastest_geometry_that_fits_is_chosen(digits_fix8):
    board, model = BOARDS["zc706"], CostModel.load()
    budget = 0.2 * board.luts
    best = size_engine(digits_fix8, board, lut_budget=budget, lanes=8)
    assert best.luts_total <= budget and sum(best.bram36.values()) <= board.bram36
    assert best.cfg.lanes == 8
    # every other geometry with 8 lanes is slower, or over the budget
    for r in range(2, 33):
        for c in (8, 16, 32):
            d = design_for(digits_fix8, Geometry(r, c, 8), model, weights=False)
            assert d.cycles >= best.cycles or d.luts_total > budget, (r, c)
    # the chosen design carries the packed weights; the sizing pass only counted them
    counted = design_for(digits_fix8, Geometry(best.cfg.rows, best.cfg.cols, 8), model,
                         weights=False)
    for mem, words in best.program.memories.items():
        assert len(words) == len(counted.program.memories[mem]), mem
    for mem in (MemoryId.SHIFT_WEIGHTS, MemoryId.ADDER_WEIGHTS):
        assert any(best.program.memories[mem]) and not any(counted.program.memories[mem])
    assert best.cfg == counted.cfg and best.cycles == counted.cycles


def test_a_throughput_target_gets_the_smallest_design_that_reaches_it(digits_fix8):
    """``images_per_s``: of the geometries that fit, the one with the fewest LUTs whose
    cycle model reaches the target at the clock; a target beyond the fastest is a clear
    error that names it."""
    from gen.generate import COLS, ROWS
    from gen.size import DEFAULT_CLOCK_MHZ as MHZ

    board, model = BOARDS["zc706"], CostModel.load()
    fastest = size_engine(digits_fix8, board, lanes=8)
    target = 0.25 * MHZ * 1e6 / fastest.cycles
    small = size_engine(digits_fix8, board, lanes=8, images_per_s=target)
    assert MHZ * 1e6 / small.cycles >= target and small.luts_total < fastest.luts_total / 2
    budget = f"within {LUT_BUDGET_SHARE * board.luts:.0f} LUTs and {board.bram36} BRAM36 of " \
             f"{board.name}"
    assert fastest.sizing == f"the fastest geometry {budget}"
    assert small.sizing == f"the smallest (fewest LUTs) geometry {budget} that reaches " \
                           f"{target:.10g} images/s at {MHZ:g} MHz"
    for r in ROWS:
        for c in COLS:
            d = design_for(digits_fix8, Geometry(r, c, 8), model, weights=False)
            assert d.cycles > MHZ * 1e6 / target or d.luts_total >= small.luts_total, (r, c)
    # at half the clock the same target needs twice the rate per cycle: a larger design
    slow = size_engine(digits_fix8, board, lanes=8, images_per_s=target, clock_mhz=MHZ / 2)
    assert MHZ / 2 * 1e6 / slow.cycles >= target and slow.luts_total > small.luts_total
    with pytest.raises(SizingError, match=rf"reaches 1000000 images/s at {MHZ:g} MHz; the "
                       rf"fastest, {fastest.cfg.rows}x{fastest.cfg.cols}x8, takes "
                       rf"{fastest.cycles} cycles"):
        size_engine(digits_fix8, board, lanes=8, images_per_s=1e6)
    with pytest.raises(SizingError, match="images_per_s must be a positive number"):
        size_engine(digits_fix8, board, images_per_s=0)

def test_overrides_hold_and_impossible_budgets_are_clear_errors(digits_fix8):
    d = size_engine(digits_fix8, BOARDS["zc706"], rows=5, cols=16, lanes=8)
    assert (d.cfg.rows, d.cfg.cols, d.cfg.lanes) == (5, 16, 8)
    assert d.sizing.startswith("the geometry asked for (within ")
    with pytest.raises(SizingError, match="no engine geometry fits 1000 LUTs"):
        size_engine(digits_fix8, BOARDS["zc706"], lut_budget=1000)


def test_block_ram_count_takes_the_best_aspect_ratio():
    """A memory occupies whole block RAMs of one aspect ratio: its bits alone undercount wide,
    shallow memories (a 578-bit program word of 16 descriptors is 8.5 BRAM36, not 1). The
    digits engine at 4x16x8 comes to 35.5 BRAM36 without program and parameters, as Yosys
    maps it (BENCHMARKS.md)."""
    from gen.cost import bram36_blocks

    assert bram36_blocks(0, 100) == 0
    assert bram36_blocks(1, 32768) == 1 and bram36_blocks(1, 32769) == 1.5  # + a RAMB18
    assert bram36_blocks(72, 512) == 1 and bram36_blocks(36, 512) == 0.5
    assert bram36_blocks(578, 16) == 8.5          # 17 RAMB18 of 512 x 36
    assert bram36_blocks(128, 192) == 2           # 4 RAMB18 of 512 x 36
    assert bram36_blocks(2048, 1100) == 85.5      # RAMB18 of 512 x 36: 3 deep x 57 wide


def test_requants_get_one_narrow_shift_range_exactly(digits_fix8):
    """The engine's form of every requant equals the golden one, and the shifts the
    requantizer must span shrink to what the multipliers allow (digits: a single shift)."""
    assert shift_room([2**15 - 1, -3], 18) == (18, 20)   # 18-bit engine multipliers
    assert shift_room([1], 9) == (9, 9 + 16)
    assert shift_room([0, 0], 62) == (0, 62)
    net = digits_fix8
    ops = {op.name: op for op in net.ops if isinstance(op, Requant)}
    golden_shifts = {op.shift for op in ops.values()}
    eng = engine_requants(net)
    bottom, top = requant_window([net])
    assert {s for _, _, s in eng.values()} <= set(range(bottom, top + 1))
    assert top - bottom < max(golden_shifts) - min(golden_shifts)
    acc = np.random.default_rng(0).integers(-(2**20), 2**20, 64)
    for name, (m, b, s) in eng.items():
        op = ops[name]
        for c in range(len(m)):
            assert [(int(a) * int(m[c]) + int(b[c])) >> s for a in acc] == \
                [rshift_round(int(a) * int(op.mult[c]) + int(op.bias[c]), op.shift) for a in acc]
    with pytest.raises(CompileError, match="can be given the shifts"):
        engine_requants(net, (top + 30, top + 30))


def test_the_short_branch_may_run_first_and_the_faster_order_is_kept(digits_fix8):
    net = digits_fix8
    order = schedule(net, short_branches_first=True)
    names = [op.name for op in order]
    assert sorted(names) == sorted(op.name for op in net.ops)
    done = {net.input}
    for op in order:  # a topological order: the golden model's results are the same
        assert all(t in done for t in op.inputs), op.name
        done.add(op.output)
    assert names.index("layer2.0.downsample.0") < names.index("layer2.0.conv1.0")
    assert [op.name for op in schedule(net)] == [op.name for op in net.ops]
    # the add then fuses into the long branch's last conv, the downsample being its residual
    fused = next(s for s in fuse(net, True) if s.node is not None and s.node.name == "layer2.0.add")
    assert fused.conv.name.startswith("layer2.0.conv2")
    geo = Geometry(4, 16, 8)
    pes = pe_configs(net, geo.lanes)
    cycles = []
    for first in (False, True):
        prog = compile_network(net, geo, shift_lane_bits=shift_lane_bits(pes),
                               data_bits=8, short_branches_first=first, weights=False)
        cycles.append(program_cycles(prog.descriptors, engine_config(net, geo, prog, **pes)))
    assert cycles[0] != cycles[1]  # the choice matters here
    assert design_for(net, geo, CostModel.load(), weights=False).cycles == min(cycles)


def test_lut_ram_is_part_of_the_engine_config_and_priced(digits_fix8):
    """Memories moved to LUT RAM leave the block RAM count, join the LUTs at the LUT RAM
    model's price, travel in the manifest's engine config, and only shallow ones may move."""
    import dataclasses

    from gen.cost import lutram_luts
    from hw.engine import EngineConfig

    model = CostModel.load()
    plain = design_for(digits_fix8, Geometry(2, 8, 8), model)
    d = design_for(digits_fix8, Geometry(2, 8, 8), model, lutram=("program", "params"))
    assert plain.cfg.lutram == () and "lutram" not in plain.luts
    w, depth = d.cfg.stored_widths(), d.cfg.memory_depths()
    assert d.bram36["program"] == d.bram36["params"] == 0 < plain.bram36["program"]
    assert d.luts["lutram"] == lutram_luts(w[MemoryId.PROGRAM], depth[MemoryId.PROGRAM]) + \
        len(d.cfg.arrays) * lutram_luts(w[MemoryId.PARAMS], depth[MemoryId.PARAMS])
    assert EngineConfig.from_json(d.cfg.to_json()) == d.cfg
    old = d.cfg.to_json()
    del old["lutram"]  # a manifest from before the field: every memory in block RAM
    assert EngineConfig.from_json(old).lutram == ()
    for bad in (("adder_weights",), ("program", "program"), ["program"], None):
        with pytest.raises(ValueError, match="lutram must be a tuple of distinct names"):
            dataclasses.replace(d.cfg, lutram=bad)


def test_a_board_short_of_block_ram_is_told_what_needs_it(digits_fix8):
    from gen.size import Board

    # digits FIX8: 17 BRAM36 at least, 12 of them weights
    short = Board("short", 218_600, 437_200, 900, 15, 250.0)
    with pytest.raises(SizingError, match=r"the least block RAM any of them needs is [\d.]+ "
                                          r"BRAM36, at \d+x\d+x\d+: activations [\d.]+, ") as e:
        size_engine(digits_fix8, short)
    assert "Its weights alone" not in str(e.value)
    # as ResNet-110 on the ZC706 (681 BRAM36, 630 of them weights)
    with pytest.raises(SizingError, match=r"Its weights alone take 12\.0 BRAM36: every weight "
                                          r"stays on chip \(shiftadd does not stream weights\)"):
        size_engine(digits_fix8, dataclasses.replace(short, bram36=10))


def test_weights_too_wide_for_a_geometry_asked_for_name_the_geometry(digits_fix8):
    """Digits' weights fit the ZC706 many times over, but padded into words of 64 x 64 they do
    not: the message blames the --cols/--lanes asked for, not the model."""
    from gen.size import BOARDS

    with pytest.raises(SizingError, match=r"Its weights alone take [\d.]+ BRAM36: a weight word "
                                          r"holds cols x lanes weights, so the --cols/--lanes "
                                          r"asked for pad") as e:
        size_engine(digits_fix8, BOARDS["zc706"], cols=64, lanes=64)
    assert "fewer parameters" not in str(e.value)
