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
