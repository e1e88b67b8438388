"""ShiftAddNet layers: forward definitions and AdderNet's gradient rules, against explicit loops."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gen.nn.layers import Adder2d, ShiftAddConv, ShiftConv2d


def assert_float_close(a, b):
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)  # float64 training math, not RTL


def adder_loops(x, w, stride, pad):
    n, c, h, ww = x.shape
    o, _, k, _ = w.shape
    xp = F.pad(x, (pad, pad, pad, pad))
    oh, ow = (h + 2 * pad - k) // stride + 1, (ww + 2 * pad - k) // stride + 1
    y = torch.zeros(n, o, oh, ow, dtype=x.dtype)
    for i in range(oh):
        for j in range(ow):
            win = xp[:, :, i * stride:i * stride + k, j * stride:j * stride + k]
            y[:, :, i, j] = -(win[:, None] - w[None]).abs().sum(dim=(2, 3, 4))
    return y


@pytest.mark.parametrize("stride,pad,k", [(1, 1, 3), (2, 1, 3), (1, 0, 1), (2, 0, 1)])
def test_adder_forward_is_negative_l1(seed, stride, pad, k):
    m = Adder2d(3, 4, k, stride, pad).double()
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    assert_float_close(m(x), adder_loops(x, m.adder, stride, pad))


def test_adder_gradients_follow_addernet(seed):
    """dY/dW = X - W (full precision), scaled by eta*sqrt(numel)/||g||; dY/dX = HT(W - X)."""
    eta = 0.2
    m = Adder2d(2, 3, 3, 1, 1, eta=eta).double()
    x = (torch.randn(2, 2, 4, 4, dtype=torch.float64) * 2).requires_grad_()
    g = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    m(x).backward(g)

    xp = F.pad(x.detach(), (1, 1, 1, 1))
    w = m.adder.detach()
    gw = torch.zeros_like(w)
    gx = torch.zeros_like(xp)
    for i in range(4):
        for j in range(4):
            win = xp[:, :, i:i + 3, j:j + 3]                      # [n, c, 3, 3]
            diff = win[:, None] - w[None]                        # x - w: [n, o, c, 3, 3]
            gw += (g[:, :, i, j][:, :, None, None, None] * diff).sum(0)
            gx[:, :, i:i + 3, j:j + 3] += (g[:, :, i, j][:, :, None, None, None] *
                                           torch.clamp(-diff, -1, 1)).sum(1)
    gw = eta * math.sqrt(gw.numel()) / torch.linalg.vector_norm(gw) * gw
    assert_float_close(m.adder.grad, gw)
    assert_float_close(x.grad, gx[:, :, 1:-1, 1:-1])


def test_shift_weight_is_signed_power_of_two(seed):
    m = ShiftConv2d(4, 5, 3, exp_max=6)
    with torch.no_grad():
        m.shift.uniform_(-9, 2)   # out of range on both sides: clamped
        m.sign.uniform_(-1.5, 1.5)
    w = m.weight().detach()
    sign, k = m.quantized()
    assert set(sign.unique().tolist()) <= {-1, 0, 1}
    assert 0 <= int(k.min()) and int(k.max()) <= 6
    assert torch.equal(w, sign.float() * torch.pow(2.0, -k.float()))


def test_shift_ste_passes_gradients(seed):
    m = ShiftConv2d(2, 2, 3, padding=1)
    m(torch.randn(1, 2, 4, 4)).sum().backward()
    assert m.shift.grad is not None and m.shift.grad.abs().sum() > 0
    assert m.sign.grad is not None and m.sign.grad.abs().sum() > 0


def test_shiftadd_conv_keys_match_official_layout():
    keys = set(ShiftAddConv(3, 8, 3, stride=2).state_dict())
    assert keys == {"0.shift", "0.sign", "1.adder"}


@pytest.mark.parametrize("bad", [dict(in_channels=0), dict(stride=0), dict(exp_max=15)])
def test_layer_arguments_are_checked(bad):
    args = dict(in_channels=2, out_channels=2, kernel_size=3, stride=1, padding=1, exp_max=14)
    args.update(bad)
    with pytest.raises(ValueError, match=next(iter(bad))):
        ShiftConv2d(**args)


@pytest.mark.parametrize("layer", [ShiftConv2d, Adder2d])
@pytest.mark.parametrize("args,message", [
    ((0, 4, 3), "in_channels must be an integer >= 1, not 0"),
    ((4, 4, 3, 1, -1), "padding must be an integer >= 0, not -1"),
    ((4, 4, 3.0), "kernel_size must be an integer >= 1, not 3.0"),
    ((4, 4, 3, 0), "stride must be an integer >= 1, not 0"),
])
def test_a_bad_layer_geometry_is_refused_by_name(layer, args, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        layer(*args)
