"""What sizing takes from the board and from the trained model.

The board's resources (:data:`BOARDS`), and from the network: the shift lanes' range (the largest
per-layer spread of trained exponents) and the accumulator widths (the widest conv accumulator
the network's bounds need, ``IntegerNetwork.bounds``). The geometry search itself is
:func:`gen.generate.size_engine`, on the compiled program and the engine's cycle model.
"""

from __future__ import annotations

from dataclasses import dataclass

from gen.ir import IntegerNetwork, ShiftConv


@dataclass(frozen=True)
class Board:
    name: str
    luts: int
    ffs: int
    dsps: int
    bram36: int
    # the fastest fabric clock the board makes: the Zynq-7000 PS's FCLK0, at most 250 MHz
    # (Vivado's processing_system7 dialog caps its PL clocks there, by public reports; no
    # Vivado here to see it)
    max_clock_mhz: float


BOARDS = {"zc706": Board("zc706", 218_600, 437_200, 900, 545, 250.0)}
# the clock the generator targets unless told otherwise (DESIGN.md: 200 MHz on the ZC706)
DEFAULT_CLOCK_MHZ = 200.0
# the share of the board's LUTs a design may take unless told otherwise (the 70 %)
LUT_BUDGET_SHARE = 0.7


class SizingError(ValueError):
    """No configuration fits the budget (the message says what was tried)."""


def shift_range(net: IntegerNetwork) -> int:
    """The shift lanes' range: the largest per-layer spread ``exp_max - min(exp)`` of the
    trained (nonzero) shift weights."""
    spread = 0
    for op in net.ops:
        if isinstance(op, ShiftConv):
            used = op.exp[op.sign != 0]
            if used.size:
                spread = max(spread, op.exp_max - int(used.min()))
    return spread


def accumulator_bits(net: IntegerNetwork, kind: type) -> int:
    """The widest accumulator of the network's convs of one kind (from the static bounds)."""
    widths = [net.tensors[op.output].fmt.bits for op in net.ops if isinstance(op, kind)]
    return max(widths) if widths else 2
