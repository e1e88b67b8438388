"""``hw.convert``: the faster memory-content emission gives byte-identical Verilog, but for
memories whose contents are all zeros, which get none; a batch of designs converted in one Yosys
run gives each the Verilog it gets on its own, but for a few names and the order of a few
statements."""

from __future__ import annotations

import collections
import random
import re

from amaranth import Module, Shape, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.convert import rtlil_to_verilog, to_rtlil, to_verilog

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


def _statements(text: str) -> collections.Counter:
    """The lines of Amaranth's Verilog, with Yosys's counter-numbered names unnumbered."""
    return collections.Counter(re.sub(r"(dump_module\$)\d+", r"\1", ln)
                               for ln in text.splitlines())


def test_a_batch_converts_each_design_as_on_its_own():
    from amaranth.back import verilog

    from hw.array import DrainMux, EnabledPE
    from hw.config import LaneConfig, LaneKind, PEConfig
    from hw.xilinx import simulation_view

    pe = PEConfig(lane=LaneConfig(kind=LaneKind.SHIFT, data_bits=8, shift_max=8), lanes=4,
                  acc_bits=20, tree_register_every=1)
    designs = [(lambda: EnabledPE(pe), "pe", False), (lambda: Memories(1), "mems", False),
               (lambda: DrainMux(20), "drain", False), (lambda: EnabledPE(pe), "pe", True)]
    texts = []
    for make, name, sim in designs:
        if sim:
            with simulation_view():
                texts.append(to_rtlil(make(), name))
        else:
            texts.append(to_rtlil(make(), name))
    batch = rtlil_to_verilog(texts)
    assert len(batch) == len(designs) and rtlil_to_verilog([]) == []
    for (make, name, sim), got in zip(designs, batch, strict=True):
        if sim:
            with simulation_view():
                alone = to_verilog(make(), name)
        else:
            alone = to_verilog(make(), name)
        modules = re.compile(r"^module (\S+)", re.M)
        assert modules.findall(got) == modules.findall(alone), name
        assert _statements(got) == _statements(alone), name
    assert batch[0] != batch[3]  # the two views of the PE differ (hand-placed cells)
    assert to_verilog(Memories(1), "mems") == verilog.convert(
        Memories(1), name="mems", emit_src=False, strip_internal_attrs=True)
