"""The accelerator on ResNet-20 ShiftAdd (random, hardware-relevant weights; FIX8).

    python benchmarks/accel.py [--json] [--rtl-layers | --rtl-network N]
                               [--rows R --cols C --lanes V]

Default: ``shiftadd gen``'s sizing for the ZC706 at 200 MHz (70 % LUT budget), generation time,
cycles per image and images/s from the engine cycle model, and per-layer PE utilization
(ideal lane operations / (cycles x lanes of the active array)).

``--rtl-layers``: PE utilization of every distinct conv shape *measured in RTL* (Verilator) at
4x16x8, or the geometry ``--rows/--cols/--lanes`` give (10x16x16 is what ``shiftadd gen`` picks
for ResNet-20 on the ZC706): each layer runs as a one-layer program and as the same program with
the conv twice; the difference of the two CYCLES counters is the conv's measured cycles.

``--rtl-network N``: the whole network as ``shiftadd gen`` generates it (its sizing, or the
geometry given), N random images through its RTL under Verilator (``shiftadd sim``'s code,
streams never idle): mismatches against the golden model and the CYCLES counter per image
against the cycle model. The Verilator build of a 10x16x16 engine takes several minutes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from gen.report import emit


def calibration() -> torch.Tensor:
    from gen.nn.models import PRESETS, random_inputs

    return random_inputs(PRESETS["resnet20_shiftadd"], 16)


def random_network(config, precision: str = "fix8"):
    """The network of ``config`` (a ``ResNetConfig``) with random weights and the BatchNorm
    statistics of a random batch, quantized to ``precision``."""
    from gen.nn.models import build, random_inputs, randomize
    from gen.numerics import Precision
    from gen.quantize import quantize

    calib = random_inputs(config, 16)
    model = randomize(build("resnet20_shiftadd", config).eval(), 0, calibration=calib)
    return quantize(model, calib, Precision(precision))


def resnet20(precision: str = "fix8"):
    """ResNet-20 ShiftAdd (FIX8 unless told) with random weights (:func:`random_network`)."""
    from gen.nn.models import PRESETS

    return random_network(PRESETS["resnet20_shiftadd"], precision)


def projection(args) -> dict:
    from gen.generate import generate
    from gen.plots import TARGETS

    net = resnet20()
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        _, rep = generate(net, Path(d) / "out", rows=args.rows, cols=args.cols,
                          lanes=args.lanes)
        seconds = time.perf_counter() - t0
    convs = [x for x in rep["layers"] if "utilization" in x]
    # the blocks' convs (layerS.B.convN.{0,1}) are the 3x3 ones
    three = [x["utilization"] for x in convs if x["name"].startswith("layer") and
             ".conv" in x["name"]]
    return {"generation_seconds": round(seconds, 1), "array": rep["array"],
            "cycles_per_image": rep["cycles_per_image"], "images_per_s_200mhz":
            rep["images_per_s"], "lut_share_model": rep["resources_model"]["lut_share"],
            "array_lut_share_model": rep["resources_model"]["array_lut_share"],
            "bram36_model": rep["resources_model"]["bram36_total"],
            "utilization_3x3_min": min(three), "utilization_3x3_max": max(three),
            "layers_below_85_percent": [x["name"] for x in convs
                                        if x["utilization"] < TARGETS[0]],
            "energy": rep["energy"], "layers": convs}


def rtl_layers(rows: int = 4, cols: int = 16, lanes: int = 8) -> dict:
    from dataclasses import replace

    from gen.compile import Geometry, load_frame
    from gen.cycles import descriptor_cycles
    from gen.generate import (
        layer_inputs,
        residual_layer_network,
        shared_engine,
        single_layer_networks,
    )
    from gen.numerics import quantize_real
    from hw.program import MemoryId, Opcode, pack_descriptor
    from sim.accel import build_config, make_case, run_case

    whole = resnet20()
    nets = single_layer_networks(whole)
    fused = residual_layer_network(nets["adder_16to16_k3s1_32x32"], whole)  # conv + add in one
    nets[fused.name] = fused
    # each layer's input as it is in the whole network (random integers would drive the adder
    # convs so far below their BatchNorm means that their ReLUs output only zeros)
    acts = layer_inputs(whole, nets, quantize_real(calibration()[:1].numpy(),
                                                   whole.tensors[whole.input].fmt))
    geo = Geometry(rows, cols, lanes)
    cfg, progs = shared_engine(list(nets.values()), geo)
    b = build_config(cfg, 0x5EED1A7E)
    out = []
    for (name, net), prog in zip(nets.items(), progs, strict=True):
        conv = next(d for d in prog.descriptors
                    if d["op"] in (Opcode.SHIFT_CONV, Opcode.ADDER_CONV))
        twice = [*prog.descriptors[:2], conv, *prog.descriptors[2:]]
        p2 = replace(prog, descriptors=twice, memories={
            **prog.memories, MemoryId.PROGRAM: [pack_descriptor(d) for d in twice]})
        spec = net.tensors[net.input]
        x = acts[name]
        runs = [run_case(b, net, cfg, make_case(net, cfg, load_frame(p, cfg), 0x5EED1A7E, x),
                         seed=1, idle=0.0, backpressure=0.0) for p in (prog, p2)]
        if any(r.mismatches for r in runs):  # a cycle count of a wrong result means nothing
            raise SystemExit(f"{name}: RTL differs from the golden model")
        measured = runs[1].cycles[0] - runs[0].cycles[0]
        xs, ys = spec.shape, net.tensors[net.output].shape
        k = int(name.split("_k")[1][0])
        ops = ys[0] * ys[1] * ys[2] * xs[0] * k * k
        out.append({"layer": name, "mismatches": 0, "measured_cycles": measured,
                     "model_cycles": descriptor_cycles(conv, cfg),
                     "utilization": round(ops / (measured * cfg.rows * cfg.cols * cfg.lanes), 4)})
    return {"geometry": f"{geo.rows}x{geo.cols}x{geo.lanes}", "layers": out}


def rtl_network(args) -> dict:
    from gen.generate import generate
    from sim.accel import simulate_outdir

    net = resnet20()
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "out"
        _, rep = generate(net, out, rows=args.rows, cols=args.cols, lanes=args.lanes)
        t0 = time.perf_counter()
        res, info = simulate_outdir(out, args.rtl_network, seed=1, idle=0.0, backpressure=0.0,
                                    progress=lambda s: print(s, file=sys.stderr, flush=True))
        seconds = time.perf_counter() - t0
    model = info["model_cycles_per_image"]
    return {"array": rep["array"], "images": res.images, "mismatches": res.mismatches,
            "inputs": info["inputs"], "cycles_measured": res.cycles, "cycles_model": model,
            "images_per_s_200mhz_measured": round(200e6 / max(res.cycles), 1),
            "seconds": round(seconds, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--rtl-layers", action="store_true")
    ap.add_argument("--rtl-network", type=int, metavar="N", default=0)
    ap.add_argument("--rows", type=int)
    ap.add_argument("--cols", type=int)
    ap.add_argument("--lanes", type=int)
    args = ap.parse_args()
    if args.rtl_network:
        res = rtl_network(args)
        emit(res, args.json)
        return 0 if res["mismatches"] == 0 else 1
    if args.rtl_layers:
        res = rtl_layers(args.rows or 4, args.cols or 16, args.lanes or 8)
    else:
        res = projection(args)
    if args.json:
        emit(res, True)
        return 0
    if args.rtl_layers:
        print(f"{'layer':28s}{'measured':>10s}{'model':>8s}{'util':>8s}")
        for r in res["layers"]:
            print(f"{r['layer']:28s}{r['measured_cycles']:10d}{r['model_cycles']:8d}"
                  f"{100 * r['utilization']:7.1f}%")
        return 0
    from gen.generate import limited_by

    print(f"{'layer':28s}{'op':>12s}{'cycles':>8s}{'util':>8s}  limited by")
    for x in res["layers"]:
        print(f"{x['name']:28s}{x['op']:>15s}{x['cycles']:8d}{100 * x['utilization']:7.1f}%"
              f"  {limited_by(x)}")
    emit({k: v for k, v in res.items() if k not in ("layers", "energy")}, False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
