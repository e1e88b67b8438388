"""Area of the engine around the arrays, from Yosys ``synth_xilinx -family xc7``, against the
generator's cost model.

    python benchmarks/engine_area.py [--json] [--calibrate] [--calibrate-core]
                                     [--calibrate-wide] [--network N] [--precision P]
                                     [--rows R --cols C --lanes V]

Synthesizes the engine of one network (``NETWORKS``; default ResNet-20) and geometry (default
FIX8 8x16x16) with its PEs and its post-processing units left out (the *core*: feeder, writer,
loader, control and the arrays' inter-PE registers; 1-6 minutes, cached in
``build/engine-area/``), and one of each post-processing unit at that engine's widths, and
prints the LUTs (logic + LUTs used as memory) next to what the generator estimates.
``--calibrate`` first synthesizes the units at a grid of widths and shift ranges (about 3
minutes) and rewrites the ``ppu`` section of ``gen/cost_model.json``. ``--calibrate-core``
synthesizes the FIX8 cores of ``CORE_GRID`` (15 cores, about 45 minutes on one core; cached,
so run single geometries in parallel first to share the work) and rewrites the ``core``
section with the fit, its samples and each sample's leave-one-out error, then the FIX32 term
as ``--calibrate-wide`` does (``CORE_WIDE_GRID``: 6 cores, 4-9 minutes each). The 10x16x16
core takes 2.1 GB of the WebAssembly Yosys' 4 GiB since the activation banks are written out
one memory per read port (it aborted at 4.18 GB before; ``docs/DEVELOPERS.md``); larger cores
were not tried.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import sys
import time
from pathlib import Path

from gen.compile import Geometry
from gen.cost import (
    MODEL_FILE,
    CostModel,
    core_counted,
    core_features,
    core_wide_features,
    fit_linear,
    ppu_unit_features,
    ppu_units,
)
from gen.generate import core_design as gen_core_design
from gen.generate import estimate_luts
from gen.nn.models import ResNetConfig
from gen.synth import Area, synthesize, synthesize_component
from hw.ppu import UNITS, AddConfig, PoolConfig, RequantConfig
from hw.top import TOP_NAME

# (acc_bits, bias_bits, data_bits, shift_min, shift_max): the compiler's narrow shift ranges
# (ResNet-20 FIX8 20..22, digits a single shift) and wider ones
REQUANT_GRID = [(21, 29, 8, 20, 22), (21, 29, 8, 19, 19), (20, 29, 8, 6, 21), (24, 32, 8, 10, 20),
                (17, 24, 8, 12, 14), (44, 53, 32, 19, 19), (40, 48, 32, 20, 30),
                (44, 48, 32, 0, 47)]
ADD_GRID = [(8, 1), (8, 2), (8, 7), (8, 31), (32, 3), (32, 31)]  # (bits, shift_max)
# (bits, window, shift, inputs, groups)
POOL_GRID = [(8, 64, 6, 1, 1), (8, 64, 62, 1, 1), (8, 16, 4, 1, 1), (32, 4, 2, 1, 1),
             (32, 64, 62, 1, 1), (8, 64, 6, 2, 1), (8, 64, 6, 4, 1), (32, 4, 2, 4, 1),
             (8, 64, 6, 4, 4), (8, 16, 4, 4, 2), (32, 64, 6, 4, 4), (8, 64, 6, 1, 8)]
# FIX8 engines whose cores calibrate the core model (network, rows, cols, lanes): ResNet-20's
# and digits' (whose memories are shallow) from 2x8x4 to the geometries gen picks for them
CORE_GRID = [("resnet20", 2, 8, 4), ("resnet20", 2, 16, 16), ("resnet20", 4, 16, 8),
             ("resnet20", 4, 16, 16), ("resnet20", 8, 16, 8), ("resnet20", 8, 16, 16),
             ("resnet20", 10, 16, 16), ("resnet20", 3, 32, 8), ("resnet20", 4, 32, 16),
             ("digits", 2, 8, 4), ("digits", 2, 16, 16), ("digits", 4, 16, 8),
             ("digits", 6, 16, 16), ("digits", 9, 16, 16), ("digits", 4, 32, 16)]
# FIX32 engines whose cores calibrate its wide-data term (gen/cost.py: core_wide); FIX32
# designs fit the board only at a few rows (digits: gen picked 5x16x8 before this fit, 3x16x16
# after it, whose core the fit prices within 0.1 %: BENCHMARKS.md, forty-first session)
CORE_WIDE_GRID = [("resnet20", 2, 16, 8), ("resnet20", 4, 16, 8), ("resnet20", 2, 16, 16),
                  ("resnet20", 3, 16, 16), ("digits", 2, 16, 16), ("digits", 5, 16, 8)]
CACHE = Path(__file__).resolve().parent.parent / "build" / "engine-area"


def log(*a) -> None:
    print(*a, file=sys.stderr, flush=True)



def unit_components(cfg) -> dict:
    """One of each post-processing unit exactly as the engine of ``cfg`` builds it."""
    return {name: UNITS[name](unit) for name, unit in cfg.post_processing().items()}


# The networks whose engines calibrate the core model: the two gen ships, at random weights
# (the structure is what the core's size depends on), and a third, held out of the fit, that
# tests its reach (tests/test_cost_model.py)
NETWORKS = {"resnet20": "resnet20_shiftadd", "digits": "digits",
            "resnet8": ResNetConfig(in_channels=3, input_size=16, widths=(16, 32, 64),
                                    blocks=(1, 1, 1), num_classes=10)}


@functools.cache
def _network(network: str, precision: str):
    """Network ``network`` of :data:`NETWORKS` with random weights (``benchmarks/accel.py``)."""
    from accel import random_network

    from gen.nn.models import PRESETS

    arch = NETWORKS[network]
    return random_network(PRESETS[arch] if isinstance(arch, str) else arch, precision)


def network_engine(network: str, precision: str, rows: int, cols: int, lanes: int,
                   pairs: tuple[str, ...] = ()):
    """The engine the generator builds for ``network`` (:data:`NETWORKS`) at this geometry (not
    priced: the calibration runs before the model it fits exists); with ``pairs``, the one
    with paired convs (the short branches first, as the generator pairs ResNet-20)."""
    from gen.compile import compile_network, engine_config
    from gen.generate import pe_configs, shift_lane_bits

    net = _network(network, precision)
    geo = Geometry(rows, cols, lanes)
    pes = pe_configs(net, lanes)
    prog = compile_network(net, geo, shift_lane_bits=shift_lane_bits(pes),
                           data_bits=net.precision.bits, weights=False, pairs=pairs,
                           short_branches_first=bool(pairs))
    return engine_config(net, geo, prog, **pes)


def core_design(cfg) -> tuple[str, tuple[str, ...], str]:
    """:func:`gen.generate.core_design` (the engine's Verilog and the modules its core leaves
    out) and the cache key of its synthesis."""
    verilog, boxes = gen_core_design(cfg)
    return verilog, boxes, hashlib.sha256(json.dumps([verilog, boxes]).encode()).hexdigest()[:24]


def core_area(cfg) -> Area:
    """Synthesis of the engine of ``cfg`` without its PEs and post-processing units (the
    core), cached under ``build/engine-area/`` by a hash of its input (an 8x16x16 core takes
    134 s, 2026-12-04; synthesis is deterministic)."""
    verilog, boxes, key = core_design(cfg)
    path = CACHE / f"{key}.json"
    if path.exists():
        return Area(**json.loads(path.read_text()))
    a = synthesize(verilog, TOP_NAME, blackbox=boxes)
    save_core_area(key, a)
    return a


def save_core_area(key: str, a: Area) -> None:
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / f"{key}.json").write_text(json.dumps(a.to_json()))


def calibrate_core(model: CostModel, precision: str) -> dict:
    """Fit :func:`gen.cost.core_features` to what the cores of ``CORE_GRID`` synthesize beyond
    their counted multiplexers (``core_counted``), in relative terms (the cores span 5,000 to
    18,000 LUTs); 1-6 minutes each, cached."""
    samples = []
    for net, *g in CORE_GRID:
        cfg = network_engine(net, precision, *g)
        t0 = time.perf_counter()
        a = core_area(cfg)
        log(f"  core {net} {g[0]}x{g[1]}x{g[2]}: {a.lut_total} LUT "
            f"({time.perf_counter() - t0:.0f} s)")
        samples.append({"network": net, "geometry": f"{g[0]}x{g[1]}x{g[2]}",
                        "features": core_features(cfg), "counted": core_counted(cfg),
                        "lut": a.lut_total})
    x = [[v / s["lut"] for v in s["features"]] for s in samples]
    y = [1 - s["counted"] / s["lut"] for s in samples]
    for i, s in enumerate(samples):  # how far off the fit is for a core it has not seen
        c = fit_linear(x[:i] + x[i + 1:], y[:i] + y[i + 1:])
        est = s["counted"] + sum(a * b for a, b in zip(s["features"], c, strict=True))
        s["leave_one_out_error"] = round(est / s["lut"] - 1, 4)
        log(f"  {s['network']} {s['geometry']}: fitted without it, the model is off by "
            f"{100 * s['leave_one_out_error']:+.1f} %")
    core = {"lut": fit_linear(x, y), "samples": samples}
    doc = {**model.doc, "core": core, "core_calibrated": time.strftime("%Y-%m-%d")}
    MODEL_FILE.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return calibrate_wide(CostModel(doc))  # relative to this fit: it must follow it


def calibrate_wide(model: CostModel) -> dict:
    """Fit the core's wide-data term to the FIX32 cores of ``CORE_WIDE_GRID``: what each
    synthesized beyond the rest of the model (4-9 minutes each; cached)."""
    samples = []
    for net, *g in CORE_WIDE_GRID:
        cfg = network_engine(net, "fix32", *g)
        t0 = time.perf_counter()
        a = core_area(cfg)
        rest = model.core_base(cfg)
        log(f"  core {net} {g[0]}x{g[1]}x{g[2]} fix32: {a.lut_total} LUT, the rest of the model "
            f"{rest:.0f} ({time.perf_counter() - t0:.0f} s)")
        samples.append({"network": net, "geometry": f"{g[0]}x{g[1]}x{g[2]}",
                        "features": core_wide_features(cfg), "lut": a.lut_total,
                        "rest": round(rest, 1)})
    x = [s["features"] for s in samples]
    y = [s["lut"] - s["rest"] for s in samples]
    for i, s in enumerate(samples):  # how far off the whole core is, fitted without it
        c = fit_linear(x[:i] + x[i + 1:], y[:i] + y[i + 1:])
        est = s["rest"] + sum(a * b for a, b in zip(x[i], c, strict=True))
        s["leave_one_out_error"] = round(est / s["lut"] - 1, 4)
        log(f"  {s['network']} {s['geometry']} fix32: fitted without it, the core is off by "
            f"{100 * s['leave_one_out_error']:+.1f} %")
    doc = {**model.doc, "core_wide": {"lut": fit_linear(x, y), "samples": samples},
           "core_wide_calibrated": time.strftime("%Y-%m-%d")}
    MODEL_FILE.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return doc


def calibrate(model: CostModel) -> dict:
    ppu: dict = {}
    for unit, grid, make in (("requant", REQUANT_GRID, lambda g: RequantConfig(*g)),
                             ("add", ADD_GRID, lambda g: AddConfig(g[0], g[0], g[1])),
                             ("pool", POOL_GRID, lambda g: PoolConfig(*g))):
        x, y = [], {"lut": [], "ff": []}
        for g in grid:
            comp = UNITS[unit](make(g))
            a = synthesize_component(comp)
            log(f"  calibration {unit} {g}: {a.lut_total} LUT {a.ff} FF")
            x.append(ppu_unit_features(comp.config))
            y["lut"].append(a.lut_total)
            y["ff"].append(a.ff)
        ppu[unit] = {k: fit_linear(x, v, relative=True) for k, v in y.items()}
    doc = {**model.doc, "ppu": ppu, "ppu_calibrated": time.strftime("%Y-%m-%d")}
    MODEL_FILE.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return doc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--calibrate", action="store_true")
    ap.add_argument("--calibrate-core", action="store_true")
    ap.add_argument("--calibrate-wide", action="store_true",
                    help="only the core's FIX32 term (CORE_WIDE_GRID; --calibrate-core also "
                         "fits it)")
    ap.add_argument("--network", choices=tuple(NETWORKS), default="resnet20")
    ap.add_argument("--precision", choices=("fix8", "fix32"), default="fix8")
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--cols", type=int, default=16)
    ap.add_argument("--lanes", type=int, default=16)
    args = ap.parse_args()
    model = CostModel.load()
    if args.calibrate:
        log("calibrating the engine cost model ...")
        model = CostModel(calibrate(model))
    if args.calibrate_core:
        log("calibrating the engine core model ...")
        model = CostModel(calibrate_core(model, args.precision))
    elif args.calibrate_wide:
        log("calibrating the engine core's wide-data term ...")
        model = CostModel(calibrate_wide(model))
    cfg = network_engine(args.network, args.precision, args.rows, args.cols, args.lanes)
    units = {}
    for name, comp in unit_components(cfg).items():
        a = synthesize_component(comp)
        units[name] = a.lut_total
        log(f"{name}: {a.lut_total} LUT ({a.seconds:.0f} s)")
    est_ppu = model.ppu(cfg).lut
    t0 = time.perf_counter()
    core = core_area(cfg)
    log(f"core: {core.lut_total} LUT ({time.perf_counter() - t0:.0f} s)")
    est = estimate_luts(cfg, model)
    result = {
        "network": args.network, "geometry": f"{cfg.rows}x{cfg.cols}x{cfg.lanes}",
        "precision": args.precision,
        "units": {k: {"synth_lut": v, "shifter": ppu_units(cfg)[k]} for k, v in units.items()},
        "ppu_per_column": {"synth_lut": sum(v * cfg.unit_counts()[k] for k, v in units.items()),
                           "model_lut": round(est_ppu)},
        "core": {"synth_lut": core.lut_total, "synth_lutram": core.lutram, "synth_ff": core.ff,
                 "model_lut": round(est["core"])},
    }
    if args.json:
        print(json.dumps(result, sort_keys=True))
        return 0
    print(f"{args.network} {args.precision} engine {result['geometry']} (Yosys synth_xilinx "
          "xc7)")
    for k, v in result["units"].items():
        print(f"  {k:10s} {v['synth_lut']:6d} LUT  (shifter {v['shifter'][0]} bits, "
              f"{v['shifter'][1]}-bit shift)")
    p = result["ppu_per_column"]
    print(f"  per column {p['synth_lut']:6d} LUT  model {p['model_lut']}")
    c = result["core"]
    print(f"  core       {c['synth_lut']:6d} LUT  model {c['model_lut']}; {c['synth_lutram']} "
          "of them as memory")
    return 0


if __name__ == "__main__":
    sys.exit(main())
