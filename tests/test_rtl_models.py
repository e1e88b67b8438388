"""The clock-driven stream models, proven on their own against a real FIFO in Verilator."""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from sim import rtl


class StreamFIFO(wiring.Component):
    """A stream loopback through amaranth.lib.fifo (the DUT for the model self-test)."""

    def __init__(self, width: int, depth: int) -> None:
        self._width, self._depth = width, depth
        super().__init__({"i": In(stream.Signature(width)), "o": Out(stream.Signature(width))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = f = fifo.SyncFIFOBuffered(width=self._width, depth=self._depth)
        m.d.comb += [f.w_data.eq(self.i.payload), f.w_en.eq(self.i.valid),
                     self.i.ready.eq(f.w_rdy), self.o.payload.eq(f.r_data),
                     self.o.valid.eq(f.r_rdy), f.r_en.eq(self.o.ready)]
        return m


def test_stream_models_with_idle_and_backpressure(seed):
    width, depth = 72, 4  # wider than 64 bits on purpose: payloads are Python ints
    build = rtl.build(lambda: StreamFIFO(width, depth), "stream_fifo",
                      {"width": width, "depth": depth})
    rtl.run(build, "sim.tb.models_tb", {"width": width, "items": 300}, seed=seed)
