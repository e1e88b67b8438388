"""Verilator simulation speed of a 16x16 array core under cocotb (cycles/s) and its build time.

    python benchmarks/rtl_speed.py [--json] [--rows 16 --cols 16 --lanes 8]

Streams back-to-back dot products through the ArrayCore with the clock-driven stream models (Python
touches every cycle) and checks every result against the golden model. The array is emitted as the
generator emits its arrays for ``shiftadd sim``: one PE module instantiated R x C times, the
simulation view (``hw.array.array_core_verilog``).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time

from gen.report import emit
from hw.array import array_core_verilog
from hw.config import ArrayConfig, LaneConfig, LaneKind, PEConfig
from sim import rtl


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--rows", type=int, default=16)
    ap.add_argument("--cols", type=int, default=16)
    ap.add_argument("--lanes", type=int, default=8)
    ap.add_argument("--kind", choices=("adder", "shift"), default="adder")
    ap.add_argument("--tiles", type=int, default=100)
    args = ap.parse_args()
    steps = 18  # a 16-channel 3x3 layer: J = 144 = 18 steps of 8 lanes
    smax = 7 if args.kind == "shift" else 0
    lane = LaneConfig(LaneKind(args.kind), 8, smax)
    acc = lane.acc_bits_for(steps * args.lanes)
    cfg = ArrayConfig(PEConfig(lane, args.lanes, acc, 2), args.rows, args.cols)
    t0 = time.perf_counter()
    b = rtl.build(lambda: array_core_verilog(cfg, rtl.TOP, simulation_view=True),
                  f"speed_{args.kind}", {"cfg": repr(cfg), "view": "simulation"})
    build_s = b.seconds if not b.cached else time.perf_counter() - t0
    tb = {"kind": args.kind, "data_bits": 8, "shift_max": smax, "lanes": args.lanes,
          "rows": args.rows, "cols": args.cols, "acc_bits": acc, "steps": steps,
          "tiles": args.tiles}
    run_dir = rtl.run(b, "sim.tb.array_tb", tb, seed=random.randrange(2**31),
                      tests="throughput")
    m = json.loads((run_dir / "throughput.json").read_text())
    out = {"array": f"{args.rows}x{args.cols}x{args.lanes} {args.kind}",
           "build_seconds": round(build_s, 1), "build_cached": b.cached,
           "cycles": int(m["cycles"]), "cycles_per_second": round(m["cycles_per_second"]),
           "steps": m["steps"]}
    emit(out, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
