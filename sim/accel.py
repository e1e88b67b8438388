"""Run a generated accelerator under Verilator + cocotb and compare it with the golden model.

Used by ``shiftadd sim`` and the RTL tests. The accelerator's Verilog is built from its
:class:`~hw.engine.EngineConfig` and build id (cached like every build, :mod:`sim.rtl`); the
testbench is :mod:`sim.tb.engine_tb`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from gen.compile import (
    Program,
    infer_frame,
    load_frame,
    output_tensor,
    tensor_to_words,
    tensor_words,
)
from gen.ir import IntegerNetwork
from hw.engine import EngineConfig
from hw.program import MemoryId, beats_per_word, pack_descriptor, words_to_beats
from sim import golden, rtl


@dataclass
class SimResult:
    images: int
    mismatches: int
    cycles: list[int]
    busy: list[int]
    outputs: list[np.ndarray]
    build_seconds: float
    run_seconds: float

    def to_json(self) -> dict:
        return {"images": self.images, "mismatches": self.mismatches,
                "cycles_per_image": self.cycles[-1] if self.cycles else None,
                "cycles": self.cycles, "busy": self.busy,
                "build_seconds": round(self.build_seconds, 1),
                "run_seconds": round(self.run_seconds, 2),
                "images_per_s": round(self.images / self.run_seconds, 2)
                if self.run_seconds else None}


def build(cfg: EngineConfig, build_id: int) -> rtl.Build:
    from hw.top import Top

    return rtl.build(lambda: Top(cfg, build_id), "accel",
                     {"engine": cfg.to_json(), "build_id": build_id})


def out_beats(net: IntegerNetwork, cfg: EngineConfig) -> int:
    return tensor_words(net.tensors[net.output].shape, cfg.cols) * beats_per_word(cfg.word_bits)


def make_case(net: IntegerNetwork, cfg: EngineConfig, prog: Program, build_id: int,
              x: np.ndarray) -> dict:
    """The testbench's case: frames for ``x[N, C, H, W]`` (integers in the input format) and the
    golden model's expected beats."""

    y = golden.run(net, x)
    expected = [words_to_beats(tensor_to_words(t, cfg.cols, cfg.data_bits), cfg.word_bits)
                for t in y]
    # the same program with an illegal opcode (15) in place of its first descriptor
    words = prog.memories[MemoryId.PROGRAM]
    bad = replace(prog, memories={**prog.memories,
                                  MemoryId.PROGRAM: [pack_descriptor({"op": 15}), *words[1:]]})
    return {"build_id": build_id, "load": load_frame(prog, cfg), "bad_load": load_frame(bad, cfg),
            "images": [infer_frame(t, cfg) for t in x], "expected": expected,
            "out_beats": out_beats(net, cfg)}


def simulate(net: IntegerNetwork, cfg: EngineConfig, prog: Program, build_id: int,
             x: np.ndarray, *, seed: int, idle: float = 0.1, backpressure: float = 0.1,
             tests: str = "run_images", workdir: Path | None = None) -> SimResult:
    """Build (or reuse) the accelerator, run ``x`` through it, return what was measured.

    Raises :class:`sim.rtl.RTLTestFailure` when any output differs from the golden model's."""
    b = build(cfg, build_id)
    workdir = Path(workdir or b.directory / "cases")
    workdir.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}-{seed}"
    case_file, result_file = workdir / f"case-{tag}.json", workdir / f"result-{tag}.json"
    case_file.write_text(json.dumps(make_case(net, cfg, prog, build_id, np.asarray(x))))
    rtl.run(b, "sim.tb.engine_tb", {"case": str(case_file), "result": str(result_file),
                                    "idle": idle, "backpressure": backpressure},
            seed=seed, tests=tests)
    res = json.loads(result_file.read_text()) if result_file.exists() else None
    if res is None:
        return SimResult(0, 0, [], [], [], b.seconds, 0.0)
    shape = net.tensors[net.output].shape
    outs = [output_tensor(o, shape, cfg) for o in res["outputs"]]
    return SimResult(len(outs), res["mismatches"], res["cycles"], res["busy"], outs, b.seconds,
                     res["seconds"])

