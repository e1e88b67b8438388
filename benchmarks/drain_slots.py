"""What a second drain slot costs: ResNet-20 FIX8's two arrays synthesized with one and with two
holding registers a PE (``hw.array``, ``drain_slots``).

    python benchmarks/drain_slots.py [--json] [--geometry RxCxV]

The second slot is the array's part of paired convs, a 1x1 downsample conv run in a 3x3 conv's
tiles (``EngineConfig.paired``, ``docs/ACCELERATOR.md``, "Paired convs"): with it, two dot
products may end less than R cycles apart. This script sizes ResNet-20 at the geometry
(10x16x16 unless told) without paired convs, synthesizes each of its arrays (the
:class:`hw.array.ArrayCore` with its PEs, Yosys ``synth_xilinx -family xc7``, 4-6 minutes
each at 10x16x16) with one slot and with two, and prints LUTs and flip-flops, the difference,
and what the difference adds to the cost model's share of the ZC706's LUTs for the whole
design. The feeder's and the writer's part of the pairing is not in the arrays and not
counted here (the engine core with both units paired synthesized 3,633 LUTs larger, the
drain links included: ``gen/cost.py``, ``PAIRED_UNIT_LUTS``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from accel import resnet20  # noqa: E402
from write_width import geometry  # noqa: E402

from gen.report import emit  # noqa: E402


def log(*a) -> None:
    print(*a, file=sys.stderr, flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--geometry", metavar="RxCxV", type=geometry, default="10x16x16",
                    help="the arrays (default 10x16x16, shiftadd gen's choice)")
    args = ap.parse_args()

    from gen.cost import CostModel
    from gen.generate import design_for
    from gen.size import BOARDS
    from gen.synth import synthesize_component
    from hw.array import ArrayCore

    board = BOARDS["zc706"]
    design = design_for(resnet20(), args.geometry, CostModel.load(), weights=False)
    geo = args.geometry
    out = {"geometry": f"{geo.rows}x{geo.cols}x{geo.lanes}", "board_luts": board.luts,
           "design_lut_share_model": round(design.luts_total / board.luts, 4), "arrays": {}}
    added = 0
    for kind in design.cfg.arrays:
        arr = design.cfg.array(kind)
        row = {"acc_bits": arr.pe.acc_bits}
        for slots in (1, 2):
            t0 = time.perf_counter()
            log(f"synthesizing the {kind} array, {slots} drain slot(s) ...")
            a = synthesize_component(ArrayCore(arr, drain_slots=slots))
            row[f"slots{slots}"] = {"luts": a.lut, "ffs": a.ff,
                                    "seconds": round(time.perf_counter() - t0, 1)}
        d_luts = row["slots2"]["luts"] - row["slots1"]["luts"]
        d_ffs = row["slots2"]["ffs"] - row["slots1"]["ffs"]
        pes = arr.rows * arr.cols
        row.update(added_luts=d_luts, added_ffs=d_ffs, added_luts_per_pe=round(d_luts / pes, 2),
                   added_ffs_per_pe=round(d_ffs / pes, 2))
        added += d_luts
        out["arrays"][kind] = row
    out["added_luts"] = added
    out["added_lut_share"] = round(added / board.luts, 4)
    out["design_lut_share_with_two_slots"] = round((design.luts_total + added) / board.luts, 4)
    arrays = sum(v for k, v in design.luts.items() if k.endswith("_array"))
    out["array_lut_share_with_two_slots"] = round((arrays + added) / board.luts, 4)

    def human() -> None:
        print(f"ResNet-20 FIX8 at {out['geometry']}: the whole design "
              f"{100 * out['design_lut_share_model']:.1f}% of the ZC706's LUTs (cost model)")
        print(f"{'array':6} {'acc':>4} {'LUTs 1 slot':>12} {'2 slots':>9} {'added':>7} "
              f"{'/PE':>6} {'FFs 1 slot':>11} {'2 slots':>9} {'added':>7}")
        for kind, r in out["arrays"].items():
            print(f"{kind:6} {r['acc_bits']:>4} {r['slots1']['luts']:>12,} "
                  f"{r['slots2']['luts']:>9,} {r['added_luts']:>7,} "
                  f"{r['added_luts_per_pe']:>6} {r['slots1']['ffs']:>11,} "
                  f"{r['slots2']['ffs']:>9,} {r['added_ffs']:>7,}")
        print(f"two slots add {out['added_luts']:,} LUTs "
              f"({100 * out['added_lut_share']:.2f} points): the whole design "
              f"{100 * out['design_lut_share_with_two_slots']:.1f}% of the LUTs (the arrays "
              f"{100 * out['array_lut_share_with_two_slots']:.1f}%), the arrays alone (without "
              "the feeder's and the writer's part of the pairing)")

    emit(out, args.json, human)
    return 0


if __name__ == "__main__":
    sys.exit(main())
