"""The synthesis views of ShiftPair and AdderPair (hand-placed LUT6/LUT6_2/CARRY4) and their
simulation views (what every engine simulation runs) are proven equal by Yosys SAT; a broken
fold must fail the proof."""

from __future__ import annotations

import pytest

import hw.lanes
from gen.equiv import EquivalenceError, prove_pair
from hw.config import LaneConfig, LaneKind


@pytest.mark.parametrize("kind,b,smax", [
    (LaneKind.SHIFT, 8, 7), (LaneKind.SHIFT, 8, 5), (LaneKind.SHIFT, 8, 14),
    (LaneKind.SHIFT, 8, 0), (LaneKind.SHIFT, 8, 1), (LaneKind.SHIFT, 32, 7),
    (LaneKind.ADDER, 8, 0), (LaneKind.ADDER, 32, 0)])
def test_views_proven_equal(kind, b, smax):
    assert prove_pair(LaneConfig(kind, b, smax)) > 0


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
