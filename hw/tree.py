"""A pipelined adder tree, of two-input or (hand-placed) three-input adders."""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw.xilinx import carry_chain, lut6_2, placing_primitives


class TernaryAdder(wiring.Component):
    """``o = a' + b' + c' + ci[0] + ci[1]`` modulo ``2**width``, in one ``LUT6_2`` per bit and a
    carry chain: the cost of a two-input adder. Each operand is sign- or zero-extended to
    ``width``; ``x'`` is the operand, bit-inverted where ``invert`` says (``~x = -x - 1``: a
    subtraction costs nothing), and ``a'`` is 0 while the ``zero`` input (with ``zero_a``) is
    high (an accumulator's restart).

    Bit ``j``'s LUT takes ``a_j, b_j, c_j`` (and ``zero``) and the previous bit's carry-save
    carry ``k_{j-1}``; its ``O5`` is ``k_j = maj(a'_j, b'_j, c'_j)`` (for the next bit) and its
    ``O6`` the chain's select ``a'_j ^ b'_j ^ c'_j ^ k_{j-1}``; the chain's ``DI_j`` is
    ``k_{j-1}`` (equal to the sum bit whenever the select is 0). ``k_{-1}`` is ``ci[1]`` and the
    chain's carry-in ``ci[0]``. Yosys' ``synth_xilinx`` maps ``a + b + c`` to two carry chains;
    Vivado infers this packing itself, so the hand-placed form makes the estimates see what
    Vivado builds. Combinational; the simulation view (:func:`hw.xilinx.simulation_view`) is
    the behavioural sum, proven equal by ``gen.equiv``.
    """

    def __init__(self, width: int, in_widths: tuple[int, int, int], *, signed_inputs: bool,
                 invert: tuple[bool, bool, bool] = (False, False, False),
                 zero_a: bool = False):
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive integer, not {width!r}")
        if len(in_widths) != 3 or any(not isinstance(w, int) or not 1 <= w <= width
                                      for w in in_widths):
            raise ValueError(f"in_widths must be three widths from 1 to {width}, "
                             f"not {in_widths!r}")
        if len(invert) != 3:
            raise ValueError(f"invert must name three operands, not {invert!r}")
        self._width, self._in_widths, self._signed = width, tuple(in_widths), signed_inputs
        self._invert, self._zero_a = tuple(bool(i) for i in invert), zero_a
        shape = signed if signed_inputs else unsigned
        ports = {"a": In(shape(in_widths[0])), "b": In(shape(in_widths[1])),
                 "c": In(shape(in_widths[2])), "ci": In(2), "o": Out(shape(width))}
        if zero_a:
            ports["zero"] = In(1)
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        w = self._width
        shape = signed if self._signed else unsigned
        ext = []
        for n, v in enumerate((self.a, self.b, self.c)):
            e = Signal(shape(w), name=f"ext_{'abc'[n]}")
            m.d.comb += e.eq(v)
            ext.append(e)
        zero = self.zero if self._zero_a else Const(0, 1)
        if not placing_primitives():  # the simulation view: the same sum, behaviourally
            ops = [~e if inv else e for e, inv in zip(ext, self._invert, strict=True)]
            ops[0] = Mux(zero, 0, ops[0])
            m.d.comb += self.o.eq((ops[0] + ops[1] + ops[2] + self.ci[0] + self.ci[1])[:w])
            return m
        ia, ib, ic = self._invert

        def operands(a, b, c, z):
            return (0 if z else a ^ ia), b ^ ib, c ^ ic

        def select(a, b, c, k, z=0):
            return _ternary_select(*operands(a, b, c, z), k)

        def carry(a, b, c, k, z=0):
            return _majority(*operands(a, b, c, z), k)
        k_prev = self.ci[1]
        sel, di = [], []
        for j in range(w):
            pins = [ext[0][j], ext[1][j], ext[2][j], k_prev] + ([zero] if self._zero_a else [])
            o6, o5 = lut6_2(m, pins, select, carry, f"t{j}")
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

    With ``outputs=2`` (ternary trees over an even count) the tree stops at two values, ``o``
    and ``o2`` (``o + o2 = sum(i) + popcount(ci)``, ``ci`` then ``count - 2`` bits), for a
    ternary accumulator to add both: 8 values then take 3 ternary adders, and the
    accumulator's adder the fourth.

    Ports: ``i`` (array of ``count`` values), ``ci`` (``count - outputs`` bits, with
    ``carry_ins``), ``o`` (the sum, ``latency`` cycles later), ``o2`` (with ``outputs=2``).
    """

    def __init__(self, width: int, count: int, *, signed_inputs: bool,
                 register_every: int = 2, carry_ins: bool = False,
                 ternary: bool = False, outputs: int = 1) -> None:
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive integer, not {width!r}")
        if not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be a positive integer, not {count!r}")
        if not isinstance(register_every, int) or register_every < 0:
            raise ValueError(f"register_every must be a non-negative integer, "
                             f"not {register_every!r}")
        if outputs not in (1, 2) or (outputs == 2 and (not ternary or count % 2)):
            raise ValueError(f"outputs must be 1, or 2 for a ternary tree over an even count, "
                             f"not {outputs!r}")
        self._width, self._count = width, count
        self._signed, self._every = signed_inputs, register_every
        self._carry_ins = carry_ins and count > outputs
        self._ternary, self._outputs = ternary, outputs
        shape = signed if signed_inputs else unsigned
        plan = self.plan(width, count, ternary, outputs)
        widths = [w for w, _ in plan[-1]] if plan else [width] * count
        ports = {"i": In(data.ArrayLayout(shape(width), count)), "o": Out(shape(widths[0]))}
        if outputs == 2:
            ports["o2"] = Out(shape(widths[1]))
        if self._carry_ins:
            ports["ci"] = In(count - outputs)
        super().__init__(ports)

    @staticmethod
    def plan(width: int, count: int, ternary: bool = False,
             outputs: int = 1) -> list[list[tuple[int, tuple]]]:
        """The tree's adders, level by level: each ``(output width, input widths)``, in input
        order (a group of one input is a pass-through)."""
        arity, counts, levels = 3 if ternary else 2, [1] * count, []
        while len(counts) > outputs:
            if outputs == 2:  # ternary adders only, as many as leave two values or more
                n = min(len(counts) // 3, (len(counts) - 2) // 2)
                groups = [counts[3 * g:3 * g + 3] for g in range(n)] + \
                    [[c] for c in counts[3 * n:]]
            else:
                groups = [counts[g:g + arity] for g in range(0, len(counts), arity)]
            levels.append([(width + (sum(g) - 1).bit_length(),
                            tuple(width + (c - 1).bit_length() for c in g)) for g in groups])
            counts = [sum(g) for g in groups]
        return levels

    @staticmethod
    def levels_for(count: int, ternary: bool = False, outputs: int = 1) -> int:
        return len(AdderTree.plan(1, count, ternary, outputs))

    @staticmethod
    def _cadence(register_every: int, ternary: bool) -> int:
        """Levels between registers (0: none)."""
        return -(-register_every // 2) if ternary else register_every

    @property
    def levels(self) -> int:
        return self.levels_for(self._count, self._ternary, self._outputs)

    @property
    def latency(self) -> int:
        return self.latency_for(self._count, self._every, self._ternary, self._outputs)

    @staticmethod
    def latency_for(count: int, register_every: int, ternary: bool = False,
                    outputs: int = 1) -> int:
        """Register stages of a tree over ``count`` inputs (what :attr:`latency` reports)."""
        levels = AdderTree.levels_for(count, ternary, outputs)
        every = AdderTree._cadence(register_every, ternary)
        return 0 if every == 0 or levels == 0 else -(-levels // every)

    def _registered(self, level: int) -> bool:
        every = self._cadence(self._every, self._ternary)
        return every > 0 and (level % every == 0 or level == self.levels)

    def elaborate(self, platform):
        m = Module()
        shape = signed if self._signed else unsigned
        vals = [self.i[k] for k in range(self._count)]
        cins = [self.ci[k] for k in range(self._count - self._outputs)] if self._carry_ins else []
        for level, adders in enumerate(self.plan(self._width, self._count, self._ternary,
                                                 self._outputs), 1):
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
        if self._outputs == 2:
            m.d.comb += self.o2.eq(vals[1])
        return m
