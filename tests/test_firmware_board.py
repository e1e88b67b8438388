"""The board side without a board: FPGA-manager loading over a temporary sysfs tree, and the
memory-mapped device (registers, AXI DMA simple mode, u-dma-buf) over mmap-ed files, including
a DMA that never completes, served by the real agent over TCP."""

from __future__ import annotations

import hashlib
import threading
import time

import numpy as np
import pytest

from firmware.agent import AcceleratorBackend, Agent, AgentConfig
from firmware.bitstream import SYNC, bit_to_bin, build_bit
from firmware.driver import DeviceError
from firmware.fpga import FpgaError
from firmware.mmio import (
    CR_RESET,
    MM2S_CR,
    MM2S_LEN,
    MM2S_SA,
    MM2S_SR,
    S2MM_CR,
    S2MM_DA,
    S2MM_LEN,
    S2MM_SR,
    SR_IDLE,
    MmioDevice,
    UdmaBuffer,
    Window,
)
from host.client import AgentClient, RemoteError
from hw.regmap import MAGIC, REGMAP
from sim.emulated import EmulatedFpgaManager

PHYS = 0x1F00_0000


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
    with pytest.raises(FpgaError, match="no FPGA manager"):
        type(mgr)(tmp_path / "nowhere", fw).state()


@pytest.fixture
def hw(tmp_path):
    """Register windows and a u-dma-buf, all plain files."""
    regs, dma, buf = tmp_path / "uio0", tmp_path / "uio1", tmp_path / "udmabuf0"
    for f, size in ((regs, 0x10000), (dma, 0x10000), (buf, 1 << 20)):
        f.write_bytes(b"\0" * size)
    sysfs = tmp_path / "udmabuf-sysfs"
    sysfs.mkdir()
    (sysfs / "size").write_text(f"{1 << 20}\n")
    (sysfs / "phys_addr").write_text(f"{PHYS:#x}\n")
    for knob in ("sync_offset", "sync_size", "sync_direction", "sync_for_device",
                 "sync_for_cpu"):
        (sysfs / knob).write_text("0\n")
    r, d = Window(regs), Window(dma)
    dev = MmioDevice(r, d, UdmaBuffer(buf, sysfs))
    yield dev, r, d, sysfs
    dev.buf.window.close()
    r.close()
    d.close()


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


def test_dma_round_trip_with_a_fake_engine(hw):
    """A thread plays the DMA + accelerator: when both lengths are written it 'streams' the
    send buffer back reversed into the receive buffer and sets the idle bits."""
    dev, _, d, _ = hw
    stop = threading.Event()

    def engine() -> None:
        while not stop.is_set():
            if d.read(MM2S_LEN) and d.read(S2MM_LEN):
                n, m = d.read(MM2S_LEN), d.read(S2MM_LEN)
                src = bytes(dev.buf.view[d.read(MM2S_SA) - PHYS:][:n])
                off = d.read(S2MM_DA) - PHYS
                dev.buf.view[off:off + m] = src[::-1][:m]
                d.write(MM2S_SR, SR_IDLE)
                d.write(S2MM_SR, SR_IDLE)
                return
            time.sleep(0.001)

    th = threading.Thread(target=engine)
    th.start()
    out = dev.dma(bytes(range(64)), 64, timeout_s=5)
    stop.set()
    th.join()
    assert out == bytes(range(64))[::-1]
    d.write(MM2S_SR, 1 << 5)  # a slave error is decoded, not ignored
    with pytest.raises(DeviceError, match="DMASlvErr"):
        dev.dma(b"\0" * 4, 0, timeout_s=5)


def test_agent_survives_a_wedged_dma(hw):
    """Over TCP: LOAD on a device whose DMA never finishes answers one device_error frame
    within the timeout; the agent keeps serving (STATUS, and a second request)."""
    from firmware import protocol as P

    dev, r, _, _ = hw
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
