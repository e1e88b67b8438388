"""The ``shiftadd`` command line.

Every subcommand prints a human summary, or with ``--json`` exactly one JSON object on stdout.
Errors are one line on stderr (exit status 1); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

DEFAULT_CKPT = Path("runs/digits.pt")


class UserError(Exception):
    """An error whose message is the whole story for the user (no traceback needed)."""


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _emit(args: argparse.Namespace, obj: dict, human: Callable[[], None]) -> None:
    from gen.report import emit

    emit(obj, getattr(args, "json", False), human)


# --------------------------------------------------------------------------- commands
def cmd_train(args: argparse.Namespace) -> int:
    from gen import checkpoint
    from gen.nn.data import SPLIT_SEED, TEST_SIZE
    from gen.nn.train import TrainConfig, train_digits

    cfg = TrainConfig(epochs=args.epochs, lr=args.lr, seed=args.seed, threads=args.threads)

    def progress(row: dict) -> None:
        acc = f"  test {row['test_accuracy']:.2f} %" if "test_accuracy" in row else ""
        _log(f"[train] epoch {row['epoch']:3d}/{row['epochs']}  loss {row['loss']:.4f}{acc}"
             f"  {row['seconds']:.1f} s")

    res = train_digits(args.arch, cfg, progress=None if args.quiet else progress)
    metrics = {"float_test_accuracy": res.test_accuracy, "train_seconds": res.train_seconds,
               "epochs": cfg.epochs, "lr": cfg.lr, "seed": cfg.seed}
    checkpoint.save(args.output, res.model, args.arch, res.normalization, metrics,
                    {"name": "sklearn-digits", "split_seed": SPLIT_SEED, "test_size": TEST_SIZE})
    out = {"checkpoint": str(args.output), "arch": args.arch,
           "float_test_accuracy": round(res.test_accuracy, 4),
           "train_seconds": round(res.train_seconds, 2)}
    _emit(args, out, lambda: print(
        f"trained {args.arch}: {res.test_accuracy:.2f} % test accuracy in "
        f"{res.train_seconds:.1f} s -> {args.output}"))
    return 0


def _load(args: argparse.Namespace):
    from gen import checkpoint

    return checkpoint.load(args.checkpoint, args.arch,
                           round_shift_params=args.round_shift_params)


def cmd_quantize(args: argparse.Namespace) -> int:
    from gen.evaluate import calibration_batch, require_digits_model
    from gen.nn.data import load_digits_splits
    from gen.quantize import quantize

    loaded = _load(args)
    norm = require_digits_model(loaded)
    train, _ = load_digits_splits()
    net = quantize(loaded.model, calibration_batch(train, norm), args.precision, norm,
                   name=loaded.arch)
    out = Path(args.output or Path(args.checkpoint).with_suffix(f".{net.precision.value}.npz"))
    out.parent.mkdir(parents=True, exist_ok=True)
    net.save(out)
    ops = net.summary()
    obj = {"network": str(out), "precision": net.precision.value, "ops": len(ops),
           "input_format": net.tensors[net.input].fmt.to_json(),
           "output_format": net.tensors[net.output].fmt.to_json()}

    def human() -> None:
        print(f"{'op':28s} {'kind':11s} {'out shape':14s} format")
        for r in ops:
            print(f"{r['name']:28s} {r['kind']:11s} {str(tuple(r['out'])):14s} "
                  f"Q{r['fmt']['bits']}.{r['fmt']['frac']}")
        print(f"integer network ({net.precision.value}, {len(ops)} ops) -> {out}")

    _emit(args, obj, human)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from gen.evaluate import evaluate

    res = evaluate(_load(args))
    a = res.accuracies

    def human() -> None:
        print(f"accuracy on the digits test split ({res.images} images)")
        print(f"  {'float':6s} {a['float']:7.2f} %")
        for p in ("fix32", "fix8"):
            print(f"  {p:6s} {a[p]:7.2f} %   ({a[p] - a['float']:+.2f} points vs float)")

    _emit(args, res.to_json(), human)
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from sim.tools import doctor

    rows = doctor()
    ok = all(r.ok for r in rows)

    def human() -> None:
        for r in rows:
            mark = "ok " if r.ok else "MISSING"
            print(f"{mark:8s}{r.name:20s}{r.version or '-':30s}{r.fix}")
        print("all required tools found" if ok else "some required tools are missing")

    _emit(args, {"ok": ok, "tools": [r.to_json() for r in rows]}, human)
    return 0 if ok else 1


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job on the embedded default: train digits (or reuse), quantize, evaluate."""
    from gen import checkpoint
    from gen.evaluate import evaluate

    ckpt = Path(args.checkpoint)
    t0 = time.perf_counter()
    if not ckpt.exists() or args.retrain:
        _log(f"[demo] step 1/2: training the digits ShiftAddNet -> {ckpt}")
        ns = argparse.Namespace(arch="digits", epochs=60, lr=0.05, seed=0, threads=2,
                                output=ckpt, quiet=False, json=False)
        cmd_train(ns)
    else:
        _log(f"[demo] step 1/2: reusing {ckpt} (pass --retrain to train again)")
    _log("[demo] step 2/2: quantizing to FIX32 and FIX8 and running the golden model")
    res = evaluate(checkpoint.load(ckpt))
    a = res.accuracies
    obj = {"checkpoint": str(ckpt), **res.to_json(), "seconds": round(time.perf_counter() - t0, 1)}

    def human() -> None:
        print(f"\nShiftAddNet 'digits' on {res.images} held-out test images")
        print(f"  {'model':8s}{'accuracy':>10s}{'vs float':>12s}")
        print(f"  {'float':8s}{a['float']:9.2f} %{'':>12s}")
        for p in ("fix32", "fix8"):
            print(f"  {p:8s}{a[p]:9.2f} %{a[p] - a['float']:+11.2f}")

    _emit(args, obj, human)
    return 0


# --------------------------------------------------------------------------- parser
def _add_ckpt_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="shiftadd or official ShiftAddNet checkpoint (.pt)")
    p.add_argument("--arch", choices=("digits", "resnet20_shiftadd"), default=None,
                   help="architecture of an official checkpoint (default resnet20_shiftadd); "
                        "shiftadd checkpoints record their own")
    p.add_argument("--round-shift-params", action="store_true",
                   help="apply the official round(clamp(shift)) / sign(round(sign)) rule to raw "
                        "training-state shift parameters instead of rejecting them")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="shiftadd",
        description="FPGA accelerator generator for multiplication-free ShiftAddNet models.")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    t = sub.add_parser("train", help="train a zoo model on the bundled digits data",
                       description="Train a ShiftAddNet on scikit-learn's 8x8 digits (CPU).")
    t.add_argument("arch", choices=("digits",), help="model to train")
    t.add_argument("-o", "--output", type=Path, default=DEFAULT_CKPT, help="checkpoint to write")
    t.add_argument("--epochs", type=int, default=60)
    t.add_argument("--lr", type=float, default=0.05)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    t.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    t.add_argument("--json", action="store_true", help="print one JSON object")
    t.set_defaults(func=cmd_train)

    q = sub.add_parser("quantize", help="quantize a checkpoint to an integer network",
                       description="Quantize a trained model (calibrated on 512 training images) "
                                   "to a FIX8 or FIX32 integer network file (.npz).")
    _add_ckpt_args(q)
    q.add_argument("--precision", choices=("fix8", "fix32"), default="fix8")
    q.add_argument("-o", "--output", type=Path, default=None,
                   help="output file (default CHECKPOINT.<precision>.npz)")
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q.set_defaults(func=cmd_quantize)

    e = sub.add_parser("eval", help="float vs FIX32 vs FIX8 accuracy on the digits test split",
                       description="Accuracy (percent) of the float model and of its FIX32 and "
                                   "FIX8 integer networks, run by the golden model.")
    _add_ckpt_args(e)
    e.add_argument("--json", action="store_true",
                   help="print one object with keys float, fix32, fix8")
    e.set_defaults(func=cmd_eval)

    d = sub.add_parser("doctor", help="report tool versions and what is missing")
    d.add_argument("--json", action="store_true", help="print one JSON object")
    d.set_defaults(func=cmd_doctor)

    m = sub.add_parser("demo", help="the main job on the embedded default model",
                       description="Train the digits model (once), quantize it to FIX32 and "
                                   "FIX8 and print the accuracy table.")
    m.add_argument("--checkpoint", type=Path, default=DEFAULT_CKPT)
    m.add_argument("--retrain", action="store_true")
    m.add_argument("--json", action="store_true", help="print one JSON object")
    m.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        _log("shiftadd: interrupted")
        return 130
    except Exception as e:  # one clear line, unless --debug
        if args.debug:
            raise
        msg = str(e) or type(e).__name__
        if isinstance(e, FileNotFoundError) and e.filename:
            msg = f"{e.filename}: no such file"
        _log(f"shiftadd {args.command}: error: {msg}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
