"""Training of zoo models on the bundled digits data (CPU).

Reproducible for a given seed *and thread count*: torch's CPU kernels split their reductions
by thread, so another count rounds differently and, over 60 epochs, ends at other weights
(measured, 2 epochs with seed 0: 45.6 % test accuracy with 1 thread, 40.6 % with 2). The
count used is recorded in the result and in the checkpoint's metrics. The instruction set of
torch's kernels changes the weights too (ATen's at AVX-512 against AVX2: 98.89 % against 98.33 %
after 60 epochs; oneDNN's too, 2026-12-04), so ``shiftadd`` runs torch at AVX2 unless told
otherwise (``gen/cli.py: TORCH_CPU_ENV``)."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from gen.nn.data import Normalization, Split, load_digits_splits, normalization_for
from gen.nn.models import PRESETS, ResNetConfig, ShiftAddResNet, build


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 60
    batch_size: int = 64
    lr: float = 0.05
    seed: int = 0
    # None keeps torch's setting (OMP_NUM_THREADS, else one thread per core). On a busy machine
    # fewer threads are faster: with one of 2 cores taken, 2 threads run a step 4x slower than 1.
    # The weights depend on the count (module docstring); 1 is the count every machine has.
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError("epochs and batch_size must be >= 1 and lr > 0")
        if self.threads is not None and self.threads < 1:
            raise ValueError("threads must be >= 1")


@dataclass
class TrainResult:
    model: ShiftAddResNet
    normalization: Normalization
    test_accuracy: float
    train_seconds: float
    history: list[dict]
    threads: int


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@torch.no_grad()
def accuracy(model: nn.Module, split: Split, norm: Normalization, batch: int = 512) -> float:
    """Percent of ``split`` classified correctly by the float model."""
    model.eval()
    correct = 0
    for i in range(0, len(split.labels), batch):
        x = torch.from_numpy(norm.apply(split.pixels[i:i + batch]))
        correct += int((model(x).argmax(1).numpy() == split.labels[i:i + batch]).sum())
    return 100.0 * correct / len(split.labels)


def train_digits(arch: str = "digits", config: TrainConfig | None = None,
                 progress: Callable[[dict], None] | None = None,
                 model_config: ResNetConfig | None = None) -> TrainResult:
    """Train ``arch`` (re-configured by ``model_config`` if given) on the digits training
    split; evaluate on the fixed test split."""
    cfg = config or TrainConfig()
    before = torch.get_num_threads()
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    try:
        return _train(arch, cfg, progress, model_config)
    finally:
        torch.set_num_threads(before)


def _train(arch: str, cfg: TrainConfig, progress: Callable[[dict], None] | None,
           model_config: ResNetConfig | None) -> TrainResult:
    seed_everything(cfg.seed)
    train, test = load_digits_splits()
    norm = normalization_for(train)
    model = build(arch, model_config)
    c, d = model.config, PRESETS["digits"]

    def io(cfg: ResNetConfig) -> tuple[int, int, int]:
        return cfg.in_channels, cfg.input_size, cfg.num_classes

    if io(c) != io(d):
        raise ValueError(f"{arch!r} ({c.in_channels}x{c.input_size}x{c.input_size} in, "
                         f"{c.num_classes} classes) does not take the digits' "
                         f"{d.in_channels}x{d.input_size}x{d.input_size} images of "
                         f"{d.num_classes} classes")
    x_all = torch.from_numpy(norm.apply(train.pixels))
    y_all = torch.from_numpy(train.labels)

    # Adam normalizes AdderNet's eta-scaled gradients and the shift parameters' STE gradients
    # alike; one learning rate serves both (measured: 98.3 % at lr 0.05, 60 epochs).
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    steps_per_epoch = math.ceil(len(y_all) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, pct_start=0.15,
                                                total_steps=cfg.epochs * steps_per_epoch)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(cfg.seed)
    history = []
    t0 = time.perf_counter()
    for epoch in range(cfg.epochs):
        model.train()
        perm = torch.randperm(len(y_all), generator=gen)
        total, n = 0.0, 0
        for i in range(0, len(perm), cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            xb = x_all[idx]
            # light augmentation: random one-pixel translation
            dx, dy = (int(v) for v in torch.randint(-1, 2, (2,), generator=gen))
            xb = torch.roll(xb, shifts=(dy, dx), dims=(2, 3))
            loss = loss_fn(model(xb), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
            n += len(idx)
        row = {"epoch": epoch + 1, "epochs": cfg.epochs, "loss": total / n,
               "seconds": time.perf_counter() - t0}
        if epoch + 1 == cfg.epochs or (epoch + 1) % 5 == 0:
            row["test_accuracy"] = accuracy(model, test, norm)
        history.append(row)
        if progress:
            progress(row)
    seconds = time.perf_counter() - t0
    model.eval()
    return TrainResult(model=model, normalization=norm, test_accuracy=accuracy(model, test, norm),
                       train_seconds=seconds, history=history, threads=torch.get_num_threads())
