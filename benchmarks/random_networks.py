"""Random ShiftAdd ResNets through quantization, the compiler and the RTL (Verilator).

    python benchmarks/random_networks.py [--networks N] [--start S] [--group G] [--json]

Draws N networks (seeds S .. S+N-1, ``sim/random_networks.py: draw``: 1-3 stages, widths
3-33, 1-17 input channels, inputs of any side up to 16x16, 2-20 classes), G per engine build
at a random precision and small geometry (``geometry``: 1-5 rows, 1-16 columns, any divisor as lanes),
and runs three images of each twice: with the streams never idle (the measured cycles must
equal the cycle model's) and with 20 % idle and backpressure. Prints
the networks run, the mismatches against the golden model (must be 0), how many had measured
cycles equal to the model's, the failures, and the seconds taken. Exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import sys
import time

from gen.report import emit


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--networks", type=int, default=30)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--group", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.networks < 1 or args.group < 1:
        ap.error("--networks and --group must be at least 1")

    import torch

    from sim.random_networks import draw, geometry, run

    torch.set_num_threads(1)  # the draws' calibration, as the tests' cache trains
    log = (lambda s: print(s, file=sys.stderr, flush=True)) if args.json else print
    t0 = time.perf_counter()
    outcomes, builds = [], []
    seeds = list(range(args.start, args.start + args.networks))
    for i in range(0, len(seeds), args.group):
        group = seeds[i:i + args.group]
        precision, geo = geometry(group[0])
        got, seconds = run([draw(s) for s in group], precision, geo, progress=log)
        outcomes += got
        builds.append(seconds)
    bad = [o.to_json() for o in outcomes if not o.ok or not o.exact_cycles]
    res = {"networks": len(outcomes), "builds": len(builds),
           "images": sum(o.images for o in outcomes) * 2,
           "mismatches": sum(o.mismatches + o.mismatches_idle for o in outcomes),
           "exact_cycles": sum(o.exact_cycles for o in outcomes),
           "failures": bad, "seeds": f"{seeds[0]}..{seeds[-1]}",
           "build_seconds_max": round(max(builds), 1),
           "seconds": round(time.perf_counter() - t0, 1)}
    emit(res, args.json)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
