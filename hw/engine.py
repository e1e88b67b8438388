"""The layer engine: runs a whole integer network from a layer program with one start.

Blocks (``docs/ACCELERATOR.md`` has the picture):

* **Memories** (``amaranth.lib.memory``): activations in two banks (one word = ``C`` channels of
  ``B`` bits, HWC order): the adder array's input bank (``R`` read ports) and the main bank
  (``R + 1`` read ports: the shift array's rows and the residual operand), one write port
  each; shift weights and adder weights (one word = one array step: ``C`` columns x ``V``
  lanes), requant parameters (one word = ``C`` channels of ``mult``/``bias``; one read port
  per array), the program (one word = one descriptor, :mod:`hw.program`). Weights, parameters
  and the program are written once per deployment by a ``LOAD`` frame; per image only the
  input and the output cross the stream interface.
* **Conv units** (:class:`_ConvUnit`), one per array kind the network has, each with its own
  copies of the descriptor (the feeder's and the writer's), feeder, :class:`hw.array.ArrayCore`,
  writer and ``C``
  :class:`~hw.ppu.Requantizer` s (conv + requant is one descriptor). The feeder does no im2col
  in memory: each of the ``R`` array rows is one output pixel with its own input window
  position and base address; one loop nest (sub-word, word, kx, ky) walks the window and gives
  a common address offset, so row ``r`` reads ``base[r] + offset`` from its own read port.
  Padding and rows past the last pixel read as zero words (masked), never stored.
* **The two arrays run at once.** The control FSM hands each conv to its unit and fetches on,
  so a shift conv and the adder conv after it run at the same time. A conv that reads the
  other unit's output (``follow``) reads a tile only once the other's writer has passed the
  tile's last input word (its ``frontier``; the follower's stall is a register, so it sees
  the frontier one cycle late). Each unit's feeder takes its next conv while the
  last one's results still drain (every word carries its conv's post-processing fields; one-bit
  tags keep a follower on its conv); with ``follow_own`` a conv follows its own unit's last
  conv the same way. A conv with ``barrier`` waits until both units are idle (its own unit's
  last conv may drain with ``follow_own``); every other descriptor waits for both. The compiler
  keeps the units' writes in different banks and never overlaps two convs with ``res``.
* **Post-processing**: ``C`` :class:`~hw.ppu.ResidualAdder` s and ``C``
  :class:`~hw.ppu.AvgPooler` s, shared: a conv descriptor with ``res`` sends its requantized
  words through the residual adders, with the residual tensor's word at the same position
  (read on the main bank's port R), so a residual add after a conv takes no pass of its own;
  a conv descriptor with ``pool`` (a global average pool of its output) sends its words to the
  poolers instead of memory, each channel block into its own sum, and only the pooled words
  are written, so the pool takes no pass either (nothing is dispatched while such a conv
  runs); ``ADD`` and ``AVGPOOL`` use them while both arrays are idle.
* **Control**: every loop is bounded by descriptor counts, so no descriptor can hang the
  engine; an unknown opcode, an absent array kind, an address outside its memory or bank, an
  output to no bank, a shift outside the range the post-processing units were sized for
  (``requant_shift_min`` .. ``requant_shift_max``, ``add_shift_max``, ``pool_shift_max``), a
  pool conv the poolers cannot hold (``pool_groups``, ``pool_window``) or whose last pixel is
  not in its last tile, a conv with more than one of ``follow``, ``follow_own`` and
  ``follow_input``, a paired conv (``pair``) on a unit not built for pairs, with a pool, or
  with its output in no bank or outside one, its parameters outside their memory or its shift
  out of range, or a program without ``END`` sets ``ERROR.bad_descriptor``, a malformed frame
  ``ERROR.bad_length``; the program stops (once both arrays are idle) and ``ap_done`` is
  raised either way.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Cat, Const, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from gen.numerics import ENGINE_MULT_BITS, SHIFT_LIMIT
from hw.array import ArrayCore
from hw.config import ArrayConfig, LaneKind, PEConfig, _check_int
from hw.lanes import weight_shape
from hw.ppu import (
    AddConfig,
    AvgPooler,
    PoolConfig,
    RequantConfig,
    Requantizer,
    ResidualAdder,
)
from hw.program import (
    BEAT_BITS,
    DESCRIPTOR_BITS,
    DESCRIPTOR_FIELDS,
    LOOP_LEVELS,
    SECTION_WORDS_BITS,
    FrameKind,
    MemoryId,
    Opcode,
    beats_per_word,
    header_beat,
)
from hw.regmap import ERROR_BITS, IMAGES_BITS

BEAT = data.StructLayout({"data": BEAT_BITS, "last": 1})
DESCRIPTOR = data.StructLayout({n: signed(b) if s else unsigned(b)
                                for n, b, s in DESCRIPTOR_FIELDS})
ADDR = signed(20)  # activation address arithmetic (bases may start in the padding)
ROWV = signed(14)  # a row's window position (y or x; starts in the padding)

# cycles from a source offering an activation word to its bank's block RAM writing it (the
# registered write-port selection)
WRITE_DELAY = 1
# descriptors in flight at once: a unit starts its next conv while the last one's results still
# drain, beside the other unit's conv (gen.compile.allocate, overlap_flags)
IN_FLIGHT = 3
# cycles by which word j of a conv must reach a unit's writer after word j of the conv that made
# its residual operand, on the same unit (gen.compile.overlap_flags): a word is readable
# 1 + Requantizer.latency + ResidualAdder.latency + WRITE_DELAY + 1 cycles after the writer (its
# register, the requantizer, the residual adder, the write port, the block RAM's edge), and the
# residual word is read 1 + Requantizer.latency - 1 cycles after it (to arrive with the
# requantized word)
RESIDUAL_MARGIN = (1 + Requantizer.latency + ResidualAdder.latency + WRITE_DELAY + 1) - \
    (1 + Requantizer.latency - 1)
# activation banks (bits of a descriptor's ``out_banks``): the adder array reads its input from
# its own bank, everything else from the main one, so both arrays read and write at once
BANK_MAIN, BANK_ADDER = 0, 1
# the memories the sizing may hold in LUT RAM (``EngineConfig.lutram``): shallow ones, tens to
# hundreds of words (the weights and activations are thousands deep)
LUTRAM_MEMORIES = ("program", "params")
# the most main-bank ports AVGPOOL reads at once (each pooler sums that many items a cycle)
POOL_PORTS = 4
# the descriptor fields the row walk copies at CHECK: its own, and those the conv's unit needs
# when it takes the walked rows (``_ConvUnit.build``: its stall in the cycle after)
WALK_FIELDS = ("walk_dx", "walk_dy", "walk_nowrap", "walk_wrap", "stride", "wrap_sub", "span",
               "in_last", "follow_own", "follow_input")


def _advance(y, x, a, dx, dy, nowrap, wrap, thr, d):
    """A row's window position and base address moved by ``dx`` output pixels (``dy`` rows
    more): past the end of an output row, back by one row's width and down by one more row.
    ``thr``: ``d.wrap_at - dx``, registered (``x + dx >= wrap_at`` as ``x >= thr``: the adder
    in front of the comparison, and the address adder after it, were a long path,
    ``benchmarks/timing.py``)."""
    nx = x + dx
    wraps = x >= thr
    return (Mux(wraps, y + dy + d.stride, y + dy), Mux(wraps, nx - d.wrap_sub, nx),
            Mux(wraps, a + wrap, a + nowrap))


# the largest rows, columns and lanes an engine takes
MAX_DIM = 64


@dataclass(frozen=True)
class EngineConfig:
    """Everything the engine is elaborated from (the generator's sizing result).

    ``shift`` / ``adder``: the PE of each array kind, or ``None`` when the network has no conv
    of that kind. Both arrays are ``rows x cols`` with ``lanes`` lanes; ``cols`` is a multiple of
    ``lanes`` (an activation word of ``cols`` channels holds ``cols / lanes`` array inputs).
    Depths are in words of each memory.
    """

    rows: int
    cols: int
    lanes: int
    data_bits: int
    shift: PEConfig | None
    adder: PEConfig | None
    act_depth: int
    shift_depth: int
    adder_depth: int
    param_depth: int
    program_depth: int
    bias_bits: int
    add_shift_max: int = 31
    pool_window: int = 64
    requant_shift_min: int = 0
    requant_shift_max: int = SHIFT_LIMIT
    pool_shift_max: int = SHIFT_LIMIT
    pool_ports: int = 1
    adder_act_depth: int = 1
    pool_groups: int = 1
    # memories held in LUT RAM instead of block RAM (names of ``LUTRAM_MEMORIES``): the sizing
    # moves the shallow ones there when the board's block RAM is short and its LUTs are not
    lutram: tuple[str, ...] = ()
    # the array kinds whose unit runs paired convs (a descriptor's ``pair``): their arrays keep
    # two results a PE (``ArrayCore(drain_slots=2)``), so a tile's two dot products may end
    # closer than R cycles apart
    paired: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("rows", "cols", "lanes"):
            _check_int(name, getattr(self, name), 1, MAX_DIM)
        if self.data_bits not in (8, 32):
            raise ValueError(f"data_bits must be 8 (FIX8) or 32 (FIX32), not {self.data_bits}")
        if self.cols % self.lanes:
            raise ValueError(f"cols ({self.cols}) must be a multiple of lanes ({self.lanes})")
        if self.shift is None and self.adder is None:
            raise ValueError("an engine needs at least one array (shift or adder)")
        for kind, pe in (("shift", self.shift), ("adder", self.adder)):
            if pe is None:
                continue
            if not isinstance(pe, PEConfig) or pe.lane.kind is not LaneKind(kind):
                raise ValueError(f"{kind} must be a {kind} PEConfig, not {pe!r}")
            if pe.lanes != self.lanes or pe.lane.data_bits != self.data_bits:
                raise ValueError(f"the {kind} PE must have {self.lanes} lanes of "
                                 f"{self.data_bits} bits")
        for name in ("act_depth", "adder_act_depth", "shift_depth", "adder_depth", "param_depth",
                     "program_depth"):
            _check_int(name, getattr(self, name), 1, 1 << 16)
        _check_int("bias_bits", self.bias_bits, 2, 64)
        _check_int("add_shift_max", self.add_shift_max, 0, SHIFT_LIMIT)
        _check_int("pool_window", self.pool_window, 1, 1 << 16)
        _check_int("requant_shift_min", self.requant_shift_min, 0, SHIFT_LIMIT)
        _check_int("requant_shift_max", self.requant_shift_max, self.requant_shift_min,
                   SHIFT_LIMIT)
        _check_int("pool_shift_max", self.pool_shift_max, 0, SHIFT_LIMIT)
        _check_int("pool_ports", self.pool_ports, 1, min(POOL_PORTS, self.rows))
        _check_int("pool_groups", self.pool_groups, 1, 256)
        if not (isinstance(self.lutram, tuple) and set(self.lutram) <= set(LUTRAM_MEMORIES)
                and len(set(self.lutram)) == len(self.lutram)):
            raise ValueError(f"lutram must be a tuple of distinct names from {LUTRAM_MEMORIES}, "
                             f"not {self.lutram!r}")
        if not (isinstance(self.paired, tuple) and set(self.paired) <= set(self.arrays)
                and len(set(self.paired)) == len(self.paired)):
            raise ValueError(f"paired must be a tuple of distinct array kinds of this engine "
                             f"({', '.join(self.arrays)}), not {self.paired!r}")

    # ------------------------------------------------------------------ derived
    def array(self, kind: str) -> ArrayConfig | None:
        pe = getattr(self, kind)
        return None if pe is None else ArrayConfig(pe, self.rows, self.cols)

    @property
    def precision(self) -> str:
        """``fix8`` or ``fix32`` (the name the manifest, the wire and ``firmware`` use)."""
        from gen.numerics import Precision

        return next(p.value for p in Precision if p.bits == self.data_bits)

    @property
    def word_bits(self) -> int:
        """Activation word: ``cols`` channels of ``data_bits``."""
        return self.cols * self.data_bits

    @property
    def subwords(self) -> int:
        return self.cols // self.lanes

    @property
    def read_ports(self) -> int:
        """Of the main activation bank: one per array row (the shift array's feeder), and one
        for the residual operand of a conv with ``res`` (read while the rows read the next
        tile); ADD and OUTPUT use ports 0 and 1, AVGPOOL ports 0 to ``pool_ports - 1``. The
        adder array's input bank has one per row."""
        return self.rows + 1

    def act_banks(self) -> dict[int, tuple[int, int]]:
        """``bank -> (depth, read ports)`` of the activation banks the engine has."""
        banks = {BANK_MAIN: (self.act_depth, self.read_ports)}
        if self.adder is not None:
            banks[BANK_ADDER] = (self.adder_act_depth, self.rows)
        return banks

    def post_processing(self) -> dict[str, RequantConfig | AddConfig | PoolConfig]:
        """The configuration of each post-processing unit (one of each per column), built for
        the shift ranges the program uses."""
        return {"requant": RequantConfig(self.acc_bits, self.bias_bits, self.data_bits,
                                         self.requant_shift_min, self.requant_shift_max),
                "add": AddConfig(self.data_bits, self.data_bits, self.add_shift_max),
                "pool": PoolConfig(self.data_bits, self.pool_window, self.pool_shift_max,
                                   self.pool_ports, self.pool_groups)}

    def unit_counts(self) -> dict[str, int]:
        """How many of each post-processing unit a column has: a requantizer behind each
        array (both convert at once), one residual adder and one pooler (shared)."""
        return {"requant": len(self.arrays), "add": 1, "pool": 1}

    @property
    def arrays(self) -> tuple[str, ...]:
        """The array kinds the engine has (each with its own conv unit)."""
        return tuple(k for k in ("shift", "adder") if getattr(self, k) is not None)

    @property
    def acc_bits(self) -> int:
        return max(pe.acc_bits for pe in (self.shift, self.adder) if pe is not None)

    def weight_bits(self, kind: str) -> int:
        """One step's weights: ``cols x lanes`` lane weights (0 when the kind is absent)."""
        pe = getattr(self, kind)
        if pe is None:
            return 0
        return self.cols * self.lanes * Shape.cast(weight_shape(pe.lane)).width

    @property
    def param_bits(self) -> int:
        return self.cols * (ENGINE_MULT_BITS + self.bias_bits)

    def memory_widths(self) -> dict[MemoryId, int]:
        return {MemoryId.PROGRAM: DESCRIPTOR_BITS,
                MemoryId.SHIFT_WEIGHTS: self.weight_bits("shift"),
                MemoryId.ADDER_WEIGHTS: self.weight_bits("adder"),
                MemoryId.PARAMS: self.param_bits}

    def stored_widths(self) -> dict[MemoryId, int]:
        """The bits of each memory's words the engine reads, which synthesis keeps (Yosys and
        Vivado drop a memory's unread bits): in an engine without paired units, of the pair
        fields only ``pair`` (a set one is an illegal descriptor)."""
        unread = 0 if self.paired else sum(b for n, b, _ in DESCRIPTOR_FIELDS
                                           if n.startswith("pair_"))
        return {**self.memory_widths(), MemoryId.PROGRAM: DESCRIPTOR_BITS - unread}

    def memory_depths(self) -> dict[MemoryId, int]:
        return {MemoryId.PROGRAM: self.program_depth, MemoryId.SHIFT_WEIGHTS: self.shift_depth,
                MemoryId.ADDER_WEIGHTS: self.adder_depth, MemoryId.PARAMS: self.param_depth}

    def to_json(self) -> dict:
        def pe_json(pe):
            return None if pe is None else {"acc_bits": pe.acc_bits, "shift_max": pe.lane.shift_max,
                                            "tree_register_every": pe.tree_register_every}
        return {"rows": self.rows, "cols": self.cols, "lanes": self.lanes,
                "data_bits": self.data_bits, "shift": pe_json(self.shift),
                "adder": pe_json(self.adder), "act_depth": self.act_depth,
                "shift_depth": self.shift_depth, "adder_depth": self.adder_depth,
                "param_depth": self.param_depth, "program_depth": self.program_depth,
                "bias_bits": self.bias_bits, "add_shift_max": self.add_shift_max,
                "pool_window": self.pool_window, "requant_shift_min": self.requant_shift_min,
                "requant_shift_max": self.requant_shift_max,
                "pool_shift_max": self.pool_shift_max, "adder_act_depth": self.adder_act_depth,
                "pool_ports": self.pool_ports, "pool_groups": self.pool_groups,
                "lutram": list(self.lutram), "paired": list(self.paired)}

    @classmethod
    def from_json(cls, d: dict) -> EngineConfig:
        from hw.config import LaneConfig

        def pe(kind):
            v = d.get(kind)
            if v is None:
                return None
            lane = LaneConfig(LaneKind(kind), int(d["data_bits"]), int(v["shift_max"]))
            return PEConfig(lane, int(d["lanes"]), int(v["acc_bits"]),
                            int(v["tree_register_every"]))
        keys = ("rows", "cols", "lanes", "data_bits", "act_depth", "shift_depth", "adder_depth",
                "param_depth", "program_depth", "bias_bits", "add_shift_max", "pool_window",
                "requant_shift_min", "requant_shift_max", "pool_shift_max", "adder_act_depth",
                "pool_ports", "pool_groups")
        return cls(shift=pe("shift"), adder=pe("adder"), **{k: int(d[k]) for k in keys},
                   lutram=tuple(str(m) for m in d.get("lutram", ())),
                   paired=tuple(str(k) for k in d.get("paired", ())))


def pe_module_name(kind: str) -> str:
    """Verilog module name of the PEs of one array kind when emitted as one module each."""
    return f"shiftadd_pe_{kind}"


class _LoopNest:
    """``LOOP_LEVELS`` nested counters (level 0 fastest) with an incrementally computed address
    offset: advancing level ``l`` (all lower levels wrap) adds the descriptor's ``j<l>``.
    After the last index of every level, the nest wraps to all zeros and offset 0.

    ``at_max[l]`` (``idx[l] == m<l>``) is a register, not a comparator: ``clear`` sets it from
    ``d_clear`` (the descriptor as it is in that cycle; ``d`` unless the nest's own copy is
    loaded in the same cycle) and each step from ``idx[l] == m<l> - 1``, with ``m<l> - 1`` also
    registered at ``clear``. The comparators in front of the offset's adder and of everything
    the feeder enables at a loop's end were long paths (``benchmarks/timing.py``). ``d`` must
    not change between a ``clear`` and the steps after it.

    ``pair_next`` (a unit with paired convs): the nest starts over for a paired conv's steps
    (``pair``) after its wrap (at ``clear``: ``d_clear.pair``): only its two lowest levels
    count, and its offset starts at ``pair_in``."""

    def __init__(self, m: Module, d, step, clear, name: str = "loop", d_clear=None,
                 pair_next=None) -> None:
        d_clear = d if d_clear is None else d_clear
        self.idx = [Signal(16, name=f"{name}_i{lvl}") for lvl in range(LOOP_LEVELS)]
        self.offset = Signal(ADDR, name=f"{name}_offset")
        self.at_max = [Signal(name=f"{name}_max{lvl}") for lvl in range(LOOP_LEVELS)]
        m_zero = [Signal(name=f"{name}_mzero{lvl}") for lvl in range(LOOP_LEVELS)]
        m_less = [Signal(16, name=f"{name}_mless{lvl}") for lvl in range(LOOP_LEVELS)]
        self.last = Signal(name=f"{name}_last")
        m.d.comb += self.last.eq(Cat(*self.at_max).all())
        jump = Const(0, ADDR)
        for lvl in reversed(range(LOOP_LEVELS)):  # the lowest level not at its maximum wins
            jump = Mux(~self.at_max[lvl], getattr(d, f"j{lvl}"), jump)
        # a paired conv's steps (``pair``, from a clear or the wrap): levels 2 and up at their
        # one index, the offset from ``pair_in``
        paired = pair_next is not None

        def zero_at(lvl, zero, pair):
            return zero | pair if paired and lvl >= 2 else zero

        def first_offset(pair, src):
            return Mux(pair, src.pair_in, 0) if paired else 0
        pair_clear = d_clear.pair if paired else None
        pair_wrap = (pair_next & self.last) if paired else None
        with m.If(clear):
            for lvl in range(LOOP_LEVELS):
                top = getattr(d_clear, f"m{lvl}")
                m.d.sync += [self.idx[lvl].eq(0),
                             self.at_max[lvl].eq(zero_at(lvl, top == 0, pair_clear)),
                             m_zero[lvl].eq(top == 0), m_less[lvl].eq(top - 1)]
            m.d.sync += self.offset.eq(first_offset(pair_clear, d_clear))
        with m.Elif(step):
            carry = Const(1)
            for lvl in range(LOOP_LEVELS):
                with m.If(carry):
                    m.d.sync += [self.idx[lvl].eq(Mux(self.at_max[lvl], 0, self.idx[lvl] + 1)),
                                 self.at_max[lvl].eq(Mux(self.at_max[lvl],
                                                         zero_at(lvl, m_zero[lvl], pair_wrap),
                                                         self.idx[lvl] == m_less[lvl]))]
                carry = carry & self.at_max[lvl]
            m.d.sync += self.offset.eq(Mux(self.last, first_offset(pair_next, d),
                                           self.offset + jump))


def _times(x, k: int):
    """``x * k`` for a constant ``k`` as a sum of shifted copies of ``x`` (no multiplier: Yosys
    maps a product by a constant to a DSP48E1)."""
    terms = [x << b for b in range(k.bit_length()) if k >> b & 1]
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total


def _delay(m: Module, value, cycles: int, name: str):
    prev = value
    for k in range(cycles):
        reg = Signal.like(value, name=f"{name}_d{k}")
        m.d.sync += reg.eq(prev)
        prev = reg
    return prev


class Engine(wiring.Component):
    """The accelerator without its bus wrapper: stream in ``s_axis``, stream out ``m_axis``, and
    the engine side of :class:`hw.regfile.RegisterFile` (``start``/``accepted``/``done``/
    ``idle``/``busy``/``error_set``/``images``). A start runs ``images`` INFER frames (0 or 1:
    one) back to back: ``TLAST`` must end the last frame only, and only the last result
    carries it, so one DMA transfer each way serves a whole batch."""

    def __init__(self, cfg: EngineConfig, *, pe_modules: bool = False) -> None:
        if not isinstance(cfg, EngineConfig):
            raise ValueError(f"cfg must be an EngineConfig, not {cfg!r}")
        self._cfg = cfg
        self._pe_modules = pe_modules
        super().__init__({
            "s_axis": In(stream.Signature(BEAT)), "m_axis": Out(stream.Signature(BEAT)),
            "start": In(1), "accepted": Out(1), "done": Out(1), "idle": Out(1), "busy": Out(1),
            "error_set": Out(len(ERROR_BITS)), "images": In(IMAGES_BITS),
        })

    @property
    def config(self) -> EngineConfig:
        return self._cfg

    def elaborate(self, platform):  # noqa: C901 - one FSM, kept in one place on purpose
        m = Module()
        cfg = self._cfg
        R, C, B = cfg.rows, cfg.cols, cfg.data_bits
        err = {name: i for i, name in enumerate(ERROR_BITS)}
        bad_desc = Signal()
        bad_len = Signal()
        m.d.comb += [self.error_set[err["bad_descriptor"]].eq(bad_desc),
                     self.error_set[err["bad_length"]].eq(bad_len)]

        # ---------------------------------------------------------------- memories
        widths, depths = cfg.memory_widths(), cfg.memory_depths()
        rd, wr = {}, {}  # activation bank -> read ports, and the write port of each copy
        for bank, (depth, ports) in cfg.act_banks().items():
            # block RAM, one copy per read port, as the generator prices them, each copy its
            # own memory with the bank's write port. One memory of R + 1 read ports maps to the
            # same cells, but Yosys' memory_libmap makes the copies itself at a cost in memory
            # that outgrew the WebAssembly Yosys' 4 GiB at 10x16x16 (the main bank alone: 3.8
            # GB, against 0.3 GB as 11 memories, 253 RAMB18E1 either way; BENCHMARKS.md)
            name = "act" if bank == BANK_MAIN else "act_adder"
            rd[bank], wr[bank] = [], []
            for p in range(ports):
                mem = Memory(shape=unsigned(cfg.word_bits), depth=depth, init=[],
                             attrs={"ram_style": "block"})
                m.submodules[f"{name}{p}"] = mem
                rd[bank].append(mem.read_port())
                wr[bank].append(mem.write_port())
        main_rd = rd[BANK_MAIN]
        mems = {}
        for mid in MemoryId:
            if widths[mid] == 0:
                continue
            # block RAM even when shallow: the program and parameter words are hundreds of bits
            # wide, and as LUT RAM they took about 4,700 LUTs at 8x16x16 (BENCHMARKS.md); LUT
            # RAM only where the sizing put them (``cfg.lutram``: block RAM was short)
            style = "distributed" if mid.name.lower() in cfg.lutram else "block"
            mems[mid] = Memory(shape=unsigned(widths[mid]), depth=depths[mid], init=[],
                               attrs={"ram_style": style})
            m.submodules[f"mem_{mid.name.lower()}"] = mems[mid]
        prog_rd = mems[MemoryId.PROGRAM].read_port()

        # ---------------------------------------------------------------- state
        d = Signal(DESCRIPTOR)
        pc = Signal(range(cfg.program_depth + 1))
        m.d.comb += prog_rd.addr.eq(pc)
        beat, last_beat = self.s_axis.payload.data, self.s_axis.payload.last
        take = Signal()
        m.d.comb += take.eq(self.s_axis.valid & self.s_axis.ready)
        asm_beats = max(beats_per_word(w) for w in (*widths.values(), cfg.word_bits))
        asm = Signal(asm_beats * BEAT_BITS)
        asm_next = Signal.like(asm)
        k = Signal(range(asm_beats + 1))
        # a shift register: each beat enters at the top, so a word of n beats ends up in the
        # top n beats (a fixed slice per memory) and no bit needs a multiplexer
        m.d.comb += asm_next.eq(Cat(asm[BEAT_BITS:], beat))

        def assembled(n, width: int):
            """The word of ``width`` bits that the last ``n`` beats (a constant) brought."""
            return asm_next[(asm_beats - n) * BEAT_BITS:][:width]
        count = Signal(24)
        in_final = Signal()  # INPUT: ``count == m0``, registered (the comparison in front of
        # the frame check and the INPUT frontier's release was the core's longest path)
        ld_mem = Signal(8)
        ld_addr = Signal(16)
        # the last beat's index in a word (beats per word - 1) of the memory being loaded or
        # of the input, and ``k == k_last`` (``k_end``), both registered: the subtraction and
        # the comparison in front of the FSM's next-state logic were a long path
        k_last = Signal(range(asm_beats + 1))
        k_end = Signal()
        out_last = Signal()  # OUTPUT: this word is the tensor's last
        is_shift = Signal()
        m.d.comb += is_shift.eq(d.op == Opcode.SHIFT_CONV)
        is_conv = Signal()
        m.d.comb += is_conv.eq(is_shift | (d.op == Opcode.ADDER_CONV))
        is_kind = {"shift": is_shift, "adder": d.op == Opcode.ADDER_CONV}  # a conv of that array

        # ---------------------------------------------------------------- the conv units
        units = {kind: _ConvUnit(kind, cfg) for kind, pe in (("shift", cfg.shift),
                                                                ("adder", cfg.adder))
                 if pe is not None}
        # DISPATCH hands ``d`` to the unit of its kind (``unit_go``, below) if it is legal
        in_dispatch = Signal()
        unit_go = {kind: Signal(name=f"{kind}_go") for kind in units}
        # INPUT beside the first conv (``follow_input``): every input word below in_frontier is
        # in its bank. A conv with follow_input arms it (0: nothing written yet); the INPUT
        # after it starts it at its base and moves it word by word as the words reach the
        # bank; anything else while armed (a program without that INPUT, an error) releases it
        # (past every address: the conv no longer waits), so the conv never waits for ever
        in_frontier = Signal(ADDR)
        in_armed = Signal()
        # the row walk: a conv's first tile's window positions and bases, one row per cycle
        # from CHECK_ALL on (with the descriptor's walk fields copied at CHECK, so that the
        # walk goes on after DISPATCH); its unit takes them once they are all there
        # (``rows_done``: at its start, or later while it waits for them), and the next
        # conv's walk starts only after that (``rows_pending`` holds it in CHECK)
        walk = [tuple(Signal(shape, name=f"walk_row{r}_{n}") for n, shape in
                      (("iy0", ROWV), ("ix0", ROWV), ("addr", ADDR))) for r in range(R)]
        wy, wx, wa = Signal(ROWV, name="walk_y"), Signal(ROWV, name="walk_x"), \
            Signal(ADDR, name="walk_addr")
        walk_r = Signal(range(R + 1), name="walk_r", init=R)
        walk_thr = Signal(signed(16), name="walk_wrap_at")
        # (and the fields its unit's stall needs when it takes them, ``_ConvUnit.build``;
        # ``span_wrap``/``span_nowrap``: span + the tile step past/within an output row)
        wk = Signal(data.StructLayout({**{n: DESCRIPTOR.members[n] for n in WALK_FIELDS},
                                       "span_wrap": ADDR, "span_nowrap": ADDR}),
                    name="walk_desc")
        # row R-1's base + span, and the same for the conv's second tile either way
        walk_reach = [Signal(ADDR, name=f"walk_reach{n}") for n in ("", "_wrap", "_nowrap")]
        rows_done = Signal()
        with m.If(walk_r != R):
            for r in range(R):
                with m.If(walk_r == r):
                    m.d.sync += [walk[r][0].eq(wy), walk[r][1].eq(wx), walk[r][2].eq(wa)]
            with m.If(walk_r == R - 1):
                m.d.sync += [walk_reach[0].eq(wa + wk.span), walk_reach[1].eq(wa + wk.span_wrap),
                             walk_reach[2].eq(wa + wk.span_nowrap)]
            ny, nx, na = _advance(wy, wx, wa, wk.walk_dx, wk.walk_dy, wk.walk_nowrap,
                                  wk.walk_wrap, walk_thr, wk)
            m.d.sync += [wy.eq(ny), wx.eq(nx), wa.eq(na), walk_r.eq(walk_r + 1),
                         rows_done.eq(walk_r == R - 1)]
        for kind, u in units.items():
            other = units.get("adder" if kind == "shift" else "shift")
            wmem = mems[MemoryId.SHIFT_WEIGHTS if kind == "shift" else MemoryId.ADDER_WEIGHTS]
            beside = kind == "shift" and BANK_ADDER in rd
            u.build(m, d, other, rd[BANK_MAIN if kind == "shift" else BANK_ADDER],
                    wmem.read_port(), mems[MemoryId.PARAMS].read_port(),
                    pe_module=pe_module_name(kind) if self._pe_modules else None,
                    alt_rd=rd[BANK_ADDER] if beside else None,
                    in_frontier=in_frontier if beside else None, rows=walk,
                    rows_done=rows_done, rows_reach=walk_reach, rows_d=wk)
        rows_pending = Signal()  # a unit waits for its walked rows
        m.d.comb += rows_pending.eq(Cat(*(u.rows_wait for u in units.values())).any() &
                                    ~rows_done)
        all_idle = Signal()
        m.d.comb += all_idle.eq(~Cat(*(u.busy for u in units.values())).any())
        # DISPATCH's conditions, registered from the units' next-cycle status: the cycle before
        # a DISPATCH cycle (CHECK_ALL, or DISPATCH waiting) starts no conv, and ``d`` holds
        # (the units' flags through the readiness logic into every start and clear were the
        # engine's longest paths, ``benchmarks/timing.py``). ``unit_free``: the unit of that
        # kind may take ``d``: at most three convs in flight (the other unit's last, this
        # unit's last, draining, and this one); with ``barrier`` nothing else
        idle_q = Signal()
        m.d.sync += idle_q.eq(~Cat(*(u.busy_n for u in units.values())).any())
        unit_free = {}
        for kind, u in units.items():
            free = u.accept_n & (~d.barrier | d.follow_own | ~u.busy_n)
            other = units.get("adder" if kind == "shift" else "shift")
            if other is not None:
                free = free & ~other.full_n & (~d.barrier | ~other.busy_n)
            unit_free[kind] = free

        # ---------------------------------------------------------------- post-processing
        # C residual adders and C poolers, shared: a unit's conv with ``res`` (the compiler
        # never overlaps two of them) or, while both arrays are idle, ADD and AVGPOOL
        ppu = cfg.post_processing()
        adders = [ResidualAdder(ppu["add"]) for _ in range(C)]
        pools = [AvgPooler(ppu["pool"]) for _ in range(C)]
        for c in range(C):
            m.submodules[f"add{c}"] = adders[c]
            m.submodules[f"pool{c}"] = pools[c]
        res_on = Signal()  # a word of a conv with ``res`` is at the residual adders
        res_we = Signal()
        res_y = Signal(C * B)
        res_addr = Signal(17)
        res_rd_addr = Signal(17)
        res_banks = Signal(2)
        res_shift, res_relu = Signal(6), Signal()
        res_sa, res_sb = Signal(6), Signal(6)
        res_on1, res_on2 = Signal(), Signal()  # ... when the adders take their shifts, relu
        # word by word: a unit's words of a conv with res, at each stage of the adders
        for u in units.values():
            with m.If(u.res_on):
                m.d.comb += [res_on.eq(1), res_we.eq(u.rq_we), res_y.eq(u.rq_y),
                             res_addr.eq(u.rq_addr), res_banks.eq(u.rq_banks)]
            with m.If(u.res_rd_on):
                m.d.comb += res_rd_addr.eq(u.res_rd_addr)
            with m.If(u.res_on1):
                m.d.comb += [res_on1.eq(1), res_shift.eq(u.res_shift), res_sa.eq(u.res_sa),
                             res_sb.eq(u.res_sb)]
            with m.If(u.res_on2):
                m.d.comb += [res_on2.eq(1), res_relu.eq(u.res_relu)]
        res_rd = main_rd[R]
        m.d.comb += res_rd.addr.eq(res_rd_addr)

        # every conv's words reach the write port as late as a residual add's, so that a unit's
        # conv with ``res`` and its next one without never write in one cycle (the next conv's
        # first word may leave the array right after the last one's last word)
        wr_sources = []  # (en, banks, addr, data)
        direct_y = {}  # each unit's words without res, where they are written
        for kind, u in units.items():
            src = tuple(_delay(m, v, ResidualAdder.latency, f"{kind}_{n}")
                        for v, n in ((u.rq_we & ~u.res_on & ~u.rq_pool, "wr_we"),
                                     (u.rq_banks, "wr_banks"), (u.rq_addr, "wr_addr"),
                                     (u.rq_y, "wr_y")))
            wr_sources.append(src)
            direct_y[kind] = src[3]

        # a conv with ``pool`` (at most one in flight: nothing is dispatched while it runs):
        # its words go to the poolers instead of memory, one sum per channel block (``g``),
        # and the pooled words to ``pool_base + g`` in ``pool_banks``
        pool_busy = Signal()
        pool_shift = Signal(6)
        pool_base = Signal(16)
        pool_banks = Signal(2)
        pool_last_g = Signal(8)
        pool_kind = Signal()  # the pool conv's unit: 1 for the shift array's
        p_valid, p_first, p_last, p_res = Signal(), Signal(), Signal(), Signal()
        p_g = Signal(8)
        for u in units.values():
            with m.If(u.pool_w):
                m.d.comb += [p_valid.eq(1), p_first.eq(u.pool_first), p_last.eq(u.pool_last),
                             p_g.eq(u.pool_g), p_res.eq(u.pool_res)]
        p_word = Signal(C * B)
        for kind, u in units.items():
            with m.If(u.pool_w):
                m.d.comb += p_word.eq(direct_y[kind])

        # ---------------------------------------------------------------- vector ops
        step = Signal()
        clear = Signal()
        loop = _LoopNest(m, d, step, clear)
        vec_on = Signal()
        vec_feeding = Signal()
        is_add = Signal()
        m.d.comb += is_add.eq(d.op == Opcode.ADD)
        v_issue = Signal()
        m.d.comb += v_issue.eq(vec_on & vec_feeding)
        v1 = Signal()
        v1_first, v1_last = Signal(), Signal()
        # port 0 is read by every transfer; the others by those that reach them
        v1_port = {p: Signal(name=f"v1_port{p}") for p in range(1, cfg.pool_ports)}
        optr = Signal(17)
        v1_addr = Signal(17)
        m.d.sync += v1.eq(v_issue)
        with m.If(v_issue):
            first = (loop.idx[0] == 0) & (loop.idx[1] == 0)
            lastw = loop.at_max[0] & loop.at_max[1]
            emit = is_add | lastw
            m.d.sync += [v1_first.eq(first), v1_last.eq(lastw), v1_addr.eq(optr)]
            # the ports this transfer reads: ``ports``, or ``ports_last`` at a window row's end
            for p in range(1, cfg.pool_ports):
                m.d.sync += v1_port[p].eq(Mux(loop.at_max[0], d.ports_last, d.ports) > p)
            with m.If(emit):
                m.d.sync += optr.eq(optr + 1)
        # the ports ADD and AVGPOOL read: their base addresses (ADD: its two operands; AVGPOOL:
        # ``ports`` consecutive window positions, ``port_step`` words apart), set at DISPATCH
        vports = max(2, cfg.pool_ports)
        vbase = [Signal(ADDR, name=f"vec_base{p}") for p in range(vports)]
        for c in range(C):
            a_c = main_rd[0].data.word_select(c, B)
            b_c = main_rd[1].data.word_select(c, B)
            # a pool conv's word: from the residual adders (res) or its unit
            pw_c = Mux(p_res, adders[c].o.payload.y, p_word.word_select(c, B))
            m.d.comb += pools[c].i.payload.x[0].eq(Mux(p_valid, pw_c, a_c))
            for p in range(1, cfg.pool_ports):  # the ports this transfer does not read: zero
                m.d.comb += pools[c].i.payload.x[p].eq(
                    Mux(~p_valid & v1_port[p], main_rd[p].data.word_select(c, B), 0))
            m.d.comb += [adders[c].i.valid.eq(Mux(res_on, res_we, v1 & is_add)),
                         adders[c].i.payload.a.eq(Mux(res_on, res_y.word_select(c, B), a_c)),
                         adders[c].i.payload.b.eq(Mux(res_on, res_rd.data.word_select(c, B),
                                                      b_c)),
                         adders[c].shift_a.eq(Mux(res_on1, res_sa, d.shift_a)),
                         adders[c].shift_b.eq(Mux(res_on1, res_sb, d.shift_b)),
                         adders[c].shift.eq(Mux(res_on1, res_shift, d.shift)),
                         adders[c].relu.eq(Mux(res_on2, res_relu, d.relu)),
                         adders[c].o.ready.eq(1),
                         pools[c].i.valid.eq((v1 & ~is_add) | p_valid),
                         pools[c].i.payload.first.eq(Mux(p_valid, p_first, v1_first)),
                         pools[c].i.payload.last.eq(Mux(p_valid, p_last, v1_last)),
                         pools[c].i.payload.g.eq(Mux(p_valid, p_g, 0)),
                         pools[c].shift.eq(Mux(pool_busy, pool_shift, d.shift)),
                         pools[c].o.ready.eq(1)]
        assert ResidualAdder.latency == AvgPooler.latency
        v0_addr = Signal(17)
        m.d.comb += v0_addr.eq(Mux(res_on, res_addr, v1_addr))
        v_addr = _delay(m, v0_addr, ResidualAdder.latency, "vec_addr")
        v_banks = _delay(m, Mux(res_on, res_banks, d.out_banks), ResidualAdder.latency,
                         "vec_banks")
        v_we = Signal()
        # a pool conv's words leave the residual adders for the poolers, not memory; the
        # pooled words are the poolers' own source
        m.d.comb += v_we.eq((adders[0].o.valid & ~(p_valid & p_res)) |
                            (pools[0].o.valid & ~pool_busy))
        v_data = Mux(adders[0].o.valid, Cat(*(a.o.payload.y for a in adders)),
                     Cat(*(p.o.payload.y for p in pools)))
        wr_sources.append((v_we, v_banks, v_addr, v_data))
        pooled_we = Signal()
        pooled_g = _delay(m, p_g, AvgPooler.latency, "pooled_g")
        m.d.comb += pooled_we.eq(pools[0].o.valid & pool_busy)
        wr_sources.append((pooled_we, pool_banks, pool_base + pooled_g,
                           Cat(*(p.o.payload.y for p in pools))))
        # the last pooled word is in memory (like a tile's last word: WRITE_DELAY after its
        # source offers it)
        pool_done = _delay(m, pooled_we & (pooled_g == pool_last_g), WRITE_DELAY, "pool_done")
        for kind, u in units.items():
            m.d.comb += u.pool_done.eq(pool_done & (pool_kind == (kind == "shift")))
        with m.If(Cat(*(u.pool_finish for u in units.values())).any()):
            m.d.sync += pool_busy.eq(0)

        # ---------------------------------------------------------------- input / output
        in_we = Signal()
        in_addr = Signal(17)
        act_bpw = beats_per_word(cfg.word_bits)
        in_word = Signal(cfg.word_bits)  # in_beats beats, the rest of the word zero
        with m.Switch(d.in_beats):
            for n in range(1, act_bpw + 1):
                with m.Case(n):
                    m.d.comb += in_word.eq(assembled(n, min(n * BEAT_BITS, cfg.word_bits)))
        wr_sources.append((in_we, d.out_banks, in_addr, in_word))
        # a word is readable WRITE_DELAY + 1 cycles after in_we (the write port's register,
        # then the block RAM's write edge)
        in_written = _delay(m, in_we, WRITE_DELAY, "in_written")
        release = Signal()
        with m.If(release):  # past every address: the conv no longer waits
            m.d.sync += [in_frontier.eq((1 << (ADDR.width - 1)) - 1), in_armed.eq(0)]
        with m.Elif(in_written & in_armed):
            m.d.sync += in_frontier.eq(in_frontier + 1)
        m.d.comb += release.eq(bad_desc | bad_len)  # an error ends the program
        obuf = Signal(act_bpw * BEAT_BITS)

        # ---------------------------------------------------------------- bank write ports
        # the compiler never lets two sources write one bank in the same cycle. The selection
        # is registered (a word reaches its block RAM WRITE_DELAY cycles after its source
        # offers it): the sources' enables and the descriptor's bank bits, through the
        # selection into every block RAM's write enable and address, were the engine's longest
        # path (``benchmarks/timing.py``)
        for bank, copies in wr.items():
            sel_en = Signal(name=f"bank{bank}_we")
            sel_addr = Signal.like(copies[0].addr, name=f"bank{bank}_waddr")
            sel_data = Signal.like(copies[0].data, name=f"bank{bank}_wdata")
            m.d.sync += sel_en.eq(Cat(*(en & banks[bank] for en, banks, _, _ in wr_sources))
                                  .any())
            for en, banks, addr, value in wr_sources:
                with m.If(en & banks[bank]):
                    m.d.sync += [sel_addr.eq(addr), sel_data.eq(value)]
            for port in copies:
                m.d.comb += [port.en.eq(sel_en), port.addr.eq(sel_addr),
                             port.data.eq(sel_data)]

        # loader write ports
        ld_we = Signal()
        for mid, mem in mems.items():
            wp = mem.write_port()
            m.d.comb += [wp.addr.eq(ld_addr),
                         wp.data.eq(assembled(beats_per_word(widths[mid]), widths[mid])),
                         wp.en.eq(ld_we & (ld_mem == int(mid)))]

        # ---------------------------------------------------------------- descriptor checks
        # each check is computed from ``d`` in CHECK and registered (``d_checks``), CHECK_ALL
        # registers their conjunction (``d_ok``), and DISPATCH only combines that with the
        # units' busy flags: the comparators and the conjunction in one cycle, or added to the
        # dispatch logic, were the engine's longest paths (``benchmarks/timing.py``)
        checks = []  # each must hold
        # addresses a descriptor names must lie inside the memories it names
        banks = cfg.act_banks()
        linear = (d.op == Opcode.INPUT) | (d.op == Opcode.OUTPUT) | (d.op == Opcode.ADD)
        writes = (d.op == Opcode.INPUT) | is_conv | (d.op == Opcode.ADD) | \
            (d.op == Opcode.AVGPOOL)
        checks.append(~(writes & (d.out_banks == 0)))
        # INPUT / OUTPUT / ADD extend over m0 + 1 activation words: base + m0 < depth
        for bank in range(2):
            if bank in banks:
                depth = banks[bank][0]
                checks += [~(d.out_banks[bank] & (d.out_base >= depth)),
                           ~(d.out_banks[bank] & linear & (d.out_base + d.m0 >= depth))]
            else:
                checks.append(~d.out_banks[bank])
        for bank, (depth, _) in banks.items():
            # with one bank every descriptor reads the main bank
            from_adder = (d.op == Opcode.ADDER_CONV) | (is_shift & d.in_adder)
            reads = Const(1) if BANK_ADDER not in banks else \
                (~from_adder if bank == BANK_MAIN else from_adder)
            checks += [~(reads & (d.in_base >= depth)),
                       ~(reads & linear & (d.in_base + d.m0 >= depth))]
        checks += [d.in2_base < cfg.act_depth, d.p_base < cfg.param_depth,
                   d.w_base < Mux(is_shift, cfg.shift_depth, cfg.adder_depth),
                   ~((d.op == Opcode.INPUT) & ((d.in_beats == 0) | (d.in_beats > act_bpw)))]
        if BANK_ADDER not in banks:  # no adder bank to read, no INPUT to run beside
            checks.append(~(d.in_adder | d.follow_input))
        else:  # only a shift conv reads the adder bank beside INPUT
            checks.append(~((d.in_adder | d.follow_input) & ~is_shift))
        # a conv follows one conv's frontier at most (its unit compares one)
        checks.append(~(is_conv & ((d.follow & d.follow_own) |
                                   (d.follow_input & (d.follow | d.follow_own)))))
        # shifts must lie in the ranges the post-processing units were built for
        add_max = cfg.add_shift_max
        adds = (is_conv & d.res) | (d.op == Opcode.ADD)
        checks += [~(is_conv & (d.shift < cfg.requant_shift_min)),
                   ~(is_conv & (d.shift > cfg.requant_shift_max)),
                   ~(adds & ((d.shift_a > add_max) | (d.shift_b > add_max))),
                   ~(adds & (Mux(is_conv, d.res_shift, d.shift) > add_max)),
                   ~((d.op == Opcode.AVGPOOL) & (d.shift > cfg.pool_shift_max)),
                   ~((d.op == Opcode.AVGPOOL) & ((d.ports == 0) | (d.ports > cfg.pool_ports))),
                   ~((d.op == Opcode.AVGPOOL) & ((d.ports_last == 0) |
                                                 (d.ports_last > d.ports)))]
        # a conv with pool: its sums must fit the poolers (blocks, pixels, shift), its last
        # pixel must lie in its last tile (or the pool would never end), and its pooled words
        # in their banks
        pool = is_conv & d.pool
        checks += [~(pool & (d.m_cb >= cfg.pool_groups)), ~(pool & (d.pixels > cfg.pool_window)),
                   ~(pool & (d.pool_shift > cfg.pool_shift_max))]
        for bank in range(2):
            if bank in banks:
                checks.append(~(pool & d.out_banks[bank] & (d.out_base + d.m_cb >= banks[bank][0])))
        # a paired conv (``pair``): on a unit built for it, without pool, its second output in
        # banks the engine has, its parameters in their memory, its shift in range
        # (an engine without paired units refuses them all, and checks nothing else of them)
        pair = is_conv & d.pair
        paired = Const(0)
        for kind in cfg.paired:
            paired = paired | (is_shift if kind == "shift" else (d.op == Opcode.ADDER_CONV))
        checks.append(~(pair & ~paired))
        if cfg.paired:
            checks += [~(pair & d.pool), ~(pair & (d.pair_banks == 0)),
                       ~(pair & (d.pair_p >= cfg.param_depth)),
                       ~(pair & (d.pair_shift < cfg.requant_shift_min)),
                       ~(pair & (d.pair_shift > cfg.requant_shift_max))]
            for bank in range(2):
                if bank in banks:
                    checks.append(~(pair & d.pair_banks[bank] &
                                    (d.pair_out >= banks[bank][0])))
                else:
                    checks.append(~(pair & d.pair_banks[bank]))
        d_checks = Signal(len(checks))
        d_ok = Signal()
        # ... and a pool conv's pixels must end in its last tile: the tile's bounds are
        # registered at CHECK and compared at CHECK_ALL (the products' adders and the
        # comparisons in one cycle were the engine's longest path)
        pool_lo, pool_hi = Signal(17), Signal(17)
        pool_ok = ~(pool & ((d.pixels <= pool_lo) | (d.pixels > pool_hi)))

        # ``unit_go``: ``d`` is a conv of the unit's kind and the unit may take it (registered
        # like ``idle_q``; nothing starts beside a conv with pool, ``pool_busy``)
        pool_busy_n = pool_busy & ~Cat(*(u.pool_finish for u in units.values())).any()
        for kind in units:
            m.d.sync += unit_go[kind].eq(is_kind[kind] & unit_free[kind] & ~pool_busy_n)
            m.d.comb += units[kind].start.eq(in_dispatch & d_ok & unit_go[kind])

        # ---------------------------------------------------------------- control FSM
        # SETTLE after a vector op's last item: the unit's pipeline and the bank write port
        vec_settle = ResidualAdder.latency + 2 + WRITE_DELAY
        drain = Signal(range(vec_settle + 1))
        in_frame = Signal()  # an INFER frame's TLAST has not been seen yet
        with m.If(take & last_beat):
            m.d.sync += in_frame.eq(0)
        # a batch (IMAGES > 1): the frames still to come after this one, and whether there are
        # any (registered: TLAST must end a frame exactly when it is the batch's last)
        later = Signal(IMAGES_BITS)
        more = Signal()
        in_pending = Signal()  # this image's INPUT has not read its last word yet
        finish = "DRAIN_OR_DONE"
        m.d.comb += [self.busy.eq(0), self.idle.eq(0)]

        def refuse_frame() -> None:
            """A malformed frame: flag it and discard the rest (unless this beat ended it)."""
            m.d.comb += bad_len.eq(1)
            with m.If(last_beat):
                m.next = "DONE"
            with m.Else():
                m.next = "DRAIN"

        def assemble_words(we, final_word, *, complete: str, more: str | None,
                           ends=1) -> None:
            """One beat of a state that builds ``k_last + 1``-beat words from the stream into
            ``asm``: ``we`` pulses with each complete word (``asm_next`` holds it). After the
            final word the frame must end (``complete``; TLAST on that beat exactly when
            ``ends``: a batch's earlier frames carry none) or, with ``more``, may go on in that
            state. TLAST anywhere else is a malformed frame."""
            with m.If(take):
                m.d.sync += asm.eq(asm_next)
                with m.If(k_end):
                    m.d.comb += we.eq(1)
                    m.d.sync += [k.eq(0), k_end.eq(k_last == 0)]
                    with m.If(final_word & (last_beat == ends)):
                        m.next = complete
                    if more is not None:
                        with m.Elif(final_word):
                            m.next = more
                    with m.Elif(final_word | last_beat):
                        refuse_frame()
                with m.Else():
                    m.d.sync += [k.eq(k + 1), k_end.eq(k + 1 == k_last)]
                    with m.If(last_beat):
                        refuse_frame()
        with m.FSM(name="engine"):
            with m.State("IDLE"):
                m.d.comb += self.idle.eq(1)
                with m.If(self.start):
                    m.d.comb += self.accepted.eq(1)
                    m.d.sync += [later.eq(Mux(self.images == 0, 0, self.images - 1)),
                                 more.eq(self.images > 1)]
                    m.next = "HEADER"
            with m.State("HEADER"):
                m.d.comb += [self.busy.eq(1), self.s_axis.ready.eq(1)]
                with m.If(take):
                    with m.If((beat == header_beat(FrameKind.INFER)) & ~last_beat):
                        m.d.sync += [pc.eq(0), in_frame.eq(1), in_pending.eq(1)]
                        m.next = "FETCH"
                    with m.Elif((beat == header_beat(FrameKind.LOAD)) & ~last_beat):
                        m.next = "SECTION"
                    with m.Else():
                        refuse_frame()
            # ---------------------------------------------------------- load
            with m.State("SECTION"):
                m.d.comb += [self.busy.eq(1), self.s_axis.ready.eq(1)]
                mid = beat[SECTION_WORDS_BITS:]
                words = beat[:SECTION_WORDS_BITS]
                known = Const(0)
                fits = Const(0)
                bpw = Const(0, k_last.shape())
                for lid in mems:
                    hit = mid == int(lid)
                    known = known | hit
                    fits = fits | (hit & (words <= depths[lid]))
                    bpw = Mux(hit, beats_per_word(widths[lid]) - 1, bpw)
                with m.If(take):
                    m.d.sync += [ld_mem.eq(mid), count.eq(words), ld_addr.eq(0), k.eq(0),
                                 k_last.eq(bpw), k_end.eq(bpw == 0)]
                    with m.If(known & fits & (words != 0) & ~last_beat):
                        m.next = "LOAD"
                    with m.Else():
                        refuse_frame()
            with m.State("LOAD"):
                m.d.comb += [self.busy.eq(1), self.s_axis.ready.eq(1)]
                with m.If(take & k_end):
                    m.d.sync += [ld_addr.eq(ld_addr + 1), count.eq(count - 1)]
                assemble_words(ld_we, count == 1, complete="DONE",
                               more="SECTION")  # a frame may carry several sections
            with m.State(finish):  # stop once both arrays are idle; discard the frame's rest
                m.d.comb += self.busy.eq(1)
                with m.If(all_idle):
                    with m.If(in_frame):
                        m.next = "DRAIN"
                    with m.Else():
                        m.next = "DONE"
            with m.State("DRAIN"):  # discard the rest of a bad frame
                m.d.comb += [self.busy.eq(1), self.s_axis.ready.eq(1)]
                with m.If(take & last_beat):
                    m.next = "DONE"
            # ---------------------------------------------------------- program
            with m.State("FETCH"):
                m.d.comb += self.busy.eq(1)
                with m.If(pc == cfg.program_depth):
                    m.d.comb += bad_desc.eq(1)
                    m.next = finish
                with m.Else():
                    m.next = "LATCH"
            with m.State("LATCH"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += d.eq(prog_rd.data)
                m.next = "CHECK"
            with m.State("CHECK"):  # the descriptor's checks, registered for DISPATCH
                m.d.comb += self.busy.eq(1)
                m.d.sync += [d_checks.eq(Cat(*checks)), pool_lo.eq(_times(d.m_pblk, R)),
                             pool_hi.eq(_times(d.m_pblk + 1, R))]
                with m.If(~is_conv):
                    m.next = "CHECK_ALL"
                with m.Elif(~rows_pending):  # a conv's walk, once the last one's rows are taken
                    m.d.sync += [wy.eq(d.init_i), wx.eq(d.init_i), wa.eq(d.init_addr),
                                 walk_r.eq(0), walk_thr.eq(d.wrap_at - d.walk_dx),
                                 rows_done.eq(0),
                                 *(getattr(wk, n).eq(getattr(d, n)) for n in WALK_FIELDS),
                                 wk.span_wrap.eq(d.span + d.tile_wrap),
                                 wk.span_nowrap.eq(d.span + d.tile_nowrap)]
                    m.next = "CHECK_ALL"
            with m.State("CHECK_ALL"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += d_ok.eq(d_checks.all() & pool_ok)
                m.next = "DISPATCH"
            with m.State("DISPATCH"):
                m.d.comb += [self.busy.eq(1), in_dispatch.eq(1)]
                m.d.sync += [count.eq(0), k.eq(0), in_addr.eq(d.out_base),
                             k_last.eq(d.in_beats - 1), k_end.eq(d.in_beats == 1),
                             in_final.eq(d.m0 == 0)]
                m.d.comb += clear.eq(1)
                present = Const(0)
                ready = Signal()  # anything but a conv waits until both arrays are idle ...
                m.d.comb += ready.eq(idle_q)
                with m.If((d.op == Opcode.INPUT) & in_armed):  # ... but INPUT beside its conv
                    m.d.comb += ready.eq(1)
                with m.Elif(in_armed):  # not the INPUT the armed conv waits for
                    m.d.comb += release.eq(1)
                for kind in units:
                    present = present | is_kind[kind]
                    with m.If(is_kind[kind] & d_ok):
                        m.d.comb += ready.eq(unit_go[kind])
                with m.If(pool_busy):  # nothing runs beside a conv with pool
                    m.d.comb += ready.eq(0)
                with m.If(~ready):  # wait here until the unit this descriptor needs is free
                    m.d.comb += self.busy.eq(1)
                with m.Elif(~d_ok):
                    m.d.comb += bad_desc.eq(1)
                    m.next = finish
                with m.Else():
                    with m.Switch(d.op):
                        with m.Case(Opcode.END):
                            with m.If(in_pending):  # the program never read its input
                                m.d.comb += bad_len.eq(1)
                                m.next = finish
                            with m.Elif(more):  # the batch's next frame (both arrays idle)
                                m.d.sync += [later.eq(later - 1), more.eq(later > 1)]
                                m.next = "HEADER"
                            with m.Else():
                                m.next = finish
                        with m.Case(Opcode.INPUT):
                            with m.If(in_armed):
                                m.d.sync += in_frontier.eq(d.out_base)
                            m.next = "INPUT"
                        with m.Case(Opcode.OUTPUT):
                            m.next = "OUT_READ"
                        with m.Case(Opcode.SHIFT_CONV, Opcode.ADDER_CONV):
                            with m.If(present):  # its unit starts (``unit_go``)
                                with m.If(d.follow_input):
                                    m.d.sync += [in_frontier.eq(0), in_armed.eq(1)]
                                with m.If(d.pool):
                                    m.d.sync += [pool_busy.eq(1), pool_shift.eq(d.pool_shift),
                                                 pool_base.eq(d.out_base),
                                                 pool_banks.eq(d.out_banks),
                                                 pool_last_g.eq(d.m_cb), pool_kind.eq(is_shift)]
                                m.next = "NEXT"
                            with m.Else():
                                m.d.comb += bad_desc.eq(1)
                                m.next = finish
                        with m.Case(Opcode.ADD, Opcode.AVGPOOL):
                            m.d.sync += [vec_feeding.eq(1), optr.eq(d.out_base),
                                         vbase[0].eq(d.in_base),
                                         vbase[1].eq(Mux(is_add, d.in2_base,
                                                         d.in_base + d.port_step)),
                                         *(vbase[p].eq(d.in_base + p * d.port_step)
                                           for p in range(2, vports))]
                            m.next = "VEC"
                        with m.Default():
                            m.d.comb += bad_desc.eq(1)
                            m.next = finish
            with m.State("NEXT"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += pc.eq(pc + 1)
                m.next = "FETCH"
            # ---------------------------------------------------------- input
            with m.State("INPUT"):
                # each word arrives as its first in_beats beats; in_word zero-fills the rest
                m.d.comb += [self.busy.eq(1), self.s_axis.ready.eq(1)]
                assemble_words(in_we, in_final, complete="NEXT", more=None, ends=~more)
                with m.If(take & k_end):
                    m.d.sync += [in_addr.eq(in_addr + 1), count.eq(count + 1),
                                 in_final.eq(count + 1 == d.m0)]
                    with m.If(in_final):
                        m.d.sync += in_pending.eq(0)
            # ---------------------------------------------------------- output
            with m.State("OUT_READ"):
                m.d.comb += [self.busy.eq(1), main_rd[0].addr.eq(d.in_base + count)]
                m.next = "OUT_WAIT"
            with m.State("OUT_WAIT"):
                m.d.comb += self.busy.eq(1)
                # k_end: the word's last beat; out_last: the tensor's last word (registers, for
                # the same reason as k_end's in INPUT)
                m.d.sync += [obuf.eq(main_rd[0].data), k.eq(0), k_end.eq(act_bpw == 1),
                             out_last.eq(count == d.m0)]
                m.next = "OUT_SEND"
            with m.State("OUT_SEND"):
                m.d.comb += [self.busy.eq(1), self.m_axis.valid.eq(1),
                             self.m_axis.payload.data.eq(obuf[:BEAT_BITS]),
                             self.m_axis.payload.last.eq(k_end & out_last & ~more)]
                with m.If(self.m_axis.ready):
                    m.d.sync += [k.eq(k + 1), k_end.eq(k + 1 == act_bpw - 1),
                                 obuf.eq(obuf >> BEAT_BITS)]
                    with m.If(k_end):
                        m.d.sync += count.eq(count + 1)
                        m.next = "OUT_NEXT"
            with m.State("OUT_NEXT"):
                m.d.comb += self.busy.eq(1)
                with m.If(out_last):
                    m.next = "NEXT"
                with m.Else():
                    m.next = "OUT_READ"
            # ---------------------------------------------------------- add / avgpool
            with m.State("VEC"):
                m.d.comb += [self.busy.eq(1), vec_on.eq(1), step.eq(v_issue),
                             *(main_rd[p].addr.eq(vbase[p] + loop.offset)
                               for p in range(vports))]
                with m.If(v_issue & loop.last):
                    m.d.sync += [vec_feeding.eq(0),
                                 drain.eq(vec_settle)]
                    m.next = "SETTLE"
            with m.State("SETTLE"):  # let the post-processing pipelines write their last words
                m.d.comb += self.busy.eq(1)
                m.d.sync += drain.eq(drain - 1)
                with m.If(drain == 0):
                    m.next = "NEXT"
            with m.State("DONE"):  # a conv released by an error may still be finishing
                m.d.comb += self.busy.eq(1)
                with m.If(all_idle):
                    m.d.comb += self.done.eq(1)
                    m.next = "IDLE"
        return m


class _ConvUnit:
    """One array kind's conv datapath: its own copy of the descriptor, feeder (loop nest, row
    positions and bases, padding masks), array core, writer and ``C`` requantizers. The two
    units run at the same time: the engine's FSM hands each conv to its unit (``start``) and
    fetches on. ``frontier``: every word of this conv's output below it is written; a unit
    whose conv ``follow`` s the other's reads a tile only below the other's frontier."""

    def __init__(self, kind: str, cfg: EngineConfig) -> None:
        self.kind, self.cfg = kind, cfg
        self.d = Signal(DESCRIPTOR, name=f"{kind}_desc")
        self.start = Signal(name=f"{kind}_start")
        self.busy = Signal(name=f"{kind}_busy")  # a conv is in flight
        # ``start`` may hand it a conv (``accept``), ``busy`` and ``full`` as they will be in
        # the next cycle if this one starts nothing (the engine registers its dispatch
        # decision from them)
        self.accept_n = Signal(name=f"{kind}_accept_n")
        self.busy_n = Signal(name=f"{kind}_busy_n")
        self.full_n = Signal(name=f"{kind}_full_n")
        self.full = Signal(name=f"{kind}_full")  # two convs in flight
        self.tag = Signal(name=f"{kind}_tag")  # the tag of the conv started last
        self.finish = Signal(name=f"{kind}_finish")  # the last cycle of a conv ...
        self.fr_tag = Signal(name=f"{kind}_fr_tag")  # ... the one ``frontier`` is for
        self.frontier = Signal(ADDR, name=f"{kind}_frontier")
        # the post-processing, word by word (each conv's fields travel with its words)
        self.rq_we = Signal(name=f"{kind}_rq_we")
        self.rq_addr = Signal(17, name=f"{kind}_rq_addr")
        self.rq_y = Signal(cfg.cols * cfg.data_bits, name=f"{kind}_rq_y")
        self.rq_banks = Signal(2, name=f"{kind}_rq_banks")
        self.res_on = Signal(name=f"{kind}_res_on")  # rq_* is a word of a conv with res
        self.res_rd_on = Signal(name=f"{kind}_res_rd_on")  # ... one cycle before
        self.res_rd_addr = Signal(17, name=f"{kind}_res_rd_addr")
        self.res_on1 = Signal(name=f"{kind}_res_on1")  # ... when the adders take shifts
        self.res_sa = Signal(6, name=f"{kind}_res_sa")
        self.res_sb = Signal(6, name=f"{kind}_res_sb")
        self.res_shift = Signal(6, name=f"{kind}_res_shift")
        self.res_on2 = Signal(name=f"{kind}_res_on2")  # ... when they take relu
        self.res_relu = Signal(name=f"{kind}_res_relu")
        # a conv with ``pool``: its words where they would be written (``Requantizer.latency
        # + ResidualAdder.latency`` after the writer's register): each a pixel's channel
        # block ``pool_g``, the first and last pixel marked; written instead are the pooled
        # words, ``pool_done`` when the last of them is in memory (the engine's, for the unit
        # whose pool conv it is): the conv ends then (AvgPooler.latency after its last pixel)
        self.pool_w = Signal(name=f"{kind}_pool_w")
        self.pool_res = Signal(name=f"{kind}_pool_res")  # ... the word came through res
        self.pool_first = Signal(name=f"{kind}_pool_first")
        self.pool_last = Signal(name=f"{kind}_pool_last")
        self.pool_g = Signal(8, name=f"{kind}_pool_g")
        self.pool_done = Signal(name=f"{kind}_pool_done")
        self.pool_finish = Signal(name=f"{kind}_pool_finish")  # ``finish`` of a pool conv
        self.rq_pool = Signal(name=f"{kind}_rq_pool")  # rq_* is a word of a pool conv
        self.rows_wait = Signal(name=f"{kind}_rows_wait")  # started before its rows were walked

    def build(self, m: Module, d, other: _ConvUnit | None, act_rd, w_rd, params,  # noqa: C901
              *, pe_module: str | None, rows, rows_done, rows_reach, rows_d, alt_rd=None,
              in_frontier=None) -> None:
        """``rows``: per array row, the first tile's ``(iy0, ix0, addr)`` of the conv in ``d``
        (walked by the engine, complete once ``rows_done``: the unit takes them then, and
        issues nothing before), ``rows_reach`` row R-1's plus ``span`` (and that of the
        conv's second tile, past the end of an output row or not), ``rows_d`` the conv's
        :data:`WALK_FIELDS`; ``alt_rd``: the read ports of the other
        activation bank (the adder array's, for a shift conv with ``in_adder``);
        ``in_frontier``: every word INPUT has written lies below it (for a conv with
        ``follow_input``)."""
        cfg, kind = self.cfg, self.kind
        R, C, V, B = cfg.rows, cfg.cols, cfg.lanes, cfg.data_bits
        du = self.d
        # a unit with paired convs: two results a PE, and the phase of the feeder's steps and of
        # the writer's words (1: the paired conv's, which come first in each tile)
        paired = kind in cfg.paired
        m.submodules[f"{kind}_core"] = core = ArrayCore(cfg.array(kind), pe_module=pe_module,
                                                        drain_slots=2 if paired else 1)
        ph = Signal(name=f"{kind}_pair_phase") if paired else Const(0)
        wr_ph = Signal(name=f"{kind}_wr_pair_phase") if paired else Const(0)
        rqs = [Requantizer(cfg.post_processing()["requant"]) for _ in range(C)]
        for c in range(C):
            m.submodules[f"{kind}_rq{c}"] = rqs[c]
        with m.If(self.start):
            m.d.sync += du.eq(d)

        # the other unit's conv this one follows: the one it started last (its tag latched at
        # start, if it is still in flight), over when that conv ends
        dep = Signal(name=f"{kind}_dep")
        dep_tag = Signal(name=f"{kind}_dep_tag")
        if other is not None:
            with m.If(self.start):
                m.d.sync += [dep.eq(d.follow & other.busy &
                                    ~(other.finish & (other.fr_tag == other.tag))),
                             dep_tag.eq(other.tag)]
            with m.Elif(other.finish & (other.fr_tag == dep_tag)):
                m.d.sync += dep.eq(0)
        # this unit's previous conv, if this one follows it (``follow_own``) and it is still in
        # flight: its frontier is this unit's until it ends (the one after takes it over then)
        dep_own = Signal(name=f"{kind}_dep_own")
        with m.If(self.start):
            m.d.sync += dep_own.eq(d.follow_own & self.busy & ~self.finish)
        with m.Elif(self.finish):
            m.d.sync += dep_own.eq(0)
        # the INPUT this conv runs beside (latched at start; the engine moves ``in_frontier``
        # past the tensor's end when that INPUT is over or cannot come)
        dep_in = Signal(name=f"{kind}_dep_in")
        if in_frontier is not None:
            with m.If(self.start):
                m.d.sync += dep_in.eq(d.follow_input)

        step = Signal(name=f"{kind}_step")
        clear = Signal(name=f"{kind}_clear")
        m.d.comb += clear.eq(self.start)
        loop = _LoopNest(m, du, step, clear, name=f"{kind}_loop", d_clear=d,
                         pair_next=(~ph & du.pair) if paired else None)

        # ------------------------------------------------------------ rows
        iy0 = [Signal(ROWV, name=f"{kind}_row{r}_iy0") for r in range(R)]
        ix0 = [Signal(ROWV, name=f"{kind}_row{r}_ix0") for r in range(R)]
        ra = [Signal(ADDR, name=f"{kind}_row{r}_addr") for r in range(R)]
        # ``x + dx >= wrap_at`` as ``x >= wrap_at - dx``, registered at start (``_advance``)
        thr = Signal(signed(16), name=f"{kind}_tile_wrap_at")
        with m.If(self.start):
            m.d.sync += thr.eq(d.wrap_at - d.tile_dx)

        # ------------------------------------------------------------ feeder
        feeding = Signal(name=f"{kind}_feeding")
        cb = Signal(8, name=f"{kind}_cb")
        pblk = Signal(16, name=f"{kind}_pblk")
        w_ptr = Signal(16, name=f"{kind}_w_ptr")
        s1_valid = Signal(name=f"{kind}_s1_valid")
        s1_first, s1_last = Signal(name=f"{kind}_s1_first"), Signal(name=f"{kind}_s1_last")
        s1_sub = Signal(range(max(cfg.subwords, 2)), name=f"{kind}_s1_sub")
        s1_mask = Signal(R, name=f"{kind}_s1_mask")
        adv = Signal(name=f"{kind}_adv")
        m.d.comb += adv.eq(~s1_valid | core.i.ready)
        conv_on = Signal(name=f"{kind}_run")
        # a followed conv: the tile's last input word (clamped to the tensor) must be written:
        # min(reach, in_last) >= frontier stalls the feeder (``reach`` = row R-1's base + span,
        # kept in a register that moves with the row). The stall is a register, computed in the
        # cycle before from the values this unit's registers take then (its rows, the tile it
        # advances to, its dependency flags) and the frontiers as they are (one cycle old:
        # a frontier only rises while a conv follows it). A descriptor has at most one of
        # follow, follow_own and follow_input (CHECK), so one frontier is compared. The
        # comparisons in front of the feeder's enables were the engine's longest path
        # (``benchmarks/timing.py``)
        # ``reach_w``/``reach_nw``: the next tile's reach, past the end of an output row or not
        # (registers, so that the stall for the tile the feeder advances to is a comparison
        # of registers: the address adder in front of it was the engine's longest path)
        reach = Signal(ADDR, name=f"{kind}_reach")
        reach_w, reach_nw = Signal(ADDR, name=f"{kind}_reach_w"), \
            Signal(ADDR, name=f"{kind}_reach_nw")
        stall = Signal(name=f"{kind}_stall")
        wraps = ix0[R - 1] >= thr  # the next tile starts a new output row (``_advance``)
        nreach = Signal(ADDR, name=f"{kind}_next_reach")  # the next tile's
        m.d.comb += nreach.eq(Mux(wraps, reach_w, reach_nw))
        # the dependency flags' next values (the conv goes on)
        dep_n, dep_own_n = Signal(name=f"{kind}_dep_n"), Signal(name=f"{kind}_dep_own_n")
        m.d.comb += dep_own_n.eq(dep_own & ~self.finish)
        o_front = Const(0, ADDR) if other is None else other.frontier
        if other is not None:
            m.d.comb += dep_n.eq(dep & ~(other.finish & (other.fr_tag == dep_tag)))
        in_front = Const(0, ADDR) if in_frontier is None else in_frontier

        def frontier(fi, fo):
            """The frontier a conv with these flags follows (one at most, CHECK)."""
            return Mux(fi, in_front, Mux(fo, self.frontier, o_front))

        def blocked(ge, on, on_own, on_in, tag_off):
            """The stall with ``ge`` (the tile's last input word, clamped to the tensor, is
            not below the frontier) and the dependency flags given (``tag_off``: the followed
            conv's frontier is not yet the other unit's)."""
            return (on & (tag_off | ge)) | ((on_own | on_in) & ge)
        tag_off = Const(0) if other is None else other.fr_tag != dep_tag
        go_on = (dep_n, dep_own_n, dep_in, tag_off)  # the flags as this conv goes on
        f = frontier(dep_in, dep_own)
        last_ge = du.in_last >= f
        cur = blocked((reach >= f) & last_ge, *go_on)
        ahead = Mux(wraps, blocked((reach_w >= f) & last_ge, *go_on),
                    blocked((reach_nw >= f) & last_ge, *go_on))
        f_rows = frontier(rows_d.follow_input, rows_d.follow_own)  # the walked conv's
        ge_rows = (rows_reach[0] >= f_rows) & (rows_d.in_last >= f_rows)
        # at ``start``, the flags as it sets them (above); a conv with follow_input waits
        # for its INPUT (whose frontier starts at 0)
        begin = blocked(ge_rows,
                        Const(0) if other is None else
                        d.follow & other.busy & ~(other.finish & (other.fr_tag == other.tag)),
                        d.follow_own & self.busy & ~self.finish, 0,
                        Const(0) if other is None else other.fr_tag != other.tag)
        if in_frontier is not None:
            begin = begin | d.follow_input
        rows_later = blocked(ge_rows, *go_on)  # taken in ROWS
        advance = Signal(name=f"{kind}_advance")  # the feeder moves to its next tile
        take_rows = Signal(name=f"{kind}_take_rows")
        with m.If(take_rows):
            m.d.sync += stall.eq(Mux(self.start, begin, rows_later))
        with m.Elif(advance):
            m.d.sync += stall.eq(ahead)
        with m.Else():
            m.d.sync += stall.eq(cur)
        issue = Signal(name=f"{kind}_issue")
        m.d.comb += issue.eq(conv_on & adv & feeding & ~stall)

        for r in range(R):
            iy = iy0[r] + loop.idx[3]
            ix = ix0[r] + loop.idx[2]
            # (a paired conv reads the window's centre, inside the tensor at every pixel)
            ok = (iy0[r] < du.y_end) & \
                (ph | ((iy >= 0) & (iy < du.h) & (ix >= 0) & (ix < du.w)))
            with m.If(conv_on & adv):
                m.d.sync += s1_mask[r].eq(~ok)
        m.d.comb += [w_rd.addr.eq(w_ptr), w_rd.en.eq(adv)]
        with m.If(conv_on & adv):
            m.d.sync += [s1_valid.eq(feeding & ~stall),
                         s1_first.eq(Cat(*(i == 0 for i in loop.idx)).all()),
                         s1_last.eq(loop.last), s1_sub.eq(loop.idx[0])]
        m.d.comb += [core.i.valid.eq(s1_valid), core.i.payload.first.eq(s1_first),
                     core.i.payload.last.eq(s1_last), core.i.payload.w.eq(w_rd.data)]
        for r in range(R):
            data_r = act_rd[r].data if alt_rd is None else \
                Mux(du.in_adder, alt_rd[r].data, act_rd[r].data)
            word = data_r.word_select(s1_sub, V * B) if cfg.subwords > 1 else data_r
            m.d.comb += core.i.payload.x[r].eq(Mux(s1_mask[r], 0, word))

        # ------------------------------------------------------------ writer
        # the writer has a descriptor of its own (``wd``): the feeder starts the next conv
        # once its last step is in the core, while this one's results still drain; the
        # writer turns to the next conv (``du``, or ``d`` if it starts in that very cycle)
        # with the last word of this one. ``w_on``: the writer has a conv
        wd = Signal(DESCRIPTOR, name=f"{kind}_wdesc")
        w_on = Signal(name=f"{kind}_w_on")
        w_tag = Signal(name=f"{kind}_w_tag")
        acc = signed(cfg.acc_bits)
        o_valid = Signal(name=f"{kind}_o_valid")
        m.d.comb += [core.o.ready.eq(1), o_valid.eq(core.o.valid & w_on)]
        o_data = core.o.payload.data
        wr_r = Signal(range(R + 1), name=f"{kind}_wr_r")
        wr_cb = Signal(8, name=f"{kind}_wr_cb")
        wr_pblk = Signal(16, name=f"{kind}_wr_pblk")
        wr_ptile = Signal(17, name=f"{kind}_wr_ptile")
        wr_taddr = Signal(17, name=f"{kind}_wr_taddr")
        wr_raddr = Signal(17, name=f"{kind}_wr_raddr")
        # a tile's words are all through the writer (``tile_done``; ``conv_done`` with it for
        # the conv's last tile): at the tile's last row, but at the conv's last pixel in its
        # last tile (the rows after it carry nothing to write)
        tile_done = Signal(name=f"{kind}_tile_done")
        conv_done = Signal(name=f"{kind}_conv_done")
        w_end = Signal(name=f"{kind}_w_end")  # the conv's last row: the writer is through
        # this row's pixel (``wr_ptile + wr_r``, kept in a register: the adder in front of the
        # last-pixel comparison, into the tile's pulse, was the engine's longest path,
        # ``benchmarks/timing.py``) and the conv's last pixel (``pixels - 1``, registered)
        wr_px = Signal(17, name=f"{kind}_wr_px")
        pix_last = Signal(17, name=f"{kind}_pix_last")
        row_last = Signal(name=f"{kind}_row_last")  # this row is the conv's last pixel
        # ``wr_r == R - 1``, ``wr_cb == m_cb``, ``wr_pblk == m_pblk`` as registers, set from
        # the next values (the comparators in front of the writer's turn to its next conv
        # were the engine's longest path, ``benchmarks/timing.py``)
        r_last = Signal(name=f"{kind}_wr_r_last")
        cb_last = Signal(name=f"{kind}_wr_cb_last")
        pb_last = Signal(name=f"{kind}_wr_pblk_last")
        cb_less = Signal(8, name=f"{kind}_wr_cb_less")  # m_cb - 1 and m_pblk - 1, registered
        pb_less = Signal(16, name=f"{kind}_wr_pblk_less")
        fired = Signal(name=f"{kind}_tile_fired")  # ... and this tile's pulse is out
        blocks = Signal(9, name=f"{kind}_blocks")
        m.d.comb += blocks.eq(wd.m_cb + 1)
        a_valid, a_we = Signal(name=f"{kind}_a_valid"), Signal(name=f"{kind}_a_we")
        a_addr = Signal(17, name=f"{kind}_a_addr")
        a_acc = Signal(data.ArrayLayout(acc, C), name=f"{kind}_a_acc")
        # the fields of its conv that each word carries through the post-processing
        post = data.StructLayout({"shift": 6, "relu": 1, "banks": 2, "res_shift": 6,
                                  "res_relu": 1, "sa": 6, "sb": 6,
                                  # ... and with ``pool``, the word's place in the pool
                                  "pool": 1, "pfirst": 1, "plast": 1, "g": 8})
        a_post = Signal(post.size, name=f"{kind}_a_post")
        a_res = Signal(name=f"{kind}_a_res")  # a word of a conv with res
        a_res_addr = Signal(17, name=f"{kind}_a_res_addr")
        m.d.comb += [params.addr.eq(Mux(wr_ph, wd.pair_p, wd.p_base) + wr_cb),
                     row_last.eq(wr_px == pix_last)]
        m.d.sync += [a_valid.eq(o_valid), a_res.eq(o_valid & wd.res & ~wr_ph)]
        with m.If(o_valid):
            # element by element: this array's accumulators may be narrower (sign-extended)
            # a paired conv's word: the same place of its own tensor (its own requantization)
            m.d.sync += [a_we.eq(wr_px < wd.pixels),
                         a_addr.eq(wr_raddr if not paired else
                                   Mux(wr_ph, wr_raddr - wd.out_base + wd.pair_out, wr_raddr)),
                         # the next row's pixel: the tile's first again for its next block
                         wr_px.eq(Mux(r_last & ~cb_last, wr_ptile, wr_px + 1)),
                         *(a_acc[c].eq(o_data[c]) for c in range(C)),
                         a_post.eq(Cat(Mux(wr_ph, wd.pair_shift, wd.shift),
                                       Mux(wr_ph, wd.pair_relu, wd.relu),
                                       Mux(wr_ph, wd.pair_banks, wd.out_banks), wd.res_shift,
                                       wd.res_relu, wd.shift_a, wd.shift_b, wd.pool,
                                       (wr_pblk == 0) & (wr_r == 0), pb_last & row_last,
                                       wr_cb)),
                         # res: the residual word at the same place of the tensor at in2_base
                         a_res_addr.eq(wr_raddr - wd.out_base + wd.in2_base)]
            last_tile = pb_last & cb_last
            # the last tile's pulse at its last pixel (or, if a malformed descriptor puts that
            # pixel in no tile, at the tile's last row: the conv always ends)
            with m.If(~wr_ph & Mux(last_tile, row_last | (r_last & ~fired),
                                   r_last & cb_last)):
                m.d.comb += [tile_done.eq(1), conv_done.eq(last_tile)]
            with m.If(r_last):
                m.d.sync += [wr_r.eq(0), fired.eq(0), r_last.eq(R == 1)]
                if paired:  # the next block's (or tile's) words start with the paired conv's
                    m.d.sync += wr_ph.eq(wd.pair)
                with m.If(wr_ph):  # the paired conv's rows are through: this conv's, same places
                    m.d.sync += [wr_raddr.eq(wr_taddr + wr_cb), wr_px.eq(wr_ptile)]
                    if paired:
                        m.d.sync += wr_ph.eq(0)
                with m.Elif(cb_last):
                    m.d.comb += w_end.eq(pb_last)
                    m.d.sync += [wr_cb.eq(0), wr_ptile.eq(wr_ptile + R),
                                 wr_taddr.eq(wr_taddr + wd.out_tile_step),
                                 wr_raddr.eq(wr_taddr + wd.out_tile_step),
                                 wr_pblk.eq(wr_pblk + 1), cb_last.eq(wd.m_cb == 0),
                                 pb_last.eq(wr_pblk == pb_less)]
                with m.Else():
                    m.d.sync += [wr_cb.eq(wr_cb + 1), wr_raddr.eq(wr_taddr + wr_cb + 1),
                                 cb_last.eq(wr_cb == cb_less)]
            with m.Else():
                m.d.sync += [wr_r.eq(wr_r + 1), wr_raddr.eq(wr_raddr + blocks),
                             r_last.eq(wr_r == R - 2)]
                with m.If(last_tile & row_last & ~wr_ph):
                    m.d.sync += fired.eq(1)

        f_tag = self.tag

        def writer_takes(src, tag) -> None:
            if paired:
                m.d.sync += wr_ph.eq(src.pair)
            m.d.sync += [wd.eq(src), w_on.eq(1), w_tag.eq(tag), wr_r.eq(0), wr_cb.eq(0),
                         wr_pblk.eq(0), wr_ptile.eq(0), wr_taddr.eq(src.out_base),
                         wr_raddr.eq(src.out_base), fired.eq(0), wr_px.eq(0),
                         pix_last.eq(src.pixels - 1), r_last.eq(R == 1),
                         cb_last.eq(src.m_cb == 0), pb_last.eq(src.m_pblk == 0),
                         cb_less.eq(src.m_cb - 1), pb_less.eq(src.m_pblk - 1)]
        with m.If(w_end):
            with m.If(self.start):
                writer_takes(d, ~f_tag)
            with m.Elif(f_tag != w_tag):  # the feeder already runs the next conv
                writer_takes(du, f_tag)
            with m.Else():
                m.d.sync += w_on.eq(0)
        with m.Elif(self.start & ~w_on):
            writer_takes(d, ~f_tag)

        pview = data.View(data.ArrayLayout(data.StructLayout(
            {"mult": signed(ENGINE_MULT_BITS), "bias": signed(cfg.bias_bits)}), C), params.data)
        # the word's fields and its res flag, ``k`` cycles after the word reaches the
        # requantizers (one delay line each, tapped where each is used)
        lines = {"post": [a_post], "res": [a_res]}

        def at(line: str, k: int):
            taps = lines[line]
            while len(taps) <= k:
                reg = Signal.like(taps[-1], name=f"{kind}_{line}_d{len(taps)}")
                m.d.sync += reg.eq(taps[-1])
                taps.append(reg)
            return data.View(post, taps[k]) if line == "post" else taps[k]
        rq_at, add_at = Requantizer.ports_at, ResidualAdder.ports_at
        for c in range(C):
            m.d.comb += [rqs[c].i.valid.eq(a_valid), rqs[c].i.payload.acc.eq(a_acc[c]),
                         rqs[c].i.payload.mult.eq(pview[c].mult),
                         rqs[c].i.payload.bias.eq(pview[c].bias),
                         rqs[c].shift.eq(at("post", rq_at["shift"]).shift),
                         rqs[c].relu.eq(at("post", rq_at["relu"]).relu), rqs[c].o.ready.eq(1)]
        # after the requantizers the residual adders (res): the residual word is read on the
        # main bank's extra port one cycle ahead, so that it arrives with the requantized word
        rq = Requantizer.latency
        add_shift = rq + add_at["shift"]
        assert add_at["shift_a"] == add_at["shift_b"] == add_at["shift"]
        m.d.comb += [self.rq_we.eq(_delay(m, a_valid & a_we, rq, f"{kind}_rq_we")),
                     self.rq_addr.eq(_delay(m, a_addr, rq, f"{kind}_rq_addr")),
                     self.rq_y.eq(Cat(*(q.o.payload.y for q in rqs))),
                     self.rq_banks.eq(at("post", rq).banks), self.res_on.eq(at("res", rq)),
                     self.res_rd_on.eq(at("res", rq - 1)),
                     self.res_rd_addr.eq(_delay(m, a_res_addr, rq - 1, f"{kind}_res_addr")),
                     self.res_on1.eq(at("res", add_shift)),
                     self.res_sa.eq(at("post", add_shift).sa),
                     self.res_sb.eq(at("post", add_shift).sb),
                     self.res_shift.eq(at("post", add_shift).res_shift),
                     self.res_on2.eq(at("res", rq + add_at["relu"])),
                     self.res_relu.eq(at("post", rq + add_at["relu"]).res_relu),
                     self.rq_pool.eq(at("post", rq).pool)]
        wpos = rq + ResidualAdder.latency  # where the words are written
        m.d.comb += [self.pool_w.eq(_delay(m, self.rq_we, ResidualAdder.latency,
                                           f"{kind}_pool_we") & at("post", wpos).pool),
                     self.pool_res.eq(at("res", wpos)),
                     self.pool_first.eq(at("post", wpos).pfirst),
                     self.pool_last.eq(at("post", wpos).plast),
                     self.pool_g.eq(at("post", wpos).g)]

        # the frontier moves one tile once the tile's last word is in memory: its last row
        # (the last tile: its last pixel) leaves the core (tile_done), 1 cycle into the writer,
        # the requantizer and (with res) the residual adder; the conv ends (``finish``) when
        # its last tile's pulse arrives, while the rows after its last pixel may still leave
        # the core (the writer takes its next conv after them, by tag); a conv with pool ends
        # with its last pooled word (AvgPooler.latency after its last pixel)
        pulse, last, last_pool = tile_done, conv_done, conv_done & wd.pool
        for i in range(1 + Requantizer.latency + ResidualAdder.latency + WRITE_DELAY):
            reg, reg_last = Signal(name=f"{kind}_tile_done_d{i}"), \
                Signal(name=f"{kind}_conv_done_d{i}")
            reg_pool = Signal(name=f"{kind}_pool_conv_done_d{i}")
            m.d.sync += [reg.eq(pulse), reg_last.eq(last), reg_pool.eq(last_pool)]
            pulse, last, last_pool = reg, reg_last, reg_pool
        m.d.comb += self.pool_finish.eq(self.pool_done)
        inflight = Signal(range(3), name=f"{kind}_inflight")
        m.d.comb += [self.finish.eq((pulse & last & ~last_pool) | self.pool_finish),
                     self.busy.eq(inflight != 0), self.full.eq(inflight == 2)]
        m.d.sync += inflight.eq(inflight + self.start - self.finish)
        fr_step = Signal(16, name=f"{kind}_fr_step")
        # the frontier is the oldest conv's in flight: a conv started while another drains
        # takes it over when that one ends
        with m.If(self.start & (~self.busy | self.finish)):
            m.d.sync += [self.frontier.eq(d.out_base), fr_step.eq(d.out_tile_step),
                         self.fr_tag.eq(~f_tag)]
        with m.Elif(self.finish & self.full):
            m.d.sync += [self.frontier.eq(du.out_base), fr_step.eq(du.out_tile_step),
                         self.fr_tag.eq(f_tag)]
        with m.Elif(pulse):
            m.d.sync += self.frontier.eq(self.frontier + fr_step)
        with m.If(self.start):
            m.d.sync += f_tag.eq(~f_tag)

        # ------------------------------------------------------------ feeder control
        # the feeder has a conv in the next cycle, if this one starts nothing
        feeder_on_n = Signal(name=f"{kind}_feeder_on_n")
        m.d.comb += [self.busy_n.eq((inflight > 1) | ((inflight == 1) & ~self.finish)),
                     self.full_n.eq((inflight == 2) & ~self.finish),
                     self.accept_n.eq(~feeder_on_n & ~self.full_n)]
        # the rows the engine walked for this conv: at its start, and if they were not all there
        # yet, every cycle until they are (one load condition, so that each row register keeps
        # a 2:1 multiplexer between the walk and the tile advance)
        with m.If(take_rows):
            for r, (wy, wx, wa) in enumerate(rows):
                m.d.sync += [iy0[r].eq(wy), ix0[r].eq(wx), ra[r].eq(wa)]
            m.d.sync += [reach.eq(rows_reach[0]), reach_w.eq(rows_reach[1]),
                         reach_nw.eq(rows_reach[2])]
        with m.FSM(name=f"{kind}_unit"):
            with m.State("IDLE"):
                m.d.comb += take_rows.eq(self.start)
                with m.If(self.start):
                    m.d.sync += [feeding.eq(1), cb.eq(0), pblk.eq(0), w_ptr.eq(d.w_base)]
                    if paired:
                        m.d.sync += ph.eq(d.pair)
                    with m.If(rows_done):
                        m.next = "RUN"
                    with m.Else():
                        m.next = "ROWS"
            with m.State("ROWS"):  # started before its rows were all walked: take them as
                # they come, the last ones when they are all there, then issue
                m.d.comb += [feeder_on_n.eq(1), take_rows.eq(1), self.rows_wait.eq(1)]
                with m.If(rows_done):
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += [conv_on.eq(1), step.eq(issue)]
                for r in range(R):
                    m.d.comb += [act_rd[r].addr.eq(ra[r] + loop.offset), act_rd[r].en.eq(adv)]
                    if alt_rd is not None:  # the other bank's ports, idle otherwise
                        with m.If(du.in_adder):
                            m.d.comb += [alt_rd[r].addr.eq(ra[r] + loop.offset),
                                         alt_rd[r].en.eq(adv)]
                with m.If(issue):
                    m.d.sync += w_ptr.eq(w_ptr + 1)
                    if paired:  # a tile's paired steps, then its own
                        with m.If(loop.last):
                            m.d.sync += ph.eq(~ph & du.pair)
                    with m.If(loop.last & ~ph):
                        with m.If(cb == du.m_cb):
                            m.d.sync += [cb.eq(0), w_ptr.eq(du.w_base), pblk.eq(pblk + 1)]
                            for r in range(R):
                                ny, nx, na = _advance(iy0[r], ix0[r], ra[r], du.tile_dx,
                                                      du.tile_dy, du.tile_nowrap, du.tile_wrap,
                                                      thr, du)
                                m.d.sync += [iy0[r].eq(ny), ix0[r].eq(nx), ra[r].eq(na)]
                            m.d.comb += advance.eq(1)
                            m.d.sync += [reach.eq(nreach), reach_w.eq(nreach + du.tile_wrap),
                                         reach_nw.eq(nreach + du.tile_nowrap)]
                            with m.If(pblk == du.m_pblk):
                                m.d.sync += feeding.eq(0)
                        with m.Else():
                            m.d.sync += cb.eq(cb + 1)
                # the last step is in the core (s1 empties in this cycle): the feeder is free
                with m.If(~feeding & adv):
                    m.next = "IDLE"
                with m.Else():
                    m.d.comb += feeder_on_n.eq(1)
