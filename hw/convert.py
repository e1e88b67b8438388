"""Amaranth -> Verilog for every shiftadd design: one place for the conversion options, and a
faster emission of memory contents.

Amaranth 0.5's RTLIL backend writes a memory's initial contents (``$meminit_v2``) one bit at a
time: every bit becomes an NIR net object, is checked, and is printed back as a character. The
accelerator's weight, parameter, program and activation memories hold 4.2 M bits for ResNet-20 at
8x16x16, so this was about a third of converting the top. :func:`to_verilog` replaces that one
method, during the conversion only, with one that formats each row as a binary string. The
RTLIL, and so the Verilog, is byte-identical (``tests/test_convert.py`` converts memories both
ways and compares); a different Amaranth version gets the unmodified backend.
"""

from __future__ import annotations

from contextlib import contextmanager

import amaranth
from amaranth.back import rtlil, verilog
from amaranth.hdl import _nir

_PATCHED_SERIES = "0.5."  # the backend the replacement was written against (constraints.txt)


def _emit_memory(self, cell_idx, cell):
    """``rtlil.ModuleEmitter.emit_memory`` with DATA built row by row instead of bit by bit."""
    bits = cell.width * len(cell.init)
    if bits == 0:
        return _ORIGINAL(self, cell_idx, cell)
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
