"""Self-test of the stream models: a loopback through a FIFO with random idle and backpressure.

Every item sent must arrive exactly once, in order; the input monitor must agree with the source.
A source aborted half-way (a sender's reset) must stop at once, lose nothing it had sent, and
send the next items normally.
"""

from __future__ import annotations

import cocotb
from cocotb.triggers import ClockCycles, FallingEdge, with_timeout

from sim.models.stream import ClockDriver, StreamMonitor, StreamSink, StreamSource
from sim.tb.common import seeded, start_clock_and_reset, tb_config


@cocotb.test()
@cocotb.parametrize(traffic=[(0.0, 0.0), (0.5, 0.0), (0.0, 0.5), (0.3, 0.7), (0.8, 0.8)])
async def loopback(dut, traffic) -> None:
    cfg = tb_config()
    rng, _ = seeded(dut)
    idle, bp = traffic
    drv = ClockDriver(dut.clk)
    src = StreamSource(drv, dut.i__valid, dut.i__ready, dut.i__payload, idle=idle, rng=rng)
    sink = StreamSink(drv, dut.o__valid, dut.o__ready, dut.o__payload, backpressure=bp,
                      rng=rng)
    mon = StreamMonitor(drv, dut.i__valid, dut.i__ready, dut.i__payload)
    await start_clock_and_reset(dut)
    items = [rng.getrandbits(cfg["width"]) for _ in range(cfg["items"])]
    src.send(items)
    await with_timeout(sink.wait_for(len(items)), 100 * 20 * len(items), "ns")
    await with_timeout(src.wait_done(), 1000, "ns")
    await ClockCycles(dut.clk, 10)
    assert sink.items == items, "loopback lost, duplicated or reordered items"
    assert mon.items == items, "input monitor disagrees with the source"
    assert src.sent == len(items)


@cocotb.test()
async def source_abort(dut) -> None:
    cfg = tb_config()
    rng, _ = seeded(dut)
    drv = ClockDriver(dut.clk)
    src = StreamSource(drv, dut.i__valid, dut.i__ready, dut.i__payload, idle=0.3, rng=rng)
    sink = StreamSink(drv, dut.o__valid, dut.o__ready, dut.o__payload, backpressure=0.5,
                      rng=rng)
    mon = StreamMonitor(drv, dut.i__valid, dut.i__ready, dut.i__payload)
    await start_clock_and_reset(dut)
    items = [rng.getrandbits(cfg["width"]) for _ in range(cfg["items"])]
    src.send(items)
    await with_timeout(sink.wait_for(len(items) // 3), 100 * 20 * len(items), "ns")
    await FallingEdge(dut.clk)
    src.abort()
    await with_timeout(src.wait_done(), 10, "ns")
    sent = len(mon.items)
    assert 0 < sent < len(items) and src.sent == sent
    for _ in range(20):  # valid stays low: nothing more leaves the source
        await FallingEdge(dut.clk)
        assert not dut.i__valid.value
    assert len(mon.items) == sent and mon.items == items[:sent]
    more = [rng.getrandbits(cfg["width"]) for _ in range(50)]
    src.send(more)
    await with_timeout(sink.wait_for(sent + len(more)), 100 * 20 * len(more), "ns")
    await ClockCycles(dut.clk, 10)
    assert sink.items == items[:sent] + more, "the FIFO lost or reordered items around the abort"
    assert mon.items == sink.items and src.sent == sent + len(more)
