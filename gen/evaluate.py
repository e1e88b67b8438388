"""Accuracy of the float model and of its FIX32 / FIX8 integer networks on the digits test split."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from gen.checkpoint import Loaded
from gen.ir import IntegerNetwork
from gen.nn.data import Normalization, Split, load_digits_splits
from gen.nn.train import accuracy
from gen.numerics import Precision, quantize_real
from gen.quantize import quantize
from sim import golden

CALIBRATION_IMAGES = 512


def calibration_batch(train: Split, norm: Normalization, n: int = CALIBRATION_IMAGES
                      ) -> torch.Tensor:
    """The first ``n`` training images (fixed), normalized: the quantizer's calibration set."""
    return torch.from_numpy(norm.apply(train.pixels[:n]))


def quantize_input(net: IntegerNetwork, x: np.ndarray) -> np.ndarray:
    """Float (normalized) inputs -> integers in the network's input format."""
    return quantize_real(x, net.tensors[net.input].fmt)


def integer_predictions(net: IntegerNetwork, x: np.ndarray, batch: int = 128) -> np.ndarray:
    """Class predictions (argmax of the integer logits, first index on ties) for float inputs."""
    preds = []
    for i in range(0, len(x), batch):
        out = golden.run(net, quantize_input(net, x[i:i + batch]))
        preds.append(out.reshape(len(out), -1).argmax(axis=1))
    return np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)


@dataclass
class EvalResult:
    accuracies: dict[str, float]     # float, fix32, fix8 (percent)
    images: int
    seconds: dict[str, float]

    def to_json(self) -> dict:
        return {**{k: round(v, 4) for k, v in self.accuracies.items()}, "images": self.images,
                "seconds": {k: round(v, 3) for k, v in self.seconds.items()}}


def require_digits_model(loaded: Loaded) -> Normalization:
    cfg = loaded.model.config
    if (cfg.in_channels, cfg.input_size) != (1, 8) or loaded.normalization is None:
        raise ValueError(f"{loaded.meta.get('source')}: evaluation on the digits data needs a "
                         "shiftadd checkpoint of a 1x8x8 model (from 'shiftadd train digits')")
    return loaded.normalization


def evaluate(loaded: Loaded, precisions=(Precision.FIX32, Precision.FIX8)) -> EvalResult:
    norm = require_digits_model(loaded)
    train, test = load_digits_splits()
    t0 = time.perf_counter()
    acc = {"float": accuracy(loaded.model, test, norm)}
    seconds = {"float": time.perf_counter() - t0}
    x = norm.apply(test.pixels)
    calib = calibration_batch(train, norm)
    for p in precisions:
        t0 = time.perf_counter()
        net = quantize(loaded.model, calib, p, norm, name=loaded.arch)
        pred = integer_predictions(net, x)
        acc[p.value] = 100.0 * float((pred == test.labels).mean())
        seconds[p.value] = time.perf_counter() - t0
    return EvalResult(accuracies=acc, images=len(test.labels), seconds=seconds)
