"""ArrayCore testbench: random and extreme dot products through the systolic array.

driver (StreamSource, random idle) -> DUT -> StreamSink (random backpressure); an input monitor
feeds the reference model (``sim.golden.adder_dot`` / ``shift_dot``), and an in-order scoreboard
compares every output row with it by exact equality.
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, with_timeout

from sim import golden
from sim.models.stream import ClockDriver, StreamMonitor, StreamSink, StreamSource
from sim.pack import pack, shift_weight, unpack
from sim.tb.common import seeded, start_clock_and_reset, tb_config


class TB:
    def __init__(self, dut, cfg: dict) -> None:
        self.dut, self.cfg = dut, cfg
        self.rng, self.np_rng = seeded(dut)
        self.R, self.C, self.V = cfg["rows"], cfg["cols"], cfg["lanes"]
        self.B, self.kind = cfg["data_bits"], cfg["kind"]
        self.wbits = self.B if self.kind == "adder" else 2 + cfg["shift_max"].bit_length()
        drv = ClockDriver(dut.clk)
        self.source = StreamSource(drv, dut.i__valid, dut.i__ready, dut.i__payload,
                                   idle=cfg.get("idle", 0.0), rng=self.rng)
        self.sink = StreamSink(drv, dut.o__valid, dut.o__ready, dut.o__payload,
                               backpressure=cfg.get("backpressure", 0.0), rng=self.rng)
        self.monitor = StreamMonitor(drv, dut.i__valid, dut.i__ready, dut.i__payload)

    # ----------------------------------------------------------------- packing
    def step(self, x: np.ndarray, w: np.ndarray, first: bool, last: bool) -> int:
        """x: [R, V] activations, w: [C, V] encoded weights."""
        return pack([(x, self.B), (w, self.wbits), ([int(first)], 1), ([int(last)], 1)])

    def unstep(self, v: int):
        x, w, first, last = unpack(v, [(self.R * self.V, self.B, True),
                                       (self.C * self.V, self.wbits, self.kind == "adder"),
                                       (1, 1, False), (1, 1, False)])
        return x.reshape(self.R, self.V), w.reshape(self.C, self.V), bool(first[0]), bool(last[0])

    def unrow(self, v: int):
        data, last = unpack(v, [(self.C, self.cfg["acc_bits"], True), (1, 1, False)])
        return data, bool(last[0])

    # ----------------------------------------------------------------- stimulus
    def tile(self, x: np.ndarray, w: np.ndarray) -> list[int]:
        """Steps for one dot-product group: x [R, J], w [C, J] encoded, J a multiple of V."""
        steps = x.shape[1] // self.V
        return [self.step(x[:, s * self.V:(s + 1) * self.V], w[:, s * self.V:(s + 1) * self.V],
                          s == 0, s == steps - 1) for s in range(steps)]

    def random_weights(self, j: int, mode: str) -> np.ndarray:
        r = self.np_rng
        if self.kind == "adder":
            lo, hi = -(1 << (self.B - 1)), (1 << (self.B - 1)) - 1
            if mode == "extreme":
                return r.choice([lo, hi, 0, -1], size=(self.C, j))
            return r.integers(lo, hi, size=(self.C, j), endpoint=True)
        smax = self.cfg["shift_max"]
        sign = r.integers(-1, 1, size=(self.C, j), endpoint=True)
        shift = r.integers(0, smax, size=(self.C, j), endpoint=True)
        if mode == "extreme":
            sign = r.choice([-1, 1], size=(self.C, j))
            shift = np.full((self.C, j), smax)
        if mode == "every_shift":
            shift = np.arange(self.C * j).reshape(self.C, j) % (smax + 1)
        if mode == "zero_signs":
            sign[:] = 0
        return shift_weight(sign, shift)

    def random_acts(self, j: int, mode: str) -> np.ndarray:
        lo, hi = -(1 << (self.B - 1)), (1 << (self.B - 1)) - 1
        if mode == "extreme":
            return self.np_rng.choice([lo, hi], size=(self.R, j))
        return self.np_rng.integers(lo, hi, size=(self.R, j), endpoint=True)

    # ----------------------------------------------------------------- reference
    def reference(self, steps: list[int]) -> list[list[int]]:
        """Expected output rows for the monitored input steps, from the golden model."""
        rows, xs, ws = [], [], []
        for v in steps:
            x, w, first, last = self.unstep(v)
            if first:
                xs, ws = [], []
            xs.append(x)
            ws.append(w)
            if last:
                X, W = np.concatenate(xs, axis=1), np.concatenate(ws, axis=1)
                if self.kind == "adder":
                    out = golden.adder_dot(X, W)
                else:
                    sign = ((W & 3) ^ 2) - 2  # 2-bit two's complement
                    out = golden.shift_dot(X, sign, W >> 2)
                rows.extend(out.tolist())
        return rows


@cocotb.test()
@cocotb.parametrize(mode=["random", "extreme", "every_shift", "zero_signs", "short_tiles",
                          "pairs"])
async def dot_products(dut, mode: str) -> None:
    """``short_tiles``: one step a tile; ``pairs``: a tile of ``steps`` steps, then one of one
    step, and so on (two dot products that end closer than R cycles: the case of two drain
    slots)."""
    cfg = tb_config()
    tb = TB(dut, cfg)
    await start_clock_and_reset(dut)
    steps = []
    for k in range(cfg["tiles"]):
        short = mode == "short_tiles" or (mode == "pairs" and k % 2 == 1)
        j = tb.V * (1 if short else cfg["steps"])
        wmode = mode if mode not in ("short_tiles", "pairs") else "random"
        x = tb.random_acts(j, "extreme" if mode == "extreme" else "random")
        steps += tb.tile(x, tb.random_weights(j, wmode))
    tb.source.send(steps)
    want_rows = cfg["tiles"] * tb.R
    await with_timeout(tb.sink.wait_for(want_rows), 200 * (len(steps) + want_rows + 100), "ns")
    await ClockCycles(dut.clk, 20)
    assert tb.monitor.items == steps, "the input monitor must see every step once, in order"
    want = tb.reference(tb.monitor.items)
    got, lasts = [], []
    for v in tb.sink.items:
        data, last = tb.unrow(v)
        got.append(data.tolist())
        lasts.append(last)
    assert len(got) == len(want), f"{len(got)} rows out, {len(want)} expected"
    for k, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g == w, f"row {k} (tile {k // tb.R}, row {k % tb.R}): got {g}, want {w}"
    assert lasts == [(k % tb.R) == tb.R - 1 for k in range(len(got))], "last flags"


@cocotb.test()
async def throughput(dut) -> None:
    """Stream ``cfg['tiles']`` random tiles back to back and record cycles and wall time
    (``throughput.json`` in the run directory); results are still checked exactly."""
    import json
    import time

    cfg = tb_config()
    tb = TB(dut, cfg)
    await start_clock_and_reset(dut)
    steps = []
    for _ in range(cfg["tiles"]):
        j = tb.V * cfg["steps"]
        steps += tb.tile(tb.random_acts(j, "random"), tb.random_weights(j, "random"))
    t0, c0 = time.perf_counter(), cocotb.utils.get_sim_time("ns")
    tb.source.send(steps)
    await tb.sink.wait_for(cfg["tiles"] * tb.R)
    wall, cycles = time.perf_counter() - t0, (cocotb.utils.get_sim_time("ns") - c0) / 10
    want = tb.reference(tb.monitor.items)
    got = [tb.unrow(v)[0].tolist() for v in tb.sink.items]
    assert got == want
    with open("throughput.json", "w") as f:
        json.dump({"cycles": cycles, "seconds": wall, "steps": len(steps),
                   "cycles_per_second": cycles / wall}, f)


@cocotb.test()
async def schedule(dut) -> None:
    """Back-to-back tiles of ``cfg['tile_steps']`` steps; writes the measured cycle count from the
    first accepted step to the last result row (``schedule.json``). Results are checked too."""
    import json

    cfg = tb_config()
    tb = TB(dut, cfg)
    await start_clock_and_reset(dut)
    steps = []
    for s in cfg["tile_steps"]:
        j = tb.V * s
        steps += tb.tile(tb.random_acts(j, "random"), tb.random_weights(j, "random"))
    tb.source.send(steps)
    rows = len(cfg["tile_steps"]) * tb.R
    await with_timeout(tb.sink.wait_for(rows), 100 * (len(steps) + rows + 200), "ns")
    assert [tb.unrow(v)[0].tolist() for v in tb.sink.items] == tb.reference(tb.monitor.items)
    cycles = int(tb.sink.times[-1] - tb.monitor.times[0]) // 10 + 1
    with open("schedule.json", "w") as f:
        json.dump({"cycles": cycles}, f)
