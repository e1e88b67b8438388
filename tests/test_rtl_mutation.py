"""Mutation check: the RTL testbenches fail on deliberately broken hardware.

Each mutant is a subclass of a real component, swapped in while the Verilog is generated; the
same testbench that passes on the real design must report a mismatch.
"""

from __future__ import annotations

import inspect
import sys

import pytest
from amaranth import Module, Mux

import hw.lanes
import hw.pe
from hw.array import ArrayCore
from hw.config import ArrayConfig, LaneConfig, LaneKind, PEConfig
from hw.lanes import ShiftLane
from hw.tree import AdderTree
from sim import rtl


class DropLastLaneTree(AdderTree):
    """An adder tree that ignores its last input (same depth, so timing is unchanged)."""

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = inner = AdderTree(self._width, self._count - 1,
                                               signed_inputs=self._signed,
                                               register_every=self._every,
                                               carry_ins=self._carry_ins)
        m.d.comb += [inner.i[k].eq(self.i[k]) for k in range(self._count - 1)]
        if self._carry_ins and self._count > 2:
            m.d.comb += inner.ci.eq(self.ci[:self._count - 2])
        m.d.comb += self.o.eq(inner.o)
        return m


class ShiftOffByOneLane(ShiftLane):
    """A shift lane that shifts one place too far."""

    def elaborate(self, platform):
        m = Module()
        width = self.config.out_bits
        neg = self.w.sign[-1]
        mag = (self.x.as_signed() << (self.w.shift + 1))[:width]
        m.d.comb += [self.y.eq(Mux(self.w.sign == 0, 0, mag ^ neg.replicate(width))),
                     self.neg.eq(neg)]
        return m


def abs_sum_ignores_sign_b(da: int, sa: int, db: int, sb: int) -> int:
    """An AdderPair that takes lane b's difference as it is (no absolute value)."""
    return (da ^ sa) ^ db


def folded_bit_ignores_sign(a: int, zero: int, neg: int, q: int, h: int, p: int = 0) -> int:
    """The folded second lane of a ShiftPair, with its sign dropped (every term positive)."""
    return a ^ (0 if zero else (p if h else q))


def three_way_fold_ignores_top(a: int, s_next: int, s_top: int, d0: int, d1: int,
                               d2: int) -> int:
    """The folded second lane of a sign-first ShiftPair, its top shift (8) read as none."""
    return a ^ (d1 if s_next else d0)


# name: (lane kind, shift range 0..smax, the mutant, how it is swapped in)
MUTANTS = {
    "tree_drops_last_lane": ("adder", 0, DropLastLaneTree,
                             lambda mp: mp.setattr(hw.pe, "AdderTree", DropLastLaneTree)),
    # every shift PE lane: the unpaired ones and lane a of each ShiftPair
    "shift_off_by_one": ("shift", 5, ShiftOffByOneLane,
                         lambda mp: (mp.setattr(hw.lanes, "ShiftLane", ShiftOffByOneLane),
                                     mp.setattr(hw.pe, "ShiftLane", ShiftOffByOneLane))),
    "adder_pair_drops_abs": ("adder", 0, abs_sum_ignores_sign_b,
                             lambda mp: mp.setattr(hw.lanes, "_abs_sum_bit",
                                                   abs_sum_ignores_sign_b)),
    "pair_fold_ignores_sign": ("shift", 5, folded_bit_ignores_sign,
                               lambda mp: mp.setattr(hw.lanes, "_folded_bit_shifted",
                                                     folded_bit_ignores_sign)),
    "pair_three_way_fold_ignores_top": ("shift", 8, three_way_fold_ignores_top,
                                        lambda mp: mp.setattr(hw.lanes, "_folded_three",
                                                              three_way_fold_ignores_top)),
}


@pytest.mark.parametrize("mutant", list(MUTANTS))
def test_testbench_fails_on_mutant(monkeypatch, mutant, seed):
    kind, smax, cls, apply = MUTANTS[mutant]
    # adder: 8 lanes are 4 pair sums; 4 -> 3 tree inputs keeps the tree's depth, so only the
    # arithmetic differs
    lanes = 8 if kind == "adder" else 4
    cfg = ArrayConfig(PEConfig(LaneConfig(LaneKind(kind), 8, smax), lanes, 24, 1), 2, 2)
    apply(monkeypatch)
    # this file's text is in the key: a changed patch must not reuse an old mutant's build
    key = {"mutant": mutant, "cfg": repr(cfg), "source": inspect.getsource(cls),
           "patches": inspect.getsource(sys.modules[__name__])}
    build = rtl.build(lambda: ArrayCore(cfg), f"mutant_{mutant}", key)
    tb = {"kind": kind, "data_bits": 8, "shift_max": smax, "lanes": lanes, "rows": 2, "cols": 2,
          "acc_bits": 24, "steps": 3, "tiles": 3, "idle": 0.0, "backpressure": 0.0}
    with pytest.raises(rtl.RTLTestFailure, match="got"):
        rtl.run(build, "sim.tb.array_tb", tb, seed=seed, tests="dot_products")
