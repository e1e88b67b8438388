"""Sizing: an integer network + a board budget -> array configurations (the generator's choice).

Everything comes from the trained model, not a fixed worst case: the shift lanes' range is the
largest per-layer spread of trained exponents, accumulator widths are the widest conv accumulator
the network's bounds need (``IntegerNetwork.bounds``), the data width is the precision. Array
dimensions are searched under a LUT budget with the calibrated cost model (``gen/cost.py``) to
minimise cycles per image from the cycle model (``gen/cycles.py``), with the shift and adder
arrays working on consecutive images (pipelined).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from gen.cost import CostModel
from gen.cycles import ConvShape, conv_shapes, layer_cycles, utilization
from gen.ir import AdderConv, IntegerNetwork, ShiftConv
from hw.config import ArrayConfig, LaneConfig, LaneKind, PEConfig


@dataclass(frozen=True)
class Board:
    name: str
    luts: int
    ffs: int
    dsps: int
    bram36: int


BOARDS = {"zc706": Board("zc706", 218_600, 437_200, 900, 545)}

DIMS = (4, 8, 12, 16, 24, 32)
LANES = (4, 8, 12, 16)


class SizingError(ValueError):
    """No configuration fits the budget (the message says what was tried)."""


@dataclass
class Plan:
    arrays: dict[str, ArrayConfig]               # "shift" / "adder"
    luts: float
    cycles_per_image: dict[str, int]
    layers: list[dict] = field(default_factory=list)

    def images_per_second(self, clock_mhz: float) -> float:
        return clock_mhz * 1e6 / max(self.cycles_per_image.values())

    def to_json(self, clock_mhz: float) -> dict:
        return {"arrays": {k: {"rows": c.rows, "cols": c.cols, "lanes": c.pe.lanes,
                               "data_bits": c.pe.lane.data_bits,
                               "shift_max": c.pe.lane.shift_max, "acc_bits": c.pe.acc_bits}
                           for k, c in self.arrays.items()},
                "luts_model": round(self.luts), "cycles_per_image": self.cycles_per_image,
                "images_per_s": round(self.images_per_second(clock_mhz)),
                "layers": self.layers}


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


def size(net: IntegerNetwork, board: Board, *, lut_share: float = 0.7,
         model: CostModel | None = None, rows: int | None = None, cols: int | None = None,
         lanes: int | None = None, shift_max: int | None = None) -> Plan:
    """Choose R x C x V for the shift and the adder array. ``rows``/``cols``/``lanes`` fix a
    dimension; ``shift_max`` overrides the shift range found in the network (it must cover it)."""
    if not 0 < lut_share <= 1:
        raise SizingError(f"lut_share must be in (0, 1], not {lut_share}")
    model = model or CostModel.load()
    budget = lut_share * board.luts
    bits = net.precision.bits
    trained = shift_range(net)
    if shift_max is not None and shift_max < trained:
        raise SizingError(f"shift_max {shift_max} is below the network's trained range {trained}")
    lane = {"shift": LaneConfig(LaneKind.SHIFT, bits, trained if shift_max is None else shift_max),
            "adder": LaneConfig(LaneKind.ADDER, bits)}
    acc = {"shift": accumulator_bits(net, ShiftConv), "adder": accumulator_bits(net, AdderConv)}
    shapes = conv_shapes(net)
    opts = list(itertools.product([rows] if rows else DIMS, [cols] if cols else DIMS,
                                  [lanes] if lanes else LANES))

    def cfg(kind: str, dims) -> ArrayConfig:
        r, c, v = dims
        tree = v.bit_length()
        a = max(acc[kind], lane[kind].out_bits + tree + 1)  # PEConfig's own minimum
        return ArrayConfig(PEConfig(lane[kind], v, a), r, c)

    def cycles(kind: str, c: ArrayConfig, only: list[ConvShape]) -> int:
        return sum(layer_cycles(s, c) for s in only if s.kind == kind)

    best = None
    cost = {k: {d: model.array(cfg(k, d)).lut for d in opts} for k in ("shift", "adder")}
    per = {k: {d: cycles(k, cfg(k, d), shapes) for d in opts} for k in ("shift", "adder")}
    for ds, da in itertools.product(opts, opts):
        luts = cost["shift"][ds] + cost["adder"][da]
        if luts > budget:
            continue
        key = (max(per["shift"][ds], per["adder"][da]), luts)
        if best is None or key < best[0]:
            best = (key, ds, da)
    if best is None:
        smallest = min(cost["shift"].values()) + min(cost["adder"].values())
        raise SizingError(f"no array pair fits {budget:.0f} LUTs ({lut_share:.0%} of "
                          f"{board.name}); the smallest tried needs {smallest:.0f}")
    _, ds, da = best
    arrays = {"shift": cfg("shift", ds), "adder": cfg("adder", da)}
    layers = [{"name": s.name, "kind": s.kind, "terms": s.terms,
               "cycles": layer_cycles(s, arrays[s.kind]),
               "utilization": round(float(utilization(s, arrays[s.kind])), 4)} for s in shapes]
    return Plan(arrays=arrays, luts=float(cost["shift"][ds] + cost["adder"][da]),
                cycles_per_image={k: int(per[k][d]) for k, d in (("shift", ds), ("adder", da))},
                layers=layers)
