"""The integer numeric contract of shiftadd, in one place.

Every rule that decides a bit of an integer-network result lives here and is documented in
``docs/NUMERICS.md``. The quantizer (``gen.quantize``), the golden model (``sim.golden``) and the
generator's sizing import these functions; nothing else re-implements them.

This module uses only Python integers and numpy ``int64`` arrays: no torch, no floats in any
function that computes a tensor value. Scalar helpers accept Python ints (exact, arbitrary width)
and array helpers accept ``np.int64`` arrays whose bounds the caller has proven to fit 63 bits
(see :func:`check_int64`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Precision",
    "Format",
    "SHIFT_EXP_MAX",
    "MULT_BITS",
    "ENGINE_MULT_BITS",
    "SHIFT_LIMIT",
    "signed_bits",
    "sat_bounds",
    "saturate",
    "rshift_round",
    "rshift_round_array",
    "floor_requant",
    "saturate_array",
    "check_int64",
    "round_real",
    "quantize_real",
    "saturated_count",
    "saturation_note",
]

#: Largest shift exponent k of a shift weight ``sign * 2**-k``: the official ShiftAddNet setting
#: (5-bit weights, ternary sign) clamps ``shift`` to [-14, 0].
SHIFT_EXP_MAX = 14

#: Width of a requantization multiplier ``m`` (signed): BN scale per output channel.
MULT_BITS = 16

#: Width of the engine's requant multiplier: the DSP48E1's 18-bit B port (the accumulator takes
#: the 25-bit A port). The compiler scales ``mult`` by up to ``2**(ENGINE_MULT_BITS - MULT_BITS)``
#: to bring every layer's shift into a narrow range (:func:`floor_requant`).
ENGINE_MULT_BITS = 18

#: Largest right shift of a requant (and of any rounding shift the hardware performs): 6 bits.
SHIFT_LIMIT = 62


class Precision(enum.Enum):
    """Activation precision of an integer network."""

    FIX8 = "fix8"
    FIX32 = "fix32"

    @property
    def bits(self) -> int:
        return 8 if self is Precision.FIX8 else 32

    @classmethod
    def parse(cls, text: str | Precision) -> Precision:
        if isinstance(text, Precision):
            return text
        try:
            return cls(str(text).lower())
        except ValueError:
            raise ValueError(f"precision must be 'fix8' or 'fix32', not {text!r}") from None


FRAC_MIN, FRAC_MAX = -64, 96  # a Format's fractional bits


@dataclass(frozen=True)
class Format:
    """A signed two's-complement fixed-point format: ``bits`` wide, ``frac`` fractional bits.

    The real value of an integer ``q`` in this format is ``q * 2**-frac``. ``frac`` may be
    negative (a scale above one).
    """

    bits: int
    frac: int

    def __post_init__(self) -> None:
        if not isinstance(self.bits, int) or not 2 <= self.bits <= 64:
            raise ValueError(f"bits must be an integer in 2..64, not {self.bits!r}")
        if not isinstance(self.frac, int) or not FRAC_MIN <= self.frac <= FRAC_MAX:
            raise ValueError(f"frac must be an integer in {FRAC_MIN}..{FRAC_MAX}, "
                             f"not {self.frac!r}")

    @property
    def lo(self) -> int:
        return -(1 << (self.bits - 1))

    @property
    def hi(self) -> int:
        return (1 << (self.bits - 1)) - 1

    def to_json(self) -> dict:
        return {"bits": self.bits, "frac": self.frac}

    @classmethod
    def from_json(cls, d: dict) -> Format:
        return cls(bits=int(d["bits"]), frac=int(d["frac"]))


def signed_bits(lo: int, hi: int) -> int:
    """Smallest two's-complement width that holds every integer in ``[lo, hi]`` (at least 1)."""
    lo, hi = int(lo), int(hi)
    if lo > hi:
        raise ValueError(f"empty range [{lo}, {hi}]")
    bits = 1
    while not (-(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1):
        bits += 1
    return bits


def sat_bounds(bits: int) -> tuple[int, int]:
    """Inclusive range of a signed ``bits``-wide integer."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def saturate(v: int, bits: int) -> int:
    """Clamp ``v`` to the signed ``bits``-wide range (saturation, never wrap-around)."""
    lo, hi = sat_bounds(bits)
    return lo if v < lo else hi if v > hi else v


def rshift_round(v: int, s: int) -> int:
    """``v * 2**-s`` rounded to the nearest integer, ties toward +infinity.

    For ``s > 0`` this is ``(v + 2**(s-1)) >> s`` with an arithmetic shift: one adder and wiring in
    hardware. For ``s <= 0`` it is the exact left shift ``v << -s``.
    """
    if s > 0:
        return (v + (1 << (s - 1))) >> s
    return v << (-s)


def pool_divisor_bits(kernel: int) -> int:
    """``ceil(log2(kernel**2))``: an average pool divides its window's sum by ``2**`` this, the
    window's area when that is a power of two (``docs/NUMERICS.md``)."""
    return (kernel * kernel - 1).bit_length()


def pool_shift(kernel: int, in_frac: int, out_frac: int) -> int:
    """The rounding right shift of a ``kernel x kernel`` average pool's sum, from its input's
    fraction bits to its output's (``docs/NUMERICS.md``), dividing by
    ``2**pool_divisor_bits(kernel)``; negative if the output is finer."""
    return pool_divisor_bits(kernel) + in_frac - out_frac


def pool_gain(kernel: int) -> float:
    """What the average pool's output is, as a multiple of the window's mean: ``kernel**2 /
    2**pool_divisor_bits(kernel)``, 1 for a window of a power-of-two area (ResNet-20's 8x8),
    else in (1/2, 1) (a 7x7 window: 49/64); the quantizer divides the next requant by it."""
    return kernel * kernel / (1 << pool_divisor_bits(kernel))


def floor_requant(mult, bias, shift: int, to: int) -> tuple[np.ndarray, np.ndarray]:
    """The requant ``rshift_round(acc * mult + bias, shift)`` as a floor shift by ``to``.

    Returns ``(m, b)`` with ``(acc * m + b) >> to == rshift_round(acc * mult + bias, shift)``
    for every integer ``acc`` (arithmetic shift): ``m = mult << k``, ``b = (bias << k) +
    2**(to-1)`` for ``k = to - shift >= 0`` (the rounding constant becomes part of the bias). A
    requant whose multipliers are all zero is a constant per channel and takes any ``to``.
    """
    mult = np.asarray(mult, dtype=object)
    bias = np.asarray(bias, dtype=object)
    half = (1 << (to - 1)) if to > 0 else 0
    if not any(int(v) for v in mult):
        return mult * 0, np.array([(rshift_round(int(b), shift) << to) + half for b in bias],
                                  dtype=object)
    k = to - shift
    if k < 0:
        raise ValueError(f"a requant with shift {shift} cannot be made a floor shift by {to}")
    return mult * (1 << k), bias * (1 << k) + half


def rshift_round_array(v: np.ndarray, s: int | np.ndarray) -> np.ndarray:
    """Element-wise :func:`rshift_round` on ``int64`` arrays; ``s`` scalar or broadcastable."""
    v = np.asarray(v, dtype=np.int64)
    s = np.asarray(s, dtype=np.int64)
    pos = np.maximum(s, 0)
    neg = np.maximum(-s, 0)
    half = np.where(pos > 0, np.left_shift(np.int64(1), np.maximum(pos - 1, 0)), 0)
    return np.where(s > 0, np.right_shift(v + half, pos), np.left_shift(v, neg))


def saturate_array(v: np.ndarray, bits: int) -> np.ndarray:
    lo, hi = sat_bounds(bits)
    return np.clip(np.asarray(v, dtype=np.int64), lo, hi)


def check_int64(lo: int, hi: int, what: str) -> None:
    """Raise if a statically derived value range does not fit the golden model's ``int64``."""
    if signed_bits(lo, hi) > 63:
        raise OverflowError(
            f"{what}: values in [{lo}, {hi}] need {signed_bits(lo, hi)} bits, more than the "
            "63 the golden model computes exactly; lower the precision or the fan-in"
        )


def round_real(x: np.ndarray, frac: int) -> np.ndarray:
    """``floor(x * 2**frac + 1/2)`` as float64, not saturated: the one rounding rule by which
    a float becomes an integer (:func:`quantize_real` saturates it; the quantizer's adder
    weights need what saturation takes off)."""
    return np.floor(np.ldexp(np.asarray(x, dtype=np.float64), frac) + 0.5)


def quantize_real(x: np.ndarray, fmt: Format) -> np.ndarray:
    """Host-side entry into the integer domain: ``sat(floor(x * 2**frac + 1/2))``.

    This is the only place a float becomes an integer (input tensors and, in the quantizer,
    parameters). Non-finite inputs are rejected, never silently mapped.
    """
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("input contains NaN or infinity")
    return np.clip(round_real(x, fmt.frac), fmt.lo, fmt.hi).astype(np.int64)


def saturated_count(x: np.ndarray, fmt: Format) -> int:
    """How many values of ``x`` :func:`quantize_real` saturates: rounded, they lie beyond
    ``fmt``'s range. Many of them in an input usually mean inputs not normalized as the
    calibration inputs were (the format covers the largest calibration value)."""
    q = round_real(x, fmt.frac)
    return int(np.count_nonzero((q < fmt.lo) | (q > fmt.hi)))


def saturation_note(n: int, total: int, fmt: Format | str) -> str:
    """What ``shiftadd run``, ``sim``, ``eval`` and the host API say of ``n`` of ``total``
    input values beyond ``fmt`` (the input format, or words naming it)."""
    where = fmt if isinstance(fmt, str) else (
        f"the input format's range [{fmt.lo * 2.0 ** -fmt.frac:g}, {fmt.hi * 2.0 ** -fmt.frac:g}]")
    return (f"{n} of {total} input values lie beyond {where} and saturate: are the inputs "
            "normalized as the model's training inputs were?")
