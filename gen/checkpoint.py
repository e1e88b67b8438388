"""Checkpoints: shiftadd's own format, and import of official ShiftAddNet / AdderNet checkpoints.

shiftadd checkpoints are dicts ``{'format': 'shiftadd-checkpoint', 'version', 'arch', 'config',
'state_dict', 'normalization', 'data', 'metrics'}``: unlike the official format they record the
architecture, the layer configuration and the input normalization, so nothing has to be guessed.

Official checkpoints are ``{'epoch', 'state_dict', 'best_prec1', 'optimizer'}`` or raw state dicts,
possibly with a ``module.`` prefix (DataParallel) and, in older AdderNet code, adder weights named
``.weight`` instead of ``.adder``. Shift layers are DeepShift's ``shift``/``sign`` pairs, the
fixed-shift variant's SEConv2d (``weight`` = 0 or +-2^k, beside its training state ``p``, ``s``
and ``mask``) or DeepShift-Q's bare float ``weight``, the same network otherwise. The depth, the
widths and the classes are read from the tensors (:func:`official_config`):
``resnet110_shiftadd_se`` and CIFAR-100 models load as they are. Adder layers of FIX8 training
carry an input quantizer's statistics, which are dropped, and sparse ones a mask, which is
applied. Every file is read with ``torch.load(weights_only=True)``, which runs no code from the
file; numpy numbers and arrays in it are read too (:func:`numpy_globals`).

Shift parameters: a deployable checkpoint holds integral exponents in ``[-K, 0]`` and ternary
signs. Raw training state (DeepShift keeps float ``shift``/``sign`` and rounds in ``forward``)
is rejected unless ``round_shift_params=True``, which applies the official rule
``shift = round(clamp(shift, -K, 0))``, ``sign = sign(round(sign))``, and to a ``weight`` the
rounding of its layer's forward (:func:`_fixed_shift_weights`).
"""

from __future__ import annotations

import dataclasses
import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gen.files import replaced_whole
from gen.nn.data import Normalization
from gen.nn.layers import Adder2d, ShiftConv2d
from gen.nn.models import PRESETS, ResNetConfig, ShiftAddResNet, build

FORMAT = "shiftadd-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the offending key."""


@dataclass
class Loaded:
    model: ShiftAddResNet
    arch: str
    normalization: Normalization | None
    meta: dict

    @property
    def description(self) -> str:
        """The architecture's name, with the layout when it is not the preset's
        (``resnet20_shiftadd (blocks 18,18,18)``: ResNet-110)."""
        c, preset = self.model.config, PRESETS[self.arch]
        diff = [f"{f.name.replace('_', ' ')} "
                f"{','.join(map(str, v)) if isinstance(v, tuple) else v}"
                for f in dataclasses.fields(c)
                if (v := getattr(c, f.name)) != getattr(preset, f.name)]
        return f"{self.arch} ({', '.join(diff)})" if diff else self.arch

    def input_hint(self, shape) -> str:
        """For inputs of ``shape`` that do not fit the model: how to say the side an official
        checkpoint's model was trained on, when that side was assumed ("" otherwise)."""
        c = self.model.config
        if self.meta.get("input_size_assumed") and len(shape) == 4 and \
                shape[1] == c.in_channels and shape[2] == shape[3] != c.input_size:
            return (f" (an official checkpoint does not record its input side, and "
                    f"{c.input_size} was assumed: pass --input-size {shape[2]} if its model was "
                    f"trained on {shape[2]}x{shape[3]} images)")
        return ""


def save(path: str | Path, model: ShiftAddResNet, arch: str, normalization: Normalization | None,
         metrics: dict, data: dict) -> None:
    """Write a shiftadd checkpoint. Shift parameters are stored rounded (deployable).
    ``normalization`` None: the inputs' normalization is unknown (random weights)."""
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for name, m in model.named_modules():
        if isinstance(m, ShiftConv2d):
            sign, k = m.quantized()
            state[f"{name}.sign"] = sign.to(torch.float32)
            state[f"{name}.shift"] = -k.to(torch.float32)
    ckpt = {"format": FORMAT, "version": VERSION, "arch": arch,
            "config": model.config.to_json(), "state_dict": state,
            "normalization": normalization and normalization.to_json(), "data": data, "metrics": metrics}
    with replaced_whole(path) as tmp:
        torch.save(ckpt, tmp)


def numpy_globals() -> list:
    """The numpy functions and types that a checkpoint's numpy numbers and arrays need to be
    unpickled, under numpy 2's module names and under numpy 1's (``numpy.core``), which files
    of 2020 carry: the official ShiftAddNet ``train.py`` saves ``best_prec1 = np.round(...)``,
    a numpy float64. They build numbers and arrays from bytes and run nothing else."""
    from numpy._core import multiarray

    scalar, rebuild = multiarray.scalar, multiarray._reconstruct
    numbers = np.typecodes["AllInteger"] + np.typecodes["AllFloat"] + "?"
    return [scalar, rebuild, np.ndarray, np.dtype, *{type(np.dtype(c)) for c in numbers},
            (scalar, "numpy.core.multiarray.scalar"),
            (rebuild, "numpy.core.multiarray._reconstruct")]


def unloadable(e: Exception, path: Path) -> str:
    """Why ``torch.load(weights_only=True)`` refused the file ``path``, in one line."""
    with open(path, "rb") as f:
        head = f.read(4)
    text = str(e)
    refused = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if refused:
        return (f"the checkpoint pickles a Python object ({refused.group(1)}) beside its "
                "tensors; shiftadd reads only tensors, numbers and strings (torch.load with "
                "weights_only, which runs no code from the file): save model.state_dict() "
                "instead of the model")
    if isinstance(e, EOFError):
        return "not a PyTorch checkpoint (the file is empty or cut short)"
    if head == b"PK\x03\x04" and not zipfile.is_zipfile(path):
        # torch's reader says "failed finding central directory" or "[Errno 22]", by length
        return ("torch.save's zip archive cut short or damaged (it has no end-of-archive "
                "record): copy or download it again")
    if not head.startswith((b"PK\x03\x04", b"\x80")):
        # the unpickler's own words would name whichever byte it took for an opcode
        return ("not a PyTorch checkpoint (neither torch.save's zip archive nor a pickle of "
                "protocol 2 or later)")
    why = re.search(r"WeightsUnpickler error:\s*(.+?)\s*$", text, re.M | re.S)
    first = (why.group(1).splitlines()[0] if why else
             text.strip().splitlines()[0] if text.strip() else type(e).__name__)
    return f"not a loadable PyTorch checkpoint ({first})"


def _number(v):
    """A numpy number as the Python number it is (``best_prec1``, ``epoch``); anything else
    as it is."""
    return v.item() if isinstance(v, np.generic | np.ndarray) and np.size(v) == 1 else v


def load(path: str | Path, arch: str | None = None, *, round_shift_params: bool = False,
         input_size: int | None = None) -> Loaded:
    """Load a shiftadd or official checkpoint into a model, validating every tensor.
    ``input_size``: the side of the images an official checkpoint's model was trained on (its
    tensors do not tell; default the preset's, CIFAR's 32); a shiftadd checkpoint records its
    own, and another one is an error."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: a directory, not a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if path.suffix == ".npz":  # torch.load would refuse its archive layout, in its own words
        raise CheckpointError(f"{path}: an .npz (an integer network, from `shiftadd "
                              "quantize`?), not a PyTorch checkpoint: this command takes the "
                              ".pt it came from")
    try:
        with torch.serialization.safe_globals(numpy_globals()), warnings.catch_warnings():
            # a pickle of another protocol than torch.save's is refused with its reason below
            warnings.filterwarnings("ignore", "Detected pickle protocol", UserWarning)
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path}: {unloadable(e, path)}") from None

    normalization = None
    meta: dict = {"source": str(path)}
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        if obj.get("version") != VERSION:
            raise CheckpointError(f"{path}: checkpoint version {obj.get('version')} is not "
                                  f"supported (this shiftadd reads {VERSION})")
        file_arch = obj.get("arch")
        if arch is not None and arch != file_arch:
            raise CheckpointError(f"{path}: holds a {file_arch!r} model, not {arch!r}")
        arch = file_arch
        try:
            config = ResNetConfig.from_json(obj["config"])
            n = obj["normalization"]
            normalization = (None if n is None else
                             Normalization(mean=float(n["mean"]), std=float(n["std"])))
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{path}: malformed shiftadd checkpoint ({e})") from None
        if input_size is not None and input_size != config.input_size:
            raise CheckpointError(f"{path}: its model was trained on {config.input_size}x"
                                  f"{config.input_size} inputs (the checkpoint records it), "
                                  f"not {input_size}x{input_size}")
        state = obj["state_dict"]
        meta.update(kind="shiftadd", metrics=obj.get("metrics", {}), data=obj.get("data", {}))
    else:
        if isinstance(obj, dict) and "state_dict" in obj:
            state = obj["state_dict"]
            meta.update(kind="official", epoch=_number(obj.get("epoch")),
                        best_prec1=_number(obj.get("best_prec1")))
        else:
            state = obj
            meta.update(kind="raw state dict")
        if not isinstance(state, dict) or not all(
                isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
            raise CheckpointError(f"{path}: expected a state dict (names -> tensors) or a dict "
                                  "with a 'state_dict' entry")
        if arch is None:
            arch = "resnet20_shiftadd"
            meta["arch_assumed"] = True
        if arch not in PRESETS:
            raise CheckpointError(f"unknown architecture {arch!r}; choose one of "
                                  f"{', '.join(PRESETS)}")
        if input_size is not None and input_size < 1:
            raise CheckpointError(f"the input size must be at least 1, not {input_size}")
        config = official_config(state, PRESETS[arch], input_size)
        if input_size is None:
            meta["input_size_assumed"] = True
        if config != PRESETS[arch]:
            meta["config_from_tensors"] = True
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: 'state_dict' is not a dict")
    try:
        model = build(arch, config)
    except ValueError as e:
        raise CheckpointError(f"{path}: {e}") from None
    state = _normalize_keys(state, model)
    state = _fixed_shift_weights(path, state, model, round_shift_params)
    state = _adder_training_state(state, model)
    what = f"a {arch} model"
    if meta.get("config_from_tensors"):
        what += (f" of {len(config.widths)} stages (widths {','.join(map(str, config.widths))}, "
                 f"blocks {','.join(map(str, config.blocks))}) and {config.num_classes} classes")
    if meta.get("arch_assumed"):
        what += (" (a checkpoint without shiftadd's header is read as one unless --arch names "
                 "another)")
    _check_and_load(path, model, state, round_shift_params, what)
    return Loaded(model=model.eval(), arch=arch, normalization=normalization, meta=meta)


_BLOCK_KEY = re.compile(r"(?:module\.)?layer(\d+)\.(\d+)\.bn1\.weight")


def official_config(state: dict, preset: ResNetConfig, input_size: int | None = None
                    ) -> ResNetConfig:
    """The layout an official state dict holds, on ``preset``'s stem: its input channels
    (``conv1``), its stages, their widths and blocks (``layerS.B.bn1``) and its classes
    (``fc``), for inputs of ``input_size`` (default the preset's: no tensor holds it).
    ShiftAddNet's CIFAR ResNets differ only in these (``resnet110_shiftadd_se``: 18 blocks per
    stage; CIFAR-100: 100 classes). Whatever else differs fails the key and shape checks, by
    name."""
    widths: dict[int, int] = {}
    blocks: dict[int, int] = {}
    for k, v in state.items():
        m = _BLOCK_KEY.fullmatch(k)
        if m and isinstance(v, torch.Tensor) and v.ndim == 1:
            s, b = int(m[1]), int(m[2])
            blocks[s] = max(blocks.get(s, 0), b + 1)
            if b == 0:
                widths[s] = int(v.shape[0])
    fc = next((state[k] for k in ("fc.shift", "module.fc.shift", "fc.weight",
                                  "module.fc.weight") if k in state), None)
    conv1 = next((state[k] for k in ("conv1.shift", "module.conv1.shift", "conv1.weight",
                                     "module.conv1.weight") if k in state), None)
    changes: dict = {} if input_size is None else {"input_size": input_size}
    if isinstance(fc, torch.Tensor) and fc.ndim == 4:
        changes["num_classes"] = int(fc.shape[0])
    if isinstance(conv1, torch.Tensor) and conv1.ndim == 4:
        changes["in_channels"] = int(conv1.shape[1])
    stages = sorted(blocks)
    if stages and stages == list(range(1, len(stages) + 1)) and len(widths) == len(stages):
        changes["widths"] = tuple(widths[s] for s in stages)
        changes["blocks"] = tuple(blocks[s] for s in stages)
    try:
        return ResNetConfig(**{**preset.to_json(), "widths": preset.widths,
                               "blocks": preset.blocks, **changes})
    except ValueError:
        return preset  # not this family: the key checks name what does not match


def _normalize_keys(state: dict, model: ShiftAddResNet) -> dict:
    """Strip ``module.`` and rename legacy adder ``.weight`` to ``.adder``."""
    adders = {name for name, m in model.named_modules() if isinstance(m, Adder2d)}
    out = {}
    for k, v in state.items():
        if k.startswith("module."):
            k = k[len("module."):]
        mod, _, leaf = k.rpartition(".")
        if leaf == "weight" and mod in adders:
            k = f"{mod}.adder"
        out[k] = v
    return out


# SEConv2d, the shift layer of ShiftAddNet's fixed-shift variant (``resnet20_shiftadd_se``,
# ``train_fix.py``): its forward convolves with ``weight`` itself, kept at 0 or +-2^k; ``p``, ``s``
# and the ``mask`` buffer are training state beside it
SE_TRAINING_STATE = ("p", "s", "mask")
SE_THRESHOLD = 5e-3  # SEConv2d's default (and the scripts'): smaller weights are zero


def _se_rounding(mag: torch.Tensor) -> torch.Tensor:
    """SEConv2d's ``sparsify_and_nearestpow2``: zero below :data:`SE_THRESHOLD`, else the
    nearest power of two, a tie going up."""
    keep = mag >= SE_THRESHOLD - 1e-5
    up = torch.exp2(torch.ceil(torch.log2(mag.clamp_min(1e-300))))
    return torch.where(keep, torch.where(mag - up / 2 < up - mag, up / 2, up), 0.0)


def _q_rounding(mag: torch.Tensor) -> torch.Tensor:
    """DeepShift-Q's forward (``Conv2dShiftQ``): ``|w|`` clamped to at most 1, then
    ``2^round(log2 |w|)`` (``torch.round``: a tie to even); zero stays zero."""
    k = torch.round(torch.log2(mag.clamp(1e-300, 1.0)))
    return torch.where(mag != 0, torch.exp2(k), 0.0)


def _fixed_shift_weights(path: Path, state: dict, model: ShiftAddResNet,
                         round_shift_params: bool) -> dict:
    """Shift layers stored as one ``weight`` tensor, as the ``shift`` and ``sign`` it holds:
    ``weight = sign * 2^shift``. Two layers store it so: SEConv2d (``p``, ``s`` and ``mask``
    beside it) and DeepShift-Q's ``Conv2dShiftQ`` (nothing beside it, the weight a float the
    forward rounds). A weight that is not 0 or +-2^k with ``-K <= k <= 0`` is an error naming
    it, unless ``round_shift_params``: then it is rounded as that layer's forward rounds it
    (:func:`_se_rounding`, :func:`_q_rounding`); exponents outside the range stay an error."""
    shifts = {name: m for name, m in model.named_modules() if isinstance(m, ShiftConv2d)}
    out = dict(state)
    for mod, m in shifts.items():
        key = f"{mod}.weight"
        if key not in state or f"{mod}.shift" in state:
            continue
        se = any(f"{mod}.{leaf}" in state for leaf in SE_TRAINING_STATE)
        w = state[key].detach().to(torch.float64)
        if not torch.isfinite(w).all():
            raise CheckpointError(f"{path}: {key!r} contains NaN or infinity")
        mag = w.abs()
        if round_shift_params:
            mag = _se_rounding(mag) if se else _q_rounding(mag)
        nz = mag != 0
        k = torch.where(nz, torch.log2(mag.clamp_min(1e-300)), 0.0)
        bad = nz & ((k != torch.round(k)) | (k < -m.exp_max) | (k > 0))
        if bad.any():
            i = tuple(int(j) for j in bad.nonzero()[0])
            v, ki = float(w[i]), float(k[i])
            if ki == round(ki):
                why = (f"weights above 1 do not fit the shift lanes' range 2^-{m.exp_max}..2^0"
                       if ki > 0 else
                       f"2^{ki:.0f} is below the shift lanes' range 2^-{m.exp_max}..2^0"
                       + (" (DeepShift-Q with --weight_bits 5 reaches 2^-15)"
                          if round_shift_params and not se else ""))
            elif se:
                why = (f"a fixed-shift weight must be 0 or +-2^k with k in [-{m.exp_max}, 0]; "
                       "--round-shift-params rounds it to the nearest power of two "
                       f"(SEConv2d's rule, zero below {SE_THRESHOLD:g})")
            else:
                why = (f"a shift layer's weight must be 0 or +-2^k with k in [-{m.exp_max}, 0]. "
                       "With no SEConv2d state (p, s, mask) beside it, it is either a "
                       "DeepShift-Q layer (train.py --shift_type Q), whose forward rounds it "
                       "to 2^round(log2 |w|): --round-shift-params does the same; or a "
                       "convolution train.py left unconverted (--shift_depth converts the last "
                       "N layers; its default, 0, none), which multiplies: shiftadd cannot run "
                       "it, retrain with --shift_depth 100 as the official scripts do")
            raise CheckpointError(f"{path}: {key!r} holds {v:g} at index {list(i)}: {why}")
        del out[key]
        for leaf in SE_TRAINING_STATE:
            out.pop(f"{mod}.{leaf}", None)
        out[f"{mod}.shift"] = k.to(torch.float32)
        out[f"{mod}.sign"] = torch.where(nz, torch.sign(w), 0.0).to(torch.float32)
    return out


# ShiftAddNet's Adder2D beside its ``adder`` weights: with ``quantize=True`` (its FIX8 models,
# ``--add_quant True``) the running statistics of an input quantizer (``QuantMeasure``), with
# ``sparsity`` a fixed random mask it multiplies the weights by in every forward pass
ADDER_QUANTIZER = "quantize_input_fw"
ADDER_SPARSITY = ("s", "adder_mask")


def _adder_training_state(state: dict, model: ShiftAddResNet) -> dict:
    """Adder layers as they compute: the input quantizer's statistics dropped (shiftadd
    quantizes the network itself), the weights multiplied by their sparsity mask."""
    adders = {name for name, m in model.named_modules() if isinstance(m, Adder2d)}
    out = {k: v for k, v in state.items()
           if k.rpartition(f".{ADDER_QUANTIZER}.")[0] not in adders}
    for mod in adders:
        mask = out.pop(f"{mod}.{ADDER_SPARSITY[1]}", None)
        if mask is not None and f"{mod}.adder" in out:
            out[f"{mod}.adder"] = out[f"{mod}.adder"] * mask
            out.pop(f"{mod}.{ADDER_SPARSITY[0]}", None)
    return out


def _check_and_load(path: Path, model: ShiftAddResNet, state: dict,
                    round_shift_params: bool, what: str) -> None:
    """``what``: the model ``state`` was taken for (named in the key errors)."""
    expected = model.state_dict()
    optional = {k for k in expected if k.endswith("num_batches_tracked")}
    missing = sorted(set(expected) - set(state) - optional)
    unknown = sorted(set(state) - set(expected))
    if missing:
        raise CheckpointError(f"{path}: missing key {missing[0]!r}"
                              + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                              + f" of {what}")
    if unknown:
        raise CheckpointError(f"{path}: unknown key {unknown[0]!r}"
                              + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else "")
                              + f" for {what}")
    shifts = {name: m for name, m in model.named_modules() if isinstance(m, ShiftConv2d)}
    fixed = {}
    for k, v in state.items():
        want = expected[k]
        if tuple(v.shape) != tuple(want.shape):
            raise CheckpointError(f"{path}: {k!r} has shape {list(v.shape)}, "
                                  f"expected {list(want.shape)} for {what}")
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise CheckpointError(f"{path}: {k!r} contains NaN or infinity")
        mod, _, leaf = k.rpartition(".")
        if mod in shifts and leaf in ("shift", "sign"):
            kmax = shifts[mod].exp_max
            v = v.detach().to(torch.float32)
            if round_shift_params:
                v = torch.round(torch.clamp(v, -kmax, 0)) if leaf == "shift" else \
                    torch.sign(torch.round(v))
            elif leaf == "shift":
                bad = (v != torch.round(v)) | (v < -kmax) | (v > 0)
                if bad.any():
                    i = tuple(int(j) for j in bad.nonzero()[0])
                    raise CheckpointError(
                        f"{path}: {k!r} holds {float(v[i]):g} at index {list(i)}: shift exponents "
                        f"must be integers in [-{kmax}, 0]. For raw training state pass "
                        "--round-shift-params to apply the official round(clamp(shift)) rule")
            else:
                bad = ~torch.isin(v, torch.tensor([-1.0, 0.0, 1.0]))
                if bad.any():
                    i = tuple(int(j) for j in bad.nonzero()[0])
                    raise CheckpointError(
                        f"{path}: {k!r} holds {float(v[i]):g} at index {list(i)}: signs must be "
                        "ternary (-1, 0, +1). For raw training state pass --round-shift-params")
        fixed[k] = v
    model.load_state_dict(fixed, strict=False)
