"""The layer program and the stream framing, declared once (plain Python, no Amaranth).

The generator (``gen/compile.py``) packs descriptors and load frames with these tables, the
engine (``hw/engine.py``) decodes them with the same tables, and the manifest records them.

Stream framing (AXI4-Stream, 32-bit ``TDATA``, little-endian): every frame (``TLAST`` ends it)
starts with one header beat ``FRAME_MAGIC << 8 | kind``:

* ``LOAD`` frames carry sections, each a section header beat ``memory << 24 | words`` followed by
  ``words`` memory words, each split into ``ceil(width / 32)`` beats (low bits first). Sections
  write from address 0 of their memory. ``TLAST`` is on the very last beat.
* ``INFER`` frames carry the input tensor as the program's ``INPUT`` op reads it: activation
  memory words (``C`` channels of ``B`` bits, HWC order, channels zero-padded), each sent as its
  first ``in_beats`` beats (the descriptor's field: a 3-channel FIX8 image takes one beat per
  pixel, not four; the engine fills the rest of the word with zeros), ``TLAST`` on the last
  beat. The program's ``OUTPUT`` op sends the result as whole words (no header).
"""

from __future__ import annotations

import enum

FRAME_MAGIC = 0x534841  # "SHA"
BEAT_BITS = 32


class FrameKind(enum.IntEnum):
    LOAD = ord("L")
    INFER = ord("I")


class MemoryId(enum.IntEnum):
    PROGRAM = 1
    SHIFT_WEIGHTS = 2
    ADDER_WEIGHTS = 3
    PARAMS = 4


class Opcode(enum.IntEnum):
    END = 0
    INPUT = 1      # stream -> activations[out_base ...], n0 + 1 words
    OUTPUT = 2     # activations[in_base ...] -> stream, n0 + 1 words
    SHIFT_CONV = 3  # shift conv + requant (+ residual add when ``res``, global pool when ``pool``)
    ADDER_CONV = 4  # adder conv + requant (+ residual add when ``res``, global pool when ``pool``)
    ADD = 5        # residual add over n0 + 1 words
    AVGPOOL = 6


LOOP_LEVELS = 5

# (name, bits, signed). Loop counts are stored as the largest index (count - 1); ``j<l>`` is the
# address change when level ``l`` advances and every lower level wraps to 0.
DESCRIPTOR_FIELDS: tuple[tuple[str, int, bool], ...] = (
    ("op", 4, False),
    ("in_base", 16, False), ("in2_base", 16, False), ("out_base", 16, False),
    ("w_base", 16, False), ("p_base", 16, False),
    *((f"m{lvl}", 16, False) for lvl in range(LOOP_LEVELS)),
    *((f"j{lvl}", 20, True) for lvl in range(LOOP_LEVELS)),
    # conv geometry: input size for padding checks, tiles (pixel blocks x column blocks)
    ("h", 12, False), ("w", 12, False), ("m_cb", 8, False), ("m_pblk", 16, False),
    # per-row input position (iy0, ix0 = top-left input of the row's window) and base address
    ("init_addr", 20, True), ("init_i", 8, True), ("stride", 3, False),
    ("walk_dx", 12, False), ("walk_dy", 12, False), ("walk_nowrap", 20, True),
    ("walk_wrap", 20, True),
    ("tile_dx", 12, False), ("tile_dy", 12, False), ("tile_nowrap", 20, True),
    ("tile_wrap", 20, True),
    ("wrap_at", 14, True), ("wrap_sub", 14, False), ("y_end", 14, True),
    # conv writer
    ("out_tile_step", 16, False), ("pixels", 16, False),
    # post-processing
    ("shift", 6, False), ("relu", 1, False), ("shift_a", 6, False), ("shift_b", 6, False),
    # INPUT: beats carrying each word (1 .. the word's beats; the rest of the word is zero)
    ("in_beats", 6, False),
    # conv + requant + residual add in one pass: each requantized output word is added to the
    # word at the same position of the tensor at in2_base (shift_a: the conv's operand, shift_b:
    # the residual's), then shifted by res_shift and rectified if res_relu (docs/NUMERICS.md add)
    ("res", 1, False), ("res_shift", 6, False), ("res_relu", 1, False),
    # activation banks the output goes to (bit 0: the main bank, bit 1: the adder array's input
    # bank; both: the same words at the same address in each)
    ("out_banks", 2, False),
    # overlap of consecutive convs on the two arrays (docs/ACCELERATOR.md): ``barrier``: wait
    # until both arrays are idle; ``follow``: the input is the output of the conv the other
    # array is running, so read a tile only once the writer has passed its last word
    # (``min(row R-1's base + span, in_last)``)
    ("barrier", 1, False), ("follow", 1, False), ("span", 16, False), ("in_last", 16, False),
    # ``follow_own``: the input is the output of this array's previous conv, which may still
    # drain: read a tile only once this array's writer has passed its last word (with
    # ``barrier``, that conv need not have ended; the other array must be idle)
    ("follow_own", 1, False),
    # a shift conv over the network's input, run beside the INPUT that comes right after it
    # (docs/ACCELERATOR.md): ``in_adder``: its input is in the adder array's bank (INPUT writes
    # there while the conv writes the main bank); ``follow_input``: read a tile only once the
    # INPUT has written its last word
    ("in_adder", 1, False), ("follow_input", 1, False),
    # AVGPOOL: the main bank's ports it reads at once (1..``pool_ports``), each ``port_step``
    # words after the one before (window positions the poolers sum in one transfer); the last
    # transfer of each window row reads only ports 0..``ports_last - 1`` (1..``ports``: a
    # kernel side ``ports`` does not divide), the others give the poolers zeros
    ("ports", 3, False), ("port_step", 16, False), ("ports_last", 3, False),
    # a conv whose output only a global average pool reads (docs/ACCELERATOR.md): its words
    # are not written but summed per channel block over all its pixels, and the pooled words
    # (``sat(rshift_round(sum, pool_shift))``, one per block) written at out_base + block
    ("pool", 1, False), ("pool_shift", 6, False),
    # a 1x1 conv run in this conv's tiles (``pair``; docs/ACCELERATOR.md, "Paired convs"):
    # each tile first takes its steps (the loop nest's two lowest levels, this conv's counts,
    # its weights before this conv's in each column block), reading at ``pair_in`` words from
    # each row's window base, then this conv's; its results go to the same positions of the
    # tensor at ``pair_out`` (banks ``pair_banks``), requantized with the parameters at
    # ``pair_p`` and ``pair_shift`` (rectified if ``pair_relu``), before this conv's
    ("pair", 1, False), ("pair_in", 20, True), ("pair_out", 16, False),
    ("pair_p", 16, False), ("pair_shift", 6, False), ("pair_relu", 1, False),
    ("pair_banks", 2, False),
)

DESCRIPTOR_BITS = sum(b for _, b, _ in DESCRIPTOR_FIELDS)


def beats_per_word(width: int) -> int:
    return -(-width // BEAT_BITS)


_RANGES = {n: ((-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1))
           for n, bits, signed in DESCRIPTOR_FIELDS}


def field_range(name: str) -> tuple[int, int]:
    return _RANGES[name]


def pack_descriptor(values: dict[str, int]) -> int:
    """One descriptor as an integer (first field at bit 0). Unknown or out-of-range fields raise
    ``ValueError``; missing fields are 0."""
    extra = set(values) - _RANGES.keys()
    if extra:
        raise ValueError(f"unknown descriptor fields: {', '.join(sorted(extra))}")
    word, pos = 0, 0
    for name, bits, signed in DESCRIPTOR_FIELDS:
        v = int(values.get(name, 0))
        lo, hi = _RANGES[name]
        if not lo <= v <= hi:
            raise ValueError(f"descriptor field {name}={v} does not fit {bits} "
                             f"{'signed ' if signed else ''}bits")
        word |= (v & ((1 << bits) - 1)) << pos
        pos += bits
    return word


def unpack_descriptor(word: int) -> dict[str, int]:
    out, pos = {}, 0
    for name, bits, signed in DESCRIPTOR_FIELDS:
        v = (word >> pos) & ((1 << bits) - 1)
        if signed and v >> (bits - 1):
            v -= 1 << bits
        out[name] = v
        pos += bits
    return out


def header_beat(kind: FrameKind) -> int:
    return FRAME_MAGIC << 8 | int(kind)


SECTION_WORDS_BITS = 24  # a section header beat: ``memory << SECTION_WORDS_BITS | words``


def section_beat(memory: MemoryId, words: int) -> int:
    if not 0 < words < 1 << SECTION_WORDS_BITS:
        raise ValueError(f"a section holds 1..{(1 << SECTION_WORDS_BITS) - 1} words, not {words}")
    return int(memory) << SECTION_WORDS_BITS | words


def section_fields(beat: int) -> tuple[int, int]:
    """A section header beat's ``(memory, words)``, whatever their values."""
    return beat >> SECTION_WORDS_BITS, beat & ((1 << SECTION_WORDS_BITS) - 1)


def words_to_beats(words: list[int], width: int) -> list[int]:
    """Split memory words of ``width`` bits into 32-bit beats, low bits first."""
    n = beats_per_word(width)
    mask = (1 << BEAT_BITS) - 1
    return [(w >> (BEAT_BITS * i)) & mask for w in words for i in range(n)]


def beats_to_words(beats: list[int], width: int) -> list[int]:
    n = beats_per_word(width)
    if len(beats) % n:
        raise ValueError(f"{len(beats)} beats is not a whole number of {n}-beat words")
    return [sum(int(beats[k + i]) << (BEAT_BITS * i) for i in range(n)) & ((1 << width) - 1)
            for k in range(0, len(beats), n)]
