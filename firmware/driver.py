"""The accelerator driver: registers and DMA through one abstract :class:`Device`, everything else
from the manifest (register offsets, stream framing, tensor layouts). Standard library + numpy
only: it runs on the ZC706's ARM Linux.

Two devices implement :class:`Device`: the board's memory-mapped one (registers through UIO or
``/dev/mem``, AXI DMA in simple mode) and the emulated one (``sim/emulated.py``: the generated
Verilog under Verilator, driven through the same register and stream semantics).
"""

from __future__ import annotations

import hashlib
import time

import numpy as np

from firmware import tensors as T


class DeviceError(RuntimeError):
    """The device reported an error, timed out, or is not the accelerator the manifest names."""


class Device:
    """Register access and DMA (what differs between a real board and the emulation)."""

    name = "abstract"

    def read_reg(self, offset: int) -> int:
        raise NotImplementedError

    def write_reg(self, offset: int, value: int) -> None:
        raise NotImplementedError

    def dma(self, send: bytes, recv_len: int, timeout_s: float) -> bytes:
        """Stream ``send`` into the accelerator (``TLAST`` on its last beat) and receive
        ``recv_len`` bytes from it; raise :class:`DeviceError` (after resetting the DMA) when it
        does not complete within ``timeout_s``."""
        raise NotImplementedError

    def fits(self, send_len: int, recv_len: int) -> bool:
        """Whether one :meth:`dma` can move that much (a board's DMA buffer and length
        register bound it)."""
        return True

    def reset_fabric(self) -> None:
        """Pulse the programmable logic's reset (the accelerator, the DMA, their interconnect)
        and return once it is released. The accelerator's memories keep their contents."""
        raise DeviceError(f"the {self.name} device cannot reset the fabric")


def images_per_start_limit(manifest: dict) -> int:
    """The most images one start runs: what the manifest's IMAGES register holds (a register
    map without it: one)."""
    bits = next((r["fields"][0]["width"] for r in manifest["registers"]["registers"]
                 if r["name"] == "IMAGES"), 0)
    return max(1, (1 << bits) - 1)


class Accelerator:
    """One generated accelerator behind a :class:`Device`, described by its manifest.

    ``infer`` runs as many images per start as the device's DMA can move at once (the IMAGES
    register; a manifest of a register map without it: one per start), so a batch costs one
    start, one DMA transfer each way and one wait, not one of each per image."""

    def __init__(self, device: Device, manifest: dict, *, timeout_s: float = 10.0,
                 max_images_per_start: int = 0) -> None:
        if max_images_per_start < 0:
            raise DeviceError(f"images per start must be 0 (as many as fit) or more, not "
                              f"{max_images_per_start}")
        self.dev, self.m, self.timeout_s = device, manifest, timeout_s
        regs = manifest["registers"]
        self.reg = {r["name"]: r["address"] for r in regs["registers"]}
        self.max_images = images_per_start_limit(manifest)
        if max_images_per_start:
            self.max_images = min(self.max_images, max_images_per_start)
        ctrl = next(r for r in regs["registers"] if r["name"] == "CTRL")
        self.bit = {f["name"]: f["bit"] for f in ctrl["fields"]}
        err = next(r for r in regs["registers"] if r["name"] == "ERROR")
        self.error_names = {f["bit"]: f["name"] for f in err["fields"]}
        self.cols = manifest["engine"]["cols"]
        self.precision = manifest["model"]["precision"]
        self.dtype = T.dtype_for(self.precision)
        self.stream = manifest["stream"]
        self._images = None  # what IMAGES holds, as last written (None: not known)
        self.last_images = 0  # the images the last start ran (0: a load)
        # the seconds an image may take beyond the run's base timeout: ten times the cycle
        # model's at the clock (a batch's wait grows with its images)
        cycles, mhz = manifest.get("cycles_per_image"), manifest.get("clock_mhz")
        self.image_s = 10 * cycles / (mhz * 1e6) if cycles and mhz else 0.0
        if self.stream.get("beat_bits") != 8 * T.BEAT_BYTES:
            raise DeviceError(f"the manifest's stream beats are {self.stream.get('beat_bits')!r} "
                              f"bits; this agent speaks {8 * T.BEAT_BYTES}-bit beats")

    # ------------------------------------------------------------------ registers
    def identify(self) -> None:
        """Refuse a device whose ID or build id differs from the manifest's."""
        magic = self.dev.read_reg(self.reg["ID"])
        if magic != self.m["registers"]["magic"]:
            raise DeviceError(f"no shiftadd accelerator answers (ID register {magic:#010x})")
        build = self.dev.read_reg(self.reg["BUILD_ID"])
        if build != self.m["build_id"]:
            raise DeviceError(f"the device runs build {build:08x}, the manifest is for build "
                              f"{self.m['build_id']:08x}: load the matching bitstream")

    def counters(self) -> dict:
        """The performance counters of the last run (64-bit, HI latched by reading LO)."""
        out = {}
        for name in ("CYCLES", "BUSY"):
            lo = self.dev.read_reg(self.reg[f"{name}_LO"])
            out[name.lower()] = lo | self.dev.read_reg(self.reg[f"{name}_HI"]) << 32
        return out

    def errors(self) -> list[str]:
        e = self.dev.read_reg(self.reg["ERROR"])
        return [name for bit, name in self.error_names.items() if e >> bit & 1]

    def idle(self) -> bool:
        return bool(self.dev.read_reg(self.reg["CTRL"]) >> self.bit["ap_idle"] & 1)

    def recover(self) -> None:
        """Reset the fabric and check that the accelerator is idle again. A run cut short (a
        DMA timeout, an agent stopped in the middle of a transfer) leaves the engine waiting for
        the rest of its frame, and the next frame would be read as that rest."""
        self._images = None  # the reset cleared IMAGES
        self.dev.reset_fabric()
        if not self.idle():
            raise DeviceError("the accelerator is not idle after a fabric reset")

    def _run(self, frame: bytes, recv_len: int, images: int = 1) -> bytes:
        """Start, stream the frame(s) (and collect the result), wait for ``ap_done``. An engine
        found busy (a run cut short before) is reset first; a run that fails to complete
        resets it after. ``images``: the INFER frames in ``frame``, all run by this start."""
        if not self.idle():
            self.recover()
        if "IMAGES" in self.reg and self._images != images:
            self.dev.write_reg(self.reg["IMAGES"], images)
            self._images = images
        timeout_s = self.timeout_s + images * self.image_s
        self.dev.write_reg(self.reg["CTRL"], 1 << self.bit["ap_start"])
        try:
            out = self.dev.dma(frame, recv_len, timeout_s)
            deadline = time.monotonic() + timeout_s
            polls = 0
            while not self.dev.read_reg(self.reg["CTRL"]) >> self.bit["ap_done"] & 1:
                if time.monotonic() > deadline:
                    raise DeviceError(f"no ap_done within {timeout_s:g} s")
                polls += 1
                if polls > 100:  # a long program: stop spinning on the bus
                    time.sleep(0.0001)
        except DeviceError as e:
            try:
                self.recover()
            except DeviceError as r:
                raise DeviceError(f"{e}; then {r}") from e
            raise DeviceError(f"{e} (the fabric was reset)") from e
        errs = self.errors()
        if errs:
            self.dev.write_reg(self.reg["ERROR"], 0xFFFFFFFF)  # sticky: clear for the next run
            raise DeviceError(f"the accelerator reported {', '.join(errs)}")
        return out

    # ------------------------------------------------------------------ operations
    def load(self, program: bytes, weights: bytes) -> None:
        """Write program, weights and parameters (once per deployment); checks the sha256 of
        both against the manifest first."""
        for name, blob in (("program.bin", program), ("weights.bin", weights)):
            want = self.m["files"][name]
            if hashlib.sha256(blob).hexdigest() != want:
                raise DeviceError(f"{name}: sha256 differs from the manifest's {want[:12]}...")
        header = np.array([self.stream["load_header"]], dtype="<u4").tobytes()
        self._run(header + program + weights, 0)
        self.last_images = 0

    def infer(self, x: np.ndarray) -> tuple[np.ndarray, list[int]]:
        """Integers ``[N, C, H, W]`` in the input format -> outputs ``[N, ...]`` and the device's
        cycles per image."""
        spec_in, spec_out = self.m["input"], self.m["output"]
        x = np.asarray(x)
        if x.ndim != 4 or list(x.shape[1:]) != spec_in["shape"]:
            raise DeviceError(f"input must be [N, {', '.join(map(str, spec_in['shape']))}], not "
                              f"{list(x.shape)}")
        info = np.iinfo(self.dtype)
        if x.size and (x.min() < info.min or x.max() > info.max):
            raise DeviceError(f"input values outside the {self.precision} format")
        out_len = spec_out["beats"] * T.BEAT_BYTES
        # every image's frame (its header and its words) at once, in numpy
        frames = T.to_words(x.astype(self.dtype), self.cols, self.precision,
                            spec_in.get("beats_per_word"), header=self.stream["infer_header"])
        frame_len = len(frames) // len(x) if len(x) else 0
        ys, cycles = [], []
        i = 0
        while i < len(x):
            n = self.images_per_start(len(x) - i, frame_len, out_len)
            data = self._run(frames[i * frame_len:(i + n) * frame_len], n * out_len, n)
            ys.append(T.from_words(data, spec_out["shape"], self.cols, self.precision, n))
            self.last_images = n
            total = self.counters()["cycles"]  # the start's, shared out: the sum is exact
            cycles += [total // n + (j < total % n) for j in range(n)]
            i += n
        return (np.concatenate(ys) if ys else np.zeros((0, *spec_out["shape"]), self.dtype),
                cycles)

    def images_per_start(self, images: int, frame_len: int, out_len: int) -> int:
        """How many of ``images`` frames (``frame_len`` bytes in, ``out_len`` out each) one
        start runs: all, unless the IMAGES register's width (a register map without it: one),
        ``max_images_per_start`` or the device's DMA says fewer."""
        n = min(images, self.max_images)
        while n > 1 and not self.dev.fits(n * frame_len, n * out_len):
            n = max(1, n // 2)
        if not self.dev.fits(n * frame_len, n * out_len):
            raise DeviceError(f"one image ({frame_len} bytes in, {out_len} out) does not fit "
                              f"the {self.dev.name} device's DMA")
        return n
