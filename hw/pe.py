"""The processing element: V lanes, a pipelined adder tree, an accumulator."""

from __future__ import annotations

from amaranth import Cat, Const, Module, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw.config import LaneKind, PEConfig
from hw.lanes import AdderLane, AdderPair, ShiftLane, ShiftPair, make_lane, weight_shape
from hw.tree import AdderTree, TernaryAdder


class ProcessingElement(wiring.Component):
    """A dot-product engine, lock-step (no handshake: a systolic array drives it every cycle).

    Each cycle with ``valid``, ``V`` lanes compute ``|x - w|`` (adder mode), ``sign * (x << s)``
    (shift mode, as ones' complement terms plus a count of +1 corrections) or ``x * w`` (the MAC
    baseline); the tree sums them; the accumulator adds the sum (shift, MAC) or subtracts it
    (adder mode, so the result is ``-sum |x - w|``). ``first`` starts a new
    dot product (the accumulator restarts from zero), ``last`` ends it: ``latency`` cycles after
    the step with ``last``, ``result`` holds the dot product and ``result_valid`` pulses for one
    cycle. ``result`` then holds until the next dot product ends.

    The lanes come in pairs whose first adder absorbs part of the lanes' work:
    :class:`hw.lanes.ShiftPair` (one lane's last shifter stage) and :class:`hw.lanes.AdderPair`
    (both absolute values). Each pair leaves a +1 correction (``neg``) that rides on a carry-in
    of the tree or, the last one, of the accumulator; the tree then sums ``ceil(V / 2)``
    values.

    Ports: ``x`` (V signed activations), ``w`` (V weights), ``valid``, ``first``, ``last`` in;
    ``result`` (signed ``acc_bits``), ``result_valid`` out. With ``slots=2`` also ``previous``:
    the dot product that ended before ``result``'s (it moves there when a new one ends), so that
    an array's drain may take a PE's results of two dot products that end less than R cycles
    apart (``hw.array.SystolicArray``, ``drain_slots``).
    """

    def __init__(self, cfg: PEConfig, *, slots: int = 1) -> None:
        if not isinstance(cfg, PEConfig):
            raise ValueError(f"cfg must be a PEConfig, not {cfg!r}")
        if slots not in (1, 2):
            raise ValueError(f"slots must be 1 or 2, not {slots!r}")
        self._cfg, self._slots = cfg, slots
        super().__init__(self.members_for(cfg, slots=slots))

    @staticmethod
    def members_for(cfg: PEConfig, *, slots: int = 1) -> dict:
        """The PE's ports (also those of a black-box PE instance, ``hw.array.PEInstance``)."""
        lane = cfg.lane
        result = {"result": Out(signed(cfg.acc_bits)), "result_valid": Out(1)}
        if slots == 2:
            result["previous"] = Out(signed(cfg.acc_bits))
        return {
            "x": In(data.ArrayLayout(signed(lane.data_bits), cfg.lanes)),
            "w": In(data.ArrayLayout(weight_shape(lane), cfg.lanes)),
            "valid": In(1), "first": In(1), "last": In(1), **result,
        }

    @property
    def config(self) -> PEConfig:
        return self._cfg

    @property
    def latency(self) -> int:
        """Cycles from a step with ``last`` to ``result_valid``: first-level register, tree,
        accumulator."""
        return self.latency_for(self._cfg)

    @staticmethod
    def tree_inputs(cfg: PEConfig) -> int:
        """Values entering the tree: one per lane pair (:class:`ShiftPair`,
        :class:`AdderPair`), or one per lane (the MAC baseline)."""
        return cfg.lanes if cfg.lane.kind is LaneKind.MAC else -(-cfg.lanes // 2)

    @staticmethod
    def tree_width(cfg: PEConfig) -> int:
        """Bits of each value entering the tree: a lane's result, one more for a pair's sum."""
        pairs = ProcessingElement.tree_inputs(cfg) < cfg.lanes
        return cfg.lane.out_bits + (1 if pairs else 0)

    @staticmethod
    def ternary_tree(cfg: PEConfig) -> bool:
        """The paired kinds sum their pairs with three-input adders (the MAC baseline keeps the
        plain tree Yosys infers)."""
        return cfg.lane.kind is not LaneKind.MAC

    @staticmethod
    def tree_outputs(cfg: PEConfig) -> int:
        """2 where the tree stops at two values and the accumulator is a ternary adder (a
        ternary tree over an even count: every adder then takes three inputs), else 1."""
        ternary = ProcessingElement.ternary_tree(cfg)
        return 2 if ternary and ProcessingElement.tree_inputs(cfg) % 2 == 0 else 1

    @staticmethod
    def latency_for(cfg: PEConfig) -> int:
        return 1 + AdderTree.latency_for(ProcessingElement.tree_inputs(cfg),
                                         cfg.tree_register_every,
                                         ProcessingElement.ternary_tree(cfg),
                                         ProcessingElement.tree_outputs(cfg)) + 1

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        shift = cfg.lane.kind is LaneKind.SHIFT
        paired = shift or cfg.lane.kind is LaneKind.ADDER
        # Registered first-level values: sums of lane pairs whose adder absorbs part of the
        # lanes' work (or, the MAC baseline, lane results). Each pair's sum is one short of
        # exact: its +1 correction bit (``neg``) rides on an adder's carry-in further down.
        firsts, negs = [], []
        if paired:
            pair, single = (ShiftPair, ShiftLane) if shift else (AdderPair, AdderLane)
            for k in range(0, cfg.lanes, 2):
                if k + 1 < cfg.lanes:
                    unit = pair(cfg.lane)
                    m.d.comb += [unit.x[n].eq(self.x[k + n]) for n in range(2)]
                    m.d.comb += [unit.w[n].eq(self.w[k + n]) for n in range(2)]
                else:  # an odd last lane
                    unit = single(cfg.lane)
                    m.d.comb += [unit.x.eq(self.x[k]), unit.w.eq(self.w[k])]
                m.submodules[f"lanes_{k}"] = unit
                firsts.append(unit.y)
                # a shift lane is ones' complement too; a lone adder lane is exact
                negs.append(unit.neg if shift or k + 1 < cfg.lanes else Const(0, 1))
        else:
            for k in range(cfg.lanes):
                unit = make_lane(cfg.lane)
                m.submodules[f"lane_{k}"] = unit
                m.d.comb += [unit.x.eq(self.x[k]), unit.w.eq(self.w[k])]
                firsts.append(unit.y)
        width = self.tree_width(cfg)
        shape = (signed if cfg.lane.out_signed else unsigned)(width)
        m.submodules.tree = tree = AdderTree(width, len(firsts), signed_inputs=cfg.lane.out_signed,
                                             register_every=cfg.tree_register_every,
                                             carry_ins=paired,
                                             ternary=self.ternary_tree(cfg),
                                             outputs=self.tree_outputs(cfg))
        # The lane registers load only with a valid step, a clock enable on the flip-flops
        # (synth_xilinx: a PE alone the same 535 LUTs and 305 flip-flops, shift FIX8 V = 16; a
        # 4x4 array of them 3 more LUTs, 1.7 % more flip-flops). The lanes are most of a PE's
        # logic, and with the enable Verilator skips them on idle steps: digits FIX8 at
        # 9x16x16 simulates about 1.4x faster (BENCHMARKS.md). The tree after them passes
        # stale sums while no step is valid; the accumulator takes only valid ones.
        for k, y in enumerate(firsts):
            reg = Signal(shape, name=f"term_{k}")
            with m.If(self.valid):
                m.d.sync += reg.eq(y)
            m.d.comb += tree.i[k].eq(reg)
        # the correction bits left for the accumulator's carry-ins (one per extra input)
        outputs = self.tree_outputs(cfg)
        ones = [Const(0, 1)] * outputs
        if paired:
            regs = []
            for k, n in enumerate(negs):
                reg = Signal(name=f"neg_{k}")
                with m.If(self.valid):
                    m.d.sync += reg.eq(n)
                regs.append(reg)
            if len(regs) > outputs:
                m.d.comb += tree.ci.eq(Cat(*regs[:-outputs]))
            ones = regs[-outputs:]
            for d in range(tree.latency):
                delayed = [Signal(name=f"ones{n}_d{d + 1}") for n in range(outputs)]
                m.d.sync += [a.eq(b) for a, b in zip(delayed, ones, strict=True)]
                ones = delayed

        # Control follows the data through the lane register and the tree.
        depth = 1 + tree.latency
        ctl = [(self.valid, self.first, self.last)]
        for d in range(depth):
            v, f, la = (Signal(name=f"{n}_d{d + 1}") for n in ("valid", "first", "last"))
            pv, pf, pl = ctl[-1]
            m.d.sync += [v.eq(pv), f.eq(pf & pv), la.eq(pl & pv)]
            ctl.append((v, f, la))
        valid, first, last = ctl[-1]

        acc = Signal(signed(cfg.acc_bits))
        nxt = Signal(signed(cfg.acc_bits))
        adder = cfg.lane.kind is LaneKind.ADDER
        if outputs == 2:
            # acc' = (first ? 0 : acc) + o + o2 + ones (adder mode: - o - o2 - ones, as
            # ~o + ~o2 + ~ones: -v = ~v + 1 for each of the three), one ternary adder
            m.submodules.acc_add = add = TernaryAdder(
                cfg.acc_bits, (cfg.acc_bits,) * 3, signed_inputs=True,
                invert=(False, adder, adder), zero_a=True)
            m.d.comb += [add.a.eq(acc), add.b.eq(tree.o), add.c.eq(tree.o2), add.zero.eq(first),
                         add.ci.eq(Cat(*((~n if adder else n) for n in ones))),
                         nxt.eq(add.o)]
        else:
            base = Signal(signed(cfg.acc_bits))
            term = Signal(signed(cfg.acc_bits))  # the tree sum, at the accumulator's width
            m.d.comb += [term.eq(tree.o), base.eq(acc)]
            with m.If(first):
                m.d.comb += base.eq(0)
            if adder:
                m.d.comb += nxt.eq(base - term - ones[0])
            elif shift:
                m.d.comb += nxt.eq(base + term + ones[0])
            else:
                m.d.comb += nxt.eq(base + term)
        with m.If(valid):
            m.d.sync += acc.eq(nxt)
        m.d.sync += self.result_valid.eq(valid & last)
        with m.If(valid & last):
            m.d.sync += self.result.eq(nxt)
            if self._slots == 2:
                m.d.sync += self.previous.eq(self.result)
        return m
