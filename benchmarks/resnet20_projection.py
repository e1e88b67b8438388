"""Projected ResNet-20 ShiftAdd throughput on the ZC706 from the sizing search (``gen/size.py``):
the array-core cycle model and the calibrated cost model — an estimate, not a measurement of a
full accelerator (none exists yet).

    python benchmarks/resnet20_projection.py [--json] [--clock-mhz 200] [--lut-share 0.7]
                                             [--shift-range 7]

Random weights give an arbitrary shift range, so ``--shift-range`` sets the range to size the
shift lanes for (7 here; the trained digits model spans 0..5 to 0..9 per layer). The shift and adder arrays work on
consecutive images, so an image costs max(shift cycles, adder cycles). Per-layer utilization is
the cycle model's (exact against Verilator for the array core); the layer engine that will feed
the arrays is not built, so its stalls are not included.
"""

from __future__ import annotations

import argparse
import sys

import torch

from gen.cycles import conv_shapes
from gen.nn.models import build
from gen.numerics import Precision
from gen.quantize import quantize
from gen.report import emit
from gen.size import BOARDS, size


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--clock-mhz", type=float, default=200.0)
    ap.add_argument("--lut-share", type=float, default=0.70)
    ap.add_argument("--shift-range", type=int, default=7)
    args = ap.parse_args()

    torch.manual_seed(0)
    net = quantize(build("resnet20_shiftadd").eval(), torch.randn(8, 3, 32, 32), Precision.FIX8)
    board = BOARDS["zc706"]
    plan = size(net, board, lut_share=args.lut_share, shift_max=args.shift_range)
    convs = [x for x in plan.layers if x["name"] != "fc"]
    result = {
        "clock_mhz": args.clock_mhz, "shift_range": plan.arrays["shift"].pe.lane.shift_max,
        "arrays": {k: f"{c.rows}x{c.cols}x{c.pe.lanes}" for k, c in plan.arrays.items()},
        "luts_model": round(plan.luts), "lut_share_used": round(plan.luts / board.luts, 4),
        "cycles_per_image": plan.cycles_per_image,
        "images_per_s_pipelined": round(plan.images_per_second(args.clock_mhz)),
        "images_per_s_sequential": round(args.clock_mhz * 1e6 / sum(
            plan.cycles_per_image.values())),
        "min_conv_utilization": min(x["utilization"] for x in convs),
        "layers_below_85_percent": [x["name"] for x in convs if x["utilization"] < 0.85],
        "conv_layers": len(conv_shapes(net)),
        "layers": plan.layers,
    }
    if args.json:
        emit(result, True)
        return 0
    print(f"{'layer':28s}{'kind':>7s}{'J':>6s}{'cycles':>9s}{'util':>8s}")
    for x in plan.layers:
        print(f"{x['name']:28s}{x['kind']:>7s}{x['terms']:6d}{x['cycles']:9d}"
              f"{100 * x['utilization']:7.1f}%")
    emit({k: v for k, v in result.items() if k != "layers"}, False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
