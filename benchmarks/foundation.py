"""Foundation benchmark: training time, float/FIX32/FIX8 accuracy, golden-model images/s.

    python benchmarks/foundation.py [--json] [--checkpoint runs/digits.pt] [--retrain]

Trains the digits model with the default settings (unless a checkpoint is given and exists),
evaluates it, and times the golden model on the digits test split (FIX8, FIX32) and on
ResNet-20 ShiftAdd (random weights; the structure sets the cost), FIX8 and FIX32: one call on 8
images in this thread (``golden_resnet20_*``), and 256 images as ``shiftadd eval`` runs them,
batches on up to four threads (``eval_resnet20_*``).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

from gen import checkpoint
from gen.cli import pin_cpu_kernels
from gen.evaluate import (
    calibration_batch,
    evaluate,
    golden_threads,
    integer_predictions,
    quantize_input,
)
from gen.nn.data import load_digits_splits
from gen.nn.models import build
from gen.nn.train import TrainConfig, train_digits
from gen.numerics import Precision
from gen.quantize import quantize
from gen.report import emit
from sim import golden


def images_per_second(net, x, repeat: int = 1) -> float:
    golden.run(net, x[:1])  # warm up
    t0 = time.perf_counter()
    for _ in range(repeat):
        golden.run(net, x)
    return repeat * len(x) / (time.perf_counter() - t0)


DIGITS_CHECKPOINT = Path("build/bench/digits.pt")
EVAL_IMAGES = 256  # ResNet-20 inputs timed through the threaded path `shiftadd eval` takes


def digits_checkpoint(path: Path, retrain: bool = False, log=print) -> float | None:
    """Train the digits model with the default settings into ``path`` unless it exists (or
    ``retrain``); the training's seconds, or None when it was not trained."""
    if path.exists() and not retrain:
        return None
    cfg = TrainConfig()
    log(f"training digits ({cfg.epochs} epochs, lr {cfg.lr}) ...")
    res = train_digits("digits", cfg)
    checkpoint.save(path, res.model, "digits", res.normalization,
                    {"float_test_accuracy": res.test_accuracy}, {"name": "sklearn-digits"})
    return res.train_seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--checkpoint", type=Path, default=DIGITS_CHECKPOINT)
    ap.add_argument("--retrain", action="store_true")
    args = ap.parse_args()
    pin_cpu_kernels()  # as shiftadd train does (torch reads them at its first kernel, not import)
    log = (lambda *a: print(*a, file=sys.stderr)) if args.json else print

    result: dict = {"machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, "
                               f"Python {platform.python_version()}"}
    seconds = digits_checkpoint(args.checkpoint, args.retrain, log)
    if seconds is not None:
        result["train_seconds"] = round(seconds, 1)
    loaded = checkpoint.load(args.checkpoint)
    ev = evaluate(loaded)
    result["accuracy"] = {k: round(v, 2) for k, v in ev.accuracies.items()}
    result["agreement_with_float"] = {k: round(v, 2) for k, v in ev.agreement.items()}
    result["test_images"] = ev.images

    train, test = load_digits_splits()
    calib = calibration_batch(train, loaded.normalization)
    x = loaded.normalization.apply(test.pixels)
    for p in (Precision.FIX8, Precision.FIX32):
        net = quantize(loaded.model, calib, p, loaded.normalization)
        result[f"golden_digits_{p.value}_images_per_s"] = round(
            images_per_second(net, quantize_input(net, x)), 1)
    torch.manual_seed(0)
    r20 = build("resnet20_shiftadd").eval()
    xr = torch.randn(8, 3, 32, 32)
    many = torch.randn(EVAL_IMAGES, 3, 32, 32).numpy()
    for p in (Precision.FIX8, Precision.FIX32):
        net = quantize(r20, xr, p)
        result[f"golden_resnet20_{p.value}_images_per_s"] = round(
            images_per_second(net, quantize_input(net, xr.numpy())), 2)
        # as `shiftadd eval` runs it: integer_predictions, batches on golden_threads() threads
        t0 = time.perf_counter()
        integer_predictions(net, many)
        result[f"eval_resnet20_{p.value}_images_per_s"] = round(
            EVAL_IMAGES / (time.perf_counter() - t0), 2)
    result["eval_threads"] = golden_threads()

    emit(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
