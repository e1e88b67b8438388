"""The board side without a board: FPGA-manager loading over a temporary sysfs tree, and the
memory-mapped device (registers, AXI DMA simple mode, u-dma-buf) over mmap-ed files, including
a DMA that never completes, served by the real agent over TCP."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from firmware.agent import AcceleratorBackend, Agent, AgentConfig
from firmware.bitstream import SYNC, bit_to_bin, build_bit
from firmware.driver import Accelerator, DeviceError
from firmware.fpga import FpgaError
from firmware.mmio import (
    CR_RESET,
    FPGA_RST_CTRL,
    MM2S_CR,
    MM2S_LEN,
    MM2S_SA,
    MM2S_SR,
    S2MM_CR,
    S2MM_DA,
    S2MM_LEN,
    S2MM_SR,
    SLCR_UNLOCK,
    SR_IDLE,
    UNLOCK_KEY,
    MmioDevice,
    UdmaBuffer,
    Window,
)
from host.client import AgentClient, RemoteError
from hw.regmap import MAGIC, REGMAP
from sim.emulated import EmulatedFpgaManager

PHYS = 0x1F00_0000
ROOT = Path(__file__).resolve().parents[1]


def good_bin() -> bytes:
    return bit_to_bin(build_bit(b"\xff" * 8 + SYNC + b"\x20\x00\x00\x00" * 4))


def test_fpga_manager_loads_and_refuses(tmp_path):
    sysfs, fw = EmulatedFpgaManager.make_tree(tmp_path)
    mgr = EmulatedFpgaManager.manager(sysfs, fw)
    b = tmp_path / "x.bin"
    b.write_bytes(good_bin())
    sha = hashlib.sha256(b.read_bytes()).hexdigest()
    with pytest.raises(FpgaError, match="refusing"):
        mgr.load(b, "0" * 64)
    assert not (fw / "shiftadd.bin").exists() and mgr.state() == "unknown"
    mgr.load(b, sha)
    assert mgr.state() == "operating"
    assert (sysfs / "flags").read_text().strip() == "0"
    assert (sysfs / "firmware").read_text().strip() == "shiftadd.bin"
    assert (fw / "shiftadd.bin").read_bytes() == b.read_bytes()
    raw = build_bit(b"\xff" * 8 + SYNC + b"\0" * 16)  # a .bit given where a .bin belongs
    b.write_bytes(raw)
    with pytest.raises(FpgaError, match="byte-swapped"):
        mgr.load(b, hashlib.sha256(raw).hexdigest())
    shifted = b"\0\0" + good_bin()  # the sync word between two words: the driver refuses it
    b.write_bytes(shifted)
    with pytest.raises(FpgaError, match="word boundary"):
        mgr.load(b, hashlib.sha256(shifted).hexdigest())
    with pytest.raises(FpgaError, match="no FPGA manager"):
        type(mgr)(tmp_path / "nowhere", fw).state()


CTRL = REGMAP["CTRL"].address
AP_IDLE = 1 << REGMAP["CTRL"].field("ap_idle").bit


class FakeFabric(threading.Thread):
    """The programmable logic as far as a fabric reset goes, over the files: each time bit 0 of
    FPGA_RST_CTRL rises it counts a pulse and the accelerator's CTRL reads idle (as after a
    reset). Polls far faster than the driver holds the reset in these tests."""

    def __init__(self, slcr: Window, regs: Window) -> None:
        super().__init__(daemon=True)
        self.slcr, self.regs, self.pulses, self.done = slcr, regs, 0, threading.Event()

    def run(self) -> None:
        high = False
        while not self.done.is_set():
            now = bool(self.slcr.read(FPGA_RST_CTRL) & 1)
            if now and not high:
                self.pulses += 1
                self.regs.write(CTRL, AP_IDLE)
            high = now
            time.sleep(0.0005)


@pytest.fixture
def hw(tmp_path):
    """Register windows (the accelerator's, the DMA's, the SLCR's) and a u-dma-buf, all plain
    files, and the fabric's reset behaviour (:class:`FakeFabric`)."""
    regs, dma, buf, slcr = (tmp_path / n for n in ("uio0", "uio1", "udmabuf0", "slcr"))
    for f, size in ((regs, 0x10000), (dma, 0x10000), (buf, 1 << 20), (slcr, 0x1000)):
        f.write_bytes(b"\0" * size)
    sysfs = tmp_path / "udmabuf-sysfs"
    sysfs.mkdir()
    (sysfs / "size").write_text(f"{1 << 20}\n")
    (sysfs / "phys_addr").write_text(f"{PHYS:#x}\n")
    for knob in ("sync_offset", "sync_size", "sync_direction", "sync_for_device",
                 "sync_for_cpu"):
        (sysfs / knob).write_text("0\n")
    r, d, sl = Window(regs), Window(dma), Window(slcr, 0, 0x1000)
    dev = MmioDevice(r, d, UdmaBuffer(buf, sysfs), slcr=sl, reset_hold_s=0.02)
    fabric = FakeFabric(sl, r)
    fabric.start()
    dev.fabric = fabric
    yield dev, r, d, sysfs
    fabric.done.set()
    fabric.join()
    dev.buf.window.close()
    for w in (r, d, sl):
        w.close()


def test_dma_that_never_completes_times_out_and_resets(hw):
    dev, _, d, sysfs = hw
    t0 = time.monotonic()
    with pytest.raises(DeviceError, match="timeout"):
        dev.dma(b"\x01\x02\x03\x04" * 8, 16, timeout_s=0.2)
    assert time.monotonic() - t0 < 2
    # the transfer was programmed as PG021 says (length last), then both channels reset
    assert d.read(MM2S_SA) == PHYS and d.read(MM2S_LEN) == 32
    assert d.read(S2MM_DA) == PHYS + 64 and d.read(S2MM_LEN) == 16
    assert d.read(MM2S_CR) == CR_RESET and d.read(S2MM_CR) == CR_RESET
    assert (sysfs / "sync_for_device").read_text().strip() == "1"


def fake_engine(dev, d, short: int = 0) -> threading.Thread:
    """A thread that plays the DMA + accelerator once: when both lengths are written it
    'streams' the send buffer back reversed into the receive buffer, ``short`` bytes before the
    length it was given (an early TLAST: the S2MM length register then holds what arrived, as
    PG021 says), and sets the idle bits."""
    def run() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if d.read(MM2S_LEN) and d.read(S2MM_LEN):
                n, m = d.read(MM2S_LEN), d.read(S2MM_LEN) - short
                src = bytes(dev.buf.view[d.read(MM2S_SA) - PHYS:][:n])
                off = d.read(S2MM_DA) - PHYS
                dev.buf.view[off:off + m] = src[::-1][:m]
                d.write(S2MM_LEN, m)
                d.write(MM2S_SR, SR_IDLE)
                d.write(S2MM_SR, SR_IDLE)
                return
            time.sleep(0.001)

    th = threading.Thread(target=run)
    th.start()
    return th


def test_dma_round_trip_with_a_fake_engine(hw):
    dev, _, d, _ = hw
    th = fake_engine(dev, d)
    out = dev.dma(bytes(range(64)), 64, timeout_s=5)
    th.join()
    assert out == bytes(range(64))[::-1]
    for reg in (MM2S_LEN, S2MM_LEN, MM2S_SR, S2MM_SR):
        d.write(reg, 0)
    th = fake_engine(dev, d, short=4)  # a result cut short is an error, not stale bytes
    with pytest.raises(DeviceError, match="ended after 60 bytes .*not 64"):
        dev.dma(bytes(range(64)), 64, timeout_s=5)
    th.join()
    d.write(MM2S_SR, 1 << 5)  # a slave error is decoded, not ignored
    with pytest.raises(DeviceError, match="DMASlvErr"):
        dev.dma(b"\0" * 4, 0, timeout_s=5)


def _device_and_manifest(r: Window) -> tuple[bytes, bytes, dict]:
    """The accelerator's ID registers in the file, and a manifest and blobs to LOAD."""
    r.write(REGMAP["ID"].address, MAGIC)
    r.write(REGMAP["BUILD_ID"].address, 0x1234ABCD)
    program, weights = b"\x05\0\0\x01" + b"\0" * 4, b"\0" * 8
    manifest = {
        "build_id": 0x1234ABCD, "build_id_hex": "1234abcd", "registers": REGMAP.to_json(),
        "engine": {"cols": 16, "data_bits": 8},
        "stream": {"load_header": 0x5348414C, "infer_header": 0x53484149, "beat_bits": 32},
        "sizes": {"program.bin": len(program), "weights.bin": len(weights)},
        "files": {"program.bin": hashlib.sha256(program).hexdigest(),
                  "weights.bin": hashlib.sha256(weights).hexdigest()},
        "model": {"name": "t", "precision": "fix8"},
        "input": {"shape": [1, 2, 2]}, "output": {"shape": [1, 1, 1], "beats": 4}}
    return program, weights, manifest


def test_images_per_start_follow_the_dma_buffer_and_the_register_map(hw):
    """A batch runs in one start when the DMA buffer holds it both ways, in halves until it
    does otherwise; a register map without IMAGES (an older design) gets one image per start;
    an image the buffer cannot hold is refused with the sizes."""
    dev, r, _, _ = hw  # a 1 MiB buffer: the result goes after the input, 64-byte aligned
    assert dev.fits(1 << 19, 1 << 19) and not dev.fits((1 << 19) + 1, 1 << 19)
    assert not dev.fits(1 << 26, 0)  # the 26-bit length register
    _, _, manifest = _device_and_manifest(r)
    accel = Accelerator(dev, manifest)
    assert accel.images_per_start(100, 4096, 64) == 100
    assert accel.images_per_start(1000, 4096, 64) == 250  # 1000, 500: over 1 MiB
    # the most the register map's IMAGES holds (its width, from the manifest)
    assert accel.images_per_start(10 ** 6, 4, 4) == 2 ** REGMAP["IMAGES"].field("count").width - 1
    with pytest.raises(DeviceError, match="one image .2000000 bytes in, 64 out. does not fit"):
        accel.images_per_start(3, 2_000_000, 64)
    assert Accelerator(dev, manifest, max_images_per_start=8).images_per_start(100, 4096,
                                                                               64) == 8
    with pytest.raises(DeviceError, match="images per start must be 0 .as many as fit. or"):
        Accelerator(dev, manifest, max_images_per_start=-1)
    old = dict(manifest, registers=dict(manifest["registers"], registers=[
        reg for reg in manifest["registers"]["registers"] if reg["name"] != "IMAGES"]))
    assert Accelerator(dev, old).images_per_start(100, 4096, 64) == 1


def test_a_busy_engine_and_a_failed_run_pulse_the_fabric_reset(hw):
    """CTRL without ap_idle (a run cut short before): the driver unlocks the SLCR and pulses
    FPGA_RST_CTRL bit 0 before it starts; a DMA that then times out gets a second pulse, and the
    error says so. RESET through the agent's backend pulses it too. Without an SLCR window the
    reset is refused with the reason."""
    dev, r, d, _ = hw
    program, weights, manifest = _device_and_manifest(r)
    accel = Accelerator(dev, manifest, timeout_s=0.2)
    with pytest.raises(DeviceError, match="timeout.*the fabric was reset"):
        accel.load(program, weights)
    assert dev.fabric.pulses == 2
    assert dev.slcr.read(SLCR_UNLOCK) == UNLOCK_KEY and dev.slcr.read(FPGA_RST_CTRL) == 0
    backend = AcceleratorBackend(dev)
    d.write(MM2S_CR, 0)
    d.write(S2MM_CR, 0)
    backend.reset()
    assert dev.fabric.pulses == 3
    assert d.read(MM2S_CR) == CR_RESET and d.read(S2MM_CR) == CR_RESET  # the DMA's own reset
    r.write(CTRL, 0)
    dev.slcr = None
    with pytest.raises(DeviceError, match="no fabric reset.*--slcr none"):
        accel.load(program, weights)


def test_agent_survives_a_wedged_dma(hw):
    """Over TCP: LOAD on a device whose DMA never finishes answers one device_error frame
    within the timeout; the agent keeps serving (STATUS, and a second request)."""
    from firmware import protocol as P

    dev, r, _, _ = hw
    program, weights, manifest = _device_and_manifest(r)
    agent = Agent(AcceleratorBackend(dev, timeout_s=0.3), AgentConfig(token="tok"))
    srv = agent.server("127.0.0.1", 0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        with AgentClient("127.0.0.1", srv.server_address[1], "tok") as c:
            for _ in range(2):
                t0 = time.monotonic()
                with pytest.raises(RemoteError, match="device_error.*timeout"):
                    c.request(P.Kind.LOAD, {"manifest": manifest}, program + weights)
                assert time.monotonic() - t0 < 5
            assert c.status()["backend"] == "mmio"
            wrong = dict(manifest, build_id=0x1111)
            with pytest.raises(RemoteError, match="runs build 1234abcd"):
                c.request(P.Kind.LOAD, {"manifest": wrong}, program + weights)
            wide = dict(manifest, stream=dict(manifest["stream"], beat_bits=64))
            with pytest.raises(RemoteError, match="beats are 64 bits; this agent speaks 32"):
                c.request(P.Kind.LOAD, {"manifest": wide}, program + weights)
            with pytest.raises(RemoteError, match="not_loaded"):
                c.infer(np.zeros((1, 1, 2, 2), np.int8), "fix8")
    finally:
        srv.shutdown()
        srv.server_close()


def test_agent_command_wires_the_fabric_reset(hw, tmp_path):
    """``python -m firmware.agent --device mmio`` over the files: RESET pulses FPGA_RST_CTRL
    through the SLCR window the command line names (the SLCR is unlocked and the reset released
    after); an SLCR it cannot map stops it at start with the way out."""
    import subprocess
    import sys

    from firmware import protocol as P

    dev, r, _, sysfs = hw
    base = [sys.executable, "-m", "firmware.agent", "--device", "mmio", "--host", "127.0.0.1",
            "--port", "0", "--regs", str(tmp_path / "uio0"), "--dma", str(tmp_path / "uio1"),
            "--udmabuf", str(tmp_path / "udmabuf0"), "--udmabuf-sysfs", str(sysfs)]
    env = {"SHIFTADD_TOKEN": "tok", "PATH": "/usr/bin:/bin"}
    bad = subprocess.run([*base, "--slcr", str(tmp_path / "nowhere")], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "cannot map the SLCR" in bad.stderr
    assert "--slcr none" in bad.stderr
    bad = subprocess.run([*base, "--slcr", str(tmp_path / "slcr"), "--slcr-offset", "0",
                          "--regs", str(tmp_path / "nowhere")], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "cannot map the registers" in bad.stderr
    assert "/dev/mem needs root" in bad.stderr
    bad = subprocess.run([*base, "--images-per-start", "-2"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--images-per-start must be 0 (as many as fit) or more, " \
        "not -2" in bad.stderr
    # held as long as the in-process devices' reset (the default 1 ms: FakeFabric, polling every
    # 0.5 ms in this process, missed the pulse once with both cores busy)
    agent = subprocess.Popen([*base, "--slcr", str(tmp_path / "slcr"), "--slcr-offset", "0",
                              "--reset-hold-ms", "20"],
                             env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        line = agent.stderr.readline()
        assert f"registers: accelerator {tmp_path / 'uio0'} at 0x0, DMA" in line, line
        line = agent.stderr.readline()
        assert "serving mmio on 127.0.0.1:" in line, line
        with AgentClient("127.0.0.1", int(line.rsplit(":", 1)[1]), "tok") as c:
            c.request(P.Kind.RESET)
        assert dev.fabric.pulses == 1
        assert dev.slcr.read(SLCR_UNLOCK) == UNLOCK_KEY and dev.slcr.read(FPGA_RST_CTRL) == 0
    finally:
        agent.terminate()
        agent.wait(timeout=30)
        agent.stderr.close()


def test_register_windows_default_to_the_manifests_addresses():
    """The agent maps the registers through /dev/mem at the addresses ``shiftadd bitstream``
    recorded; without them, the UIO devices; what the command line says wins."""
    from types import SimpleNamespace

    from firmware.agent import register_windows

    def args(**kw):
        return SimpleNamespace(**{"regs": None, "regs_offset": None, "dma": None,
                                  "dma_offset": None, **kw})

    manifest = {"addresses": {"accel": {"base": 0x43C0_0000, "size": 0x1_0000},
                              "dma": {"base": 0x4040_0000, "size": 0x1_0000}}}
    assert register_windows(args(), manifest) == (("/dev/mem", 0x43C0_0000),
                                                  ("/dev/mem", 0x4040_0000))
    assert register_windows(args(), {}) == (("/dev/uio0", 0), ("/dev/uio1", 0))
    assert register_windows(args(), None) == (("/dev/uio0", 0), ("/dev/uio1", 0))
    assert register_windows(args(regs="/dev/uio4", dma_offset=0x4100_0000), manifest) == \
        (("/dev/uio4", 0), ("/dev/mem", 0x4100_0000))


def test_udmabuf_is_found_under_either_drivers_class(tmp_path, monkeypatch):
    """u-dma-buf's sysfs class, or the older udmabuf driver's; with neither, the error says how
    to load one."""
    new, old = tmp_path / "class-u-dma-buf", tmp_path / "class-udmabuf"
    monkeypatch.setattr(UdmaBuffer, "CLASSES", (str(new), str(old)))
    dev = tmp_path / "udmabuf0"
    dev.write_bytes(b"\0" * 4096)
    with pytest.raises(FileNotFoundError, match="insmod u-dma-buf.ko udmabuf0=16777216"):
        UdmaBuffer(dev)
    (old / "udmabuf0").mkdir(parents=True)
    (old / "udmabuf0" / "size").write_text("4096\n")
    (old / "udmabuf0" / "phys_addr").write_text("0x1f000000\n")
    b = UdmaBuffer(dev)
    try:
        assert b.sysfs == old / "udmabuf0" and b.phys == 0x1F00_0000 and b.size == 4096
    finally:
        b.window.close()
