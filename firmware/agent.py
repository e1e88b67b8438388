"""The board agent: serves the host over TCP with :mod:`firmware.protocol`.

Python 3 standard library + numpy only (it runs on the ZC706's ARM Linux). The hardware is
reached through one abstract :class:`Backend`: :class:`AcceleratorBackend` drives a generated
accelerator through a :class:`firmware.driver.Device` (the emulated one runs the generated
Verilog under Verilator: ``sim/emulated.py``; the board's memory-mapped one: ``firmware/mmio.py``);
:class:`LoopbackBackend` is a memory loop that returns its input, to measure the protocol alone.

Per connection: the first frame must be HELLO with the shared token (compared in constant time);
then LOAD / INFER / STATUS / RESET, each answered by exactly one frame — the reply, or one ERROR
frame with a stable code. A malformed frame, a wrong token or a timeout closes that connection;
the agent keeps serving others.
"""

from __future__ import annotations

import hmac
import socket
import socketserver
import threading
from dataclasses import dataclass

import numpy as np

from firmware import protocol as P
from firmware import tensors as T

AGENT_VERSION = "0.1.0"


class Backend:
    """The device interface the agent drives (register access and DMA live behind it)."""

    name = "abstract"

    def load(self, manifest: dict, blob: bytes) -> None:
        raise NotImplementedError

    def infer(self, x: np.ndarray, precision: str) -> tuple[np.ndarray, int]:
        """Integers in -> integers out, and the cycles the device took."""
        raise NotImplementedError

    def status(self) -> dict:
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError

    def loaded_build(self) -> str | None:
        """The build id (hex) of the design loaded, or None."""
        raise NotImplementedError


class LoopbackBackend(Backend):
    """A memory loop: ``infer`` returns its input. Measures the protocol, not hardware."""

    name = "loopback"

    def __init__(self) -> None:
        self.loaded: dict | None = None
        self.inferences = 0

    def load(self, manifest: dict, blob: bytes) -> None:
        self.loaded = manifest

    def infer(self, x: np.ndarray, precision: str) -> tuple[np.ndarray, int]:
        self.inferences += 1
        return x, 0

    def status(self) -> dict:
        return {"backend": self.name, "loaded": self.loaded is not None,
                "inferences": self.inferences}

    def reset(self) -> None:
        self.loaded = None

    def loaded_build(self) -> str | None:
        return None if self.loaded is None else self.loaded.get("build_id_hex")


class AcceleratorBackend(Backend):
    """A generated accelerator behind a :class:`firmware.driver.Device` (the board's or the
    emulated one). LOAD carries the manifest and ``program.bin + weights.bin`` (split by the manifest's sizes); the device's ID
    and build id must match the manifest before anything is written."""

    def __init__(self, device, *, timeout_s: float = 10.0, images_per_start: int = 0) -> None:
        self.device, self.timeout_s = device, timeout_s
        self.images_per_start = images_per_start  # 0: as many as the DMA holds
        self.name = device.name
        self.accel = None
        self.inferences = 0

    def load(self, manifest: dict, blob: bytes) -> None:
        from firmware.driver import Accelerator

        try:
            split = int(manifest["sizes"]["program.bin"])
            manifest["files"]["program.bin"], manifest["registers"]["magic"]
        except (KeyError, TypeError, ValueError) as e:
            raise P.ProtocolError("bad_manifest", f"the manifest lacks {e}") from None
        accel = Accelerator(self.device, manifest, timeout_s=self.timeout_s,
                            max_images_per_start=self.images_per_start)
        accel.identify()
        self.accel = None  # a load that fails half-way leaves the memories inconsistent
        accel.load(bytes(blob[:split]), bytes(blob[split:]))
        self.accel = accel

    def infer(self, x: np.ndarray, precision: str) -> tuple[np.ndarray, int]:
        if self.accel is None:
            raise P.ProtocolError("not_loaded", "LOAD a manifest, program and weights first")
        want = self.accel.m["model"]["precision"]
        if precision != want:
            raise P.ProtocolError("bad_dtype", f"the loaded model takes {want}, not {precision}")
        y, cycles = self.accel.infer(x)
        self.inferences += len(y)
        return y, int(sum(cycles))

    def status(self) -> dict:
        st = {"backend": self.name, "loaded": self.accel is not None,
              "inferences": self.inferences}
        if self.accel is not None:
            st.update(build_id=self.accel.m["build_id_hex"], model=self.accel.m["model"]["name"],
                      precision=self.accel.m["model"]["precision"], errors=self.accel.errors(),
                      last_run=dict(self.accel.counters(), images=self.accel.last_images))
        return st

    def reset(self) -> None:
        """Forget the loaded design and pulse the fabric reset (LOAD again after it)."""
        self.accel = None
        self.device.reset_fabric()

    def loaded_build(self) -> str | None:
        return None if self.accel is None else self.accel.m["build_id_hex"]


def recv_exact(sock: socket.socket, n: int) -> bytearray:
    """Exactly ``n`` bytes, or ConnectionError if the peer closes first (no extra copy)."""
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            raise ConnectionError(f"peer closed after {got} of {n} bytes")
        got += k
    return buf


def read_frame(sock: socket.socket, max_payload: int) -> P.Frame:
    kind, req_id, length = P.parse_header(bytes(recv_exact(sock, P.HEADER.size)), max_payload)
    return P.parse_payload(kind, req_id, recv_exact(sock, length))


@dataclass
class AgentConfig:
    token: str
    max_payload: int = P.DEFAULT_MAX_PAYLOAD
    timeout_s: float = 30.0


class Agent:
    def __init__(self, backend: Backend, config: AgentConfig) -> None:
        if not config.token:
            raise ValueError("the agent needs a non-empty token")
        self.backend, self.config = backend, config
        self._lock = threading.Lock()  # one device: requests are served one at a time

    # ------------------------------------------------------------------ requests
    def handle(self, frame: P.Frame) -> P.Frame:
        try:
            with self._lock:
                return self._dispatch(frame)
        except P.ProtocolError as e:
            return P.error_frame(frame.req_id, e.code, e.message)
        except T.TensorError as e:
            return P.error_frame(frame.req_id, "bad_tensor", str(e))
        except Exception as e:  # a backend failure is reported, never fatal to the agent
            return P.error_frame(frame.req_id, "device_error", f"{type(e).__name__}: {e}")

    def _dispatch(self, f: P.Frame) -> P.Frame:
        if f.kind is P.Kind.INFER:
            shape = T.check_shape(P.require(f.meta, "shape", list))
            precision = P.require(f.meta, "dtype", str)
            if "build_id" in f.meta:  # the design the client quantized for: another client
                want = P.require(f.meta, "build_id", str)  # may have loaded another since
                have = self.backend.loaded_build()
                if have is None:
                    raise P.ProtocolError("not_loaded", "LOAD a manifest, program and weights "
                                                        "first")
                if have != want:
                    raise P.ProtocolError("wrong_build", f"the board runs build {have}, not "
                                                         f"{want}: load that design again")
            x = T.unpack(f.blob, shape, precision)
            y, cycles = self.backend.infer(x, precision)
            return P.Frame(P.Kind.RESULT, f.req_id, {"shape": list(y.shape), "dtype": precision,
                                                    "cycles": int(cycles)},
                           T.pack(y, precision))
        if f.kind is P.Kind.STATUS:
            return P.Frame(P.Kind.STATUS_OK, f.req_id, self.backend.status())
        if f.kind is P.Kind.LOAD:
            self.backend.load(P.require(f.meta, "manifest", dict), f.blob)
            return P.Frame(P.Kind.OK, f.req_id)
        if f.kind is P.Kind.RESET:
            self.backend.reset()
            return P.Frame(P.Kind.OK, f.req_id)
        raise P.ProtocolError("unexpected", f"{f.kind.name} is not a request")

    # ------------------------------------------------------------------ connections
    def serve_connection(self, sock: socket.socket) -> None:
        sock.settimeout(self.config.timeout_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            hello = read_frame(sock, P.MAX_META + 64)
            token = hello.meta.get("token") if hello.kind is P.Kind.HELLO else None
            if not isinstance(token, str) or not hmac.compare_digest(
                    token.encode(), self.config.token.encode()):
                sock.sendall(P.error_frame(hello.req_id, "auth", "wrong or missing token")
                             .encode())
                return
            sock.sendall(P.Frame(P.Kind.HELLO_OK, hello.req_id, {
                "version": P.PROTOCOL_VERSION, "agent": AGENT_VERSION,
                "backend": self.backend.name, "max_payload": self.config.max_payload}).encode())
            while True:
                try:
                    frame = read_frame(sock, self.config.max_payload)
                except P.ProtocolError as e:
                    # The stream can no longer be trusted: say why once, then close.
                    sock.sendall(P.error_frame(0, e.code, e.message).encode())
                    return
                sock.sendall(self.handle(frame).encode())
        except (ConnectionError, TimeoutError, OSError, P.ProtocolError):
            return

    def server(self, host: str = "127.0.0.1", port: int = 0) -> socketserver.ThreadingTCPServer:
        """A threading TCP server (not yet serving): call ``serve_forever`` on it."""
        agent = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                agent.serve_connection(self.request)

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        return Server((host, port), Handler)


# --------------------------------------------------------------------------- the board's entry
def register_windows(args, manifest: dict | None) -> tuple[tuple[str, int], tuple[str, int]]:
    """``((path, offset), (path, offset))`` of the accelerator's and the DMA's registers: what
    ``--regs``/``--dma`` and their offsets say; where they are not given, ``/dev/mem`` at the
    address the block design assigned (the manifest's ``addresses``, which ``shiftadd
    bitstream`` records) or, without one, the UIO devices ``/dev/uio0`` and ``/dev/uio1``."""
    addresses = (manifest or {}).get("addresses", {})
    out = []
    for name, path, offset, uio in (("accel", args.regs, args.regs_offset, "/dev/uio0"),
                                    ("dma", args.dma, args.dma_offset, "/dev/uio1")):
        if path is None:
            path = "/dev/mem" if name in addresses else uio
        if offset is None:
            offset = addresses[name]["base"] if path == "/dev/mem" and name in addresses else 0
        out.append((path, offset))
    return out[0], out[1]


def main(argv: list[str] | None = None) -> int:
    """``python3 -m firmware.agent``: load the bitstream (optional), check the accelerator's
    identity, serve the host. Runs on the board (standard library + numpy)."""
    import argparse
    import json
    import os
    import sys

    from firmware.mmio import BUFFER_BYTES, RESET_HOLD_S

    ap = argparse.ArgumentParser(prog="firmware.agent", description=main.__doc__)
    ap.add_argument("--host", default="0.0.0.0")
    ap.add_argument("--port", type=int, default=7700)
    ap.add_argument("--token-file", default=None,
                    help="file holding the shared token (default: $SHIFTADD_TOKEN)")
    ap.add_argument("--device", choices=("mmio", "loopback"), default="mmio")
    ap.add_argument("--manifest", default=None, help="manifest.json of the deployed design")
    ap.add_argument("--bitstream", default=None, help=".bin to load through the FPGA manager")
    ap.add_argument("--fpga-sysfs", default="/sys/class/fpga_manager/fpga0")
    ap.add_argument("--firmware-dir", default="/lib/firmware")
    ap.add_argument("--regs", default=None,
                    help="accelerator registers: a UIO device (offset 0) or /dev/mem (default: "
                         "/dev/mem at the manifest's address, else /dev/uio0)")
    ap.add_argument("--regs-offset", type=lambda v: int(v, 0), default=None)
    ap.add_argument("--dma", default=None,
                    help="AXI DMA registers (default: /dev/mem at the manifest's address, else "
                         "/dev/uio1)")
    ap.add_argument("--dma-offset", type=lambda v: int(v, 0), default=None)
    ap.add_argument("--slcr", default="/dev/mem",
                    help="the Zynq SLCR's registers, to pulse the fabric reset; 'none': no "
                         "fabric reset (RESET and recovery from a run cut short then fail)")
    ap.add_argument("--slcr-offset", type=lambda v: int(v, 0), default=0xF800_0000)
    ap.add_argument("--reset-hold-ms", type=float, default=RESET_HOLD_S * 1e3,
                    help="how long the fabric reset is held, and waited for after its release "
                         "(default %(default)g ms: proc_sys_reset needs a few cycles of its "
                         "clock)")
    ap.add_argument("--udmabuf", default="/dev/udmabuf0",
                    help="u-dma-buf device, or 'pynq' for pynq.allocate buffers")
    ap.add_argument("--buffer-size", type=lambda v: int(v, 0), default=BUFFER_BYTES,
                    help="bytes to allocate with --udmabuf pynq")
    ap.add_argument("--udmabuf-sysfs", default=None)
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds per device operation")
    ap.add_argument("--images-per-start", type=int, default=0,
                    help="the most images one start runs (default 0: as many as the DMA "
                         "buffer holds both ways; 1: one image per start)")
    args = ap.parse_args(argv)

    def log(msg: str) -> None:
        print(f"[agent] {msg}", file=sys.stderr, flush=True)

    token = (open(args.token_file).read().strip() if args.token_file
             else os.environ.get("SHIFTADD_TOKEN", ""))
    if not token:
        log("no token: pass --token-file or set SHIFTADD_TOKEN")
        return 2
    if args.images_per_start < 0:
        log(f"--images-per-start must be 0 (as many as fit) or more, not "
            f"{args.images_per_start}")
        return 2
    manifest = json.load(open(args.manifest)) if args.manifest else None
    try:
        if args.bitstream:
            from firmware.fpga import FpgaManager

            if manifest is None or "bitstream" not in manifest:
                raise RuntimeError("--bitstream needs --manifest with a bitstream entry")
            FpgaManager(args.fpga_sysfs, args.firmware_dir).load(
                args.bitstream, manifest["bitstream"]["sha256"])
            log(f"bitstream {args.bitstream} loaded (FPGA manager: operating)")
        if args.device == "loopback":
            backend: Backend = LoopbackBackend()
        else:
            from firmware.driver import Accelerator
            from firmware.mmio import MmioDevice, PynqBuffer, UdmaBuffer, Window

            buf = PynqBuffer(args.buffer_size) if args.udmabuf == "pynq" else \
                UdmaBuffer(args.udmabuf, args.udmabuf_sysfs)
            slcr = None
            if args.slcr != "none":
                try:
                    slcr = Window(args.slcr, args.slcr_offset, 0x1000)
                except (OSError, ValueError) as e:
                    raise RuntimeError(f"cannot map the SLCR at {args.slcr_offset:#x} of "
                                       f"{args.slcr} ({e}): run as root, or pass --slcr none "
                                       "(no fabric reset)") from None
            (rp, ro), (dp, do) = register_windows(args, manifest)
            log(f"registers: accelerator {rp} at {ro:#x}, DMA {dp} at {do:#x}")
            try:
                regs, dma = Window(rp, ro), Window(dp, do)
            except (OSError, ValueError) as e:
                raise RuntimeError(f"cannot map the registers ({e}): /dev/mem needs root; "
                                   "UIO devices are --regs /dev/uioN --dma /dev/uioM") from None
            dev = MmioDevice(regs, dma, buf, slcr=slcr, reset_hold_s=args.reset_hold_ms / 1e3)
            if manifest is not None:
                Accelerator(dev, manifest).identify()
                log(f"accelerator build {manifest['build_id_hex']} answers")
            backend = AcceleratorBackend(dev, timeout_s=args.timeout,
                                         images_per_start=args.images_per_start)
    except Exception as e:
        log(f"cannot start: {e}")
        return 1
    srv = Agent(backend, AgentConfig(token=token)).server(args.host, args.port)
    log(f"serving {backend.name} on {args.host}:{srv.server_address[1]}")
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
