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

    Lane ``a``'s ``neg`` is the chain's carry-in; lane ``b``'s leaves as ``neg`` for a later
    adder. ``y`` is ``out_bits + 1`` wide (exact). Combinational (latency 0); hand-placed
    7-series primitives (:mod:`hw.xilinx`). Two structures, by the shift field's width:

    * **The sign at the end** (an odd width, or none): each lane's shifter is a ``4:1`` LUT
      stage per pair of shift bits and a ``2:1`` stage for the top bit, where the ones'
      complement and the zero sign join it (five inputs, one LUT per bit; lane ``a`` is a
      :class:`ShiftLane`, which Yosys maps so). Lane ``b``'s top stage is folded into the sum's
      LUT: ``S_j = a_j ^ (zero ? 0 : (h ? y1[j - T] : y1[j]) ^ neg_b)`` — six inputs, one LUT,
      where a separate stage would take another LUT per bit (``docs/HARDWARE.md``).
    * **The sign first** (an even width: ranges 0..2, 0..3 and 0..8 to 0..14): the top stage
      is a ``4:1`` too, with no input left for the sign, so each lane applies its sign to the
      activation instead (``x ^ neg``, 0 for a zero sign: a ``LUT6_2`` per two bits) and
      shifts in ``neg`` from below (``~(x << s) = (~x << s) | (2**s - 1)``). Lane ``a`` is a
      ``4:1`` stage per pair of shift bits; where the top pair never reaches ``0b11`` (0..2,
      0..8 to 0..11), lane ``b``'s top stage selects among three and is folded into the sum's
      LUT: ``S_j = a_j ^ (s_top ? y1[j - 2T] : s_next ? y1[j - T] : y1[j])`` (``T`` the weight
      of ``s_next``); elsewhere lane ``b`` is as above. At 0..8 this saves
      a fifth of a shift PE's LUTs (``BENCHMARKS.md``); a shift above ``shift_max``, which
      the compiler never emits, may then give another sum (``gen.equiv`` proves the views
      equal over the contract).
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

    @staticmethod
    def sign_first(cfg: LaneConfig) -> bool:
        """Do the lanes apply their sign to the activation (an even shift field)?"""
        return cfg.shift_bits > 0 and cfg.shift_bits % 2 == 0

    @staticmethod
    def folds_three(cfg: LaneConfig) -> bool:
        """With the sign first, is lane ``b``'s top stage (three ways) folded into the sum?"""
        return ShiftPair.sign_first(cfg) and cfg.shift_max < 3 << (cfg.shift_bits - 2)

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        width = cfg.out_bits
        if not placing_primitives():  # the simulation view: the same sum, behaviourally
            m.submodules.lane_a = a = ShiftLane(cfg)
            m.submodules.lane_b = b = ShiftLane(cfg)
            m.d.comb += [a.x.eq(self.x[0]), a.w.eq(self.w[0]),
                         b.x.eq(self.x[1]), b.w.eq(self.w[1]),
                         self.y.eq(a.y + b.y + a.neg), self.neg.eq(b.neg)]
            return m
        if self.sign_first(cfg):
            ya, neg_a = _signed_first(m, self.x[0], self.w[0], cfg.shift_bits, width, "a")
        else:
            m.submodules.lane_a = a = ShiftLane(cfg)
            m.d.comb += [a.x.eq(self.x[0]), a.w.eq(self.w[0])]
            ya, neg_a = [a.y[j] for j in range(width)], a.neg
        xb, wb = self.x[1], self.w[1]
        neg = wb.sign[-1]
        a_bits = [ya[min(j, width - 1)] for j in range(width + 1)]  # sign-extended to the sum
        if self.folds_three(cfg):
            lower = cfg.shift_bits - 2  # the shift bits below the top pair
            y1, _ = _signed_first(m, xb, wb, lower, cfg.data_bits + (1 << lower) - 1, "b")
            step = 1 << lower
            sel = [wb.shift[lower], wb.shift[lower + 1]]
            # both operands sign-extended to the sum's width, lane b from its out_bits as in
            # the simulation view (so a shift above shift_max whose top two bits are not both
            # set gives the same sum there too: gen.equiv.WithinContract)
            s_bits = [lut6(m, [a_bits[j], *sel, *(_bit(y1, min(j, width - 1) - step * k, neg)
                                                  for k in range(3))], _folded_three, f"s{j}")
                      for j in range(width + 1)]
        else:
            s_bits = self._fold_two(m, cfg, a_bits, xb, wb)
        total = carry_chain(m, s_bits, a_bits, neg_a, "chain")
        m.d.comb += [self.y.eq(Cat(*total)), self.neg.eq(neg)]
        return m

    @staticmethod
    def _fold_two(m: Module, cfg: LaneConfig, a_bits: list, xb, wb) -> list:
        """The sign at the end: lane ``b`` shifts by the low bits of ``s`` only (``y1 = x << (s
        mod T)``, ``T`` the weight of the top shift bit); the top bit, the ones' complement and
        the zero sign are applied per sum bit."""
        width = cfg.out_bits
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
            ins = [a_bits[j], zero, neg, y1[min(jj, w1 - 1)]]
            if top:
                ins.append(wb.shift[cfg.shift_bits - 1])
                if jj >= top:
                    ins.append(y1[min(jj - top, w1 - 1)])
                fn = _folded_bit_shifted
            else:
                fn = _folded_bit
            s_bits.append(lut6(m, ins, fn, f"s{j}"))
        return s_bits


def _folded_bit(a: int, zero: int, neg: int, q: int) -> int:
    return a ^ (0 if zero else q ^ neg)


def _folded_bit_shifted(a: int, zero: int, neg: int, q: int, h: int, p: int = 0) -> int:
    """``p`` is absent (0) for sum bits below the top shift's weight."""
    return a ^ (0 if zero else (p if h else q) ^ neg)


def _bit(bits: list, i: int, fill):
    """Bit ``i`` of a value given as bits: sign-extended above, ``fill`` below bit 0."""
    return fill if i < 0 else bits[min(i, len(bits) - 1)]


def _signed_first(m: Module, x, w, shift_bits: int, width: int, name: str) -> tuple[list, object]:
    """``y + neg == sign * (x << s)`` for the low ``shift_bits`` (even) bits of ``s``, the sign
    applied first: ``x ^ neg`` (0 for a zero sign), a ``LUT6_2`` per two bits, then a ``4:1``
    LUT stage per pair of shift bits shifting ``neg`` in from below. Returns ``width`` bits of
    ``y`` and ``neg``."""
    neg = w.sign[-1]
    b = len(x)
    xs = []
    for i in range(0, b, 2):
        o6, o5 = lut6_2(m, [x[i], x[min(i + 1, b - 1)], w.sign[0], w.sign[1]],
                        _signed_hi, _signed_lo, f"{name}_x{i}")
        xs += [o5, o6][:b - i]
    bits = xs
    for p in range(0, shift_bits, 2):
        step, sel = 1 << p, [w.shift[p], w.shift[p + 1]]
        last = p + 2 >= shift_bits
        n = width if last else min(len(bits) + 3 * step, width)
        out = []
        for j in range(n):
            src = [min(j - step * k, len(bits) - 1) for k in range(4)]  # -ve: neg shifted in
            if len(set(src)) == 1 and src[0] >= 0:  # above every shift: the sign bit itself
                out.append(bits[src[0]])
                continue
            out.append(lut6(m, [*sel, *(bits[i] if i >= 0 else neg for i in src)], _mux4,
                            f"{name}_p{p}_{j}"))
        bits = out
    return bits, neg


def _signed_lo(x0: int, x1: int, s0: int, s1: int) -> int:
    return (x0 ^ s1) if (s0 or s1) else 0


def _signed_hi(x0: int, x1: int, s0: int, s1: int) -> int:
    return (x1 ^ s1) if (s0 or s1) else 0


def _mux4(s0: int, s1: int, d0: int, d1: int, d2: int, d3: int) -> int:
    return (d0, d1, d2, d3)[s0 + 2 * s1]


def _folded_three(a: int, s_next: int, s_top: int, d0: int, d1: int, d2: int) -> int:
    return a ^ (d2 if s_top else d1 if s_next else d0)


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
