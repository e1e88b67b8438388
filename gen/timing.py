"""A pre-placement timing estimate of a Yosys ``synth_xilinx -family xc7`` netlist.

No Vivado runs here, so timing closure cannot be checked. What can be checked is the logic
between registers: this module walks the mapped netlist (``write_json`` after ``synth_xilinx``)
from every timing start point (a flip-flop's Q, a block RAM's or DSP's registered output, a top
input) to every end point (a flip-flop's D/CE/R, a block RAM's or DSP's registered input, a top
output) and adds up the cell delays on the way, plus ``net_ps`` for each net between cells.

The cell delays are the 7-series figures that Yosys ships with its cell library
(``share/xilinx/cells_sim.v``, ``specify`` blocks quoted from SymbiFlow's prjxray-db timing
database for the Artix-7 speed grade it measured): LUT inputs 127-642 ps depending on the pin,
CARRY4 arcs 114-642 ps, a flip-flop's clock-to-Q 303 ps, a block RAM's clock-to-output
2,454 ps without its output register. The Zynq-7045 on the ZC706 has Kintex-7 fabric in speed
grade -2, which is faster than that, while routing, which this estimate only stands in for with
a constant per net, is often half of a real path. So the figure is an estimate for finding the
long paths and comparing designs, not a timing sign-off.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Combinational arcs: {cell type: {(input port, output port): ps}} (ports are bit-blasted as
# ``name[i]`` where the cell's port is a vector).
_LUT_PINS = {  # Yosys' cells_sim.v: LUTn input Ik -> O
    1: (127,), 2: (238, 127), 3: (407, 238, 127), 4: (472, 407, 238, 127),
    5: (631, 472, 407, 238, 127), 6: (642, 631, 472, 407, 238, 127),
}
_CARRY4 = {  # cells_sim.v CARRY4 (input -> O[i] / CO[i])
    "O": {0: {"CYINIT": 482, "S[0]": 223, "CI": 222},
          1: {"CYINIT": 598, "DI[0]": 407, "S[0]": 400, "S[1]": 205, "CI": 334},
          2: {"CYINIT": 584, "DI[0]": 556, "DI[1]": 537, "S[0]": 523, "S[1]": 558, "S[2]": 226,
              "CI": 239},
          3: {"CYINIT": 642, "DI[0]": 615, "DI[1]": 596, "DI[2]": 438, "S[0]": 582, "S[1]": 618,
              "S[2]": 330, "S[3]": 227, "CI": 313}},
    "CO": {0: {"CYINIT": 536, "DI[0]": 379, "S[0]": 340, "CI": 271},
           1: {"CYINIT": 494, "DI[0]": 465, "DI[1]": 445, "S[0]": 433, "S[1]": 469, "CI": 157},
           2: {"CYINIT": 592, "DI[0]": 540, "DI[1]": 520, "DI[2]": 356, "S[0]": 512, "S[1]": 548,
               "S[2]": 292, "CI": 228},
           3: {"CYINIT": 580, "DI[0]": 526, "DI[1]": 507, "DI[2]": 398, "DI[3]": 385,
               "S[0]": 508, "S[1]": 528, "S[2]": 378, "S[3]": 380, "CI": 114}},
}


def _comb_arcs() -> dict[str, dict[tuple[str, str], int]]:
    arcs: dict[str, dict[tuple[str, str], int]] = {}
    for n, pins in _LUT_PINS.items():
        arcs[f"LUT{n}"] = {(f"I{k}", "O"): d for k, d in enumerate(pins)}
    arcs["CARRY4"] = {(i, f"{o}[{bit}]"): d for o, by_bit in _CARRY4.items()
                      for bit, ins in by_bit.items() for i, d in ins.items()}
    # LUT6_2: O6 of all six inputs, O5 of I0..I4 (no figures of its own in cells_sim.v: those of
    # a LUT6 and a LUT5)
    arcs["LUT6_2"] = {**{(f"I{k}", "O6"): d for k, d in enumerate(_LUT_PINS[6])},
                      **{(f"I{k}", "O5"): d for k, d in enumerate(_LUT_PINS[5])}}
    arcs["MUXF7"] = {("I0", "O"): 217, ("I1", "O"): 223, ("S", "O"): 296}
    arcs["MUXF8"] = {("I0", "O"): 104, ("I1", "O"): 94, ("S", "O"): 273}
    arcs["INV"] = {("I", "O"): 127}
    arcs["BUFG"] = {("I", "O"): 0}
    return arcs


COMB_ARCS = _comb_arcs()
FLOPS = ("FDRE", "FDSE", "FDCE", "FDPE")
CLOCK_TO_Q = 303                          # FDRE C -> Q
FLOP_SETUP = {"D": 0, "CE": 109, "R": 404, "S": 404, "CLR": 404, "PRE": 404}
BRAM_CLOCK_TO_OUT = {0: 2454, 1: 882}     # RAMB18E1/36E1 DO without / with the output register
BRAM_SETUP = {"ADDR": 566, "WE": 532, "DI": 737, "EN": 566}
# DSP48E1 as a multiplier (USE_MULT = "MULTIPLY", no pre-adder), cells_sim.v: per input, its
# setup when it is captured by the first register behind it, or its arcs to P and PCOUT when
# no register is behind it; per output, its clock-to-output from the last register before it
DSP_INPUT = {  # port: (register parameters in the order they capture it, setup of each,
               #        arcs to P / PCOUT with none of them)
    "A": (("AREG", "MREG", "PREG"), (254, 1416, 2739), (2823, 2970)),
    "B": (("BREG", "MREG", "PREG"), (324, 1285, 2608), (2690, 2838)),
    "C": (("CREG", "PREG"), (168, 1244), (1325, 1474)),
    "PCIN": (("PREG",), (1025,), (1107, 1255)),
}
DSP_OUTPUT = {  # output: clock-to-output after (PREG, CREG, MREG, AREG, BREG), the first set
    "P": (329, 1687, 1671, 2952, 2813),
    "PCOUT": (435, 1835, 1819, 3098, 2960),
}
DSP_CONTROL_SETUP = 500  # OPMODE, ALUMODE, CE and reset pins: an allowance, not a figure


def _dsp(cell: dict, cname: str, drive: dict, capture) -> None:
    """The arcs, start points and end points of one DSP48E1 (a multiplier)."""
    t = "DSP48E1"
    if str(cell["parameters"].get("USE_MULT", "MULTIPLY")) != "MULTIPLY" or \
            str(cell["parameters"].get("USE_DPORT", "FALSE")) != "FALSE":
        raise ValueError(f"no timing for a DSP48E1 other than a multiplier ({cname})")
    conn, dirs = cell["connections"], cell["port_directions"]
    comb_ins = []
    for p, bits in conn.items():
        if dirs[p] != "input" or p in ("CLK",):
            continue
        if p in DSP_INPUT:
            regs, setups, arcs = DSP_INPUT[p]
            setup = next((s for r, s in zip(regs, setups, strict=True) if _param(cell, r, 1)),
                         None)
            if setup is not None:
                capture(bits, setup, cname, t)
            else:
                comb_ins += [(b, arcs, p) for b in bits if isinstance(b, int)]
        else:
            capture(bits, DSP_CONTROL_SETUP, cname, t)
    order = ("PREG", "CREG", "MREG", "AREG", "BREG")
    for p, launches in DSP_OUTPUT.items():
        at = next((ps for r, ps in zip(order, launches, strict=True) if _param(cell, r, 1)),
                  None)
        k = 0 if p == "P" else 1
        ins = [] if _param(cell, "PREG", 1) else [(b, arcs[k], port) for b, arcs, port in comb_ins]
        for b in conn.get(p, []):
            if isinstance(b, int):
                drive[b] = (cname, t, ins, at)


def _sensitized(t: str, cell: dict, arcs: dict) -> dict:
    """A LUT's arcs without those from an input its output does not depend on (by its
    ``INIT``; all arcs when it has none). A ``LUT6_2`` is two logical LUTs sharing pins (a LUT6
    for ``O6``, a LUT5 for ``O5``, as Vivado's netlist has it): a pin only ``O6`` uses has no
    arc to ``O5``. A ternary adder's carry-save carry (``O5`` of each bit, into the next
    bit's LUT) would otherwise look like a ripple through every bit."""
    init = str(cell.get("parameters", {}).get("INIT", ""))
    if not t.startswith("LUT") or not init or not set(init) <= {"0", "1"}:
        return arcs
    table = int(init, 2)
    tables = {"O5": (table & (2**32 - 1), 5), "O6": (table, 6)} if t == "LUT6_2" else \
        {"O": (table, int(t[3]))}

    def depends(out: str, pin: str) -> bool:
        f, n = tables[out]
        i = int(pin[1:])
        return i < n and any(((f >> k) ^ (f >> (k ^ (1 << i)))) & 1 for k in range(1 << n))
    return {(i, o): d for (i, o), d in arcs.items() if depends(o, i)}


@dataclass
class Path:
    """The worst path: ``delay_ps`` from its start point's clock edge to its end point's
    setup (cells plus ``net_ps`` per net), the cells on it, and where it starts and ends."""

    delay_ps: int
    logic_ps: int
    nets: int
    cells: list[tuple[str, str, int]] = field(default_factory=list)  # (type, name, arrival)
    start: str = ""
    end: str = ""

    @property
    def levels(self) -> int:
        """LUTs and muxes on the path (a carry chain counts once per CARRY4)."""
        return sum(1 for t, _, _ in self.cells if t.startswith(("LUT", "MUXF", "CARRY4")))

    def fmax_mhz(self) -> float:
        return 1e6 / self.delay_ps if self.delay_ps > 0 else float("inf")

    def to_json(self) -> dict:
        return {"delay_ps": self.delay_ps, "logic_ps": self.logic_ps, "nets": self.nets,
                "levels": self.levels, "fmax_mhz": round(self.fmax_mhz(), 1),
                "start": self.start, "end": self.end,
                "cells": [{"type": t, "name": n, "arrival_ps": a} for t, n, a in self.cells]}


def _port_bits(cell: dict, port: str) -> list[str]:
    """``port`` or ``port[i]`` names of a cell port's bits (vector ports are bit-blasted)."""
    n = len(cell["connections"][port])
    return [port] if n == 1 else [f"{port}[{i}]" for i in range(n)]


def _param(cell: dict, name: str, default: int) -> int:
    """An integer cell parameter (Yosys writes them as binary strings)."""
    v = str(cell.get("parameters", {}).get(name, default))
    return int(v, 2) if v and set(v) <= {"0", "1"} else default


@dataclass(frozen=True)
class Box:
    """A module left out of a synthesis (a black box), seen from outside, per port:
    ``inputs[port]`` is the longest path from that input to a register inside (setup
    included), ``outputs[port]`` the latest arrival at that output after the clock edge.
    :func:`box_of` measures both from the module's own netlist; a port it does not know is
    given the worst of all."""

    inputs: dict[str, int]
    outputs: dict[str, int]

    def input_ps(self, port: str) -> int:
        return self.inputs.get(port, max(self.inputs.values(), default=0))

    def output_ps(self, port: str) -> int:
        return self.outputs.get(port, max(self.outputs.values(), default=0))


def box_of(netlist: dict, top: str, *, net_ps: int = 0) -> Box:
    """The :class:`Box` view of ``top``: each port's paths, with ``net_ps`` per net (the net
    into an input and the net out of an output are counted by the design that instantiates
    it)."""
    ports = netlist["modules"][top]["ports"]
    inputs, outputs = {}, {}
    for name, port in ports.items():
        if port["direction"] == "input":
            paths = analyse(netlist, top, net_ps=net_ps, starts=("IBUF", "input"),
                            start_names=(name,))
            if paths:
                inputs[name] = paths[0].delay_ps - net_ps
        else:
            paths = analyse(netlist, top, net_ps=net_ps, ends=("OBUF", "output"),
                            end_names=(name,))
            if paths:
                outputs[name] = paths[0].delay_ps - net_ps
    return Box(inputs, outputs)


def analyse(netlist: dict, top: str, *, net_ps: int = 0, worst: int = 1,
            boxes: dict[str, Box] | None = None, starts: tuple[str, ...] | None = None,
            ends: tuple[str, ...] | None = None, start_names: tuple[str, ...] | None = None,
            end_names: tuple[str, ...] | None = None) -> list[Path]:
    """The ``worst`` paths of ``top`` in a Yosys JSON netlist, longest first (one per end
    point cell), with ``net_ps`` for each routed net.

    ``boxes``: black-box cell types and their :class:`Box` timing (their inputs are end points,
    their outputs start points). ``starts`` / ``ends``: only paths from / to cells of these
    types (``"input"`` / ``"output"`` for the top's ports); ``start_names`` / ``end_names``:
    only from / to these cells (a top port's buffer is named after the port).
    """
    boxes = boxes or {}
    mod = netlist["modules"][top]
    cells = mod["cells"]
    names: dict[int, str] = {}
    for name, nn in mod["netnames"].items():
        for b in nn["bits"]:
            if isinstance(b, int) and (b not in names or (names[b].startswith("$")
                                                          and not name.startswith("$"))):
                names[b] = name
    # drive[bit] = (cell name, cell type, [(input bit, arc ps, input port)], launch ps or None):
    # a bit is launched by a clock edge (a register's output), reached through arcs from other
    # bits (combinational logic), or both (a DSP48E1 with some of its registers)
    drive: dict[int, tuple[str, str, list[tuple[int, int, str]], int | None]] = {}
    end_points: list[tuple[int, int, str, str]] = []  # (bit, setup ps, cell name, type)

    def launch(bits, ps: int, cname: str, t: str) -> None:
        for b in bits:
            if isinstance(b, int):
                drive[b] = (cname, t, [], ps)

    def capture(bits, setup: int, cname: str, t: str) -> None:
        end_points.extend((b, setup, cname, t) for b in bits if isinstance(b, int))

    port_of = {b: pname for pname, port in mod["ports"].items() for b in port["bits"]}
    for pname, port in mod["ports"].items():
        if port["direction"] == "input":
            launch(port["bits"], 0, pname, "input")
        else:
            capture(port["bits"], 0, pname, "output")
    for cname, cell in cells.items():
        t = cell["type"]
        conn = cell["connections"]
        dirs = cell["port_directions"]
        if t in FLOPS:
            # a register is known by what it holds: the name of its output, where it has one
            q = conn["Q"][0]
            label = names[q] if q in names and not names[q].startswith("$") else cname
            launch(conn["Q"], CLOCK_TO_Q, label, t)
            for p, setup in FLOP_SETUP.items():
                capture(conn.get(p, []), setup, f"{label} ({p})", t)
        elif t == "IBUF":  # a top input: the logic outside drives it from a register
            launch(conn["O"], 0, port_of.get(conn["I"][0], cname), t)
        elif t == "OBUF":
            capture(conn["I"], 0, port_of.get(conn["O"][0], cname), t)
        elif t in ("RAMB18E1", "RAMB36E1"):
            for p, bits in conn.items():
                if dirs[p] == "output":
                    reg = _param(cell, "DOA_REG" if p.startswith(("DOA", "DOPA")) else "DOB_REG",
                                 0)
                    launch(bits, BRAM_CLOCK_TO_OUT[1 if reg else 0], cname, t)
                else:
                    setup = next((v for k, v in BRAM_SETUP.items() if p.startswith(k)), None)
                    if setup is not None:
                        capture(bits, setup, cname, t)
        elif t == "DSP48E1":
            _dsp(cell, cname, drive, capture)
        elif t in COMB_ARCS:
            arcs = _sensitized(t, cell, COMB_ARCS[t])
            bit_of = {}
            for p, bits in conn.items():
                for pn, b in zip(_port_bits(cell, p), bits, strict=True):
                    bit_of[pn] = b
            for p, bits in conn.items():
                if dirs[p] != "output":
                    continue
                for pn, b in zip(_port_bits(cell, p), bits, strict=True):
                    drive[b] = (cname, t, [(bit_of[i], d, i) for (i, o), d in arcs.items()
                                           if o == pn and isinstance(bit_of.get(i), int)], None)
        elif t.startswith("$") or t in ("GND", "VCC"):
            continue
        elif t in boxes:
            for p, bits in conn.items():
                if dirs[p] == "output":
                    launch(bits, boxes[t].output_ps(p), f"{cname}.{p}", t)
                else:
                    capture(bits, boxes[t].input_ps(p), f"{cname}.{p}", t)
        else:
            raise ValueError(f"no timing for cell type {t} ({cname})")

    def dedicated(b: int, sink: str, port: str, sink_name: str) -> bool:
        """A connection inside a slice, with no general routing: a carry chain's carry-out
        into the next CARRY4, a LUT into its slice's carry logic or wide multiplexer, a MUXF7
        into a MUXF8. ``DI[i]`` has no route of its own from the LUT that drives ``S[i]`` (its
        ``O5``) or from a LUT with no other load (Vivado can combine it into that LUT); from a
        LUT with other loads (a ternary adder's carry-save carry, which also feeds the next
        bit's LUT) it comes in routed, through the slice's bypass pin."""
        src = drive[b][1] if b in drive else ""
        if sink == "DSP48E1":  # the cascade from the DSP below
            return port.startswith("PCIN") and src == "DSP48E1"
        if sink == "CARRY4":
            if port.startswith("DI[") and src.startswith("LUT"):
                s_bit = cells[sink_name]["connections"]["S"][int(port[3:-1])]
                return loads.get(b, 0) == 1 or (s_bit in drive and drive[s_bit][0] == drive[b][0])
            return (port == "CI" and src == "CARRY4") or \
                (port.startswith("S[") and src.startswith("LUT"))
        if sink in ("MUXF7", "MUXF8") and port in ("I0", "I1"):
            return src == ("LUT6" if sink == "MUXF7" else "MUXF7")
        return False

    loads: dict[int, int] = {}  # cell input pins on each bit
    for cell in cells.values():
        for p, bits in cell["connections"].items():
            if cell["port_directions"].get(p) == "input":
                for b in bits:
                    if isinstance(b, int):
                        loads[b] = loads.get(b, 0) + 1

    # arrival[bit] = (ps, logic ps, routed nets, predecessor bit, cell name, cell type)
    arrival: dict[int, tuple[int, int, int, int | None, str, str]] = {}
    const = (0, 0, 0, None, "", "const")

    def settle(b: int) -> None:
        """``arrival[b]`` from its inputs' arrivals, all known."""
        entry = drive.get(b)
        if entry is None:  # a constant or an undriven bit
            arrival[b] = const
            return
        cname, t, ins, at = entry
        best = const  # stays so when there is no start point behind the bit
        if at is not None and (starts is None or t in starts) and \
                (start_names is None or cname in start_names):
            best = (at, at, 0, None, cname, t)
        for i, d, port in ins:
            a = arrival[i]
            if a[5] == "const":
                continue
            routed = not dedicated(i, t, port, cname)
            cand = (a[0] + d + (net_ps if routed else 0), a[1] + d, a[2] + routed, i, cname, t)
            if best[5] == "const" or cand[0] > best[0]:
                best = cand
        arrival[b] = best

    def arrive(bit: int):
        """Arrival at ``bit``: a depth-first walk back to the start points, iterative because
        carry chains run deeper than Python's recursion."""
        if bit in arrival:
            return arrival[bit]
        on_path = {bit}
        stack = [(bit, iter(drive[bit][2] if bit in drive else ()))]
        while stack:
            b, ins = stack[-1]
            for i, _, _ in ins:
                if i in arrival:
                    continue
                if i in on_path:
                    raise ValueError(f"combinational loop through {drive[i][0]}")
                on_path.add(i)
                stack.append((i, iter(drive[i][2] if i in drive else ())))
                break
            else:
                settle(b)
                on_path.discard(b)
                stack.pop()
        return arrival[bit]

    results = []
    for b, setup, cname, t in end_points:
        if not isinstance(b, int) or (ends is not None and t not in ends) or \
                (end_names is not None and cname not in end_names):
            continue
        a = arrive(b)
        if a[5] == "const":
            continue
        total = a[0] + setup + net_ps
        results.append((total, a[1] + setup, a[2] + 1, b, cname, t))
    results.sort(key=lambda r: -r[0])
    paths, seen = [], set()
    for total, logic, nets, b, cname, t in results:
        cell = cname.split(" (", 1)[0]  # a register's pins count as one end point
        if cell in seen and t != "output":
            continue
        seen.add(cell)
        path = Path(total, logic, nets, end=f"{t} {cname}")
        cur = b
        while cur is not None:
            ps, _, _, prev, cn, ct = arrival[cur]
            path.cells.append((ct, names.get(cur, cn), ps))
            if prev is None:
                path.start = f"{ct} {cn}"
            cur = prev
        path.cells.reverse()
        paths.append(path)
        if len(paths) == worst:
            break
    return paths
