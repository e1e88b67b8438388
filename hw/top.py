"""The accelerator's top level with the port names Vivado's IP integrator infers interfaces from.

``aclk`` / ``aresetn`` (active low, synchronous, registered once: it takes effect one clock
later; the memories keep their contents), ``s_axi_*`` (AXI4-Lite register file,
:mod:`hw.regmap`), ``s_axis_*`` (AXI4-Stream in: load and infer frames), ``m_axis_*``
(AXI4-Stream out: results) and ``interrupt`` (high while ``ap_done`` is set, until CTRL is
read). Amaranth names a nested port ``s_axi__awaddr``; the top's ports are flat members, so the
emitted Verilog carries exactly these names.
"""

from __future__ import annotations

from amaranth import ClockDomain, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.convert import rtlil_to_verilog, to_rtlil
from hw.engine import Engine, EngineConfig
from hw.regfile import AXILiteSignature, RegisterFile
from hw.regmap import REGMAP

TOP_NAME = "shiftadd_top"
_AXIL = dict(AXILiteSignature(REGMAP.address_bits + 1).members.items())


class Top(wiring.Component):
    def __init__(self, cfg: EngineConfig, build_id: int, *, pe_modules: bool = False) -> None:
        self._cfg, self._build_id, self._pe_modules = cfg, build_id, pe_modules
        ports = {"aclk": In(1), "aresetn": In(1), "interrupt": Out(1)}
        for name, member in _AXIL.items():  # master's view -> the slave port flips direction
            ports[f"s_axi_{name}"] = (In if member.flow is Out else Out)(member.shape)
        ports.update({"s_axis_tdata": In(32), "s_axis_tlast": In(1), "s_axis_tvalid": In(1),
                      "s_axis_tready": Out(1), "m_axis_tdata": Out(32), "m_axis_tlast": Out(1),
                      "m_axis_tvalid": Out(1), "m_axis_tready": In(1)})
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = cd = ClockDomain("sync", local=True)
        # The reset is registered once here: every register's reset mux then hangs off a
        # flip-flop, not a port, which keeps Verilator from re-evaluating the engine's whole
        # next-state logic whenever any top-level input might have changed (twice per clock):
        # the digits engine simulates at 28-34 images/s instead of 18-26 (BENCHMARKS.md).
        # Reset takes effect one clock later.
        rst = Signal(init=1, reset_less=True)
        m.d.sync += rst.eq(~self.aresetn)
        m.d.comb += [cd.clk.eq(self.aclk), cd.rst.eq(rst)]
        m.submodules.regs = regs = RegisterFile(self._build_id)
        m.submodules.engine = eng = Engine(self._cfg, pe_modules=self._pe_modules)
        for name, member in _AXIL.items():
            port = getattr(self, f"s_axi_{name}")
            inner = getattr(regs.axi, name)
            m.d.comb += (inner.eq(port) if member.flow is Out else port.eq(inner))
        m.d.comb += [
            eng.start.eq(regs.start), regs.accepted.eq(eng.accepted), regs.done.eq(eng.done),
            regs.idle.eq(eng.idle), regs.busy.eq(eng.busy), regs.error_set.eq(eng.error_set),
            eng.images.eq(regs.images),
            eng.s_axis.payload.data.eq(self.s_axis_tdata),
            eng.s_axis.payload.last.eq(self.s_axis_tlast),
            eng.s_axis.valid.eq(self.s_axis_tvalid), self.s_axis_tready.eq(eng.s_axis.ready),
            self.m_axis_tdata.eq(eng.m_axis.payload.data),
            self.m_axis_tlast.eq(eng.m_axis.payload.last),
            self.m_axis_tvalid.eq(eng.m_axis.valid), eng.m_axis.ready.eq(self.m_axis_tready),
            self.interrupt.eq(regs.interrupt),
        ]
        return m


# Vivado's IP integrator infers the AXI interfaces s_axi, s_axis and m_axis of a module
# reference from the port names; the clock's association with them, the reset's polarity and
# the interrupt's sensitivity it takes from these attributes (UG994, "Inferring Control
# Signals in a RTL Module"). FREQ_HZ is left to the block design, which propagates the clock's.
PORT_ATTRIBUTES = {
    "input aclk;": {
        "X_INTERFACE_INFO": "xilinx.com:signal:clock:1.0 aclk CLK",
        "X_INTERFACE_PARAMETER": "ASSOCIATED_BUSIF s_axi:s_axis:m_axis, ASSOCIATED_RESET aresetn"},
    "input aresetn;": {
        "X_INTERFACE_INFO": "xilinx.com:signal:reset:1.0 aresetn RST",
        "X_INTERFACE_PARAMETER": "POLARITY ACTIVE_LOW"},
    "output interrupt;": {
        "X_INTERFACE_INFO": "xilinx.com:signal:interrupt:1.0 interrupt INTERRUPT",
        "X_INTERFACE_PARAMETER": "SENSITIVITY LEVEL_HIGH"},
}


def with_port_attributes(top: str) -> str:
    """The top module's Verilog with :data:`PORT_ATTRIBUTES` before its clock, reset and
    interrupt declarations (the other modules in ``top`` untouched)."""
    start = top.index(f"module {TOP_NAME}(")
    end = top.index("endmodule", start)
    body = top[start:end]
    for decl, attrs in PORT_ATTRIBUTES.items():
        line = f"\n  {decl}\n"
        if body.count(line) != 1:
            raise ValueError(f"{TOP_NAME}: expected one `{decl}` declaration")
        body = body.replace(line, "\n" + "".join(f'  (* {k} = "{v}" *)\n'
                                                 for k, v in attrs.items()) + f"  {decl}\n")
    return top[:start] + body + top[end:]


def _pe_modules(cfg: EngineConfig, *, simulation_view: bool) -> list[str]:
    """RTLIL of the PE and drain-link modules of each array, in the view asked for."""
    import contextlib

    from hw.array import pe_modules_rtlil
    from hw.engine import pe_module_name
    from hw.xilinx import simulation_view as sim_view

    parts = []
    for kind in ("shift", "adder"):
        arr = cfg.array(kind)
        if arr is not None:
            with sim_view() if simulation_view else contextlib.nullcontext():
                parts += pe_modules_rtlil(arr, pe_module_name(kind),
                                          drain_slots=2 if kind in cfg.paired else 1)
    return parts


def _top_rtlil(cfg: EngineConfig, build_id: int) -> str:
    """RTLIL of the top: everything but the PE and drain-link modules."""
    return to_rtlil(Top(cfg, build_id, pe_modules=True), TOP_NAME)


def emit_verilog(cfg: EngineConfig, build_id: int, *, simulation_view: bool = False) -> str:
    """The accelerator as one Verilog file: one module per PE kind and one for its drain links
    (each converted once, instantiated R x C times) and the top with everything else. Converting
    a 16x16 array PE by PE took minutes; this way it takes seconds. ``simulation_view``: the
    PEs' hand-placed cells (the lane pairs, the ternary adders, the drain multiplexers)
    described behaviourally (:func:`hw.xilinx.simulation_view`); everything else is
    identical."""
    *pes, top = rtlil_to_verilog([*_pe_modules(cfg, simulation_view=simulation_view),
                                  _top_rtlil(cfg, build_id)])
    return "\n".join([*pes, with_port_attributes(top)])


def emit_views(cfg: EngineConfig, build_id: int) -> tuple[str, str | None]:
    """``(synthesis view, simulation view)`` as :func:`emit_verilog` writes them, converting the
    top (everything but the PE and drain-link modules, and most of the conversion time) once
    for both, and everything in one Yosys run. The simulation view is ``None`` when the
    synthesis view places no cells (nothing to describe differently)."""
    from hw.xilinx import uses_primitives

    synth, sim = (_pe_modules(cfg, simulation_view=v) for v in (False, True))
    *pes, top = rtlil_to_verilog([*synth, *sim, _top_rtlil(cfg, build_id)])
    top = with_port_attributes(top)
    synthesis = "\n".join([*pes[:len(synth)], top])
    if not uses_primitives(synthesis):
        return synthesis, None
    return synthesis, "\n".join([*pes[len(synth):], top])
