"""Valid/ready stream models driven by one clock process.

Timing discipline: one coroutine per clock (:class:`ClockDriver`) serves every model on that clock.
Each cycle it waits for the falling edge, lets every model drive its outputs for the coming rising
edge (``drive``), waits for the ``ReadOnly`` phase so that combinational paths through the DUT
have settled, and lets every model sample the handshake (``sample``): a transfer happens at the
next rising edge exactly when ``valid & ready`` is seen there. This holds for registered and for
combinational ``ready``/``valid``, and costs two scheduler resumptions per cycle however many
models there are (one coroutine per model and edge made a 16x16 array bench 3x slower).

Payloads are plain Python ints (the whole flattened payload vector): testbenches pack and unpack
with :mod:`sim.pack`, so one value is written per transfer, not one per field.
"""

from __future__ import annotations

import random
from collections import deque

import cocotb
from cocotb.triggers import Event, FallingEdge, First, ReadOnly, RisingEdge
from cocotb.utils import get_sim_time


def _to_int(handle) -> int:
    if isinstance(handle, Fields):
        return handle.read()
    return _unsigned(handle.value)


def _unsigned(v) -> int:
    """A signal's value as an unsigned int (1-bit signals read as ``Logic``)."""
    return int(v.to_unsigned()) if hasattr(v, "to_unsigned") else int(v)


class Fields:
    """Several DUT signals seen as one payload integer, first signal at bit 0 — for buses whose
    channel carries separate signals (AXI ``wdata`` + ``wstrb``, ``rdata`` + ``rresp``)."""

    def __init__(self, *parts: tuple[object, int]) -> None:
        self.parts = parts

    def read(self) -> int:
        v, pos = 0, 0
        for handle, width in self.parts:
            v |= _unsigned(handle.value) << pos
            pos += width
        return v

    @property
    def value(self) -> int:
        return self.read()

    @value.setter
    def value(self, v: int) -> None:
        for handle, width in self.parts:
            handle.value = v & ((1 << width) - 1)
            v >>= width


class ClockDriver:
    """The single per-clock process behind the models of one testbench (create one per test:
    cocotb ends a test's tasks when the test ends).

    ``wake_on``: DUT signals (the ``valid`` of outputs) whose rising edge can start activity. When
    given, the driver sleeps while no model has anything to do (nothing queued, no output valid)
    until one of them rises or a source is given items, so long computations inside the DUT run
    at the simulator's speed instead of resuming Python every cycle. It sleeps as well while
    every model with work is blocked (``blocked_on()``: a source holding an item the DUT is not
    ready for), until the signal it waits for rises: a DUT that takes the next frame of a batch
    only after thousands of cycles of computing is not watched every cycle meanwhile.
    """

    def __init__(self, clk, *, wake_on=()) -> None:
        self.clk = clk
        self.models: list = []
        self.wake = Event()
        self.wake_on = list(wake_on)
        self.cycles_awake = 0
        cocotb.start_soon(self._run())

    async def _run(self) -> None:
        while True:
            self.cycles_awake += 1
            await FallingEdge(self.clk)
            for m in self.models:
                m.drive()
            await ReadOnly()
            for m in self.models:
                m.sample()
            if self.wake_on:
                blocked = []  # what each model with work waits for (None: the next cycle)
                for m in self.models:
                    if m.active():
                        blocked.append(getattr(m, "blocked_on", lambda: None)())
                if None not in blocked:
                    self.wake.clear()
                    await First(self.wake.wait(),
                                *(RisingEdge(s) for s in (*self.wake_on, *blocked)))


class StreamSource:
    """Drives ``valid``/``payload`` of a DUT stream input, with random idle cycles.

    ``idle``: probability of an idle cycle before presenting each item. ``valid`` never waits for
    ``ready``; the payload holds until the transfer.
    """

    def __init__(self, driver: ClockDriver, valid, ready, payload, *, idle: float = 0.0,
                 rng: random.Random | None = None) -> None:
        self.valid, self.ready, self.payload = valid, ready, payload
        self.idle, self.rng = idle, rng or random.Random(0)
        self.queue: deque[int] = deque()
        self.sent = 0
        self._busy = self._fired = False
        self._done = Event()
        self._driver = driver
        self.valid.value = 0
        self._valid = False  # what ``valid`` is driven to: written only when it changes
        driver.models.append(self)

    def send(self, items) -> None:
        self.queue.extend(int(v) for v in items)
        self._done.clear()
        self._driver.wake.set()

    def active(self) -> bool:
        return bool(self.queue) or self._busy or self._fired

    async def wait_done(self) -> None:
        """Wait until every queued item has been transferred."""
        while self.queue:
            self._done.clear()
            await self._done.wait()

    def abort(self) -> None:
        """Drop every item not yet transferred and lower ``valid`` (what a reset of the
        sender does; AXI-Stream allows it only in reset). Call outside the read-only phase."""
        self.queue.clear()
        self._busy = self._fired = False
        if self._valid:
            self.valid.value = 0
            self._valid = False
        self._done.set()

    def drive(self) -> None:
        if self._fired:  # the transfer happened at the rising edge just passed
            self.queue.popleft()
            self.sent += 1
            self._busy = self._fired = False
            if not self.queue:
                self._done.set()
        if not self._busy:
            if self.queue and not (self.idle and self.rng.random() < self.idle):
                self.payload.value = self.queue[0]
                self._busy = True
            if self._busy != self._valid:
                self.valid.value = int(self._busy)
                self._valid = self._busy

    def sample(self) -> None:
        self._fired = self._busy and bool(self.ready.value)

    def blocked_on(self):
        """``ready`` while an item waits on a DUT not ready for it (nothing else can change
        until it rises: the item holds, no idle cycle is drawn); None otherwise."""
        return self.ready if self._busy and not self._fired else None


class StreamSink:
    """Drives ``ready`` of a DUT stream output with random backpressure and collects payloads.

    ``backpressure``: probability that ``ready`` is low in a cycle.
    """

    def __init__(self, driver: ClockDriver, valid, ready, payload, *, backpressure: float = 0.0,
                 rng: random.Random | None = None) -> None:
        self.valid, self.ready, self.payload = valid, ready, payload
        self.backpressure, self.rng = backpressure, rng or random.Random(1)
        self.items: list[int] = []
        self.times: list[int] = []  # sim time (ns) of the falling edge before each transfer
        self._rdy = False
        self._valid = False  # ``valid`` as last sampled (read once per cycle)
        self._got = Event()
        self.ready.value = 0
        driver.models.append(self)

    async def wait_for(self, count: int) -> None:
        while len(self.items) < count:
            self._got.clear()
            await self._got.wait()

    def active(self) -> bool:
        return self._valid

    def drive(self) -> None:
        rdy = not (self.backpressure and self.rng.random() < self.backpressure)
        if rdy != self._rdy:
            self.ready.value = int(rdy)
            self._rdy = rdy

    def sample(self) -> None:
        self._valid = bool(self.valid.value)
        if self._rdy and self._valid:
            self.items.append(_to_int(self.payload))
            self.times.append(get_sim_time("ns"))
            self._got.set()


class StreamMonitor:
    """Passively records the payload of every transfer on a stream (for scoreboards)."""

    def __init__(self, driver: ClockDriver, valid, ready, payload) -> None:
        self.valid, self.ready, self.payload = valid, ready, payload
        self.items: list[int] = []
        self.times: list[int] = []
        driver.models.append(self)

    def active(self) -> bool:
        return bool(self.valid.value)

    def drive(self) -> None:
        pass

    def sample(self) -> None:
        if self.valid.value and self.ready.value:
            self.items.append(_to_int(self.payload))
            self.times.append(get_sim_time("ns"))
