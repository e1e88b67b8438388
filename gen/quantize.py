"""Quantization: a trained float ShiftAdd ResNet + calibration data -> :class:`IntegerNetwork`.

The float model is walked in execution order (:func:`float_walk`), recording every tensor that
becomes an IR tensor. Calibration sets each activation tensor's power-of-two format from the
largest magnitude seen; the rules that turn float parameters into integers are in
``docs/NUMERICS.md`` (section "Quantization").
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from gen.ir import Add, AdderConv, AvgPool, IntegerNetwork, Op, Requant, ShiftConv, TensorSpec
from gen.nn.data import Normalization
from gen.nn.layers import Adder2d, ShiftConv2d
from gen.nn.models import BasicBlock, ShiftAddResNet
from gen.numerics import (
    FRAC_MAX,
    FRAC_MIN,
    MULT_BITS,
    SHIFT_LIMIT,
    Format,
    Precision,
    pool_divisor_bits,
    pool_gain,
    round_real,
    signed_bits,
)


def frac_for(max_abs: float, bits: int) -> int:
    """Largest ``frac`` such that ``max_abs * 2**frac`` fits a signed ``bits``-wide integer."""
    hi = (1 << (bits - 1)) - 1
    if not max_abs > 0:
        return bits - 1
    return math.floor(math.log2(hi / max_abs))


def _bn_affine(bn: torch.nn.BatchNorm2d) -> tuple[np.ndarray, np.ndarray]:
    """BN in eval mode as ``y = a * x + c`` (float64)."""
    var = bn.running_var.double().numpy()
    a = bn.weight.detach().double().numpy() / np.sqrt(var + bn.eps)
    c = bn.bias.detach().double().numpy() - a * bn.running_mean.double().numpy()
    return a, c


def requant_params(a: np.ndarray, c: np.ndarray, frac_in: int, frac_out: int
                   ) -> tuple[np.ndarray, np.ndarray, int]:
    """Integer ``(mult, bias, shift)`` realising ``y = a * x + c`` from ``frac_in`` to ``frac_out``.

    ``mult`` uses all :data:`MULT_BITS` for the largest ``|a|``; common factors of two are then
    removed, which leaves the result bit-identical (an identity scale becomes ``m = 1``).
    """
    hi = (1 << (MULT_BITS - 1)) - 1
    scale = np.asarray(a, dtype=np.float64) * 2.0 ** (frac_out - frac_in)
    peak = float(np.max(np.abs(scale))) if scale.size else 0.0
    s = SHIFT_LIMIT if peak == 0 else math.floor(math.log2(hi / peak))
    s = max(0, min(s, SHIFT_LIMIT))
    m = np.round(scale * 2.0 ** s).astype(object)
    if peak and max(abs(int(v)) for v in m) > hi:
        raise ValueError(f"scale {peak:g} cannot be represented with {MULT_BITS}-bit multipliers")
    b = np.array([int(round(float(v) * 2.0 ** (frac_out + s))) for v in c], dtype=object)
    m = np.array([int(v) for v in m], dtype=object)
    while s > 0 and all(v % 2 == 0 for v in m) and all(v % 2 == 0 for v in b):
        m, b, s = m // 2, b // 2, s - 1
    return m.astype(np.int64), b.astype(np.int64), s


def float_walk(model: ShiftAddResNet, x: torch.Tensor,
               see: Callable[[str, torch.Tensor], None]) -> None:
    """Run the float model and show ``see`` every tensor the IR will name (same names as the
    IR) as it is made, so that none outlives its use (ResNet-110 on 256 inputs: 4.2 GB held
    at once before)."""
    see("input", x)

    def shiftadd(prefix: str, conv: torch.nn.Sequential, inp: torch.Tensor) -> torch.Tensor:
        s = conv[0](inp)
        see(f"{prefix}.0", s)
        see(f"{prefix}.0.q", s)
        a = conv[1](s)
        see(f"{prefix}.1", a)
        return a

    y = model.conv1(x)
    see("conv1", y)
    y = torch.relu(model.bn1(y))
    see("bn1", y)
    for si, stage in enumerate(model.stages()):
        for bi, blk in enumerate(stage):
            p = f"layer{si + 1}.{bi}"
            h = torch.relu(blk.bn1(shiftadd(f"{p}.conv1", blk.conv1, y)))
            see(f"{p}.bn1", h)
            h = blk.bn2(shiftadd(f"{p}.conv2", blk.conv2, h))
            see(f"{p}.bn2", h)
            if blk.downsample is not None:
                r = shiftadd(f"{p}.downsample", blk.downsample, y)
                r = blk.downsample[2](r)
                see(f"{p}.downsample.2", r)
            else:
                r = y
            y = torch.relu(h + r)
            see(p, y)
    y = model.avgpool(y)
    see("avgpool", y)
    y = model.fc(y)
    see("fc", y)
    y = model.bn2(y)
    see("bn2", y)


@torch.no_grad()
def calibrate(model: ShiftAddResNet, x: torch.Tensor, batch: int = 256) -> dict[str, float]:
    """Largest magnitude of every IR tensor over the calibration inputs ``x``."""
    model.eval()
    peaks: dict[str, float] = {}

    def see(name: str, v: torch.Tensor) -> None:
        peaks[name] = max(peaks.get(name, 0.0), float(v.abs().max()))

    for i in range(0, len(x), batch):
        float_walk(model, x[i:i + batch], see)
    return peaks


class _Builder:
    def __init__(self, precision: Precision, peaks: dict[str, float]) -> None:
        self.precision = precision
        self.bits = precision.bits
        self.peaks = peaks
        self.tensors: dict[str, TensorSpec] = {}
        self.ops: list[Op] = []
        # per adder conv output, per channel: what its clipped weights took off the
        # accumulator (adder_conv)
        self.offsets: dict[str, np.ndarray] = {}

    def act_fmt(self, name: str) -> Format:
        peak = self.peaks[name]
        frac = frac_for(peak, self.bits)
        if not FRAC_MIN <= frac <= FRAC_MAX:
            raise ValueError(
                f"{name}: values up to {peak:.3g} over the calibration inputs need {frac} "
                f"fractional bits in {self.precision.value}, outside {FRAC_MIN}..{FRAC_MAX}; "
                "are the calibration inputs normalized as the model's training inputs were?")
        return Format(self.bits, frac)

    def tensor(self, name: str, shape: tuple[int, int, int], fmt: Format) -> str:
        self.tensors[name] = TensorSpec(name, tuple(int(v) for v in shape), fmt)
        return name

    def shift_conv(self, name: str, m: ShiftConv2d, inp: str) -> str:
        x = self.tensors[inp]
        sign, exp = (v.numpy() for v in m.quantized())
        used = exp[sign != 0]
        exp_max = int(used.max()) if used.size else 0
        exp = np.where(sign != 0, exp, 0).astype(np.uint8)  # a zero weight's exponent is moot
        _, h, w = x.shape
        oh = (h + 2 * m.padding - m.kernel_size) // m.stride + 1
        ow = (w + 2 * m.padding - m.kernel_size) // m.stride + 1
        op = ShiftConv(name=name, inputs=(inp,), output=name, sign=sign.astype(np.int8), exp=exp,
                       exp_max=exp_max, stride=m.stride, padding=m.padding)
        fmt = Format(64, x.fmt.frac + exp_max)  # width narrowed by _narrow() below
        self.tensor(name, (m.out_channels, oh, ow), fmt)
        self.ops.append(op)
        return name

    def adder_conv(self, name: str, m: Adder2d, inp: str) -> str:
        """The weights in the input's format, those beyond it clipped to its ends: ``x`` never
        lies beyond them (it saturates), so ``|x - w| = |x - hi| + (w - hi)`` for ``w > hi``
        (and alike below ``lo``), exactly. The clipped amounts, summed per output channel,
        are a constant of the accumulator, which the requant after it takes into its bias
        (:attr:`offsets`); the format need not cover the weights."""
        x = self.tensors[inp]
        w = m.adder.detach().double().numpy()
        wr = round_real(w, x.fmt.frac).astype(np.int64)
        wq = np.clip(wr, x.fmt.lo, x.fmt.hi)
        # acc = -sum |x - w| = (-sum |x - wq|) - offset
        self.offsets[name] = np.abs(wr - wq).reshape(len(wr), -1).sum(axis=1)
        _, h, ww = x.shape
        oh = (h + 2 * m.padding - m.kernel_size) // m.stride + 1
        ow = (ww + 2 * m.padding - m.kernel_size) // m.stride + 1
        self.ops.append(AdderConv(name=name, inputs=(inp,), output=name, weight=wq,
                                  stride=m.stride, padding=m.padding))
        self.tensor(name, (m.out_channels, oh, ow), Format(64, x.fmt.frac))
        return name

    def requant(self, name: str, inp: str, a: np.ndarray, c: np.ndarray, relu: bool,
                fmt: Format) -> str:
        x = self.tensors[inp]
        if inp in self.offsets:  # y = a * (acc - offset) + c, acc in the input's format
            c = c - a * np.ldexp(self.offsets[inp].astype(np.float64), -x.fmt.frac)
        mult, bias, s = requant_params(a, c, x.fmt.frac, fmt.frac)
        self.ops.append(Requant(name=name, inputs=(inp,), output=name, mult=mult, bias=bias,
                                shift=s, relu=relu))
        self.tensor(name, x.shape, fmt)
        return name

    def shiftadd(self, prefix: str, shift: ShiftConv2d, adder: Adder2d, inp: str) -> str:
        s = self.shift_conv(f"{prefix}.0", shift, inp)
        ch = shift.out_channels
        # |x - w| needs one scale for both; the activations' peak alone sets it (adder_conv)
        q = self.requant(f"{prefix}.0.q", s, np.ones(ch), np.zeros(ch), False,
                         self.act_fmt(f"{prefix}.0.q"))
        return self.adder_conv(f"{prefix}.1", adder, q)

    def bn(self, name: str, bn: torch.nn.BatchNorm2d, inp: str, relu: bool,
           gain: float = 1.0) -> str:
        """``bn`` as a requant of ``inp``, whose values are ``gain`` times what the float
        model has there (a pool over a window whose area is not a power of two)."""
        a, c = _bn_affine(bn)
        return self.requant(name, inp, a / gain, c, relu, self.act_fmt(name))

    def narrow(self, net: IntegerNetwork) -> IntegerNetwork:
        """Replace the provisional 64-bit accumulator widths by the widths the bounds need."""
        bounds = net.bounds()
        for name, spec in list(net.tensors.items()):
            if spec.fmt.bits == 64:
                lo, hi = bounds[name]
                bits = max(2, signed_bits(min(int(lo.min()), 0), max(int(hi.max()), 0)))
                net.tensors[name] = TensorSpec(name, spec.shape, Format(bits, spec.fmt.frac))
        net.validate()
        return net


def quantize(model: ShiftAddResNet, calibration: torch.Tensor, precision: Precision | str,
             normalization: Normalization | None = None, name: str = "network") -> IntegerNetwork:
    """Quantize ``model`` to an integer network at ``precision`` (FIX8 or FIX32).

    ``calibration`` is a float batch ``[N, C, H, W]`` of (normalized) inputs.
    """
    precision = Precision.parse(precision)
    cfg = model.config
    if tuple(calibration.shape[1:]) != cfg.input_shape:
        raise ValueError(f"calibration data must be [N, {', '.join(map(str, cfg.input_shape))}], "
                         f"not {list(calibration.shape)}")
    if calibration.shape[0] == 0:
        raise ValueError("calibration data holds no inputs (N = 0)")
    if not torch.isfinite(calibration).all():
        raise ValueError("calibration data contains NaN or infinity")
    peaks = calibrate(model, calibration)
    b = _Builder(precision, peaks)
    inp = b.tensor("input", cfg.input_shape, b.act_fmt("input"))
    y = b.shift_conv("conv1", model.conv1, inp)
    y = b.bn("bn1", model.bn1, y, relu=True)
    for si, stage in enumerate(model.stages()):
        for bi, blk in enumerate(stage):
            blk: BasicBlock
            p = f"layer{si + 1}.{bi}"
            h = b.shiftadd(f"{p}.conv1", blk.conv1[0], blk.conv1[1], y)
            h = b.bn(f"{p}.bn1", blk.bn1, h, relu=True)
            h = b.shiftadd(f"{p}.conv2", blk.conv2[0], blk.conv2[1], h)
            h = b.bn(f"{p}.bn2", blk.bn2, h, relu=False)
            r = y
            if blk.downsample is not None:
                ds = blk.downsample
                r = b.shiftadd(f"{p}.downsample", ds[0], ds[1], y)
                r = b.bn(f"{p}.downsample.2", ds[2], r, relu=False)
            b.ops.append(Add(name=f"{p}.add", inputs=(h, r), output=p, relu=True))
            b.tensor(p, b.tensors[h].shape, b.act_fmt(p))
            y = p
    c, hh, _ = b.tensors[y].shape
    k = cfg.pool
    b.ops.append(AvgPool(name="avgpool", inputs=(y,), output="avgpool", kernel=k))
    # the means take a format of their own, from their own peak, which lies well below the
    # peak of the map they come from: one or two bits finer than the map's on six of seven
    # trained digits models, and FIX8's logits' error a fifth lower (BENCHMARKS.md,
    # forty-second session); at most as fine as the sum it divides (the pool shifts right)
    fx = b.tensors[y].fmt.frac
    pooled = b.act_fmt("avgpool")
    b.tensor("avgpool", (c, hh // k, hh // k),
             Format(pooled.bits, min(pooled.frac, fx + pool_divisor_bits(k))))
    # the pool divides by a power of two: its output is pool_gain(k) times the mean, and so
    # is the fc's, which is linear (no bias); bn2's requant takes the factor back
    y = b.shift_conv("fc", model.fc, "avgpool")
    y = b.bn("bn2", model.bn2, y, relu=False, gain=pool_gain(k))
    meta = {"num_classes": cfg.num_classes, "calibration_images": int(len(calibration)),
            "peaks": {k: round(v, 6) for k, v in peaks.items()}}
    if normalization is not None:
        meta["normalization"] = normalization.to_json()
    net = IntegerNetwork(name=name, precision=precision, input="input", output=y,
                         tensors=b.tensors, ops=b.ops, meta=meta)
    return b.narrow(net)
