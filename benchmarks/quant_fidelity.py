"""Quantization fidelity: how often each integer network's class differs from the float model's.

    python benchmarks/quant_fidelity.py [CHECKPOINT ...] [--json]

Each checkpoint is a model of the digits' 1x8x8 inputs (``shiftadd train digits [--blocks
--widths]``); with none, the digits model is trained (or taken from build/bench/digits.pt).
For each: its float test accuracy, then for FIX32 and FIX8 the inputs of all 1,797 digits
images (training and test: agreement needs no labels) given another class than the float
model gives, the test accuracy, and the relative RMS error of the logits against the float
model's. The accuracy difference alone hides flips that cancel; the class differences and the
logits' error do not.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from foundation import DIGITS_CHECKPOINT, digits_checkpoint

from gen import checkpoint
from gen.evaluate import calibration_batch, quantize_input, require_digits_model
from gen.nn.data import load_digits_splits
from gen.quantize import quantize
from gen.report import emit
from sim import golden


def measure(path: Path) -> dict:
    loaded = checkpoint.load(path)
    norm = require_digits_model(loaded)
    train, test = load_digits_splits()
    calib = calibration_batch(train, norm)
    x = norm.apply(np.concatenate([train.pixels, test.pixels]))
    with torch.no_grad():
        want = loaded.model.eval()(torch.from_numpy(x)).numpy()
    ref = want.argmax(1)
    tail = slice(len(train.labels), None)
    c = loaded.model.config
    row = {"checkpoint": str(path), "widths": list(c.widths), "blocks": list(c.blocks),
           "images": len(x),
           "float_test_accuracy": round(100.0 * float((ref[tail] == test.labels).mean()), 2)}
    for precision in ("fix32", "fix8"):
        net = quantize(loaded.model, calib, precision, norm)
        out = golden.run(net, quantize_input(net, x)).reshape(len(x), -1)
        logits = out * 2.0 ** -net.tensors[net.output].fmt.frac
        pred = out.argmax(1)
        row[precision] = {
            "differ": int((pred != ref).sum()),
            "test_accuracy": round(100.0 * float((pred[tail] == test.labels).mean()), 2),
            "logit_error": round(float(np.sqrt(((logits - want) ** 2).mean()
                                               / (want ** 2).mean())), 4)}
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="*", type=Path)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    paths = args.checkpoints
    if not paths:
        digits_checkpoint(DIGITS_CHECKPOINT, log=lambda m: print(m, file=sys.stderr))
        paths = [DIGITS_CHECKPOINT]
    try:
        rows = [measure(p) for p in paths]
    except ValueError as e:  # not a model of the digits
        raise SystemExit(str(e)) from None

    def human() -> None:
        print(f"{'checkpoint':24s} {'widths':>9s} {'blocks':>7s} {'float':>7s}   "
              f"other class (of {rows[0]['images']})   test accuracy %   logit error")
        print(f"{'':24s} {'':9s} {'':7s} {'test %':>7s}   {'fix32':>7s} {'fix8':>7s}      "
              f"{'fix32':>7s} {'fix8':>7s}   {'fix32':>6s} {'fix8':>6s}")
        for r in rows:
            a, b = r["fix32"], r["fix8"]
            print(f"{Path(r['checkpoint']).name:24s} {','.join(map(str, r['widths'])):>9s} "
                  f"{','.join(map(str, r['blocks'])):>7s} {r['float_test_accuracy']:7.2f}   "
                  f"{a['differ']:7d} {b['differ']:7d}      {a['test_accuracy']:7.2f} "
                  f"{b['test_accuracy']:7.2f}   {a['logit_error']:6.4f} {b['logit_error']:6.4f}")

    emit({"models": rows}, args.json, human)
    return 0


if __name__ == "__main__":
    sys.exit(main())
