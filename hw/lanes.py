"""Arithmetic lanes: the multiplication-free replacements of a MAC's multiplier.

Both lanes are combinational; the PE registers their outputs. Their numeric meaning is
``docs/NUMERICS.md`` (adder_conv and shift_conv terms).
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw.config import LaneConfig, LaneKind
from hw.xilinx import carry_chain, lut6, lut6_2, placing_primitives


def shift_weight_layout(cfg: LaneConfig) -> data.StructLayout:
    """One shift weight: ``sign`` in {-1, 0, +1} (2-bit signed) and the left shift
    ``s = exp_max - exp`` (``shift_bits`` wide; absent when ``shift_max == 0``)."""
    fields: dict = {"sign": signed(2)}
    if cfg.shift_bits:
        fields["shift"] = unsigned(cfg.shift_bits)
    return data.StructLayout(fields)


def weight_shape(cfg: LaneConfig):
    """The shape of one lane's weight port."""
    if cfg.kind is LaneKind.SHIFT:
        return shift_weight_layout(cfg)
    return signed(cfg.data_bits)


class _Lane(wiring.Component):
    """Common part of the lanes: one :class:`LaneConfig` of the lane's own kind, latency 0."""

    kind: LaneKind
    latency = 0

    def __init__(self, cfg: LaneConfig, ports: dict) -> None:
        if not isinstance(cfg, LaneConfig) or cfg.kind is not self.kind:
            raise ValueError(f"{type(self).__name__} needs a {self.kind.value} LaneConfig, "
                             f"not {cfg!r}")
        self._cfg = cfg
        super().__init__(ports)

    @property
    def config(self) -> LaneConfig:
        return self._cfg


class AdderLane(_Lane):
    """``y = |x - w|`` for signed ``data_bits``-wide ``x`` and ``w``; ``y`` is unsigned, same width
    (``|x - w| <= 2**B - 1``). Combinational (latency 0)."""

    kind = LaneKind.ADDER

    def __init__(self, cfg: LaneConfig) -> None:
        b = cfg.data_bits
        super().__init__(cfg, {"x": In(signed(b)), "w": In(signed(b)), "y": Out(unsigned(b))})

    def elaborate(self, platform):
        m = Module()
        b = self._cfg.data_bits
        d = Signal(signed(b + 1))
        m.d.comb += d.eq(self.x - self.w)
        m.d.comb += self.y.eq(Mux(d[-1], -d, d)[:b])
        return m


class ShiftLane(_Lane):
    """The term ``sign * (x << s)`` of a shift conv, aligned to ``2**-exp_max``, as a ones'
    complement pair: ``y + neg == sign * (x << s)``.

    ``y`` is ``x << s`` (signed, ``data_bits + shift_max`` bits), bit-inverted when the sign is
    negative and zero when it is zero; ``neg`` is 1 for a negative sign. Negation thus costs no
    carry chain in the lane: the PE adds the count of ``neg`` bits once per step (measured: 57 ->
    47 LUTs per lane at ``shift_max = 7``, V = 16). Shift amounts above ``shift_max`` are outside the
    contract (the compiler never emits them). Combinational (latency 0).
    """

    kind = LaneKind.SHIFT

    def __init__(self, cfg: LaneConfig) -> None:
        super().__init__(cfg, {"x": In(signed(cfg.data_bits)), "w": In(shift_weight_layout(cfg)),
                               "y": Out(signed(cfg.out_bits)), "neg": Out(1)})

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        width = cfg.out_bits
        mag = Signal(signed(width))
        m.d.comb += mag.eq(self.x)  # sign-extended to the shifted width
        if cfg.shift_bits:
            shifted = Signal(signed(width))
            m.d.comb += shifted.eq((mag << self.w.shift)[:width])
            mag = shifted
        neg = self.w.sign[-1]
        m.d.comb += [self.y.eq(Mux(self.w.sign == 0, 0, mag ^ neg.replicate(width))),
                     self.neg.eq(neg)]
        return m


class ShiftPair(wiring.Component):
    """Two shift lanes and the adder that sums them, with lane ``b``'s last shifter stage folded
    into the adder's LUTs: ``y + neg == sign_a * (x_a << s_a) + sign_b * (x_b << s_b)``.

    Lane ``a`` is a :class:`ShiftLane`. Lane ``b`` shifts by the low bits of ``s`` only (``y1 =
    x << (s mod T)``, ``T`` the weight of the top shift bit); the top bit, the ones' complement
    and the zero sign are applied per sum bit inside the ``LUT6`` that feeds the carry chain:
    ``S_j = a_j ^ (zero ? 0 : (h ? y1[j - T] : y1[j]) ^ neg_b)`` — six inputs, one LUT, where a
    separate shifter would take another LUT per bit (measured in ``docs/HARDWARE.md``). Lane
    ``a``'s ``neg`` is the chain's carry-in; lane ``b``'s leaves as ``neg`` for a later adder.
    ``y`` is ``out_bits + 1`` wide (exact). Combinational (latency 0); hand-placed 7-series
    primitives (:mod:`hw.xilinx`).
    """

    latency = 0

    def __init__(self, cfg: LaneConfig) -> None:
        if not isinstance(cfg, LaneConfig) or cfg.kind is not LaneKind.SHIFT:
            raise ValueError(f"ShiftPair needs a shift LaneConfig, not {cfg!r}")
        self._cfg = cfg
        super().__init__({"x": In(data.ArrayLayout(signed(cfg.data_bits), 2)),
                          "w": In(data.ArrayLayout(shift_weight_layout(cfg), 2)),
                          "y": Out(signed(cfg.out_bits + 1)), "neg": Out(1)})

    @property
    def config(self) -> LaneConfig:
        return self._cfg

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        width = cfg.out_bits
        m.submodules.lane_a = a = ShiftLane(cfg)
        m.d.comb += [a.x.eq(self.x[0]), a.w.eq(self.w[0])]
        if not placing_primitives():  # the simulation view: the same sum, behaviourally
            m.submodules.lane_b = b = ShiftLane(cfg)
            m.d.comb += [b.x.eq(self.x[1]), b.w.eq(self.w[1]),
                         self.y.eq(a.y + b.y + a.neg), self.neg.eq(b.neg)]
            return m
        xb, wb = self.x[1], self.w[1]
        top = 1 << (cfg.shift_bits - 1) if cfg.shift_bits else 0  # weight of the top shift bit
        w1 = cfg.data_bits + (min(top - 1, cfg.shift_max) if top else 0)
        y1 = Signal(signed(w1))
        if cfg.shift_bits > 1:
            m.d.comb += y1.eq((xb.as_signed() << wb.shift[:cfg.shift_bits - 1])[:w1])
        else:
            m.d.comb += y1.eq(xb)
        zero, neg = Signal(), wb.sign[-1]
        m.d.comb += zero.eq(wb.sign == 0)
        s_bits = []
        for j in range(width + 1):
            jj = min(j, width - 1)  # both operands sign-extended to the sum's width
            ins = [a.y[jj], zero, neg, y1[min(jj, w1 - 1)]]
            if top:
                ins.append(wb.shift[cfg.shift_bits - 1])
                if jj >= top:
                    ins.append(y1[min(jj - top, w1 - 1)])
                fn = _folded_bit_shifted
            else:
                fn = _folded_bit
            s_bits.append(lut6(m, ins, fn, f"s{j}"))
        total = carry_chain(m, s_bits, [a.y[min(j, width - 1)] for j in range(width + 1)],
                            a.neg, "chain")
        m.d.comb += [self.y.eq(Cat(*total)), self.neg.eq(neg)]
        return m


def _folded_bit(a: int, zero: int, neg: int, q: int) -> int:
    return a ^ (0 if zero else q ^ neg)


def _folded_bit_shifted(a: int, zero: int, neg: int, q: int, h: int, p: int = 0) -> int:
    """``p`` is absent (0) for sum bits below the top shift's weight."""
    return a ^ (0 if zero else (p if h else q) ^ neg)


class AdderPair(wiring.Component):
    """Two adder lanes and the adder that sums them, with both absolute values folded into the
    adder's LUTs: ``y + neg == |x_a - w_a| + |x_b - w_b|``.

    Each lane keeps its subtractor ``d = x - w`` (``data_bits + 1`` bits, sign ``s``). ``|d| =
    (d ^ s) + s``: the inversions are applied per sum bit inside the LUT that feeds the carry
    chain, ``S_j = (d_a[j] ^ s_a) ^ (d_b[j] ^ s_b)``, whose second output gives the chain's
    ``DI_j = d_a[j] ^ s_a`` (``LUT6_2``: four shared inputs, one LUT per bit, where each absolute
    value would take a carry chain of its own). Lane ``b``'s ``+ s_b`` is the chain's carry-in;
    lane ``a``'s ``+ s_a`` leaves as ``neg`` for a later adder's carry-in. ``y`` is unsigned,
    ``data_bits + 1`` wide. Combinational (latency 0); hand-placed 7-series
    primitives (:mod:`hw.xilinx`), described behaviourally in the simulation view.
    """

    latency = 0

    def __init__(self, cfg: LaneConfig) -> None:
        if not isinstance(cfg, LaneConfig) or cfg.kind is not LaneKind.ADDER:
            raise ValueError(f"AdderPair needs an adder LaneConfig, not {cfg!r}")
        self._cfg = cfg
        b = cfg.data_bits
        super().__init__({"x": In(data.ArrayLayout(signed(b), 2)),
                          "w": In(data.ArrayLayout(signed(b), 2)),
                          "y": Out(unsigned(b + 1)), "neg": Out(1)})

    @property
    def config(self) -> LaneConfig:
        return self._cfg

    def elaborate(self, platform):
        m = Module()
        b = self._cfg.data_bits
        d = [Signal(signed(b + 1), name=f"d_{n}") for n in "ab"]
        m.d.comb += [d[n].eq(self.x[n] - self.w[n]) for n in range(2)]
        sa, sb = d[0][-1], d[1][-1]
        # |d| - s = d ^ s fits b bits unsigned (|x - w| <= 2**b - 1)
        if not placing_primitives():  # the simulation view: the same sum, behaviourally
            ua = (d[0] ^ sa.replicate(b + 1))[:b]
            ub = (d[1] ^ sb.replicate(b + 1))[:b]
            m.d.comb += [self.y.eq(ua + ub + sb), self.neg.eq(sa)]
            return m
        # one dual-output LUT per sum bit: O6 the chain's select, O5 its DI (lane a's operand)
        s_bits, di = zip(*(lut6_2(m, [d[0][j], sa, d[1][j], sb], _abs_sum_bit, _abs_bit_a,
                                  f"s{j}") for j in range(b)), strict=True)
        total = carry_chain(m, [*s_bits, Const(0, 1)], [*di, Const(0, 1)], sb, "chain")
        m.d.comb += [self.y.eq(Cat(*total)), self.neg.eq(sa)]
        return m


def _abs_sum_bit(da: int, sa: int, db: int, sb: int) -> int:
    return (da ^ sa) ^ (db ^ sb)


def _abs_bit_a(da: int, sa: int, db: int, sb: int) -> int:
    return da ^ sa


class MacLane(_Lane):
    """``y = x * w`` (signed): the multiplier a ShiftAddNet removes. Area baseline only."""

    kind = LaneKind.MAC

    def __init__(self, cfg: LaneConfig) -> None:
        b = cfg.data_bits
        super().__init__(cfg, {"x": In(signed(b)), "w": In(signed(b)), "y": Out(signed(2 * b))})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.y.eq(self.x * self.w)
        return m


def make_lane(cfg: LaneConfig) -> AdderLane | ShiftLane | MacLane:
    return {LaneKind.ADDER: AdderLane, LaneKind.SHIFT: ShiftLane, LaneKind.MAC: MacLane}[
        cfg.kind](cfg)
