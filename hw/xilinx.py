"""7-series primitives placed by hand where the synthesis tools leave LUTs on the table.

Two structures use them, both the first adder level of a PE: ``hw.lanes.ShiftPair``, where the
last stage of one lane's shifter is computed inside the adder's own LUTs, and
``hw.lanes.AdderPair``, where both lanes' absolute values are (a ``LUT6_2`` per bit gives the
carry chain both its select and its DI). Yosys' ABC9 does not find these packings by itself
(measured: the shift logic written as ``a + b`` costs 15 LUTs more per lane pair), Vivado is not
run here, so the LUT6 / LUT6_2 + CARRY4 netlist is written out explicitly.

The emitted Verilog instantiates ``LUT6``, ``LUT6_2`` and ``CARRY4`` (UNISIM names, as Vivado and
Yosys' ``synth_xilinx`` know them). For simulation, :data:`SIM_MODELS` holds behavioural models
of them; ``sim.rtl`` adds the ones a design uses to its Verilator builds and lint runs, and
``shiftadd gen`` writes them to ``rtl/xilinx_sim_models.v`` (not part of a Vivado project:
Vivado has the real cells).
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Callable
from pathlib import Path

from amaranth import Cat, Const, Instance, Module, Signal, Value

_PLACING = contextvars.ContextVar("shiftadd_placing_primitives", default=True)


def placing_primitives() -> bool:
    """True (the default) while elaborating the synthesis view; False inside
    :func:`simulation_view`."""
    return _PLACING.get()


@contextlib.contextmanager
def simulation_view():
    """Elaborate the simulation view: components that place cells by hand
    (:class:`hw.lanes.ShiftPair`, :class:`hw.lanes.AdderPair`) describe the same function
    behaviourally instead, which Verilator builds about four times faster (a bit-level carry
    chain per PE: 186-200 s against 51 s for the digits engine, measured with ShiftPair). The
    two views are proven equivalent by ``gen.equiv`` (Yosys SAT, every input in contract)."""
    token = _PLACING.set(False)
    try:
        yield
    finally:
        _PLACING.reset(token)


def _truth_table(fn: Callable[..., int], n: int) -> int:
    """``fn`` of ``n`` 1-bit inputs as INIT bits: bit ``k`` is ``fn`` of the bits of ``k``
    (input 0 the lowest). Rows with a bit set above ``n - 1`` belong to pins tied to 0 and stay
    0."""
    return sum((fn(*((k >> i) & 1 for i in range(n))) & 1) << k for k in range(1 << n))


def lut6(m: Module, inputs: list[Value], fn: Callable[..., int], name: str) -> Signal:
    """One ``LUT6`` computing ``fn(*inputs)`` (each input a 1-bit value; at most six; unused
    pins are tied to 0 and ``fn`` never sees them)."""
    if not 1 <= len(inputs) <= 6:
        raise ValueError(f"a LUT6 has 1 to 6 inputs, not {len(inputs)}")
    init = _truth_table(fn, len(inputs))
    pins = list(inputs) + [Const(0, 1)] * (6 - len(inputs))
    o = Signal(name=name)
    m.submodules[name] = Instance("LUT6", p_INIT=Const(init, 64),
                                  **{f"i_I{i}": pins[i] for i in range(6)}, o_O=o)
    return o


def lut6_2(m: Module, inputs: list[Value], fn6: Callable[..., int], fn5: Callable[..., int],
           name: str) -> tuple[Signal, Signal]:
    """One ``LUT6_2`` (one physical LUT, two outputs) computing ``(fn6(*inputs), fn5(*inputs))``
    of up to five shared inputs; ``I5`` is tied to 1, as the dual-output mode requires:
    ``O6 = INIT[{1, I4..I0}]`` (the upper 32 bits), ``O5 = INIT[{0, I4..I0}]`` (the lower)."""
    if not 1 <= len(inputs) <= 5:
        raise ValueError(f"a dual-output LUT6_2 has 1 to 5 inputs, not {len(inputs)}")
    n = len(inputs)
    init = _truth_table(fn5, n) | _truth_table(fn6, n) << 32
    pins = list(inputs) + [Const(0, 1)] * (5 - n) + [Const(1, 1)]
    o6, o5 = Signal(name=f"{name}_o6"), Signal(name=f"{name}_o5")
    m.submodules[name] = Instance("LUT6_2", p_INIT=Const(init, 64),
                                  **{f"i_I{i}": pins[i] for i in range(6)}, o_O6=o6, o_O5=o5)
    return o6, o5


def carry_chain(m: Module, s: list[Value], di: list[Value], cin: Value, name: str) -> list[Signal]:
    """The sum bits of a ``CARRY4`` chain: ``O[i] = S[i] ^ C[i]``, ``C[i+1] = S[i] ? C[i] :
    DI[i]``, ``C[0] = cin`` (``len(s)`` bits, rounded up to whole CARRY4 cells internally)."""
    if len(s) != len(di) or not s:
        raise ValueError("carry_chain needs as many S as DI bits, at least one")
    n = len(s)
    width = -(-len(s) // 4) * 4
    s = list(s) + [Const(0, 1)] * (width - len(s))
    di = list(di) + [Const(0, 1)] * (width - len(di))
    outs = []
    carry = None
    for q in range(width // 4):
        o = Signal(4, name=f"{name}_o{q}")
        co = Signal(4, name=f"{name}_co{q}")
        ports = {"i_S": Cat(*s[4 * q:4 * q + 4]), "i_DI": Cat(*di[4 * q:4 * q + 4]),
                 "i_CI": Const(0, 1) if carry is None else carry,
                 "i_CYINIT": cin if carry is None else Const(0, 1), "o_O": o, "o_CO": co}
        m.submodules[f"{name}_c{q}"] = Instance("CARRY4", **ports)
        carry = co[3]
        outs.extend(o[i] for i in range(4))
    return outs[:n]


_MODELS_HEADER = """\
// Behavioural models of the Xilinx 7-series primitives this design instantiates (shiftadd's
// hw/xilinx.py), for simulation only: Vivado and Yosys' synth_xilinx use their own cells.
// Semantics as UG953: LUT6 O = INIT[{I5,...,I0}]; LUT6_2 O6 the same, O5 = INIT[{0,I4,...,I0}];
// CARRY4 O = S ^ {carries}, CO[i] = S[i] ? carry-in of bit i : DI[i], carry into bit 0 =
// CI | CYINIT.
`default_nettype none
"""

SIM_MODELS = {  # cell name -> its behavioural model
    "LUT6": """\
module LUT6 #(parameter [63:0] INIT = 64'h0) (
  output wire O,
  input wire I0, input wire I1, input wire I2, input wire I3, input wire I4, input wire I5
);
  assign O = INIT[{I5, I4, I3, I2, I1, I0}];
endmodule
""",
    "LUT6_2": """\
module LUT6_2 #(parameter [63:0] INIT = 64'h0) (
  output wire O6,
  output wire O5,
  input wire I0, input wire I1, input wire I2, input wire I3, input wire I4, input wire I5
);
  assign O6 = INIT[{I5, I4, I3, I2, I1, I0}];
  assign O5 = INIT[{1'b0, I4, I3, I2, I1, I0}];
endmodule
""",
    "CARRY4": """\
module CARRY4 (
  output wire [3:0] CO,
  output wire [3:0] O,
  input wire CI,
  input wire CYINIT,
  input wire [3:0] DI,
  input wire [3:0] S
);
  wire [4:0] c;
  assign c[0] = CI | CYINIT;
  genvar i;
  generate
    for (i = 0; i < 4; i = i + 1) begin : bit_
      assign c[i + 1] = S[i] ? c[i] : DI[i];
    end
  endgenerate
  assign CO = c[4:1];
  assign O = S ^ c[3:0];
endmodule
""",
}

SIM_MODELS_FILE = "xilinx_sim_models.v"


def used_cells(verilog: str) -> list[str]:
    """The cells of :data:`SIM_MODELS` that this Verilog instantiates."""
    return [name for name in SIM_MODELS
            if re.search(rf"^\s*{name}\b(?!_)", verilog, re.M) is not None]


def uses_primitives(verilog: str) -> bool:
    """Does this Verilog instantiate any of the cells (and so need models to simulate)?"""
    return bool(used_cells(verilog))


def sim_models(verilog: str) -> str:
    """Models of exactly the cells ``verilog`` uses (an unused model would be a second top
    module to simulators and linters)."""
    return _MODELS_HEADER + "\n".join(SIM_MODELS[c] for c in used_cells(verilog)) + \
        "`default_nettype wire\n"


def write_sim_models(directory: Path, verilog: str) -> Path:
    """Write :func:`sim_models` of ``verilog`` to ``directory/xilinx_sim_models.v``."""
    path = Path(directory) / SIM_MODELS_FILE
    path.write_text(sim_models(verilog))
    return path
