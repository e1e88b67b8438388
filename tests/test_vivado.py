"""The generated Vivado project script, executed by tclsh against a recording stand-in of every
Vivado command it uses (Vivado itself is not installed here), and ``shiftadd bitstream``."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import needs_tool

from firmware.bitstream import SYNC, SYNC_SWAPPED
from firmware.bitstream import build_bit as make_bit

STANDIN = Path(__file__).with_name("data") / "vivado_standin.tcl"
needs_tool("tclsh")


@pytest.fixture(scope="module")
def out(tmp_path_factory, quick_digits) -> Path:
    from gen.cli import main

    d = tmp_path_factory.mktemp("viv") / "out"
    assert main(["gen", str(quick_digits), "-o", str(d), "--rows", "2", "--cols", "8",
                 "--lanes", "8", "--clock-mhz", "167"]) == 0
    return d


def run_standin(out: Path, tmp: Path, script: Path | None = None, env: dict | None = None):
    log, bit = tmp / "standin.log", tmp / "fake.bit"
    bit.write_bytes(make_bit(b"\xff" * 8 + SYNC + b"\x20\x00\x00\x00" * 4))
    r = subprocess.run(["tclsh", str(STANDIN), "-mode", "batch", "-source",
                        str(script or out / "vivado" / "build.tcl")],
                       env={**os.environ, "STANDIN_LOG": str(log), "STANDIN_BIT": str(bit),
                            **(env or {})},
                       capture_output=True, text=True, timeout=120)
    lines = log.read_text().splitlines() if log.exists() else []
    return r, lines


@pytest.mark.parametrize("layout", ["gen", "srcs"])
def test_script_runs_every_step(out, tmp_path, layout):
    """``layout``: where the project keeps generated files, ``.gen/`` (Vivado 2020.2 on) or
    ``.srcs/`` (before): the hand-off file is found in either."""
    for f in ("shiftadd.hwh", "shiftadd.bit"):
        (out / "vivado" / f).unlink(missing_ok=True)
    r, lines = run_standin(out, tmp_path, env={"STANDIN_SRCS": "1"} if layout == "srcs" else {})
    assert r.returncode == 0, r.stderr + r.stdout
    text = "\n".join(lines)
    assert lines[-1] == "done"
    for want in ["create_project | shiftadd", "xc7z045ffg900-2",
                 "set_property | board_part | xilinx.com:zc706:part0:1.4",  # the newest
                 "create_bd_cell | ip | xilinx.com:ip:processing_system7 | ps7",
                 "apply_board_preset", "CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ | 167",
                 "CONFIG.PCW_USE_S_AXI_HP0 | 1", "CONFIG.PCW_USE_M_AXI_GP0 | 1",
                 "create_bd_cell | ip | xilinx.com:ip:axi_dma | dma",
                 "CONFIG.c_include_sg | 0", "CONFIG.c_sg_length_width | 26",
                 "create_bd_cell | module | shiftadd_top | accel",
                 "Master \"/ps7/M_AXI_GP0\" Slave \"/accel/s_axi\"",
                 "Master \"/dma/M_AXI_MM2S\" Slave \"/ps7/S_AXI_HP0\"",
                 "connect_bd_intf_net | intf:dma/M_AXIS_MM2S | intf:accel/s_axis",
                 "connect_bd_intf_net | intf:accel/m_axis | intf:dma/S_AXIS_S2MM",
                 "connect_bd_net | pin:ps7/FCLK_CLK0 | pin:accel/aclk",
                 "assign_bd_address", "validate_bd_design", "make_wrapper",
                 "launch_runs | synth_1", "launch_runs | impl_1 | write_bitstream",
                 "report_utilization", "report_timing_summary", "write_hw_platform"]:
        assert want in text, f"missing from the Vivado flow: {want}"
    order = [next(i for i, ln in enumerate(lines) if ln.startswith(s)) for s in
             ("create_project", "create_bd_design", "assign_bd_address", "make_wrapper",
              "launch_runs | synth_1", "launch_runs | impl_1", "write_hw_platform")]
    assert order == sorted(order)
    for f in ("shiftadd.bit", "shiftadd.xsa", "shiftadd.hwh", "utilization.rpt", "timing.rpt"):
        assert (out / "vivado" / f).exists(), f


@pytest.mark.parametrize("mutation", [("accel/s_axis]", "accel/s_axis_in]"),
                                      ("axi_dma dma", "axi_dma2 dma"),
                                      ("assign_bd_address\n", "assing_bd_address\n"),
                                      ("-to_step write_bitstream", "-to_step route_design"),
                                      ("validate_bd_design\n", "\n")])
def test_standin_catches_mistakes(out, tmp_path, mutation):
    """A typo or a missing step in the script fails under the stand-in."""
    script = tmp_path / "build.tcl"
    text = (out / "vivado" / "build.tcl").read_text()
    assert mutation[0] in text
    script.write_text(text.replace(mutation[0], mutation[1], 1).replace(
        "[file dirname [info script]]", f"{{{out / 'vivado'}}}"))
    r, lines = run_standin(out, tmp_path, script)
    assert r.returncode != 0 and (not lines or lines[-1] != "done")


def test_bitstream_command(out, tmp_path):
    from gen.cli import main
    from gen.generate import load_outdir

    env_path = os.environ["PATH"]
    try:
        os.environ["PATH"] = str(tmp_path)  # no vivado anywhere
        assert main(["bitstream", str(out)]) == 1
    finally:
        os.environ["PATH"] = env_path
    # a `vivado` that is the stand-in: the command runs the script, converts and records
    fake = tmp_path / "bin" / "vivado"
    fake.parent.mkdir()
    bit = tmp_path / "fake.bit"
    bit.write_bytes(make_bit(b"\xff" * 8 + SYNC + b"\x20\x00\x00\x00" * 4))
    fake.write_text(f"#!/bin/sh\nSTANDIN_LOG={tmp_path}/log STANDIN_BIT={bit} "
                    f"exec tclsh {STANDIN} \"$@\"\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    r = subprocess.run([sys.executable, "-m", "gen.cli", "bitstream", str(out), "--json"],
                       env={**os.environ, "PATH": f"{fake.parent}:{env_path}"},
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    manifest, _, _ = load_outdir(out)  # checks every sha256, now including the .bin
    assert manifest["bitstream"]["sha256"] == info["sha256"]
    # the register addresses the block design assigned, from its hand-off file
    assert manifest["addresses"] == {"accel": {"base": 0x43C0_0000, "size": 0x1_0000},
                                     "dma": {"base": 0x4040_0000, "size": 0x1_0000}}
    assert SYNC_SWAPPED in (out / "shiftadd.bin").read_bytes()
    # the timing summary: met here (the stand-in's WNS is +0.125 ns); FCLK0 is the 1000 MHz
    # I/O PLL over 6, not the 167 MHz asked for: recorded and said
    assert manifest["bitstream"]["wns_ns"] == 0.125 and manifest["bitstream"]["timing_met"]
    assert info["timing_met"] and "timing NOT met" not in r.stderr
    assert manifest["bitstream"]["fclk0_mhz"] == info["fclk0_mhz"] == 166.666667
    assert "WARNING: FCLK0 runs at 166.667 MHz, not the 167 MHz" in r.stderr
    assert "throughput scales by 0.998" in r.stderr

    # not met: recorded, warned with the clock the same paths meet, and deploy refuses it
    # before connecting
    fake.write_text(f"#!/bin/sh\nSTANDIN_WNS=-0.3 STANDIN_LOG={tmp_path}/log "
                    f"STANDIN_BIT={bit} exec tclsh {STANDIN} \"$@\"\n")
    r = subprocess.run([sys.executable, "-m", "gen.cli", "bitstream", str(out)],
                       env={**os.environ, "PATH": f"{fake.parent}:{env_path}"},
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    want = round(1000 / (1000 / 166.666667 + 0.3), 1)  # at the clock the PS makes
    assert "timing NOT met (WNS -0.300 ns)" in r.stdout
    assert "WARNING: timing NOT met (WNS -0.300 ns)" in r.stderr
    assert f"meet {want:g} MHz: `shiftadd gen ... --clock-mhz {int(want)}`" in r.stderr
    assert load_outdir(out)[0]["bitstream"]["max_clock_mhz"] == want
    r = subprocess.run([sys.executable, "-m", "gen.cli", "deploy", str(out), "--board",
                        "127.0.0.1:1", "--token", "t"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 1 and "did not meet timing (WNS -0.300 ns)" in r.stderr
    assert "--allow-timing-violation" in r.stderr and "connecting" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "gen.cli", "deploy", str(out), "--board",
                        "127.0.0.1:1", "--token", "t", "--allow-timing-violation"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "cannot reach 127.0.0.1:1" in r.stderr  # it went on


def test_register_addresses_need_one_range_per_instance(tmp_path):
    """The hand-off file must give the accelerator and the DMA one register range each, as
    the PS sees them; anything else is an error naming the instance or the file."""
    from gen.vivado import register_addresses

    hwh = tmp_path / "system.hwh"
    text = (STANDIN.read_text().split("puts $f {", 1)[1].split("</EDKSYSTEM>}", 1)[0]
            + "</EDKSYSTEM>")
    hwh.write_text(text)
    assert register_addresses(hwh)["accel"] == {"base": 0x43C0_0000, "size": 0x1_0000}
    for broken, message in (
            (text.replace('INSTANCE="accel" IS_DATA', 'INSTANCE="other" IS_DATA'),
             "one register range of /accel, found 0"),
            (text.replace('BASEVALUE="0x40400000"', 'BASEVALUE="0x4040zz00"'),
             "/dma's range '0x4040zz00'"),
            (text[:200], "not a readable hand-off file")):
        hwh.write_text(broken)
        with pytest.raises(RuntimeError, match=message):
            register_addresses(hwh)


def test_timing_summary_and_the_clock_the_ps_made(tmp_path):
    """``timing``: the slack against the clock FCLK0 really runs at; ``clock_differs`` says
    when that clock is not the one the design was generated for (more than 0.1 % off)."""
    from gen.vivado import clock_differs, timing

    p = tmp_path / "timing.json"
    p.write_text('{"wns_ns": -0.5, "clock_mhz": 190, "fclk0_mhz": 200.000000}')
    t = timing(p, 190.0)
    assert t == {"wns_ns": -0.5, "timing_met": False, "fclk0_mhz": 200.0,
                 "max_clock_mhz": round(1000 / 5.5, 1)}
    assert clock_differs(t, 190.0) and not clock_differs(t, 200.0)
    assert not clock_differs({"fclk0_mhz": 199.9999}, 200.0)
    for text in ('{"wns_ns": null, "clock_mhz": 200}',  # a script from before FCLK0's record
                 '{"wns_ns": null, "clock_mhz": 200, "fclk0_mhz": null}'):  # none read
        p.write_text(text)
        assert timing(p, 200.0) == {"wns_ns": None, "timing_met": None, "fclk0_mhz": 200.0}
    for bad in ("", "[]", '{"clock_mhz": 200}', '{"wns_ns": 0, "fclk0_mhz": "fast"}'):
        p.write_text(bad)
        with pytest.raises(RuntimeError, match="no timing summary"):
            timing(p, 200.0)

