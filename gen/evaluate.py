"""Accuracy of the float model and of its FIX32 / FIX8 integer networks: on the digits test
split, or on labelled inputs of the user's (``shiftadd eval --data``)."""

from __future__ import annotations

import os
import time
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from gen.checkpoint import Loaded
from gen.ir import IntegerNetwork
from gen.nn.data import CALIBRATION_IMAGES, Normalization, Split, load_digits_splits
from gen.numerics import Precision, quantize_real, saturated_count
from gen.quantize import quantize
from sim import golden


def calibration_batch(train: Split, norm: Normalization, n: int = CALIBRATION_IMAGES
                      ) -> torch.Tensor:
    """The first ``n`` training images (fixed), normalized: the quantizer's calibration set."""
    return torch.from_numpy(norm.apply(train.pixels[:n]))


def quantize_input(net: IntegerNetwork, x: np.ndarray) -> np.ndarray:
    """Float (normalized) inputs -> integers in the network's input format."""
    return quantize_real(x, net.tensors[net.input].fmt)


def golden_threads() -> int:
    """Threads for the golden model over batches: numpy releases the GIL in its array loops,
    so two threads on two cores run ResNet-20 1.4x as fast (BENCHMARKS.md). At most 4: each
    holds a batch's tensors."""
    cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")  # not on macOS
             else os.cpu_count() or 1)
    return max(1, min(4, cores))


def integer_predictions(net: IntegerNetwork, x: np.ndarray, batch: int = 128,
                        progress: Callable[[int], None] | None = None,
                        threads: int | None = None) -> np.ndarray:
    """Class predictions (argmax of the integer logits, first index on ties) for float inputs,
    batches on :func:`golden_threads` threads; ``progress`` hears how many are done, in order,
    after each batch."""
    def predict(i: int) -> np.ndarray:
        out = golden.run(net, quantize_input(net, x[i:i + batch]))
        return out.reshape(len(out), -1).argmax(axis=1)

    starts = range(0, len(x), batch)
    preds = []
    with ThreadPoolExecutor(threads or golden_threads()) as pool:
        for i, p in zip(starts, pool.map(predict, starts), strict=True):
            preds.append(p)
            if progress:
                progress(min(i + batch, len(x)))
    return np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)


def ties(outputs: np.ndarray) -> int:
    """How many of the outputs ``[N, ...]`` hold their largest value more than once: their
    class (the argmax, the first such index) is a tie the integers cannot break."""
    outputs = np.asarray(outputs)
    if outputs.size == 0:
        return 0
    flat = outputs.reshape(len(outputs), -1)
    return int(((flat == flat.max(axis=1, keepdims=True)).sum(axis=1) > 1).sum())


@dataclass
class EvalResult:
    accuracies: dict[str, float]     # float, fix32, fix8 (percent)
    images: int
    seconds: dict[str, float]
    data: str = "the digits test split"
    # fix32, fix8: percent of the inputs on which the integer network predicts the float
    # model's class. Finer than the accuracies' difference, in which a flip to the right class
    # cancels a flip away from it.
    agreement: dict[str, float] = field(default_factory=dict)
    # fix32, fix8: how many input values lie beyond the integer network's input format (they
    # saturate). The format covers the calibration inputs, so many mean that the inputs are not
    # normalized as those were.
    saturated: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {**{k: round(v, 4) for k, v in self.accuracies.items()}, "images": self.images,
                "data": self.data, "agreement": {k: round(v, 4) for k, v in self.agreement.items()},
                "saturated_inputs": dict(self.saturated),
                "seconds": {k: round(v, 3) for k, v in self.seconds.items()}}


def require_digits_model(loaded: Loaded) -> Normalization:
    cfg = loaded.model.config
    if (cfg.in_channels, cfg.input_size) != (1, 8) or loaded.normalization is None:
        raise ValueError(f"{loaded.meta.get('source')}: evaluation on the digits data needs a "
                         "shiftadd checkpoint of a 1x8x8 model (from 'shiftadd train digits'); "
                         "evaluate other models on your data with --data")
    return loaded.normalization


def evaluate(loaded: Loaded, precisions=(Precision.FIX32, Precision.FIX8)) -> EvalResult:
    """The digits model on the digits test split, calibrated on its training images."""
    norm = require_digits_model(loaded)
    train, test = load_digits_splits()
    return evaluate_on(loaded, norm.apply(test.pixels), test.labels,
                       calibration_batch(train, norm), norm, precisions)


@torch.no_grad()
def float_predictions(model: torch.nn.Module, x: np.ndarray, batch: int = 512) -> np.ndarray:
    model.eval()
    return np.concatenate([model(torch.from_numpy(np.ascontiguousarray(x[i:i + batch])))
                           .argmax(1).numpy() for i in range(0, len(x), batch)])


def evaluate_on(loaded: Loaded, x: np.ndarray, labels: np.ndarray, calib: torch.Tensor,
                norm: Normalization | None = None,
                precisions=(Precision.FIX32, Precision.FIX8), data: str | None = None,
                progress: Callable[[str], None] | None = None) -> EvalResult:
    """Accuracy (percent) of the float model and of its integer networks, quantized on
    ``calib``, on the float inputs ``x`` (normalized as the model's) against ``labels``;
    ``progress`` hears each step."""
    x = np.asarray(x, dtype=np.float32)
    t0 = time.perf_counter()
    ref = float_predictions(loaded.model, x)
    acc = {"float": 100.0 * float((ref == labels).mean())}
    seconds = {"float": time.perf_counter() - t0}
    agree, saturated = {}, {}
    for p in precisions:
        t0 = time.perf_counter()
        net = quantize(loaded.model, calib, p, norm, name=loaded.arch)
        saturated[p.value] = saturated_count(x, net.tensors[net.input].fmt)
        pred = integer_predictions(
            net, x, progress=progress and (lambda n, p=p: progress(f"{p.value}: {n}/{len(x)}")))
        acc[p.value] = 100.0 * float((pred == labels).mean())
        agree[p.value] = 100.0 * float((pred == ref).mean())
        seconds[p.value] = time.perf_counter() - t0
    return EvalResult(accuracies=acc, images=len(labels), seconds=seconds, agreement=agree,
                      saturated=saturated, **({"data": data} if data else {}))


def load_labelled(path: Path, loaded: Loaded, limit: int | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` from an ``.npz`` holding ``x`` (float inputs ``[N, C, H, W]``, normalized as
    the model's training inputs) and ``y`` (``N`` class indices), checked against the model;
    the first ``limit`` of them if given."""
    cfg = loaded.model.config
    if not Path(path).is_file():
        raise ValueError(f"{path}: no such file")
    try:
        f = np.load(path, allow_pickle=False)
        if not isinstance(f, np.lib.npyio.NpzFile):
            raise ValueError(f"{path}: one array, not an .npz archive of 'x' (inputs) and 'y' "
                             "(labels): np.savez(PATH, x=inputs, y=labels)")
        with f:
            missing = {"x", "y"} - set(f.files)
            if missing:
                raise ValueError(f"{path}: needs arrays 'x' (inputs) and 'y' (labels); "
                                 f"it has {sorted(f.files)}")
            x, y = f["x"], f["y"]
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: not an .npz archive ({e})") from None
    except ValueError as e:
        if str(e).startswith(str(path)):
            raise
        raise ValueError(f"{path}: not an .npz archive of arrays ({e})") from None
    want = cfg.input_shape
    if x.ndim != 4 or x.shape[1:] != want or not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"{path}: 'x' must be numbers [N, {', '.join(map(str, want))}], not "
                         f"{x.dtype} {list(x.shape)}{loaded.input_hint(x.shape)}")
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{path}: 'y' must be {len(x)} integer labels, not {y.dtype} "
                         f"{list(y.shape)}")
    if len(x) == 0:
        raise ValueError(f"{path}: holds no inputs (N = 0)")
    if not np.isfinite(x).all():
        raise ValueError(f"{path}: 'x' contains NaN or infinity")
    if y.min() < 0 or y.max() >= cfg.num_classes:
        raise ValueError(f"{path}: labels must lie in 0..{cfg.num_classes - 1}, not "
                         f"{int(y.min())}..{int(y.max())}")
    n = len(x) if limit is None else min(limit, len(x))
    return x[:n].astype(np.float32), y[:n].astype(np.int64)
