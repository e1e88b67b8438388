"""Testbench of the whole accelerator top (``hw.top.Top``): load, run images, compare.

The case file (JSON, path in the configuration) holds the ``LOAD`` frame, the ``INFER`` frames
and, when known, the expected output beats (the golden model's). Streams are driven by the
project's clock-driven models with random idle and backpressure; the registers through the
AXI4-Lite master. Every output beat is compared by exact equality; per image the CYCLES and
BUSY counters are read. Results go to the configuration's ``result`` file for ``shiftadd sim``.
"""

from __future__ import annotations

import json
import os
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import (
    ClockCycles,
    FallingEdge,
    RisingEdge,
    SimTimeoutError,
    Timer,
    with_timeout,
)

from hw.regmap import ERROR_BITS, MAGIC, REGMAP
from sim.models.axil import AXILiteMaster
from sim.models.stream import ClockDriver, Fields, StreamSink, StreamSource
from sim.tb.common import seeded, tb_config

A = {r.name: r.address for r in REGMAP.registers}
AP_START = 1 << REGMAP["CTRL"].field("ap_start").bit
AP_DONE = 1 << REGMAP["CTRL"].field("ap_done").bit
AP_IDLE = 1 << REGMAP["CTRL"].field("ap_idle").bit
STATUS_BUSY = 1 << REGMAP["STATUS"].field("busy").bit
CLOCK_NS = 10


class EngineTB:
    def __init__(self, dut, cfg: dict) -> None:
        self.dut, self.cfg = dut, cfg
        rng, _ = seeded(dut)
        self.drv = drv = ClockDriver(dut.aclk, wake_on=[dut.m_axis_tvalid])
        self.src = StreamSource(drv, dut.s_axis_tvalid, dut.s_axis_tready,
                                Fields((dut.s_axis_tdata, 32), (dut.s_axis_tlast, 1)),
                                idle=cfg.get("idle", 0.0), rng=rng)
        self.sink = StreamSink(drv, dut.m_axis_tvalid, dut.m_axis_tready,
                               Fields((dut.m_axis_tdata, 32), (dut.m_axis_tlast, 1)),
                               backpressure=cfg.get("backpressure", 0.0), rng=rng)
        self.bus = AXILiteMaster(drv, dut, "s_axi", sep="_", delay=cfg.get("idle", 0.0), rng=rng)
        self.clocked = False

    async def reset(self, cycles: int = 3) -> None:
        """Start the clock (the first time) and hold ``aresetn`` low for ``cycles`` clocks."""
        if self.clocked:  # leave the read-only phase the bus models resume callers in
            await FallingEdge(self.dut.aclk)
        else:
            cocotb.start_soon(Clock(self.dut.aclk, CLOCK_NS, unit="ns").start())
            self.clocked = True
        self.dut.aresetn.value = 0
        await ClockCycles(self.dut.aclk, cycles)
        self.dut.aresetn.value = 1
        await RisingEdge(self.dut.aclk)

    async def read(self, name: str) -> int:
        v, resp = await self.bus.read(A[name])
        assert resp == 0, f"reading {name} answered {resp}"
        return v

    async def read64(self, name: str) -> int:
        lo = await self.read(f"{name}_LO")
        return lo | await self.read(f"{name}_HI") << 32

    async def start_frame(self, beats: list[int]) -> None:
        """Queue one frame (last beat flagged) on the input stream and start."""
        self.src.send([b | (1 << 32 if i == len(beats) - 1 else 0) for i, b in enumerate(beats)])
        assert await self.bus.write(A["CTRL"], AP_START) == 0

    async def run_frame(self, beats: list[int]) -> None:
        """Send one frame, start, wait for ap_done."""
        await self.start_frame(beats)
        if not self.dut.interrupt.value:
            await RisingEdge(self.dut.interrupt)
        ctrl = await self.read("CTRL")  # reading clears ap_done (and the interrupt)
        assert ctrl & AP_DONE, f"CTRL={ctrl:#x} without ap_done after the interrupt"

    async def errors(self) -> list[str]:
        e = await self.read("ERROR")
        return [n for i, n in enumerate(ERROR_BITS) if e >> i & 1]


# while the LOAD frame streams in, its progress is written every this many cycles (one timer
# callback each, beside the stream models' two per cycle)
LOAD_REPORT_CYCLES = 4096


class _Progress:
    """How far the run is, in the configuration's ``progress`` file when it names one
    (``shiftadd sim`` reports it while the simulation runs), replaced whole: the LOAD frame's
    beats every :data:`LOAD_REPORT_CYCLES`, then the images after each start (tens of
    microseconds against the milliseconds an image takes)."""

    def __init__(self, path: str | None) -> None:
        self.path = path

    def _write(self, obj: dict) -> None:
        if not self.path:
            return
        tmp = f"{self.path}.tmp"
        with open(tmp, "w") as f:
            json.dump(obj, f)
        os.replace(tmp, self.path)

    async def watch_load(self, src: StreamSource, beats: int) -> None:
        """Until cancelled: the beats of the LOAD frame (the stream's first) sent so far."""
        while True:
            await Timer(LOAD_REPORT_CYCLES * CLOCK_NS, unit="ns")
            self._write({"load_beats": src.sent, "load_total": beats})

    def images(self, done: int, total: int, mismatches: int, seconds: float) -> None:
        self._write({"done": done, "total": total, "mismatches": mismatches,
                     "seconds": seconds})


def _case() -> dict:
    with open(tb_config()["case"]) as f:
        return json.load(f)


@cocotb.test()
async def run_images(dut):
    """Load once, then every image: outputs equal the expected beats exactly. With the case's
    ``per_start`` K > 1, as the board's driver runs them: K images per start (IMAGES = K, their
    frames as one transfer, their results back as one with TLAST on its last beat only), each
    image's cycles the start's shared out."""
    cfg = tb_config()
    case = _case()
    tb = EngineTB(dut, cfg)
    await tb.reset()
    assert await tb.read("ID") == MAGIC
    assert await tb.read("BUILD_ID") == case["build_id"]
    report = _Progress(cfg.get("progress"))
    watch = cocotb.start_soon(report.watch_load(tb.src, len(case["load"])))
    await tb.run_frame(case["load"])
    watch.cancel()
    assert await tb.errors() == [], f"load frame rejected: {await tb.errors()}"
    outputs, cycles, busy, differing = [], [], [], []
    frames, out, per = case["images"], case["out_beats"], case.get("per_start", 1)
    t0 = time.perf_counter()
    report.images(0, len(frames), 0, 0.0)  # loaded: the images start
    for first in range(0, len(frames), per):
        k = min(per, len(frames) - first)
        if per > 1:
            assert await tb.bus.write(A["IMAGES"], k) == 0
        n = len(tb.sink.items)
        await tb.run_frame([b for frame in frames[first:first + k] for b in frame])
        await tb.sink.wait_for(n + k * out)
        got = tb.sink.items[n:n + k * out]
        lasts = [b >> 32 for b in got]
        assert lasts == [0] * (len(got) - 1) + [1], \
            f"images {first}..{first + k - 1}: TLAST not on the last beat only"
        errs = await tb.errors()
        assert not errs, f"images {first}..{first + k - 1}: error bits {errs}"
        total, total_busy = await tb.read64("CYCLES"), await tb.read64("BUSY")
        for j in range(k):
            i, beats = first + j, [b & 0xFFFF_FFFF for b in got[j * out:(j + 1) * out]]
            outputs.append(beats)
            cycles.append(total // k + (j < total % k))
            busy.append(total_busy // k + (j < total_busy % k))
            if case.get("expected") is not None and beats != case["expected"][i]:
                want = case["expected"][i]
                bad = [m for m, (a, b) in enumerate(zip(beats, want, strict=True)) if a != b]
                differing.append({"image": i, "beats": len(bad), "of": len(beats),
                                  "first_beat": bad[0], "got": beats[bad[0]],
                                  "expected": want[bad[0]]})
                dut._log.error("image %d: %d of %d output beats differ (first at beat %d: %#x, "
                               "expected %#x)", i, len(bad), len(beats), bad[0], beats[bad[0]],
                               want[bad[0]])
        report.images(len(outputs), len(frames), len(differing), time.perf_counter() - t0)
    seconds = time.perf_counter() - t0
    dut._log.info("driver awake %d cycles", tb.drv.cycles_awake)
    if cfg.get("result"):  # the caller judges: ``shiftadd sim`` reports each differing image
        with open(cfg["result"], "w") as f:
            json.dump({"outputs": outputs, "cycles": cycles, "busy": busy,
                       "mismatches": len(differing), "differing": differing,
                       "seconds": seconds}, f)
    else:
        assert not differing, \
            f"{len(differing)} of {len(outputs)} images differ from the golden model"


@cocotb.test()
async def bad_descriptor(dut):
    """Programs with an illegal descriptor (the case's ``bad_loads``: an unknown opcode, an
    address outside its memory) set ERROR.bad_descriptor, raise ap_done without sending a result
    and leave the engine usable: the good program then runs an image correctly."""
    case = _case()
    tb = EngineTB(dut, tb_config())
    await tb.reset()
    for bad in case["bad_loads"]:
        await tb.run_frame(bad)
        assert await tb.errors() == []
        await tb.run_frame(case["images"][0])  # the illegal descriptor comes first
        assert await tb.errors() == ["bad_descriptor"]
        assert await tb.bus.write(A["ERROR"], 0xFF) == 0
        assert await tb.errors() == []
        assert len(tb.sink.items) == 0, "a failed program must not send results"
    await tb.run_frame(case["load"])
    await tb.run_frame(case["images"][0])
    await tb.sink.wait_for(case["out_beats"])
    got = [b & 0xFFFF_FFFF for b in tb.sink.items[:case["out_beats"]]]
    assert got == case["expected"][0]
    assert await tb.errors() == []


@cocotb.test()
async def reset_mid_image(dut):
    """``aresetn`` pulled low halfway through an image stops the engine: no result is sent, the
    registers read as after power-up (idle, no error, zero counters, no interrupt), and the
    program and weights survive (memories are not reset): the next start runs an image exactly."""
    case = _case()
    tb = EngineTB(dut, tb_config())
    await tb.reset()
    await tb.run_frame(case["load"])
    frame, n = case["images"][0], case["out_beats"]
    await tb.run_frame(frame)
    await tb.sink.wait_for(n)
    assert [b & 0xFFFF_FFFF for b in tb.sink.items] == case["expected"][0]
    cycles = await tb.read64("CYCLES")
    await tb.start_frame(frame)
    await tb.src.wait_done()
    await ClockCycles(dut.aclk, cycles // 2)
    assert await tb.read("STATUS") & STATUS_BUSY, "the engine should still be busy halfway"
    assert len(tb.sink.items) == n, "no result beat before the image ends"
    await tb.reset(2)
    await ClockCycles(dut.aclk, 2 * cycles)  # longer than the rest of the image would take
    assert len(tb.sink.items) == n, "the engine sent a result after the reset"
    assert not dut.interrupt.value
    assert await tb.read("CTRL") == AP_IDLE
    assert await tb.read("STATUS") == 0
    assert await tb.errors() == []
    assert await tb.read64("CYCLES") == 0 and await tb.read64("BUSY") == 0
    await tb.run_frame(frame)
    await tb.sink.wait_for(2 * n)
    assert [b & 0xFFFF_FFFF for b in tb.sink.items[n:]] == case["expected"][0]
    assert await tb.errors() == []


@cocotb.test()
async def batched_images(dut):
    """IMAGES = K: one start runs K INFER frames sent as one transfer (TLAST on its last beat
    only) and returns their K results as one (TLAST on the last beat only), each exactly the
    golden model's. A batch whose TLAST comes inside a frame sets ERROR.bad_length, is taken
    whole from the stream, and sends no more results; with IMAGES back to 0 a start runs one
    image, exactly. The result file gets the cycles of the K images run one start each and of
    the batch."""
    cfg, case = tb_config(), _case()
    tb = EngineTB(dut, cfg)
    await tb.reset()
    await tb.run_frame(case["load"])
    frames, out = case["images"], case["out_beats"]
    k = len(frames)
    assert k >= 2, "a batch needs two images or more"
    singles = []
    for frame in frames:
        await tb.run_frame(frame)
        singles.append(await tb.read64("CYCLES"))
    await tb.sink.wait_for(k * out)
    assert [b & 0xFFFF_FFFF for b in tb.sink.items] == [v for e in case["expected"] for v in e]
    tb.sink.items.clear()

    assert await tb.bus.write(A["IMAGES"], k) == 0
    await tb.run_frame([b for frame in frames for b in frame])
    await tb.sink.wait_for(k * out)
    got = tb.sink.items[:]
    assert [b >> 32 for b in got] == [0] * (k * out - 1) + [1], "TLAST not on the last beat only"
    for i in range(k):
        assert [b & 0xFFFF_FFFF for b in got[i * out:(i + 1) * out]] == case["expected"][i], \
            f"image {i} of the batch differs from the golden model"
    assert await tb.errors() == []
    batch = await tb.read64("CYCLES")
    dut._log.info("%d images: %d cycles in one start, %d in %d starts", k, batch, sum(singles), k)
    tb.sink.items.clear()

    # TLAST two beats before the second frame's end: the batch is malformed there
    await tb.run_frame(frames[0] + frames[1][:-2])
    assert await tb.errors() == ["bad_length"]
    assert not tb.src.queue, "the rest of the batch must be taken from the stream"
    await tb.sink.wait_for(out)
    await ClockCycles(dut.aclk, 50)
    assert [b & 0xFFFF_FFFF for b in tb.sink.items] == case["expected"][0]
    assert all(b >> 32 == 0 for b in tb.sink.items), "no TLAST: the batch did not end"
    assert await tb.bus.write(A["ERROR"], 0xFF) == 0
    # TLAST at the end of the first frame while IMAGES asks for more: early, also malformed
    tb.sink.items.clear()
    await tb.run_frame(frames[0])
    assert await tb.errors() == ["bad_length"]
    assert await tb.bus.write(A["ERROR"], 0xFF) == 0
    tb.sink.items.clear()

    assert await tb.bus.write(A["IMAGES"], 0) == 0
    await tb.run_frame(frames[1])
    await tb.sink.wait_for(out)
    assert [b & 0xFFFF_FFFF for b in tb.sink.items] == case["expected"][1]
    assert tb.sink.items[-1] >> 32 == 1 and await tb.errors() == []
    if cfg.get("result"):
        with open(cfg["result"], "w") as f:
            json.dump({"singles": singles, "batch": batch}, f)


@cocotb.test()
async def bad_frames(dut):
    """Malformed frames set ERROR.bad_length and are discarded whole; the engine stays usable."""
    case = _case()
    tb = EngineTB(dut, tb_config())
    await tb.reset()
    await tb.run_frame([0x12345678, 0])                     # not a shiftadd header
    assert await tb.errors() == ["bad_length"]
    await tb.bus.write(A["ERROR"], 0xFF)
    await tb.run_frame(case["load"][:-3])                   # load frame cut short
    assert await tb.errors() == ["bad_length"]
    await tb.bus.write(A["ERROR"], 0xFF)
    await tb.run_frame(case["load"])
    await tb.run_frame(case["images"][0][:-2])              # input tensor too short
    assert await tb.errors() == ["bad_length"]
    await tb.bus.write(A["ERROR"], 0xFF)
    assert len(tb.sink.items) == 0
    await tb.run_frame(case["images"][0])
    await tb.sink.wait_for(case["out_beats"])
    assert [b & 0xFFFF_FFFF for b in tb.sink.items[:case["out_beats"]]] == case["expected"][0]


@cocotb.test()
async def fuzzed_programs(dut):
    """Programs with descriptor fields set at random (the case's ``fuzz``: a label, a load
    frame of the program alone, and the cycles a run of it may take): each image run ends with
    ``ap_done`` within its bound and the engine idle, whatever it computed, with or without
    error bits. A run that does not is a hang: the test resets the engine and goes
    on, then fails naming every one. Afterwards the real program runs an image exactly. The
    result file gets each run's label, error bits, cycles and result beats."""
    cfg = tb_config()
    case = _case()
    tb = EngineTB(dut, cfg)
    await tb.reset()
    await tb.run_frame(case["load"])  # weights and parameters: a reset keeps them
    frame = case["images"][0]
    hangs, runs = [], []
    for label, load, bound in case["fuzz"]:
        await tb.run_frame(load)  # the loader stores descriptors; it does not read them
        assert await tb.errors() == [], f"{label}: the load frame was refused"
        await tb.start_frame(frame)
        try:
            if not dut.interrupt.value:
                await with_timeout(RisingEdge(dut.interrupt), CLOCK_NS * bound, "ns")
        except SimTimeoutError:
            hangs.append(label)
            dut._log.error("%s: no ap_done within %d cycles", label, bound)
        else:
            ctrl = await tb.read("CTRL")
            assert ctrl & AP_DONE, f"{label}: CTRL={ctrl:#x} without ap_done"
            await ClockCycles(dut.aclk, 20)
            status = await tb.read("STATUS")
            assert not status & STATUS_BUSY, f"{label}: busy after ap_done"
            runs.append({"label": label, "errors": await tb.errors(),
                         "cycles": await tb.read64("CYCLES"), "beats": len(tb.sink.items),
                         "unread": len(tb.src.queue)})
        # what a driver does after a run it cannot trust: drop what the DMA still holds (an
        # input the program did not read whole) and pulse the fabric reset
        await FallingEdge(dut.aclk)
        tb.src.abort()
        await tb.reset(2)
        tb.sink.items.clear()
    await tb.run_frame(case["load"])
    await tb.run_frame(frame)
    await tb.sink.wait_for(case["out_beats"])
    got = [b & 0xFFFF_FFFF for b in tb.sink.items[:case["out_beats"]]]
    assert got == case["expected"][0], "the real program after the fuzzed ones"
    assert await tb.errors() == []
    if cfg.get("result"):
        with open(cfg["result"], "w") as f:
            json.dump({"runs": runs, "hangs": hangs}, f)
    assert not hangs, f"{len(hangs)} of {len(case['fuzz'])} fuzzed programs hung: {hangs}"


@cocotb.test()
async def fuzzed_frames(dut):
    """Malformed frames (the case's ``frame_fuzz``: each a label, its frames, whether the
    engine should accept each, whether each is an image, and whether a load frame was among
    them): every frame ends with ``ap_done`` within the case's ``bound`` and the engine idle,
    ``ERROR.bad_length`` set exactly for the refused ones, the whole frame taken from the
    stream, and a whole result (``TLAST`` on its last beat) only for an accepted image. After
    each case (and a reload, if it sent a load frame) the real image runs exactly. Every
    failure is named at the end."""
    case = _case()
    tb = EngineTB(dut, tb_config())
    await tb.reset()
    await tb.run_frame(case["load"])
    image, n_out, bound = case["images"][0], case["out_beats"], case["bound"]
    failures = []  # (case, what went wrong)
    for i, fz in enumerate(case["frame_fuzz"]):
        label, reload = f"case {i} ({fz['label']})", False
        for frame, accepted, infer in zip(fz["frames"], fz["accepted"], fz["infer"],
                                          strict=True):
            before = len(tb.sink.items)
            await tb.start_frame(frame)
            try:
                if not dut.interrupt.value:
                    await with_timeout(RisingEdge(dut.interrupt), CLOCK_NS * bound, "ns")
            except SimTimeoutError:
                failures.append((i, f"{label}: no ap_done within {bound} cycles"))
                await FallingEdge(dut.aclk)
                tb.src.abort()
                await tb.reset(2)
                reload = True
                break
            ctrl = await tb.read("CTRL")
            errors = await tb.errors()
            beats = tb.sink.items[before:]
            want = n_out if accepted and infer else 0
            problems = [what for what, bad in (
                (f"CTRL={ctrl:#x} without ap_done", not ctrl & AP_DONE),
                ("busy after ap_done", await tb.read("STATUS") & STATUS_BUSY),
                (f"errors {errors}, expected {[] if accepted else ['bad_length']}",
                 errors != ([] if accepted else ["bad_length"])),
                (f"{len(tb.src.queue)} beats of the frame not taken", tb.src.queue),
                (f"{len(beats)} result beats, expected {want}", len(beats) != want),
                ("TLAST not on the result's last beat only",
                 beats and [v >> 32 for v in beats] != [0] * (len(beats) - 1) + [1]))
                if bad]
            if problems:
                failures.append((i, f"{label}: " + "; ".join(problems)))
            if tb.src.queue:  # start the next case clean: what a driver does (see above)
                await FallingEdge(dut.aclk)
                tb.src.abort()
                await tb.reset(2)
                reload = True
            assert await tb.bus.write(A["ERROR"], 0xFF) == 0
        if reload or fz["reload"]:
            await tb.run_frame(case["load"])
        before = len(tb.sink.items)
        await tb.run_frame(image)
        got = [v & 0xFFFF_FFFF for v in tb.sink.items[before:]]
        if got != case["expected"][0] or await tb.errors():
            failures.append((i, f"{label}: the real image afterwards is not exact "
                                f"(errors {await tb.errors()})"))
            assert await tb.bus.write(A["ERROR"], 0xFF) == 0
    for _, what in failures:
        dut._log.error("%s", what)
    assert not failures, f"{len(failures)} failures in {len({i for i, _ in failures})} of " \
                         f"{len(case['frame_fuzz'])} cases: {[what for _, what in failures]}"
