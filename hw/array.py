"""The systolic array: skew -> R x C PEs (output stationary) -> per-column drain -> deskew.

Dataflow (output stationary). PE(r, c) computes one dot product ``out[r, c] = sum_j f(x[r, j],
w[c, j])`` in ``J / V`` steps: each step brings ``V`` activations for row ``r`` (travelling right,
one register per PE) and ``V`` weights for column ``c`` (travelling down). The skew delays row
``r`` by ``r + 1`` cycles and column ``c`` by ``c + 1`` cycles (one input register for all),
so step ``t`` meets in PE(r, c) at ``t + 1 + r + c``. ``first``/``last`` travel with the activations.

Drain. When the last row of a column finishes, the column's R results are loaded into a shift
chain and leave over R cycles, row 0 first, while the next dot products already accumulate (the
PEs keep their results in a holding register). Consecutive ``last`` steps must therefore be at
least R cycles apart; :class:`ArrayCore` enforces that by holding off an early ``last``.

Two drain slots (``drain_slots=2``). Each PE also keeps the dot product before its latest
(``previous``), so two dot products may end less than R cycles apart (a 1x1 conv's tile and
the 3x3 conv's it runs in, ``docs/ACCELERATOR.md``, "Paired convs"): a column's chain then
loads a tile once it is free, taking each row's result from whichever holding register has
it, and only every other ``last`` step waits, for ``2R`` cycles after the one two before it.

Inside, everything is lock-step. :class:`ArrayCore` puts stream handshakes on the edges: one global
enable freezes the whole pipeline while the output is not accepted, and input bubbles travel as
invalid steps.
"""

from __future__ import annotations

from amaranth import Cat, Instance, Module, Mux, Signal, Value, signed
from amaranth.hdl import EnableInserter
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.config import ArrayConfig, PEConfig
from hw.lanes import weight_shape
from hw.pe import ProcessingElement
from hw.xilinx import lut6_2, placing_primitives

CTL = data.StructLayout({"valid": 1, "first": 1, "last": 1})


class DrainMux(wiring.Component):
    """``o = load ? a : b`` for ``width`` bits: a drain chain's next value (a PE's result on a
    load, the value above it on a shift), two bits per ``LUT6_2`` (both share ``load``: five
    inputs). Yosys maps each bit to a LUT of its own (with the register's hold folded in, a
    ``LUT6`` per bit); Vivado combines such pairs itself, so the cells are placed by hand as in
    the PEs, and the register's enable comes from the flip-flop's CE. Combinational; the
    simulation view is the behavioural multiplexer, proven equal by ``gen.equiv``."""

    def __init__(self, width: int) -> None:
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive integer, not {width!r}")
        self._width = width
        super().__init__({"load": In(1), "a": In(width), "b": In(width), "o": Out(width)})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.o.eq(drain_mux(m, self.load, self.a, self.b, "m"))
        return m


def drain_module_name(pe_module: str) -> str:
    """The module of an array's drain links (a :class:`DrainMux` converted on its own) when its
    PEs are the module ``pe_module``."""
    return f"{pe_module}_drain"


def drain_mux(m: Module, load, a, b, name: str):
    """:class:`DrainMux`'s function placed into ``m`` itself (no module per instance: an
    engine has hundreds)."""
    if not placing_primitives():  # the simulation view
        return Mux(load, a, b)
    width = len(a)
    bits = []
    for j in range(0, width, 2):
        hi = min(j + 1, width - 1)  # an odd width's last LUT computes one bit twice
        o6, o5 = lut6_2(m, [load, a[j], b[j], a[hi], b[hi]], _mux_hi, _mux_lo, f"{name}_{j}")
        bits += [o5, o6][:width - j]
    return Cat(*bits)


def _mux_lo(load: int, a0: int, b0: int, a1: int, b1: int) -> int:
    return a0 if load else b0


def _mux_hi(load: int, a0: int, b0: int, a1: int, b1: int) -> int:
    return a1 if load else b1


class DelayLines(wiring.Component):
    """``count`` independent delay lines; line ``k`` delays by ``delays[k]`` cycles.

    Used as the skew (delays ``1, 2, ..., n``) and the deskew (``n-1, ..., 0``). ``latency`` is
    the largest delay.
    """

    def __init__(self, shape, delays: list[int]) -> None:
        if not delays or any(not isinstance(d, int) or d < 0 for d in delays):
            raise ValueError(f"delays must be non-negative integers, not {delays!r}")
        self._shape, self._delays = shape, list(delays)
        n = len(delays)
        super().__init__({"i": In(data.ArrayLayout(shape, n)), "o": Out(data.ArrayLayout(shape, n))})

    @property
    def latency(self) -> int:
        return max(self._delays)

    def elaborate(self, platform):
        m = Module()
        for k, d in enumerate(self._delays):
            prev = self.i[k]
            for s in range(d):
                reg = Signal(self._shape, name=f"line{k}_{s}")
                m.d.sync += reg.eq(prev)
                prev = reg
            m.d.comb += self.o[k].eq(prev)
        return m


def skew(shape, n: int) -> DelayLines:
    """Delays ``1..n``: the one register more than the stagger needs is the array's input
    register, so that no memory's read data reaches a PE's lanes in the cycle it is read (block
    RAM clock-to-output, the feeder's masks and the lanes were the engine's longest path,
    ``benchmarks/timing.py``)."""
    return DelayLines(shape, list(range(1, n + 1)))


def deskew(shape, n: int) -> DelayLines:
    return DelayLines(shape, list(range(n - 1, -1, -1)))


class SystolicArray(wiring.Component):
    """R x C PEs with inter-PE registers and per-column drain chains (lock-step, pre-skewed).

    Ports: ``x[r]`` (V activations) and ``ctl[r]`` (valid/first/last) enter row ``r`` skewed by
    ``r``; ``w[c]`` (V weights) enters column ``c`` skewed by ``c``. ``out[c]`` / ``out_valid[c]``
    / ``out_last[c]`` give column ``c``'s results, rows 0..R-1 on consecutive cycles, skewed by
    ``c``. ``latency``: cycles from the ``last`` step at PE(0, 0) to row 0 of column 0 at ``out``.
    """

    def __init__(self, cfg: ArrayConfig, *, pe_module: str | None = None,
                 drain_slots: int = 1) -> None:
        if not isinstance(cfg, ArrayConfig):
            raise ValueError(f"cfg must be an ArrayConfig, not {cfg!r}")
        if drain_slots not in (1, 2):
            raise ValueError(f"drain_slots must be 1 or 2, not {drain_slots!r}")
        self._cfg = cfg
        self._pe_module = pe_module
        self._slots = drain_slots
        pe, lane = cfg.pe, cfg.pe.lane
        self._pe_latency = ProcessingElement.latency_for(pe)
        xv = data.ArrayLayout(signed(lane.data_bits), pe.lanes)
        wv = data.ArrayLayout(weight_shape(lane), pe.lanes)
        super().__init__({
            "x": In(data.ArrayLayout(xv, cfg.rows)),
            "ctl": In(data.ArrayLayout(CTL, cfg.rows)),
            "w": In(data.ArrayLayout(wv, cfg.cols)),
            "out": Out(data.ArrayLayout(signed(pe.acc_bits), cfg.cols)),
            "out_valid": Out(data.ArrayLayout(1, cfg.cols)),
            "out_last": Out(data.ArrayLayout(1, cfg.cols)),
            "en": In(1, init=1),  # used only by black-box PE instances (pe_module)
        })

    @property
    def config(self) -> ArrayConfig:
        return self._cfg

    @property
    def latency(self) -> int:
        # the last row finishes R-1 cycles after row 0; the chain loads one cycle later
        return self._pe_latency + (self._cfg.rows - 1) + 1

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        rows, cols = cfg.rows, cfg.cols
        slots = self._slots
        if self._pe_module is None:
            pes = [[ProcessingElement(cfg.pe, slots=slots) for _ in range(cols)]
                   for _ in range(rows)]
        else:  # one Verilog module for all PEs (see EnabledPE); the enable goes in explicitly
            pes = [[PEInstance(cfg.pe, self._pe_module, self.en, slots=slots)
                    for _ in range(cols)] for _ in range(rows)]
        for r in range(rows):
            for c in range(cols):
                m.submodules[f"pe_{r}_{c}"] = pes[r][c]
        xv = self.x.shape().elem_shape
        wv = self.w.shape().elem_shape
        for r in range(rows):
            x_src, ctl_src = self.x[r], self.ctl[r]
            for c in range(cols):
                pe = pes[r][c]
                m.d.comb += [pe.x.eq(x_src), pe.valid.eq(ctl_src.valid),
                             pe.first.eq(ctl_src.first), pe.last.eq(ctl_src.last)]
                if c + 1 < cols:  # activations and control move right
                    x_reg = Signal(xv, name=f"x_{r}_{c}")
                    c_reg = Signal(CTL, name=f"ctl_{r}_{c}")
                    m.d.sync += [x_reg.eq(x_src), c_reg.eq(ctl_src)]
                    x_src, ctl_src = x_reg, c_reg
        for c in range(cols):
            w_src = self.w[c]
            for r in range(rows):
                m.d.comb += pes[r][c].w.eq(w_src)
                if r + 1 < rows:  # weights move down
                    w_reg = Signal(wv, name=f"w_{r}_{c}")
                    m.d.sync += w_reg.eq(w_src)
                    w_src = w_reg

        acc = signed(cfg.pe.acc_bits)
        # ``left != 0`` and ``left == 1`` kept in registers: the writer's logic starts at the
        # drain's valid flag, and the comparator in front of it was on a long path
        valids = [Signal(name=f"drain_valid_{c}") for c in range(cols)]
        lasts = [Signal(name=f"drain_last_{c}") for c in range(cols)]
        if slots == 2:
            loads, sels = self._slot_control(m, pes, valids[0], lasts[0])
        for c in range(cols):
            chain = [Signal(acc, name=f"drain_{r}_{c}") for r in range(rows)]
            left = Signal(range(rows + 1), name=f"drain_left_{c}")
            valid, last = valids[c], lasts[c]
            if slots == 2:  # each row's result from the holding register that has the tile
                load = loads[c]
                taken = [Mux(sels[c][r], pes[r][c].previous, pes[r][c].result)
                         for r in range(rows)]
            else:
                load = pes[rows - 1][c].result_valid
                taken = [pes[r][c].result for r in range(rows)]
            # each link takes a result on a load or the link above on a shift (DrainMux, two
            # bits per LUT) and holds otherwise (the flip-flops' enable); the top link loads only
            for r in range(rows - 1):
                if slots == 2:  # five inputs a bit: a LUT each, as Yosys maps the multiplexers
                    nxt = Mux(load, taken[r], chain[r + 1])
                elif self._pe_module is None:
                    nxt = drain_mux(m, load, pes[r][c].result, chain[r + 1],
                                    f"drain_mux_{r}_{c}")
                else:  # one module per array kind, like the PEs (and its own simulation view)
                    nxt = Signal(acc, name=f"drain_next_{r}_{c}")
                    m.submodules[f"drain_mux_{r}_{c}"] = Instance(
                        drain_module_name(self._pe_module), i_load=load,
                        i_a=pes[r][c].result, i_b=chain[r + 1], o_o=nxt)
                with m.If(load | valid):
                    m.d.sync += chain[r].eq(nxt)
            with m.If(load):
                m.d.sync += [chain[rows - 1].eq(taken[rows - 1]), left.eq(rows),
                             valid.eq(1), last.eq(rows == 1)]
            with m.Elif(valid):
                m.d.sync += [left.eq(left - 1), valid.eq(~last), last.eq(left == 2)]
            m.d.comb += [self.out[c].eq(chain[0]), self.out_valid[c].eq(valid),
                         self.out_last[c].eq(last)]
        return m

    def _slot_control(self, m: Module, pes, valid, last):
        """With two drain slots: each column's ``load`` and, per row, whether the tile it loads
        is in the PE's ``previous`` register. Worked out for column 0 alone (``valid`` and
        ``last`` are its chain's): every other column sees the same events a cycle after the
        column to its left (the activations and control move right one register per PE), so
        its signals are column 0's delayed, in registers.

        Column 0 loads when its chain is free (empty, or leaving its last row this cycle) and
        its bottom row holds a tile not yet loaded. Row ``r`` counts its tiles not yet loaded
        (``pend``, at most two: :class:`ArrayCore` spaces the ``last`` steps so); a load takes
        the older, which is in ``previous`` when the row holds two, counting one that ends this
        cycle."""
        rows, cols = self._cfg.rows, self._cfg.cols
        done = [pes[r][0].result_valid for r in range(rows)]
        pend = [Signal(range(3), name=f"drain_pend_{r}") for r in range(rows)]
        load = Signal(name="drain_load_0")
        m.d.comb += load.eq((~valid | last) & ((pend[rows - 1] != 0) | done[rows - 1]))
        sel = []
        for r in range(rows):
            s = Signal(name=f"drain_sel_{r}_0")
            m.d.comb += s.eq((pend[r] == 2) | ((pend[r] == 1) & done[r]))
            m.d.sync += pend[r].eq(pend[r] + done[r] - load)
            sel.append(s)
        loads, sels = [load], [sel]
        for c in range(1, cols):
            load = Signal(name=f"drain_load_{c}")
            sel = [Signal(name=f"drain_sel_{r}_{c}") for r in range(rows)]
            m.d.sync += load.eq(loads[-1])
            m.d.sync += [a.eq(b) for a, b in zip(sel, sels[-1], strict=True)]
            loads.append(load)
            sels.append(sel)
        return loads, sels


def core_signatures(cfg: ArrayConfig) -> tuple[stream.Signature, stream.Signature]:
    """Payload layouts of :class:`ArrayCore`'s input step and output row."""
    pe, lane = cfg.pe, cfg.pe.lane
    xv = data.ArrayLayout(signed(lane.data_bits), pe.lanes)
    wv = data.ArrayLayout(weight_shape(lane), pe.lanes)
    step = data.StructLayout({"x": data.ArrayLayout(xv, cfg.rows),
                              "w": data.ArrayLayout(wv, cfg.cols), "first": 1, "last": 1})
    row = data.StructLayout({"data": data.ArrayLayout(signed(pe.acc_bits), cfg.cols), "last": 1})
    return stream.Signature(step), stream.Signature(row)


class ArrayCore(wiring.Component):
    """Skew + systolic array + deskew with stream handshakes at the edges.

    Input ``i``: one step per transfer — ``x[r]`` (V activations per row), ``w[c]`` (V weights
    per column), ``first``/``last`` delimiting a dot product of ``J / V`` steps.
    Output ``o``: R transfers per dot product group, row 0 first; ``data[c]`` is the result of
    column ``c``; ``last`` marks row R-1.

    A ``last`` step is accepted at least R enabled cycles after the previous one (the drain
    needs R cycles); an early one waits (``ready`` low). With ``drain_slots=2`` (see
    :mod:`hw.array`) it is accepted at least ``2R`` enabled cycles after the one two before it.
    The whole pipeline freezes while ``o`` is valid and not ready, so no result is ever dropped.
    """

    def __init__(self, cfg: ArrayConfig, *, pe_module: str | None = None,
                 drain_slots: int = 1) -> None:
        self._cfg = cfg
        self._array = SystolicArray(cfg, pe_module=pe_module, drain_slots=drain_slots)
        self._slots = drain_slots
        i_sig, o_sig = core_signatures(cfg)
        super().__init__({"i": In(i_sig), "o": Out(o_sig)})

    @property
    def config(self) -> ArrayConfig:
        return self._cfg

    @property
    def latency(self) -> int:
        """Enabled cycles from accepting a ``last`` step to row 0 of its results at ``o``."""
        # the input register, then the array (skew of row R-1 is not on the path of PE(0,0));
        # deskew adds C-1 for column 0
        return 1 + self._array.latency + (self._cfg.cols - 1)

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        en = Signal()
        m.d.comb += en.eq(~self.o.valid | self.o.ready)

        inner = Module()
        inner.submodules.array = arr = self._array
        m.d.comb += arr.en.eq(en)  # only PE modules instantiated as black boxes need it
        xv = arr.x.shape().elem_shape
        wv = arr.w.shape().elem_shape
        inner.submodules.skew_x = sx = skew(xv, cfg.rows)
        inner.submodules.skew_ctl = sc = skew(CTL, cfg.rows)
        inner.submodules.skew_w = sw = skew(wv, cfg.cols)
        acc = signed(cfg.pe.acc_bits)
        inner.submodules.deskew = dk = deskew(acc, cfg.cols)

        # spacing of `last` steps: the drain chain is busy for R cycles after each load, and
        # a PE holds the results of ``slots`` dot products; ages[k]: enabled cycles since the
        # k-th latest accepted `last`, up to ``span``
        slots = self._slots
        span = slots * cfg.rows
        ages = [Signal(range(span + 1), init=span, name=f"last_age_{k}") for k in range(slots)]
        last_ok = Signal()
        m.d.comb += last_ok.eq(ages[-1] >= span)
        take = Signal()
        m.d.comb += [self.i.ready.eq(en & (last_ok | ~self.i.payload.last)),
                     take.eq(self.i.valid & self.i.ready)]
        older = [Mux(a < span, a + 1, span) for a in ages]
        with inner.If(take & self.i.payload.last):
            inner.d.sync += ages[0].eq(1)
            inner.d.sync += [a.eq(b) for a, b in zip(ages[1:], older[:-1], strict=True)]
        with inner.Else():
            inner.d.sync += [a.eq(b) for a, b in zip(ages, older, strict=True)]

        for r in range(cfg.rows):
            inner.d.comb += [sx.i[r].eq(self.i.payload.x[r]),
                             sc.i[r].valid.eq(take),
                             sc.i[r].first.eq(self.i.payload.first),
                             sc.i[r].last.eq(self.i.payload.last)]
            inner.d.comb += [arr.x[r].eq(sx.o[r]), arr.ctl[r].eq(sc.o[r])]
        for c in range(cfg.cols):
            inner.d.comb += [sw.i[c].eq(self.i.payload.w[c]), arr.w[c].eq(sw.o[c])]
            inner.d.comb += [dk.i[c].eq(arr.out[c]), self.o.payload.data[c].eq(dk.o[c])]
        # after the deskew every column is aligned with the last one (delay 0)
        inner.d.comb += [self.o.valid.eq(arr.out_valid[cfg.cols - 1]),
                         self.o.payload.last.eq(arr.out_last[cfg.cols - 1])]
        m.submodules.inner = EnableInserter(en)(inner)
        return m


class EnabledPE(wiring.Component):
    """A :class:`ProcessingElement` with an explicit clock enable ``en``: converted once to its
    own Verilog module when the generator emits arrays with :class:`PEInstance` s (one module
    definition for all R x C PEs makes the conversion of a large array fast)."""

    def __init__(self, cfg: PEConfig, *, slots: int = 1) -> None:
        self._pe = ProcessingElement(cfg, slots=slots)
        super().__init__({**ProcessingElement.members_for(cfg, slots=slots), "en": In(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.pe = EnableInserter(self.en)(self._pe)
        for name, member in self._pe.signature.members.items():
            ours, theirs = getattr(self, name), getattr(self._pe, name)
            m.d.comb += (theirs.eq(ours) if member.flow is In else ours.eq(theirs))
        return m


class PEInstance(wiring.Component):
    """A black-box instance of the module ``name`` (an :class:`EnabledPE` converted on its
    own), with the ports of a :class:`ProcessingElement`."""

    def __init__(self, cfg: PEConfig, name: str, en, *, slots: int = 1) -> None:
        self._name, self._en = name, en
        super().__init__(ProcessingElement.members_for(cfg, slots=slots))

    def elaborate(self, platform):
        from amaranth.hdl import ClockSignal, Instance, ResetSignal

        m = Module()
        ports = {"i_clk": ClockSignal(), "i_rst": ResetSignal(), "i_en": self._en}
        for name, member in self.signature.members.items():
            ports[("i_" if member.flow is In else "o_") + name] = \
                Value.cast(getattr(self, name))
        m.submodules.pe = Instance(self._name, **ports)
        return m


def pe_modules_rtlil(cfg: ArrayConfig, pe_module: str, *, drain_slots: int = 1) -> list[str]:
    """The RTLIL of the modules an array built with ``pe_module`` instantiates, each converted
    once: its PE (:class:`EnabledPE`, named ``pe_module``) and, with two rows or more and one
    drain slot, its drain links' multiplexer (:func:`drain_module_name`). To Verilog with
    :func:`hw.convert.rtlil_to_verilog`."""
    from hw.convert import to_rtlil

    parts = [to_rtlil(EnabledPE(cfg.pe, slots=drain_slots), pe_module)]
    if cfg.rows >= 2 and drain_slots == 1:
        parts.append(to_rtlil(DrainMux(cfg.pe.acc_bits), drain_module_name(pe_module)))
    return parts


def array_core_verilog(cfg: ArrayConfig, name: str, *, simulation_view: bool = False,
                       drain_slots: int = 1) -> str:
    """An :class:`ArrayCore` as one Verilog file (top module ``name``) the way the generator
    emits its arrays: one module for all R x C PEs (``<name>_pe``), instantiated R x C times.
    Converted PE by PE, a 16x16x8 array is 2,055 modules, which Verilator builds slowly.
    ``simulation_view``: the PEs' hand-placed cells described behaviourally, as
    ``hw.top.emit_verilog`` has it (what ``shiftadd sim`` builds)."""
    import contextlib

    from hw.convert import rtlil_to_verilog, to_rtlil
    from hw.xilinx import simulation_view as sim_view

    pe = f"{name}_pe"
    with sim_view() if simulation_view else contextlib.nullcontext():
        texts = [*pe_modules_rtlil(cfg, pe, drain_slots=drain_slots),
                 to_rtlil(ArrayCore(cfg, pe_module=pe, drain_slots=drain_slots), name)]
    return "\n".join(rtlil_to_verilog(texts))
