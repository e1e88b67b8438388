"""ShiftAddNet layers in PyTorch (float training and reference inference).

* :class:`ShiftConv2d` — DeepShift-PS: parameters ``shift`` and ``sign``; the weight is
  ``sign(round(sign)) * 2**round(clamp(shift, -K, 0))`` with straight-through rounding.
* :class:`Adder2d` — AdderNet: ``y = -sum |x - w|`` with AdderNet's full-precision weight
  gradient ``x - w``, HardTanh-clipped input gradient ``HT(w - x)`` and adaptive per-layer
  gradient scaling ``eta * sqrt(numel) / ||grad||``.
* :class:`ShiftAddConv` — ``nn.Sequential(shift, adder)`` so that state-dict keys are
  ``<name>.0.shift``, ``<name>.0.sign``, ``<name>.1.adder`` as in the official code.

Parameter names match the official ShiftAddNet repository so that its checkpoints load directly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gen.numerics import SHIFT_EXP_MAX


def _ste_round(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x) - x).detach()


def _ste_sign(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.sign(x) - x).detach()


def _check_geometry(in_channels: int, out_channels: int, kernel_size: int, stride: int,
                    padding: int) -> None:
    for name, v, lo in (("in_channels", in_channels, 1), ("out_channels", out_channels, 1),
                        ("kernel_size", kernel_size, 1), ("stride", stride, 1),
                        ("padding", padding, 0)):
        if not isinstance(v, int) or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, not {v!r}")


class ShiftConv2d(nn.Module):
    """Shift convolution (DeepShift-PS). ``kernel_size=1`` on a 1x1 map is a shift linear layer.

    ``exp_max`` is K: exponents ``k = -round(clamp(shift, -K, 0))`` lie in ``0..K``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, exp_max: int = SHIFT_EXP_MAX) -> None:
        super().__init__()
        _check_geometry(in_channels, out_channels, kernel_size, stride, padding)
        if not isinstance(exp_max, int) or not 0 <= exp_max <= SHIFT_EXP_MAX:
            raise ValueError(f"exp_max must be an integer in 0..{SHIFT_EXP_MAX}, not {exp_max!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.exp_max = exp_max
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        self.shift = nn.Parameter(torch.empty(shape))
        self.sign = nn.Parameter(torch.empty(shape))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Centre magnitudes on He initialisation, 2**shift ~ sqrt(2 / fan_in), spread +-2 octaves.
        fan_in = self.in_channels * self.kernel_size ** 2
        centre = math.log2(math.sqrt(2.0 / fan_in))
        with torch.no_grad():
            self.shift.uniform_(max(centre - 2, -self.exp_max), min(centre + 2, 0))
            self.sign.uniform_(-1, 1)

    def quantized(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(sign in {-1,0,1}, exponent k in 0..K)`` as integer tensors: what hardware uses."""
        sign = torch.sign(torch.round(self.sign.detach())).to(torch.int8)
        k = (-torch.round(torch.clamp(self.shift.detach(), -self.exp_max, 0))).to(torch.uint8)
        return sign, k

    def weight(self) -> torch.Tensor:
        """The effective float weight, with straight-through gradients to ``shift`` and ``sign``."""
        with torch.no_grad():
            self.shift.clamp_(-self.exp_max, 0)
        return _ste_sign(_ste_round(self.sign)) * torch.pow(2.0, _ste_round(self.shift))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight(), None, self.stride, self.padding)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, exp_max={self.exp_max}")


class _AdderFunction(torch.autograd.Function):
    """``y[n, o, p] = -sum_j |cols[n, j, p] - w[o, j]|`` with AdderNet's gradients."""

    @staticmethod
    def forward(ctx, cols: torch.Tensor, w: torch.Tensor, eta: float) -> torch.Tensor:
        ctx.save_for_backward(cols, w)
        ctx.eta = eta
        # cdist(p=1) over [n, P, J] x [O, J] -> [n, P, O]
        y = -torch.cdist(cols.transpose(1, 2).contiguous(), w.unsqueeze(0), p=1.0)
        return y.transpose(1, 2)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        cols, w = ctx.saved_tensors
        grad_cols = grad_w = None
        if ctx.needs_input_grad[1]:
            # dY/dW = X - W (full precision), summed: g @ cols^T - W * sum(g)
            grad_w = torch.einsum("nop,njp->oj", g, cols) - w * g.sum(dim=(0, 2))[:, None]
            norm = torch.linalg.vector_norm(grad_w)
            if norm > 0:
                grad_w = ctx.eta * math.sqrt(grad_w.numel()) / norm * grad_w
        if ctx.needs_input_grad[0]:
            # dY/dX = HT(W - X), one output channel at a time to bound memory, in place and
            # position-major so that each channel's weights and gradients broadcast along rows
            # (2.4x faster than allocating per channel in the [n, J, P] layout).
            cp = cols.transpose(1, 2).contiguous()  # [n, P, J]
            gp = g.transpose(1, 2).contiguous()  # [n, P, O]
            acc, ht = torch.zeros_like(cp), torch.empty_like(cp)
            for o in range(w.shape[0]):
                torch.sub(w[o], cp, out=ht)
                ht.clamp_(-1.0, 1.0)
                acc.addcmul_(ht, gp[:, :, o:o + 1])
            grad_cols = acc.transpose(1, 2)
        return grad_cols, grad_w, None


class Adder2d(nn.Module):
    """AdderNet convolution: ``-sum |x - w|`` over each k x k window (zero padding)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, eta: float = 0.2) -> None:
        super().__init__()
        _check_geometry(in_channels, out_channels, kernel_size, stride, padding)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding, self.eta = kernel_size, stride, padding, eta
        self.adder = nn.Parameter(
            torch.randn(out_channels, in_channels, kernel_size, kernel_size) * 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        k = self.kernel_size
        cols = F.unfold(x, k, padding=self.padding, stride=self.stride)  # [n, C*k*k, P]
        y = _AdderFunction.apply(cols, self.adder.reshape(self.out_channels, -1), self.eta)
        oh = (h + 2 * self.padding - k) // self.stride + 1
        return y.reshape(n, self.out_channels, oh, -1)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, eta={self.eta}")


class ShiftAddConv(nn.Sequential):
    """A converted convolution: shift conv (carries the stride), then an adder conv with the same
    output shape and stride 1. Children ``0`` (shift) and ``1`` (adder) match the official keys."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 exp_max: int = SHIFT_EXP_MAX) -> None:
        pad = kernel_size // 2
        super().__init__(
            ShiftConv2d(in_channels, out_channels, kernel_size, stride, pad, exp_max),
            Adder2d(out_channels, out_channels, kernel_size, 1, pad),
        )
