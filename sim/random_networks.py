"""Random ShiftAdd ResNets through the whole flow: quantize, compile for a random engine
geometry, run in RTL under Verilator, compare with the golden model.

Users bring their own models: channel counts that are no multiple of the array's columns or
lanes, inputs of many words per pixel, one stage or three, a few classes or many. A draw
(:func:`draw`) picks such a network and its precision and geometry from a seed; :func:`run`
runs a group of draws of one precision and geometry on one engine build
(:func:`gen.generate.shared_engine`), each once with the streams never idle, where the
measured cycles must equal the cycle model's, and once with random idle and backpressure.
Used by ``tests/test_random_networks.py`` and ``benchmarks/random_networks.py``.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import numpy as np

from gen.compile import Geometry
from gen.ir import IntegerNetwork
from gen.nn.models import ResNetConfig
from gen.numerics import Precision

WIDTHS = (3, 4, 8, 12, 16, 20, 24, 33)
IN_CHANNELS = (1, 2, 3, 4, 5, 17)
BUILD_ID = 0x0F0220ED


@dataclass(frozen=True)
class Draw:
    seed: int
    config: ResNetConfig
    shift_range: int

    def network(self, precision: Precision) -> tuple[IntegerNetwork, np.ndarray]:
        """The quantized network (random weights, BatchNorm calibrated on a random batch) and
        three inputs: two of the batch and one of extreme values."""
        from gen.nn.models import ShiftAddResNet, random_inputs, randomize
        from gen.numerics import quantize_real
        from gen.quantize import quantize

        calib = random_inputs(self.config, 8, self.seed)
        model = randomize(ShiftAddResNet(self.config).eval(), seed=self.seed, calibration=calib,
                          shift_range=self.shift_range)
        net = quantize(model, calib, precision)
        fmt = net.tensors[net.input].fmt
        x = quantize_real(calib[:2].numpy(), fmt)
        extreme = np.random.default_rng(self.seed).choice([fmt.lo, 0, fmt.hi],
                                                          size=(1, *x.shape[1:]))
        return net, np.concatenate([x, extreme])


def draw(seed: int, *, max_size: int = 16) -> Draw:
    """A random network: 1-3 stages of 1-2 blocks, widths from :data:`WIDTHS`, an input side
    of 1 to ``max_size`` (odd sides halve to odd maps, and most final pools average over an
    area that is no power of two), 2-20 classes, shift exponents over 0..k for a k of 0-7."""
    r = random.Random(seed)
    stages = r.randint(1, 3)
    config = ResNetConfig(in_channels=r.choice(IN_CHANNELS), input_size=r.randint(1, max_size),
                          widths=tuple(r.choice(WIDTHS) for _ in range(stages)),
                          blocks=tuple(r.randint(1, 2) for _ in range(stages)),
                          num_classes=r.randint(2, 20))
    return Draw(seed, config, shift_range=r.randint(0, 7))


def geometry(seed: int) -> tuple[Precision, Geometry]:
    """A random precision and a small engine geometry: 1-5 rows, 1-16 columns, lanes any
    divisor of the columns (not only the sizing's candidates: ``--cols``/``--lanes`` take
    any, and FIX8 words of 1-3 or 5-7 channels are narrower than their stream beats); builds
    of 5-60 s."""
    r = random.Random(f"geometry {seed}")
    cols = r.randint(1, 16)  # 32 columns build for minutes
    return (r.choice([Precision.FIX8, Precision.FIX32]),
            Geometry(rows=r.randint(1, 5), cols=cols,
                     lanes=r.choice([v for v in range(1, cols + 1) if cols % v == 0])))


@dataclass
class Outcome:
    seed: int
    config: ResNetConfig
    images: int
    mismatches: int
    cycles: list[int]  # per image, streams never idle
    model_cycles: int
    cycles_idle: list[int]  # per image, with random idle and backpressure
    mismatches_idle: int
    error: str | None = None  # a failed simulation: its first line (the log's path)
    distinct_outputs: int = 0  # distinct values among the golden model's outputs

    @property
    def ok(self) -> bool:
        return (self.error is None and self.images > 0 and self.mismatches == 0
                and self.mismatches_idle == 0)

    @property
    def exact_cycles(self) -> bool:
        return self.images > 0 and self.cycles == [self.model_cycles] * self.images

    def to_json(self) -> dict:
        return {"seed": self.seed, "config": self.config.to_json(), "images": self.images,
                "mismatches": self.mismatches + self.mismatches_idle,
                "cycles": self.cycles, "model_cycles": self.model_cycles,
                "exact_cycles": self.exact_cycles, "cycles_with_idle": self.cycles_idle,
                "distinct_outputs": self.distinct_outputs, "error": self.error}


def run(draws: list[Draw], precision: Precision, geo: Geometry, *, idle: float = 0.2,
        progress=lambda s: None) -> tuple[list[Outcome], float]:
    """Run every draw on one engine build (sized for all of them); returns the outcomes and
    the build's seconds."""
    from gen.compile import load_frame
    from gen.cycles import program_cycles
    from gen.generate import shared_engine
    from sim import golden
    from sim.accel import build_config, make_case, run_case
    from sim.rtl import RTLTestFailure

    nets = [d.network(precision) for d in draws]
    cfg, progs = shared_engine([n for n, _ in nets], geo)
    t0 = time.perf_counter()
    b = build_config(cfg, BUILD_ID)
    seconds = time.perf_counter() - t0
    progress(f"{precision.name} {geo.rows}x{geo.cols}x{geo.lanes}: built in {seconds:.0f} s"
             if not b.cached else f"{precision.name} {geo.rows}x{geo.cols}x{geo.lanes}: cached")
    out = []
    for d, (net, x), prog in zip(draws, nets, progs, strict=True):
        case = make_case(net, cfg, load_frame(prog, cfg), BUILD_ID, x)
        distinct = len(np.unique(golden.run(net, x)))
        model = program_cycles(prog.descriptors, cfg)
        c = d.config
        what = (f"seed {d.seed}: {c.in_channels} channels {c.input_size}x{c.input_size}, "
                f"widths {list(c.widths)}, blocks {list(c.blocks)}, {c.num_classes} classes")
        try:
            exact = run_case(b, net, cfg, case, seed=d.seed, idle=0.0, backpressure=0.0)
            rough = run_case(b, net, cfg, case, seed=d.seed, idle=idle, backpressure=idle)
        except RTLTestFailure as e:
            o = Outcome(d.seed, c, 0, 0, [], model, [], 0, error=str(e).splitlines()[0],
                        distinct_outputs=distinct)
            progress(f"  {what}: FAILED: {o.error}")
        else:
            o = Outcome(d.seed, c, min(exact.images, rough.images), exact.mismatches,
                        exact.cycles, model, rough.cycles, rough.mismatches,
                        distinct_outputs=distinct)
            progress(f"  {what}: {o.mismatches + o.mismatches_idle} mismatches, "
                     f"{o.cycles[0]} cycles (model {model})")
        out.append(o)
    return out, seconds
