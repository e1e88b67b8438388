"""Cycle model of the array core and the layer engine.

A conv layer is a matrix of dot products: ``pixels x out_channels`` outputs of ``J`` terms each
(``C_in * k * k``, channels padded to whole lane groups). On an R x C x V output-stationary
:class:`hw.array.ArrayCore`, a tile is R pixels x C output channels; it takes ``ceil(J / V)``
steps, but consecutive tiles' ``last`` steps must be R cycles apart (the drain), so a tile occupies ``max(ceil(J / V), R)`` cycles. The first results
leave ``ArrayCore.latency`` cycles after the first tile's last step, and the last tile's R rows
take R cycles to leave. ``tests/test_cycle_model.py`` checks this against Verilator.

The layer engine (``hw/engine.py``) is modelled by :func:`program_timeline`: the control FSM's
fixed costs per descriptor, streaming at one beat per cycle, and each array's conv unit tile by
tile, the two units at the same time, each unit's next conv filling while its last one drains;
a conv that follows another (the other unit's, or with ``follow_own`` its own unit's last)
waits, per pixel tile, for that conv's frontier to pass the tile's last input word (and one
cycle more: its stall is a register). It equals Verilator's CYCLES
counter for every ResNet-20 conv shape and for the whole digits network with its convs
overlapped (``benchmarks/accel.py --rtl-layers``, ``shiftadd sim --idle 0 --backpressure 0``).
"""

from __future__ import annotations

import math

from hw.config import ArrayConfig
from hw.engine import WRITE_DELAY
from hw.ppu import AvgPooler, Requantizer, ResidualAdder


def core_latency(cfg: ArrayConfig) -> int:
    """``ArrayCore.latency`` computed from the configuration (same formula, no elaboration)."""
    from hw.pe import ProcessingElement

    return 1 + ProcessingElement.latency_for(cfg.pe) + cfg.rows + (cfg.cols - 1)


def tile_cycles(steps: int, rows: int) -> int:
    return max(steps, rows)


def drain_cycles(cfg) -> int:
    """Cycles a tile's results take to leave the core: its R rows, one word per cycle (a
    column's drain chain, one requantizer per column, one write port per activation replica).
    ``benchmarks/write_width.py`` replaces it to ask what a write path several words wide
    would give."""
    return cfg.rows


def schedule_cycles(tile_steps: list[int], cfg: ArrayConfig, drain_slots: int = 1) -> int:
    """Cycles from the first step entering to the last result row leaving, for back-to-back tiles
    of the given step counts (no idle input, no backpressure), on an array with ``drain_slots``
    holding registers a PE (:mod:`hw.array`).

    Tile ``k``'s last step enters at ``a[k]``: its steps after the last tile's, and at least
    ``slots * R`` cycles after tile ``k - slots``'s (one slot: ``max(steps, R)`` a tile,
    :func:`tile_cycles`). The drain chains load it a fixed latency after ``load = max(a[k],
    load + R)``: once its results are there and the chains have drained the tile before."""
    if not tile_steps:
        return 0
    r = cfg.rows
    a: list[int] = []
    load = -r
    for k, s in enumerate(tile_steps):
        t = (a[-1] if a else -1) + s
        if k >= drain_slots:
            t = max(t, a[k - drain_slots] + drain_slots * r)
        a.append(t)
        load = max(t, load + r)
    return load + core_latency(cfg) + r


# ----------------------------------------------------------------------------- the layer engine
# Fixed costs of the engine's control FSM (hw/engine.py), in cycles:
TO_DISPATCH = 4         # FETCH, LATCH, CHECK, CHECK_ALL: from a descriptor's fetch to DISPATCH
FETCH_CYCLES = TO_DISPATCH + 2  # ... DISPATCH, NEXT around every descriptor
START_CYCLES = 1        # the INFER header beat
END_CYCLES = TO_DISPATCH + 3  # to the DISPATCH of END, DISPATCH, then stop and DONE
VEC_TAIL = ResidualAdder.latency + WRITE_DELAY + 3  # SETTLE after the last item
OUTPUT_WORD_EXTRA = 3   # OUT_READ, OUT_WAIT, OUT_NEXT around each word's beats
# a tile's words are written, and a follower may read them, once its last row has left the
# core: the writer's register, the delay line (as long as the requantizer, the residual adder
# and the write-port selection together, so the last word is written) and the frontier
# register; a conv ends (its unit no longer busy) when its last tile is written
FRONTIER_DELAY = 2 + Requantizer.latency + ResidualAdder.latency + WRITE_DELAY
# a follower's stall register sees a frontier one cycle after it moves
STALL_DELAY = 1
# a unit's feeder takes the next conv two cycles after issuing a conv's last step (the core
# takes the step, then the feeder is idle), while that conv's results still drain
FEEDER_FREE = 2


def row_walk(cfg) -> int:
    """Cycles from a conv's CHECK to its walked rows (the engine walks them one per cycle from
    CHECK_ALL on): its unit takes them in that cycle and issues from the next. The next conv's
    CHECK waits for that cycle (its walk would overwrite them)."""
    return cfg.rows + 1


def tile_steps(d: dict) -> int:
    """A conv descriptor's steps per tile: the product of its loop nest's counts (ky, kx,
    word, sub-word)."""
    from hw.program import LOOP_LEVELS

    return math.prod(d.get(f"m{lvl}", 0) + 1 for lvl in range(LOOP_LEVELS))


def descriptor_cycles(d: dict, cfg) -> int:
    """Cycles one descriptor adds to a program, with the input stream never idle and the
    output never stalled (``cfg``: :class:`hw.engine.EngineConfig`): a conv what it adds
    after another conv of its kind (its fill overlaps that one's drain: the second of two
    copies back to back, from the first's end to its own, by :func:`program_timeline`, with
    nothing to follow and its pool not blocking the second); any other descriptor the engine
    from its fetch to the next fetch. Consecutive convs of the two arrays overlap too
    (:func:`program_timeline`), so a program takes less than the sum."""
    from hw.program import Opcode

    if Opcode(d["op"]) in (Opcode.SHIFT_CONV, Opcode.ADDER_CONV):
        # a barrier waits for its own unit only without follow_own (which lets it drain)
        alone = {**d, "follow": 0, "follow_own": 0, "follow_input": 0, "pool": 0,
                 "barrier": int(bool(d.get("barrier")) and not d.get("follow_own"))}
        (_, first), (_, second) = program_timeline([alone, alone], cfg)
        return second - first
    return _fixed_cycles(d, cfg)


def _fixed_cycles(d: dict, cfg) -> int:
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
    raise ValueError(f"{op.name} is not a fixed-cost descriptor")


class _ConvTimeline:
    """When one conv's feeder is free for the next conv (``free``), when its unit ends it
    (``idle``: the first cycle it is no longer in flight), its last steps (``lasts``, the
    last one ``last``) and when the drain chains took its last results (``load``), and when
    its frontier passes each pixel tile (``frontier[p]``: the first cycle a follower may read
    below it)."""

    def __init__(self, lasts: list[int], load: int, frontier: list[int], out_base: int,
                 tile_words: int, idle: int | None = None) -> None:
        self.lasts, self.load, self.frontier = lasts[-2:], load, frontier
        self.last = lasts[-1]
        self.free, self.idle = self.last + FEEDER_FREE, frontier[-1] if idle is None else idle
        self.out_base, self.tile_words = out_base, tile_words

    def ready_at(self, need: int) -> int:
        """The first cycle at which a follower may issue a step reading the word at address
        ``need``: the follower's stall is a register, set from the frontier one cycle before
        (:data:`STALL_DELAY` after the frontier passes the word); at the last tile the conv's
        end releases it instead, as the stall register sees the follower's flags clear."""
        p = (need - self.out_base) // self.tile_words
        if p < 0:
            return 0
        if p < len(self.frontier) - 1:
            return self.frontier[p] + STALL_DELAY
        return self.frontier[p] if p < len(self.frontier) else self.idle


class _InputTimeline:
    """When an ``INPUT`` dispatched at cycle ``at`` has written each word (for the conv before
    it, ``follow_input``): the word of beat ``b`` is taken at ``at + 1 + b``; a word is in its
    bank ``WRITE_DELAY + 1`` cycles after its last beat, and ``in_frontier`` shows it one
    cycle later."""

    def __init__(self, at: int, d: dict, cfg) -> None:
        self.at, self.base, self.beats = at, d["out_base"], d["in_beats"]
        self.words = d.get("m0", 0) + 1
        self.end = at - TO_DISPATCH + _fixed_cycles(d, cfg)  # the next FETCH

    def ready_at(self, need: int) -> int:
        j = need - self.base
        if j < 0:
            return 0
        return self.at + (min(j, self.words - 1) + 1) * self.beats + WRITE_DELAY + 1 + \
            STALL_DELAY


def _conv_timeline(d: dict, cfg, start: int,
                   follow: _ConvTimeline | _InputTimeline | None,
                   prev: _ConvTimeline | None = None, rows_at: int = 0) -> _ConvTimeline:
    """The unit's schedule for a conv handed to it at cycle ``start`` (DISPATCH), following
    ``follow`` (the other unit's conv) tile by tile when given; ``prev``: the unit's previous
    conv, if its results may still be draining (the core spaces ``last`` steps across convs
    too, :func:`schedule_cycles`' rule); ``rows_at``: the cycle its walked rows are there
    (:func:`row_walk`). A paired conv's tile (``pair``) is two dot products, its paired
    conv's steps first (the loop nest's two lowest levels)."""
    from hw.program import Opcode

    kind = "shift" if d["op"] == Opcode.SHIFT_CONV else "adder"
    arr = cfg.array(kind)
    R = cfg.rows
    out = drain_cycles(cfg)  # a tile's results leave in ``out`` cycles
    slots = 2 if kind in cfg.paired else 1
    steps = tile_steps(d)
    parts = [(d.get("m0", 0) + 1) * (d.get("m1", 0) + 1), steps] if d.get("pair") else [steps]
    blocks, pblks = d["m_cb"] + 1, d["m_pblk"] + 1
    lat = core_latency(arr)
    cur = max(start, rows_at) + 1  # the unit takes the walked rows, then RUN issues
    lasts = list(prev.lasts) if prev is not None else []  # the last steps so far
    load = prev.load if prev is not None else None  # the drain chains took the last results
    frontier = []
    # row R-1's window base of pixel tile p (what the engine's row walk computes)
    ow = d["wrap_sub"] // d["stride"]
    for p in range(pblks):
        if follow is not None:
            pix = p * R + R - 1
            b_in = _words_per_input_pixel(d)
            base = d["init_addr"] + (pix // ow) * d["stride"] * d["w"] * b_in + \
                (pix % ow) * d["stride"] * b_in
            cur = max(cur, follow.ready_at(min(base + d["span"], d["in_last"])))
        for _ in range(blocks):
            for n in parts:
                end = cur + n - 1
                if len(lasts) >= slots:
                    end = max(end, lasts[-slots] + slots * out)
                load = end if load is None else max(end, load + out)
                lasts, cur = [*lasts[-1:], end], end + 1
        frontier.append(load + lat + out + FRONTIER_DELAY)
    # the last tile is through at the conv's last pixel, row ``v`` (the rows after it carry
    # nothing to write); a conv with pool ends with its last pooled word, AvgPooler.latency
    # after that pixel's word
    v = d["pixels"] - 1 - (pblks - 1) * R
    if 0 <= v < R:
        frontier[-1] -= out - 1 - v * out // R
    idle = frontier[-1] + AvgPooler.latency if d.get("pool") else None
    return _ConvTimeline(lasts, load, frontier, d["out_base"], R * blocks, idle)


def _words_per_input_pixel(d: dict) -> int:
    """``b_in``: the loop nest's level-1 count (words per input pixel)."""
    return d.get("m1", 0) + 1


def program_timeline(descriptors: list[dict], cfg) -> list[tuple[int, int]]:
    """``(start, end)`` of every descriptor: the cycle it is dispatched and the cycle its work
    ends, from ``ap_start`` (the engine's CYCLES counter counts to the last ``end``)."""
    from hw.program import Opcode

    t = START_CYCLES               # the next FETCH
    # each unit's convs in flight, oldest first (at most two: one draining, one running)
    flight: dict[str, list[_ConvTimeline]] = {"shift": [], "adder": []}

    def idle(kind: str, n: int = 1) -> int:
        """The cycle from which at most ``len - n`` of the unit's convs are in flight."""
        f = flight[kind]
        return f[-n].idle if len(f) >= n else 0

    spans = []
    beside: _InputTimeline | None = None  # the INPUT a conv with follow_input runs beside
    pool_until = 0  # nothing is dispatched while a conv with pool runs
    rows_taken = 0  # a conv's CHECK waits until the last conv's unit has its walked rows
    for i, d in enumerate(descriptors):
        op = Opcode(d["op"])
        if op in (Opcode.SHIFT_CONV, Opcode.ADDER_CONV):
            kind = "shift" if op is Opcode.SHIFT_CONV else "adder"
            other = "adder" if kind == "shift" else "shift"
            mine = flight[kind]
            # the feeder free, neither unit with two convs in flight; ``barrier``: both idle
            # (the unit takes the walked rows when they are there: ``rows_at`` below)
            check = max(t + 2, rows_taken)  # FETCH, LATCH, then CHECK
            rows_taken = check + row_walk(cfg)
            at = max(check + 2, mine[-1].free if mine else 0, idle(kind, 2), idle(other, 2),
                     pool_until)
            if d.get("barrier"):  # with follow_own, this unit's last conv may still drain
                at = max(at, idle(other), 0 if d.get("follow_own") else idle(kind))
            # the engine follows a conv only if it is still running (its last cycle,
            # ``finish``, already counts as over)
            follow = flight[other][-1] if d.get("follow") and idle(other) - 1 > at else None
            if d.get("follow_own") and idle(kind) - 1 > at:
                follow = mine[-1]
            nxt = descriptors[i + 1] if i + 1 < len(descriptors) else None
            beside = None
            if d.get("follow_input") and nxt is not None and nxt["op"] == Opcode.INPUT:
                # the INPUT is fetched right after this dispatch and does not wait for it
                beside = follow = _InputTimeline(at + 2 + TO_DISPATCH, nxt, cfg)
            tl = _conv_timeline(d, cfg, at, follow, mine[-1] if mine else None, rows_taken)
            flight[kind] = [*(c for c in mine if c.idle > at), tl][-2:]
            if d.get("pool"):
                pool_until = tl.idle
            spans.append((at, tl.idle))
            t = at + 2
        elif op is Opcode.INPUT and beside is not None:
            spans.append((beside.at, beside.end))
            t, beside = beside.end, None
        else:
            at = max(t + TO_DISPATCH, idle("shift"), idle("adder"))
            end = at - TO_DISPATCH + _fixed_cycles(d, cfg)
            spans.append((at, end))
            t = end
    return spans


def program_cycles(descriptors: list[dict], cfg) -> int:
    """Cycles from ``ap_start`` to ``ap_done`` for one image (the engine's CYCLES counter)."""
    return max(end for _, end in program_timeline(descriptors, cfg))


def conv_ceilings(d: dict, cfg, terms: int, out_channels: int) -> dict[str, float]:
    """What a conv's mapping onto the array allows its PE utilization to reach, one bound per
    cause (their product bounds the mapping; the fill, the drain and waiting for other convs
    take the rest): ``rows``, the pixels over the tiles' rows (the last tile's unused rows);
    ``columns``, the output channels over the channel blocks' columns; ``lanes``, the terms
    of an output (``C_in * k * k``) over its steps' lanes (input channels padded to whole
    lane groups); ``writes``, steps over ``max(steps, R)``: a tile's R results leave one
    word per cycle, so a tile of fewer steps than rows waits for its writes."""
    steps = tile_steps(d)
    blocks, tiles = d["m_cb"] + 1, d["m_pblk"] + 1
    return {"rows": d["pixels"] / (tiles * cfg.rows),
            "columns": out_channels / (blocks * cfg.cols),
            "lanes": terms / (steps * cfg.lanes),
            "writes": steps / max(steps, cfg.rows)}


def conv_utilization(d: dict, cfg, lane_ops: int) -> float:
    """Ideal lane operations / (the cycles the conv descriptor adds to a program,
    :func:`descriptor_cycles`, x lanes of its array)."""
    return lane_ops / (descriptor_cycles(d, cfg) * cfg.rows * cfg.cols * cfg.lanes)
