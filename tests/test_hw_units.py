"""Tier A: small blocks in Amaranth's own simulator (fast, no Verilator), and config checks."""

from __future__ import annotations

import gc
import itertools
import random
import warnings

import pytest
from amaranth.hdl import UnusedElaboratable
from amaranth.sim import Simulator

from hw.array import DelayLines
from hw.config import ArrayConfig, LaneConfig, LaneKind, PEConfig
from hw.lanes import AdderLane, MacLane, ShiftLane
from hw.pe import ProcessingElement
from hw.tree import AdderTree
from hw.xilinx import simulation_view


def run_comb(dut, cases, check):
    """Apply each case to a combinational block and check its outputs."""

    async def tb(ctx):
        for case in cases:
            check(ctx, case)

    sim = Simulator(dut)
    sim.add_testbench(tb)
    sim.run()


def test_adder_lane_exhaustive_4bit():
    dut = AdderLane(LaneConfig(LaneKind.ADDER, 4))
    vals = range(-8, 8)

    def check(ctx, c):
        x, w = c
        ctx.set(dut.x, x)
        ctx.set(dut.w, w)
        assert ctx.get(dut.y) == abs(x - w), c

    run_comb(dut, list(itertools.product(vals, vals)), check)


@pytest.mark.parametrize("b,k", [(4, 3), (8, 7), (8, 14), (32, 5)])
def test_shift_lane_ones_complement_pair(b, k, seed):
    """``y + neg == sign * (x << s)`` for every sign and shift amount, extremes included."""
    dut = ShiftLane(LaneConfig(LaneKind.SHIFT, b, k))
    lo, hi = -(1 << (b - 1)), (1 << (b - 1)) - 1
    rng = random.Random(seed)
    xs = [lo, hi, 0, -1, 1] + [rng.randint(lo, hi) for _ in range(10)]
    cases = list(itertools.product(xs, (-1, 0, 1), range(k + 1)))

    def check(ctx, c):
        x, sign, s = c
        ctx.set(dut.x, x)
        ctx.set(dut.w.sign, sign)
        ctx.set(dut.w.shift, s)
        assert ctx.get(dut.y) + ctx.get(dut.neg) == sign * (x << s), c

    run_comb(dut, cases, check)


def run_tree(dut: AdderTree, vecs: list, cis: list | None) -> list[int]:
    """Feed ``vecs`` (and the carry-ins ``cis``, if any) to an adder tree one step per cycle in
    its simulation view; returns what it sums for each step (``o``, plus ``o2`` if it has it)."""
    got = []
    two = hasattr(dut, "o2")

    async def tb(ctx):
        for t in range(len(vecs) + dut.latency):
            if t < len(vecs):
                for k, v in enumerate(vecs[t]):
                    ctx.set(dut.i[k], v)
                if cis is not None and cis[t]:
                    ctx.set(dut.ci, sum(b << k for k, b in enumerate(cis[t])))
            if t >= dut.latency:
                got.append(ctx.get(dut.o) + (ctx.get(dut.o2) if two else 0))
            if dut.latency:
                await ctx.tick()

    with simulation_view():
        sim = Simulator(dut)
    if dut.latency:  # a combinational tree has no clock domain
        sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return got


def test_mac_lane():
    dut = MacLane(LaneConfig(LaneKind.MAC, 8))

    def check(ctx, c):
        ctx.set(dut.x, c[0])
        ctx.set(dut.w, c[1])
        assert ctx.get(dut.y) == c[0] * c[1]

    run_comb(dut, [(-128, -128), (-128, 127), (127, 127), (0, 5), (-3, 7)], check)


@pytest.mark.parametrize("ternary", [False, True])
@pytest.mark.parametrize("carry_ins", [False, True])
@pytest.mark.parametrize("count,every", [(1, 2), (2, 0), (4, 2), (5, 1), (8, 2), (16, 3)])
def test_adder_tree_sum_and_latency(count, every, carry_ins, ternary, seed):
    with simulation_view():  # the ternary adders' behavioural view (proven: test_equiv.py)
        dut = AdderTree(9, count, signed_inputs=True, register_every=every,
                        carry_ins=carry_ins, ternary=ternary)
    rng = random.Random(seed)
    vecs = [[rng.choice([-256, 255, rng.randint(-256, 255)]) for _ in range(count)]
            for _ in range(12)]
    cis = [[rng.randint(0, 1) if carry_ins else 0 for _ in range(count - 1)] for _ in vecs]
    cis[0] = [int(carry_ins)] * (count - 1)  # all carries with the largest sums
    vecs[0] = [255] * count
    got = run_tree(dut, vecs, cis if carry_ins else None)
    assert got == [sum(v) + sum(c) for v, c in zip(vecs, cis, strict=True)]
    assert dut.latency == AdderTree.latency_for(count, every, ternary)


@pytest.mark.parametrize("count,levels", [(1, 0), (2, 1), (3, 1), (4, 2), (8, 2), (9, 2),
                                          (10, 3), (16, 3)])
def test_ternary_tree_uses_fewer_adders(count, levels):
    plan = AdderTree.plan(9, count, ternary=True)
    adders = sum(len(ins) > 1 for level in plan for _, ins in level)
    binary = sum(len(ins) > 1 for level in AdderTree.plan(9, count) for _, ins in level)
    assert len(plan) == levels and binary == count - 1
    # each ternary adder takes two inputs away: ceil((count - 1) / 2) adders at best
    assert adders <= -(-(count - 1) // 2) + (levels > 1)
    assert plan == [] or plan[-1][0][0] == 9 + (count - 1).bit_length()  # exact final width


def test_pe_latency_property_matches_behaviour():
    cfg = PEConfig(LaneConfig(LaneKind.ADDER, 8), 4, 20, 1)
    dut = ProcessingElement(cfg)
    seen = {}

    async def tb(ctx):
        for k in range(4):  # |x - w| = 15, from a positive and a negative difference
            ctx.set(dut.x[k], 10 if k % 2 else -5)
            ctx.set(dut.w[k], -5 if k % 2 else 10)
        ctx.set(dut.valid, 1)
        ctx.set(dut.first, 1)
        ctx.set(dut.last, 1)
        await ctx.tick()
        ctx.set(dut.valid, 0)
        for t in range(1, 10):
            if ctx.get(dut.result_valid) and "t" not in seen:
                seen["t"], seen["v"] = t, ctx.get(dut.result)
            await ctx.tick()

    with simulation_view():  # Amaranth's simulator runs the pairs' behavioural view
        sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert seen == {"t": dut.latency, "v": -4 * 15}


def test_delay_lines():
    dut = DelayLines(8, [0, 2, 1])
    got = []

    async def tb(ctx):
        for t in range(6):
            for k in range(3):
                ctx.set(dut.i[k], t + 10 * k)
            got.append([ctx.get(dut.o[k]) for k in range(3)])
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert got[3] == [3, 11, 22] and dut.latency == 2


@pytest.mark.parametrize("make,match", [
    (lambda: LaneConfig(LaneKind.ADDER, 1), "data_bits"),
    (lambda: LaneConfig(LaneKind.SHIFT, 8, 15), "shift_max"),
    (lambda: LaneConfig(LaneKind.ADDER, 8, 3), "shift lanes only"),
    (lambda: LaneConfig("adder", 8), "LaneKind"),
    (lambda: PEConfig(LaneConfig(LaneKind.ADDER, 8), 0, 20), "lanes"),
    (lambda: PEConfig(LaneConfig(LaneKind.ADDER, 8), 16, 12), "cannot hold"),
    (lambda: ArrayConfig(PEConfig(LaneConfig(LaneKind.ADDER, 8), 4, 20), 0, 4), "rows"),
    (lambda: AdderTree(0, 4, signed_inputs=False), "width"),
    (lambda: DelayLines(8, [-1]), "delays"),
])
def test_configs_reject_bad_values_precisely(make, match):
    # A component whose constructor raised is never elaborated: collect it here, where its
    # "created but never used" warning is expected, rather than at some later GC.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        with pytest.raises(ValueError, match=match) as err:
            make()
        del err
        gc.collect()


def test_derived_widths():
    lane = LaneConfig(LaneKind.SHIFT, 8, 7)
    assert (lane.shift_bits, lane.weight_bits, lane.out_bits) == (3, 5, 15)
    pe = PEConfig(lane, 16, 40)
    assert (pe.tree_levels, pe.tree_bits) == (4, 19)
    assert LaneConfig(LaneKind.ADDER, 8).out_bits == 8 and LaneConfig(LaneKind.MAC, 8).out_bits == 16


def test_loop_nest_registers_follow_their_definition(seed):
    """``hw.engine._LoopNest`` keeps ``idx == m`` in registers (``at_max``, updated from
    ``idx == m - 1`` at each step): every cycle of random step patterns over random loop
    counts, reloaded twice, its indices, offset, ``at_max`` and ``last`` equal a plain model."""
    from amaranth import Elaboratable, Module, Signal

    from hw.engine import DESCRIPTOR, _LoopNest
    from hw.program import LOOP_LEVELS

    class Nest(Elaboratable):  # as a conv unit uses it: its own copy loaded at ``clear``
        def __init__(self):
            self.m = Module()
            self.d_in, self.d = Signal(DESCRIPTOR), Signal(DESCRIPTOR)
            self.step, self.clear = Signal(), Signal()
            self.nest = _LoopNest(self.m, self.d, self.step, self.clear, d_clear=self.d_in)
            with self.m.If(self.clear):
                self.m.d.sync += self.d.eq(self.d_in)

        def elaborate(self, platform):
            return self.m

    dut = Nest()
    rng = random.Random(seed)

    async def tb(ctx):
        for run in range(3):
            tops = [rng.choice((0, 0, 1, 2, 3)) for _ in range(LOOP_LEVELS)]
            jumps = [rng.randint(-50, 50) for _ in range(LOOP_LEVELS)]
            for lvl in range(LOOP_LEVELS):
                ctx.set(getattr(dut.d_in, f"m{lvl}"), tops[lvl])
                ctx.set(getattr(dut.d_in, f"j{lvl}"), jumps[lvl])
            ctx.set(dut.clear, 1)
            await ctx.tick()
            ctx.set(dut.clear, 0)
            idx, offset = [0] * LOOP_LEVELS, 0
            for cycle in range(300):
                at_max = [i == t for i, t in zip(idx, tops, strict=True)]
                got = [ctx.get(i) for i in dut.nest.idx]
                assert got == idx, (run, cycle)
                assert ctx.get(dut.nest.offset) == offset, (run, cycle)
                assert [ctx.get(a) for a in dut.nest.at_max] == at_max, (run, cycle, idx)
                assert ctx.get(dut.nest.last) == all(at_max), (run, cycle)
                step = rng.random() < 0.7
                ctx.set(dut.step, step)
                await ctx.tick()
                if step:
                    if all(at_max):
                        idx, offset = [0] * LOOP_LEVELS, 0
                    else:
                        low = at_max.index(False)  # the lowest level not at its maximum
                        offset += jumps[low]
                        idx = [0] * low + [idx[low] + 1] + idx[low + 1:]

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()


@pytest.mark.parametrize("count", [2, 4, 6, 8, 16])
def test_ternary_tree_leaves_two_values_for_the_accumulator(count, seed):
    """``outputs=2``: ``o + o2`` is the sum with the carry-ins; the tree stops at two values,
    each as wide as its own count of inputs needs."""
    with simulation_view():
        dut = AdderTree(7, count, signed_inputs=False, register_every=2, carry_ins=True,
                        ternary=True, outputs=2)
    rng = random.Random(seed)
    vecs = [[rng.choice([127, rng.randint(0, 127)]) for _ in range(count)] for _ in range(8)]
    cis = [[rng.randint(0, 1) for _ in range(count - 2)] for _ in vecs]
    vecs[0], cis[0] = [127] * count, [1] * (count - 2)
    got = run_tree(dut, vecs, cis)
    assert got == [sum(v) + sum(c) for v, c in zip(vecs, cis, strict=True)]
    # only ternary adders: each takes two values away
    plan = AdderTree.plan(7, count, ternary=True, outputs=2)
    assert sum(len(ins) == 3 for level in plan for _, ins in level) == (count - 2) // 2
    assert all(len(ins) in (1, 3) for level in plan for _, ins in level)
