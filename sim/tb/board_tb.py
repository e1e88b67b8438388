"""The emulated board (``shiftadd board emulate``): the agent serving TCP inside the simulation
of the generated accelerator. Configuration: ``host``, ``port``, ``token``, ``ready`` (a file
written with the bound port once the agent listens), ``idle``, ``backpressure``."""

from __future__ import annotations

import threading

import cocotb
from cocotb.task import bridge

from firmware.agent import AcceleratorBackend, Agent, AgentConfig
from sim.emulated import EmulatedDevice, EmulatedFpgaManager
from sim.tb.common import tb_config
from sim.tb.engine_tb import EngineTB


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
    agent = Agent(AcceleratorBackend(device), AgentConfig(token=cfg["token"]))
    server = agent.server(cfg.get("host", "127.0.0.1"), int(cfg.get("port", 0)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    dut._log.info("emulated board serving on %s:%d", cfg.get("host", "127.0.0.1"), port)
    if cfg.get("ready"):
        with open(cfg["ready"], "w") as f:
            f.write(str(port))
    await bridge(device.serve)()  # until the process is stopped
