"""What a write path P words wide would give ResNet-20 FIX8 on the ZC706: a what-if of the models.

    python benchmarks/write_width.py [--json] [--words 1,2,5,10] [--geometry RxCxV]

The engine writes one activation word (``cols`` channels of one pixel) per cycle per array, so a
tile of R pixels leaves the core in R cycles, and a conv whose dot products take fewer than R
steps (conv1, the 1x1 downsample convs) waits for its writes (``docs/ACCELERATOR.md``, Open
problems). This script asks the cycle and cost models what a path of P words a cycle would
change, for each P, before any of that hardware is built:

* cycles: :func:`gen.cycles.drain_cycles` becomes ``ceil(R / P)`` (a tile's rows leave P at a
  time), everything else in :func:`gen.cycles.program_timeline` as it is;
* LUTs: the calibrated model (``gen.generate.estimate_luts``) plus, for each further word, a
  copy of every column's requantizers (one per array), a P:1 multiplexer per bit behind every
  activation read port (the banks split by pixel, P sub-banks per replica: a row's word is in
  any of them; the shift array's rows already choose between two banks, for conv1 beside
  the input, so theirs become 2P:1 multiplexers), a 2:1 multiplexer per bit in front of every
  sub-bank's write port, and a P:1 multiplexer per accumulator bit at the foot of every
  column's drain chain (a conv with a residual add or a pool stays one word a cycle, and
  takes its word from any of the P rows). The convs the wide path is for (conv1, the 1x1
  downsample convs) have neither, so the residual adders and the poolers stay one per
  column. Not counted: the writer's and the feeder's wider address arithmetic;
* block RAM: every replica of an activation bank as P sub-banks of ``depth / P`` words.

For every P it sizes as ``shiftadd gen`` does (rows upwards per ``cols x lanes`` until the 70 %
LUT budget or the block RAM is exceeded) and prints the fastest geometry, and the best geometry
that reaches 10,000 images/s at 200 MHz (highest lowest-conv utilization), each with the
utilization of its convs (``gen.generate.layer_rows``; fc, the classifier, left out). conv1 also
reads the image as it streams in, one pixel per beat: its ``conv1_stream_bound`` is its
utilization if it takes as long as the input's beats (the program's ``INPUT``), whatever the
write path.

``--geometry RxCxV``: that geometry alone at every P from 1 to R, fitting or not.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from accel import resnet20  # noqa: E402

from gen.report import emit  # noqa: E402

TARGET_IMAGES_PER_S = 10_000  # at gen.size.DEFAULT_CLOCK_MHZ; utilization: gen.plots.TARGETS


def geometry(text: str):
    """``--geometry RxCxV`` as a :class:`gen.compile.Geometry` (an argparse type)."""
    from gen.compile import Geometry

    try:
        return Geometry(*(int(x) for x in text.lower().split("x")))
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text}: expected RxCxV, e.g. 10x16x16") from None


def mux_luts_per_bit(words: int) -> int:
    """LUT6s per bit of a ``words``:1 multiplexer: a LUT takes 4:1 (two select bits), each
    further LUT three more inputs."""
    return 0 if words <= 1 else math.ceil((words - 1) / 3)


@contextlib.contextmanager
def write_words(words: int):
    """The cycle model with tiles leaving ``words`` rows per cycle."""
    import gen.cycles as cycles

    one = cycles.drain_cycles
    cycles.drain_cycles = lambda cfg: math.ceil(cfg.rows / words)
    try:
        yield
    finally:
        cycles.drain_cycles = one


def extra_cost(cfg, words: int, model) -> tuple[float, float]:
    """``(LUTs, BRAM36)`` a ``words``-word write path adds to engine ``cfg`` (module doc)."""
    from gen.cost import beside_muxes, bram36_blocks

    if words == 1:
        return 0.0, 0.0
    banks = cfg.act_banks().values()
    luts = (words - 1) * cfg.cols * cfg.unit_counts()["requant"] * \
        model.ppu_unit(cfg, "requant").lut
    luts += sum(ports for _, ports in banks) * cfg.word_bits * mux_luts_per_bit(words)
    if beside_muxes(cfg):  # the shift rows' 2:1 becomes 2P:1, not 2:1 then P:1
        luts += beside_muxes(cfg) * (mux_luts_per_bit(2 * words) - mux_luts_per_bit(words) -
                                     mux_luts_per_bit(2))
    luts += len(banks) * words * cfg.word_bits
    luts += sum(cfg.cols * getattr(cfg, kind).acc_bits for kind in cfg.arrays) * \
        mux_luts_per_bit(words)
    bram = sum(ports * (words * bram36_blocks(cfg.word_bits, math.ceil(depth / words)) -
                        bram36_blocks(cfg.word_bits, depth)) for depth, ports in banks)
    return luts, bram


def evaluate(net, geo, words: int, model, board) -> dict | None:
    """One geometry at ``words`` words a cycle: cycles, LUTs, BRAM, per-conv utilization."""
    from gen.compile import CompileError
    from gen.generate import design_for, layer_rows
    from gen.size import DEFAULT_CLOCK_MHZ, LUT_BUDGET_SHARE
    from hw.program import Opcode

    with write_words(words):
        try:
            d = design_for(net, geo, model, weights=False)
        except (CompileError, ValueError):
            return None
        rows = layer_rows(d, DEFAULT_CLOCK_MHZ)
    luts, bram = extra_cost(d.cfg, words, model)
    luts += d.luts_total
    bram += sum(d.bram36.values())
    convs = {r["name"]: r for r in rows if "utilization" in r and r["name"] != "fc"}
    return {"geometry": f"{geo.rows}x{geo.cols}x{geo.lanes}", "words": words,
            "cycles": d.cycles, "images_per_s": round(DEFAULT_CLOCK_MHZ * 1e6 / d.cycles),
            "lut_share": round(luts / board.luts, 4), "bram36": bram,
            "fits": luts <= LUT_BUDGET_SHARE * board.luts and bram <= board.bram36,
            "utilization": {k: r["utilization"] for k, r in convs.items()},
            "lowest": min(r["utilization"] for r in convs.values()),
            "lowest_but_conv1": min(r["utilization"] for k, r in convs.items() if k != "conv1"),
            "conv1_lane_ops": convs["conv1"]["lane_ops"],
            # the input's beats: what conv1, reading the image as it streams in, takes at least
            "input_beats": sum((x.get("m0", 0) + 1) * x["in_beats"]
                               for x in d.program.descriptors if x["op"] == Opcode.INPUT)}


def sweep(words: int, net, model, board) -> list[dict]:
    """Rows upwards for every ``cols x lanes`` until the design no longer fits (as
    ``gen.generate.size_engine`` sizes)."""
    from gen.compile import Geometry
    from gen.generate import COLS, LANES, ROWS

    out = []
    for c in COLS:
        for v in LANES:
            if c % v:
                continue
            for r in ROWS:
                e = evaluate(net, Geometry(r, c, v), words, model, board)
                if e is None:
                    continue
                if not e["fits"]:
                    break
                out.append(e)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--words", default="1,2,5,10",
                    help="write widths to try, comma-separated (default 1,2,5,10)")
    ap.add_argument("--geometry", metavar="RxCxV", type=geometry,
                    help="one geometry at every write width from 1 to its rows")
    args = ap.parse_args()
    from gen.cost import CostModel
    from gen.plots import TARGETS
    from gen.size import BOARDS, DEFAULT_CLOCK_MHZ, LUT_BUDGET_SHARE

    model, board = CostModel.load(), BOARDS["zc706"]
    net = resnet20()
    if args.geometry:
        geo = args.geometry
        name = f"{geo.rows}x{geo.cols}x{geo.lanes}"
        rows = [evaluate(net, geo, w, model, board) for w in range(1, geo.rows + 1)]
        if rows[0] is None:
            ap.error(f"{name} cannot be built for ResNet-20")
        for e in rows:
            del e["conv1_lane_ops"], e["input_beats"]
        if args.json:
            emit({"geometry": name, "by_words": rows}, True)
            return 0
        print(f"{'P':>3s} {'cycles':>7s} {'images/s':>9s} {'LUTs':>7s} {'BRAM36':>7s} "
              f"{'lowest (not conv1)':>19s} fits")
        for e in rows:
            print(f"{e['words']:3d} {e['cycles']:7d} {e['images_per_s']:9d} "
                  f"{100 * e['lut_share']:6.1f}% {e['bram36']:7.1f} "
                  f"{100 * e['lowest_but_conv1']:18.1f}% {'yes' if e['fits'] else 'no'}")
        return 0
    t0 = time.perf_counter()
    res: dict = {"board": board.name, "lut_budget_share": LUT_BUDGET_SHARE,
                 "clock_mhz": DEFAULT_CLOCK_MHZ,
                 "targets": {"images_per_s": TARGET_IMAGES_PER_S,
                             "utilization": TARGETS[0]}, "by_words": []}
    for words in (int(x) for x in args.words.split(",")):
        designs = sweep(words, net, model, board)
        fastest = min(designs, key=lambda e: (e["cycles"], e["lut_share"]))
        fast = [e for e in designs if e["images_per_s"] >= TARGET_IMAGES_PER_S]
        best = max(fast, key=lambda e: (e["lowest_but_conv1"], -e["lut_share"])) \
            if fast else None
        for e in (fastest, best):
            if e is not None:
                r, c, v = (int(x) for x in e["geometry"].split("x"))
                e["conv1_stream_bound"] = round(e["conv1_lane_ops"] /
                                                (e["input_beats"] * r * c * v), 4)
        res["by_words"].append({"words": words, "designs_tried": len(designs),
                                "fastest": fastest, "best_at_target": best,
                                "meets_both": [e["geometry"] for e in fast
                                               if e["lowest_but_conv1"] >= TARGETS[0]]})
    res["seconds"] = round(time.perf_counter() - t0, 1)
    if args.json:
        emit(res, True)
        return 0
    print(f"ResNet-20 FIX8 on the {board.name}, {100 * LUT_BUDGET_SHARE:g} % LUT budget, "
          f"{DEFAULT_CLOCK_MHZ:g} MHz (models, not hardware)")
    print(f"{'P':>3s} {'design':>15s} {'geometry':>10s} {'images/s':>9s} {'LUTs':>7s} "
          f"{'BRAM36':>7s} {'lowest conv':>12s} {'(not conv1)':>12s} {'conv1 stream':>13s}")
    for w in res["by_words"]:
        for label, e in (("fastest", w["fastest"]),
                         (f"best >= {TARGET_IMAGES_PER_S // 1000}k/s", w["best_at_target"])):
            if e is None:
                print(f"{w['words']:3d} {label:>15s} {'none':>10s}")
                continue
            print(f"{w['words']:3d} {label:>15s} {e['geometry']:>10s} {e['images_per_s']:9d} "
                  f"{100 * e['lut_share']:6.1f}% {e['bram36']:7.1f} "
                  f"{100 * e['lowest']:11.1f}% {100 * e['lowest_but_conv1']:11.1f}% "
                  f"{100 * e['conv1_stream_bound']:12.1f}%")
        print(f"    geometries meeting both targets (every conv but conv1 and fc): "
              f"{', '.join(w['meets_both']) or 'none'}")
    print(f"seconds {res['seconds']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
