"""The synthesis view of ShiftPair (hand-placed LUT6/CARRY4) and its simulation view (what every
engine simulation runs) are proven equal by Yosys SAT; a broken fold must fail the proof."""

from __future__ import annotations

import pytest

import hw.lanes
from gen.equiv import EquivalenceError, prove_shift_pair
from hw.config import LaneConfig, LaneKind


@pytest.mark.parametrize("b,smax", [(8, 7), (8, 5), (8, 14), (8, 0), (8, 1), (32, 7)])
def test_views_proven_equal(b, smax):
    assert prove_shift_pair(LaneConfig(LaneKind.SHIFT, b, smax)) > 0


def test_proof_fails_on_a_broken_fold(monkeypatch):
    def ignores_sign(a, zero, neg, q, h, p=0):
        return a ^ (0 if zero else (p if h else q))

    monkeypatch.setattr(hw.lanes, "_folded_bit_shifted", ignores_sign)
    with pytest.raises(EquivalenceError, match="not proven equal"):
        prove_shift_pair(LaneConfig(LaneKind.SHIFT, 8, 7))
