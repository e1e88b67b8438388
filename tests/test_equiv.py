"""The synthesis views of ShiftPair, AdderPair and the trees' TernaryAdder (hand-placed
LUT6/LUT6_2/CARRY4) and their simulation views (what every engine simulation runs) are proven
equal by Yosys SAT; a broken fold or carry must fail the proof."""

from __future__ import annotations

import pytest

import hw.array
import hw.lanes
import hw.tree
from gen.equiv import (
    EquivalenceError,
    hand_placed,
    pair_class,
    prove,
    prove_pair,
    start_proof,
)
from hw.array import DrainMux
from hw.config import ArrayConfig, LaneConfig, LaneKind, PEConfig
from hw.lanes import ShiftPair
from hw.tree import TernaryAdder


# shift ranges of each structure: the sign at the end (0..7, 0..5, 0..1, none), the sign first
# with lane b's three-way fold (0..8, 0..11, 0..2) and without it (0..14, 0..3)
@pytest.mark.parametrize("kind,b,smax", [
    (LaneKind.SHIFT, 8, 7), (LaneKind.SHIFT, 8, 5), (LaneKind.SHIFT, 8, 14),
    (LaneKind.SHIFT, 8, 0), (LaneKind.SHIFT, 8, 1), (LaneKind.SHIFT, 32, 7),
    (LaneKind.SHIFT, 8, 8), (LaneKind.SHIFT, 8, 11), (LaneKind.SHIFT, 8, 2),
    (LaneKind.SHIFT, 8, 3), (LaneKind.ADDER, 8, 0), (LaneKind.ADDER, 32, 0)])
def test_views_proven_equal(kind, b, smax):
    cfg = LaneConfig(kind, b, smax)
    if kind is LaneKind.SHIFT:
        assert ShiftPair.folds_three(cfg) == (smax in (8, 11, 2))
        assert ShiftPair.sign_first(cfg) == (smax in (8, 11, 2, 14, 3))
    assert prove_pair(cfg) > 0


def test_proof_fails_on_a_broken_three_way_fold(monkeypatch):
    def top_ignored(a, s_next, s_top, d0, d1, d2):  # a shift of 8 read as 0
        return a ^ (d1 if s_next else d0)

    monkeypatch.setattr(hw.lanes, "_folded_three", top_ignored)
    with pytest.raises(EquivalenceError, match="ShiftPair.*not proven equal"):
        prove_pair(LaneConfig(LaneKind.SHIFT, 8, 8))


def test_proof_fails_on_a_broken_sign_first_activation(monkeypatch):
    def zero_kept(x0, x1, s0, s1):  # a zero sign passes the activation through
        return x0 ^ s1

    monkeypatch.setattr(hw.lanes, "_signed_lo", zero_kept)
    with pytest.raises(EquivalenceError, match="ShiftPair.*not proven equal"):
        prove_pair(LaneConfig(LaneKind.SHIFT, 8, 14))


def test_sign_first_pair_differs_beyond_the_contract():
    """A shift above shift_max (never emitted) may give another sum: the proof holds the
    shifts to the contract, and without that the views are not equal."""
    cfg = LaneConfig(LaneKind.SHIFT, 8, 8)
    with pytest.raises(EquivalenceError, match="not proven equal"):
        start_proof("ShiftPair unbounded", lambda: ShiftPair(cfg), lambda: ShiftPair(cfg))()


def test_proof_fails_on_a_broken_shift_fold(monkeypatch):
    def ignores_sign(a, zero, neg, q, h, p=0):
        return a ^ (0 if zero else (p if h else q))

    monkeypatch.setattr(hw.lanes, "_folded_bit_shifted", ignores_sign)
    with pytest.raises(EquivalenceError, match="ShiftPair.*not proven equal"):
        prove_pair(LaneConfig(LaneKind.SHIFT, 8, 7))


def test_proof_fails_on_a_broken_absolute_value(monkeypatch):
    def ignores_sign_b(da, sa, db, sb):  # lane b's difference taken as it is: no |.|
        return (da ^ sa) ^ db

    monkeypatch.setattr(hw.lanes, "_abs_sum_bit", ignores_sign_b)
    with pytest.raises(EquivalenceError, match="AdderPair.*not proven equal"):
        prove_pair(LaneConfig(LaneKind.ADDER, 8))


@pytest.mark.parametrize("kind,b,smax,lanes", [(LaneKind.SHIFT, 8, 7, 16),
                                               (LaneKind.ADDER, 8, 0, 16),
                                               (LaneKind.ADDER, 32, 0, 8)])
def test_ternary_adders_of_a_pe_proven_equal(kind, b, smax, lanes):
    pe = PEConfig(LaneConfig(kind, b, smax), lanes, 48 if b == 32 else 21)
    parts = hand_placed(ArrayConfig(pe, 2, 2))
    ternary = {n: p for n, p in parts.items() if n.startswith("TernaryAdder")}
    assert ternary and len(parts) == len(ternary) + 2  # and the lane pair, the drain mux
    assert set(parts) - set(ternary) == {pair_class(pe.lane).__name__, f"DrainMux({pe.acc_bits})"}
    assert "DrainMux" not in str(list(hand_placed(ArrayConfig(pe, 1, 2))))  # one row: no chain
    assert any("0 or" in n for n in ternary)  # the accumulator
    for name, (params, make) in ternary.items():
        assert params["signed"] == (kind is LaneKind.SHIFT or "0 or" in name)
        assert prove(name, make) > 0


def test_proof_fails_on_a_broken_ternary_carry(monkeypatch):
    def carry_of_two(a, b, c, k):  # the carry-save carry forgets the third input
        return a & b

    monkeypatch.setattr(hw.tree, "_majority", carry_of_two)
    with pytest.raises(EquivalenceError, match="TernaryAdder.*not proven equal"):
        prove("TernaryAdder", lambda: TernaryAdder(10, (8, 8, 8), signed_inputs=True))


@pytest.mark.parametrize("width", [1, 18, 21])
def test_drain_mux_proven_equal(width):
    assert prove(f"DrainMux({width})", lambda: DrainMux(width)) > 0


def test_proof_fails_on_a_broken_drain_mux(monkeypatch):
    def keeps_the_link_above(load, a0, b0, a1, b1):  # bit 0 never takes the result
        return b0

    monkeypatch.setattr(hw.array, "_mux_lo", keeps_the_link_above)
    with pytest.raises(EquivalenceError, match="DrainMux.*not proven equal"):
        prove("DrainMux", lambda: DrainMux(6))
