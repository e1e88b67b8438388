"""The emulated board: the generated Verilog under Verilator behind the agent's device interface.

``shiftadd board emulate OUT --port P`` runs the cocotb test :func:`sim.tb.board_tb.board` on
``OUT/rtl``: inside the simulation it starts the **same agent** (``firmware.agent``) with an
:class:`firmware.agent.AcceleratorBackend` over :class:`EmulatedDevice`. Register reads and
writes go through the AXI4-Lite master model, DMA through AXI4-Stream source and sink models
(whole frames with ``TLAST``, random idle and backpressure): the same semantics as the board's
AXI DMA in simple mode, not a shortcut to the golden model.

Threads: the agent serves TCP in its own threads; every device operation is handed to one cocotb
*bridge* thread, which runs it in the simulator (``cocotb.task.resume``) and hands back the
result. While no request is pending the simulator does not advance.
"""

from __future__ import annotations

import queue
import threading

from firmware.driver import Device, DeviceError

# A DMA that moves no beat either way for this many clock cycles is a timeout (the board's
# driver uses wall-clock time; simulated time is the fair measure here). Progress, not the
# whole transfer: a batch of images may take any number of cycles, each image far fewer.
DMA_TIMEOUT_CYCLES = 5_000_000
# A fabric reset holds ``aresetn`` low this many cycles (the engine needs one: its reset is
# registered; on the board ``proc_sys_reset`` stretches the PS's reset pulse).
RESET_CYCLES = 16


class EmulatedDevice(Device):
    name = "emulated"

    def __init__(self, tb, *, dma_timeout_cycles: int = DMA_TIMEOUT_CYCLES) -> None:
        self.tb, self.dma_timeout_cycles = tb, dma_timeout_cycles
        self._calls: queue.Queue = queue.Queue()

    # ------------------------------------------------------------------ agent threads
    def _call(self, fn, *args):
        done, box = threading.Event(), {}
        self._calls.put((fn, args, done, box))
        done.wait()
        if "error" in box:
            raise box["error"]
        return box.get("value")

    def read_reg(self, offset: int) -> int:
        return self._call(self._read, offset)

    def write_reg(self, offset: int, value: int) -> None:
        self._call(self._write, offset, value)

    def dma(self, send: bytes, recv_len: int, timeout_s: float) -> bytes:
        return self._call(self._dma, bytes(send), recv_len)

    def reset_fabric(self) -> None:
        self._call(self._reset_fabric)

    def stop(self) -> None:
        self._calls.put(None)

    # ------------------------------------------------------------------ the bridge thread
    def serve(self) -> None:
        """Run device operations in the simulator until :meth:`stop` (call via ``bridge``)."""
        from cocotb.task import resume

        while True:
            item = self._calls.get()
            if item is None:
                return
            fn, args, done, box = item
            try:
                box["value"] = resume(fn)(*args)
            except Exception as e:  # handed to the caller, never kills the simulation
                box["error"] = e
            done.set()

    # ------------------------------------------------------------------ in the simulator
    async def _read(self, offset: int) -> int:
        v, resp = await self.tb.bus.read(offset)
        if resp:
            raise DeviceError(f"register read at {offset:#x} answered SLVERR")
        return v

    async def _write(self, offset: int, value: int) -> None:
        if await self.tb.bus.write(offset, value & 0xFFFFFFFF):
            raise DeviceError(f"register write at {offset:#x} answered SLVERR")

    async def _reset_fabric(self) -> None:
        """``aresetn`` low for ``RESET_CYCLES`` clocks; the DMA is reset with the fabric, so
        what it had not sent or received is dropped."""
        from cocotb.triggers import FallingEdge

        await FallingEdge(self.tb.dut.aclk)  # out of the read-only phase callers resume in
        self.tb.src.abort()
        await self.tb.reset(RESET_CYCLES)
        self.tb.sink.items.clear()

    async def _dma(self, send: bytes, recv_len: int) -> bytes:
        import cocotb
        import numpy as np
        from cocotb.triggers import ClockCycles, First

        if len(send) % 4 or recv_len % 4:
            raise DeviceError("DMA lengths must be whole 32-bit beats")
        beats = np.frombuffer(send, dtype="<u4").astype(np.int64).tolist()
        if beats:
            beats[-1] |= 1 << 32  # TLAST
        sink = self.tb.sink
        start = len(sink.items)
        self.tb.src.send(beats)
        want = start + recv_len // 4

        async def complete() -> None:
            await self.tb.src.wait_done()
            await sink.wait_for(want)

        def moved() -> tuple[int, int]:
            return len(self.tb.src.queue), len(sink.items)

        done = cocotb.start_soon(complete())
        while not done.done():
            seen = moved()
            await First(done.complete, ClockCycles(self.tb.dut.aclk, self.dma_timeout_cycles))
            if not done.done() and moved() == seen:
                done.cancel()
                self.tb.src.abort()  # the DMA reset: drop what was not sent
                raise DeviceError(f"the DMA moved nothing for {self.dma_timeout_cycles} cycles")
        got = sink.items[start:want]
        del sink.items[:want]
        if recv_len and (got[-1] >> 32) != 1:
            raise DeviceError("the result's last beat has no TLAST")
        return np.array([b & 0xFFFFFFFF for b in got], dtype="<u4").tobytes()



def emulate(out, *, host: str = "127.0.0.1", port: int = 0, token: str, ready=None,
            idle: float = 0.1, backpressure: float = 0.1, seed: int = 1,
            images_per_start: int = 0, progress=lambda s: None) -> None:
    """Serve ``out/`` as an emulated board until the process is stopped (``images_per_start``:
    the agent's option of that name)."""
    from pathlib import Path

    from gen.generate import load_outdir, simulation_verilog
    from sim.accel import BUILD_TIME_HINT, build_verilog

    out = Path(out)
    manifest, _, _ = load_outdir(out)
    text = simulation_verilog(out, manifest)
    progress(f"building {out / 'rtl'} under Verilator (cached after the first time; "
             f"{BUILD_TIME_HINT})")
    b = build_verilog(text, manifest["top"], progress)
    progress(f"starting the emulated board (build {manifest['build_id_hex']}) on {host}:{port}")
    from sim import rtl

    ready = str(Path(ready).resolve()) if ready else ""  # the simulator runs elsewhere
    bit, sha = stand_in_bitstream(out, manifest)
    rtl.run(b, "sim.tb.board_tb", {"host": host, "port": port, "token": token, "ready": ready,
                                   "idle": idle, "backpressure": backpressure,
                                   "bitstream": str(Path(bit).resolve()),
                                   "bitstream_sha256": sha,
                                   "fpga_root": str((out / "emulated").resolve()),
                                   "images_per_start": images_per_start},
            seed=seed, tests="board")


class EmulatorProcess:
    """``shiftadd board emulate OUT`` in a child process (its own session), ready when its agent
    listens; ``address`` is ``127.0.0.1:<port>``. Use as a context manager."""

    def __init__(self, out, token: str, log_path, *, start_timeout_s: float = 900.0) -> None:
        import subprocess
        import sys
        import time
        from pathlib import Path

        log_path = Path(log_path)
        ready = log_path.with_suffix(".port")
        ready.unlink(missing_ok=True)
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gen.cli", "board", "emulate", str(out), "--port", "0",
             "--token", token, "--ready", str(ready)],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + start_timeout_s
        while not (ready.exists() and ready.read_text()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the emulated board did not start:\n" +
                                   log_path.read_text()[-2000:])
            time.sleep(0.25)
        self.address = f"127.0.0.1:{ready.read_text()}"

    def stop(self) -> None:
        import os
        import signal

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)
        self._log.close()

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class EmulatedFpgaManager:
    """The kernel side of the Linux FPGA manager over a temporary sysfs tree: after the agent
    writes ``firmware``, it reads the named file from the firmware directory, checks it is a
    byte-swapped ``.bin`` (sync word ``66 55 99 AA``) and sets ``state`` to ``operating`` (or
    ``write error``). The agent's own loading code (``firmware.fpga.FpgaManager``) is unchanged:
    use :func:`make_tree` and :func:`manager`."""

    @staticmethod
    def make_tree(root) -> tuple:
        from pathlib import Path

        root = Path(root)
        sysfs, fw = root / "sys/class/fpga_manager/fpga0", root / "lib/firmware"
        sysfs.mkdir(parents=True, exist_ok=True)
        fw.mkdir(parents=True, exist_ok=True)
        for name, value in (("state", "unknown"), ("flags", ""), ("firmware", ""),
                            ("name", "Xilinx Zynq FPGA Manager (emulated)")):
            (sysfs / name).write_text(value + "\n")
        return sysfs, fw

    @staticmethod
    def manager(sysfs, firmware_dir):
        from firmware.bitstream import SYNC_SWAPPED, has_sync
        from firmware.fpga import FpgaManager

        class Emulated(FpgaManager):
            def _loaded(self) -> None:
                name = (self.sysfs / "firmware").read_text().strip()
                flags = (self.sysfs / "flags").read_text().strip()
                try:
                    data = (self.firmware_dir / name).read_bytes()
                    ok = flags == "0" and has_sync(data, SYNC_SWAPPED)  # as the driver checks
                except OSError:
                    ok = False
                (self.sysfs / "state").write_text("operating\n" if ok else "write error\n")

        return Emulated(sysfs, firmware_dir)


def stand_in_bitstream(out, manifest: dict) -> tuple:
    """The emulated board's bitstream when Vivado has not run: a ``.bit`` container (design
    name with the build id) converted to ``.bin`` like a real one. Returns ``(path, sha256)``."""
    import hashlib
    from pathlib import Path

    from firmware.bitstream import SYNC, bit_to_bin, build_bit

    if "bitstream" in manifest:  # a real one exists: the emulation loads that
        p = Path(out) / manifest["bitstream"]["bin"]
        return p, manifest["bitstream"]["sha256"]
    data = b"\xff" * 32 + SYNC + manifest["build_id"].to_bytes(4, "big") * 8
    raw = bit_to_bin(build_bit(data, design=f"{manifest['top']};build={manifest['build_id_hex']}"))
    d = Path(out) / "emulated"
    d.mkdir(exist_ok=True)
    (d / "shiftadd.bin").write_bytes(raw)
    return d / "shiftadd.bin", hashlib.sha256(raw).hexdigest()
