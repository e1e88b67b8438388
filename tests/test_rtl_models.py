"""The clock-driven stream models, proven on their own against a real FIFO in Verilator."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from amaranth import Module
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from sim import rtl
from sim.tools import ToolError


class StreamFIFO(wiring.Component):
    """A stream loopback through amaranth.lib.fifo (the DUT for the model self-test)."""

    def __init__(self, width: int, depth: int) -> None:
        self._width, self._depth = width, depth
        super().__init__({"i": In(stream.Signature(width)), "o": Out(stream.Signature(width))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = f = fifo.SyncFIFOBuffered(width=self._width, depth=self._depth)
        m.d.comb += [f.w_data.eq(self.i.payload), f.w_en.eq(self.i.valid),
                     self.i.ready.eq(f.w_rdy), self.o.payload.eq(f.r_data),
                     self.o.valid.eq(f.r_rdy), f.r_en.eq(self.o.ready)]
        return m


def test_stream_models_with_idle_and_backpressure(seed):
    width, depth = 72, 4  # wider than 64 bits on purpose: payloads are Python ints
    build = rtl.build(lambda: StreamFIFO(width, depth), "stream_fifo",
                      {"width": width, "depth": depth})
    rtl.run(build, "sim.tb.models_tb", {"width": width, "items": 300}, seed=seed)


def test_a_build_says_how_far_it_is_and_when_it_waits(tmp_path, monkeypatch):
    """A long build's heartbeat names its stage from its files; a second caller of the same
    configuration says it waits for the first, then reuses its build."""
    import threading

    monkeypatch.setattr(rtl, "BUILD_ROOT", tmp_path)
    obj = tmp_path / "obj"
    obj.mkdir()
    assert rtl.build_stage(obj) == "Verilator: Verilog -> C++"
    for stem in ("Vtop", "Vtop__Syms", "Vtop___024root__0"):
        (obj / f"{stem}.cpp").write_text("")
    (obj / "Vtop.o").write_text("")
    (obj / "verilated.o").write_text("")  # the run-time library: not one of the build's files
    assert rtl.build_stage(obj) == "g++: 1 of 3 C++ files compiled"

    first, second = [], []
    key = {"width": 8, "depth": 2}
    t = threading.Thread(target=lambda: rtl.build(lambda: StreamFIFO(8, 2), "fifo", key,
                                                  progress=first.append, every=0.2))
    t.start()
    while not list(tmp_path.glob("fifo-*/key.json")):  # the first build holds the lock
        assert t.is_alive()
        threading.Event().wait(0.05)
    b = rtl.build(lambda: StreamFIFO(8, 2), "fifo", key, progress=second.append)
    t.join()
    assert b.cached and any("waiting for another process building" in m for m in second)
    stages = [m for m in first if m.startswith("  still building: ")]
    assert stages and all(("Verilator" in m) or ("g++: " in m) for m in stages)
    assert any("g++: " in m for m in stages), first


# ``y = a &`` is no Verilog: Verilator refuses it on line 2
BROKEN = "module top(input wire a, output wire y);\n  assign y = a &;\nendmodule\n"


def test_a_design_verilator_refuses_fails_with_its_errors_and_log(tmp_path, monkeypatch):
    """A failed build raises one message with Verilator's first error (file and line) and the
    path of its whole log, not the runner's bare exit status; the next build starts over."""
    monkeypatch.setattr(rtl, "BUILD_ROOT", tmp_path)
    for _ in range(2):
        with pytest.raises(rtl.BuildError) as e:
            rtl.build(lambda: BROKEN, "broken", {"case": "syntax"})
        msg = str(e.value)
        assert "failed (Command failed with return code: 1): %Error" in msg, msg
        assert "top.v:2:" in msg and msg.endswith("build.log)"), msg
        log = msg.rsplit("(whole log: ", 1)[1][:-1]
        assert "%Error" in Path(log).read_text()
        assert not list(tmp_path.glob("broken-*/built.json"))


def test_a_build_without_a_compiler_names_what_to_install(tmp_path, monkeypatch):
    """On a PATH with make and Perl but no g++, a build stops before it converts or writes
    anything, with the tool and its Debian package named."""
    monkeypatch.setattr(rtl, "BUILD_ROOT", tmp_path / "build")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("make", "perl"):
        (bindir / tool).symlink_to(shutil.which(tool))
    monkeypatch.setenv("PATH", str(bindir))
    with pytest.raises(ToolError, match=r"^g\+\+ not found, which a Verilator build needs: "
                                        r"apt-get install g\+\+ "):
        rtl.build(lambda: BROKEN, "no_compiler", {"case": "no g++"})
    assert not [p for p in (tmp_path / "build").iterdir() if p.is_dir()]  # nothing started


class UnwrittenMemory(wiring.Component):
    """A memory without contents and without a write port, read asynchronously."""

    def __init__(self, depth: int) -> None:
        self._depth = depth
        super().__init__({"addr": In(range(depth)), "data": Out(32)})

    def elaborate(self, platform):
        from amaranth.lib.memory import Memory

        m = Module()
        m.submodules.mem = mem = Memory(shape=32, depth=self._depth, init=[])
        rd = mem.read_port(domain="comb")
        m.d.comb += [rd.addr.eq(self.addr), self.data.eq(rd.data)]
        return m


def test_unwritten_memories_start_random(seed):
    """Every simulation starts its memories with random contents, as a board's hold what the
    last design left: a design that reads a word it has not written shows it."""
    build = rtl.build(lambda: UnwrittenMemory(8), "unwritten_memory", {"depth": 8})
    rtl.run(build, "sim.tb.memory_tb", {"depth": 8}, seed=seed)
