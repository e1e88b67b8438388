"""Post-processing units: the ``requant``, ``add`` and ``avgpool`` ops of ``docs/NUMERICS.md``.

The requantizer computes ``y = sat_B(relu?((acc * mult + bias) >> shift))``, the golden model's
``rshift_round`` requant in the form :func:`gen.numerics.floor_requant` gives it (the compiler
folds the rounding into the bias and scales ``mult`` so that every layer's shift lies in a
narrow range). The only multiplication in the accelerator lives here (per output value, not per
lane); on a 7-series part Vivado maps ``acc * mult + bias`` to a DSP48E1 slice. The compute
array uses none.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.hdl import EnableInserter
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from gen.numerics import ENGINE_MULT_BITS, SHIFT_LIMIT

SHIFT_PORT = unsigned(SHIFT_LIMIT.bit_length())


def _stream_enable(m: Module, i, o) -> Signal:
    """The pipeline advances unless its output is valid and not accepted; input ready = enable.
    The caller builds its stages in a Module wrapped by ``EnableInserter(en)``."""
    en = Signal()
    m.d.comb += [en.eq(~o.valid | o.ready), i.ready.eq(en)]
    return en


def _rshift_round(m: Module, v, shift, width: int, max_shift: int) -> Signal:
    """``gen.numerics.rshift_round`` for ``0 <= shift <= max_shift``: ``(v + 2**(shift-1)) >>
    shift``, computed as ``(w >> 1) + (w & 1)`` with ``w = (v << 1) >> shift`` (the bit below
    the kept ones decides the rounding). Exactly equal, and a shifter followed by an increment:
    no decoder for ``2**(shift-1)`` and no wide add in front of the shifter (``max_shift`` is
    the range the caller's ``shift`` signal already has)."""
    w = Signal(signed(len(v) + 1))
    v2 = Cat(Const(0, 1), v).as_signed()
    with m.Switch(shift):  # one multiplexer per bit over constant shifts (no shifter stages)
        for k in range(max_shift + 1):
            with m.Case(k):
                m.d.comb += w.eq(v2 >> k)
    r = Signal(signed(width))
    m.d.comb += r.eq(w[1:].as_signed() + w[0])
    return r


def _saturate(x, bits: int):
    """``gen.numerics.saturate`` as an expression: ``x`` fits ``bits`` when its bits from
    ``bits - 1`` up are all equal (a wide AND/OR, no comparator's carry chain)."""
    if len(x) <= bits:
        return x
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    top = x[bits - 1:]
    return Mux(top.all() | ~top.any(), x[:bits].as_signed(), Mux(x[-1], lo, hi))


def _rectify_saturate(m: Module, r, relu, bits: int):
    """``sat(relu ? max(r, 0) : r)``: the last step of requant and add."""
    x = Signal(signed(len(r)))
    m.d.comb += x.eq(Mux(relu & r[-1], 0, r))
    return _saturate(x, bits)


@dataclass(frozen=True)
class RequantConfig:
    """``acc_bits``: accumulator width in; ``bias_bits``: width of the per-channel bias;
    ``out_bits``: 8 (FIX8) or 32 (FIX32); ``shift_min`` .. ``shift_max``: the shifts the
    layers use (the compiler's, ``gen.compile.engine_requants``; a narrower range is a
    narrower shifter, and a shift outside it is outside the contract)."""

    acc_bits: int
    bias_bits: int
    out_bits: int
    shift_min: int = 0
    shift_max: int = SHIFT_LIMIT

    def __post_init__(self) -> None:
        for name, v, lo, hi in (("acc_bits", self.acc_bits, 2, 64),
                                ("bias_bits", self.bias_bits, 2, 64),
                                ("out_bits", self.out_bits, 2, 32),
                                ("shift_min", self.shift_min, 0, SHIFT_LIMIT),
                                ("shift_max", self.shift_max, self.shift_min, SHIFT_LIMIT)):
            if not isinstance(v, int) or not lo <= v <= hi:
                raise ValueError(f"{name} must be an integer in {lo}..{hi}, not {v!r}")

    @property
    def sum_bits(self) -> int:
        """Width of ``acc * mult + bias`` (exact)."""
        return max(self.acc_bits + ENGINE_MULT_BITS, self.bias_bits) + 1

    @property
    def pre_shift(self) -> int:
        """Low bits of ``acc * mult + bias`` that every shift in range drops: ``v >> s == (v >>
        p) >> (s - p)`` for ``p = shift_min``, so they are never kept."""
        return self.shift_min

    @property
    def shifter(self) -> tuple[int, int]:
        """``(width, shift bits)`` of the rounding shifter (what its area grows with)."""
        return self.sum_bits - self.pre_shift, (self.shift_max - self.pre_shift).bit_length()

    @property
    def extra_bits(self) -> tuple[int, int]:
        """Bits of the items a transfer brings beyond one, and of the sums kept beyond one
        (what a pooler adds; none here)."""
        return 0, 0


def requant_layouts(cfg: RequantConfig) -> tuple[data.StructLayout, data.StructLayout]:
    i = data.StructLayout({"acc": signed(cfg.acc_bits), "mult": signed(ENGINE_MULT_BITS),
                           "bias": signed(cfg.bias_bits)})
    o = data.StructLayout({"y": signed(cfg.out_bits)})
    return i, o


class Requantizer(wiring.Component):
    """Pipelined requantization with stream handshakes at both ends.

    Per item: ``acc``, ``mult``, ``bias`` (the channel's parameters travel with the value).
    Per layer (held constant while a layer runs, from at least the cycle its first item is
    offered): ``shift`` (``shift_min``..``shift_max``, registered inside) and ``relu``. With
    the output always ready, an item uses each of them ``ports_at[name]`` cycles after it is
    offered (so a user whose layers change item by item delays them by as much).
    Stages: operands (1), product and bias (2), shift (3), clamp (4): ``latency`` = 4.
    The pipeline freezes while the output is valid and not ready.
    """

    latency = 4
    ports_at = {"shift": 1, "relu": 3}

    def __init__(self, cfg: RequantConfig) -> None:
        if not isinstance(cfg, RequantConfig):
            raise ValueError(f"cfg must be a RequantConfig, not {cfg!r}")
        self._cfg = cfg
        i, o = requant_layouts(cfg)
        super().__init__({"i": In(stream.Signature(i)), "o": Out(stream.Signature(o)),
                          "shift": In(SHIFT_PORT), "relu": In(1)})

    @property
    def config(self) -> RequantConfig:
        return self._cfg

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        en = _stream_enable(m, self.i, self.o)
        p = Module()
        pre = cfg.pre_shift
        width = cfg.sum_bits - pre
        # stage 0: the operands, registered (the DSP48's input registers): the parameters come
        # straight from a block RAM, whose read added to the multiplier was too long a path
        acc, mult, bias = (Signal.like(self.i.payload[n], name=f"in_{n}")
                           for n in ("acc", "mult", "bias"))
        v0 = Signal()
        p.d.sync += [acc.eq(self.i.payload.acc), mult.eq(self.i.payload.mult),
                     bias.eq(self.i.payload.bias), v0.eq(self.i.valid)]
        # stage 1: v = (acc * mult + bias) >> pre (the DSP's multiplier and post-adder)
        full = Signal(signed(cfg.sum_bits))
        m.d.comb += full.eq(acc * mult + bias)
        v = Signal(signed(width))
        v1 = Signal()
        p.d.sync += [v.eq(full[pre:]), v1.eq(v0)]
        # stage 2: v >> (shift - pre), a multiplexer over the layers' range (the rounding is in
        # the bias; none for a single shift); the per-layer shift amount is registered first
        shifted = Signal(signed(width))
        span = cfg.shift_max - pre
        if span:
            t = Signal(range(span + 1))
            m.d.sync += t.eq(self.shift - pre)
            with m.Switch(t):
                for k in range(span + 1):
                    with m.Case(k):
                        m.d.comb += shifted.eq(v >> k)
        else:
            m.d.comb += shifted.eq(v)
        r = Signal(signed(width))
        r1 = Signal()
        p.d.sync += [r.eq(shifted), r1.eq(v1)]
        # stage 3: relu, saturate
        y = Signal(signed(cfg.out_bits))
        p.d.sync += [y.eq(_rectify_saturate(m, r, self.relu, cfg.out_bits)),
                     self.o.valid.eq(r1)]
        m.d.comb += self.o.payload.y.eq(y)
        m.submodules.pipe = EnableInserter(en)(p)
        return m


@dataclass(frozen=True)
class AddConfig:
    """Residual add of two ``in_bits`` operands into ``out_bits`` (``shift_max``: the largest
    alignment or rounding shift a layer may ask for)."""

    in_bits: int
    out_bits: int
    shift_max: int = 31

    def __post_init__(self) -> None:
        for name, v, lo, hi in (("in_bits", self.in_bits, 2, 32), ("out_bits", self.out_bits, 2, 32),
                                ("shift_max", self.shift_max, 0, SHIFT_LIMIT)):
            if not isinstance(v, int) or not lo <= v <= hi:
                raise ValueError(f"{name} must be an integer in {lo}..{hi}, not {v!r}")

    @property
    def sum_bits(self) -> int:
        return self.in_bits + self.shift_max + 1

    @property
    def shifter(self) -> tuple[int, int]:
        """``(width, shift bits)`` of the rounding shifter (what its area grows with)."""
        return self.sum_bits, self.shift_max.bit_length()

    @property
    def extra_bits(self) -> tuple[int, int]:
        """Bits of the items a transfer brings beyond one, and of the sums kept beyond one
        (what a pooler adds; none here)."""
        return 0, 0


class ResidualAdder(wiring.Component):
    """The ``add`` op: ``y = sat(relu?(rshift_round((a << sa) + (b << sb), s)))``.

    ``sa = F - frac(a)``, ``sb = F - frac(b)`` and ``s = F - frac(y)`` (``F = max(frac(a),
    frac(b))``) are per-layer ports, like ``relu``, valid from the cycle the first item is offered
    (``shift`` is registered inside); with the output always ready, an item uses each
    ``ports_at[name]`` cycles after it is offered. Stream in (``a``, ``b``), stream out
    (``y``); ``latency`` = 3 (operands, align and add, then round, rectify and clamp).
    """

    latency = 3
    ports_at = {"shift_a": 1, "shift_b": 1, "shift": 1, "relu": 2}

    def __init__(self, cfg: AddConfig) -> None:
        if not isinstance(cfg, AddConfig):
            raise ValueError(f"cfg must be an AddConfig, not {cfg!r}")
        self._cfg = cfg
        sb = max(1, cfg.shift_max.bit_length())  # a port of no bits is `[-1:0]` in Verilog
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({"a": signed(cfg.in_bits),
                                                        "b": signed(cfg.in_bits)}))),
            "o": Out(stream.Signature(data.StructLayout({"y": signed(cfg.out_bits)}))),
            "shift_a": In(unsigned(sb)), "shift_b": In(unsigned(sb)),
            "shift": In(unsigned(sb)), "relu": In(1)})

    @property
    def config(self) -> AddConfig:
        return self._cfg

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        en = _stream_enable(m, self.i, self.o)
        p = Module()
        width = cfg.sum_bits
        # stage 0: the operands, registered (one of them comes straight from a block RAM)
        a, b = Signal(signed(cfg.in_bits)), Signal(signed(cfg.in_bits))
        v0 = Signal()
        p.d.sync += [a.eq(self.i.payload.a), b.eq(self.i.payload.b), v0.eq(self.i.valid)]
        total = Signal(signed(width))
        v1 = Signal()
        p.d.sync += [total.eq((a << self.shift_a) + (b << self.shift_b)), v1.eq(v0)]
        shift = Signal.like(self.shift)  # stage 2's rounding shift: registered, like stage 1
        m.d.sync += shift.eq(self.shift)  # uses the alignment shifts in the item's first cycle
        r = _rshift_round(m, total, shift, width, cfg.shift_max)
        y = Signal(signed(cfg.out_bits))
        p.d.sync += [y.eq(_rectify_saturate(m, r, self.relu, cfg.out_bits)),
                     self.o.valid.eq(v1)]
        m.d.comb += self.o.payload.y.eq(y)
        m.submodules.pipe = EnableInserter(en)(p)
        return m


@dataclass(frozen=True)
class PoolConfig:
    """Average pooling of ``bits``-wide values over windows of up to ``max_window`` items, with
    rounding shifts up to ``shift_max``, taking ``inputs`` items per transfer, into one of
    ``groups`` sums at a time (windows whose items arrive interleaved)."""

    bits: int
    max_window: int
    shift_max: int = SHIFT_LIMIT
    inputs: int = 1
    groups: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.inputs, int) or not 1 <= self.inputs <= 16:
            raise ValueError(f"inputs must be an integer in 1..16, not {self.inputs!r}")
        if not isinstance(self.groups, int) or not 1 <= self.groups <= 256:
            raise ValueError(f"groups must be an integer in 1..256, not {self.groups!r}")
        if not isinstance(self.bits, int) or not 2 <= self.bits <= 32:
            raise ValueError(f"bits must be an integer in 2..32, not {self.bits!r}")
        if not isinstance(self.max_window, int) or self.max_window < 1:
            raise ValueError(f"max_window must be a positive integer, not {self.max_window!r}")
        if not isinstance(self.shift_max, int) or not 0 <= self.shift_max <= SHIFT_LIMIT:
            raise ValueError(f"shift_max must be an integer in 0..{SHIFT_LIMIT}, "
                             f"not {self.shift_max!r}")

    @property
    def sum_bits(self) -> int:
        return self.bits + (self.max_window - 1).bit_length()

    @property
    def shifter(self) -> tuple[int, int]:
        """``(width, shift bits)`` of the rounding shifter (what its area grows with)."""
        return self.sum_bits + 1, self.shift_max.bit_length()

    @property
    def extra_bits(self) -> tuple[int, int]:
        """Bits of the items a transfer brings beyond one (the adder tree in front of the
        sum), and of the sums kept beyond one (the group registers and the multiplexer that
        selects one)."""
        return (self.inputs - 1) * self.bits, (self.groups - 1) * (self.sum_bits + 1)


class AvgPooler(wiring.Component):
    """The ``avgpool`` op on a stream: transfers of ``inputs`` items ``x`` (all of them summed;
    a caller with fewer items sends zeros) with ``first``/``last`` marking a window; at
    each ``last`` it emits ``y = sat(rshift_round(sum, shift))``. With ``groups`` > 1 each
    transfer names its window's sum ``g``: up to ``groups`` windows may be open at once, their
    items interleaved (a conv's output words, channel block by channel block). ``shift =
    ceil(log2(k*k)) + frac(x) - frac(y)`` (``docs/NUMERICS.md``) is a per-layer port; the
    hardware shifts right only, so the generator must keep ``frac(y) <= ceil(log2(k*k)) +
    frac(x)`` (the quantizer uses ``frac(y) = frac(x)``). Windows are contiguous in the stream
    (the engine orders them). ``latency`` = 3 from the ``last`` item (the item registered, the
    sum, round and clamp). ``shift`` is registered inside: it must hold from the cycle the
    first item is offered (a window's sum starts from the rounding constant ``2**(shift-1)``).
    """

    latency = 3

    def __init__(self, cfg: PoolConfig) -> None:
        if not isinstance(cfg, PoolConfig):
            raise ValueError(f"cfg must be a PoolConfig, not {cfg!r}")
        self._cfg = cfg
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "x": data.ArrayLayout(signed(cfg.bits), cfg.inputs), "first": 1, "last": 1,
                "g": range(cfg.groups)}))),
            "o": Out(stream.Signature(data.StructLayout({"y": signed(cfg.bits)}))),
            "shift": In(SHIFT_PORT)})

    @property
    def config(self) -> PoolConfig:
        return self._cfg

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        en = _stream_enable(m, self.i, self.o)
        p = Module()
        # per layer: the shift, registered, and the rounding constant 2**(shift-1), with which
        # each window's sum starts, so that the result is the sum's plain shift:
        # (sum + 2**(shift-1)) >> shift == rshift_round(sum, shift)
        shift = Signal.like(self.shift)
        half = Signal(cfg.shift_max)
        m.d.sync += [shift.eq(self.shift),
                     half.eq(Mux(self.shift == 0, 0, Const(1, cfg.shift_max) <<
                                 (self.shift - 1)[:len(self.shift)]))]
        width = cfg.sum_bits + 1
        acc = Array(Signal(signed(width), name=f"acc{g}") for g in range(cfg.groups))
        total = Signal(signed(width))
        # stage 0: the items, registered (they come straight from a block RAM)
        x = [Signal(signed(cfg.bits), name=f"x{j}") for j in range(cfg.inputs)]
        x_valid, x_first, x_last = Signal(), Signal(), Signal()
        x_g = Signal(range(cfg.groups))
        p.d.sync += [*(x[j].eq(self.i.payload.x[j]) for j in range(cfg.inputs)),
                     x_valid.eq(self.i.valid), x_first.eq(self.i.payload.first),
                     x_last.eq(self.i.payload.last), x_g.eq(self.i.payload.g)]
        terms = [*x, Mux(x_first, half, acc[x_g])]
        while len(terms) > 1:  # a balanced tree
            terms = [terms[j] + terms[j + 1] if j + 1 < len(terms) else terms[j]
                     for j in range(0, len(terms), 2)]
        m.d.comb += total.eq(terms[0])
        done = Signal()
        s = Signal(signed(width))
        with p.If(x_valid):
            p.d.sync += acc[x_g].eq(total)
        p.d.sync += [done.eq(x_valid & x_last), s.eq(total)]
        r = Signal(signed(width))
        with m.Switch(shift):  # one multiplexer per bit over the constant shifts
            for k in range(cfg.shift_max + 1):
                with m.Case(k):
                    m.d.comb += r.eq(s >> k)
        y = Signal(signed(cfg.bits))
        p.d.sync += [y.eq(_saturate(r, cfg.bits)), self.o.valid.eq(done)]
        m.d.comb += self.o.payload.y.eq(y)
        m.submodules.pipe = EnableInserter(en)(p)
        return m


# each post-processing unit's component, by its name in ``EngineConfig.post_processing()``
UNITS = {"requant": Requantizer, "add": ResidualAdder, "pool": AvgPooler}
