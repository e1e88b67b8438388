"""The model zoo: ShiftAdd ResNets with the official ShiftAddNet module names.

``resnet20_shiftadd`` is the CIFAR-10 ResNet-20 of the official repository (AdderNet topology
converted by DeepShift): ``conv1`` is a shift conv, each block conv is a :class:`ShiftAddConv`
(``layerS.B.convN.0.shift/.sign``, ``layerS.B.convN.1.adder``), a stride or width change uses
``downsample = (shift 1x1, adder 1x1, BN)``, then ``avgpool``, ``fc`` (a 1x1 shift conv) and ``bn2``.

``digits`` is the same family, sized for scikit-learn's 8x8 digits: one block per stage, widths
16 and 32, a 4x4 average pool.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from gen.nn.layers import Adder2d, ShiftAddConv, ShiftConv2d
from gen.numerics import SHIFT_EXP_MAX


@dataclass(frozen=True)
class ResNetConfig:
    in_channels: int
    input_size: int
    widths: tuple[int, ...]
    blocks: tuple[int, ...]
    num_classes: int
    exp_max: int = SHIFT_EXP_MAX

    def __post_init__(self) -> None:
        if len(self.widths) != len(self.blocks) or not self.widths:
            raise ValueError("widths and blocks must be non-empty and of equal length")
        if min(self.widths) < 1 or min(self.blocks) < 1 or self.num_classes < 2:
            raise ValueError("widths and blocks must be positive and num_classes >= 2")
        if self.in_channels < 1:
            raise ValueError(f"in_channels must be at least 1, not {self.in_channels}")
        if self.input_size < 1:
            raise ValueError(f"input_size must be at least 1, not {self.input_size}")
        if not 0 <= self.exp_max <= SHIFT_EXP_MAX:
            raise ValueError(f"exp_max must be in 0..{SHIFT_EXP_MAX}, not {self.exp_max}")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one input."""
        return self.in_channels, self.input_size, self.input_size

    @property
    def pool(self) -> int:
        """Side of the final feature map (pooled to 1x1): each stage after the first halves it,
        an odd side rounding up (its stride-2 convs: 28 -> 14 -> 7, 7 -> 4)."""
        side = self.input_size
        for _ in self.widths[1:]:
            side = (side + 1) // 2
        return side

    def to_json(self) -> dict:
        d = asdict(self)
        d["widths"], d["blocks"] = list(self.widths), list(self.blocks)
        return d

    @classmethod
    def from_json(cls, d: dict) -> ResNetConfig:
        return cls(in_channels=int(d["in_channels"]), input_size=int(d["input_size"]),
                   widths=tuple(int(v) for v in d["widths"]),
                   blocks=tuple(int(v) for v in d["blocks"]),
                   num_classes=int(d["num_classes"]), exp_max=int(d.get("exp_max", SHIFT_EXP_MAX)))


PRESETS: dict[str, ResNetConfig] = {
    "digits": ResNetConfig(in_channels=1, input_size=8, widths=(16, 32), blocks=(1, 1),
                           num_classes=10),
    "resnet20_shiftadd": ResNetConfig(in_channels=3, input_size=32, widths=(16, 32, 64),
                                      blocks=(3, 3, 3), num_classes=10),
}


class BasicBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int, exp_max: int) -> None:
        super().__init__()
        self.conv1 = ShiftAddConv(inplanes, planes, 3, stride, exp_max)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = ShiftAddConv(planes, planes, 3, 1, exp_max)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                ShiftConv2d(inplanes, planes, 1, stride, 0, exp_max),
                Adder2d(planes, planes, 1, 1, 0),
                nn.BatchNorm2d(planes),
            )
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(out + residual)


class ShiftAddResNet(nn.Module):
    def __init__(self, config: ResNetConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.conv1 = ShiftConv2d(c.in_channels, c.widths[0], 3, 1, 1, c.exp_max)
        self.bn1 = nn.BatchNorm2d(c.widths[0])
        self.relu = nn.ReLU(inplace=True)
        inplanes = c.widths[0]
        for i, (planes, n) in enumerate(zip(c.widths, c.blocks, strict=True)):
            blocks = []
            for b in range(n):
                stride = 2 if (i > 0 and b == 0) else 1
                blocks.append(BasicBlock(inplanes, planes, stride, c.exp_max))
                inplanes = planes
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AvgPool2d(c.pool, stride=c.pool)
        self.fc = ShiftConv2d(inplanes, c.num_classes, 1, 1, 0, c.exp_max)
        self.bn2 = nn.BatchNorm2d(c.num_classes)

    def stages(self) -> list[nn.Sequential]:
        return [getattr(self, f"layer{i + 1}") for i in range(len(self.config.widths))]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        for stage in self.stages():
            x = stage(x)
        x = self.bn2(self.fc(self.avgpool(x)))
        return x.flatten(1)


def random_inputs(config: ResNetConfig, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` seeded standard-normal inputs of the model's shape: a calibration batch for a model
    without data (random weights, or a checkpoint whose data is not here)."""
    return torch.randn(n, *config.input_shape, generator=torch.Generator().manual_seed(seed))


def build(arch: str, config: ResNetConfig | None = None) -> ShiftAddResNet:
    """Build a zoo model by name (``digits`` or ``resnet20_shiftadd``), optionally re-configured."""
    if arch not in PRESETS:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(PRESETS)}")
    return ShiftAddResNet(config or PRESETS[arch])


@torch.no_grad()
def randomize(model: ShiftAddResNet, seed: int, shift_range: int = 7,
              calibration: torch.Tensor | None = None) -> ShiftAddResNet:
    """Random but hardware-relevant parameters (the structure is what matters for hardware
    tests): shift exponents spread over ``0..shift_range`` with about a third zero signs,
    Gaussian adder weights, and BatchNorm statistics far from the identity so that every
    requant has distinct per-channel multipliers and biases.

    ``calibration`` (a batch of inputs): the BatchNorm statistics are then those of the batch,
    as training would leave them. Without it an adder conv's output (``-sum |x - w|``, hundreds
    below zero) sits far below the random means, and every ReLU after it outputs 0."""
    g = torch.Generator().manual_seed(seed)
    for mod in model.modules():
        if isinstance(mod, ShiftConv2d):
            mod.shift.copy_(-torch.randint(0, shift_range + 1, mod.shift.shape, generator=g))
            mod.sign.copy_(torch.randint(-1, 2, mod.sign.shape, generator=g).float())
        elif isinstance(mod, Adder2d):
            mod.adder.copy_(torch.randn(mod.adder.shape, generator=g) * 0.5)
        elif isinstance(mod, nn.BatchNorm2d):
            c = mod.num_features
            mod.weight.copy_(torch.rand(c, generator=g) + 0.5)
            mod.bias.copy_(torch.randn(c, generator=g) * 0.5)
            mod.running_mean.copy_(torch.randn(c, generator=g) * 0.5)
            mod.running_var.copy_(torch.rand(c, generator=g) * 1.5 + 0.5)
    if calibration is not None:
        bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        was_training, momenta = model.training, [m.momentum for m in bns]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average: after one batch, its statistics
        model.train()(calibration)
        for m, mom in zip(bns, momenta, strict=True):
            m.momentum = mom
        model.train(was_training)
    return model
