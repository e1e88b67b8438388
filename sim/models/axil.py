"""AXI4-Lite master built from the clock-driven stream models: each AXI channel is a stream.

AW, W and AR are :class:`StreamSource` s with their own random idle, so address and data of a
write arrive in any order and with any gap; B and R are :class:`StreamSink` s with random
backpressure. One transaction per direction is outstanding at a time (what the register file
supports and what a CPU's uncached MMIO does).
"""

from __future__ import annotations

import random

from sim.models.stream import ClockDriver, Fields, StreamSink, StreamSource


class AXILiteMaster:
    """Drives the ``<prefix><sep>aw*``/``w*``/``b*``/``ar*``/``r*`` ports of a DUT (Amaranth's
    nested names use ``sep="__"``, the Vivado-named top ``prefix="s_axi", sep="_"``)."""

    def __init__(self, driver: ClockDriver, dut, prefix: str = "axi", *, sep: str = "__",
                 delay: float = 0.0, rng: random.Random | None = None) -> None:
        rng = rng or random.Random(2)

        def sig(name):
            return getattr(dut, f"{prefix}{sep}{name}")

        self.aw = StreamSource(driver, sig("awvalid"), sig("awready"), sig("awaddr"),
                               idle=delay, rng=rng)
        self.w = StreamSource(driver, sig("wvalid"), sig("wready"),
                              Fields((sig("wdata"), 32), (sig("wstrb"), 4)), idle=delay, rng=rng)
        self.b = StreamSink(driver, sig("bvalid"), sig("bready"), sig("bresp"),
                            backpressure=delay, rng=rng)
        self.ar = StreamSource(driver, sig("arvalid"), sig("arready"), sig("araddr"),
                               idle=delay, rng=rng)
        self.r = StreamSink(driver, sig("rvalid"), sig("rready"),
                            Fields((sig("rdata"), 32), (sig("rresp"), 2)),
                            backpressure=delay, rng=rng)

    async def write(self, addr: int, data: int, strb: int = 0xF) -> int:
        """Write one word; returns BRESP (0 OKAY, 2 SLVERR)."""
        n = len(self.b.items)
        self.aw.send([addr])
        self.w.send([(data & 0xFFFF_FFFF) | (strb << 32)])
        await self.b.wait_for(n + 1)
        return self.b.items[n]

    async def read(self, addr: int) -> tuple[int, int]:
        """Read one word; returns ``(data, RRESP)``."""
        n = len(self.r.items)
        self.ar.send([addr])
        await self.r.wait_for(n + 1)
        v = self.r.items[n]
        return v & 0xFFFF_FFFF, v >> 32
