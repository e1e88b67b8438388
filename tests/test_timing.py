"""The pre-placement timing estimate (``gen/timing.py``): exact sums on hand-built netlists, and
the paths of small designs synthesized by Yosys."""

from __future__ import annotations

import pytest
from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from gen.synth import synthesize_netlist
from gen.timing import CLOCK_TO_Q, FLOP_SETUP, Box, analyse, box_of
from sim.rtl import verilog


class Netlist:
    """A Yosys-JSON netlist built by hand: ``cell(type, name, ins={port: bits}, outs=...)``."""

    def __init__(self) -> None:
        self.cells: dict = {}
        self.ports: dict = {}
        self.next_bit = 2

    def bits(self, n: int = 1) -> list[int]:
        b = list(range(self.next_bit, self.next_bit + n))
        self.next_bit += n
        return b

    def cell(self, t: str, name: str, ins: dict, outs: dict) -> None:
        self.cells[name] = {
            "type": t, "parameters": {}, "attributes": {},
            "port_directions": {**{p: "input" for p in ins}, **{p: "output" for p in outs}},
            "connections": {**ins, **outs}}

    def flop(self, name: str, d: list[int], q: list[int], clk: list[int]) -> None:
        self.cell("FDRE", name, {"C": clk, "CE": ["1"], "R": ["0"], "D": d}, {"Q": q})

    def doc(self) -> dict:
        return {"modules": {"top": {"ports": self.ports, "cells": self.cells,
                                    "netnames": {}}}}


def _chain() -> tuple[Netlist, list[int]]:
    """FDRE -> LUT2 (I0) -> CARRY4 (S[0] -> CO[3]) -> CARRY4 (CI -> O[1]) -> FDRE D, and a
    short path FDRE -> LUT1 -> FDRE CE."""
    n = Netlist()
    clk = n.bits()
    q0, lut, co, o, q1 = n.bits(), n.bits(), n.bits(4), n.bits(4), n.bits()
    n.flop("ff0", n.bits(), q0, clk)
    n.cell("LUT2", "lut", {"I0": q0, "I1": ["0"]}, {"O": lut})
    n.cell("CARRY4", "c0", {"CI": ["0"], "CYINIT": ["0"], "DI": ["0"] * 4,
                            "S": lut + ["0"] * 3}, {"O": n.bits(4), "CO": co})
    n.cell("CARRY4", "c1", {"CI": co[3:], "CYINIT": ["0"], "DI": ["0"] * 4, "S": ["0"] * 4},
           {"O": o, "CO": n.bits(4)})
    n.flop("ff1", o[1:2], q1, clk)
    ce = n.bits()
    n.cell("LUT1", "short", {"I0": q1}, {"O": ce})
    n.cell("FDRE", "ff2", {"C": clk, "CE": ce, "R": ["0"], "D": q0}, {"Q": n.bits()})
    return n, o


def test_a_path_is_the_sum_of_its_arcs():
    n, _ = _chain()
    # clock-to-Q, LUT2 I0, CARRY4 S[0] -> CO[3], CARRY4 CI -> O[1], D setup
    cells = CLOCK_TO_Q + 238 + 508 + 334 + FLOP_SETUP["D"]
    p = analyse(n.doc(), "top")[0]
    assert p.delay_ps == p.logic_ps == cells
    assert (p.start, p.end) == ("FDRE ff0", "FDRE ff1 (D)")
    assert [t for t, _, _ in p.cells] == ["FDRE", "LUT2", "CARRY4", "CARRY4"]
    assert p.levels == 3
    # routing: the flop's Q to the LUT and the carry chain's output to the flop are routed nets;
    # the LUT into its slice's carry logic and the carry between CARRY4s are not
    r = analyse(n.doc(), "top", net_ps=100)[0]
    assert r.nets == 2 and r.delay_ps == cells + 200 and r.logic_ps == cells
    paths = analyse(n.doc(), "top", worst=5)  # ff0's undriven D is no path
    assert [p.end for p in paths] == ["FDRE ff1 (D)", "FDRE ff2 (CE)"]
    assert paths[1].delay_ps == CLOCK_TO_Q + 127 + FLOP_SETUP["CE"]


def test_black_boxes_are_start_and_end_points():
    n = Netlist()
    clk, q, a, y = n.bits(), n.bits(), n.bits(), n.bits()
    n.flop("ff0", n.bits(), q, clk)
    n.cell("LUT1", "l0", {"I0": q}, {"O": a})
    n.cell("PE", "pe", {"x": a}, {"result": y})
    n.cell("LUT1", "l1", {"I0": y}, {"O": (z := n.bits())})
    n.flop("ff1", z, n.bits(), clk)
    paths = analyse(n.doc(), "top", boxes={"PE": Box({"x": 2000}, {"result": 900})}, worst=2)
    assert [(p.start, p.end, p.delay_ps) for p in paths] == [
        ("FDRE ff0", "PE pe.x", CLOCK_TO_Q + 127 + 2000),
        ("PE pe.result", "FDRE ff1 (D)", 900 + 127 + FLOP_SETUP["D"])]
    # a port the box does not know gets the worst of its kind
    assert Box({"x": 2000, "y": 10}, {}).input_ps("z") == 2000
    with pytest.raises(ValueError, match="no timing for cell type PE"):
        analyse(n.doc(), "top")


def test_a_combinational_loop_is_reported():
    n = Netlist()
    a, b = n.bits(), n.bits()
    n.cell("LUT1", "x", {"I0": b}, {"O": a})
    n.cell("LUT1", "y", {"I0": a}, {"O": b})
    n.flop("ff", a, n.bits(), n.bits())
    with pytest.raises(ValueError, match="combinational loop"):
        analyse(n.doc(), "top")


def test_a_lut_input_its_output_ignores_has_no_arc():
    """Two LUT6_2s as in a ternary adder: the first's O5 (a function of I0..I2 only) feeds the
    second's I3. The second's O5 ignores I3 too, so no path runs from ff0 through both O5s;
    its O6 uses I3, so the path ff0 -> O5 -> O6 is there. Without INIT every pin is an arc."""
    from hw.xilinx import _truth_table

    def lut(name, ins, o6, o5):
        n.cell("LUT6_2", name, {f"I{k}": [b] for k, b in enumerate(ins)}, {"O6": o6, "O5": o5})
        init = _truth_table(lambda a, b, c, k, e: (a & b) | (a & c) | (b & c), 5) | \
            _truth_table(lambda a, b, c, k, e: a ^ b ^ c ^ k, 5) << 32
        n.cells[name]["parameters"]["INIT"] = format(init, "064b")

    n = Netlist()
    clk, q = n.bits(), n.bits()
    n.flop("ff0", n.bits(), q, clk)
    o6a, o5a, o6b, o5b = n.bits(), n.bits(), n.bits(), n.bits()
    lut("a", [q[0], "0", "0", "0", "0", "1"], o6a, o5a)
    lut("b", ["0", "0", "0", o5a[0], "0", "1"], o6b, o5b)
    n.flop("ff_o6", o6b, n.bits(), clk)
    n.flop("ff_o5", o5b, n.bits(), clk)
    paths = {p.end: p for p in analyse(n.doc(), "top", worst=5)}
    assert "FDRE ff_o5 (D)" not in paths  # o5b depends on nothing ff0 drives
    assert [c[1] for c in paths["FDRE ff_o6 (D)"].cells] == ["ff0", "a", "b"]
    assert paths["FDRE ff_o6 (D)"].delay_ps == CLOCK_TO_Q + 631 + 407 + FLOP_SETUP["D"]
    for c in n.cells.values():
        c["parameters"] = {}
    assert "FDRE ff_o5 (D)" in {p.end for p in analyse(n.doc(), "top", worst=5)}


@pytest.mark.parametrize("other_load", [False, True])
def test_a_carry_input_from_a_lut_with_other_loads_is_routed(other_load):
    """``DI[i]`` from a LUT that drives only it enters the carry chain without routing (Vivado
    combines that LUT with the one beside it); from a LUT with other loads it is routed."""
    n = Netlist()
    clk, q, s, di = n.bits(), n.bits(), n.bits(), n.bits()
    n.flop("ff0", n.bits(), q, clk)
    n.cell("LUT1", "beside", {"I0": q}, {"O": s})
    n.cell("LUT1", "other", {"I0": q}, {"O": di})
    if other_load:
        n.flop("ff2", di, n.bits(), clk)
    o = n.bits(4)
    n.cell("CARRY4", "c", {"CI": ["0"], "CYINIT": ["0"], "DI": di + ["0"] * 3,
                           "S": s + ["0"] * 3}, {"O": o, "CO": n.bits(4)})
    n.flop("ff1", o[1:2], n.bits(), clk)
    p = analyse(n.doc(), "top", net_ps=100)[0]
    # ff0 -> LUT (routed) -> DI[0] (routed with another load) -> O[1] -> ff1 (routed)
    assert p.cells[1][1] == "other" and p.nets == 2 + other_load
    assert p.delay_ps == CLOCK_TO_Q + 127 + 407 + FLOP_SETUP["D"] + 200 + 100 * other_load


class _Adder(wiring.Component):
    def __init__(self, width: int) -> None:
        self.width = width
        super().__init__({"a": In(width), "b": In(width), "y": Out(width)})

    def elaborate(self, platform):
        m = Module()
        ra, rb = Signal(self.width), Signal(self.width)
        m.d.sync += [ra.eq(self.a), rb.eq(self.b), self.y.eq(ra + rb)]
        return m


@pytest.mark.slow
def test_synthesized_adders_between_registers():
    """A wider adder between registers is a longer carry chain: 8 more bits, 2 more CARRY4s
    (their carry-in to carry-out arcs) on the worst path, and nothing else changes."""
    found = {}
    for width in (16, 24):
        _, net = synthesize_netlist(verilog(_Adder(width), "top"), "top")
        p = analyse(net, "top", net_ps=300)[0]
        assert p.start.startswith("FDRE") and p.end.startswith("FDRE")
        found[width] = p
        box = box_of(net, "top", net_ps=300)
        assert box.outputs == {"y": CLOCK_TO_Q}  # y is a register's output
        # a and b go straight into registers (D), the reset into their R pins
        assert box.inputs == {"a": FLOP_SETUP["D"], "b": FLOP_SETUP["D"], "rst": FLOP_SETUP["R"]}
    carries = {w: sum(t == "CARRY4" for t, _, _ in p.cells) for w, p in found.items()}
    assert carries == {16: 4, 24: 6}
    assert found[24].delay_ps - found[16].delay_ps == 2 * 114


# the tail of what the WebAssembly Yosys printed when the 10x16x16 engine core spent its heap in
# memory_libmap (benchmarks/timing.py --rows 10, 2026-12-04)
WASM_ABORT = """    raise trap_obj
wasmtime._trap.Trap: error while executing at wasm backtrace:
    0: 0x3e6a19 - yosys.wasm!main
    1: 0x28752ca - yosys.wasm!__main_void
    2:  0x12624 - yosys.wasm!_start
note: using the `WASMTIME_BACKTRACE_DETAILS=1` environment variable may show more debugging information

Caused by:
    thrown Wasm exception"""


def test_a_failed_synthesis_says_what_failed():
    """Yosys' own error is the line it printed; the WebAssembly Yosys aborting (its heap
    spent) is said in words with what to run instead, not as a wasmtime backtrace. The first
    case runs the real Yosys on a design it refuses."""
    from gen.synth import SynthError, failure_message, synthesize

    with pytest.raises(SynthError, match=r"yosys failed \(1\): ERROR: .*undefined_module"):
        synthesize("module top(input a, output y);\n  undefined_module u(.a(a), .y(y));\n"
                   "endmodule\n", "top")
    msg = failure_message(1, "", WASM_ABORT, native=False)
    assert "4 GiB heap" in msg and "--yosys /usr/bin/yosys" in msg and "wasm" not in msg
    # a native Yosys cannot have thrown a Wasm exception: its output is shown as it is
    assert failure_message(1, "", WASM_ABORT, native=True).endswith("thrown Wasm exception")


def test_yosys_version_names_the_binary_or_says_why_not(tmp_path):
    """``benchmarks/timing.py --yosys PATH`` keys its netlists by the binary's version: the
    WebAssembly Yosys answers one, a path that is no Yosys is an error that says so."""
    from gen.synth import SynthError, yosys_version

    assert yosys_version().startswith("Yosys 0.")
    with pytest.raises(SynthError, match="cannot run"):
        yosys_version(str(tmp_path / "no-yosys"))
    with pytest.raises(SynthError, match="not a Yosys"):
        yosys_version("/bin/false")
