"""Arithmetic lanes: the multiplication-free replacements of a MAC's multiplier.

Both lanes are combinational; the PE registers their outputs. Their numeric meaning is
``docs/NUMERICS.md`` (adder_conv and shift_conv terms).
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw.config import LaneConfig, LaneKind


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


def out_shape(cfg: LaneConfig):
    return signed(cfg.out_bits) if cfg.out_signed else unsigned(cfg.out_bits)


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
