"""What overlapping consecutive images would give ResNet-20 on the ZC706 (the cycle model, not
hardware).

    python benchmarks/overlap.py [--json] [--geometry RxCxV] [--words P] [--images N]

The engine runs the images of a batch one after the other: the next image's header is taken at
this one's ``END``, so the adder array waits for the next image's ``INPUT`` and conv1 (on the
shift array) at the start of every image and idles at its end (``docs/ACCELERATOR.md``, Open
problems). This asks the engine's cycle model (:func:`gen.cycles.program_timeline`) what the
period would be if the next image's conv1, with its ``INPUT`` beside it, were dispatched right
after this image's last conv (the one with the global pool), before the classifier and
``OUTPUT``:

    conv1, INPUT, body(1), conv1, INPUT, tail(1), body(2), conv1, INPUT, tail(2), body(3) ...

``body`` the descriptors from the first conv after ``INPUT`` to the pool conv, ``tail`` the
ones after it (fc, ``OUTPUT``; ``END`` only after the last image). What the engine would need
for it (not built): conv1 and the classifier without their ``barrier`` (cleared here: each
would otherwise wait for both arrays to be idle), dispatch beside a conv with pool (the
model's ``pool_until`` block is lifted by clearing the flag, which also drops the pooler's few
cycles of latency from that conv's end), conv1 reading its input other than through the adder
bank's read ports, the next frame's header in the middle of a program, and activation buffers
that conv1 may write while the classifier still reads. ``OUTPUT`` is modelled as it is (after
both arrays are idle, so after the next conv1 too): a few cycles pessimistic. The period is
the distance between the same descriptor in two consecutive images once the pipeline is full;
with ``--words P`` tiles leave ``P`` rows per cycle (``benchmarks/write_width.py``), so the two
what-ifs combine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from accel import resnet20  # noqa: E402
from write_width import geometry, write_words  # noqa: E402

from gen.report import emit  # noqa: E402


def overlapped(descriptors: list[dict], images: int) -> tuple[list[dict], list[int]]:
    """``images`` images' descriptors in the overlapped order (module doc) and the index of
    each image's first ``body`` descriptor."""
    from hw.program import Opcode

    convs = (Opcode.SHIFT_CONV, Opcode.ADDER_CONV)
    ops = [d["op"] for d in descriptors]
    if images < 2:
        raise ValueError("overlap needs at least two images")
    if Opcode.INPUT not in ops:
        raise ValueError("the program has no INPUT")
    i_in = ops.index(Opcode.INPUT)
    if i_in == 0 or not descriptors[i_in - 1].get("follow_input") or \
            any(op in convs for op in ops[:i_in - 1]):
        raise ValueError("the program does not start with a conv beside its INPUT")
    pools = [i for i, d in enumerate(descriptors) if d["op"] in convs and d.get("pool")]
    if not pools:
        raise ValueError("the program has no conv with pool to overlap the next image with")
    p = pools[-1]
    head = [{**descriptors[i_in - 1], "barrier": 0}, descriptors[i_in]]
    body = [*descriptors[i_in + 1:p], {**descriptors[p], "pool": 0}]
    tail = [{**d, "barrier": 0} for d in descriptors[p + 1:]]
    between = [d for d in tail if d["op"] != Opcode.END]  # one END, after the last image
    seq, marks = list(descriptors[:i_in + 1]), []
    for k in range(images):
        if k:  # the next image's conv1 and INPUT, then the last image's classifier, OUTPUT
            seq += head + between
        marks.append(len(seq))
        seq += body
    return seq + tail, marks


def evaluate(net, geo, words: int, images: int) -> dict:
    from gen.cost import CostModel
    from gen.cycles import program_timeline
    from gen.generate import design_for
    from gen.size import DEFAULT_CLOCK_MHZ
    from hw.program import Opcode

    with write_words(words):
        d = design_for(net, geo, CostModel.load(), weights=False)
        descs = d.program.descriptors
        single = program_timeline(descs, d.cfg)[-1][1]
        seq, marks = overlapped(descs, images)
        spans = program_timeline(seq, d.cfg)
    # the steady state: the last two images' first body descriptors
    period = spans[marks[-1]][0] - spans[marks[-2]][0]

    def gap(kind: Opcode) -> int:
        """The array's idle cycles between the last two images: its first conv of the last
        image's body after its last conv of the image before."""
        ends = [spans[i][1] for i in range(marks[-2], marks[-1]) if seq[i]["op"] == kind]
        starts = [spans[i][0] for i in range(marks[-1], len(seq)) if seq[i]["op"] == kind]
        return max(0, starts[0] - max(ends))

    mhz = DEFAULT_CLOCK_MHZ
    return {"geometry": f"{geo.rows}x{geo.cols}x{geo.lanes}", "words": words,
            "clock_mhz": mhz, "single_cycles": single, "period_cycles": period,
            "single_images_per_s": round(mhz * 1e6 / single),
            "overlapped_images_per_s": round(mhz * 1e6 / period),
            "gain": round(single / period - 1, 4),
            "adder_idle_between_images": gap(Opcode.ADDER_CONV),
            "shift_idle_between_images": gap(Opcode.SHIFT_CONV)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--geometry", metavar="RxCxV", type=geometry, default="10x16x16",
                    help="the arrays (default 10x16x16, shiftadd gen's choice)")
    ap.add_argument("--words", metavar="P", default="1,2",
                    help="write widths to try, comma-separated (default 1,2)")
    ap.add_argument("--images", type=int, default=4,
                    help="images in the modelled batch (default 4; at least 3 for a full "
                         "pipeline)")
    args = ap.parse_args()
    from gen.compile import CompileError

    geo = args.geometry
    name = f"{geo.rows}x{geo.cols}x{geo.lanes}"
    try:
        words = [int(x) for x in args.words.split(",")]
    except ValueError:
        ap.error(f"--words {args.words}: expected comma-separated integers")
    if args.images < 3:
        ap.error("--images: at least 3 (the period is measured between the last two)")
    if any(w < 1 for w in words):
        ap.error("--words: each at least 1")
    t0 = time.perf_counter()
    net = resnet20()
    try:
        rows = [evaluate(net, geo, w, args.images) for w in words]
    except (CompileError, ValueError) as e:
        ap.error(f"{name} cannot be built for ResNet-20: {e}")
    res = {"model": "resnet20_shiftadd", "precision": "fix8", "by_words": rows,
           "seconds": round(time.perf_counter() - t0, 1)}
    if args.json:
        emit(res, True)
        return 0
    print(f"ResNet-20 FIX8 at {name}, {rows[0]['clock_mhz']:g} MHz: the next image's "
          f"conv1 beside this one's last conv (cycle model, not hardware)")
    print(f"{'P':>3s} {'one image':>10s} {'images/s':>9s} {'overlapped':>11s} {'images/s':>9s} "
          f"{'gain':>6s} {'adder idle':>11s} {'shift idle':>11s}")
    for e in rows:
        print(f"{e['words']:3d} {e['single_cycles']:10d} {e['single_images_per_s']:9d} "
              f"{e['period_cycles']:11d} {e['overlapped_images_per_s']:9d} "
              f"{100 * e['gain']:5.1f}% {e['adder_idle_between_images']:11d} "
              f"{e['shift_idle_between_images']:11d}")
    print(f"seconds {res['seconds']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
