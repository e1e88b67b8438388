"""Shared testbench plumbing: configuration blob, seeding, clock and reset."""

from __future__ import annotations

import json
import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge


def tb_config() -> dict:
    """The JSON configuration blob handed over by ``sim.rtl.run``."""
    return json.loads(os.environ["SHIFTADD_TB"])


def seeded(dut) -> tuple[random.Random, np.random.Generator]:
    """One seed per run (cocotb's RANDOM_SEED, set by ``sim.rtl.run``), logged."""
    seed = cocotb.RANDOM_SEED
    dut._log.info("seed=%d", seed)
    random.seed(seed)
    return random.Random(seed), np.random.default_rng(seed)


async def start_clock_and_reset(dut, cycles: int = 3) -> None:
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    for _ in range(cycles):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
