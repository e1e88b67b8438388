"""Quantization fidelity: how often each integer network's class differs from the float model's.

    python benchmarks/quant_fidelity.py [CHECKPOINT ...] [--logit-bits B] [--json]

Each checkpoint is a model of the digits' 1x8x8 inputs (``shiftadd train digits [--blocks
--widths]``); with none, the digits model is trained (or taken from build/bench/digits.pt).
For each: its float test accuracy, then for FIX32 and FIX8 the inputs of all 1,797 digits
images (training and test: agreement needs no labels) given another class than the float
model gives, the test accuracy, and the relative RMS error of the logits against the float
model's. The accuracy difference alone hides flips that cancel; the class differences and the
logits' error do not. ``--logit-bits B`` adds FIX8 with its last requantization (the logits)
B bits wide, in the golden model only (the hardware's outputs are the precision's width).
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
from gen.ir import Requant, TensorSpec
from gen.nn.data import load_digits_splits
from gen.numerics import Format
from gen.quantize import _bn_affine, frac_for, quantize, requant_params
from gen.report import emit
from sim import golden


def widen_logits(net, model, bits: int):
    """``net`` with its last op, the logits' requantization (``bn2``), rounding to ``bits``
    instead: its format from the same calibration peak, its parameters by the same rule."""
    op = net.ops[-1]
    assert isinstance(op, Requant) and op.output == net.output == "bn2"
    fmt = Format(bits, frac_for(net.meta["peaks"]["bn2"], bits))
    mult, bias, shift = requant_params(*_bn_affine(model.bn2),
                                       net.tensors[op.inputs[0]].fmt.frac, fmt.frac)
    op.mult, op.bias, op.shift = mult, bias, shift
    spec = net.tensors[op.output]
    net.tensors[op.output] = TensorSpec(spec.name, spec.shape, fmt)
    net.validate()
    return net


def measure(path: Path, logit_bits: int | None = None) -> dict:
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
    runs = [("fix32", "fix32"), ("fix8", "fix8")]
    if logit_bits:
        runs.append((f"fix8_logits{logit_bits}", "fix8"))
    for key, precision in runs:
        net = quantize(loaded.model, calib, precision, norm)
        if key != precision:
            net = widen_logits(net, loaded.model, logit_bits)
        out = golden.run(net, quantize_input(net, x)).reshape(len(x), -1)
        logits = out * 2.0 ** -net.tensors[net.output].fmt.frac
        pred = out.argmax(1)
        row[key] = {
            "differ": int((pred != ref).sum()),
            "test_accuracy": round(100.0 * float((pred[tail] == test.labels).mean()), 2),
            "logit_error": round(float(np.sqrt(((logits - want) ** 2).mean()
                                               / (want ** 2).mean())), 4)}
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="*", type=Path)
    ap.add_argument("--logit-bits", type=int, default=None, metavar="B",
                    help="also FIX8 with B-bit logits (golden model only)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.logit_bits is not None and not 2 <= args.logit_bits <= 32:
        ap.error(f"--logit-bits must be 2..32, not {args.logit_bits}")
    paths = args.checkpoints
    if not paths:
        digits_checkpoint(DIGITS_CHECKPOINT, log=lambda m: print(m, file=sys.stderr))
        paths = [DIGITS_CHECKPOINT]
    try:
        rows = [measure(p, args.logit_bits) for p in paths]
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
            w = r.get(f"fix8_logits{args.logit_bits}")
            if w:
                print(f"{'':24s} fix8 with {args.logit_bits}-bit logits: other class {w['differ']}, "
                      f"test accuracy {w['test_accuracy']:.2f} %, logit error "
                      f"{w['logit_error']:.4f}")

    emit({"models": rows}, args.json, human)
    return 0


if __name__ == "__main__":
    sys.exit(main())
