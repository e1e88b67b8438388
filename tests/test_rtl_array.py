"""Tier B: the systolic array core in Verilator under cocotb, bit-exact against the golden model."""

from __future__ import annotations

import pytest

from hw.array import ArrayCore, array_core_verilog
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


def _config(name: str, traffic: str) -> tuple[ArrayConfig, dict]:
    """The array of ``CONFIGS[name]`` and its testbench's parameters."""
    kind, b, smax, lanes, rows, cols, every = CONFIGS[name]
    steps = 5
    lane = LaneConfig(LaneKind(kind), b, smax)
    acc = lane.acc_bits_for(lanes * steps)
    cfg = ArrayConfig(PEConfig(lane, lanes, acc, every), rows, cols)
    tb = {"kind": kind, "data_bits": b, "shift_max": smax, "lanes": lanes, "rows": rows,
          "cols": cols, "acc_bits": acc, "steps": steps, "tiles": 6,
          "idle": 0.3 if traffic != "smooth" else 0.0,
          "backpressure": 0.4 if traffic != "smooth" else 0.0}
    return cfg, tb


@pytest.mark.parametrize("name", [  # a build per config: its tests on one pytest-xdist worker
    pytest.param(n, marks=pytest.mark.xdist_group(f"array-{n}")) for n in CONFIGS])
@pytest.mark.parametrize("traffic", ["smooth", "idle_backpressure"])
def test_array_core(name, traffic, seed):
    cfg, tb = _config(name, traffic)
    build = rtl.build(lambda: ArrayCore(cfg), f"array_{name}", {"cfg": repr(cfg)})
    rtl.run(build, "sim.tb.array_tb", tb, seed=seed, tests="dot_products")


TWO_SLOTS = ["adder8_4x3x4", "shift8_3x4x4_k7", "adder8_1x1x1"]


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.xdist_group(f"array2-{n}")) for n in TWO_SLOTS])
@pytest.mark.parametrize("traffic", ["smooth", "idle_backpressure"])
def test_array_core_with_two_drain_slots(name, traffic, seed):
    """With two holding registers a PE (``drain_slots=2``), dot products that end less than R
    cycles apart (the testbench's ``pairs`` and ``short_tiles``) still leave whole, in order
    and bit-exact, under random idle input and backpressure."""
    cfg, tb = _config(name, traffic)
    tb["tiles"] = 9
    build = rtl.build(lambda: ArrayCore(cfg, drain_slots=2), f"array2_{name}",
                      {"cfg": repr(cfg), "drain_slots": 2})
    rtl.run(build, "sim.tb.array_tb", tb, seed=seed, tests="dot_products")


@pytest.mark.parametrize("slots", [1, 2])
def test_array_core_with_one_pe_module_is_bit_exact(seed, slots):
    """The array as the generator emits it for simulation (one PE module and, with one drain
    slot, one drain-link module, each instantiated R x C times; the hand-placed cells described
    behaviourally: ``array_core_verilog``, which ``benchmarks/rtl_speed.py`` builds) computes
    what the array converted PE by PE does."""
    small, tb = _config("shift8_3x4x4_k7", "idle_backpressure")
    cfg = ArrayConfig(small.pe, 4, 4)  # 16 PEs: rtl.NO_INLINE_INSTANCES
    tb["rows"] = cfg.rows
    build = rtl.build(lambda: array_core_verilog(cfg, rtl.TOP, simulation_view=True,
                                                 drain_slots=slots),
                      f"array_pe_module{slots}", {"cfg": repr(cfg), "drain_slots": slots})
    text = build.verilog.read_text()
    assert text.count(f"  {rtl.TOP}_pe ") == cfg.rows * cfg.cols  # instances of one module
    links = (cfg.rows - 1) * cfg.cols if slots == 1 else 0  # two slots: inline multiplexers
    assert text.count(f"  {rtl.TOP}_pe_drain ") == links
    assert text.count("\nmodule ") < rtl.verilog(ArrayCore(cfg)).count("\nmodule ")
    # Verilator is told not to inline the PE module (16 instances), but the drain link (12)
    vlt = (build.directory / "public.vlt").read_text()
    assert f'no_inline -module "{rtl.TOP}_pe"\n' in vlt
    assert "no_inline" not in vlt.replace(f'no_inline -module "{rtl.TOP}_pe"\n', "")
    rtl.run(build, "sim.tb.array_tb", tb, seed=seed, tests="dot_products")


def test_copied_lines_counts_each_repeated_module_with_the_modules_below_it():
    """What decides whether a build lets instances share their C++ (``rtl.copied_lines``): a
    module instantiated 16 times, 4 lines of its own and 2 of a module below it, stands for 96
    lines; a module instantiated once (and the top) for none."""
    pes = "".join(f"  t_pe pe_{i} (\n  );\n" for i in range(rtl.NO_INLINE_INSTANCES))
    text = (f"module top(clk);\n{pes}  t_once once (\n  );\nendmodule\n"
            "module t_pe(clk);\n  input clk;\n  \\t_pe.lane  lane (\n  );\nendmodule\n"
            "module \\t_pe.lane (clk);\n  input clk;\nendmodule\n"
            "module t_once(clk);\n  input clk;\nendmodule\n")
    assert rtl.repeated_modules(text) == ["t_pe"]
    assert rtl.copied_lines(text) == rtl.NO_INLINE_INSTANCES * (4 + 2)
    assert rtl.copied_lines(text.replace("  t_pe pe_0 (", "  t_other pe_0 (")) == 0
