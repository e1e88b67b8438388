"""Amaranth -> Verilog for every shiftadd design: one place for the conversion options, and a
faster emission of memory contents.

Amaranth 0.5's RTLIL backend writes a memory's initial contents (``$meminit_v2``) one bit at a
time: every bit becomes an NIR net object, is checked, and is printed back as a character. The
accelerator's weight, parameter, program and activation memories hold 4.2 M bits for ResNet-20 at
8x16x16, so this was about a third of converting the top. :func:`to_verilog` replaces that one
method, during the conversion only, with one that formats each row as a binary string. The
RTLIL, and so the Verilog, is byte-identical (``tests/test_convert.py`` converts memories both
ways and compares); a different Amaranth version gets the unmodified backend.

One difference, on purpose: a memory whose contents are all zeros (every memory of the engine:
the LOAD and INPUT frames fill them) gets no contents at all, where Amaranth writes every zero.
Yosys parses such a constant slowly (ResNet-20 FIX32's 4,096-bit x 2,308-word adder weights:
9.5 M bits), and ``write_verilog`` turns it into an ``initial`` assignment per word. Converting
that top took 36 s and 6.0 MB of Verilog, without the zeros 8.5 s and 2.4 MB (ResNet-20 FIX8:
8.3 -> 7.0 MB). In hardware nothing changes: a 7-series block or LUT RAM without INIT powers
up at zero, and the engine reads no word it has not written (it could not rely on zeros
anyway: a second LOAD finds the first one's contents); every RTL simulation starts its
memories with random contents to show it (``sim/rtl.py: random_memories``).
"""

from __future__ import annotations

from contextlib import contextmanager

import amaranth
from amaranth.back import rtlil, verilog
from amaranth.hdl import _nir

_PATCHED_SERIES = "0.5."  # the backend the replacement was written against (constraints.txt)


def _emit_memory(self, cell_idx, cell):
    """``rtlil.ModuleEmitter.emit_memory`` with DATA built row by row instead of bit by bit."""
    if not any(cell.init):  # all zeros: no contents (the module docstring)
        return None
    bits = cell.width * len(cell.init)
    mask = (1 << cell.width) - 1
    data = f"{bits}'" + "".join(format(row & mask, f"0{cell.width}b")
                                for row in reversed(cell.init))
    self.builder.cell("$meminit_v2", ports={
        "ADDR": self.sigspec(),
        "DATA": data,
        "EN": self.sigspec(_nir.Value.ones(cell.width)),
    }, parameters={
        "MEMID": self.memories[cell_idx].memid,
        "ABITS": 0,
        "WIDTH": cell.width,
        "WORDS": cell.depth,
        "PRIORITY": 0,
    }, src_loc=cell.src_loc)


_ORIGINAL = rtlil.ModuleEmitter.emit_memory


@contextmanager
def fast_memory_init(enabled: bool = True):
    """Within the block, Amaranth emits memory contents with :func:`_emit_memory`."""
    if not enabled or not amaranth.__version__.startswith(_PATCHED_SERIES):
        yield
        return
    rtlil.ModuleEmitter.emit_memory = _emit_memory
    try:
        yield
    finally:
        rtlil.ModuleEmitter.emit_memory = _ORIGINAL


def to_verilog(elaboratable, name: str, *, fast: bool = True) -> str:
    """Verilog of ``elaboratable`` as module ``name`` (no source locations, no internal
    attributes). ``fast=False``: Amaranth's own memory-content emission (for comparison)."""
    with fast_memory_init(fast):
        return verilog.convert(elaboratable, name=name, emit_src=False,
                               strip_internal_attrs=True)
