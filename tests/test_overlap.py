"""The compiler's side of running the two arrays at the same time: activation banks, live
ranges, ``follow`` / ``barrier``, and the cycle model's schedule (the RTL side is
``tests/test_accel.py``: the whole digits network overlapped, bit-exact and cycle-exact)."""

from __future__ import annotations

import functools

import pytest
import torch

from gen.compile import (
    Geometry,
    Step,
    allocate,
    compile_network,
    fuse,
    overlap_flags,
    result_rows,
    tensor_banks,
    tensor_words,
)
from gen.cycles import descriptor_cycles, program_timeline
from gen.generate import pe_configs, shift_lane_bits
from gen.nn.models import build, randomize
from gen.numerics import Precision
from gen.quantize import quantize
from hw.engine import BANK_ADDER, BANK_MAIN, IN_FLIGHT, RESIDUAL_MARGIN
from hw.program import Opcode

GEO = Geometry(rows=8, cols=16, lanes=16)


@functools.cache
def resnet20():
    calib = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    model = randomize(build("resnet20_shiftadd").eval(), 0, calibration=calib)
    return quantize(model, calib, Precision.FIX8)


def test_tensors_live_in_the_banks_of_their_readers():
    steps = fuse(resnet20())
    banks = tensor_banks(steps)
    for s in steps:
        for j, t in enumerate(s.inputs):
            bank = BANK_ADDER if s.op is Opcode.ADDER_CONV and j == 0 else BANK_MAIN
            assert banks[t] >> bank & 1, (s.name, t)
    # ShiftAddNet: a shift conv's output feeds only its adder conv
    assert all(banks[s.output] == 1 << BANK_ADDER for s in steps if s.op is Opcode.SHIFT_CONV
               and s.name != "fc" and s.name != "conv1")


def test_no_two_live_tensors_share_words_of_a_bank():
    """Placed over live ranges two steps longer than the last read: neither the conv that runs
    beside the reader nor the next conv of the reader's array (which starts while the reader's
    results drain) may overwrite what it reads."""
    net = resnet20()
    steps = fuse(net)
    banks = tensor_banks(steps)
    bases, depths = allocate(net, steps, GEO.cols, banks)
    live = {}
    for i, s in enumerate(steps):
        if s.output is not None:
            live.setdefault(s.output, [i, i])
        for t in s.inputs:
            live[t][1] = i + IN_FLIGHT - 1
    names = list(bases)
    for a in names:
        ra = (bases[a], bases[a] + tensor_words(net.tensors[a].shape, GEO.cols))
        assert all(ra[1] <= depths[b] for b in range(2) if banks[a] >> b & 1)
        for b in names:
            if a >= b or not banks[a] & banks[b]:
                continue
            if live[a][1] < live[b][0] or live[b][1] < live[a][0]:
                continue
            rb = (bases[b], bases[b] + tensor_words(net.tensors[b].shape, GEO.cols))
            assert ra[1] <= rb[0] or rb[1] <= ra[0], (a, b)


def test_resnet20_pairs_follow_and_never_wait():
    net = resnet20()
    steps = fuse(net)
    flags = overlap_flags(steps, tensor_banks(steps), drains(net, steps))
    for i, (s, f) in enumerate(zip(steps, flags, strict=True)):
        prev = steps[i - 1] if i else None
        after_conv = s.conv is not None and prev is not None and prev.conv is not None
        assert bool(f) == after_conv, s.name
        if after_conv and prev.op is s.op:  # layer1.0.conv1.0 after conv1: both shift convs
            assert f == {"barrier": 1, "follow_own": 1}, s.name  # reads conv1's output
        elif after_conv and prev.pool is not None:  # fc reads the pool fused into the last conv
            assert f == {"barrier": 1, "follow": 1}, s.name  # ... and writes the main bank too
        elif after_conv:
            assert f["barrier"] == 0, s.name
            assert f["follow"] == int(s.inputs[0] == prev.output), s.name
    assert sum(f.get("follow", 0) for f in flags) == 38  # every pair but the downsample shifts
    assert [s.name for s, f in zip(steps, flags, strict=True) if f.get("barrier")] == \
        ["layer1.0.conv1.0", "fc"]


def drains(net, steps):
    return {s.output: result_rows(net.tensors[s.output].shape, GEO) for s in steps
            if s.conv is not None}


def test_downsample_reads_its_residual_from_the_conv_two_steps_back_without_waiting():
    """ResNet-20's downsample adder conv adds the block's second adder conv's output, which may
    still be draining (the shift conv between runs beside both): word by word, its residual
    words are written long before it reads them."""
    net = resnet20()
    steps = fuse(net)
    flags = overlap_flags(steps, tensor_banks(steps), drains(net, steps))
    ds = [i for i, s in enumerate(steps) if s.name.endswith("downsample.0.1")] or \
        [i for i, s in enumerate(steps) if "downsample" in s.name and
         s.op is Opcode.ADDER_CONV]
    assert len(ds) == 2
    for i in ds:
        assert steps[i - 2].op is steps[i].op and steps[i].inputs[-1] == steps[i - 2].output
        assert flags[i]["barrier"] == 0
    assert min(drains(net, steps)[steps[i - 2].output] for i in ds) >= RESIDUAL_MARGIN


def _step(op, name, inputs, output, res=False):
    return Step(op, name, tuple(inputs), output, conv=object(), node=object() if res else None)


@pytest.mark.parametrize("case,barrier", [
    ("different banks", 0), ("one bank", 1), ("residual is the other's output", 1),
    ("both add a residual", 1), ("same kind", 1)])
def test_barrier_when_overlap_would_be_unsafe(case, barrier):
    S, A = Opcode.SHIFT_CONV, Opcode.ADDER_CONV
    first = _step(S, "s", ["x"], "t", res=case == "both add a residual")
    second = {"different banks": _step(A, "a", ["t"], "y"),
              "one bank": _step(A, "a", ["x"], "u"),
              "residual is the other's output": _step(A, "a", ["x", "t"], "y", res=True),
              "both add a residual": _step(A, "a", ["t", "x"], "y", res=True),
              # an adder conv may still run beside `first`, unchecked against this one
              "same kind": _step(S, "s2", ["x"], "y")}[case]
    banks = {"x": 3, "t": 1 << BANK_ADDER, "y": 1 << BANK_MAIN, "u": 1 << BANK_ADDER}
    if case == "residual is the other's output":
        banks["t"] = 1 << BANK_MAIN
    flags = overlap_flags([first, second], banks, {"t": 64, "y": 64, "u": 64})
    assert flags[0] == {} and flags[1]["barrier"] == barrier


@pytest.mark.parametrize("case,follow_own", [
    ("reads its output", 1), ("independent", 0), ("and its residual", 1),
    ("and its residual, short drain", 0)])
def test_a_conv_after_one_of_its_kind_follows_it_only_when_it_reads_it(case, follow_own):
    """Both units idle first (``barrier``), but this array's last conv may still drain when
    this one reads its output as input (``follow_own``: its frontier, as for the other array)."""
    S = Opcode.SHIFT_CONV
    first = _step(S, "s", ["x"], "t")
    second = {"reads its output": _step(S, "s2", ["t"], "y"),
              "independent": _step(S, "s2", ["x"], "y"),
              "and its residual": _step(S, "s2", ["t", "t"], "y", res=True),
              "and its residual, short drain": _step(S, "s2", ["t", "t"], "y", res=True)}[case]
    rows = RESIDUAL_MARGIN - 1 if case.endswith("short drain") else RESIDUAL_MARGIN
    flags = overlap_flags([first, second], {"x": 1, "t": 1, "y": 2}, {"t": rows, "y": 64})
    assert flags[1]["barrier"] == 1 and flags[1].get("follow_own", 0) == follow_own


@pytest.mark.parametrize("case,barrier", [
    ("unrelated", 0), ("input", 1), ("residual", 0), ("residual, short drain", 1)])
def test_barrier_when_the_conv_two_steps_back_may_still_write_what_it_reads(case, barrier):
    """Steps A (adder), S (shift), A2 (adder): A may still drain when A2 starts."""
    S, A = Opcode.SHIFT_CONV, Opcode.ADDER_CONV
    a = _step(A, "a", ["x"], "p")
    s = _step(S, "s", ["p"], "q")
    a2 = {"unrelated": _step(A, "a2", ["q"], "y"),
          "input": _step(A, "a2", ["p"], "y"),
          "residual": _step(A, "a2", ["q", "p"], "y", res=True),
          "residual, short drain": _step(A, "a2", ["q", "p"], "y", res=True)}[case]
    banks = {"x": 1 << BANK_ADDER, "p": 1 << BANK_MAIN, "q": 1 << BANK_ADDER,
             "y": 1 << BANK_MAIN}
    if case == "input":
        banks["p"] |= 1 << BANK_ADDER
    rows = RESIDUAL_MARGIN - 1 if case == "residual, short drain" else RESIDUAL_MARGIN
    flags = overlap_flags([a, s, a2], banks, {"p": rows, "q": 64, "y": 64})
    assert flags[1]["follow"] == 1
    assert flags[2]["barrier"] == barrier


def test_schedule_overlaps_the_arrays_and_keeps_each_in_order():
    net = resnet20()
    pes = pe_configs(net, GEO.lanes)
    prog = compile_network(net, GEO, shift_lane_bits=shift_lane_bits(pes),
                           data_bits=net.precision.bits, weights=False)
    from gen.compile import engine_config

    cfg = engine_config(net, GEO, prog, **pes)
    spans = program_timeline(prog.descriptors, cfg)
    total = max(e for _, e in spans)
    serial = sum(descriptor_cycles(d, cfg) for d in prog.descriptors)
    assert total < 0.6 * serial
    for op in (Opcode.SHIFT_CONV, Opcode.ADDER_CONV):
        mine = [sp for sp, d in zip(spans, prog.descriptors, strict=True) if d["op"] == op]
        # in order, a conv's fill under the last one's drain: at most two in flight per array
        assert all(a[0] < b[0] and a[1] < b[1] for a, b in zip(mine, mine[1:], strict=False))
        assert all(a[1] <= c[0] for a, c in zip(mine, mine[2:], strict=False))
        assert sum(a[1] > b[0] for a, b in zip(mine, mine[1:], strict=False)) >= 15
    for i, d in enumerate(prog.descriptors):  # a follower starts after what it follows
        if d.get("follow"):
            assert spans[i][0] > spans[i - 1][0] and spans[i][1] > spans[i - 1][1]


def _compiled(net, monkeypatch=None):
    from gen.compile import engine_config

    pes = pe_configs(net, GEO.lanes)
    prog = compile_network(net, GEO, shift_lane_bits=shift_lane_bits(pes),
                           data_bits=net.precision.bits, weights=False)
    return prog, engine_config(net, GEO, prog, **pes)


def test_first_conv_runs_beside_input(monkeypatch):
    """ResNet-20's conv1 is dispatched before INPUT, reads the input from the adder array's
    bank (where INPUT writes it) as each tile's words arrive, and the stream and conv1 overlap:
    the image takes about the input stream's 1,024 beats less."""
    net = resnet20()
    prog, cfg = _compiled(net)
    conv, inp, nxt = prog.descriptors[:3]
    assert [s.name for s in prog.steps[:2]] == ["conv1", "input"]
    assert conv["op"] == Opcode.SHIFT_CONV and inp["op"] == Opcode.INPUT
    assert conv["follow_input"] == conv["in_adder"] == conv["barrier"] == 1
    assert inp["out_banks"] == 1 << BANK_ADDER and conv["out_banks"] == 1 << BANK_MAIN
    assert conv["in_base"] == inp["out_base"] and conv["in_last"] == inp["out_base"] + inp["m0"]
    assert nxt["barrier"] == 1  # nothing else reads the adder bank while conv1 may run
    spans = program_timeline(prog.descriptors, cfg)
    assert spans[0][0] < spans[1][0] < spans[1][1] < spans[0][1]
    beside = max(e for _, e in spans)
    monkeypatch.setattr("gen.compile.input_beside", lambda *a: False)
    prog2, cfg2 = _compiled(net)
    assert prog2.descriptors[0]["op"] == Opcode.INPUT
    assert not any(d.get("follow_input") or d.get("in_adder") for d in prog2.descriptors)
    apart = max(e for _, e in program_timeline(prog2.descriptors, cfg2))
    assert 900 <= apart - beside <= 1030, (apart, beside)


@pytest.mark.parametrize("case,beside", [
    ("shift conv, then shift conv", True), ("no adder conv", False),
    ("input read twice", False), ("its output goes to the adder bank", False),
    ("the first conv is an adder conv", False), ("with a residual", False)])
def test_input_beside_only_when_safe(case, beside):
    from types import SimpleNamespace

    from gen.compile import input_beside

    S, A, INP, OUT = Opcode.SHIFT_CONV, Opcode.ADDER_CONV, Opcode.INPUT, Opcode.OUTPUT
    first = {"the first conv is an adder conv": _step(A, "c", ["x"], "y"),
             "with a residual": _step(S, "c", ["x", "z"], "y", res=True)}.get(
        case, _step(S, "c", ["x"], "y"))
    second = _step(A, "c2", ["y"], "z") if case == "its output goes to the adder bank" else \
        _step(S, "c2", ["x" if case == "input read twice" else "y"], "z")
    last = _step(S if case == "no adder conv" else A, "a", ["z"], "w")
    steps = [Step(INP, "input", (), "x"), first, second, last, Step(OUT, "output", ("w",), None)]
    assert input_beside(SimpleNamespace(input="x"), steps, tensor_banks(steps)) is beside


def test_global_pool_fuses_into_the_conv_before_it():
    """ResNet-20's global pool is summed as the last conv's words leave the array (with its
    residual add): no AVGPOOL pass, the conv's own output never stored, and nothing runs
    beside that conv (the cycle model: the fc is dispatched once it has ended). A pool that is
    not global keeps a descriptor of its own."""
    from gen.generate import pooled_network
    from gen.numerics import pool_shift

    net = resnet20()
    steps = fuse(net)
    assert not any(s.op is Opcode.AVGPOOL for s in steps)
    (last,) = [s for s in steps if s.pool is not None]
    assert last.op is Opcode.ADDER_CONV and last.node is not None
    assert last.output == last.pool.output and net.tensors[last.output].shape == (64, 1, 1)
    prog = compile_network(net, GEO, shift_lane_bits=shift_lane_bits(pe_configs(net, 16)),
                           data_bits=8)
    i = next(k for k, d in enumerate(prog.descriptors) if d.get("pool"))
    d = prog.descriptors[i]
    pool_in = net.tensors[last.pool.inputs[0]].fmt.frac
    assert (d["m_cb"], d["pixels"], d["pool_shift"]) == \
        (3, 64, pool_shift(last.pool.kernel, pool_in, net.tensors[last.pool.output].fmt.frac))
    assert last.pool.inputs[0] not in prog.bases  # summed, never stored
    spans = program_timeline(prog.descriptors, _cfg(net, prog))
    assert all(start >= spans[i][1] for start, _ in spans[i + 1:])
    # a 2x2 pool of a conv's output is no global pool
    one = pooled_network(resnet20_layer(net), 2)
    assert [s.op for s in fuse(one)][-2:] == [Opcode.AVGPOOL, Opcode.OUTPUT]


def resnet20_layer(net):
    from gen.generate import single_layer_networks

    return single_layer_networks(net)["adder_64to64_k3s1_8x8"]


def _cfg(net, prog):
    from gen.compile import engine_config

    return engine_config(net, GEO, prog, **pe_configs(net, 16))
