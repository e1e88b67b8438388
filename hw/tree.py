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

    Ports: ``i`` (array of ``count`` values), ``o`` (the sum, ``latency`` cycles later).
    """

    def __init__(self, width: int, count: int, *, signed_inputs: bool,
                 register_every: int = 2) -> None:
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive integer, not {width!r}")
        if not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be a positive integer, not {count!r}")
        if not isinstance(register_every, int) or register_every < 0:
            raise ValueError(f"register_every must be a non-negative integer, "
                             f"not {register_every!r}")
        self._width, self._count = width, count
        self._signed, self._every = signed_inputs, register_every
        shape = signed if signed_inputs else unsigned
        super().__init__({"i": In(data.ArrayLayout(shape(width), count)),
                          "o": Out(shape(self.out_width))})

    @property
    def levels(self) -> int:
        return (self._count - 1).bit_length()

    @property
    def out_width(self) -> int:
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
        width = self._width
        for level in range(1, self.levels + 1):
            width += 1
            nxt = []
            for k in range(0, len(vals), 2):
                s = Signal(shape(width), name=f"l{level}_{k // 2}")
                rhs = vals[k] + vals[k + 1] if k + 1 < len(vals) else vals[k]
                if self._registered(level):
                    m.d.sync += s.eq(rhs)
                else:
                    m.d.comb += s.eq(rhs)
                nxt.append(s)
            vals = nxt
        m.d.comb += self.o.eq(vals[0])
        return m
