"""A pipelined adder tree."""

from __future__ import annotations

from amaranth import Module, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out


class AdderTree(wiring.Component):
    """Sums ``count`` inputs of ``width`` bits exactly.

    Pairwise levels; a register after every ``register_every`` levels (0: none), and the last
    level is always registered when ``register_every > 0``. ``latency`` is the number of register
    stages. The sum is ``width + ceil(log2(count))`` bits wide, signed if the inputs are.

    With ``carry_ins``, each of the ``count - 1`` adders also adds one bit of ``ci`` (its
    carry-in, free on a carry chain): ``o = sum(i) + popcount(ci)``; ``ci`` arrives with ``i``.

    Ports: ``i`` (array of ``count`` values), ``ci`` (``count - 1`` bits, with ``carry_ins``),
    ``o`` (the sum, ``latency`` cycles later).
    """

    def __init__(self, width: int, count: int, *, signed_inputs: bool,
                 register_every: int = 2, carry_ins: bool = False) -> None:
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
        shape = signed if signed_inputs else unsigned
        ports = {"i": In(data.ArrayLayout(shape(width), count)), "o": Out(shape(self.out_width))}
        if self._carry_ins:
            ports["ci"] = In(count - 1)
        super().__init__(ports)

    @property
    def levels(self) -> int:
        return (self._count - 1).bit_length()

    @property
    def out_width(self) -> int:
        # carry-ins add at most count - 1: still within one more bit per level
        return self._width + self.levels

    @property
    def latency(self) -> int:
        return self.latency_for(self._count, self._every)

    @staticmethod
    def latency_for(count: int, register_every: int) -> int:
        """Register stages of a tree over ``count`` inputs (what :attr:`latency` reports)."""
        levels = (count - 1).bit_length()
        return 0 if register_every == 0 or levels == 0 else -(-levels // register_every)

    def _registered(self, level: int) -> bool:
        return self._every > 0 and (level % self._every == 0 or level == self.levels)

    def elaborate(self, platform):
        m = Module()
        shape = signed if self._signed else unsigned
        vals = [self.i[k] for k in range(self._count)]
        cins = [self.ci[k] for k in range(self._count - 1)] if self._carry_ins else []
        width = self._width
        for level in range(1, self.levels + 1):
            width += 1
            nxt = []
            domain = m.d.sync if self._registered(level) else m.d.comb
            for k in range(0, len(vals), 2):
                s = Signal(shape(width), name=f"l{level}_{k // 2}")
                rhs = vals[k] + vals[k + 1] if k + 1 < len(vals) else vals[k]
                if k + 1 < len(vals) and cins:
                    rhs = rhs + cins.pop(0)
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
