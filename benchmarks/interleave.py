"""What running each 1x1 downsample conv inside a 3x3 conv's tiles would give ResNet-20 on the
ZC706 (the cycle model, not hardware).

    python benchmarks/interleave.py [--json] [--geometry RxCxV]

A 1x1 downsample conv takes 1-4 steps a tile, but its R results leave one word a cycle, so each
tile takes R cycles (``docs/ACCELERATOR.md``, Open problems). A 3x3 conv of 18 or 36 steps a
tile leaves the drain idle for most of each tile. The what-if: each PE gets a second result
register, so its drain may take the results of two dot products a tile, and the downsample
conv's steps run in the tiles of a host conv of its block with the same tiles:

- the shift downsample conv in the block's first shift conv, which reads the same input (the
  1x1 kernel is the 3x3 window's centre), or in its second, whichever saves more cycles (the
  first has fewer steps than rows at layer 2.0: nothing to save there);
- the adder downsample conv in the block's residual adder conv, whose residual add needs its
  result.

A host tile then takes ``max(S + S_ds, 2R)`` cycles instead of the two convs' ``max(S, R) +
max(S_ds, R)``. The engine's cycle model (:func:`gen.cycles.program_timeline`) runs the
program without the paired downsample descriptors, each host with their steps and a drain of
``2R`` cycles a tile, and every conv's ``barrier`` / ``follow`` set again by the compiler's
rule for its new neighbours (with no pair that gives the compiled program back, flag for
flag). A host's frontier counts both drains, which is a little pessimistic for a conv that
follows it. A downsample conv has no cycles of its own any more, so its utilization is given
two ways: the pair's (the two convs' lane operations over the host's cycles) and its own over
the cycles it adds to its host's (``added``, ``its use``: the stricter).

What the engine would need for it: a second result register per PE (built, not yet used:
``ArrayCore(cfg, drain_slots=2)``; 6,610 flip-flops and 3,394 LUTs for both arrays at
10x16x16, ``benchmarks/drain_slots.py``); and, not built and not in the model, a feeder with a
second input address and weight sequence; a writer and requantizer that tell a tile's two
results apart and write them to two tensors; the adder pair's downsample result kept, or
written and read back in time, for its residual add; and, where the shift downsample conv
moves to the block's second shift conv, the block's input kept live that long (the activation
banks' allocation, which the model does not check). Prints, per downsample conv, its host, the
two convs' cycles and utilization now, and the pair's; and the program's cycles and images/s
at 200 MHz.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from accel import resnet20  # noqa: E402
from write_width import geometry  # noqa: E402

from gen.report import emit  # noqa: E402

PAIR = "_pair_steps"  # a host's key in this what-if: the downsample conv's steps per tile


@contextlib.contextmanager
def paired_tiles():
    """The cycle model with a host's tiles taking its downsample conv's steps as well and
    draining two results a PE (``2R`` cycles): :func:`gen.cycles._conv_timeline` wrapped for
    the descriptors that carry :data:`PAIR`, the model itself for every other."""
    import gen.cycles as cycles

    timeline, steps, drain = cycles._conv_timeline, cycles.tile_steps, cycles.drain_cycles

    def wrapped(d, cfg, *args, **kwargs):
        if PAIR not in d:
            return timeline(d, cfg, *args, **kwargs)
        cycles.tile_steps = lambda x: steps(x) + (x[PAIR] if x is d else 0)
        cycles.drain_cycles = lambda c: 2 * drain(c)
        try:
            return timeline(d, cfg, *args, **kwargs)
        finally:
            cycles.tile_steps, cycles.drain_cycles = steps, drain

    cycles._conv_timeline = wrapped
    try:
        yield
    finally:
        cycles._conv_timeline = timeline


# each downsample conv's candidate hosts in its block (module doc)
HOSTS = {".downsample.0": (".conv1.0", ".conv2.0"), ".downsample.1": (".conv2.1",)}


def saving(steps: int, steps_ds: int, rows: int) -> int:
    """Cycles a tile saves with the downsample conv's steps in its host's: the two tiles apart,
    ``max(S, R) + max(S_ds, R)``, less the host tile with both, ``max(S + S_ds, 2R)``. Zero
    or less where the host has fewer steps than rows: pairing would then only slow the host's
    results down for the conv that follows it."""
    return max(steps, rows) + max(steps_ds, rows) - max(steps + steps_ds, 2 * rows)


def hosts(descriptors: list[dict], names: list[str], rows: int) -> dict[str, str | None]:
    """Each downsample conv's host, by layer name: of :data:`HOSTS`, the one of the same kind
    and tiles whose tiles :func:`saving` shortens most, or ``None`` (none does): the
    downsample conv keeps its descriptor."""
    from gen.cycles import tile_steps

    by_name = dict(zip(names, descriptors, strict=True))
    out = {}
    for n in names:
        for suffix, candidates in HOSTS.items():
            if not n.endswith(suffix):
                continue
            ds, block = by_name[n], n[:-len(suffix)]
            best, out[n] = 0, None
            for c in candidates:
                h = by_name.get(block + c)
                if h is None or any(h[k] != ds[k] for k in ("op", "m_pblk", "m_cb")):
                    continue
                gain = saving(tile_steps(h), tile_steps(ds), rows)
                if gain > best:
                    best, out[n] = gain, block + c
    return out


FLAGS = ("barrier", "follow", "follow_own")  # what the compiler sets by a conv's neighbours


def step_names(design) -> list[str]:
    """The layer name of each of ``design``'s descriptors (``END`` has no step: ``#i``)."""
    steps, descs = design.program.steps, design.program.descriptors
    return [s.name for s in steps] + [f"#{i}" for i in range(len(steps), len(descs))]


def interleaved(design) -> tuple[list[dict], list[str], dict[str, str | None]]:
    """``design``'s program without the downsample descriptors that have a host
    (:func:`hosts`), each host carrying :data:`PAIR`, and every conv's ``barrier`` /
    ``follow`` set again by the compiler's rule (:func:`gen.compile.overlap_flags`) for its
    new neighbours (a conv now first in its block follows the conv that writes its input);
    the names of the descriptors left; and :func:`hosts`."""
    from gen.compile import Geometry, overlap_flags, result_rows, tensor_banks
    from gen.cycles import tile_steps

    steps, descs, net, cfg = (design.program.steps, design.program.descriptors, design.net,
                              design.cfg)
    names = step_names(design)
    by_name = dict(zip(names, descs, strict=True))
    host_of = hosts(descs, names, cfg.rows)
    guest = {h: ds for ds, h in host_of.items() if h is not None}
    keep = [i for i, n in enumerate(names) if n not in guest.values()]
    geo = Geometry(cfg.rows, cfg.cols, cfg.lanes)
    drains = {s.output: result_rows(net.tensors[s.output].shape, geo)
              for s in steps if s.conv is not None}
    flags = overlap_flags([steps[i] for i in keep if i < len(steps)], tensor_banks(steps),
                          drains)
    seq = []
    for j, i in enumerate(keep):
        d = dict(descs[i])
        if 3 <= j < len(flags):  # conv1, INPUT and the conv after them: as compiled (beside)
            for k in FLAGS:
                d.pop(k, None)
            d.update(flags[j])
        if names[i] in guest:
            d[PAIR] = tile_steps(by_name[guest[names[i]]])
        seq.append(d)
    return seq, [names[i] for i in keep], host_of


def evaluate(net, geo) -> dict:
    from gen.cost import CostModel
    from gen.cycles import conv_utilization, descriptor_cycles, program_timeline
    from gen.generate import design_for, layer_rows
    from gen.size import DEFAULT_CLOCK_MHZ

    d = design_for(net, geo, CostModel.load(), weights=False)
    cfg = d.cfg
    rows = {r["name"]: r for r in layer_rows(d, DEFAULT_CLOCK_MHZ)}
    seq, kept, host_of = interleaved(d)
    lanes = cfg.rows * cfg.cols * cfg.lanes
    hosted = {n: x for n, x in zip(kept, seq, strict=True) if PAIR in x}
    with paired_tiles():
        cycles = program_timeline(seq, cfg)[-1][1]
        paired = {n: descriptor_cycles(x, cfg) for n, x in hosted.items()}
        # the pair's utilization, by the model's own rule: both convs' lane operations
        use = {h: conv_utilization(hosted[h], cfg, rows[h]["lane_ops"] + rows[ds]["lane_ops"])
               for ds, h in host_of.items() if h is not None}
    table = []
    for ds, host in host_of.items():
        row = {"downsample": ds, "host": host,
               "utilization_now": rows[ds]["utilization"], "cycles_now": rows[ds]["cycles"]}
        if host is not None:
            added = paired[host] - rows[host]["cycles"]
            row.update(host_utilization_now=rows[host]["utilization"],
                       cycles_now=rows[ds]["cycles"] + rows[host]["cycles"],
                       cycles_paired=paired[host], utilization_paired=round(use[host], 4),
                       cycles_added=added,
                       utilization_added=round(rows[ds]["lane_ops"] / (added * lanes), 4))
        table.append(row)
    mhz = DEFAULT_CLOCK_MHZ
    return {"geometry": f"{geo.rows}x{geo.cols}x{geo.lanes}", "clock_mhz": mhz,
            "pairs": table, "cycles_now": d.cycles, "cycles_paired": cycles,
            "images_per_s_now": round(mhz * 1e6 / d.cycles),
            "images_per_s_paired": round(mhz * 1e6 / cycles),
            "gain": round(d.cycles / cycles - 1, 4)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--geometry", metavar="RxCxV", type=geometry, default="10x16x16",
                    help="the arrays (default 10x16x16, shiftadd gen's choice)")
    args = ap.parse_args()
    from gen.compile import CompileError

    geo = args.geometry
    t0 = time.perf_counter()
    try:
        res = evaluate(resnet20(), geo)
    except (CompileError, ValueError) as e:
        ap.error(f"{geo.rows}x{geo.cols}x{geo.lanes} cannot be built for ResNet-20: {e}")
    res = {"model": "resnet20_shiftadd", "precision": "fix8", **res,
           "seconds": round(time.perf_counter() - t0, 1)}
    if args.json:
        emit(res, True)
        return 0
    print(f"ResNet-20 FIX8 at {res['geometry']}, {res['clock_mhz']:g} MHz: each 1x1 "
          f"downsample conv in a host conv's tiles (cycle model, not hardware)")
    print(f"{'downsample conv':24s} {'host':18s} {'cycles now':>10s} {'use now':>13s} "
          f"{'paired':>7s} {'use paired':>10s} {'added':>6s} {'its use':>8s}")
    for p in res["pairs"]:
        if p["host"] is None:
            print(f"{p['downsample']:24s} {'(none saves)':18s} {p['cycles_now']:10d} "
                  f"{100 * p['utilization_now']:11.1f} %")
            continue
        now = f"{100 * p['utilization_now']:.1f}/{100 * p['host_utilization_now']:.1f}"
        print(f"{p['downsample']:24s} {p['host']:18s} {p['cycles_now']:10d} {now:>11s} % "
              f"{p['cycles_paired']:7d} {100 * p['utilization_paired']:8.1f} % "
              f"{p['cycles_added']:6d} {100 * p['utilization_added']:6.1f} %")
    print(f"program: {res['cycles_now']} -> {res['cycles_paired']} cycles, "
          f"{res['images_per_s_now']} -> {res['images_per_s_paired']} images/s "
          f"({100 * res['gain']:+.1f} %)")
    print(f"seconds {res['seconds']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
