"""The board's device: accelerator registers and an AXI DMA (simple mode) through ``mmap``.

* Registers: a UIO device (``/dev/uioN``, map 0) or ``/dev/mem`` at the block design's address
  (``offset``). Any file that can be ``mmap``-ed works, which is how the tests drive it.
* Buffers: a u-dma-buf (``/dev/udmabuf0``; its physical address from
  ``/sys/class/u-dma-buf/udmabuf0/phys_addr``). The HP ports are not cache-coherent, so the
  driver flushes the send buffer before MM2S (``sync_for_device``) and invalidates the receive
  buffer after S2MM (``sync_for_cpu``) through u-dma-buf's sysfs knobs when that directory exists.
  ``pynq.allocate`` buffers can be used instead by passing ``buffer`` (an object with ``phys``,
  a writable buffer ``view``, ``flush()`` and ``invalidate()``).
* AXI DMA simple mode (PG021): MM2S control 0x00, status 0x04, source 0x18, length 0x28;
  S2MM control 0x30, status 0x34, destination 0x48, length 0x58. The length is written last (it
  starts the transfer); status bit 1 is idle, bits 4-6 are errors; at completion the S2MM length
  register holds the bytes received, so a result cut short by an early TLAST is an error, not
  stale buffer contents. A transfer that does not finish in time resets both channels (control
  bit 2) and raises, so the agent keeps serving.
* Fabric reset: the block design drives the accelerator's ``aresetn`` from the PS's
  ``FCLK_RESET0_N`` through ``proc_sys_reset`` (``gen/vivado.py``; the DMA's reset comes from
  Vivado's connection automation, so after the pulse the driver resets the DMA's channels
  itself as well); software pulses it with bit 0 of the SLCR's ``FPGA_RST_CTRL`` (UG585: SLCR at 0xF8000000, register
  0x240; writes need the unlock key 0xDF0D at 0x008 first). Linux unlocks the SLCR at boot
  (``arch/arm/mach-zynq/slcr.c``) and keeps it so; this driver writes the key again and never
  locks it (the kernel's clock driver writes the SLCR too). ``/dev/mem`` only.
"""

from __future__ import annotations

import mmap
import os
import struct
import time
from pathlib import Path

from firmware.driver import Device, DeviceError

MM2S_CR, MM2S_SR, MM2S_SA, MM2S_LEN = 0x00, 0x04, 0x18, 0x28
S2MM_CR, S2MM_SR, S2MM_DA, S2MM_LEN = 0x30, 0x34, 0x48, 0x58
CR_RUN, CR_RESET = 1 << 0, 1 << 2
SR_HALTED, SR_IDLE = 1 << 0, 1 << 1
SR_ERRORS = {4: "DMAIntErr", 5: "DMASlvErr", 6: "DMADecErr"}
#: How long the fabric reset is held, and waited for after its release (proc_sys_reset needs
#: a few cycles of its slowest clock; the agent's --reset-hold-ms).
RESET_HOLD_S = 0.001
MAX_LENGTH = (1 << 26) - 1  # the block design's 26-bit length register
BUFFER_BYTES = 16 << 20     # a DMA buffer: ResNet-20's FIX32 load frame is 1.4 MB
SLCR_UNLOCK, FPGA_RST_CTRL = 0x008, 0x240  # in the SLCR, at 0xF8000000
UNLOCK_KEY, FPGA0_OUT_RST = 0xDF0D, 1 << 0


class Window:
    """32-bit little-endian registers in an ``mmap`` of ``path`` at ``offset``."""

    def __init__(self, path: str | Path, offset: int = 0, size: int = 0x10000) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_SYNC)
        try:
            self.mem = mmap.mmap(self.fd, size, mmap.MAP_SHARED,
                                 mmap.PROT_READ | mmap.PROT_WRITE, offset=offset)
        except Exception:
            os.close(self.fd)
            raise

    def read(self, off: int) -> int:
        return struct.unpack_from("<I", self.mem, off)[0]

    def write(self, off: int, value: int) -> None:
        struct.pack_into("<I", self.mem, off, value & 0xFFFFFFFF)

    def close(self) -> None:
        self.mem.close()
        os.close(self.fd)


class UdmaBuffer:
    """A u-dma-buf: ``phys``, ``view`` (the mapping), ``flush()``/``invalidate()``."""

    # the driver's sysfs class: u-dma-buf since its version 2, udmabuf before
    CLASSES = ("/sys/class/u-dma-buf", "/sys/class/udmabuf")

    def __init__(self, dev: str | Path = "/dev/udmabuf0", sysfs: str | Path | None = None
                 ) -> None:
        dev = Path(dev)
        if sysfs is None:
            found = [Path(c) / dev.name for c in self.CLASSES if (Path(c) / dev.name).is_dir()]
            if not found:
                raise FileNotFoundError(
                    f"no u-dma-buf buffer {dev.name} ({' or '.join(self.CLASSES)}): load the "
                    f"driver with one, e.g. insmod u-dma-buf.ko {dev.name}={BUFFER_BYTES}")
            sysfs = found[0]
        self.sysfs = Path(sysfs)
        self.size = int((self.sysfs / "size").read_text().strip(), 0)
        self.phys = int((self.sysfs / "phys_addr").read_text().strip(), 0)
        self.window = Window(dev, 0, self.size)
        self.view = self.window.mem

    def _sync(self, knob: str, offset: int, size: int, direction: int) -> None:
        for name, value in (("sync_offset", offset), ("sync_size", size),
                            ("sync_direction", direction), (knob, 1)):
            p = self.sysfs / name
            if p.exists():
                p.write_text(f"{value}\n")

    def flush(self, offset: int, size: int) -> None:
        self._sync("sync_for_device", offset, size, 1)   # DMA_TO_DEVICE

    def invalidate(self, offset: int, size: int) -> None:
        self._sync("sync_for_cpu", offset, size, 2)      # DMA_FROM_DEVICE


class PynqBuffer:
    """A ``pynq.allocate`` buffer (PYNQ images) in the shape :class:`MmioDevice` uses."""

    def __init__(self, size: int) -> None:
        from pynq import allocate  # only on PYNQ images

        self.array = allocate(shape=(size,), dtype="u1")
        self.size, self.phys = size, int(self.array.physical_address)
        self.view = memoryview(self.array).cast("B")

    def flush(self, offset: int, size: int) -> None:
        self.array.flush()

    def invalidate(self, offset: int, size: int) -> None:
        self.array.invalidate()


class MmioDevice(Device):
    name = "mmio"

    def __init__(self, regs: Window, dma: Window, buffer, *, slcr: Window | None = None,
                 poll_s: float = 0.0002, reset_hold_s: float = RESET_HOLD_S) -> None:
        self.regs, self.dma_regs, self.buf, self.poll_s = regs, dma, buffer, poll_s
        self.slcr, self.reset_hold_s = slcr, reset_hold_s

    def reset_fabric(self) -> None:
        if self.slcr is None:
            raise DeviceError("no fabric reset: the agent was started with --slcr none")
        self.slcr.write(SLCR_UNLOCK, UNLOCK_KEY)
        self.slcr.write(FPGA_RST_CTRL, self.slcr.read(FPGA_RST_CTRL) | FPGA0_OUT_RST)
        time.sleep(self.reset_hold_s)  # nothing may touch the PL's registers meanwhile
        self.slcr.write(FPGA_RST_CTRL, self.slcr.read(FPGA_RST_CTRL) & ~FPGA0_OUT_RST)
        time.sleep(self.reset_hold_s)  # proc_sys_reset releases the peripherals after it
        self.reset_dma()

    def read_reg(self, offset: int) -> int:
        return self.regs.read(offset)

    def write_reg(self, offset: int, value: int) -> None:
        self.regs.write(offset, value)

    def reset_dma(self) -> None:
        for cr in (MM2S_CR, S2MM_CR):
            self.dma_regs.write(cr, CR_RESET)
        deadline = time.monotonic() + 0.1
        while any(self.dma_regs.read(cr) & CR_RESET for cr in (MM2S_CR, S2MM_CR)):
            if time.monotonic() > deadline:
                break  # a wedged DMA: the next transfer will time out again and say so
            time.sleep(self.poll_s)

    def _errors(self) -> list[str]:
        out = []
        for name, sr in (("MM2S", MM2S_SR), ("S2MM", S2MM_SR)):
            v = self.dma_regs.read(sr)
            out += [f"{name} {err}" for bit, err in SR_ERRORS.items() if v >> bit & 1]
        return out

    def fits(self, send_len: int, recv_len: int) -> bool:
        """Both directions share the buffer (the result after the input, 64-byte aligned);
        each length must fit the 26-bit length register."""
        return (max(send_len, recv_len) <= MAX_LENGTH and
                ((send_len + 63) & ~63) + recv_len <= self.buf.size)

    def dma(self, send: bytes, recv_len: int, timeout_s: float) -> bytes:
        rx_off = (len(send) + 63) & ~63
        if not self.fits(len(send), recv_len):
            raise DeviceError(f"a transfer of {len(send)} + {recv_len} bytes does not fit the "
                              f"{self.buf.size}-byte DMA buffer / 26-bit length register")
        self.buf.view[:len(send)] = send
        self.buf.flush(0, len(send))
        if recv_len:
            self.buf.invalidate(rx_off, recv_len)
            self.dma_regs.write(S2MM_CR, CR_RUN)
            self.dma_regs.write(S2MM_DA, self.buf.phys + rx_off)
            self.dma_regs.write(S2MM_LEN, recv_len)           # last: starts the channel
        self.dma_regs.write(MM2S_CR, CR_RUN)
        self.dma_regs.write(MM2S_SA, self.buf.phys)
        self.dma_regs.write(MM2S_LEN, len(send))              # last: starts the channel
        channels = [MM2S_SR] + ([S2MM_SR] if recv_len else [])
        deadline = time.monotonic() + timeout_s
        while not all(self.dma_regs.read(sr) & SR_IDLE for sr in channels):
            errs = self._errors()
            if errs or time.monotonic() > deadline:
                self.reset_dma()
                raise DeviceError(f"DMA {'error: ' + ', '.join(errs) if errs else 'timeout'} "
                                  f"after {timeout_s} s (channels reset)")
            time.sleep(self.poll_s)
        errs = self._errors()
        if errs:
            self.reset_dma()
            raise DeviceError(f"DMA error: {', '.join(errs)}")
        if not recv_len:
            return b""
        got = self.dma_regs.read(S2MM_LEN)  # PG021: the bytes actually received, at completion
        if got != recv_len:
            raise DeviceError(f"the accelerator's result ended after {got} bytes (TLAST), "
                              f"not {recv_len}")
        self.buf.invalidate(rx_off, recv_len)
        return bytes(self.buf.view[rx_off:rx_off + recv_len])
