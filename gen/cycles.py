"""Cycle model of the array core and the layer engine.

A conv layer is a matrix of dot products: ``pixels x out_channels`` outputs of ``J`` terms each
(``C_in * k * k``, channels padded to whole lane groups). On an R x C x V output-stationary
:class:`hw.array.ArrayCore`, a tile is R pixels x C output channels; it takes ``ceil(J / V)``
steps, but consecutive tiles' ``last`` steps must be R cycles apart (the drain), so a tile occupies ``max(ceil(J / V), R)`` cycles. The first results
leave ``ArrayCore.latency`` cycles after the first tile's last step, and the last tile's R rows
take R cycles to leave. ``tests/test_cycle_model.py`` checks this against Verilator.

The layer engine (``hw/engine.py``) is modelled by :func:`program_cycles`: the array-core
schedule of each conv plus the engine's fixed costs per descriptor, and streaming at one beat per
cycle. It equals Verilator's CYCLES counter for every ResNet-20 conv shape and the whole digits
network (``benchmarks/accel.py --rtl-layers``, ``shiftadd sim --idle 0 --backpressure 0``).
"""

from __future__ import annotations

import math

from hw.config import ArrayConfig
from hw.ppu import ResidualAdder


def core_latency(cfg: ArrayConfig) -> int:
    """``ArrayCore.latency`` computed from the configuration (same formula, no elaboration)."""
    from hw.pe import ProcessingElement

    return ProcessingElement.latency_for(cfg.pe) + cfg.rows + (cfg.cols - 1)


def tile_cycles(steps: int, rows: int) -> int:
    return max(steps, rows)


def schedule_cycles(tile_steps: list[int], cfg: ArrayConfig) -> int:
    """Cycles from the first step entering to the last result row leaving, for back-to-back tiles
    of the given step counts (no idle input, no backpressure)."""
    if not tile_steps:
        return 0
    r = cfg.rows
    # first tile: its steps; every later tile's last step waits for the drain spacing
    body = tile_steps[0] + sum(tile_cycles(s, r) for s in tile_steps[1:])
    return body + core_latency(cfg) + r - 1


# ----------------------------------------------------------------------------- the layer engine
# Fixed costs of the engine's control FSM (hw/engine.py), in cycles:
FETCH_CYCLES = 4        # FETCH, LATCH, DISPATCH, NEXT around every descriptor
START_CYCLES = 1        # the INFER header beat
END_CYCLES = 5          # FETCH, LATCH, DISPATCH of END, then stop and DONE
CONV_TAIL = 2 + 6       # core input register + writer flag, then SETTLE (requant latency + 3)
RES_TAIL = ResidualAdder.latency  # a conv with ``res``: the residual adders after the requant
VEC_TAIL = 5            # SETTLE after the last item (post-processing latency + 3)
OUTPUT_WORD_EXTRA = 3   # OUT_READ, OUT_WAIT, OUT_NEXT around each word's beats


def descriptor_cycles(d: dict, cfg) -> int:
    """Cycles one descriptor occupies the engine (``cfg``: :class:`hw.engine.EngineConfig`),
    with the input stream never idle and the output never stalled."""
    from hw.program import LOOP_LEVELS, Opcode, beats_per_word

    op = Opcode(d["op"])
    counts = [d.get(f"m{lvl}", 0) + 1 for lvl in range(LOOP_LEVELS)]
    bpw = beats_per_word(cfg.word_bits)
    if op is Opcode.END:
        return END_CYCLES
    if op is Opcode.INPUT:
        return FETCH_CYCLES + counts[0] * d["in_beats"]
    if op is Opcode.OUTPUT:
        return FETCH_CYCLES + counts[0] * (bpw + OUTPUT_WORD_EXTRA)
    if op in (Opcode.ADD, Opcode.AVGPOOL):
        return FETCH_CYCLES + math.prod(counts) + VEC_TAIL
    kind = "shift" if op is Opcode.SHIFT_CONV else "adder"
    arr = cfg.array(kind)
    steps = math.prod(counts[:4])
    tiles = (d["m_pblk"] + 1) * (d["m_cb"] + 1)
    return (FETCH_CYCLES + cfg.rows + schedule_cycles([steps] * tiles, arr) + CONV_TAIL +
            RES_TAIL * d.get("res", 0))


def program_cycles(descriptors: list[dict], cfg) -> int:
    """Cycles from ``ap_start`` to ``ap_done`` for one image (the engine's CYCLES counter)."""
    return START_CYCLES + sum(descriptor_cycles(d, cfg) for d in descriptors)


def conv_utilization(d: dict, cfg, lane_ops: int) -> float:
    """Ideal lane operations / (cycles the conv descriptor takes x lanes of its array)."""
    return lane_ops / (descriptor_cycles(d, cfg) * cfg.rows * cfg.cols * cfg.lanes)
