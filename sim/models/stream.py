"""Valid/ready stream models driven by the clock (no per-signal value-change triggers).

Timing discipline, used by every model here: inputs are driven right after a rising edge; the
handshake is sampled at the falling edge, when everything driven and computed for the coming
rising edge has settled. A transfer happens at the rising edge that follows a falling edge where
``valid & ready`` was seen. This holds for registered and for combinational ``ready``/``valid``.

Payloads are plain Python ints (the whole flattened payload vector): testbenches pack and unpack
with :mod:`sim.pack`, so one value is written per transfer, not one per field.
"""

from __future__ import annotations

import random
from collections import deque

import cocotb
from cocotb.triggers import Event, FallingEdge, RisingEdge


def _to_int(handle) -> int:
    return int(handle.value.to_unsigned())


class StreamSource:
    """Drives ``valid``/``payload`` of a DUT stream input, with random idle cycles.

    ``idle``: probability of an idle cycle before presenting each item. ``valid`` never waits for
    ``ready``; the payload holds until the transfer.
    """

    def __init__(self, clk, valid, ready, payload, *, idle: float = 0.0,
                 rng: random.Random | None = None) -> None:
        self.clk, self.valid, self.ready, self.payload = clk, valid, ready, payload
        self.idle, self.rng = idle, rng or random.Random(0)
        self.queue: deque[int] = deque()
        self.sent = 0
        self._busy = self._fired = False
        self._idle_event = Event()
        self.valid.value = 0
        cocotb.start_soon(self._run())

    def send(self, items) -> None:
        self.queue.extend(int(v) for v in items)
        self._idle_event.clear()

    async def wait_done(self) -> None:
        """Wait until every queued item has been transferred."""
        while self.queue:
            await self._idle_event.wait()

    async def _run(self) -> None:
        while True:
            await RisingEdge(self.clk)
            if self._fired:
                self.queue.popleft()
                self.sent += 1
                self._busy = False
                if not self.queue:
                    self._idle_event.set()
            if not self._busy:
                if self.queue and not (self.idle and self.rng.random() < self.idle):
                    self.payload.value = self.queue[0]
                    self.valid.value = 1
                    self._busy = True
                else:
                    self.valid.value = 0
            await FallingEdge(self.clk)
            self._fired = self._busy and bool(self.ready.value)


class StreamSink:
    """Drives ``ready`` of a DUT stream output with random backpressure and collects payloads.

    ``backpressure``: probability that ``ready`` is low in a cycle.
    """

    def __init__(self, clk, valid, ready, payload, *, backpressure: float = 0.0,
                 rng: random.Random | None = None) -> None:
        self.clk, self.valid, self.ready, self.payload = clk, valid, ready, payload
        self.backpressure, self.rng = backpressure, rng or random.Random(1)
        self.items: list[int] = []
        self._got = Event()
        self.ready.value = 0
        cocotb.start_soon(self._run())

    async def wait_for(self, count: int) -> None:
        while len(self.items) < count:
            self._got.clear()
            await self._got.wait()

    async def _run(self) -> None:
        while True:
            await RisingEdge(self.clk)
            rdy = not (self.backpressure and self.rng.random() < self.backpressure)
            self.ready.value = int(rdy)
            await FallingEdge(self.clk)
            if rdy and self.valid.value:
                self.items.append(_to_int(self.payload))
                self._got.set()


class StreamMonitor:
    """Passively records the payload of every transfer on a stream (for scoreboards)."""

    def __init__(self, clk, valid, ready, payload) -> None:
        self.clk, self.valid, self.ready, self.payload = clk, valid, ready, payload
        self.items: list[int] = []
        cocotb.start_soon(self._run())

    async def _run(self) -> None:
        while True:
            await FallingEdge(self.clk)
            if self.valid.value and self.ready.value:
                self.items.append(_to_int(self.payload))
