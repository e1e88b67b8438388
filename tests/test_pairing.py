"""Paired convs: a ResNet downsample conv run in its block conv's tiles (``gen.compile.pair_steps``,
the engine's ``pair`` descriptors, ``EngineConfig.paired``; docs/ACCELERATOR.md)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

from gen.compile import Geometry, compile_network, engine_config, load_frame
from gen.cycles import program_cycles
from gen.generate import pe_configs, shift_lane_bits
from gen.nn.models import ResNetConfig
from gen.numerics import Precision
from hw.engine import RESIDUAL_MARGIN
from hw.program import MemoryId, Opcode, pack_descriptor

BUILD_ID = 0x9A1D

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def _compile(net, geo: Geometry, pairs=("shift", "adder"), first: bool = True, weights=True):
    pes = pe_configs(net, geo.lanes)
    prog = compile_network(net, geo, shift_lane_bits=shift_lane_bits(pes),
                           data_bits=net.precision.bits, short_branches_first=first,
                           pairs=pairs, weights=weights)
    return prog, engine_config(net, geo, prog, **pes)


def _pairs(prog) -> list[tuple[str, str]]:
    return [(s.name, s.pair.name) for s in prog.steps if s.pair is not None]


@pytest.fixture(scope="module")
def resnet20():
    from accel import resnet20

    return resnet20()


def test_resnet20_downsample_convs_run_in_their_blocks(resnet20):
    """At 10x16x16 each of ResNet-20's four 1x1 downsample convs runs in a block conv: the
    shift ones in the block's first shift conv (same input, the window's centre), the adder
    ones in the block's last adder conv, whose residual add reads their output. The program
    is faster than either unpaired one, and each pair reads its second input at the right
    distance."""
    geo = Geometry(10, 16, 16)
    prog, cfg = _compile(resnet20, geo, weights=False)
    assert cfg.paired == ("shift", "adder")
    assert _pairs(prog) == [(f"layer{b}.0.{host}", f"layer{b}.0.downsample.{k}")
                            for b in (2, 3) for host, k in (("conv1.0", 0), ("conv2.1", 1))]
    plain = [program_cycles(p.descriptors, c) for p, c in
             (_compile(resnet20, geo, (), first, weights=False) for first in (False, True))]
    paired = program_cycles(prog.descriptors, cfg)
    assert paired < min(plain)
    for s, d in zip(prog.steps, prog.descriptors, strict=False):
        if s.pair is None:
            assert not d.get("pair")
            continue
        x = resnet20.tensors[s.inputs[0]]
        c_in, _, w = x.shape
        b_in = -(-c_in // geo.cols)
        p = s.conv.padding
        centre = (p * w + p) * b_in
        assert d["pair_in"] == prog.bases[s.pair.inputs[0]] - prog.bases[s.inputs[0]] + centre
        assert d["pair_out"] == prog.bases[s.pair.output] and d["pair"] == 1
        if s.op is Opcode.SHIFT_CONV:  # the same input: the centre alone
            assert d["pair_in"] == centre
        else:  # the residual add reads what the paired conv writes
            assert d["res"] and d["in2_base"] == d["pair_out"]


def test_pairs_need_rows_for_the_residual_and_the_kinds_asked_for(resnet20):
    """A pair whose host adds the paired conv's output needs R >= RESIDUAL_MARGIN rows (the
    paired word is written before the host's reaches the residual adder); pairs over the same
    input need nothing (in the network's own order, where the downsample convs come after the
    block's: with the short branch first, the adder downsample conv reads the shift one's
    output before the block's first conv); and only the kinds asked for pair."""
    few = Geometry(RESIDUAL_MARGIN - 1, 16, 16)
    assert _compile(resnet20, few, weights=False)[1].paired == ()
    prog, cfg = _compile(resnet20, few, first=False, weights=False)
    assert cfg.paired == ("shift",)
    assert [h for h, _ in _pairs(prog)] == ["layer2.0.conv1.0", "layer3.0.conv1.0"]
    prog, cfg = _compile(resnet20, Geometry(10, 16, 16), ("adder",), weights=False)
    assert cfg.paired == ("adder",)
    assert [h for h, _ in _pairs(prog)] == ["layer2.0.conv2.1", "layer3.0.conv2.1"]
    prog, cfg = _compile(resnet20, Geometry(10, 16, 16), (), weights=False)
    assert cfg.paired == () and not _pairs(prog)


# (precision, rows x cols x lanes, stage widths, input side, seed): words of several blocks
# and sub-words, odd maps; both kinds paired
CASES = [("fix8", (7, 8, 4), (8, 16, 24), 7, 2), ("fix32", (6, 4, 4), (4, 8), 6, 3)]


@pytest.mark.parametrize("precision, dims, widths, side, seed", CASES,
                         ids=[f"{c[0]}-{'x'.join(map(str, c[1]))}" for c in CASES])
def test_paired_convs_bit_exact_and_cycle_exact_in_rtl(precision, dims, widths, side, seed):
    """A ShiftAdd ResNet with its downsample convs paired runs bit-exact in Verilator, with the
    streams never idle (the CYCLES counter equal to the cycle model's) and with random idle
    and backpressure. The paired convs' results count: with each pair reading its input one
    word off, the outputs differ. Illegal pair fields set the error bit."""
    from sim.accel import build_config, make_case, run_case
    from sim.random_networks import Draw

    prec = Precision(precision)
    config = ResNetConfig(in_channels=3, input_size=side, widths=widths,
                          blocks=(1,) * (len(widths) - 1) + (2,), num_classes=5)
    net, x = Draw(seed, config, shift_range=3).network(prec)
    prog, cfg = _compile(net, Geometry(*dims))
    assert cfg.paired == ("shift", "adder")
    assert len(_pairs(prog)) == 2 * (len(widths) - 1)
    b = build_config(cfg, BUILD_ID)
    case = make_case(net, cfg, load_frame(prog, cfg), BUILD_ID, x)
    exact = run_case(b, net, cfg, case, seed=seed, idle=0.0, backpressure=0.0)
    assert exact.mismatches == 0
    assert exact.cycles == [program_cycles(prog.descriptors, cfg)] * len(x)
    rough = run_case(b, net, cfg, case, seed=seed, idle=0.3, backpressure=0.3)
    assert rough.images == len(x) and rough.mismatches == 0

    def load_with(change, pick=lambda d: d.get("pair")) -> list[int]:
        """The load frame with ``change`` made to each descriptor ``pick`` chooses."""
        descs = [dict(d) for d in prog.descriptors]
        for d in descs:
            if pick(d):
                change(d)
        mems = {**prog.memories, MemoryId.PROGRAM: [pack_descriptor(d) for d in descs]}
        return load_frame(dataclasses.replace(prog, descriptors=descs, memories=mems), cfg)

    off = make_case(net, cfg, load_with(lambda d: d.update(pair_in=d["pair_in"] + 1)),
                    BUILD_ID, x)
    assert run_case(b, net, cfg, off, seed=seed, idle=0.0, backpressure=0.0).mismatches > 0

    def bad(**fields):
        return load_with(lambda d: d.update(fields))
    bad_loads = [bad(pair_banks=0), bad(pair_shift=cfg.requant_shift_max + 1),
                 bad(pair_shift=cfg.requant_shift_min - 1), bad(pair_p=cfg.param_depth),
                 bad(pair_banks=1, pair_out=cfg.act_depth),
                 # a conv with a global pool cannot pair
                 load_with(lambda d: d.update(pair=1, pair_banks=1), lambda d: d.get("pool"))]
    assert cfg.requant_shift_min > 0
    case = make_case(net, cfg, load_frame(prog, cfg), BUILD_ID, x[:1], bad_loads=bad_loads)
    run_case(b, net, cfg, case, seed=seed, idle=0.1, backpressure=0.1, tests="bad_descriptor")
