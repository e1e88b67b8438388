"""A pipelined adder tree, of two-input or (hand-placed) three-input adders."""

from __future__ import annotations

from amaranth import Cat, Module, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw.xilinx import carry_chain, lut6_2, placing_primitives


class TernaryAdder(wiring.Component):
    """``o = a + b + c + ci[0] + ci[1]`` modulo ``2**width`` (operands sign- or zero-extended),
    in one ``LUT6_2`` per bit and a carry chain: the cost of a two-input adder.

    Bit ``j``'s LUT takes ``a_j, b_j, c_j`` and the previous bit's carry-save carry ``k_{j-1}``;
    its ``O5`` is ``k_j = maj(a_j, b_j, c_j)`` (for the next bit) and its ``O6`` the chain's
    select ``a_j ^ b_j ^ c_j ^ k_{j-1}``; the chain's ``DI_j`` is ``k_{j-1}`` (equal to the sum
    bit whenever the select is 0). ``k_{-1}`` is ``ci[1]`` and the chain's carry-in ``ci[0]``.
    Yosys' ``synth_xilinx`` maps ``a + b + c`` to two carry chains; Vivado infers this packing
    itself, so the hand-placed form makes the estimates see what Vivado builds. Combinational;
    the simulation view (:func:`hw.xilinx.simulation_view`) is the behavioural sum, proven
    equal by ``gen.equiv``.
    """

    def __init__(self, width: int, in_widths: tuple[int, int, int], *, signed_inputs: bool):
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive integer, not {width!r}")
        if len(in_widths) != 3 or any(not isinstance(w, int) or not 1 <= w <= width
                                      for w in in_widths):
            raise ValueError(f"in_widths must be three widths from 1 to {width}, "
                             f"not {in_widths!r}")
        self._width, self._in_widths, self._signed = width, tuple(in_widths), signed_inputs
        shape = signed if signed_inputs else unsigned
        super().__init__({"a": In(shape(in_widths[0])), "b": In(shape(in_widths[1])),
                          "c": In(shape(in_widths[2])), "ci": In(2), "o": Out(shape(width))})

    def elaborate(self, platform):
        m = Module()
        w = self._width
        shape = signed if self._signed else unsigned
        if not placing_primitives():  # the simulation view: the same sum, behaviourally
            m.d.comb += self.o.eq((self.a + self.b + self.c + self.ci[0] + self.ci[1])[:w])
            return m
        ext = []
        for n, v in enumerate((self.a, self.b, self.c)):
            e = Signal(shape(w), name=f"ext_{'abc'[n]}")
            m.d.comb += e.eq(v)
            ext.append(e)
        k_prev = self.ci[1]
        sel, di = [], []
        for j in range(w):
            o6, o5 = lut6_2(m, [ext[0][j], ext[1][j], ext[2][j], k_prev], _ternary_select,
                            _majority, f"t{j}")
            sel.append(o6)
            di.append(k_prev)
            k_prev = o5
        m.d.comb += self.o.eq(Cat(*carry_chain(m, sel, di, self.ci[0], "chain")))
        return m


def _ternary_select(a: int, b: int, c: int, k: int) -> int:
    return a ^ b ^ c ^ k


def _majority(a: int, b: int, c: int, k: int) -> int:
    return (a & b) | (a & c) | (b & c)


class AdderTree(wiring.Component):
    """Sums ``count`` inputs of ``width`` bits exactly.

    Levels of two-input adders, or with ``ternary`` of :class:`TernaryAdder` s (three inputs
    for the LUTs of two: 8 inputs take 3 + 1 adders instead of 4 + 2 + 1). Each level sums
    groups of ``arity`` values from the first; a last group of one passes through. A register
    after every ``register_every`` levels (0: none; a ternary level, two LUTs before its carry
    chain, counts as about two binary ones, so it is registered every ``ceil(register_every /
    2)`` levels), and the last level is always registered when ``register_every > 0``.
    ``latency`` is the number of register stages. The sum is ``width + ceil(log2(count))``
    bits wide, signed if the inputs are; every partial sum is exactly as wide as its inputs'
    count needs.

    With ``carry_ins``, each adder also adds one bit of ``ci`` per extra input (a two-input
    adder's carry-in, a ternary adder's two), ``count - 1`` in all, free on the carry chains:
    ``o = sum(i) + popcount(ci)``; ``ci`` arrives with ``i``.

    Ports: ``i`` (array of ``count`` values), ``ci`` (``count - 1`` bits, with ``carry_ins``),
    ``o`` (the sum, ``latency`` cycles later).
    """

    def __init__(self, width: int, count: int, *, signed_inputs: bool,
                 register_every: int = 2, carry_ins: bool = False,
                 ternary: bool = False) -> None:
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive integer, not {width!r}")
        if not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be a positive integer, not {count!r}")
        if not isinstance(register_every, int) or register_every < 0:
            raise ValueError(f"register_every must be a non-negative integer, "
                             f"not {register_every!r}")
        self._width, self._count = width, count
        self._signed, self._every = signed_inputs, register_every
        self._carry_ins = carry_ins and count > 1
        self._ternary = ternary
        shape = signed if signed_inputs else unsigned
        ports = {"i": In(data.ArrayLayout(shape(width), count)), "o": Out(shape(self.out_width))}
        if self._carry_ins:
            ports["ci"] = In(count - 1)
        super().__init__(ports)

    @staticmethod
    def plan(width: int, count: int, ternary: bool = False) -> list[list[tuple[int, tuple]]]:
        """The tree's adders, level by level: each ``(output width, input widths)``, in input
        order (a group of one input is a pass-through)."""
        arity, counts, levels = 3 if ternary else 2, [1] * count, []
        while len(counts) > 1:
            groups = [counts[g:g + arity] for g in range(0, len(counts), arity)]
            levels.append([(width + (sum(g) - 1).bit_length(),
                            tuple(width + (c - 1).bit_length() for c in g)) for g in groups])
            counts = [sum(g) for g in groups]
        return levels

    @staticmethod
    def levels_for(count: int, ternary: bool = False) -> int:
        return len(AdderTree.plan(1, count, ternary))

    @staticmethod
    def _cadence(register_every: int, ternary: bool) -> int:
        """Levels between registers (0: none)."""
        return -(-register_every // 2) if ternary else register_every

    @property
    def levels(self) -> int:
        return self.levels_for(self._count, self._ternary)

    @property
    def out_width(self) -> int:
        # carry-ins add at most count - 1: the sum still fits ceil(log2(count)) more bits
        return self._width + (self._count - 1).bit_length()

    @property
    def latency(self) -> int:
        return self.latency_for(self._count, self._every, self._ternary)

    @staticmethod
    def latency_for(count: int, register_every: int, ternary: bool = False) -> int:
        """Register stages of a tree over ``count`` inputs (what :attr:`latency` reports)."""
        levels = AdderTree.levels_for(count, ternary)
        every = AdderTree._cadence(register_every, ternary)
        return 0 if every == 0 or levels == 0 else -(-levels // every)

    def _registered(self, level: int) -> bool:
        every = self._cadence(self._every, self._ternary)
        return every > 0 and (level % every == 0 or level == self.levels)

    def elaborate(self, platform):
        m = Module()
        shape = signed if self._signed else unsigned
        vals = [self.i[k] for k in range(self._count)]
        cins = [self.ci[k] for k in range(self._count - 1)] if self._carry_ins else []
        for level, adders in enumerate(self.plan(self._width, self._count, self._ternary), 1):
            nxt = []
            domain = m.d.sync if self._registered(level) else m.d.comb
            for n, (width, inputs) in enumerate(adders):
                group, vals = vals[:len(inputs)], vals[len(inputs):]
                s = Signal(shape(width), name=f"l{level}_{n}")
                ci = [cins.pop(0) for _ in group[1:]] if cins else []
                if len(group) == 3:
                    add = TernaryAdder(width, inputs, signed_inputs=self._signed)
                    m.submodules[f"t{level}_{n}"] = add
                    m.d.comb += [add.a.eq(group[0]), add.b.eq(group[1]), add.c.eq(group[2]),
                                 add.ci.eq(Cat(*ci))]
                    domain += s.eq(add.o)
                else:
                    rhs = group[0]
                    for v in (*group[1:], *ci):
                        rhs = rhs + v
                    domain += s.eq(rhs)
                nxt.append(s)
            if self._registered(level):  # the carry-ins of later levels keep pace
                late = []
                for n, c in enumerate(cins):
                    d = Signal(name=f"ci{level}_{n}")
                    m.d.sync += d.eq(c)
                    late.append(d)
                cins = late
            vals = nxt
        m.d.comb += self.o.eq(vals[0])
        return m
