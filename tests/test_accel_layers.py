"""Every distinct ResNet-20 ShiftAdd conv shape as a one-layer program on one engine build:
bit-exact against the golden model, and measured cycles within 2 % of the cycle model."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from gen.compile import Geometry, load_frame
from gen.cycles import program_cycles
from gen.generate import (
    layer_inputs,
    one_layer_network,
    pooled_network,
    residual_layer_network,
    shared_engine,
    single_layer_networks,
)
from gen.ir import IntegerNetwork, TensorSpec
from gen.nn.models import PRESETS, build, random_inputs, randomize
from gen.numerics import Format, Precision, quantize_real, signed_bits
from gen.quantize import quantize
from hw.program import Opcode
from sim import golden
from sim.accel import build_config, make_case, run_case

# odd rows (a partial last tile in every layer) and one sub-word per word, as in the geometry
# `shiftadd gen` picks for ResNet-20 on the ZC706 (10x16x16)
GEO = Geometry(rows=3, cols=16, lanes=16)
BUILD_ID = 0x5EED1A7E


def narrowed(net, channels: int):
    """A one-layer adder network with only its first ``channels`` input channels: with 6 FIX8
    channels each input word travels as 2 of its 4 beats, and the adder conv sees any stale
    data the engine leaves in the other half (padded channels must be exactly 0)."""
    conv, req = net.ops
    x = net.tensors["x"]
    conv = type(conv)(**{**conv.__dict__, "weight": conv.weight[:, :channels]})
    specs = {**net.tensors, "x": type(x)("x", (channels, *x.shape[1:]), x.fmt)}
    return one_layer_network(f"adder_{channels}to{net.tensors['y'].shape[0]}_partial_words",
                             net.precision, specs, conv, req, source=net.meta["source"])


def fc_chain(net):
    """fc (``net``: its one-layer network), then a second 1x1 shift conv on its output: one
    pixel, so the second conv's only tile reads the first conv's only word while that conv
    still drains (the feeder takes the second conv two cycles after the first's last step):
    without ``follow_own`` it would read the word before it is written."""
    conv, req = net.ops
    x, acc, y = (net.tensors[k] for k in ("x", "acc", "y"))
    n = y.shape[0]
    rng = np.random.default_rng(5)
    conv2 = type(conv)(name="conv2", inputs=("y",), output="acc2",
                       sign=rng.integers(-1, 2, size=(n, n, 1, 1)).astype(np.int8),
                       exp=rng.integers(0, conv.exp_max + 1, size=(n, n, 1, 1)).astype(np.uint8),
                       exp_max=conv.exp_max, stride=1, padding=0)
    req2 = type(req)(name="requant2", inputs=("acc2",), output="z", mult=req.mult.copy(),
                     bias=np.zeros_like(req.bias), shift=req.shift, relu=False)

    def make(bits: int) -> IntegerNetwork:
        t = {"x": x, "acc": acc, "y": y,
             "acc2": TensorSpec("acc2", (n, 1, 1), Format(bits, y.fmt.frac + conv.exp_max)),
             "z": TensorSpec("z", (n, 1, 1), y.fmt)}
        return IntegerNetwork(name="shift_fc_chain", precision=net.precision, input="x", output="z",
                              tensors=t, ops=[conv, req, conv2, req2], meta=dict(net.meta))
    lo, hi = make(62).bounds()["acc2"]
    return make(max(signed_bits(min(int(lo.min()), 0), max(int(hi.max()), 0)), 2))


@functools.cache
def resnet20() -> tuple[torch.nn.Module, torch.Tensor]:
    """ResNet-20 ShiftAdd with random weights, and the random batch its BatchNorm statistics
    and quantizer are calibrated on."""
    calib = random_inputs(PRESETS["resnet20_shiftadd"], 16)
    return randomize(build("resnet20_shiftadd").eval(), seed=0, calibration=calib), calib


@functools.cache
def layers():
    """The engine, and per layer: its network, program and inputs (the activations it sees in
    the whole network on random images, where its outputs take many values)."""
    model, calib = resnet20()
    net = quantize(model, calib, Precision.FIX8)
    nets = single_layer_networks(net)
    partial = narrowed(nets["adder_64to64_k3s1_8x8"], 6)
    nets[partial.name] = partial
    residual = residual_layer_network(nets["adder_16to16_k3s1_32x32"], net)
    nets[residual.name] = residual
    # ResNet-20's last conv: its residual add and the global pool after it in one descriptor
    last = pooled_network(residual_layer_network(nets["adder_64to64_k3s1_8x8"], net))
    nets[last.name] = last
    # a pool the compiler cannot fuse (not global): an AVGPOOL of its own, on two ports
    pool2 = pooled_network(nets["adder_64to64_k3s1_8x8"], 2)
    nets[pool2.name] = pool2
    chain = fc_chain(nets["shift_64to10_k1s1_1x1"])
    nets[chain.name] = chain
    cfg, progs = shared_engine(list(nets.values()), GEO)
    x = quantize_real(calib[:2].numpy(), net.tensors[net.input].fmt)
    inputs = layer_inputs(net, nets, x)
    return cfg, {k: (n, p, inputs[k]) for (k, n), p in zip(nets.items(), progs, strict=True)}


# one engine for all of them (``layers``), built by the first: the tests that share it run on
# one pytest-xdist worker (a second would wait for the build)
LAYERS = pytest.mark.xdist_group("resnet20-layers")


@LAYERS
def test_every_resnet20_shape_is_covered():
    _, progs = layers()
    assert len(progs) == 19  # 14 ResNet-20 shapes, the partial-word input, the fused add, fc
    # followed by a conv of its kind, the fused add and pool, and a pool of its own
    _, prog, _ = progs["shift_fc_chain"]
    assert [d.get("follow_own", 0) for d in prog.descriptors[1:3]] == [0, 1]
    kinds = {k.split("_")[0] for k in progs}
    assert kinds == {"shift", "adder"}
    assert any("s2" in k for k in progs) and any("k1" in k for k in progs)


@LAYERS
@pytest.mark.parametrize("name", [
    "shift_3to16_k3s1_32x32", "shift_16to16_k3s1_32x32", "adder_16to16_k3s1_32x32",
    "shift_16to32_k3s2_32x32", "adder_32to32_k3s1_16x16", "shift_32to32_k3s1_16x16",
    "shift_16to32_k1s2_32x32", "adder_32to32_k1s1_16x16", "shift_32to64_k3s2_16x16",
    "adder_64to64_k3s1_8x8", "shift_64to64_k3s1_8x8", "shift_32to64_k1s2_16x16",
    "adder_64to64_k1s1_8x8", "shift_64to10_k1s1_1x1", "adder_6to64_partial_words",
    "adder_16to16_k3s1_32x32_residual", "shift_fc_chain",
    "adder_64to64_k3s1_8x8_residual_pool8", "adder_64to64_k3s1_8x8_pool2"])
def test_resnet20_layer_in_rtl(name, seed):
    cfg, progs = layers()
    net, prog, acts = progs[name]
    if name.endswith("partial_words"):  # 6 of 16 FIX8 channels: 2 of the word's 4 beats
        assert prog.descriptors[0]["in_beats"] == 2
    assert prog.descriptors[1].get("res", 0) == int("residual" in name)  # the conv
    assert prog.descriptors[1].get("pool", 0) == int(name.endswith("pool8"))
    assert (prog.descriptors[2]["op"] == Opcode.AVGPOOL) == name.endswith("pool2")
    spec = net.tensors[net.input]
    rng = np.random.default_rng(seed)
    x = acts.copy()  # image 0: what the layer sees in the network; image 1: extremes
    x[1] = rng.choice([spec.fmt.lo, 0, spec.fmt.hi], size=spec.shape)
    # a case whose outputs hardly vary (a ReLU after outputs far below zero) could not catch a
    # wrong datapath
    y = golden.run(net, x[:1])
    assert np.unique(y).size >= min(8, y.size // 2), "the layer's outputs barely vary"
    case = make_case(net, cfg, load_frame(prog, cfg), BUILD_ID, x)
    b = build_config(cfg, BUILD_ID)
    res = run_case(b, net, cfg, case, seed=seed, idle=0.0, backpressure=0.0)
    assert res.images == 2 and res.mismatches == 0
    model = program_cycles(prog.descriptors, cfg)
    for c in res.cycles:
        assert abs(c - model) <= 0.02 * model, f"measured {c} cycles, model {model}"


def test_a_conv_walks_its_rows_only_after_the_last_conv_has_taken_its_own(seed):
    """At 6 rows a conv's rows are there 7 cycles after its CHECK. fc, dispatched at once (both
    arrays idle), waits for them in its unit; the conv after it is fetched meanwhile, and its
    CHECK, 6 cycles after fc's, must wait, or its walk would overwrite fc's rows before fc
    takes them. Bit-exact, and cycle-exact against the model, which has that wait."""
    from gen.cycles import TO_DISPATCH, row_walk

    _, progs = layers()
    net, _, acts = progs["shift_fc_chain"]
    # the walk takes a cycle per row (row_walk, whatever the columns and lanes): a small build
    cfg, (prog,) = shared_engine([net], Geometry(rows=6, cols=4, lanes=4))
    assert row_walk(cfg) > 2 + TO_DISPATCH  # the second conv's CHECK comes before fc's rows
    spec = net.tensors[net.input]
    x = np.concatenate([acts[:1], np.random.default_rng(seed).choice(
        [spec.fmt.lo, 0, spec.fmt.hi], size=(1, *spec.shape))])
    case = make_case(net, cfg, load_frame(prog, cfg), BUILD_ID, x)
    res = run_case(build_config(cfg, BUILD_ID), net, cfg, case, seed=seed, idle=0.0,
                   backpressure=0.0)
    assert res.images == 2 and res.mismatches == 0
    assert res.cycles == [program_cycles(prog.descriptors, cfg)] * 2


def test_pools_over_windows_of_any_area(seed):
    """A 3x3 pool (an AVGPOOL of its own: on three rows each window row two transfers on two
    ports, the second with one port; on four rows one transfer on four ports, the fourth
    masked) and a global 6x6 one (fused into the conv) of a 6x6 map: both divide by the power
    of two above the area (16, 64), bit-exact (with idle and backpressure on three rows), and
    the AVGPOOL in the cycles of the model."""
    from gen.nn.models import ResNetConfig, ShiftAddResNet

    config = ResNetConfig(in_channels=3, input_size=6, widths=(12,), blocks=(1,), num_classes=4)
    calib = random_inputs(config, 8, 1)
    model = randomize(ShiftAddResNet(config).eval(), seed=1, calibration=calib)
    full = quantize(model, calib, Precision.FIX8)
    layer = single_layer_networks(full)["adder_12to12_k3s1_6x6"]
    # the activations the layer sees in the network: random integers over the whole format
    # drive it so far below its BatchNorm's mean that its ReLU leaves only zeros to pool
    x = layer_inputs(full, {"conv": layer},
                     quantize_real(calib[:3].numpy(), full.tensors[full.input].fmt))["conv"]
    nets = [pooled_network(layer, 3), pooled_network(layer)]
    cfg, progs = shared_engine(nets, Geometry(rows=3, cols=8, lanes=4))
    assert [(d["ports"], d["ports_last"], d["m0"]) for d in progs[0].descriptors
            if d["op"] == Opcode.AVGPOOL] == [(2, 1, 1)]
    assert progs[1].descriptors[1]["pool"] == 1
    for net, prog in zip(nets, progs, strict=True):
        y = golden.run(net, x)
        assert np.unique(y).size >= 8, f"{net.name}: the pooled values barely vary"
        case = make_case(net, cfg, load_frame(prog, cfg), BUILD_ID, x)
        res = run_case(build_config(cfg, BUILD_ID), net, cfg, case, seed=seed, idle=0.2,
                       backpressure=0.2)
        assert res.images == 3 and res.mismatches == 0, net.name
        if net is nets[0]:  # the AVGPOOL: the model's cycles with the streams never idle
            res = run_case(build_config(cfg, BUILD_ID), net, cfg, case, seed=seed, idle=0.0,
                           backpressure=0.0)
            assert res.cycles == [program_cycles(prog.descriptors, cfg)] * 3
    # on four rows the pool reads four ports: a window row in one transfer, the fourth masked
    cfg, (prog,) = shared_engine(nets[:1], Geometry(rows=4, cols=8, lanes=4))
    assert [(d["ports"], d["ports_last"], d["m0"]) for d in prog.descriptors
            if d["op"] == Opcode.AVGPOOL] == [(4, 3, 0)]
    case = make_case(nets[0], cfg, load_frame(prog, cfg), BUILD_ID, x)
    res = run_case(build_config(cfg, BUILD_ID), nets[0], cfg, case, seed=seed, idle=0.0,
                   backpressure=0.0)
    assert res.images == 3 and res.mismatches == 0
    assert res.cycles == [program_cycles(prog.descriptors, cfg)] * 3


def _sized_resnet20(precision: Precision):
    """ResNet-20 sized for the ZC706 as ``shiftadd gen`` sizes it, and one image of the random
    calibration batch."""
    from gen.generate import size_engine
    from gen.size import BOARDS

    model, calib = resnet20()
    net = quantize(model, calib, precision)
    x = quantize_real(calib[:1].numpy(), net.tensors[net.input].fmt)
    y = golden.run(net, x)
    assert np.unique(y).size >= 8, "the logits should take many values"
    return net, size_engine(net, BOARDS["zc706"]), x


def test_resnet20_fix8_whole_network_at_the_geometry_gen_picks(seed):
    """The whole ResNet-20 FIX8 network on the engine ``shiftadd gen`` builds for the ZC706
    (10x16x16): bit-exact, its measured cycles equal to the cycle model's, and those cycles at
    200 MHz at least the issue's 10,000 images/s."""
    net, d, x = _sized_resnet20(Precision.FIX8)
    cfg = d.cfg
    case = make_case(net, cfg, load_frame(d.program, cfg), BUILD_ID, x)
    b = build_config(cfg, BUILD_ID)
    # a test's quick build: the PE instances share their C++ (sim.rtl.SHARED_INSTANCE_CODE)
    assert "disabled gate optimization with -fno-gate" in (b.directory / "build.log").read_text()
    res = run_case(b, net, cfg, case, seed=seed, idle=0.0, backpressure=0.0)
    assert res.images == 1 and res.mismatches == 0
    assert res.cycles == [program_cycles(d.program.descriptors, cfg)] == [d.cycles]
    from gen.size import DEFAULT_CLOCK_MHZ  # 200

    assert DEFAULT_CLOCK_MHZ * 1e6 / res.cycles[0] >= 10_000


def test_resnet20_fix32_whole_network_fits_with_lut_ram_and_is_bit_exact(seed):
    """ResNet-20 in FIX32 fits the ZC706 only with its program and parameters in LUT RAM: with
    every memory in block RAM even the smallest engine is over the board's 545 BRAM36. Sized
    that way, the whole network runs bit-exact in RTL, within 2 % of the cycle model."""
    from gen.cost import CostModel
    from gen.generate import in_lutram
    from gen.size import BOARDS, LUT_BUDGET_SHARE

    net, d, x = _sized_resnet20(Precision.FIX32)
    board = BOARDS["zc706"]
    cfg = d.cfg
    assert cfg.lutram and d.bram36["program"] == 0 and d.luts["lutram"] > 0
    assert sum(d.bram36.values()) <= board.bram36 and d.luts_total <= LUT_BUDGET_SHARE * board.luts
    assert sum(in_lutram(d, CostModel.load(), ()).bram36.values()) > board.bram36
    case = make_case(net, cfg, load_frame(d.program, cfg), BUILD_ID, x)
    b = build_config(cfg, BUILD_ID)
    text = b.verilog.read_text()
    assert '(* ram_style = "distributed" *)\n  reg [' in text
    assert text.count('(* ram_style = "distributed" *)') == len(cfg.lutram)
    res = run_case(b, net, cfg, case, seed=seed, idle=0.1, backpressure=0.1)
    assert res.images == 1 and res.mismatches == 0
    model_cycles = program_cycles(d.program.descriptors, cfg)
    assert abs(res.cycles[0] - model_cycles) <= 0.02 * model_cycles
