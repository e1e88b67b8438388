"""Projected ResNet-20 ShiftAdd throughput on the ZC706 from the array-core cycle model and the
calibrated cost model — an estimate, not a measurement of a full accelerator (none exists yet).

    python benchmarks/resnet20_projection.py [--json] [--clock-mhz 200] [--lut-share 0.7]
                                             [--shift-range 7]

Two arrays, one of adder PEs and one of shift PEs, each sized (R x C x V) by a search over the
LUT budget (share of the XC7Z045's 218,600 LUTs, cost model of ``gen/cost.py``). Images are
pipelined: the shift array runs image n+1's shift convs while the adder array runs image n's
adder convs, so an image costs max(shift cycles, adder cycles). Per-layer utilization is the
cycle model's (``gen/cycles.py``, exact against Verilator for the array core); the layer engine
that will feed the arrays is not built, so its stalls are not included.
"""

from __future__ import annotations

import argparse
import itertools
import sys

import torch

from gen.cost import CostModel
from gen.cycles import conv_shapes, layer_cycles, utilization
from gen.nn.models import build
from gen.numerics import Precision
from gen.quantize import quantize
from gen.report import emit
from hw.config import ArrayConfig, LaneConfig, LaneKind, PEConfig

ZC706_LUTS = 218_600


def acc_bits(lane: LaneConfig, terms: int) -> int:
    if lane.kind is LaneKind.ADDER:
        return (terms * ((1 << lane.data_bits) - 1)).bit_length() + 1
    return (terms * (1 << (lane.data_bits - 1 + lane.shift_max))).bit_length() + 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--clock-mhz", type=float, default=200.0)
    ap.add_argument("--lut-share", type=float, default=0.70)
    ap.add_argument("--shift-range", type=int, default=7,
                    help="shift lane range 0..K (from the trained exponents; 7 is typical)")
    args = ap.parse_args()

    torch.manual_seed(0)
    net = quantize(build("resnet20_shiftadd").eval(), torch.randn(8, 3, 32, 32), Precision.FIX8)
    shapes = conv_shapes(net)
    jmax = max(s.terms for s in shapes)
    model = CostModel.load()
    budget = args.lut_share * ZC706_LUTS
    lanes = {"adder": LaneConfig(LaneKind.ADDER, 8),
             "shift": LaneConfig(LaneKind.SHIFT, 8, args.shift_range)}

    def arrays(dims):
        (ra, ca, va), (rs, cs, vs) = dims
        a = ArrayConfig(PEConfig(lanes["adder"], va, acc_bits(lanes["adder"], jmax)), ra, ca)
        s = ArrayConfig(PEConfig(lanes["shift"], vs, acc_bits(lanes["shift"], jmax)), rs, cs)
        return {"adder": a, "shift": s}

    def per_image(cfgs):
        return {k: sum(layer_cycles(sh, cfgs[k]) for sh in shapes if sh.kind == k)
                for k in cfgs}

    best = None
    options = list(itertools.product((8, 16, 32), (8, 16, 32), (4, 8, 16)))
    for dims in itertools.product(options, options):
        cfgs = arrays(dims)
        luts = sum(model.array(c).lut for c in cfgs.values())
        if luts > budget:
            continue
        cyc = max(per_image(cfgs).values())
        if best is None or cyc < best[0]:
            best = (cyc, cfgs, luts)
    if best is None:
        print("no configuration fits the budget", file=sys.stderr)
        return 1
    cyc, cfgs, luts = best
    totals = per_image(cfgs)
    layers = [{"name": sh.name, "kind": sh.kind, "terms": sh.terms,
               "cycles": layer_cycles(sh, cfgs[sh.kind]),
               "utilization": round(utilization(sh, cfgs[sh.kind]), 4)} for sh in shapes]
    convs = [x for x in layers if x["name"] != "fc"]
    result = {
        "clock_mhz": args.clock_mhz, "lut_budget": round(budget), "shift_range": args.shift_range,
        "arrays": {k: f"{c.rows}x{c.cols}x{c.pe.lanes}" for k, c in cfgs.items()},
        "luts_model": round(luts), "lut_share_used": round(luts / ZC706_LUTS, 4),
        "cycles_per_image": {k: v for k, v in totals.items()},
        "images_per_s_pipelined": round(args.clock_mhz * 1e6 / cyc),
        "images_per_s_sequential": round(args.clock_mhz * 1e6 / sum(totals.values())),
        "min_conv_utilization": min(x["utilization"] for x in convs),
        "layers_below_85_percent": [x["name"] for x in convs if x["utilization"] < 0.85],
        "layers": layers,
    }
    if args.json:
        emit(result, True)
        return 0
    print(f"{'layer':28s}{'kind':>7s}{'J':>6s}{'cycles':>9s}{'util':>8s}")
    for x in layers:
        print(f"{x['name']:28s}{x['kind']:>7s}{x['terms']:6d}{x['cycles']:9d}"
              f"{100 * x['utilization']:7.1f}%")
    emit({k: v for k, v in result.items() if k != "layers"}, False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
