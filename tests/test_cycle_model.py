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


@pytest.mark.xdist_group("cycle-model-rtl-2")
@pytest.mark.parametrize("tile_steps", [[9, 1, 9, 1, 9, 1], [6, 6, 6, 6], [1, 1, 1, 1, 1],
                                        [1, 7, 3, 9, 4, 4], [2, 9, 1, 1, 12, 3, 1]])
def test_cycle_model_with_two_drain_slots_matches_rtl(tile_steps, seed):
    """Two holding registers a PE: the model's schedule (each ``last`` step ``2R`` cycles after
    the one two before it, each tile loaded into the drain once the tile before has left) is
    Verilator's, cycle for cycle. A 9-step tile and a 1-step tile then take ``max(9 + 1, 2R)
    = 10`` cycles together instead of ``9 + R = 13``: the pairing the slots are for."""
    lane = LaneConfig(LaneKind.ADDER, 8)
    cfg = ArrayConfig(PEConfig(lane, 4, 20, 2), 4, 3)
    build = rtl.build(lambda: ArrayCore(cfg, drain_slots=2), "cycles2_adder_4x3x4",
                      {"cfg": repr(cfg), "drain_slots": 2})
    tb = {"kind": "adder", "data_bits": 8, "shift_max": 0, "lanes": 4, "rows": 4, "cols": 3,
          "acc_bits": 20, "steps": 1, "tiles": 1, "tile_steps": tile_steps}
    run_dir = rtl.run(build, "sim.tb.array_tb", tb, seed=seed, tests="schedule")
    measured = int(json.loads((run_dir / "schedule.json").read_text())["cycles"])
    assert measured == schedule_cycles(tile_steps, cfg, drain_slots=2)
    pairs = schedule_cycles([9, 1] * 20, cfg, drain_slots=2) - schedule_cycles([9, 1] * 19, cfg,
                                                                               drain_slots=2)
    assert pairs == max(9 + 1, 2 * cfg.rows) == 10
    assert schedule_cycles([9, 1] * 20, cfg) - schedule_cycles([9, 1] * 19, cfg) == 9 + cfg.rows


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


def test_overlap_what_if_orders_every_image_and_bounds_the_period(monkeypatch):
    """``benchmarks/overlap.py`` runs the next image's conv1 and INPUT beside this image's last
    conv in the engine's cycle model: each image runs every descriptor once, in program order
    but for that move; the period is shorter than one image alone and no shorter than the
    adder array's own busy span in it (the overlap can hide only its idle start and end)."""
    import sys
    from pathlib import Path

    from gen.compile import Geometry
    from gen.cost import CostModel
    from gen.cycles import program_timeline
    from gen.generate import design_for
    from hw.program import Opcode

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    for name in ("overlap", "write_width"):
        sys.modules.pop(name, None)
    from overlap import evaluate, overlapped, resnet20

    net, geo = resnet20(), Geometry(10, 16, 16)
    d = design_for(net, geo, CostModel.load(), weights=False)
    descs = d.program.descriptors
    seq, marks = overlapped(descs, 3)
    assert len(seq) == 3 * len(descs) - 2  # one END

    def same(xs):  # the descriptors but for the flags the overlap clears
        return [{k: v for k, v in x.items() if k not in ("barrier", "pool")} for x in xs]

    key, seen = same(descs), same(seq)
    assert seen[:marks[0]] == key[:marks[0]]  # conv1, INPUT
    body = next(i for i, x in enumerate(descs) if x.get("pool")) + 1 - marks[0]
    tail = len(descs) - marks[0] - body       # fc, OUTPUT, END
    for m in marks:
        assert seen[m:m + body] == key[marks[0]:marks[0] + body]
    assert seen[-tail:] == key[-tail:]
    assert [x.get("pool", 0) for x in seq].count(1) == 0

    e = evaluate(net, geo, 1, 4)
    spans = program_timeline(descs, d.cfg)
    adder = [s for s, x in zip(spans, descs, strict=True) if x["op"] == Opcode.ADDER_CONV]
    assert e["single_cycles"] == d.cycles
    assert adder[-1][1] - adder[0][0] <= e["period_cycles"] < d.cycles

    with pytest.raises(ValueError, match="pool"):
        overlapped([x for x in descs if not x.get("pool")], 3)


@pytest.mark.parametrize("rows", [3, 10])
def test_what_a_conv_adds_is_the_program_model_of_two_copies(rows, monkeypatch):
    """``descriptor_cycles`` of a conv (the report's per-layer cycles and utilization) is what
    ``benchmarks/accel.py --rtl-layers`` measures in RTL: the whole-program model of the conv
    twice minus once, for every distinct ResNet-20 layer shape. (It was not for fc, a single
    tile, until it came from ``program_timeline``: 15 against 11 measured at 10x16x16.)"""
    import sys
    from pathlib import Path

    from gen.compile import Geometry
    from gen.cycles import descriptor_cycles, program_cycles
    from gen.generate import shared_engine, single_layer_networks
    from hw.program import Opcode

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    sys.modules.pop("accel", None)
    from accel import resnet20

    cfg, progs = shared_engine(list(single_layer_networks(resnet20()).values()),
                               Geometry(rows, 16, 16))
    for prog in progs:
        conv = next(d for d in prog.descriptors
                    if d["op"] in (Opcode.SHIFT_CONV, Opcode.ADDER_CONV))
        twice = [*prog.descriptors[:2], conv, *prog.descriptors[2:]]
        assert descriptor_cycles(conv, cfg) == \
            program_cycles(twice, cfg) - program_cycles(prog.descriptors, cfg)
