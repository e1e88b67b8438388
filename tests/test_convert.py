"""``hw.convert.to_verilog``: the faster memory-content emission gives byte-identical Verilog,
but for memories whose contents are all zeros, which get none."""

from __future__ import annotations

import random

from amaranth import Module, Shape, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.convert import to_verilog

# (shape, depth, how many rows are given: Amaranth pads the rest with zeros)
MEMORIES = [
    (unsigned(1), 5, 5),
    (signed(7), 33, 33),      # negative rows, a width that is not a multiple of 4
    (unsigned(130), 17, 9),   # rows wider than 64 bits, partly initialised
]
ZEROS = (signed(16), 64, 0)   # all zeros (the engine's memories before loading)


class Memories(wiring.Component):
    def __init__(self, seed: int, memories=tuple(MEMORIES)) -> None:
        super().__init__({"addr": In(8), "data": Out(len(memories))})
        rng = random.Random(seed)
        self.memories, self.inits = memories, []
        for shape, _, given in memories:
            sh = Shape.cast(shape)
            lo, hi = (-(1 << (sh.width - 1)), (1 << (sh.width - 1)) - 1) if sh.signed else (
                0, (1 << sh.width) - 1)
            self.inits.append([rng.randint(lo, hi) for _ in range(given)])

    def elaborate(self, platform):
        m = Module()
        for i, ((shape, depth, _), init) in enumerate(zip(self.memories, self.inits,
                                                           strict=True)):
            m.submodules[f"mem{i}"] = mem = Memory(shape=shape, depth=depth, init=init)
            rd = mem.read_port()
            wr = mem.write_port()
            m.d.comb += [rd.addr.eq(self.addr), wr.addr.eq(self.addr), wr.data.eq(self.addr),
                         wr.en.eq(self.addr[0]), self.data[i].eq(rd.data.any())]
        return m


def test_fast_memory_contents_are_byte_identical():
    for seed in range(3):
        fast = to_verilog(Memories(seed), "mems")
        slow = to_verilog(Memories(seed), "mems", fast=False)
        assert fast == slow


def test_the_contents_reach_the_verilog():
    """A changed row changes the output: the comparison above is not between two empty files."""
    a, b = Memories(0), Memories(0)
    b.inits[1][3] ^= 1
    assert to_verilog(a, "mems") != to_verilog(b, "mems")


def test_an_all_zero_memory_gets_no_contents():
    """Amaranth writes every zero (an ``initial`` assignment per word); the fast emission writes
    none, and the memories with contents around it are as Amaranth writes them."""
    zero_only = to_verilog(Memories(0, (ZEROS,)), "mems")
    assert "initial" not in zero_only
    assert to_verilog(Memories(0, (ZEROS,)), "mems", fast=False).count("mem0[") > 64
    both = to_verilog(Memories(0, (*MEMORIES, ZEROS)), "mems")
    assert both.count("initial begin") == len(MEMORIES)
