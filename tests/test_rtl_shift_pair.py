"""Tier B: ShiftPair (hand-placed LUT6/CARRY4, simulated with hw/xilinx.py's models) in
Verilator: every weight pair against extreme activations, then random ones, bit-exact."""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.config import LaneConfig, LaneKind
from hw.lanes import ShiftPair
from sim import rtl

# (data_bits, shift_max, extreme values used): the sign at the end, with and without a full top
# shift bit (0..7, 0..5), no shift at all, one shift bit; the sign first (ShiftPair.sign_first)
# with lane b's three-way fold (0..8, 0..11, 0..2) and without (0..14, FIX32's 0..3)
CONFIGS = [(8, 7, 6), (8, 5, 6), (8, 14, 3), (8, 0, 6), (8, 1, 6), (32, 3, 6), (8, 8, 6),
           (8, 11, 3), (8, 2, 6)]


class PairBank(wiring.Component):
    """One ShiftPair per configuration, side by side (one Verilator build for all)."""

    def __init__(self) -> None:
        self._pairs = [ShiftPair(LaneConfig(LaneKind.SHIFT, b, k)) for b, k, _ in CONFIGS]
        super().__init__({f"{n}{i}": (In if n in "xw" else Out)(p.signature.members[n].shape)
                          for i, p in enumerate(self._pairs) for n in ("x", "w", "y", "neg")})

    def elaborate(self, platform):
        m = Module()
        for i, p in enumerate(self._pairs):
            m.submodules[f"pair{i}"] = p
            m.d.comb += [p.x.eq(getattr(self, f"x{i}")), p.w.eq(getattr(self, f"w{i}")),
                         getattr(self, f"y{i}").eq(p.y), getattr(self, f"neg{i}").eq(p.neg)]
        return m


def test_shift_pair_every_weight_pair(seed):
    build = rtl.build(PairBank, "shift_pairs", {"configs": CONFIGS})
    rtl.run(build, "sim.tb.pair_tb", {"configs": CONFIGS, "random": 1000}, seed=seed)
