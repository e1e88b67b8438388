"""The emulated board (``shiftadd board emulate``): the agent serving TCP inside the simulation
of the generated accelerator. Configuration: ``host``, ``port``, ``token``, ``ready`` (a file
written with the bound port once the agent listens), ``idle``, ``backpressure``.

``cut_run_recovery`` drives the agent's backend directly (no TCP) on ``out`` (a ``shiftadd gen``
directory) to check what the driver does about a run cut short and what RESET does."""

from __future__ import annotations

import threading
from pathlib import Path

import cocotb
import numpy as np
from cocotb.task import bridge
from cocotb.triggers import ClockCycles

from firmware.agent import AcceleratorBackend, Agent, AgentConfig
from sim.emulated import EmulatedDevice, EmulatedFpgaManager
from sim.tb.common import tb_config
from sim.tb.engine_tb import AP_IDLE, AP_START, STATUS_BUSY, A, EngineTB


@cocotb.test()
async def board(dut):
    cfg = tb_config()
    tb = EngineTB(dut, cfg)
    await tb.reset()
    if cfg.get("bitstream"):  # the agent's FPGA-manager path, against an emulated kernel
        sysfs, fw = EmulatedFpgaManager.make_tree(cfg["fpga_root"])
        EmulatedFpgaManager.manager(sysfs, fw).load(cfg["bitstream"], cfg["bitstream_sha256"])
        dut._log.info("bitstream %s loaded through the (emulated) FPGA manager",
                      cfg["bitstream"])
    device = EmulatedDevice(tb)
    agent = Agent(AcceleratorBackend(device, images_per_start=cfg.get("images_per_start", 0)),
                  AgentConfig(token=cfg["token"]))
    server = agent.server(cfg.get("host", "127.0.0.1"), int(cfg.get("port", 0)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    dut._log.info("emulated board serving on %s:%d", cfg.get("host", "127.0.0.1"), port)
    if cfg.get("ready"):
        with open(cfg["ready"], "w") as f:
            f.write(str(port))
    await bridge(device.serve)()  # until the process is stopped


async def _as_agent(device: EmulatedDevice, fn):
    """Run ``fn`` in a thread, as the agent's threads call the device, serving its device
    operations in the simulator until it returns; its result (or its exception)."""
    box: dict = {}

    def body() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # handed to the test
            box["error"] = e
        finally:
            device.stop()

    threading.Thread(target=body, daemon=True).start()
    await bridge(device.serve)()
    if "error" in box:
        raise box["error"]
    return box.get("value")


class _Backend:
    """The agent's backend on the emulated device for ``out`` (``tb_config()["out"]``), with
    three images of the network's inputs and their golden outputs: ``infer(i)`` runs image
    ``i`` through it as the agent would (``load=True`` loads the design first)."""

    def __init__(self, dut, seed: int) -> None:
        from gen.generate import load_outdir
        from sim import golden
        from sim.accel import sample_inputs

        cfg = tb_config()
        out = Path(cfg["out"])
        self.manifest, net, self.ecfg = load_outdir(out)
        self.x, _ = sample_inputs(net, 3, seed=seed)
        self.want = golden.run(net, self.x)
        self.blob = (out / "program.bin").read_bytes() + (out / "weights.bin").read_bytes()
        self.tb = EngineTB(dut, cfg)

    async def start(self, **device_args) -> None:
        """Reset the design; the emulated device gets ``device_args``."""
        await self.tb.reset()
        self.device = EmulatedDevice(self.tb, **device_args)
        self.backend = AcceleratorBackend(self.device)

    def infer(self, i: int, load: bool = False) -> np.ndarray:
        if load:
            self.backend.load(self.manifest, self.blob)
        return self.backend.infer(self.x[i:i + 1], self.manifest["model"]["precision"])[0][0]

    async def exact(self, i: int, load: bool = False) -> bool:
        """Image ``i`` through the agent's thread, equal to the golden model's output."""
        got = await _as_agent(self.device, lambda: self.infer(i, load))
        return bool(np.array_equal(got, self.want[i]))


@cocotb.test()
async def cut_run_recovery(dut):
    """An image's frame cut off half-way (the transfer of an agent that died) leaves the engine
    waiting for the rest: the driver's next run finds it busy, pulses the fabric reset and runs
    the next image exactly. The agent's RESET pulses it too (the counters read zero after it)
    and forgets the load; loaded again, an image runs exactly."""
    from gen.compile import infer_frame

    b = _Backend(dut, seed=1)
    await b.start()
    tb, device, backend = b.tb, b.device, b.backend
    assert await b.exact(0, load=True)
    beats = infer_frame(b.x[1], b.ecfg)
    tb.src.send(beats[:len(beats) // 2])
    assert await tb.bus.write(A["CTRL"], AP_START) == 0
    await tb.src.wait_done()
    await ClockCycles(dut.aclk, 200)
    assert await tb.read("STATUS") & STATUS_BUSY and not await tb.read("CTRL") & AP_IDLE
    assert await b.exact(2)
    assert await tb.read64("CYCLES") > 0
    await _as_agent(device, backend.reset)
    assert backend.accel is None
    assert await tb.read("CTRL") == AP_IDLE and await tb.read64("CYCLES") == 0
    assert await b.exact(1, load=True)


@cocotb.test()
async def dma_timeout_recovery(dut):
    """A DMA that never completes (the result stream's receiver stopped: ``tready`` held low)
    is a timeout; the driver resets the fabric after it, so the engine is idle again, and once
    the receiver is back the next image runs exactly, with the design still loaded."""
    from firmware.driver import DeviceError

    b = _Backend(dut, seed=2)
    # a timeout 10x an image's cycles, not the 5 M of a board-sized wait
    await b.start(dma_timeout_cycles=10 * b.manifest["cycles_per_image"])
    tb = b.tb
    assert await b.exact(0, load=True)
    backpressure = tb.sink.backpressure
    tb.sink.backpressure = 1.0  # the receiver stops
    try:
        await _as_agent(b.device, lambda: b.infer(1))
    except DeviceError as e:
        assert "the DMA moved nothing for" in str(e) and "(the fabric was reset)" in str(e), e
    else:
        raise AssertionError("a DMA that never completes did not fail")
    assert await tb.read("CTRL") == AP_IDLE
    tb.sink.backpressure = backpressure
    assert await b.exact(2)
    assert await b.exact(1)
