"""Run a generated accelerator under Verilator + cocotb and compare it with the golden model.

Used by ``shiftadd sim`` (on an ``OUT/`` directory: the emitted Verilog file itself is built) and
the RTL tests. Builds are cached like every build (:mod:`sim.rtl`); the testbench is
:mod:`sim.tb.engine_tb`.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gen.compile import infer_frame, output_tensor, tensor_beats, tensor_words
from gen.ir import IntegerNetwork
from gen.report import plural
from hw.engine import EngineConfig
from hw.program import beats_per_word
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
    # per image that differs from the golden model: its index, how many of its output beats
    # differ, the first of them, and that beat as the RTL sent it and as expected
    differing: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"images": self.images, "mismatches": self.mismatches,
                "differing_images": self.differing,
                "cycles_per_image": int(np.median(self.cycles)) if self.cycles else None,
                "cycles_min": min(self.cycles, default=None),
                "cycles_max": max(self.cycles, default=None),
                "build_seconds": round(self.build_seconds, 1),
                "run_seconds": round(self.run_seconds, 2),
                "images_per_s": round(self.images / self.run_seconds, 2)
                if self.run_seconds else None}


def build_verilog(text: str, toplevel: str, progress=None, threads: int = 1) -> rtl.Build:
    """Build Verilog text (cached by its hash and ``threads``); ``progress`` hears how a long
    build goes."""
    digest = hashlib.sha256(text.encode()).hexdigest()
    return rtl.build(lambda: text, "accel", {"verilog_sha256": digest}, toplevel=toplevel,
                     progress=progress, threads=threads)


# shown before a first build, measured here (2 cores, 2026-12-02): digits at 4x16x8 (the demo)
# 29-30 s (38.6 s on a slower afternoon), at 9x16x16 (gen's choice since the sign-first shift
# lanes) 81-91 s (120 s that afternoon; 8x16x16 96.5 s; 106.6 s and 122.0 s on 2026-12-02's
# evening), ResNet-20 at 10x16x16 92-102 s; the heartbeat then says how far a build is
BUILD_TIME_HINT = ("a first build takes 30-40 s for digits at 4x16x8 arrays, 80-130 s at "
                   "9x16x16 (gen's choice), about 100 s or more for ResNet-20")


def build_config(cfg: EngineConfig, build_id: int) -> rtl.Build:
    """Build the simulation view ``shiftadd gen`` would emit for ``cfg`` (tests without
    ``OUT/``, a few images each: a quick build, :func:`sim.rtl.build`)."""
    from hw.top import TOP_NAME, emit_verilog

    return rtl.build(lambda: emit_verilog(cfg, build_id, simulation_view=True), "accel",
                     {"engine": cfg.to_json(), "build_id": build_id, "view": "simulation"},
                     toplevel=TOP_NAME, quick=True)


def out_beats(net: IntegerNetwork, cfg: EngineConfig) -> int:
    return tensor_words(net.tensors[net.output].shape, cfg.cols) * beats_per_word(cfg.word_bits)


def make_case(net: IntegerNetwork, cfg: EngineConfig, load: list[int], build_id: int,
              x: np.ndarray, **extra) -> dict:
    """The testbench's case: frames for ``x[N, C, H, W]`` (integers in the input format) and the
    golden model's expected output beats."""
    y = golden.run(net, x) if len(x) else []
    expected = [tensor_beats(t, cfg) for t in y]
    return {"build_id": build_id, "load": load, "images": [infer_frame(t, cfg) for t in x],
            "expected": expected, "out_beats": out_beats(net, cfg), **extra}


def _run_progress(path: Path, seconds: float) -> str:
    """What ``run_case``'s heartbeat says: the testbench's progress file, once it is there."""
    try:
        p = json.loads(path.read_text())
    except (OSError, ValueError):  # not written yet: the simulator starts
        return f"  starting the simulation ({seconds:.0f} s)"
    if "load_beats" in p:
        return (f"  loading the weights and the program into the RTL: {p['load_beats']:,} of "
                f"{p['load_total']:,} beats ({seconds:.0f} s)")
    if not p["done"]:
        return f"  loaded; the first images are running ({seconds:.0f} s)"
    rate = p["done"] / p["seconds"] if p["seconds"] > 0 else 0.0
    return (f"  {p['done']} of {p['total']} images through the RTL, {p['mismatches']} "
            f"mismatching so far ({rate:.2f} images/s; {seconds:.0f} s)")


def run_case(b: rtl.Build, net: IntegerNetwork, cfg: EngineConfig, case: dict, *, seed: int,
             idle: float, backpressure: float, tests: str = "run_images",
             progress=None, every: float = 10.0) -> SimResult:
    """Run the testbench on a built accelerator: the result counts the images whose outputs
    differ from the golden model's (``mismatches``, each in ``differing``; the caller judges
    them). Raises :class:`sim.rtl.RTLTestFailure` when any other check fails (an error bit,
    TLAST, a hang). ``progress``, if given, hears how far the run is every ``every``
    seconds."""
    workdir = b.directory / "cases"
    workdir.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}-{seed}-{tests}"
    case_file, result_file = workdir / f"case-{tag}.json", workdir / f"result-{tag}.json"
    progress_file = workdir / f"progress-{tag}.json"
    for f in (result_file, progress_file):
        f.unlink(missing_ok=True)
    case_file.write_text(json.dumps(case))
    try:
        with rtl.heartbeat(progress, every, lambda t: _run_progress(progress_file, t)):
            rtl.run(b, "sim.tb.engine_tb", {"case": str(case_file), "result": str(result_file),
                                            "progress": str(progress_file), "idle": idle,
                                            "backpressure": backpressure},
                    seed=seed, tests=tests)
    finally:
        progress_file.unlink(missing_ok=True)
    if not result_file.exists():
        return SimResult(0, 0, [], [], [], b.seconds, 0.0)
    res = json.loads(result_file.read_text())
    shape = net.tensors[net.output].shape
    outs = [output_tensor(o, shape, cfg) for o in res["outputs"]]
    return SimResult(len(outs), res["mismatches"], res["cycles"], res["busy"], outs, b.seconds,
                     res["seconds"], res["differing"])


def sample_inputs(net: IntegerNetwork, n: int, seed: int) -> tuple[np.ndarray, str]:
    """``n`` inputs in the network's input format: the digits test split (in order) when the
    network is a digits model with its normalization, else seeded random integers."""
    spec = net.tensors[net.input]
    norm = net.meta.get("normalization")
    if norm and spec.shape == (1, 8, 8):
        from gen.evaluate import quantize_input
        from gen.nn.data import TEST_SIZE, Normalization, load_digits_splits

        if n > TEST_SIZE:
            raise ValueError(f"the digits test split has {TEST_SIZE} images, not {n}")
        _, test = load_digits_splits()
        nm = Normalization(mean=norm["mean"], std=norm["std"])
        return quantize_input(net, nm.apply(test.pixels[:n])), "digits test split"
    rng = np.random.default_rng(seed)
    return (rng.integers(spec.fmt.lo, spec.fmt.hi + 1, size=(n, *spec.shape)),
            f"random integers (seed {seed})")


def simulate_outdir(out: Path, images: int, *, seed: int, idle: float = 0.1,
                    backpressure: float = 0.1, threads: int = 1,
                    inputs: tuple[np.ndarray, str] | None = None, images_per_start: int = 1,
                    progress=lambda s: None, every: float = 10.0) -> tuple[SimResult, dict]:
    """``shiftadd sim``: build ``out/rtl``'s Verilog (with ``threads`` evaluation threads),
    stream ``images`` inputs (:func:`sample_inputs`, or ``inputs``: integers in the input
    format and what they are), ``images_per_start`` per start of the accelerator (IMAGES, as
    the board's driver runs them), compare. ``progress`` hears each step, how a long build
    goes, and every ``every`` seconds how far the run is."""
    from firmware.driver import images_per_start_limit
    from gen.cycles import program_cycles
    from gen.generate import (
        load_frame_beats,
        load_outdir,
        program_descriptors,
        simulation_verilog,
    )

    if images < 1:
        raise ValueError(f"images must be at least 1, not {images}")
    for name, p in (("idle", idle), ("backpressure", backpressure)):
        if not 0 <= p < 1:  # at 1 a stream never moves and the simulation never ends
            raise ValueError(f"{name} must be at least 0 and below 1, not {p}")
    manifest, net, cfg = load_outdir(out)
    most = images_per_start_limit(manifest)
    if not isinstance(images_per_start, int) or not 1 <= images_per_start <= most:
        raise ValueError(f"images per start must be 1 to {most} (the IMAGES register), not "
                         f"{images_per_start!r}")
    x, source = inputs if inputs is not None else sample_inputs(net, images, seed)
    x = golden.check_input(net, x)  # before the build, which takes minutes
    if not len(x):
        raise ValueError("no inputs to run")
    text = simulation_verilog(out, manifest)
    progress(f"building {out / 'rtl'} under Verilator (cached after the first time; "
             f"{BUILD_TIME_HINT})")
    b = build_verilog(text, manifest["top"], progress, threads)
    progress(f"  built in {b.seconds:.1f} s" if not b.cached else "  reusing the cached build")
    load = load_frame_beats(out)
    per = "" if images_per_start == 1 else f", up to {images_per_start} per start"
    progress(f"running {plural(len(x), 'image')} ({source}) through the RTL{per}; streams "
             f"with {idle:.0%} idle and {backpressure:.0%} backpressure")
    res = run_case(b, net, cfg, make_case(net, cfg, load, manifest["build_id"], x,
                                          per_start=images_per_start),
                   seed=seed, idle=idle, backpressure=backpressure, progress=progress,
                   every=every)
    # the model's cycles for the program actually loaded
    model = program_cycles(program_descriptors(out, cfg), cfg)
    info = {"inputs": source, "model_cycles_per_image": model, "threads": threads,
            "images_per_start": images_per_start}
    return res, info
