"""A memory nobody wrote reads as random contents in every simulation (``sim.rtl.random_memories``),
not zeros: the testbench for ``tests/test_rtl_models.py``."""

from __future__ import annotations

import cocotb
from cocotb.triggers import Timer

from sim.tb.common import tb_config


@cocotb.test()
async def unwritten_memory_is_random(dut):
    depth = tb_config()["depth"]
    words = []
    for a in range(depth):
        dut.addr.value = a
        await Timer(1, "ns")
        words.append(int(dut.data.value))
    dut._log.info("unwritten words: %s", words)
    assert any(words), "an unwritten memory read as zeros"
