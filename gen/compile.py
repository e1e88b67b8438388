"""Compile an integer network for the layer engine: layer program, memory images, tensor layout.

* Each conv is fused with the ``requant`` that consumes it (the accumulator never leaves the
  array); ``add`` and ``avgpool`` are vector descriptors; ``INPUT``/``OUTPUT`` move the network's
  input and output over the stream; ``END`` finishes.
* Activations live in two banks of ``C``-channel words (HWC, channels zero-padded to whole
  words): the adder array's input bank and the main one (:func:`tensor_banks`), so that the
  two arrays can run consecutive convs at the same time (:func:`overlap_flags`); tensors are
  placed by first-fit over their live ranges, so memory is reused.
* Weights are laid out in exactly the order the array consumes them: per conv, per output block
  of ``C`` channels, per step ``(ky, kx, word, sub-word)``, one word of ``C`` columns x ``V``
  lanes. Padded channels get weight 0 (adder) or sign 0 (shift), which contribute nothing.

Everything here is plain integer bookkeeping; ``hw/program.py`` defines the formats and
``hw/engine.py`` runs them.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import numpy as np

from gen.ir import Add, AdderConv, AvgPool, IntegerNetwork, Requant, ShiftConv
from gen.numerics import ENGINE_MULT_BITS, SHIFT_LIMIT, floor_requant, pool_shift, signed_bits
from hw.engine import (
    BANK_ADDER,
    BANK_MAIN,
    IN_FLIGHT,
    POOL_PORTS,
    RESIDUAL_MARGIN,
    EngineConfig,
)
from hw.program import LOOP_LEVELS, MemoryId, Opcode, beats_per_word, pack_descriptor
from sim.pack import pack, shift_weight, to_bits

ADD_SHIFT_MAX = EngineConfig.add_shift_max  # the residual adder's shift range (default)


class CompileError(ValueError):
    """The network cannot run on this engine configuration (the message says why)."""


@dataclass(frozen=True)
class Geometry:
    """What the compiler needs to know of the engine before it is fully sized."""

    rows: int
    cols: int
    lanes: int

    @property
    def subwords(self) -> int:
        return self.cols // self.lanes


def words_per_pixel(channels: int, cols: int) -> int:
    return -(-channels // cols)


def tensor_words(shape: tuple[int, int, int], cols: int) -> int:
    c, h, w = shape
    return h * w * words_per_pixel(c, cols)


def input_beats(channels: int, cols: int, data_bits: int) -> int:
    """Stream beats that carry one word of the input tensor (the ``INPUT`` descriptor's
    ``in_beats``): the bits of its real channels, rounded up to whole beats. A tensor narrower
    than a word sends only those (3 FIX8 channels: 1 beat, not ``cols * 8 / 32``); the engine
    zero-fills the rest."""
    return beats_per_word(min(channels, cols) * data_bits)


@dataclass
class Step:
    """One descriptor's worth of work (before addresses are known)."""

    op: Opcode
    name: str
    inputs: tuple[str, ...]
    output: str | None
    conv: ShiftConv | AdderConv | None = None
    requant: Requant | None = None
    node: Add | AvgPool | None = None  # the add or avgpool; with a conv: the add fused into it
    pool: AvgPool | None = None  # with a conv: the global average pool fused into it
    pair: Step | None = None  # with a conv: a 1x1 conv run in its tiles (:func:`pair_steps`)

    @property
    def reads(self) -> tuple[str, ...]:
        """The tensors the step reads, its paired conv's input included."""
        return self.inputs + (self.pair.inputs if self.pair is not None else ())

    @property
    def writes(self) -> tuple[str, ...]:
        """The tensors the step writes, its paired conv's output included."""
        return tuple(t for t in (self.output, self.pair.output if self.pair else None)
                     if t is not None)


def _work(net: IntegerNetwork, op) -> int:
    """Lane operations of a conv (output values x input channels x kernel taps); 0 otherwise."""
    if not isinstance(op, ShiftConv | AdderConv):
        return 0
    c_out, oh, ow = net.tensors[op.output].shape
    return c_out * oh * ow * net.tensors[op.inputs[0]].shape[0] * op.kernel ** 2


def schedule(net: IntegerNetwork, short_branches_first: bool = False) -> list:
    """The order the engine runs ``net``'s ops in: the network's own, or with
    ``short_branches_first``, of the two branches into each add the one with less work first
    (as soon as its input exists).

    The add then fuses into the longer branch's last conv, which the next layer's convs follow
    at once: with the short branch last (a ResNet downsample), the next block's first shift
    conv waits for that branch's short adder conv, and the adder array for that shift conv's
    first tiles (184 cycles per ResNet-20 image at 10x16x16). Which order is faster depends on
    the network and the geometry (digits at 4x16x8 is faster in its own): the generator
    compiles both and keeps the faster (``gen.generate.design_for``)."""
    ops = list(net.ops)
    if not short_branches_first:
        return ops
    producer = {op.output: op for op in ops}
    above: dict[str, set[str]] = {}  # op -> every op it depends on, itself included
    for op in ops:
        above[op.name] = {op.name}.union(*(above[producer[t].name] for t in op.inputs
                                           if t in producer))
    first: set[str] = set()
    for op in ops:
        if isinstance(op, Add) and all(t in producer for t in op.inputs):
            a, b = (above[producer[t].name] for t in op.inputs)
            only = [a - b, b - a]
            if all(only):
                work = [sum(_work(net, o) for o in ops if o.name in side) for side in only]
                first |= only[work[1] < work[0]]
    # a topological order that takes, of the ops whose inputs exist, a short branch's first
    # and otherwise the network's order
    waiting = {i: sum(t in producer for t in op.inputs) for i, op in enumerate(ops)}
    users: dict[str, list[int]] = {}
    for i, op in enumerate(ops):
        for t in op.inputs:
            users.setdefault(t, []).append(i)
    ready = [(ops[i].name not in first, i) for i, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, i = heapq.heappop(ready)
        order.append(ops[i])
        for j in users.get(ops[i].output, []):
            waiting[j] -= 1
            if waiting[j] == 0:
                heapq.heappush(ready, (ops[j].name not in first, j))
    return order


def has_branches(net: IntegerNetwork) -> bool:
    """Whether an add of ``net`` joins two branches of ops (so that :func:`schedule` has a
    choice)."""
    return [op.name for op in schedule(net, True)] != [op.name for op in net.ops]


def fuse(net: IntegerNetwork, short_branches_first: bool = False) -> list[Step]:
    """The network as engine steps, in :func:`schedule`'s order: conv + requant fused (and the
    add right after, when that conv makes one of its operands and nothing else reads it, and
    then a global average pool of the result, when nothing else reads that), add, avgpool."""
    consumers: dict[str, list] = {}
    for op in net.ops:
        for t in op.inputs:
            consumers.setdefault(t, []).append(op)
    steps = [Step(Opcode.INPUT, "input", (), net.input)]
    skip = set()
    for op in schedule(net, short_branches_first):
        if op.name in skip:
            continue
        if isinstance(op, ShiftConv | AdderConv):
            users = consumers.get(op.output, [])
            if len(users) != 1 or not isinstance(users[0], Requant) or op.output == net.output:
                raise CompileError(f"{op.name}: a conv's accumulator must feed exactly one "
                                   "requant (the engine fuses them)")
            rq = users[0]
            skip.add(rq.name)
            kind = Opcode.SHIFT_CONV if isinstance(op, ShiftConv) else Opcode.ADDER_CONV
            steps.append(Step(kind, op.name, op.inputs, rq.output, conv=op, requant=rq))
        elif isinstance(op, Add):
            prev = steps[-1]
            others = [t for t in op.inputs if t != prev.output]
            if prev.conv is not None and prev.node is None and prev.pool is None and \
                    len(others) == 1 and len(consumers[prev.output]) == 1 and \
                    prev.output != net.output:
                # the add follows the conv that makes one of its operands, that operand's only
                # user: the conv's writer adds the other one (no pass of its own over memory)
                prev.inputs, prev.output, prev.node = (*prev.inputs, others[0]), op.output, op
                continue
            steps.append(Step(Opcode.ADD, op.name, op.inputs, op.output, node=op))
        elif isinstance(op, AvgPool):
            prev = steps[-1]
            _, h, w = net.tensors[op.inputs[0]].shape
            if prev.conv is not None and prev.pool is None and op.inputs[0] == prev.output and \
                    op.kernel == h == w and len(consumers[prev.output]) == 1 and \
                    prev.output != net.output:
                # a global pool of a conv's output, its only reader: the conv's words are
                # summed as they leave the array, never stored (no pass of its own either)
                prev.output, prev.pool = op.output, op
                continue
            steps.append(Step(Opcode.AVGPOOL, op.name, op.inputs, op.output, node=op))
        else:
            raise CompileError(f"{op.name}: a {op.kind} that does not follow a conv cannot run "
                               "on the engine")
    steps.append(Step(Opcode.OUTPUT, "output", (net.output,), None))
    return steps


def pair_steps(net: IntegerNetwork, steps: list[Step], kinds: tuple[str, ...],
               rows: int) -> list[Step]:
    """Run 1x1 convs inside other convs of the same kind and stride (``pair``, on the unit of
    each array kind in ``kinds``; docs/ACCELERATOR.md, "Paired convs"): a ResNet downsample
    conv in the block conv that reads the same input, or in the one whose residual add it
    feeds. A tile of the host conv then takes the 1x1 conv's steps and its own, and its
    results leave the array as two words a row, the 1x1 conv's first. A 1x1 conv alone is
    bound by its writes (one word a cycle, for a tile of fewer steps than rows); a pair only
    by their sum.

    The 1x1 conv (no padding, no residual add or pool of its own) must be of the host's kind
    and stride, read a tensor of the host input's shape (so that it reads each row's window
    centre at a fixed distance) and write one of the host output's shape. Either it reads the
    host's input, and nothing reads its output before the host; or its output is the host's
    residual operand and nothing else's, and its input is written at least
    :data:`~hw.engine.IN_FLIGHT` steps before the host (finished when the host starts), and a
    tile's ``R`` rows give its word time to be written before the host's adds it (``rows >=
    RESIDUAL_MARGIN``)."""
    if not kinds:
        return steps
    steps = list(steps)

    def fits(h: Step, d: Step) -> bool:
        return (d.op is h.op and d.conv is not None and d.node is None and d.pool is None and
                d.pair is None and d.conv.kernel == 1 and d.conv.padding == 0 and
                d.conv.stride == h.conv.stride and h.conv.padding <= h.conv.kernel - 1 and
                net.tensors[d.inputs[0]].shape == net.tensors[h.inputs[0]].shape and
                net.tensors[d.output].shape == net.tensors[h.requant.output].shape)

    i, again = 0, False  # pass over the steps until a pass pairs nothing
    while i < len(steps) or again:
        if i == len(steps):
            i, again = 0, False
        h = steps[i]
        kind = "shift" if h.op is Opcode.SHIFT_CONV else "adder"
        if h.conv is None or h.pool is not None or h.pair is not None or kind not in kinds:
            i += 1
            continue
        found = None
        for j, d in enumerate(steps):
            if j == i or not fits(h, d):
                continue
            rest = steps[:j] + steps[j + 1:]
            at = next(k for k, s in enumerate(rest) if s is h)
            readers = [k for k, s in enumerate(rest) if d.output in s.reads]
            if d.inputs[0] == h.inputs[0]:
                ok = all(k > at for k in readers)
            else:
                made = max((k for k, s in enumerate(rest) if d.inputs[0] in s.writes),
                           default=-1)
                ok = h.node is not None and h.inputs[-1] == d.output and readers == [at] and \
                    made <= at - IN_FLIGHT and rows >= RESIDUAL_MARGIN
            if ok:
                found = rest, at, d
                break
        if found is None:
            i += 1
            continue
        steps, i, h.pair = found
        i, again = i + 1, True
    return steps


def tensor_banks(steps: list[Step]) -> dict[str, int]:
    """The activation banks of every stored tensor (``out_banks`` bits): the adder array's
    input bank when an adder conv reads it as its input, the main bank when anything else
    reads it (residual operands, shift convs, ADD, AVGPOOL, OUTPUT); both when both do."""
    banks: dict[str, int] = {}
    for s in steps:
        for j, t in enumerate(s.inputs):
            bank = BANK_ADDER if s.op is Opcode.ADDER_CONV and j == 0 else BANK_MAIN
            banks[t] = banks.get(t, 0) | 1 << bank
        if s.pair is not None:  # the paired conv reads its input as the host reads its own
            t = s.pair.inputs[0]
            bank = BANK_ADDER if s.op is Opcode.ADDER_CONV else BANK_MAIN
            banks[t] = banks.get(t, 0) | 1 << bank
    return banks


def allocate(net: IntegerNetwork, steps: list[Step], cols: int,
             banks: dict[str, int]) -> tuple[dict[str, int], dict[int, int]]:
    """First-fit placement of every stored tensor over its live range, in each of its banks at
    the same address. A tensor lives from the step that writes it to two steps past its last
    reader: the next step may run at the same time (the other array), and the one after it
    (the reader's array again) may start while the reader's last results, and the residual
    words they add, are still on their way (:func:`overlap_flags`); neither may overwrite it.
    Returns (bases, depth per bank)."""
    first, last = {}, {}
    for i, s in enumerate(steps):
        for t in s.writes:
            first.setdefault(t, i)
            last.setdefault(t, i)
        for t in s.reads:
            last[t] = i + IN_FLIGHT - 1
    placed: list[tuple[int, int, int, int, int]] = []  # (base, size, first, last, banks)
    bases = {}
    for t in sorted(first, key=lambda t: (first[t], t)):
        size = tensor_words(net.tensors[t].shape, cols)
        busy = sorted((b, b + n) for b, n, f, l_, bk in placed
                      if bk & banks[t] and not (l_ < first[t] or f > last[t]))
        base = 0
        for lo, hi in busy:
            if base + size <= lo:
                break
            base = max(base, hi)
        bases[t] = base
        placed.append((base, size, first[t], last[t], banks[t]))
    depths = {bank: max((b + n for b, n, _, _, bk in placed if bk >> bank & 1), default=1)
              for bank in (BANK_MAIN, BANK_ADDER)}
    return bases, depths


def input_beside(net: IntegerNetwork, steps: list[Step], banks: dict[str, int]) -> bool:
    """Whether the first conv can run beside ``INPUT``: a shift conv that is the input's only
    reader, with no residual, and whose output does not go to the adder array's bank, in a
    network with adder convs (so the engine has that bank). ``INPUT`` then writes the input to
    the adder bank (whose write port nothing else uses then, and whose read ports the idle adder
    array does not need) while the conv writes the main bank, and the conv, dispatched first,
    reads each tile once its last input word is written (``follow_input``): the stream and
    the first conv overlap instead of taking turns (docs/ACCELERATOR.md)."""
    if len(steps) < 3 or not any(s.op is Opcode.ADDER_CONV for s in steps):
        return False
    first = steps[1]
    return (first.op is Opcode.SHIFT_CONV and first.node is None and first.pool is None and
            first.inputs == (net.input,) and
            sum(net.input in s.inputs for s in steps) == 1 and
            not banks[first.output] >> BANK_ADDER & 1)


def overlap_flags(steps: list[Step], banks: dict[str, int],
                  drains: dict[str, int]) -> list[dict[str, int]]:
    """``barrier`` / ``follow`` of each step. A conv right after a conv of the other kind runs
    at the same time as it (the engine's two units), following it tile by tile when it reads
    its output; it waits instead (``barrier``: until both units are idle) when both write one
    bank, both add a residual (one set of residual adders), or it reads the other's output as
    its residual operand. A conv right after a conv of its own kind waits too: the other unit
    may still run an older conv, which this one was not checked against; but if it reads that
    conv's output as its input, it follows that conv's frontier (``follow_own``) instead of
    waiting for it to end (as long as it reads that output as its residual operand only under
    the margin below).

    Each unit starts its next conv while the last one's results drain, so the conv two steps
    back (this one's unit, if the step between is the other's conv) may still be writing:
    this conv waits for it if it reads that conv's output, unless only as its residual operand
    and that conv's results take at least :data:`~hw.engine.RESIDUAL_MARGIN` cycles to leave
    the array (``drains``: :func:`result_rows` of each conv's output): word ``j`` of this
    conv reaches the post-processing at least that many cycles after word ``j`` of that one,
    so the residual word it reads there is written. At most
    three consecutive descriptors ever run at once, which is what the live ranges
    (:func:`allocate`) assume."""
    flags = []
    for i, s in enumerate(steps):
        prev = steps[i - 1] if i else None
        f = {}
        if s.conv is not None and prev is not None and prev.conv is not None:
            residual = s.inputs[-1] if s.node is not None else None
            # a paired conv's output is followed by no frontier: a reader waits for its end
            paired_out = prev.pair is not None and prev.pair.output in s.reads
            if prev.op is s.op:
                f["barrier"] = 1
                if s.inputs[0] == prev.output and not paired_out and \
                        (residual != prev.output or drains[prev.output] >= RESIDUAL_MARGIN):
                    f["follow_own"] = 1
            else:
                f["barrier"] = int(any(banks[a] & banks[b] for a in s.writes
                                       for b in prev.writes) or
                                   residual == prev.output or paired_out or
                                   (s.node is not None and prev.node is not None))
                f["follow"] = int(s.inputs[0] == prev.output)
                back = steps[i - 2] if i >= 2 else None
                if back is not None and back.op is s.op and set(back.writes) & set(s.reads):
                    ok = residual == back.output and s.inputs[0] != back.output and \
                        [t for t in back.writes if t in s.reads] == [back.output] and \
                        (s.pair is None or s.pair.inputs[0] != back.output) and \
                        drains[back.output] >= RESIDUAL_MARGIN
                    f["barrier"] |= int(not ok)
        flags.append(f)
    return flags


def result_rows(shape: tuple[int, ...], geo: Geometry) -> int:
    """Cycles a conv's results of ``shape`` (C, H, W) take to leave the array: R per pixel tile
    and channel block."""
    c, h, w = shape
    return geo.rows * -(-h * w // geo.rows) * words_per_pixel(c, geo.cols)


def _jumps(counts: list[int], strides: list[int]) -> dict[str, int]:
    out = {}
    counts = counts + [1] * (LOOP_LEVELS - len(counts))
    strides = strides + [0] * (LOOP_LEVELS - len(strides))
    for lvl in range(LOOP_LEVELS):
        out[f"m{lvl}"] = counts[lvl] - 1
        out[f"j{lvl}"] = strides[lvl] - sum((counts[i] - 1) * strides[i] for i in range(lvl))
    return out


def conv_steps(c_in: int, k: int, geo: Geometry) -> tuple[int, int]:
    """(words per input pixel, sub-words used per word) of a conv's step loop."""
    b_in = words_per_pixel(c_in, geo.cols)
    sub = min(geo.subwords, -(-c_in // geo.lanes)) if b_in == 1 else geo.subwords
    return b_in, sub


@dataclass
class Program:
    """The compiled network: everything the engine and the runtime need."""

    descriptors: list[dict]
    memories: dict[MemoryId, list[int]]
    bases: dict[str, int]
    act_depths: dict[int, int]  # activation bank -> words
    bias_bits: int
    steps: list[Step] = field(default_factory=list)

    def words(self) -> list[int]:
        return [pack_descriptor(d) for d in self.descriptors]


def _conv_weights(step: Step, geo: Geometry, bits: int) -> list[int]:
    """Weight words of a conv in consumption order (see the module docstring)."""
    op = step.conv
    c_out, c_in, k, _ = (op.sign if isinstance(op, ShiftConv) else op.weight).shape
    b_in, sub = conv_steps(c_in, k, geo)
    blocks = words_per_pixel(c_out, geo.cols)
    cp_in, cp_out = b_in * geo.cols, blocks * geo.cols
    if isinstance(op, ShiftConv):
        s = op.exp_max - op.exp.astype(np.int64)
        w = np.where(op.sign != 0, shift_weight(op.sign, np.where(op.sign != 0, s, 0)), 0)
    else:
        w = op.weight.astype(np.int64)
    full = np.zeros((cp_out, cp_in, k, k), dtype=np.int64)
    full[:c_out, :c_in] = w
    words = []
    for cb in range(blocks):
        cols = full[cb * geo.cols:(cb + 1) * geo.cols]            # [C, cp_in, k, k]
        for ky in range(k):
            for kx in range(k):
                for word in range(b_in):
                    for sb in range(sub):
                        lo = (word * geo.subwords + sb) * geo.lanes
                        lanes = cols[:, lo:lo + geo.lanes, ky, kx]  # [C, V]
                        words.append(pack([(lanes.ravel(), bits)]))
    return words


def shift_room(mult, shift: int) -> tuple[int, int]:
    """The shifts ``shift + k`` the engine can give a requant exactly: ``mult << k`` must fit
    :data:`ENGINE_MULT_BITS` (and the shift :data:`SHIFT_LIMIT`); any shift at all for one whose
    multipliers are all zero (:func:`gen.numerics.floor_requant`)."""
    mult = np.asarray(mult).ravel()
    top, bottom = (int(mult.max()), int(mult.min())) if mult.size else (0, 0)
    if top == bottom == 0:
        return 0, SHIFT_LIMIT
    room = SHIFT_LIMIT - shift
    if top > 0:  # top << k <= 2**(B-1) - 1
        room = min(room, ENGINE_MULT_BITS - 1 - top.bit_length())
    if bottom < 0:  # bottom << k >= -2**(B-1)
        b = -bottom
        room = min(room, ENGINE_MULT_BITS - b.bit_length() - (b & (b - 1) != 0))
    return shift, shift + max(room, 0)


def requant_window(nets: list[IntegerNetwork]) -> tuple[int, int]:
    """The narrowest range of shifts that every requant of ``nets`` can be given
    (:func:`shift_room`): a requant that follows a shift conv is a pure rounding shift with
    ``mult = 1``, which can take any larger shift; a folded BN's ``mult`` already uses most of
    its bits. The requantizer's shifter only spans this range."""
    rooms = [shift_room(op.mult, op.shift) for n in nets for op in n.ops
             if isinstance(op, Requant)]
    top = max((lo for lo, _ in rooms), default=0)
    return min([top] + [hi for _, hi in rooms]), top


def engine_requants(net: IntegerNetwork, window: tuple[int, int] | None = None
                    ) -> dict[str, tuple[np.ndarray, np.ndarray, int]]:
    """Each requant of ``net`` as the engine runs it: ``name -> (mult, bias, shift)`` for
    ``y = sat(relu?((acc * mult + bias) >> shift))`` (:func:`gen.numerics.floor_requant`), with
    every shift in ``window`` (default: ``net``'s own, :func:`requant_window`). Each requant
    takes the smallest shift of its room in the window (its bias grows least)."""
    bottom, top = window or requant_window([net])
    out = {}
    for op in net.ops:
        if isinstance(op, Requant):
            lo, hi = shift_room(op.mult, op.shift)
            to = max(lo, bottom)
            if not to <= min(hi, top):
                raise CompileError(f"{op.name}: its requant (shift {op.shift}) can be given the "
                                   f"shifts {lo}..{hi} only, none in {bottom}..{top}")
            m, b = floor_requant(op.mult, op.bias, op.shift, to)
            out[op.name] = (m, b, to)
    return out


def _param_words(mult, bias, channels: int, cols: int, bias_bits: int) -> list[int]:
    """Parameter words of a conv's requant (as :func:`engine_requants` gives it): per block of
    ``cols`` channels, each channel's ``(mult, bias)`` in ``ENGINE_MULT_BITS + bias_bits`` bits,
    channel 0 at bit 0; padded channels 0."""
    m = np.zeros(channels, np.int64)
    b = np.zeros(channels, np.int64)
    m[:len(mult)], b[:len(bias)] = mult, bias
    bits = np.concatenate([to_bits(m, ENGINE_MULT_BITS).reshape(channels, ENGINE_MULT_BITS),
                           to_bits(b, bias_bits).reshape(channels, bias_bits)], axis=1)
    return [int.from_bytes(np.packbits(block, bitorder="little").tobytes(), "little")
            for block in bits.reshape(channels // cols, -1)]


def bias_bits_for(net: IntegerNetwork, window: tuple[int, int] | None = None) -> int:
    """Width of the requant biases in the parameter memory (the widest the engine's form of the
    network's requants needs, :func:`engine_requants`)."""
    return requant_bias_bits(engine_requants(net, window))


def requant_bias_bits(requants: dict[str, tuple[np.ndarray, np.ndarray, int]]) -> int:
    """:func:`bias_bits_for` of requants already in the engine's form."""
    biases = [int(v) for _, b, _ in requants.values() for v in b]
    return max(signed_bits(min(biases + [0]), max(biases + [0])), 2)


def compile_network(net: IntegerNetwork, geo: Geometry, *, shift_lane_bits: int | None,
                    data_bits: int, bias_bits: int | None = None,
                    requant_shifts: tuple[int, int] | None = None,
                    short_branches_first: bool = False, weights: bool = True,
                    pairs: tuple[str, ...] = ()) -> Program:
    """Lay out ``net`` for an engine of geometry ``geo``.

    ``shift_lane_bits``: width of one shift lane weight (sign + shift field), ``None`` when the
    engine has no shift array. ``bias_bits``: the engine's bias width (default: what the network
    needs). ``requant_shifts``: the range the requants' shifts are brought into (default: the
    network's own, :func:`requant_window`). ``short_branches_first``: :func:`schedule`.
    ``weights=False`` (sizing: only the layout, cycles and memory depths matter) leaves
    the weight and parameter memories as the right number of zero words instead of packing
    them.
    ``pairs``: the array kinds whose 1x1 convs may run in other convs' tiles
    (:func:`pair_steps`; their engine is built with ``EngineConfig.paired``).
    Raises :class:`CompileError` for anything the engine cannot run.
    """
    if geo.cols % geo.lanes:
        raise CompileError(f"cols ({geo.cols}) must be a multiple of lanes ({geo.lanes})")
    steps = pair_steps(net, fuse(net, short_branches_first), pairs, geo.rows)
    banks = tensor_banks(steps)
    beside = input_beside(net, steps, banks)
    if beside:
        banks[net.input] = 1 << BANK_ADDER
    bases, act_depths = allocate(net, steps, geo.cols, banks)
    flags = overlap_flags(steps, banks, {s.output: result_rows(net.tensors[s.output].shape, geo)
                                         for s in steps if s.conv is not None})
    if beside:  # the first conv goes first and reads each tile as soon as INPUT has written it
        flags[1].update(in_adder=1, follow_input=1, barrier=1)
        if steps[2].conv is not None:  # it must not read the adder bank beside the first conv
            flags[2]["barrier"] = 1
        steps = [steps[1], steps[0], *steps[2:]]
        flags = [flags[1], flags[0], *flags[2:]]
    rqs = engine_requants(net, requant_shifts)
    need = requant_bias_bits(rqs)
    if bias_bits is None:
        bias_bits = need
    elif bias_bits < need:
        raise CompileError(f"the network's biases need {need} bits, the engine has {bias_bits}")
    memories: dict[MemoryId, list[int]] = {m: [] for m in MemoryId}
    descs: list[dict] = []
    C = geo.cols
    for s, f in zip(steps, flags, strict=True):
        d: dict = {"op": int(s.op), **f}
        if s.output is not None:
            d["out_banks"] = banks[s.output]
        if s.op is Opcode.INPUT:
            d.update(out_base=bases[s.output],
                     in_beats=input_beats(net.tensors[s.output].shape[0], C, data_bits), **_jumps(
                [tensor_words(net.tensors[s.output].shape, C)], [1]))
        elif s.op is Opcode.OUTPUT:
            d.update(in_base=bases[s.inputs[0]], **_jumps(
                [tensor_words(net.tensors[s.inputs[0]].shape, C)], [1]))
        elif s.op in (Opcode.SHIFT_CONV, Opcode.ADDER_CONV):
            d.update(_conv_descriptor(
                net, s, geo, bases, memories, shift_lane_bits, data_bits, bias_bits,
                rqs[s.requant.name], weights,
                pair_rq=rqs[s.pair.requant.name] if s.pair is not None else None,
                pair_banks=banks[s.pair.output] if s.pair is not None else 0))
        elif s.op is Opcode.ADD:
            sa, sb, sh = _add_shifts(net, s.node, *s.inputs)
            d.update(in_base=bases[s.inputs[0]], in2_base=bases[s.inputs[1]],
                     out_base=bases[s.output], shift_a=sa, shift_b=sb, shift=sh,
                     relu=int(s.node.relu),
                     **_jumps([tensor_words(net.tensors[s.output].shape, C)], [1]))
        elif s.op is Opcode.AVGPOOL:
            x, y = net.tensors[s.inputs[0]], net.tensors[s.output]
            k = s.node.kernel
            sh = _pool_shift(net, s.node)
            cx, hx, wx = x.shape
            blk = words_per_pixel(cx, C)
            # ``ports`` window positions a transfer (of one window row), ``blk`` words apart;
            # the fewest transfers a row, on the fewest ports that take that many
            ports = pool_ports(geo)
            while ports > 1 and -(-k // (ports // 2)) == -(-k // ports):
                ports //= 2
            n = -(-k // ports)
            d.update(in_base=bases[s.inputs[0]], out_base=bases[s.output], shift=sh,
                     ports=ports, port_step=blk, ports_last=k - (n - 1) * ports,
                     **_jumps([n, k, blk, y.shape[2], y.shape[1]],
                              [ports * blk, wx * blk, 1, k * blk, k * wx * blk]))
        descs.append(d)
    descs.append({"op": int(Opcode.END)})
    memories[MemoryId.PROGRAM] = [pack_descriptor(d) for d in descs]
    return Program(descs, memories, bases, act_depths, bias_bits, steps)


def _pool_shift(net: IntegerNetwork, pool: AvgPool) -> int:
    """The rounding shift of an average pool (``docs/NUMERICS.md``)."""
    x, y = net.tensors[pool.inputs[0]], net.tensors[pool.output]
    sh = pool_shift(pool.kernel, x.fmt.frac, y.fmt.frac)
    if sh < 0:
        raise CompileError(f"{pool.name}: the pool's output format is finer than its sum "
                           "(the engine only shifts right)")
    return sh


def pool_ports(geo: Geometry) -> int:
    """The most main-bank ports an AVGPOOL reads at once on an engine of geometry ``geo`` (a
    power of two, at most :data:`hw.engine.POOL_PORTS` and the rows' ports); each AVGPOOL uses
    the fewest of them that read a window row in the fewest transfers (a 3x3 window on 4
    ports: one transfer a row, the fourth port masked)."""
    ports = 1
    while ports * 2 <= min(POOL_PORTS, geo.rows):
        ports *= 2
    return ports


def _add_shifts(net: IntegerNetwork, add: Add, a: str, b: str) -> tuple[int, int, int]:
    """``(shift_a, shift_b, shift)`` of the add ``a + b`` (docs/NUMERICS.md)."""
    fa, fb = net.tensors[a].fmt.frac, net.tensors[b].fmt.frac
    big = max(fa, fb)
    sa, sb, sh = big - fa, big - fb, big - net.tensors[add.output].fmt.frac
    if sh < 0:  # a left shift of the sum is exact: fold it into the operand shifts
        sa, sb, sh = sa - sh, sb - sh, 0
    if max(sa, sb, sh) > ADD_SHIFT_MAX:
        raise CompileError(f"{add.name}: the add needs a shift of {max(sa, sb, sh)}, more "
                           f"than the engine's {ADD_SHIFT_MAX}")
    return sa, sb, sh


def _conv_descriptor(net, s: Step, geo: Geometry, bases, memories, shift_lane_bits, data_bits,
                     bias_bits, engine_rq, weights: bool = True, pair_rq=None,
                     pair_banks: int = 0) -> dict:
    """``engine_rq``: the conv's requant as the engine runs it (:func:`engine_requants`);
    ``pair_rq``, ``pair_banks``: its paired conv's, and the banks of that one's output."""
    op, rq = s.conv, s.requant
    mult, bias, shift = engine_rq
    x, y = net.tensors[op.inputs[0]], net.tensors[rq.output]
    c_in, h, w = x.shape
    c_out, oh, ow = y.shape
    k, st, p = op.kernel, op.stride, op.padding
    R, C = geo.rows, geo.cols
    if isinstance(op, ShiftConv):
        if shift_lane_bits is None:
            raise CompileError(f"{op.name}: the engine has no shift array")
        mem, bits = MemoryId.SHIFT_WEIGHTS, shift_lane_bits
    else:
        mem, bits = MemoryId.ADDER_WEIGHTS, data_bits
    b_in, sub = conv_steps(c_in, k, geo)
    blocks = words_per_pixel(c_out, C)
    pixels = oh * ow
    w_base = len(memories[mem])
    own = _conv_weights(s, geo, bits) if weights else [0] * (blocks * k * k * b_in * sub)
    if s.pair is None:
        memories[mem].extend(own)
    else:  # per column block the paired conv's steps' words, then this conv's
        paired = _conv_weights(s.pair, geo, bits) if weights else [0] * (blocks * b_in * sub)
        n, n_pair = len(own) // blocks, len(paired) // blocks
        for cb in range(blocks):
            memories[mem].extend(paired[cb * n_pair:(cb + 1) * n_pair] + own[cb * n:(cb + 1) * n])
    p_base = len(memories[MemoryId.PARAMS])
    memories[MemoryId.PARAMS].extend(_param_words(mult, bias, blocks * C, C, bias_bits)
                                     if weights else [0] * blocks)
    row_step = st * w * b_in            # input rows of one output row, in words
    wrap_fix = -ow * st * b_in + row_step

    def delta(pix: int) -> tuple[int, int, int, int]:
        dx, dy = (pix % ow) * st, (pix // ow) * st
        nowrap = dx * b_in + dy * w * b_in
        return dx, dy, nowrap, nowrap + wrap_fix

    wdx, wdy, wn, ww = delta(1)
    tdx, tdy, tn, tw = delta(R)
    d = {
        "in_base": bases[op.inputs[0]], "out_base": bases[s.output], "w_base": w_base,
        "p_base": p_base, **_jumps([sub, b_in, k, k], [0, 1, b_in, w * b_in]),
        "h": h, "w": w, "m_cb": blocks - 1, "m_pblk": -(-pixels // R) - 1,
        "init_addr": bases[op.inputs[0]] + (-p * w - p) * b_in, "init_i": -p, "stride": st,
        "walk_dx": wdx, "walk_dy": wdy, "walk_nowrap": wn, "walk_wrap": ww,
        "tile_dx": tdx, "tile_dy": tdy, "tile_nowrap": tn, "tile_wrap": tw,
        "wrap_at": ow * st - p, "wrap_sub": ow * st, "y_end": oh * st - p,
        "out_tile_step": R * blocks, "pixels": pixels,
        "shift": shift, "relu": int(rq.relu),
        # the tile's last input word: row R-1's window base + span (``follow``)
        "span": ((k - 1) * w + (k - 1)) * b_in + b_in - 1,
        "in_last": bases[op.inputs[0]] + tensor_words(x.shape, C) - 1,
    }
    if s.node is not None:  # the residual add, done by the writer
        residual = s.inputs[-1]
        sa, sb, sh = _add_shifts(net, s.node, rq.output, residual)
        d.update(res=1, in2_base=bases[residual], shift_a=sa, shift_b=sb, res_shift=sh,
                 res_relu=int(s.node.relu))
    if s.pool is not None:  # the global pool: the pooled words at out_base + block
        d.update(pool=1, pool_shift=_pool_shift(net, s.pool))
    if s.pair is not None:  # the 1x1 conv in its tiles: each row's window centre, at the
        # same place of its own input tensor (of this one's shape)
        pmult, pbias, pshift = pair_rq
        pd = s.pair
        d.update(pair=1, pair_in=bases[pd.inputs[0]] - bases[op.inputs[0]] + (p * w + p) * b_in,
                 pair_out=bases[pd.output], pair_p=len(memories[MemoryId.PARAMS]),
                 pair_shift=pshift, pair_relu=int(pd.requant.relu), pair_banks=pair_banks)
        memories[MemoryId.PARAMS].extend(_param_words(pmult, pbias, blocks * C, C, bias_bits)
                                         if weights else [0] * blocks)
    return d


def engine_config(net: IntegerNetwork, geo: Geometry, prog: Program, *, shift, adder,
                  program_depth: int | None = None) -> EngineConfig:
    """The engine for ``prog`` (memories sized to exactly what the program uses)."""
    sizes = {m: max(len(v), 1) for m, v in prog.memories.items()}
    pools = [s.node.kernel ** 2 for s in prog.steps if s.op is Opcode.AVGPOOL]
    pools += [s.pool.kernel ** 2 for s in prog.steps if s.pool is not None]
    # the post-processing units are built for the shifts the program uses
    conv_ops = (Opcode.SHIFT_CONV, Opcode.ADDER_CONV)
    rq_shifts = [d["shift"] for d in prog.descriptors if d["op"] in conv_ops] or [0]
    rq_shifts += [d["pair_shift"] for d in prog.descriptors if d.get("pair")]
    pool_shifts = [d["shift"] for d in prog.descriptors if d["op"] == Opcode.AVGPOOL]
    pool_shifts += [d["pool_shift"] for d in prog.descriptors if d.get("pool")]
    add_shifts = [(d["shift_a"], d["shift_b"], d["shift"]) for d in prog.descriptors
                  if d["op"] == Opcode.ADD]
    add_shifts += [(d["shift_a"], d["shift_b"], d["res_shift"]) for d in prog.descriptors
                   if d["op"] in conv_ops and d.get("res")]
    return EngineConfig(
        rows=geo.rows, cols=geo.cols, lanes=geo.lanes, data_bits=net.precision.bits,
        shift=shift, adder=adder, act_depth=prog.act_depths[BANK_MAIN],
        adder_act_depth=prog.act_depths[BANK_ADDER],
        shift_depth=sizes[MemoryId.SHIFT_WEIGHTS], adder_depth=sizes[MemoryId.ADDER_WEIGHTS],
        param_depth=sizes[MemoryId.PARAMS],
        program_depth=program_depth or len(prog.descriptors), bias_bits=prog.bias_bits,
        pool_window=max(pools + [1]), add_shift_max=max(map(max, add_shifts), default=0),
        requant_shift_min=min(rq_shifts), requant_shift_max=max(rq_shifts),
        pool_shift_max=max(pool_shifts, default=0),
        pool_ports=max((d["ports"] for d in prog.descriptors if d["op"] == Opcode.AVGPOOL),
                       default=1),
        pool_groups=max((d["m_cb"] + 1 for d in prog.descriptors if d.get("pool")), default=1),
        paired=tuple(k for k, op in (("shift", Opcode.SHIFT_CONV), ("adder", Opcode.ADDER_CONV))
                     if any(d["op"] == op and d.get("pair") for d in prog.descriptors)))


# ------------------------------------------------------------------------------ stream frames
def load_frame(prog: Program, cfg: EngineConfig) -> list[int]:
    """The ``LOAD`` frame (32-bit beats) that writes program, weights and parameters."""
    from hw.program import FrameKind, header_beat, section_beat, words_to_beats

    widths, depths = cfg.memory_widths(), cfg.memory_depths()
    beats = [header_beat(FrameKind.LOAD)]
    for mid, words in prog.memories.items():
        if not words:
            continue
        if len(words) > depths[mid]:
            raise CompileError(f"{mid.name.lower()}: {len(words)} words do not fit the engine's "
                               f"{depths[mid]}")
        beats.append(section_beat(mid, len(words)))
        beats.extend(words_to_beats(words, widths[mid]))
    return beats


def tensor_beats(x: np.ndarray, cfg: EngineConfig) -> list[int]:
    """One tensor ``x[C, H, W]`` as the stream's 32-bit beats, whole words
    (``firmware.tensors.to_words``: the one definition of the activation-word layout, shared
    with the board)."""
    from firmware.tensors import to_words

    return np.frombuffer(to_words(np.asarray(x), cfg.cols, cfg.precision), "<u4").tolist()


def infer_frame(x: np.ndarray, cfg: EngineConfig) -> list[int]:
    """The ``INFER`` frame for one input tensor ``x[C, H, W]`` (integers in the input format):
    its header and its words cut to their beats, packed as the board's driver packs it."""
    from firmware.tensors import to_words
    from hw.program import FrameKind, header_beat

    beats = input_beats(np.shape(x)[0], cfg.cols, cfg.data_bits)
    return np.frombuffer(to_words(np.asarray(x), cfg.cols, cfg.precision, beats,
                                  header=header_beat(FrameKind.INFER)), "<u4").tolist()


def output_tensor(beats: list[int], shape: tuple[int, int, int], cfg: EngineConfig) -> np.ndarray:
    """The result beats of one image -> ``y[C, H, W]`` (int64)."""
    from firmware.tensors import from_words

    data = np.asarray(beats, dtype=np.int64).astype("<u4").tobytes()
    return from_words(data, shape, cfg.cols, cfg.precision).astype(np.int64)
