"""The ``shiftadd`` command line.

Every subcommand prints a human summary, or with ``--json`` exactly one JSON object on stdout.
Errors are one line on stderr (exit status 1); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from gen.nn.data import CALIBRATION_IMAGES
from gen.report import plural

DEFAULT_CKPT = Path("runs/digits.pt")


class UserError(Exception):
    """An error whose message is the whole story for the user (no traceback needed)."""


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _emit(args: argparse.Namespace, obj: dict, human: Callable[[], None]) -> None:
    from gen.report import emit

    emit(obj, getattr(args, "json", False), human)


def _checked(parse: Callable[[str], float], ok: Callable[[float], bool], requirement: str):
    """An argparse type: ``parse`` the text and require ``ok`` of it, so that a value no run
    can use is a usage error before any work starts."""
    def convert(text: str):
        try:
            v = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"not {'an integer' if parse is int else 'a number'}: {text!r}") from None
        if not ok(v):
            raise argparse.ArgumentTypeError(f"must be {requirement}, not {text}")
        return v
    return convert


_positive_int = _checked(int, lambda v: v >= 1, "at least 1")
_positive_float = _checked(float, lambda v: math.isfinite(v) and v > 0, "a positive number")
# a stream's idle or backpressure probability (at 1 the stream never moves)
_probability = _checked(float, lambda v: 0 <= v < 1, "at least 0 and below 1")
_port = _checked(int, lambda v: 1 <= v <= 65535, "a TCP port, 1..65535")
_images_per_start = _checked(int, lambda v: v >= 0, "0 (as many as fit) or more")
_listen_port = _checked(int, lambda v: 0 <= v <= 65535, "a TCP port, 0..65535 (0: any free one)")


def _lut_budget(text: str) -> tuple[str, float]:
    """``--lut-budget``: a LUT count (``150000``) or a share of the board (``65%``), as
    ``("luts", n)`` or ``("share", fraction)``; the board is known only once every argument
    is. A bare number up to 1 is refused: it reads as a share but would be a LUT or less."""
    share = text.strip().endswith("%")
    try:
        v = float(text.strip().removesuffix("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a LUT count or a share: {text!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
    if share:
        if v > 100:
            raise argparse.ArgumentTypeError(f"must be at most 100 %, not {text}")
        return ("share", v / 100)
    if v <= 1:
        raise argparse.ArgumentTypeError(
            f"{text} LUTs cannot hold a design; a share of the board is written with %, "
            f"e.g. {v * 100:g}%")
    return ("luts", v)


# --------------------------------------------------------------------------- commands
def cmd_train(args: argparse.Namespace) -> int:
    from gen import checkpoint
    from gen.nn.data import SPLIT_SEED, TEST_SIZE
    from gen.nn.train import TrainConfig, train_digits

    cfg = TrainConfig(epochs=args.epochs, lr=args.lr, seed=args.seed, threads=args.threads)
    model_config = _shape(args, {"widths": args.widths, "blocks": args.blocks})
    _output_file(Path(args.output))  # before minutes of training, not after

    def progress(row: dict) -> None:
        acc = f"  test {row['test_accuracy']:.2f} %" if "test_accuracy" in row else ""
        _log(f"[train] epoch {row['epoch']:3d}/{row['epochs']}  loss {row['loss']:.4f}{acc}"
             f"  {row['seconds']:.1f} s")

    res = train_digits(args.arch, cfg, progress=None if args.quiet else progress,
                       model_config=model_config)
    metrics = {"float_test_accuracy": res.test_accuracy, "train_seconds": res.train_seconds,
               "epochs": cfg.epochs, "lr": cfg.lr, "seed": cfg.seed, "threads": res.threads}
    checkpoint.save(args.output, res.model, args.arch, res.normalization, metrics,
                    {"name": "sklearn-digits", "split_seed": SPLIT_SEED, "test_size": TEST_SIZE})
    c = res.model.config
    out = {"checkpoint": str(args.output), "arch": args.arch, "config": c.to_json(),
           "float_test_accuracy": round(res.test_accuracy, 4),
           "train_seconds": round(res.train_seconds, 2)}
    shape = "" if model_config is None else \
        f" (widths {','.join(map(str, c.widths))}, blocks {','.join(map(str, c.blocks))})"
    _emit(args, out, lambda: print(
        f"trained {args.arch}{shape}: {res.test_accuracy:.2f} % test accuracy in "
        f"{res.train_seconds:.1f} s -> {args.output}"))
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    """A checkpoint with random, hardware-relevant weights: the hardware path (gen, sim, the
    board) for a model nobody has trained here, such as ResNet-20 (CIFAR-10 is not bundled)."""

    from gen import checkpoint
    from gen.nn.models import PRESETS, build, random_inputs, randomize

    out = Path(args.output or f"runs/{args.arch}-random.pt")
    c = _shape(args, {"widths": args.widths, "blocks": args.blocks,
                      "input_size": args.input_size, "in_channels": args.in_channels,
                      "num_classes": args.classes}) or PRESETS[args.arch]
    if args.arch == "digits" and (c.in_channels, c.input_size) != (1, 8):
        raise UserError("a digits model takes the bundled 1x8x8 images; --in-channels and "
                        "--input-size change resnet20_shiftadd models")
    _output_file(out)
    model = build(args.arch, c).eval()
    if args.arch == "digits":
        # the BatchNorm statistics of the real (normalized) inputs, and their normalization
        # recorded, so eval and sim use the digits test images
        from gen.evaluate import calibration_batch
        from gen.nn.data import load_digits_splits, normalization_for

        train, _ = load_digits_splits()
        norm = normalization_for(train)
        calib, data = calibration_batch(train, norm), {"name": "sklearn-digits"}
    else:
        norm, data = None, {"name": "none: random weights, standard-normal calibration inputs"}
        calib = random_inputs(c, 64, args.seed)
    randomize(model, args.seed, calibration=calib)
    checkpoint.save(out, model, args.arch, norm, {"random_weights": True, "seed": args.seed},
                    data)
    params = sum(p.numel() for p in model.parameters())
    obj = {"checkpoint": str(out), "arch": args.arch, "config": c.to_json(), "seed": args.seed,
           "parameters": params}
    shape = (f"{c.in_channels}x{c.input_size}x{c.input_size} in, widths "
             f"{','.join(map(str, c.widths))}, blocks {','.join(map(str, c.blocks))}, "
             f"{c.num_classes} classes")
    _emit(args, obj, lambda: print(
        f"wrote {out}: {args.arch} ({shape}; {params} parameters) with random weights (seed "
        f"{args.seed}); its accuracy means nothing, its hardware is the real one\n"
        f"next: shiftadd gen {out}"))
    return 0


def _shape(args: argparse.Namespace, given: dict):
    """``args.arch``'s preset with the fields given on the command line (None: unchanged), or
    None when none is."""
    import dataclasses

    from gen.nn.models import PRESETS

    changes = {k: v for k, v in given.items() if v is not None}
    if not changes:
        return None
    try:
        return dataclasses.replace(PRESETS[args.arch], **changes)
    except ValueError as e:
        text = ", ".join(f"{k}={','.join(map(str, v)) if isinstance(v, tuple) else v}"
                         for k, v in changes.items())
        raise UserError(f"{args.arch} with {text}: {e}") from None


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, not {text!r}"
                                         ) from None


def _output_file(path: Path) -> None:
    """An output file can be written at ``path`` (not a directory, in a writable one): checked
    before the work whose result it holds."""
    if path.is_dir():
        raise UserError(f"{path} is a directory, not a file name")
    _writable_dir(path.parent)


def _writable_dir(d: Path) -> None:
    """Create ``d`` if needed and check that files can be made in it."""
    try:
        d.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=d).close()
    except OSError as e:
        raise UserError(f"cannot write to {d}/: {e.strerror or e}") from None


def _load(args: argparse.Namespace):
    from gen import checkpoint

    return checkpoint.load(args.checkpoint, args.arch,
                           round_shift_params=args.round_shift_params,
                           input_size=args.input_size)


def cmd_quantize(args: argparse.Namespace) -> int:
    if Path(args.checkpoint).suffix == ".npz":
        raise UserError(f"{args.checkpoint}: already an integer network (quantize takes a "
                        "checkpoint, .pt)")
    net = _network_for(args)
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
    from gen.evaluate import evaluate, evaluate_on, load_labelled

    loaded = _load(args)
    if args.data is None:
        if args.calibration or args.images:
            raise UserError("--calibration and --images go with --data (the digits test split "
                            "is evaluated whole, calibrated on the digits training images)")
        res = evaluate(loaded)
    else:
        x, y = load_labelled(args.data, loaded, args.images)
        if args.calibration:
            calib = _calibration(args, loaded)
        else:
            _log(f"[eval] no --calibration data: calibrating on the first "
                 f"{min(CALIBRATION_IMAGES, len(x))} inputs of {args.data} (pass training "
                 "inputs with --calibration to keep the two apart)")
            calib = torch_inputs(x[:CALIBRATION_IMAGES])
        res = evaluate_on(loaded, x, y, calib, data=str(args.data),
                          progress=lambda s: _log(f"[eval] {s} images"))
    a = res.accuracies
    obj = res.to_json()
    from gen.numerics import saturation_note

    c = loaded.model.config
    for p, n in res.saturated.items():
        if n:
            _log("[eval] note: " + saturation_note(
                n, res.images * math.prod(c.input_shape), f"the {p} network's input "
                "format (the calibration inputs' range)"))
    recorded = loaded.meta.get("best_prec1")
    if isinstance(recorded, int | float) and args.data is not None:
        # the official train.py's own test accuracy: far from the float model's here, the
        # inputs are likely not normalized as in training
        obj["checkpoint_best_prec1"] = recorded
        if res.images >= EVAL_COMPARE_IMAGES and abs(a["float"] - recorded) > EVAL_COMPARE_POINTS:
            _log(f"[eval] note: the float model scores {a['float']:.2f} % here and "
                 f"{recorded:.2f} % by the checkpoint's own record (best_prec1): are the "
                 "inputs normalized as in training? (ShiftAddNet's train.py: CIFAR mean "
                 "(0.4914, 0.4822, 0.4465), std (0.2023, 0.1994, 0.2010))")

    def human() -> None:
        print(f"accuracy on {res.data} ({plural(res.images, 'image')})")
        print(f"  {'float':6s} {a['float']:7.2f} %"
              + (f"   (the checkpoint records {recorded:.2f} %: best_prec1)"
                 if "checkpoint_best_prec1" in obj else ""))
        for p in ("fix32", "fix8"):
            print(f"  {p:6s} {a[p]:7.2f} %   ({a[p] - a['float']:+.2f} points vs float; "
                  f"{res.agreement[p]:.2f} % of inputs get the float model's class)")

    _emit(args, obj, human)
    return 0


# eval --data notes a float accuracy this far from the checkpoint's recorded best_prec1, on at
# least this many inputs (fewer are too noisy to tell a normalization mistake)
EVAL_COMPARE_POINTS = 5.0
EVAL_COMPARE_IMAGES = 1000


def torch_inputs(a):
    """Float inputs as the float32 tensor the quantizer calibrates on."""
    import torch

    return torch.from_numpy(a.astype("float32"))


def _calibration(args: argparse.Namespace, loaded):
    """``--calibration``'s inputs for ``loaded``'s model, as the tensor the quantizer takes."""
    a = _load_npy(args.calibration, "--calibration")
    want = loaded.model.config.input_shape
    if a.ndim != 4 or a.shape[1:] != want:
        raise UserError(f"--calibration {args.calibration}: inputs must be [N, "
                        f"{', '.join(map(str, want))}], not {list(a.shape)}"
                        f"{loaded.input_hint(a.shape)}")
    return torch_inputs(a)


SIM_IMAGES = 20  # shiftadd sim's default number of inputs
RANDOM_CALIBRATION = 64  # standard-normal inputs that calibrate a model without data
CALIBRATION_HELP = (".npy of float inputs [N, C, H, W], normalized as the model's input, to "
                    "calibrate the quantizer")


def _network_for(args: argparse.Namespace):
    """An integer network from a checkpoint (quantized here) or an already quantized ``.npz``."""
    from gen.ir import IntegerNetwork
    from gen.numerics import Precision
    from gen.quantize import quantize

    path = Path(args.checkpoint)
    if path.suffix == ".npz":
        given = [o for o, v in (("--arch", args.arch), ("--input-size", args.input_size),
                                ("--round-shift-params", args.round_shift_params),
                                ("--calibration", args.calibration)) if v]
        if given:
            raise UserError(f"{path} is already an integer network: {', '.join(given)} "
                            "go with a checkpoint (they shape its quantization)")
        net = IntegerNetwork.load(path)
        if args.precision and net.precision is not Precision(args.precision):
            raise UserError(f"{path} is a {net.precision.value} network, not {args.precision}")
        return net
    loaded = _load(args)
    precision = args.precision or "fix8"
    if args.calibration:
        calib = _calibration(args, loaded)
        norm = None
    elif loaded.arch == "digits":
        from gen.evaluate import calibration_batch, require_digits_model
        from gen.nn.data import load_digits_splits

        norm = require_digits_model(loaded)
        calib = calibration_batch(load_digits_splits()[0], norm)
    else:
        c = loaded.model.config
        _log(f"[{args.command}] no --calibration data: calibrating {loaded.description} on "
             f"{RANDOM_CALIBRATION} standard-normal inputs (fine for hardware; use real data "
             "for accuracy)")
        from gen.nn.models import random_inputs

        calib = random_inputs(c, RANDOM_CALIBRATION)
        norm = None
    return quantize(loaded.model, calib, precision, norm, name=loaded.arch)


def _build_id_held(out: Path) -> str | None:
    """The build id of the design in ``out`` (None: none there, or unreadable)."""
    try:
        return str(json.loads((out / "manifest.json").read_text())["build_id_hex"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def cmd_gen(args: argparse.Namespace) -> int:
    from gen.generate import check_request, generate

    t0 = time.perf_counter()
    if args.output and Path(args.output).exists() and not Path(args.output).is_dir():
        raise UserError(f"{args.output}: exists and is not a directory")  # said before the work
    from gen.size import BOARDS

    board = BOARDS[args.board]
    budget = args.lut_budget
    if budget is not None:
        kind, v = budget
        budget = v * board.luts if kind == "share" else v
    # what no generation can use is said before the quantization, not after it
    check_request(clock_mhz=args.clock_mhz, lut_budget=budget, rows=args.rows, cols=args.cols,
                  lanes=args.lanes, images_per_s=args.images_per_s, board=board)
    starts = ["sizing", *(["synthesizing"] if args.synth else []), "writing"]
    n = len(starts) + 1
    _log(f"[gen] step 1/{n}: integer network from {args.checkpoint}")
    net = _network_for(args)
    out = Path(args.output or f"out/{net.name}-{net.precision.value}")
    held = _build_id_held(out)
    steps = {k: f"step {i}/{n}: " for i, k in enumerate(starts, 2)}

    def progress(msg: str) -> None:
        _log("[gen] " + next((v for k, v in steps.items() if msg.startswith(k)), "") + msg)

    manifest, rep = generate(net, out, board=args.board, clock_mhz=args.clock_mhz,
                             lut_budget=budget, rows=args.rows, cols=args.cols,
                             lanes=args.lanes, images_per_s=args.images_per_s,
                             progress=progress, synth=args.synth)
    if held not in (None, manifest["build_id_hex"]):
        # the default OUT/ is named after the model's family: another model of it lands there
        _log(f"[gen] replaced the design {out}/ held (build id {held})")
    seconds = round(time.perf_counter() - t0, 1)
    obj = {"out": str(out), "build_id": manifest["build_id_hex"], "seconds": seconds,
           **{k: rep[k] for k in ("model", "precision", "array", "sizing", "cycles_per_image",
                                  "images_per_s", "latency_us", "min_conv_utilization")},
           "luts_model": rep["resources_model"]["luts_total"],
           "bram36": rep["resources_model"]["bram36_total"]}
    syn = rep.get("resources_synth")
    if syn:
        obj["luts_synth"] = {k: b["lut"] for k, b in syn["blocks"].items()}

    def human() -> None:
        a = rep["array"]
        print(f"generated {out}/ in {seconds} s (build id {manifest['build_id_hex']})")
        print(f"  arrays      {a['rows']} x {a['cols']} PEs x {a['lanes']} lanes (shift + adder): "
              f"{rep['sizing']}")
        print(f"  throughput  {rep['images_per_s']} images/s at {rep['clock_mhz']:g} MHz "
              f"({rep['cycles_per_image']} cycles, {rep['latency_us']} us per image; model)")
        from gen.generate import pe_use_summary

        print(f"  PE use      {pe_use_summary(rep['layers'])}; report.md has every layer")
        print(f"  resources   {rep['resources_model']['luts_total']} LUTs, "
              f"{rep['resources_model']['bram36_total']} BRAM36, {rep['resources_model']['dsp']}"
              " DSP48 (model)")
        if syn:
            from gen.generate import LUT_BLOCKS

            print("  synthesized " + ", ".join(
                f"{LUT_BLOCKS[k]} {syn['blocks'][k]['lut']} LUTs (model {v})"
                for k, v in rep["resources_model"]["luts"].items() if k in syn["blocks"])
                + f"; total {syn['luts_total']} LUTs (model "
                f"{rep['resources_model']['luts_total']}), {syn['core']['bram36']} BRAM36 "
                f"(Yosys, each block alone, the core with them left out, {syn['seconds']} s)")
        print(f"  files       {' '.join(manifest['files'])} manifest.json report.json report.md "
              "report.svg")
        proofs = manifest.get("equivalence", {})
        if proofs:
            methods = sorted({p["method"] for p in proofs.values()})
            proof_s = round(sum(p["seconds"] for p in proofs.values()), 1)
            print(f"  proved      the simulation view equal to the hand-placed cells in "
                  f"{plural(len(proofs), 'component')} ({', '.join(methods)}, {proof_s} s; "
                  "manifest.json's equivalence names them)")

    _emit(args, obj, human)
    return 0


def cmd_sim(args: argparse.Namespace) -> int:
    from sim.accel import simulate_outdir
    from sim.tools import configure_verilator

    inputs, saturated = None, None
    if args.input:
        from gen.generate import load_outdir

        q, saturated = _quantized_inputs(args.input, load_outdir(Path(args.out))[0], "sim",
                                         args.images)
        inputs = (q, args.input)
    configure_verilator()
    res, info = simulate_outdir(Path(args.out), args.images or SIM_IMAGES, seed=args.seed,
                                idle=args.idle, backpressure=args.backpressure,
                                threads=args.threads, inputs=inputs,
                                images_per_start=args.images_per_start,
                                progress=lambda m: _log(f"[sim] {m}"))
    obj = {**res.to_json(), **info}
    if saturated is not None:
        obj["saturated_inputs"] = saturated
    meas = obj["cycles_per_image"]
    obj["cycle_difference"] = round((meas - info["model_cycles_per_image"]) /
                                    info["model_cycles_per_image"], 4)

    def human() -> None:
        print(f"RTL vs golden model on {plural(res.images, 'image')} ({info['inputs']}): "
              + plural(res.mismatches, 'mismatch', 'mismatches'))
        for d in res.differing[:10]:
            print(f"  image {d['image']} differs: {d['beats']} of its {d['of']} output beats, "
                  f"the first beat {d['first_beat']}: {d['got']:#010x} from the RTL, "
                  f"{d['expected']:#010x} from the golden model")
        if len(res.differing) > 10:
            print(f"  ... and {len(res.differing) - 10} more (--json lists them all)")
        print(f"  cycles per image  {meas} measured (min {obj['cycles_min']}, max "
              f"{obj['cycles_max']}), {info['model_cycles_per_image']} cycle model "
              f"({100 * obj['cycle_difference']:+.2f} %, includes stream idle cycles"
              + (f"; up to {args.images_per_start} images per start, each start's cycles "
                 "shared out)" if args.images_per_start > 1 else ")"))
        threads = f", {args.threads} threads" if args.threads > 1 else ""
        print(f"  simulation        {obj['images_per_s']} images/s "
              f"(build {obj['build_seconds']} s{threads})")

    _emit(args, obj, human)
    return 0 if res.mismatches == 0 else 1


def _token(args: argparse.Namespace, *, create: bool = False) -> str:
    import os
    import secrets

    tok = args.token or os.environ.get("SHIFTADD_TOKEN")
    if tok:
        return tok
    if create:
        tok = secrets.token_hex(16)
        _log(f"[board] no --token or SHIFTADD_TOKEN given; clients must use --token {tok}")
        return tok
    raise UserError("the agent needs its token: pass --token or set SHIFTADD_TOKEN")


def _load_npy(path, option: str, what: str = "a .npy array"):
    """The numeric array in the ``.npy`` file an option names, or a one-line error."""
    import numpy as np

    if not Path(path).is_file():
        raise UserError(f"{option} {path}: no such file ({what})")
    try:
        a = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise UserError(f"{option} {path}: not a .npy array ({e})") from None
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise UserError(f"{option} {path}: holds {a.dtype}, not numbers")
    return a


def _inputs(spec: str, manifest: dict):
    """``--input``: a .npy file, or ``digits-test:N`` (the first N digits test images)."""

    if spec.startswith("digits-test:"):
        from gen.nn.data import Normalization, load_digits_splits

        norm = manifest["model"].get("normalization")
        if not norm or manifest["input"]["shape"] != [1, 8, 8]:
            raise UserError("digits-test inputs need a digits model")
        _, test = load_digits_splits()
        n = spec.split(":", 1)[1]
        if not n.isdigit() or not 1 <= int(n) <= len(test.pixels):
            raise UserError(f"--input {spec}: N must be 1..{len(test.pixels)} (the digits test "
                            "images)")
        return Normalization(norm["mean"], norm["std"]).apply(test.pixels[:int(n)])
    return _load_npy(spec, "--input", "a .npy of inputs, or digits-test:N")


def _labels(spec: str, labels: str | None, n: int, classes: int):
    """The class of each of the ``n`` inputs: ``--labels`` (a .npy of ``n`` integers in
    ``0..classes-1``), or for ``digits-test:N`` the split's own; None when neither is there."""
    import numpy as np

    if labels is None:
        if not spec.startswith("digits-test:"):
            return None
        from gen.nn.data import load_digits_splits

        return load_digits_splits()[1].labels[:n]
    y = _load_npy(labels, "--labels", "a .npy of class indices")
    if y.ndim != 1 or len(y) != n:
        raise UserError(f"--labels {labels}: shape {list(y.shape)}; --input has {n} inputs, "
                        f"so [{n}] class indices")
    if not np.issubdtype(y.dtype, np.integer):
        raise UserError(f"--labels {labels}: holds {y.dtype}, not integer class indices")
    bad = (y < 0) | (y >= classes)
    if bad.any():
        raise UserError(f"--labels {labels}: {int(y[bad][0])} (label {int(np.argmax(bad))}) "
                        f"is no class of this model (0..{classes - 1})")
    return y.astype(np.int64)


def _quantized_inputs(spec: str, manifest: dict, command: str, limit: int | None = None):
    """``--input`` (its first ``limit`` inputs) for the design, checked before anything runs
    (``host.board.prepare_inputs``), with a note on values that saturate. Returns ``(inputs,
    saturated values)``."""
    from gen.numerics import Format, saturation_note
    from host.board import prepare_inputs

    try:
        q, saturated = prepare_inputs(_inputs(spec, manifest), manifest, limit)
    except ValueError as e:
        raise UserError(f"--input {spec}: {e}") from None
    if not len(q):
        raise UserError(f"--input {spec}: holds no inputs")
    if saturated:
        _log(f"[{command}] note: " + saturation_note(
            saturated, q.size, Format.from_json(manifest["input"]["format"])))
    return q, saturated


def cmd_run(args: argparse.Namespace) -> int:
    import numpy as np

    from gen.evaluate import ties
    from gen.generate import load_outdir
    from host.board import Board
    from host.client import RemoteError
    from sim import golden

    t0 = time.perf_counter()
    # OUT/, the inputs and where the outputs go are checked before anything goes to the board
    manifest, net, _ = load_outdir(Path(args.out))
    q, saturated = _quantized_inputs(args.input, manifest, "run")
    classes = int(np.prod(manifest["output"]["shape"]))
    labels = _labels(args.input, args.labels, len(q), classes)
    saved = None
    if args.output:  # named as np.save would name it
        saved = Path(args.output)
        saved = saved if saved.suffix == ".npy" else saved.with_name(saved.name + ".npy")
        _output_file(saved)
    with Board(args.board, _token(args)) as board:
        if args.no_load:
            board.use(args.out)
        else:
            board.deploy(args.out)
        try:
            t_infer = time.perf_counter()
            ints, values = board.infer(q, batch=args.batch, progress=lambda i, n: _log(
                f"[run] {i}/{n} images"))
            t_infer = time.perf_counter() - t_infer
        except RemoteError as e:
            if args.no_load and e.code in ("not_loaded", "wrong_build"):
                raise UserError(f"{e} (--no-load takes the design the board runs; without it, "
                                f"run loads {args.out}/ first)") from None
            raise
    seconds = time.perf_counter() - t0
    if saved:
        from gen.files import replaced_whole

        with replaced_whole(saved) as tmp, open(tmp, "wb") as f:
            np.save(f, ints)
    obj = {"images": int(len(ints)), "seconds": round(seconds, 2),
           "build_id": manifest["build_id_hex"], "output_shape": list(ints.shape[1:]),
           "predictions": ints.reshape(len(ints), -1).argmax(axis=1).tolist()[:20],
           "ties": ties(ints), "saturated_inputs": saturated,
           "images_per_s": round(len(ints) / t_infer, 2) if len(ints) else None}
    if board.device_cycles and len(ints):  # (a loopback agent counts none)
        per = board.device_cycles / len(ints)
        obj["device_cycles_per_image"] = round(per)
        obj["device_images_per_s"] = round(manifest["clock_mhz"] * 1e6 / per, 1)
    if labels is not None:
        correct = int((ints.reshape(len(ints), -1).argmax(axis=1) == labels).sum())
        obj["accuracy"] = round(100 * correct / len(labels), 2)
        obj["correct"] = correct
    if args.check:
        ref = golden.run(net, np.asarray(q, dtype=np.int64))
        differ = (ref.reshape(len(ref), -1) != ints.reshape(len(ints), -1)).any(axis=1)
        obj["mismatches"] = int(differ.sum())
        obj["mismatching_images"] = np.flatnonzero(differ).tolist()

    def human() -> None:
        print(f"{plural(obj['images'], 'image')} through {args.board} in {obj['seconds']} s "
              f"(build {obj['build_id']})")
        if "device_cycles_per_image" in obj:
            print(f"  speed       {obj['device_cycles_per_image']} cycles per image on the "
                  f"accelerator's counter: {obj['device_images_per_s']} images/s at the "
                  f"design's {manifest['clock_mhz']:g} MHz; {obj['images_per_s']} images/s end "
                  "to end (host, TCP, agent, DMA; the load not counted)")
        if args.check:
            which = obj["mismatching_images"]
            print(f"  golden model check: {plural(obj['mismatches'], 'mismatching image')}"
                  + (f" ({', '.join(map(str, which[:10]))}{', ...' if len(which) > 10 else ''})"
                     if which else ""))
        if labels is not None:
            print(f"  accuracy {obj['accuracy']:.2f} % ({obj['correct']} of "
                  f"{plural(len(labels), 'labelled image')})")
        print(f"  predictions (first 20): {obj['predictions']}")
        if obj["ties"]:
            print(f"  {obj['ties']} of {obj['images']} images have their largest output in two "
                  "or more classes: the first is taken (the integers cannot break the tie)")

    _emit(args, obj, human)
    return 1 if obj.get("mismatches") else 0


def cmd_deploy(args: argparse.Namespace) -> int:
    from host.board import parse_address
    from host.deploy import DeployConfig, DeployError, deploy

    user, _, hostport = args.board.rpartition("@")  # [USER@]HOST[:PORT]
    host, port = parse_address(hostport, default_port=22)
    cfg = DeployConfig(host=host, user=user or "root", port=port, key=args.key,
                       known_hosts=args.known_hosts,
                       accept_new_host_key=args.accept_new_host_key,
                       remote_dir=args.remote_dir, agent_port=args.agent_port,
                       python=args.python, device=args.device, agent_args=args.agent_arg,
                       load_bitstream=not args.no_bitstream,
                       allow_timing_violation=args.allow_timing_violation)
    try:
        res = deploy(Path(args.out), _token(args), cfg, progress=lambda m: _log(f"[deploy] {m}"))
    except DeployError as e:
        raise UserError(str(e)) from None
    _emit(args, res, lambda: print(
        f"deployed build {res['build_id']} to {host}: agent pid {res['pid']} on port "
        f"{res['agent_port']} ({res['files']} files, {res['bytes']} bytes, {res['seconds']} s)"))
    return 0


def cmd_board(args: argparse.Namespace) -> int:
    if args.action == "emulate":
        from sim.emulated import emulate
        from sim.tools import configure_verilator

        if not args.out:
            raise UserError("board emulate needs the OUT/ directory to serve")
        configure_verilator()
        emulate(Path(args.out), host=args.host, port=args.port, token=_token(args, create=True),
                ready=args.ready, images_per_start=args.images_per_start,
                progress=lambda m: _log(f"[board] {m}"))
        return 0
    from host.board import Board

    with Board(args.board, _token(args)) as board:
        if args.action == "reset":
            board.reset()
            st = {"reset": True, **board.status()}
        else:
            st = board.status()
    _emit(args, st, None)
    return 0


def cmd_bitstream(args: argparse.Namespace) -> int:
    from gen.vivado import VivadoMissing, bitstream, clock_differs

    try:
        manifest = bitstream(Path(args.out), progress=lambda m: _log(f"[bitstream] {m}"))
    except VivadoMissing as e:
        raise UserError(str(e)) from None
    info, mhz = manifest["bitstream"], manifest["clock_mhz"]
    if clock_differs(info, mhz):
        _log(f"[bitstream] WARNING: FCLK0 runs at {info['fclk0_mhz']:g} MHz, not the {mhz:g} "
             "MHz the design was generated for (the PS divides one of its PLLs): the report's "
             f"throughput scales by {info['fclk0_mhz'] / mhz:.3f}; `shiftadd gen ... "
             f"--clock-mhz {info['fclk0_mhz']:g}` makes them agree")
    if info.get("timing_met") is False:
        _log(f"[bitstream] WARNING: timing NOT met (WNS {info['wns_ns']:+.3f} ns): the "
             "accelerator may compute wrong results on the board, and `shiftadd deploy` refuses "
             "it unless --allow-timing-violation; the same paths meet "
             f"{info['max_clock_mhz']:g} MHz: `shiftadd gen ... --clock-mhz "
             f"{int(info['max_clock_mhz'])}`")

    def human() -> None:
        print(f"bitstream {args.out}/{info['bin']} (sha256 {info['sha256'][:16]}...) recorded in "
              "the manifest")
        if info.get("wns_ns") is not None:
            print(f"timing {'met' if info['timing_met'] else 'NOT met'} "
                  f"(WNS {info['wns_ns']:+.3f} ns) at FCLK0 {info['fclk0_mhz']:g} MHz")

    _emit(args, info, human)
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from sim import rtl
    from sim.tools import doctor

    rows = doctor()
    ok = all(r.ok for r in rows)
    builds = rtl.cached_builds()
    cache = {"directory": str(rtl.BUILD_ROOT), "builds": len(builds),
             "bytes": sum(b["bytes"] for b in builds)}

    def human() -> None:
        for r in rows:
            mark = "MISSING" if not r.ok else "ok" if r.found else "absent"
            print(f"{mark:8s}{r.name:20s}{r.version or '-':30s}{r.fix}")
        print("all required tools found" if ok else "some required tools are missing")
        print(f"Verilator builds: {cache['builds']} in {cache['directory']}, "
              f"{_bytes(cache['bytes'])} (`shiftadd cache --clear` frees them)")

    _emit(args, {"ok": ok, "tools": [r.to_json() for r in rows], "build_cache": cache}, human)
    return 0 if ok else 1


def _bytes(n: float) -> str:
    if n < 1000:
        return f"{n:.0f} bytes"
    for unit in ("kB", "MB", "GB"):
        n /= 1000
        if n < 1000 or unit == "GB":
            break
    return f"{n:.1f} {unit}"


def cmd_cache(args: argparse.Namespace) -> int:
    from sim import rtl

    if args.clear:
        res = rtl.clear_builds()

        def human() -> None:
            print(f"removed {len(res['removed'])} builds from {res['directory']}, "
                  f"{_bytes(res['freed_bytes'])} freed")
            if res["kept_in_use"]:
                print(f"kept {len(res['kept_in_use'])} that running processes hold or build: "
                      + ", ".join(res["kept_in_use"]))
    else:
        builds = rtl.cached_builds()
        total = sum(b["bytes"] for b in builds)
        res = {"directory": str(rtl.BUILD_ROOT), "builds": builds, "bytes": total}

        def human() -> None:
            print(f"Verilator builds in {res['directory']}: {len(builds)}, {_bytes(total)}")
            if builds:
                print("(`shiftadd cache --clear` removes those no process holds; a design is "
                      "built again when it is next simulated)")

    _emit(args, res, human)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job on the embedded default: train digits (or reuse), quantize and evaluate,
    generate the FIX8 accelerator, run it in RTL simulation against the golden model."""
    from gen import checkpoint
    from gen.evaluate import evaluate
    from gen.generate import generate
    from gen.quantize import quantize
    from sim.accel import simulate_outdir
    from sim.tools import configure_verilator

    ckpt = Path(args.checkpoint)
    t0 = time.perf_counter()
    if not ckpt.exists() or args.retrain:
        _log(f"[demo] step 1/5: training the digits ShiftAddNet -> {ckpt}")
        ns = argparse.Namespace(arch="digits", epochs=60, lr=0.05, seed=0, threads=None,
                                widths=None, blocks=None, output=ckpt, quiet=False, json=False)
        cmd_train(ns)
    else:
        _log(f"[demo] step 1/5: reusing {ckpt} (pass --retrain to train again)")
    _log("[demo] step 2/5: quantizing to FIX32 and FIX8 and running the golden model")
    loaded = checkpoint.load(ckpt)
    res = evaluate(loaded)
    a = res.accuracies
    _log(f"[demo] step 3/5: shiftadd gen (FIX8, {args.rows}x{args.cols}x{args.lanes} arrays) "
         f"-> {args.out}")
    from gen.evaluate import calibration_batch, require_digits_model
    from gen.nn.data import load_digits_splits

    norm = require_digits_model(loaded)
    net = quantize(loaded.model, calibration_batch(load_digits_splits()[0], norm), "fix8", norm,
                   name="digits")
    manifest, rep = generate(net, Path(args.out), rows=args.rows, cols=args.cols,
                             lanes=args.lanes, progress=lambda m: _log(f"[demo]   {m}"))
    _log(f"[demo] step 4/5: shiftadd sim: {args.images} test images through the RTL "
         "(Verilator; the first build takes about a minute)")
    configure_verilator()
    sim, info = simulate_outdir(Path(args.out), args.images, seed=1,
                                progress=lambda m: _log(f"[demo]   {m}"))
    _log("[demo] step 5/5: the board path on an emulated ZC706: `shiftadd board emulate` serves "
         "the same RTL behind the board agent; the host streams 20 test images over TCP")
    import secrets

    import numpy as np

    from host.board import Board
    from sim import golden
    from sim.emulated import EmulatorProcess

    token = secrets.token_hex(8)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    with EmulatorProcess(args.out, token, Path(args.out) / "emulator.log") as emu, \
            Board(emu.address, token) as board:
        board.deploy(args.out)
        x = _inputs("digits-test:20", manifest)
        ints, _ = board.infer(x)
        ref = golden.run(net, board.quantize(x))
    board_mismatches = int((ints != ref).reshape(len(ref), -1).any(axis=1).sum())
    board_cycles = round(board.device_cycles / len(ints))
    obj = {"checkpoint": str(ckpt), **res.to_json(), "out": args.out,
           "build_id": manifest["build_id_hex"], "rtl": {**sim.to_json(), **info},
           "board": {"address": emu.address, "images": int(len(ints)),
                     "mismatches": board_mismatches, "cycles_per_image": board_cycles,
                     "predictions": np.asarray(ints).reshape(len(ints), -1).argmax(1).tolist()},
           "report": {k: rep[k] for k in ("array", "cycles_per_image", "images_per_s",
                                          "latency_us", "clock_mhz")},
           "seconds": round(time.perf_counter() - t0, 1)}

    def human() -> None:
        from gen.generate import pe_use_summary

        print(f"\nShiftAddNet 'digits' on {res.images} held-out test images")
        print(f"  {'model':8s}{'accuracy':>10s}{'vs float':>12s}{'same class as float':>22s}")
        print(f"  {'float':8s}{a['float']:9.2f} %")
        for p in ("fix32", "fix8"):
            print(f"  {p:8s}{a[p]:9.2f} %{a[p] - a['float']:+11.2f}"
                  f"{res.agreement[p]:20.2f} %")
        ar = rep["array"]
        print(f"\nFIX8 accelerator {args.out}/ (build id {manifest['build_id_hex']}): "
              f"{ar['rows']}x{ar['cols']} PEs x {ar['lanes']} lanes per array (shift + adder)")
        print(f"  RTL vs golden model: {sim.mismatches} mismatches on {sim.images} images "
              f"(bit-exact: {'yes' if sim.mismatches == 0 else 'NO'})")
        print(f"  cycles per image: {obj['rtl']['cycles_per_image']} in RTL, "
              f"{info['model_cycles_per_image']} cycle model; at {rep['clock_mhz']:g} MHz "
              f"{rep['images_per_s']:.0f} images/s, {rep['latency_us']} us latency (model)")
        print(f"  PE use: {pe_use_summary(rep['layers'])}")
        print(f"  report: {args.out}/report.md (figure: {args.out}/report.svg)")
        print(f"  emulated board at {emu.address}: host -> TCP -> agent -> RTL, "
              f"{board_mismatches} mismatches on {len(ints)} images, {board_cycles} cycles "
              "per image on the accelerator's counter")

    _emit(args, obj, human)
    return 0 if sim.mismatches == 0 and board_mismatches == 0 else 1


# --------------------------------------------------------------------------- parser
def _add_ckpt_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="shiftadd or official ShiftAddNet checkpoint (.pt)")
    p.add_argument("--arch", choices=("digits", "resnet20_shiftadd"), default=None,
                   help="architecture of an official checkpoint (default resnet20_shiftadd, "
                        "ShiftAddNet's CIFAR ResNets: the depth, widths, input channels and "
                        "classes are read from the tensors); shiftadd checkpoints record their "
                        "own")
    p.add_argument("--input-size", type=int, metavar="N", default=None,
                   help="side of the images an official checkpoint's model was trained on "
                        "(default 32, CIFAR's; its tensors do not tell); shiftadd checkpoints "
                        "record their own")
    p.add_argument("--round-shift-params", action="store_true",
                   help="round raw training-state shift parameters as the layer's forward "
                        "does, instead of rejecting them: DeepShift-PS shift/sign by the "
                        "official round(clamp(shift)) / sign(round(sign)); SEConv2d weights by "
                        "its own rule (the nearest power of two, zero below its threshold); "
                        "DeepShift-Q weights by 2^round(log2 |w|)")


def build_parser() -> argparse.ArgumentParser:
    from gen.size import BOARDS, DEFAULT_CLOCK_MHZ

    p = argparse.ArgumentParser(
        prog="shiftadd",
        description="FPGA accelerator generator for multiplication-free ShiftAddNet models.")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    t = sub.add_parser("train", help="train a zoo model on the bundled digits data",
                       description="Train a ShiftAddNet on scikit-learn's 8x8 digits (CPU).")
    t.add_argument("arch", choices=("digits",), help="model to train")
    t.add_argument("-o", "--output", type=Path, default=DEFAULT_CKPT, help="checkpoint to write")
    t.add_argument("--epochs", type=int, default=60, help="passes over the training split")
    t.add_argument("--lr", type=float, default=0.05,
                   help="Adam's peak learning rate (one-cycle schedule)")
    t.add_argument("--seed", type=int, default=0, help="weights' and batches' random seed")
    t.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's, OMP_NUM_THREADS or one per core); "
                        "the weights depend on it: same seed and threads, same checkpoint")
    t.add_argument("--widths", type=_int_list, metavar="W,W,...",
                   help="channels of each stage (digits: 16,32; at most 4 stages: each after "
                        "the first halves the 8x8 side)")
    t.add_argument("--blocks", type=_int_list, metavar="B,B,...",
                   help="blocks per stage, as many as widths (digits: 1,1; 3,3,3 with widths "
                        "16,32,64 is ResNet-20's depth)")
    t.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    t.add_argument("--json", action="store_true", help="print one JSON object")
    t.set_defaults(func=cmd_train)

    i = sub.add_parser("init", help="a checkpoint with random weights, for the hardware path",
                       description="Write a shiftadd checkpoint of ARCH with random but "
                                   "hardware-relevant weights (shift exponents over 0..7, a third "
                                   "zero signs, BatchNorm statistics of a calibration batch), "
                                   "to generate and simulate a model's accelerator without "
                                   "training it: `shiftadd init resnet20_shiftadd`, then "
                                   "`shiftadd gen runs/resnet20_shiftadd-random.pt`.")
    i.add_argument("arch", choices=("digits", "resnet20_shiftadd"), help="model family")
    i.add_argument("-o", "--output", type=Path, default=None,
                   help="checkpoint to write (default runs/ARCH-random.pt)")
    i.add_argument("--seed", type=int, default=0, help="random seed of the weights")
    shape = i.add_argument_group("the model's shape (default: ARCH's)")
    shape.add_argument("--widths", type=_int_list, metavar="W,W,...",
                       help="channels of each stage (ResNet-20: 16,32,64); each stage after "
                            "the first halves the side")
    shape.add_argument("--blocks", type=_int_list, metavar="B,B,...",
                       help="blocks per stage, as many as widths (ResNet-20: 3,3,3; 5,5,5 is "
                            "ResNet-32)")
    shape.add_argument("--input-size", type=int, metavar="N",
                       help="input side (ResNet-20: 32; any side: MNIST's 28 halves to 14 "
                            "and 7, and the final 7x7 pool divides by 64 with the 64/49 "
                            "folded into the classifier's requant)")
    shape.add_argument("--in-channels", type=int, metavar="N", help="input channels")
    shape.add_argument("--classes", type=int, metavar="N", help="output classes")
    i.add_argument("--json", action="store_true", help="print one JSON object")
    i.set_defaults(func=cmd_init)

    q = sub.add_parser("quantize", help="quantize a checkpoint to an integer network",
                       description="Quantize a trained model to a FIX8 or FIX32 integer network "
                                   "file (.npz), calibrated on --calibration inputs, else for "
                                   f"digits on {CALIBRATION_IMAGES} of its training images, "
                                   f"else on {RANDOM_CALIBRATION} standard-normal inputs (fine "
                                   "for hardware, not for accuracy).")
    _add_ckpt_args(q)
    q.add_argument("--precision", choices=("fix8", "fix32"), default="fix8",
                   help="the integer format (default fix8)")
    q.add_argument("--calibration", type=Path, default=None, help=CALIBRATION_HELP)
    q.add_argument("-o", "--output", type=Path, default=None,
                   help="output file (default CHECKPOINT.<precision>.npz)")
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q.set_defaults(func=cmd_quantize)

    e = sub.add_parser("eval", help="float vs FIX32 vs FIX8 accuracy (digits, or --data)",
                       description="Accuracy (percent) of the float model and of its FIX32 and "
                                   "FIX8 integer networks, run by the golden model: on the "
                                   "digits test split, or on --data.")
    _add_ckpt_args(e)
    e.add_argument("--data", type=Path, default=None,
                   help=".npz of labelled inputs: 'x' float [N, C, H, W] normalized as the "
                        "model's training inputs, 'y' N class indices (e.g. CIFAR-10 test "
                        "images for ResNet-20)")
    e.add_argument("--calibration", type=Path, default=None,
                   help="with --data: " + CALIBRATION_HELP + f" (default: the first "
                        f"{CALIBRATION_IMAGES} of --data's inputs)")
    e.add_argument("--images", type=_positive_int, default=None,
                   help="with --data: evaluate only the first N")
    e.add_argument("--json", action="store_true",
                   help="print one object with keys float, fix32, fix8")
    e.set_defaults(func=cmd_eval)

    g = sub.add_parser("gen", help="generate the accelerator for a model",
                       description="Quantize (or take a quantized .npz), size the arrays for the "
                                   "board, and write OUT/: rtl/, weights.bin, program.bin, "
                                   "manifest.json, report.json, report.md, report.svg.")
    _add_ckpt_args(g)
    g.add_argument("--precision", choices=("fix8", "fix32"), default=None,
                   help="default fix8 (an .npz network keeps its own)")
    g.add_argument("--board", default="zc706", choices=sorted(BOARDS),
                   help="the target board (default zc706)")
    g.add_argument("-o", "--output", type=Path, default=None,
                   help="output directory (default out/<model>-<precision>)")
    g.add_argument("--rows", type=_positive_int, default=None, help="fix the array rows (pixels per tile)")
    g.add_argument("--cols", type=_positive_int, default=None, help="fix the array columns (channels)")
    g.add_argument("--lanes", type=_positive_int, default=None, help="fix the lanes per PE")
    g.add_argument("--clock-mhz", type=_positive_float, default=DEFAULT_CLOCK_MHZ,
                   help=f"the fabric clock (default {DEFAULT_CLOCK_MHZ:g}; at most the board's: "
                        f"{BOARDS['zc706'].max_clock_mhz:g} on the ZC706)")
    g.add_argument("--lut-budget", type=_lut_budget, default=None,
                   help="LUTs the design may use: a count (150000) or a share of the board "
                        "(65%%); default 70 %% of the board")
    g.add_argument("--images-per-s", type=_positive_float, default=None,
                   help="the smallest design (fewest LUTs) that reaches this throughput at "
                        "--clock-mhz, instead of the fastest that fits")
    g.add_argument("--synth", action="store_true",
                   help="also synthesize a PE of each array and each post-processing unit "
                        "(seconds each) and the engine core (minutes) with Yosys and report "
                        "them beside the cost model")
    g.add_argument("--calibration", type=Path, default=None, help=CALIBRATION_HELP)
    g.add_argument("--json", action="store_true", help="print one JSON object")
    g.set_defaults(func=cmd_gen)

    s = sub.add_parser("sim", help="run a generated accelerator in RTL simulation",
                       description="Build OUT/rtl under Verilator, stream images through "
                                   "AXI-Stream models (random idle and backpressure) and compare "
                                   "every output with the golden model, exactly.")
    s.add_argument("out", type=Path, help="directory written by `shiftadd gen`")
    s.add_argument("--images", type=_positive_int, default=None,
                   help=f"how many inputs (default {SIM_IMAGES}; with --input, all of them)")
    s.add_argument("--input", default=None, metavar="X.npy",
                   help="inputs [N, C, H, W] as .npy (floats are quantized), or digits-test:N; "
                        "default: the digits test images for a digits model, else random "
                        "integers (--seed)")
    s.add_argument("--seed", type=int, default=1,
                   help="seed of the random inputs and of the streams' idle and backpressure")
    s.add_argument("--idle", type=_probability, default=0.1, help="input stream idle probability")
    s.add_argument("--backpressure", type=_probability, default=0.1,
                   help="output stream backpressure probability")
    s.add_argument("--images-per-start", type=_positive_int, default=1,
                   help="images one start of the accelerator runs (IMAGES), their frames and "
                        "results one transfer each, as the board's driver runs them (default 1)")
    s.add_argument("--threads", type=_positive_int, default=1,
                   help="Verilator evaluation threads, a build of their own (default 1). Pays "
                        "only with that many idle cores: digits at 9x16x16 on 2 idle cores "
                        "1.3x faster with 2 one morning, 1.4x slower the next (a virtual "
                        "machine's second core), 2.8x slower with the other core busy")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_sim)

    bs = sub.add_parser("bitstream", help="run the Vivado project script of OUT/",
                        description="Run OUT/vivado/build.tcl with Vivado (batch mode), convert "
                                    "the .bit to the byte-swapped .bin the Linux FPGA manager "
                                    "loads, and record it in the manifest.")
    bs.add_argument("out", type=Path, help="directory written by `shiftadd gen`")
    bs.add_argument("--json", action="store_true", help="print one JSON object")
    bs.set_defaults(func=cmd_bitstream)

    dp = sub.add_parser("deploy", help="install OUT/ and the agent on a board over SSH",
                        description="Upload the agent, manifest, program, weights and bitstream "
                                    "(sha256-verified on the board), restart the agent (it loads "
                                    "the bitstream and checks the ID register), load the "
                                    "program and weights.")
    dp.add_argument("out", type=Path, help="directory written by `shiftadd gen`")
    dp.add_argument("--board", required=True, help="[USER@]HOST[:SSH_PORT] (user root, port 22)")
    dp.add_argument("--key", default=None, help="SSH private key (default: agent / ~/.ssh)")
    dp.add_argument("--known-hosts", default=None, help="known_hosts file to trust")
    dp.add_argument("--accept-new-host-key", action="store_true",
                    help="trust an unknown host key (first contact only)")
    dp.add_argument("--remote-dir", default="/opt/shiftadd",
                    help="where on the board (default /opt/shiftadd)")
    dp.add_argument("--agent-port", type=_port, default=7700,
                    help="the agent's TCP port (default 7700)")
    dp.add_argument("--python", default="python3", help="the board's python (with numpy)")
    dp.add_argument("--device", choices=("mmio", "loopback"), default="mmio",
                    help="the agent's device: mmio (the accelerator, default) or loopback "
                         "(no FPGA: returns each input, to measure the connection)")
    dp.add_argument("--agent-arg", action="append", default=[],
                    help="extra argument for the agent (repeat), e.g. --agent-arg=--regs="
                         "/dev/uio0")
    dp.add_argument("--no-bitstream", action="store_true",
                    help="the FPGA is already configured (JTAG): do not load a bitstream")
    dp.add_argument("--allow-timing-violation", action="store_true",
                    help="load a bitstream whose implementation did not meet timing")
    dp.add_argument("--token", default=None, help="agent token (default $SHIFTADD_TOKEN)")
    dp.add_argument("--json", action="store_true", help="print one JSON object")
    dp.set_defaults(func=cmd_deploy)

    r = sub.add_parser("run", help="run inputs through a (real or emulated) board",
                       description="Load OUT/ on the board's agent, stream inputs through the "
                                   "accelerator, print predictions; --check compares with the "
                                   "golden model.")
    r.add_argument("out", type=Path, help="directory written by `shiftadd gen`")
    r.add_argument("--board", required=True, help="HOST[:PORT] of the agent (default port 7700)")
    r.add_argument("--token", default=None, help="agent token (default $SHIFTADD_TOKEN)")
    r.add_argument("--input", required=True,
                   help="inputs [N, C, H, W] as .npy (floats are quantized), or digits-test:N")
    r.add_argument("--labels", default=None,
                   help="class indices [N] as .npy: print the accuracy (digits-test:N brings "
                        "its own)")
    r.add_argument("--batch", type=_positive_int, default=32,
                   help="images per request to the agent (default 32)")
    r.add_argument("--no-load", action="store_true", help="the board already has OUT/ loaded")
    r.add_argument("--check", action="store_true", help="compare with the golden model")
    r.add_argument("--output", type=Path, default=None, help="save the integer outputs (.npy)")
    r.add_argument("--json", action="store_true", help="print one JSON object")
    r.set_defaults(func=cmd_run)

    bd = sub.add_parser("board", help="board status or reset, or serve an emulated board",
                        description="`board status --board HOST:PORT`: the agent's status. "
                                    "`board reset --board HOST:PORT`: pulse the fabric reset "
                                    "(the accelerator, the DMA); the agent forgets the loaded "
                                    "design, so run or deploy loads it again. "
                                    "`board emulate OUT --port P`: serve OUT/ as an emulated "
                                    "board (the generated Verilog under Verilator behind the "
                                    "same agent) until stopped.")
    bd.add_argument("action", choices=("status", "reset", "emulate"),
                    help="what to do (above)")
    bd.add_argument("out", nargs="?", type=Path, default=None,
                    help="directory written by `shiftadd gen` (emulate)")
    bd.add_argument("--board", default="127.0.0.1:7700", help="HOST[:PORT] (status, reset)")
    bd.add_argument("--host", default="127.0.0.1", help="address to listen on (emulate)")
    bd.add_argument("--port", type=_listen_port, default=7700, help="port to listen on (emulate)")
    bd.add_argument("--ready", type=Path, default=None,
                    help="write the listening port to this file once serving (emulate)")
    bd.add_argument("--images-per-start", type=_images_per_start, default=0,
                    help="the most images one start of the accelerator runs (emulate; "
                         "default 0: as many as a request holds; 1: one per start)")
    bd.add_argument("--token", default=None, help="agent token (default $SHIFTADD_TOKEN)")
    bd.add_argument("--json", action="store_true", help="print one JSON object")
    bd.set_defaults(func=cmd_board)

    d = sub.add_parser("doctor", help="report tool versions and what is missing")
    d.add_argument("--json", action="store_true", help="print one JSON object")
    d.set_defaults(func=cmd_doctor)

    c = sub.add_parser("cache", help="the Verilator build cache: its size, or --clear it",
                       description="Every simulated design is built once under Verilator and "
                                   "kept (150-400 MB each, digits to ResNet-20). Without "
                                   "options: "
                                   "where the builds are and their size.")
    c.add_argument("--clear", action="store_true",
                   help="remove every build no running process holds or builds")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.set_defaults(func=cmd_cache)

    m = sub.add_parser("demo", help="the main job on the embedded default model",
                       description="Train the digits model (once), print float/FIX32/FIX8 "
                                   "accuracy, generate its FIX8 accelerator and run test images "
                                   "through the RTL against the golden model.")
    m.add_argument("--checkpoint", type=Path, default=DEFAULT_CKPT,
                   help=f"the digits checkpoint, trained here if missing (default {DEFAULT_CKPT})")
    m.add_argument("--retrain", action="store_true", help="train it again even if it exists")
    m.add_argument("--out", default="out/digits-fix8", help="accelerator output directory")
    m.add_argument("--images", type=_positive_int, default=50, help="test images to run in RTL")
    m.add_argument("--rows", type=_positive_int, default=4, help="array rows (default 4)")
    m.add_argument("--cols", type=_positive_int, default=16, help="array columns (default 16)")
    m.add_argument("--lanes", type=_positive_int, default=8, help="lanes per PE (default 8)")
    m.add_argument("--json", action="store_true", help="print one JSON object")
    m.set_defaults(func=cmd_demo)
    return p


class Terminated(BaseException):
    """SIGTERM, raised in the main thread like Ctrl-C's KeyboardInterrupt."""


@contextmanager
def _terminate_as_exception():
    """Within the block, SIGTERM raises :class:`Terminated`: a ``kill PID`` unwinds the command
    as Ctrl-C does, so a child process it waits for (a Verilator simulation behind ``board
    emulate`` or ``sim``; ``subprocess.run`` kills its child when interrupted) goes with it
    instead of running on, an orphan holding the board's port. The old handler is restored
    after (``main`` is also called in-process, by tests)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_terminated(signum, frame):
        raise Terminated

    old = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


# Commands that keep torch's threads busy for minutes (training): they may spin when the
# machine is idle (:func:`openmp_env`).
SPIN_WHEN_IDLE = ("train", "demo")
# libgomp's spin rounds before a waiting thread sleeps when spinning (its default: 300,000): as
# fast on an idle machine, and about half as slow when another job takes a core after the start
# (:func:`openmp_env`)
SPIN_COUNT = 10_000
IDLE_BELOW = 0.25  # the share of the machine's CPU time others take that still counts as idle


def others_cpu_share(seconds: float = 0.2) -> float:
    """The share of all cores' time that was not idle over ``seconds`` (Linux ``/proc/stat``;
    1.0 where it cannot be read). This process sleeps meanwhile, so it is the others'."""
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]  # all, idle + iowait

    try:
        t0, i0 = sample()
        time.sleep(seconds)
        t1, i1 = sample()
    except (OSError, ValueError, IndexError):
        return 1.0
    return 1.0 - (i1 - i0) / max(t1 - t0, 1)


def openmp_env(command: str, busy: Callable[[], float] = others_cpu_share) -> dict[str, str]:
    """The OpenMP settings for ``command``. torch's OpenMP threads wait for each other at
    every parallel region. Spinning is fastest on an idle machine, but a spinning thread on a
    core another job holds stalls them all, so waiting is passive (``OMP_WAIT_POLICY``)
    unless the command trains and the machine is idle when it starts; then the threads spin
    :data:`SPIN_COUNT` rounds (``GOMP_SPINCOUNT``) before they sleep, which bounds the stall
    if a job starts later. Measured, 5 training epochs with 2 threads on 2 cores (BENCHMARKS.md,
    twenty-eighth session): idle 11.0 s with OpenMP's default spin, 11.2 s with
    :data:`SPIN_COUNT`, 17.7 s passive; the other core busy 62-110 s, 34-40 s, 16.7 s. The
    weights are the same either way (the thread count, not the waiting, decides them)."""
    if command in SPIN_WHEN_IDLE and busy() < IDLE_BELOW:
        return {"GOMP_SPINCOUNT": str(SPIN_COUNT)}
    return {"OMP_WAIT_POLICY": "PASSIVE"}


# torch's CPU kernels at AVX2, unless the user sets these variables: ATen's own kernels, oneDNN's
# (its convolutions) and MKL's (its matrix products) each pick a code path by CPU, and the
# weights a training ends at depend on it. On an AMD EPYC with AVX-512 (2026-12-04, digits,
# seed 0):
# - ATen at AVX-512 gave 98.33 % float and 96.11 % FIX8 with one thread, 98.89 % and 97.78 %
#   with two; at AVX2, 98.33 % and 98.06 % with either (FIX8 as the quantizer then was);
# - oneDNN at AVX2 (beside ATen's) gave other weights again: 47 of 54 tensors differ, 98.61 %
#   float with two threads;
# - MKL's most compatible path (MKL_CBWR=COMPATIBLE) gave other weights. MKL_CBWR=AVX2 gives
#   the same results on every Intel CPU with AVX2; on other CPUs MKL takes its default (AUTO)
#   path with it, as here (Intel's oneMKL guide), so Intel and AMD may still differ.
# So a seed and a thread count give the same checkpoint on machines with and without AVX-512.
TORCH_CPU_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
                 "MKL_CBWR": "AVX2"}


def pin_cpu_kernels() -> dict[str, str]:
    """Set :data:`TORCH_CPU_ENV` where the user has not; returns the values in force. Call it
    before torch's first kernel: each library reads its variable once, then (not at import)."""
    for k, v in TORCH_CPU_ENV.items():
        os.environ.setdefault(k, v)
    return {k: os.environ[k] for k in TORCH_CPU_ENV}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # read when torch starts: commands import it lazily, after this
    if not {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT"} & os.environ.keys():  # unless the user's
        os.environ.update(openmp_env(args.command))
    pin_cpu_kernels()
    with _terminate_as_exception():
        return _run_command(args)


def _run_command(args: argparse.Namespace) -> int:
    try:
        return args.func(args)
    except KeyboardInterrupt:
        _log("shiftadd: interrupted")
        return 130
    except Terminated:
        _log("shiftadd: terminated")
        return 143
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
