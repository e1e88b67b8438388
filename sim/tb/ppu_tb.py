"""Requantizer testbench: random and extreme items through the stream models, compared with the
golden model's requant op (sim.golden.run_op on a one-op network) by exact equality."""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge, with_timeout

from gen.ir import IntegerNetwork, Requant, TensorSpec
from gen.numerics import ENGINE_MULT_BITS, MULT_BITS, Format, Precision, floor_requant, pool_shift
from sim import golden
from sim.models.stream import ClockDriver, StreamMonitor, StreamSink, StreamSource
from sim.pack import pack, unpack
from sim.tb.common import seeded, start_clock_and_reset, tb_config


def bench(dut, rng, traffic):
    """Source (random idle), sink (random backpressure) and input monitor on the DUT's streams."""
    drv = ClockDriver(dut.clk)
    src = StreamSource(drv, dut.i__valid, dut.i__ready, dut.i__payload, idle=traffic[0], rng=rng)
    sink = StreamSink(drv, dut.o__valid, dut.o__ready, dut.o__payload, backpressure=traffic[1],
                      rng=rng)
    return src, sink, StreamMonitor(drv, dut.i__valid, dut.i__ready, dut.i__payload)


async def transact(dut, src, sink, mon, items: list[int], in_fields, out_bits: int):
    """Send ``items``, wait for as many outputs; return (monitored inputs unpacked, outputs)."""
    base_in, base_out = len(mon.items), len(sink.items)
    src.send(items)
    await with_timeout(sink.wait_for(base_out + len(items)), 100 * 50 * len(items), "ns")
    await ClockCycles(dut.clk, 2)
    seen = [[int(c[0]) for c in unpack(v, in_fields)] for v in mon.items[base_in:]]
    got = [int(unpack(v, [(1, out_bits, True)])[0][0]) for v in sink.items[base_out:]]
    return seen, got


def reference(acc, mult, bias, shift, relu, acc_bits, out_bits):
    """Outputs of the golden model's requant op for per-item (acc, mult, bias)."""
    n = len(acc)
    t_in = TensorSpec("acc", (n, 1, 1), Format(acc_bits, 0))
    t_out = TensorSpec("y", (n, 1, 1), Format(out_bits, 0))
    op = Requant(name="rq", inputs=("acc",), output="y", mult=np.array(mult, np.int64),
                 bias=np.array(bias, np.int64), shift=shift, relu=relu)
    net = IntegerNetwork("rq", Precision.FIX8 if out_bits == 8 else Precision.FIX32, "acc", "y",
                         {"acc": t_in, "y": t_out}, [op])
    x = np.array(acc, np.int64).reshape(1, n, 1, 1)
    return golden.run_op(net, op, {"acc": x}).ravel().tolist()


@cocotb.test()
@cocotb.parametrize(mode=["random", "extreme"], traffic=[(0.0, 0.0), (0.4, 0.5)])
async def requant(dut, mode, traffic):
    """For each of the engine's shifts ``to`` and a scale ``k`` (0..2): golden-model requants
    with shift ``to - k``, fed to the DUT as ``gen.numerics.floor_requant`` gives them (the
    extremes reach the DUT's port ranges)."""
    cfg = tb_config()
    rng, nrng = seeded(dut)
    ab, bb, ob = cfg["acc_bits"], cfg["bias_bits"], cfg["out_bits"]
    src, sink, mon = bench(dut, rng, traffic)
    dut.shift.value = 0
    dut.relu.value = 0
    await start_clock_and_reset(dut)
    lo = lambda b: -(1 << (b - 1))  # noqa: E731
    hi = lambda b: (1 << (b - 1)) - 1  # noqa: E731
    for to in cfg["shifts"]:
        for relu in (0, 1):
            k = min(int(nrng.integers(0, ENGINE_MULT_BITS - MULT_BITS, endpoint=True)), to)
            shift, half = to - k, (1 << (to - 1)) if to else 0
            # golden-model biases whose engine form fits bias_bits
            blo, bhi = -((half - lo(bb)) >> k), (hi(bb) - half) >> k
            n = 40
            if mode == "extreme":
                acc = nrng.choice([lo(ab), hi(ab), 0, -1], n)
                mult = nrng.choice([lo(MULT_BITS), hi(MULT_BITS), 1, 0, -1], n)
                bias = nrng.choice([blo, bhi, 0, min(1 << max(shift - 1, 0), bhi)], n)
            else:
                acc = nrng.integers(lo(ab), hi(ab), n, endpoint=True)
                mult = nrng.integers(lo(MULT_BITS), hi(MULT_BITS), n, endpoint=True)
                bias = nrng.integers(blo, bhi, n, endpoint=True)
            eng = [floor_requant(mult[j:j + 1], bias[j:j + 1], shift, to) for j in range(n)]
            await FallingEdge(dut.clk)
            dut.shift.value = to
            dut.relu.value = relu
            items = [pack([(acc[j:j + 1], ab), (np.array(em, np.int64), ENGINE_MULT_BITS),
                           (np.array(eb, np.int64), bb)]) for j, (em, eb) in enumerate(eng)]
            seen, got = await transact(dut, src, sink, mon, items,
                                       [(1, ab, True), (1, ENGINE_MULT_BITS, True),
                                        (1, bb, True)], ob)
            assert [s[0] for s in seen] == [int(a) for a in acc]
            want = reference(acc, mult, bias, shift, bool(relu), ab, ob)
            assert got == want, f"shift {to} (golden {shift}) relu {relu}: got {got[:8]}, " \
                                f"want {want[:8]}"


def add_reference(a, b, fa, fb, fy, relu, bits_in, bits_out):
    """Outputs of the golden model's add op for item lists ``a``, ``b``."""
    from gen.ir import Add

    n = len(a)
    ta = TensorSpec("a", (n, 1, 1), Format(bits_in, fa))
    tb_ = TensorSpec("b", (n, 1, 1), Format(bits_in, fb))
    ty = TensorSpec("y", (n, 1, 1), Format(bits_out, fy))
    ident = Requant(name="mk_b", inputs=("a",), output="b", mult=np.ones(n, np.int64),
                    bias=np.zeros(n, np.int64), shift=0)
    op = Add(name="add", inputs=("a", "b"), output="y", relu=relu)
    net = IntegerNetwork("add", Precision.FIX8 if bits_out == 8 else Precision.FIX32, "a", "y",
                         {"a": ta, "b": tb_, "y": ty}, [ident, op])
    env = {"a": np.array(a, np.int64).reshape(1, n, 1, 1),
           "b": np.array(b, np.int64).reshape(1, n, 1, 1)}
    return golden.run_op(net, op, env).ravel().tolist()


@cocotb.test()
@cocotb.parametrize(traffic=[(0.0, 0.0), (0.4, 0.5)])
async def residual_add(dut, traffic):
    cfg = tb_config()
    rng, nrng = seeded(dut)
    ib, ob = cfg["in_bits"], cfg["out_bits"]
    src, sink, mon = bench(dut, rng, traffic)
    for s in ("shift_a", "shift_b", "shift", "relu"):
        getattr(dut, s).value = 0
    await start_clock_and_reset(dut)
    lo, hi = -(1 << (ib - 1)), (1 << (ib - 1)) - 1
    for fa, fb, fy in cfg["fracs"]:
        for relu in (0, 1):
            n = 30
            a = nrng.choice([lo, hi, 0, -1, *nrng.integers(lo, hi, 4, endpoint=True)], n)
            b = nrng.choice([lo, hi, 0, 1, *nrng.integers(lo, hi, 4, endpoint=True)], n)
            big = max(fa, fb)
            await FallingEdge(dut.clk)
            dut.shift_a.value, dut.shift_b.value = big - fa, big - fb
            dut.shift.value, dut.relu.value = big - fy, relu
            items = [pack([(a[k:k + 1], ib), (b[k:k + 1], ib)]) for k in range(n)]
            seen, got = await transact(dut, src, sink, mon, items,
                                       [(1, ib, True), (1, ib, True)], ob)
            want = add_reference(*zip(*seen, strict=True), fa, fb, fy, bool(relu), ib, ob)
            assert got == want, f"fracs {fa, fb, fy} relu {relu}: got {got[:8]}, want {want[:8]}"


@cocotb.test()
@cocotb.parametrize(traffic=[(0.0, 0.0), (0.4, 0.5)])
async def avgpool(dut, traffic):
    """Windows of k*k items (k from the config), ``inputs`` a transfer, ``groups`` windows
    interleaved, against the golden avgpool op."""
    from gen.ir import AvgPool

    cfg = tb_config()
    rng, nrng = seeded(dut)
    bits, k = cfg["bits"], cfg["kernel"]
    src, sink, _ = bench(dut, rng, traffic)
    dut.shift.value = 0
    await start_clock_and_reset(dut)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    for fx, fy in cfg["fracs"]:
        c = 12  # windows (channels), each a k x k map pooled to 1x1
        x = nrng.integers(lo, hi, (1, c, k, k), endpoint=True)
        x[0, 0] = hi   # saturating and most negative windows
        x[0, 1] = lo
        tx = TensorSpec("x", (c, k, k), Format(bits, fx))
        ty = TensorSpec("y", (c, 1, 1), Format(bits, fy))
        op = AvgPool(name="pool", inputs=("x",), output="y", kernel=k)
        net = IntegerNetwork("pool", Precision.FIX8 if bits == 8 else Precision.FIX32, "x", "y",
                             {"x": tx, "y": ty}, [op])
        want = golden.run_op(net, op, {"x": x}).ravel().tolist()
        await FallingEdge(dut.clk)
        dut.shift.value = pool_shift(k, fx, fy)
        await RisingEdge(dut.clk)  # the pooler's contract: the shift is set a cycle ahead
        base = len(sink.items)
        items = []
        n = cfg.get("inputs", 1)  # items per transfer (a window's last one padded with zeros)
        # ``groups`` windows at a time, their transfers interleaved (each names its window)
        groups = cfg.get("groups", 1)
        g_bits = [([0], (groups - 1).bit_length())] if groups > 1 else []
        for ch0 in range(0, c, groups):
            chans = range(ch0, min(ch0 + groups, c))
            for j in range(0, k * k, n):
                for g, ch in enumerate(chans):
                    flat = [int(v) for v in x[0, ch].ravel()] + [0] * (n - 1)
                    if g_bits:
                        g_bits = [([g], g_bits[0][1])]
                    items.append(pack([(flat[j:j + n], bits), ([int(j == 0)], 1),
                                       ([int(j + n >= k * k)], 1), *g_bits]))
        src.send(items)
        await with_timeout(sink.wait_for(base + c), 100 * 50 * len(items), "ns")
        await ClockCycles(dut.clk, 2)
        got = [int(unpack(v, [(1, bits, True)])[0][0]) for v in sink.items[base:]]
        assert got == want, f"fracs {fx, fy}: got {got}, want {want}"
