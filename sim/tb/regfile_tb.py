"""Register file testbench: AXI4-Lite master with random delays on every channel, and an engine
model driving the start/done/busy/error side. Expected values come from hw.regmap (the one
declaration), never from numbers typed here."""

from __future__ import annotations

import cocotb
from cocotb.triggers import ClockCycles, FallingEdge

from hw.regmap import ERROR_BITS, MAGIC, REGMAP, VERSION
from sim.models.axil import AXILiteMaster
from sim.models.stream import ClockDriver
from sim.tb.common import seeded, start_clock_and_reset, tb_config

OKAY, SLVERR = 0, 2
A = {r.name: r.address for r in REGMAP.registers}
CTRL = {f.name: 1 << f.bit for f in REGMAP["CTRL"].fields}


class TB:
    def __init__(self, dut, delay: float) -> None:
        self.dut = dut
        self.rng, _ = seeded(dut)
        self.axi = AXILiteMaster(ClockDriver(dut.clk), dut, "axi", delay=delay, rng=self.rng)
        for s in ("accepted", "done", "busy", "error_set"):
            getattr(dut, s).value = 0
        dut.idle.value = 1

    async def pulse(self, name: str, value: int = 1) -> None:
        """Drive an engine input for exactly one rising edge."""
        await FallingEdge(self.dut.clk)
        getattr(self.dut, name).value = value
        await FallingEdge(self.dut.clk)
        getattr(self.dut, name).value = 0

    async def set(self, name: str, value: int) -> None:
        """Drive an engine input from the next falling edge on (bus calls return in ReadOnly)."""
        await FallingEdge(self.dut.clk)
        getattr(self.dut, name).value = value

    async def read(self, name: str) -> int:
        data, resp = await self.axi.read(A[name])
        assert resp == OKAY, f"{name}: RRESP {resp}"
        return data


@cocotb.test()
@cocotb.parametrize(delay=[0.0, 0.6])
async def identity_and_unmapped(dut, delay):
    tb = TB(dut, delay)
    await start_clock_and_reset(dut)
    assert await tb.read("ID") == MAGIC
    assert await tb.read("VERSION") == VERSION
    assert await tb.read("BUILD_ID") == tb_config()["build_id"]
    mapped = {r.address for r in REGMAP.registers}
    hole = next(a for a in range(0, 0x40, 4) if a not in mapped)
    assert (await tb.axi.read(hole))[1] == SLVERR
    assert await tb.axi.write(hole, 0xFFFF_FFFF) == SLVERR
    assert await tb.axi.write(A["ID"], 0) == OKAY and await tb.read("ID") == MAGIC  # RO


@cocotb.test()
@cocotb.parametrize(delay=[0.0, 0.6])
async def start_done_counters(dut, delay):
    tb = TB(dut, delay)
    await start_clock_and_reset(dut)
    assert await tb.read("CTRL") == CTRL["ap_idle"]
    assert dut.start.value == 0
    assert await tb.axi.write(A["CTRL"], CTRL["ap_start"]) == OKAY
    assert dut.start.value == 1
    assert await tb.read("CTRL") & CTRL["ap_start"]
    await tb.set("idle", 0)
    await tb.pulse("accepted")
    assert dut.start.value == 0
    ctrl = await tb.read("CTRL")
    assert ctrl & CTRL["ap_ready"] and not ctrl & CTRL["ap_start"]
    assert not await tb.read("CTRL") & CTRL["ap_ready"], "ap_ready is clear-on-read"
    n = tb.rng.randint(5, 40)
    await tb.set("busy", 1)
    await ClockCycles(dut.clk, n, rising=False)
    dut.busy.value = 0
    dut.done.value = 1
    await FallingEdge(dut.clk)
    dut.done.value = 0
    dut.idle.value = 1
    # counted from the edge that saw `accepted`; reads in between do not disturb them
    busy_lo, busy_hi = await tb.read("BUSY_LO"), await tb.read("BUSY_HI")
    assert (busy_hi << 32 | busy_lo) == n
    cyc = await tb.read("CYCLES_LO") | await tb.read("CYCLES_HI") << 32
    assert cyc >= n + 1
    ctrl = await tb.read("CTRL")
    assert ctrl & CTRL["ap_done"] and ctrl & CTRL["ap_idle"]
    assert not await tb.read("CTRL") & CTRL["ap_done"], "ap_done is clear-on-read"
    assert await tb.read("CYCLES_LO") == cyc & 0xFFFF_FFFF, "counters stop at done"


@cocotb.test()
@cocotb.parametrize(delay=[0.0, 0.6])
async def sticky_errors(dut, delay):
    tb = TB(dut, delay)
    await start_clock_and_reset(dut)
    assert await tb.read("ERROR") == 0 and not await tb.read("STATUS") & 2
    everything = (1 << len(ERROR_BITS)) - 1
    await tb.pulse("error_set", everything)
    assert await tb.read("ERROR") == everything
    assert await tb.read("STATUS") & 2
    assert await tb.axi.write(A["ERROR"], 1) == OKAY      # clear bit 0 only
    assert await tb.read("ERROR") == everything & ~1
    assert await tb.axi.write(A["ERROR"], 0xF, strb=0b0010) == OKAY  # wrong byte lane: ignored
    assert await tb.read("ERROR") == everything & ~1
    assert await tb.axi.write(A["ERROR"], everything) == OKAY
    assert await tb.read("ERROR") == 0 and not await tb.read("STATUS") & 2


@cocotb.test()
@cocotb.parametrize(delay=[0.0, 0.6])
async def images_per_start(dut, delay):
    """IMAGES reads back what was written, drives the engine's ``images`` and takes only the
    byte lanes ``wstrb`` enables; bits above its count are not stored."""
    tb = TB(dut, delay)
    await start_clock_and_reset(dut)
    field = REGMAP["IMAGES"].field("count")
    assert await tb.read("IMAGES") == 0 and dut.images.value == 0  # one image per start
    assert await tb.axi.write(A["IMAGES"], 0xABCD_1234) == OKAY
    assert await tb.read("IMAGES") == 0x1234 & field.mask
    assert dut.images.value == 0x1234
    assert await tb.axi.write(A["IMAGES"], 0x0000_56FF, strb=0b0010) == OKAY  # lane 1 only
    assert await tb.read("IMAGES") == 0x5634
    assert await tb.axi.write(A["IMAGES"], 0x0000_0007, strb=0b0001) == OKAY  # lane 0 only
    assert await tb.read("IMAGES") == 0x5607 and dut.images.value == 0x5607
