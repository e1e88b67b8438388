"""AXI4-Lite register file implementing :data:`hw.regmap.REGMAP`."""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.regmap import ERROR_BITS, IMAGES_BITS, MAGIC, REGMAP, VERSION, Access, RegisterMap

OKAY, SLVERR = 0, 2


class AXILiteSignature(wiring.Signature):
    """AXI4-Lite, from the master's side (32-bit data). Members are the AXI channel signals."""

    def __init__(self, addr_width: int) -> None:
        if not isinstance(addr_width, int) or not 2 <= addr_width <= 32:
            raise ValueError(f"addr_width must be an integer in 2..32, not {addr_width!r}")
        super().__init__({
            "awaddr": Out(addr_width), "awvalid": Out(1), "awready": In(1),
            "wdata": Out(32), "wstrb": Out(4), "wvalid": Out(1), "wready": In(1),
            "bresp": In(2), "bvalid": In(1), "bready": Out(1),
            "araddr": Out(addr_width), "arvalid": Out(1), "arready": In(1),
            "rdata": In(32), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
        })


class RegisterFile(wiring.Component):
    """The accelerator's control/status registers behind an AXI4-Lite slave.

    One transaction per channel at a time: a write is taken when AW and W are both valid and no
    response is pending (``awready``/``wready`` depend on the valids, as AXI allows); a read when no
    read data is pending. Unmapped addresses answer SLVERR. Each byte lane writes only with its
    ``wstrb`` bit; CTRL's and ERROR's writable bits live in lane 0, IMAGES' count in lanes 0-1.

    Engine side: ``start`` is high from a write of 1 to ``ap_start`` until the engine pulses
    ``accepted`` (which also sets ``ap_ready`` and restarts the cycle counters); a ``done`` pulse
    sets ``ap_done``; ``idle``/``busy`` are levels; each ``error_set`` bit pulse sets a sticky
    ERROR bit. ``interrupt`` is high while ``ap_done`` is set. Counters are 64 bits; reading a ``*_LO`` word latches its ``*_HI`` word.
    ``images`` is the IMAGES register as written (a reset clears it to 0: one image per start).
    """

    def __init__(self, build_id: int, regmap: RegisterMap = REGMAP) -> None:
        if not isinstance(build_id, int) or not 0 <= build_id < 2**32:
            raise ValueError(f"build_id must be a 32-bit unsigned integer, not {build_id!r}")
        self._build_id, self._map = build_id, regmap
        super().__init__({
            "axi": In(AXILiteSignature(regmap.address_bits + 1)),
            "start": Out(1), "accepted": In(1), "done": In(1), "idle": In(1), "busy": In(1),
            "error_set": In(len(ERROR_BITS)),
            "interrupt": Out(1), "images": Out(IMAGES_BITS),
        })

    @property
    def build_id(self) -> int:
        return self._build_id

    def elaborate(self, platform):
        m = Module()
        rm, axi = self._map, self.axi
        a = {r.name: r.address for r in rm.registers}
        ctrl = rm["CTRL"]
        bit = {f.name: f.bit for f in ctrl.fields}

        start = Signal()
        done = Signal()
        ready = Signal()
        errors = Signal(len(ERROR_BITS))
        cycles = Signal(64)
        busy_cycles = Signal(64)
        cycles_hi = Signal(32)
        busy_hi = Signal(32)
        running = Signal()
        images = Signal(IMAGES_BITS)
        m.d.comb += [self.start.eq(start), self.interrupt.eq(done), self.images.eq(images)]

        # ---- engine events (a register access in the same cycle wins for its own bits)
        with m.If(self.accepted):
            m.d.sync += [start.eq(0), ready.eq(1), running.eq(1), cycles.eq(0),
                         busy_cycles.eq(0)]
        with m.Elif(running):
            m.d.sync += cycles.eq(cycles + 1)
            with m.If(self.busy):
                m.d.sync += busy_cycles.eq(busy_cycles + 1)
        with m.If(self.done):
            m.d.sync += [done.eq(1), running.eq(0)]
        m.d.sync += errors.eq(errors | self.error_set)

        # ---- write channel
        take_w = Signal()
        m.d.comb += take_w.eq(axi.awvalid & axi.wvalid & ~axi.bvalid)
        m.d.comb += [axi.awready.eq(take_w), axi.wready.eq(take_w)]
        with m.If(axi.bvalid & axi.bready):
            m.d.sync += axi.bvalid.eq(0)
        with m.If(take_w):
            m.d.sync += axi.bvalid.eq(1)
            waddr = axi.awaddr & ~3
            lane0 = axi.wstrb[0]
            known = Signal()
            m.d.comb += known.eq(0)
            for r in rm.registers:
                with m.If(waddr == r.address):
                    m.d.comb += known.eq(1)
            m.d.sync += axi.bresp.eq(Mux(known, OKAY, SLVERR))
            with m.If(lane0 & (waddr == a["CTRL"]) & axi.wdata[bit["ap_start"]]):
                m.d.sync += start.eq(1)
            with m.If(lane0 & (waddr == a["ERROR"])):
                m.d.sync += errors.eq((errors | self.error_set) & ~axi.wdata[:len(ERROR_BITS)])
            with m.If(waddr == a["IMAGES"]):
                for lane in range((IMAGES_BITS + 7) // 8):
                    with m.If(axi.wstrb[lane]):
                        top = min(8 * lane + 8, IMAGES_BITS)
                        m.d.sync += images[8 * lane:top].eq(axi.wdata[8 * lane:top])

        # ---- read channel
        take_r = Signal()
        m.d.comb += [take_r.eq(axi.arvalid & ~axi.rvalid), axi.arready.eq(take_r)]
        with m.If(axi.rvalid & axi.rready):
            m.d.sync += axi.rvalid.eq(0)
        with m.If(take_r):
            raddr = axi.araddr & ~3
            m.d.sync += [axi.rvalid.eq(1), axi.rresp.eq(SLVERR), axi.rdata.eq(0)]
            values = {
                "CTRL": (start << bit["ap_start"]) | (done << bit["ap_done"]) |
                        (self.idle << bit["ap_idle"]) | (ready << bit["ap_ready"]),
                "ID": MAGIC, "VERSION": VERSION, "BUILD_ID": self._build_id,
                "STATUS": self.busy | ((errors != 0) << 1),
                "ERROR": errors,
                "CYCLES_LO": cycles[:32], "CYCLES_HI": cycles_hi,
                "BUSY_LO": busy_cycles[:32], "BUSY_HI": busy_hi,
                "IMAGES": images,
            }
            for r in rm.registers:
                with m.If(raddr == r.address):
                    m.d.sync += [axi.rdata.eq(values[r.name]), axi.rresp.eq(OKAY)]
            # side effects of reads
            with m.If(raddr == a["CTRL"]):
                cor = [f.name for f in ctrl.fields if f.access is Access.COR]
                if "ap_done" in cor:
                    m.d.sync += done.eq(self.done)
                if "ap_ready" in cor:
                    m.d.sync += ready.eq(self.accepted)
            with m.If(raddr == a["CYCLES_LO"]):
                m.d.sync += cycles_hi.eq(cycles[32:])
            with m.If(raddr == a["BUSY_LO"]):
                m.d.sync += busy_hi.eq(busy_cycles[32:])
        return m
