"""Generated Verilog is clean under verilator --lint-only -Wall (with hw/lint_waivers.vlt)."""

from __future__ import annotations

import pytest

from hw.array import ArrayCore
from hw.config import ArrayConfig, LaneConfig, LaneKind, PEConfig
from hw.pe import ProcessingElement
from sim import rtl


@pytest.mark.parametrize("top", ["adder_pe", "shift_pe_k14", "adder_array", "shift_array_k7",
                                 "fix32_shift_array", "adder_pe_2", "shift_array_k7_2"])
def test_lint_clean(tmp_path, top):
    """``_2``: with two drain slots (``drain_slots=2``)."""
    lanes = {"adder_pe": LaneConfig(LaneKind.ADDER, 8), "shift_pe_k14": LaneConfig(LaneKind.SHIFT,
             8, 14), "adder_array": LaneConfig(LaneKind.ADDER, 8),
             "shift_array_k7": LaneConfig(LaneKind.SHIFT, 8, 7),
             "fix32_shift_array": LaneConfig(LaneKind.SHIFT, 32, 3)}
    base = top.removesuffix("_2")
    slots = 2 if base != top else 1
    lane = lanes[base]
    pe = PEConfig(lane, 8, 48 if lane.data_bits == 32 else 28, 2)
    comp = (ProcessingElement(pe, slots=slots) if base.endswith("_pe")
            else ArrayCore(ArrayConfig(pe, 3, 4), drain_slots=slots))
    v = tmp_path / "top.v"
    v.write_text(rtl.verilog(comp))
    assert rtl.lint(v) == []


@pytest.mark.parametrize("which", ["regfile", "requantizer", "requantizer_one_shift",
                                   "add_without_shifts"])
def test_control_and_ppu_lint_clean(tmp_path, which):
    from hw.ppu import AddConfig, RequantConfig, Requantizer, ResidualAdder
    from hw.regfile import RegisterFile

    comps = {
        "regfile": lambda: RegisterFile(0x12345678),
        "requantizer": lambda: Requantizer(RequantConfig(26, 40, 8)),
        # no shifter at all (digits' requants)
        "requantizer_one_shift": lambda: Requantizer(RequantConfig(21, 29, 8, 19, 19)),
        # a network whose adds need no shift (some trained digits models): no zero-width port
        "add_without_shifts": lambda: ResidualAdder(AddConfig(8, 8, 0)),
    }
    comp = comps[which]()
    v = tmp_path / "top.v"
    v.write_text(rtl.verilog(comp))
    assert rtl.lint(v) == []


def test_lint_catches_real_problems(tmp_path):
    """The waivers are narrow: a genuine problem (a latch / combinational loop) still fails."""
    v = tmp_path / "bad.v"
    v.write_text("module bad(input wire a, output wire y);\n  wire b;\n  assign b = ~b & a;\n"
                 "  assign y = b;\nendmodule\n")
    assert rtl.lint(v) != []
