"""Hardware configuration: small frozen dataclasses, validated on construction.

Leaf components take their own sub-config (a lane takes a :class:`LaneConfig`, the tree a width
and a count), never the whole tree. Derived widths are properties. Sizing from a trained model is
a separate function in ``gen`` that returns one of these.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class LaneKind(enum.Enum):
    ADDER = "adder"   # |x - w|
    SHIFT = "shift"   # sign * (x << s)
    MAC = "mac"       # x * w: the multiplier baseline, for area comparison only (never generated)


def _check_int(name: str, v: object, lo: int, hi: int | None = None) -> None:
    if not isinstance(v, int) or isinstance(v, bool) or v < lo or (hi is not None and v > hi):
        rng = f">= {lo}" if hi is None else f"in {lo}..{hi}"
        raise ValueError(f"{name} must be an integer {rng}, not {v!r}")


@dataclass(frozen=True)
class LaneConfig:
    """One arithmetic lane.

    ``data_bits``: width of the signed activations (8 for FIX8, 32 for FIX32).
    ``shift_max``: shift lanes only — the largest left shift ``s = exp_max - exp`` (0..14),
    taken from the trained exponents, not a fixed worst case.
    """

    kind: LaneKind
    data_bits: int
    shift_max: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.kind, LaneKind):
            raise ValueError(f"kind must be a LaneKind, not {self.kind!r}")
        _check_int("data_bits", self.data_bits, 2, 32)
        _check_int("shift_max", self.shift_max, 0, 14)
        if self.kind is not LaneKind.SHIFT and self.shift_max:
            raise ValueError("shift_max applies to shift lanes only")

    @property
    def shift_bits(self) -> int:
        """Width of the shift-amount field (0 for adder lanes or shift_max == 0)."""
        return self.shift_max.bit_length()

    @property
    def weight_bits(self) -> int:
        """Width of one lane's weight: the adder or MAC weight, or sign (2 bits) + shift."""
        if self.kind is LaneKind.SHIFT:
            return 2 + self.shift_bits
        return self.data_bits

    @property
    def out_bits(self) -> int:
        """Width of the lane result ``y``.

        Adder: ``|x - w| <= 2**B - 1``, unsigned ``B`` bits. Shift: the ones' complement term
        (see :class:`hw.lanes.ShiftLane`), signed ``B + shift_max`` bits. MAC: ``x * w``, signed
        ``2B`` bits.
        """
        if self.kind is LaneKind.ADDER:
            return self.data_bits
        if self.kind is LaneKind.SHIFT:
            return self.data_bits + self.shift_max
        return 2 * self.data_bits

    @property
    def out_signed(self) -> bool:
        return self.kind is not LaneKind.ADDER

    def acc_bits_for(self, terms: int) -> int:
        """Accumulator width that holds any sum of ``terms`` lane results exactly, for every
        input (worst case). The generator uses the trained network's bounds instead
        (``gen.size``); tests and benchmarks without a network use this."""
        if self.kind is LaneKind.ADDER:
            peak = (1 << self.data_bits) - 1
        elif self.kind is LaneKind.SHIFT:
            peak = 1 << (self.data_bits - 1 + self.shift_max)
        else:
            peak = 1 << (2 * self.data_bits - 2)
        return (terms * peak).bit_length() + 1


@dataclass(frozen=True)
class PEConfig:
    """A processing element: ``lanes`` lanes, a pipelined adder tree, an accumulator.

    ``acc_bits``: accumulator width (the generator derives it from fan-in and value bounds).
    ``tree_register_every``: a register after every n tree levels (0: combinational tree).
    In adder mode the PE accumulates ``-sum |x - w|``; in shift mode ``sum sign * (x << s)``.
    """

    lane: LaneConfig
    lanes: int
    acc_bits: int
    tree_register_every: int = 2

    def __post_init__(self) -> None:
        if not isinstance(self.lane, LaneConfig):
            raise ValueError(f"lane must be a LaneConfig, not {self.lane!r}")
        _check_int("lanes", self.lanes, 1, 256)
        _check_int("acc_bits", self.acc_bits, 2, 64)
        _check_int("tree_register_every", self.tree_register_every, 0, 16)
        if self.acc_bits < self.tree_bits + 1:
            raise ValueError(f"acc_bits {self.acc_bits} cannot hold one tree sum "
                             f"({self.tree_bits} bits)")

    @property
    def tree_levels(self) -> int:
        return (self.lanes - 1).bit_length()

    @property
    def tree_bits(self) -> int:
        """Width of the tree's sum (exact)."""
        return self.lane.out_bits + self.tree_levels


@dataclass(frozen=True)
class ArrayConfig:
    """An R x C output-stationary systolic array of identical PEs."""

    pe: PEConfig
    rows: int
    cols: int

    def __post_init__(self) -> None:
        if not isinstance(self.pe, PEConfig):
            raise ValueError(f"pe must be a PEConfig, not {self.pe!r}")
        _check_int("rows", self.rows, 1, 128)
        _check_int("cols", self.cols, 1, 128)

    @property
    def lanes(self) -> int:
        return self.pe.lanes
