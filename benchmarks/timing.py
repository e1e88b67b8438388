"""Pre-placement timing estimate of the ResNet-20 engine, from Yosys netlists (``gen/timing.py``).

    python benchmarks/timing.py [--json] [--precision P] [--rows R --cols C --lanes V]
                                [--net-ps N] [--paths K] [--yosys PATH] [--paired]

Vivado does not run here, so timing closure at the generated clock (200 MHz on the ZC706) is
not checked. This estimates the longest register-to-register paths instead: each PE kind and
each post-processing unit is synthesized alone (``synth_xilinx -family xc7``), the engine
without them (the core; the same synthesis as ``benchmarks/engine_area.py``, 2-3 minutes for
8x16x16 or 10x16x16, netlist cached in ``build/timing/``), and the core's netlist is analysed
with the units as black boxes whose input and output paths come from their own netlists. Cell
delays are the 7-series figures shipped with Yosys (Artix-7 measurements from prjxray-db; the
ZC706's Zynq-7045 is Kintex-7 fabric at speed grade -2, faster); routing is a constant
``--net-ps`` per net between slices (default 300 ps, an assumption, not a measurement). Prints
the worst paths of each block and the whole engine's estimated period against the clock.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import sys
import time
from pathlib import Path

from engine_area import core_design, log, network_engine, save_core_area, unit_components

from gen.generate import PAIR_KINDS, unit_instance, unit_instances
from gen.size import DEFAULT_CLOCK_MHZ
from gen.synth import SynthError, synthesize_netlist, yosys_version
from gen.timing import Path as TimingPath
from gen.timing import analyse, box_of
from hw.top import TOP_NAME

CACHE = Path(__file__).resolve().parent.parent / "build" / "timing"
NET_PS = 300


def _cached_netlist(key: str, make) -> dict:
    """A synthesized netlist from ``build/timing/`` or from ``make()`` (then cached)."""
    path = CACHE / f"{key}.json.gz"
    if path.exists():
        with gzip.open(path, "rt") as f:
            return json.load(f)
    netlist = make()
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with gzip.open(tmp, "wt") as f:
        json.dump(netlist, f)
    tmp.replace(path)
    return netlist


def _key(*parts) -> str:
    """The cache key of a synthesis: a hash of its Verilog and top module."""
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:24]


def _block(name: str, paths: list[TimingPath]) -> dict:
    worst = paths[0]
    return {"block": name, "worst": worst.to_json(),
            "others": [{"delay_ps": p.delay_ps, "start": p.start, "end": p.end}
                       for p in paths[1:]]}


def estimate(precision: str, rows: int, cols: int, lanes: int, *, net_ps: int = NET_PS,
             paths: int = 3, yosys: str | None = None, pairs: tuple[str, ...] = ()) -> dict:
    """``yosys``: a native Yosys binary for every synthesis instead of the WebAssembly one
    (its netlists are cached under keys that name its version); ``pairs``: the engine with
    those kinds' convs paired."""
    from hw.array import EnabledPE
    from hw.engine import pe_module_name
    from sim.rtl import verilog as to_verilog

    t0 = time.perf_counter()
    version = yosys_version(yosys)
    tag = () if yosys is None else (version,)  # the WebAssembly Yosys' keys stay as they were
    cfg = network_engine("resnet20", precision, rows, cols, lanes, pairs)
    verilog, boxes, key = core_design(cfg)
    if tag:
        key = _key(key, *tag)
    blocks, box_timing = [], {}
    # each PE kind alone: the module the engine instantiates R x C times
    for kind in cfg.arrays:
        text = to_verilog(EnabledPE(getattr(cfg, kind), slots=2 if kind in cfg.paired else 1),
                          "top")
        k = _key(text, "top", *tag)
        log(f"  {kind} PE ...")
        net = _cached_netlist(k, lambda text=text: synthesize_netlist(text, "top",
                                                                      yosys=yosys)[1])
        blocks.append(_block(f"{kind} PE", analyse(net, "top", net_ps=net_ps, worst=paths)))
        box_timing[pe_module_name(kind)] = box_of(net, "top", net_ps=net_ps)
    # each post-processing unit kind alone (a column's requantizers, residual adder, pooler)
    unit_box = {}
    for kind, comp in unit_components(cfg).items():
        text = to_verilog(comp, "top")
        k = _key(text, "top", *tag)
        log(f"  {kind} unit ...")
        net = _cached_netlist(k, lambda text=text: synthesize_netlist(text, "top",
                                                                      yosys=yosys)[1])
        blocks.append(_block(f"{kind} unit", analyse(net, "top", net_ps=net_ps, worst=paths)))
        unit_box[kind] = box_of(net, "top", net_ps=net_ps)
    for inst, kind in unit_instances(cfg).items():
        for c in range(cfg.cols):
            box_timing[unit_instance(inst, c)] = unit_box[kind]
    assert set(box_timing) == set(boxes), "every module the core leaves out needs its timing"

    def core() -> dict:
        log(f"  core {rows}x{cols}x{lanes} (2-3 minutes the first time) ...")
        area, net = synthesize_netlist(verilog, TOP_NAME, blackbox=boxes, yosys=yosys)
        if not tag:  # the same synthesis benchmarks/engine_area.py caches
            save_core_area(key, area)
        return net
    net = _cached_netlist(key, core)
    blocks.append(_block("core (with the units' boundary paths)",
                         analyse(net, TOP_NAME, net_ps=net_ps, worst=paths,
                                 boxes=box_timing)))
    worst = max(blocks, key=lambda b: b["worst"]["delay_ps"])
    period = worst["worst"]["delay_ps"]
    return {"geometry": f"{rows}x{cols}x{lanes}", "precision": precision, "net_ps": net_ps,
            "yosys": version,
            "clock_mhz": DEFAULT_CLOCK_MHZ, "period_ps": period,
            "fmax_mhz": round(1e6 / period, 1), "meets_clock": period <= 1e6 / DEFAULT_CLOCK_MHZ,
            "critical_block": worst["block"], "blocks": blocks,
            "boxes": {k: {"inputs": v.inputs, "outputs": v.outputs}
                      for k, v in box_timing.items() if not k.startswith(f"{TOP_NAME}.")},
            "seconds": round(time.perf_counter() - t0, 1)}


def _print(r: dict) -> None:
    print(f"ResNet-20 {r['precision']} engine {r['geometry']}: estimated critical path "
          f"{r['period_ps'] / 1000:.2f} ns = {r['fmax_mhz']:.0f} MHz "
          f"({'meets' if r['meets_clock'] else 'misses'} {r['clock_mhz']:.0f} MHz; "
          f"Yosys' 7-series cell delays, {r['net_ps']} ps per routed net; {r['yosys']})")
    for b in r["blocks"]:
        w = b["worst"]
        print(f"  {b['block']}: {w['delay_ps'] / 1000:.2f} ns (cells {w['logic_ps'] / 1000:.2f} "
              f"ns, {w['nets']} routed nets, {w['levels']} levels): {w['start']} -> {w['end']}")
        print("      " + " > ".join(f"{c['type']}@{c['arrival_ps']}" for c in w["cells"]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--precision", choices=("fix8", "fix32"), default="fix8")
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--cols", type=int, default=16)
    ap.add_argument("--lanes", type=int, default=16)
    ap.add_argument("--net-ps", type=int, default=NET_PS,
                    help="routing delay assumed per net between slices (ps)")
    ap.add_argument("--paths", type=int, default=3, help="paths reported per block")
    ap.add_argument("--paired", action="store_true",
                    help="the engine with paired convs (shiftadd gen's ResNet-20 at 10x16x16)")
    ap.add_argument("--yosys", default=None, metavar="PATH",
                    help="a native Yosys binary instead of the WebAssembly one and its 4 GiB "
                         "of memory (e.g. Debian's yosys)")
    a = ap.parse_args()
    if a.net_ps < 0 or a.paths < 1:
        ap.error("--net-ps must be >= 0 and --paths >= 1")
    try:
        r = estimate(a.precision, a.rows, a.cols, a.lanes, net_ps=a.net_ps, paths=a.paths,
                     yosys=a.yosys, pairs=PAIR_KINDS if a.paired else ())
    except SynthError as e:
        print(f"timing.py: {e}", file=sys.stderr)
        return 1
    if a.json:
        print(json.dumps(r))
    else:
        _print(r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
