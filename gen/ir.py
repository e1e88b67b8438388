"""The integer network: the single meaning of "the model" after quantization.

An :class:`IntegerNetwork` is a typed list of ops over named tensors. Every tensor has a shape
``(C, H, W)`` (batch excluded) and a fixed-point :class:`~gen.numerics.Format`. Every op has
integer parameters only; what each op computes is defined in ``docs/NUMERICS.md`` and executed by
``sim.golden``. The generator sizes hardware from the same object.

Value bounds of every tensor are derived statically (:meth:`IntegerNetwork.bounds`): they set
accumulator widths, and they prove that the golden model's ``int64`` arithmetic is exact.

Serialization is a single ``.npz`` file: ``__ir__`` holds the JSON description and every array
parameter is stored under ``"<op name>/<field>"``. Loading never unpickles.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from gen.files import replaced_whole
from gen.numerics import (
    MULT_BITS,
    SHIFT_EXP_MAX,
    SHIFT_LIMIT,
    Format,
    Precision,
    check_int64,
    pool_shift,
    rshift_round,
    signed_bits,
)

IR_FORMAT = "shiftadd-ir"
IR_VERSION = 1


class IRError(ValueError):
    """An integer network that is malformed or inconsistent."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, int, int]
    fmt: Format

    def to_json(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "fmt": self.fmt.to_json()}

    @classmethod
    def from_json(cls, d: dict) -> TensorSpec:
        shape = tuple(int(v) for v in d["shape"])
        if len(shape) != 3 or min(shape) < 1:
            raise IRError(f"tensor {d.get('name')!r}: shape must be 3 positive ints, not {shape}")
        return cls(name=str(d["name"]), shape=shape, fmt=Format.from_json(d["fmt"]))


def conv_out_hw(h: int, w: int, k: int, stride: int, padding: int) -> tuple[int, int]:
    return (h + 2 * padding - k) // stride + 1, (w + 2 * padding - k) // stride + 1


@dataclass
class Op:
    """Base of all ops. ``name`` is the source layer's module path (unique in a network)."""

    kind: ClassVar[str] = ""
    arrays: ClassVar[tuple[str, ...]] = ()
    name: str
    inputs: tuple[str, ...]
    output: str

    def attrs_json(self) -> dict:
        return {}

    def to_json(self) -> dict:
        return {"kind": self.kind, "name": self.name, "inputs": list(self.inputs),
                "output": self.output, **self.attrs_json()}


@dataclass
class ShiftConv(Op):
    """Shift convolution: ``acc = sum sign * (x << (exp_max - exp))``.

    The output is the exact accumulator with ``frac = frac(x) + exp_max``: the weight
    ``sign * 2**-exp`` is aligned to ``2**-exp_max`` so nothing is rounded inside the sum.
    Zero padding contributes zeros.
    """

    kind: ClassVar[str] = "shift_conv"
    arrays: ClassVar[tuple[str, ...]] = ("sign", "exp")
    sign: np.ndarray = field(default=None)  # int8 [O, I, k, k] in {-1, 0, 1}
    exp: np.ndarray = field(default=None)   # uint8 [O, I, k, k] in [0, exp_max]
    exp_max: int = 0
    stride: int = 1
    padding: int = 0

    @property
    def kernel(self) -> int:
        return int(self.sign.shape[2])

    def attrs_json(self) -> dict:
        return {"exp_max": self.exp_max, "stride": self.stride, "padding": self.padding}


@dataclass
class AdderConv(Op):
    """Adder convolution (AdderNet): ``acc = -sum |x - w|``, same format as ``x``.

    ``w`` is stored in the input's format. Zero-padded positions have ``x = 0`` and so contribute
    ``-|w|``, as in AdderNet's im2col formulation.
    """

    kind: ClassVar[str] = "adder_conv"
    arrays: ClassVar[tuple[str, ...]] = ("weight",)
    weight: np.ndarray = field(default=None)  # int64 [O, I, k, k]
    stride: int = 1
    padding: int = 0

    @property
    def kernel(self) -> int:
        return int(self.weight.shape[2])

    def attrs_json(self) -> dict:
        return {"stride": self.stride, "padding": self.padding}


@dataclass
class Requant(Op):
    """Per-channel requantization (folded BN): ``y = sat(relu?(rshift_round(acc*m[c] + b[c], s)))``."""

    kind: ClassVar[str] = "requant"
    arrays: ClassVar[tuple[str, ...]] = ("mult", "bias")
    mult: np.ndarray = field(default=None)  # int64 [C], signed MULT_BITS
    bias: np.ndarray = field(default=None)  # int64 [C]
    shift: int = 0
    relu: bool = False

    def attrs_json(self) -> dict:
        return {"shift": self.shift, "relu": self.relu}


@dataclass
class Add(Op):
    """Residual add: align both operands to the finer format, add, round to the output format."""

    kind: ClassVar[str] = "add"
    relu: bool = False

    def attrs_json(self) -> dict:
        return {"relu": self.relu}


@dataclass
class AvgPool(Op):
    """Average pooling, window = stride = ``kernel``: the window's sum divided by the power of
    two at or above its area (``docs/NUMERICS.md``; the mean when the area is a power of
    two)."""

    kind: ClassVar[str] = "avgpool"
    kernel: int = 1

    def attrs_json(self) -> dict:
        return {"kernel": self.kernel}


OP_TYPES: dict[str, type[Op]] = {t.kind: t for t in (ShiftConv, AdderConv, Requant, Add, AvgPool)}


@dataclass
class IntegerNetwork:
    """A quantized network: tensors, ops in execution order, an input and an output tensor."""

    name: str
    precision: Precision
    input: str
    output: str
    tensors: dict[str, TensorSpec]
    ops: list[Op]
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    # ----------------------------------------------------------------------------- checks
    def validate(self) -> None:
        """Check structure, shapes, parameter ranges and that all arithmetic fits ``int64``."""
        if self.input not in self.tensors:
            raise IRError(f"input tensor {self.input!r} is not declared")
        if self.output not in self.tensors:
            raise IRError(f"output tensor {self.output!r} is not declared")
        defined = {self.input}
        names = set()
        for op in self.ops:
            if op.name in names:
                raise IRError(f"op name {op.name!r} is used twice")
            names.add(op.name)
            for t in (*op.inputs, op.output):
                if t not in self.tensors:
                    raise IRError(f"{op.name}: tensor {t!r} is not declared")
            for t in op.inputs:
                if t not in defined:
                    raise IRError(f"{op.name}: input {t!r} is used before it is produced")
            if op.output in defined:
                raise IRError(f"{op.name}: output {op.output!r} is produced twice")
            defined.add(op.output)
            self._check_op(op)
        if self.output not in defined:
            raise IRError(f"output tensor {self.output!r} is never produced")
        self.bounds()  # raises if any value range exceeds int64

    def _check_op(self, op: Op) -> None:
        ins = [self.tensors[t] for t in op.inputs]
        out = self.tensors[op.output]
        want_inputs = 2 if isinstance(op, Add) else 1
        if len(ins) != want_inputs:
            raise IRError(f"{op.name}: {op.kind} takes {want_inputs} input(s), not {len(ins)}")
        x = ins[0]
        c, h, w = x.shape
        if isinstance(op, ShiftConv | AdderConv):
            arr = op.sign if isinstance(op, ShiftConv) else op.weight
            if arr is None or arr.ndim != 4 or arr.shape[1] != c or arr.shape[2] != arr.shape[3]:
                raise IRError(f"{op.name}: weights must be [O, {c}, k, k], not "
                              f"{None if arr is None else arr.shape}")
            if op.stride < 1 or op.padding < 0:
                raise IRError(f"{op.name}: stride must be >= 1 and padding >= 0")
            oh, ow = conv_out_hw(h, w, arr.shape[2], op.stride, op.padding)
            if out.shape != (arr.shape[0], oh, ow):
                raise IRError(f"{op.name}: output shape {out.shape} != {(arr.shape[0], oh, ow)}")
        if isinstance(op, ShiftConv):
            if op.exp is None or op.exp.shape != op.sign.shape:
                raise IRError(f"{op.name}: exp must have the shape of sign {op.sign.shape}")
            if not np.isin(op.sign, (-1, 0, 1)).all():
                raise IRError(f"{op.name}: shift signs must be ternary (-1, 0, +1)")
            if not 0 <= op.exp_max <= SHIFT_EXP_MAX:
                raise IRError(f"{op.name}: exp_max must be in 0..{SHIFT_EXP_MAX}, not {op.exp_max}")
            if op.exp.size and (op.exp.min() < 0 or op.exp.max() > op.exp_max):
                raise IRError(f"{op.name}: shift exponents must be in 0..{op.exp_max}")
            if out.fmt.frac != x.fmt.frac + op.exp_max:
                raise IRError(f"{op.name}: accumulator frac must be {x.fmt.frac + op.exp_max}")
        elif isinstance(op, AdderConv):
            if op.weight.size and (op.weight.min() < x.fmt.lo or op.weight.max() > x.fmt.hi):
                raise IRError(f"{op.name}: adder weights must lie in the input format "
                              f"[{x.fmt.lo}, {x.fmt.hi}]")
            if out.fmt.frac != x.fmt.frac:
                raise IRError(f"{op.name}: accumulator frac must equal the input's")
        elif isinstance(op, Requant):
            if out.shape != x.shape:
                raise IRError(f"{op.name}: requant keeps the shape {x.shape}, not {out.shape}")
            for a in ("mult", "bias"):
                v = getattr(op, a)
                if v is None or v.shape != (c,):
                    raise IRError(f"{op.name}: {a} must have shape ({c},)")
            lo, hi = -(1 << (MULT_BITS - 1)), (1 << (MULT_BITS - 1)) - 1
            if c and (op.mult.min() < lo or op.mult.max() > hi):
                raise IRError(f"{op.name}: multipliers must fit {MULT_BITS} signed bits")
            if not 0 <= op.shift <= SHIFT_LIMIT:
                raise IRError(f"{op.name}: shift must be in 0..{SHIFT_LIMIT}, not {op.shift}")
        elif isinstance(op, Add):
            if ins[1].shape != x.shape or out.shape != x.shape:
                raise IRError(f"{op.name}: add needs equal shapes, got {x.shape}, "
                              f"{ins[1].shape} -> {out.shape}")
        elif isinstance(op, AvgPool):
            k = op.kernel
            if k < 1 or h % k or w % k:
                raise IRError(f"{op.name}: pool kernel {k} must divide {h}x{w}")
            if out.shape != (c, h // k, w // k):
                raise IRError(f"{op.name}: output shape must be {(c, h // k, w // k)}")

    # ----------------------------------------------------------------------------- bounds
    def bounds(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per-channel inclusive value bounds ``(lo[C], hi[C])`` of every tensor (Python ints).

        Derived from the input format, the integer parameters and the saturation of each op, so
        they hold for every possible input. Raises :class:`OverflowError` when an intermediate
        value of an op could exceed ``int64``.
        """
        t_in = self.tensors[self.input]
        b: dict[str, tuple[np.ndarray, np.ndarray]] = {
            self.input: (np.full(t_in.shape[0], t_in.fmt.lo, dtype=object),
                         np.full(t_in.shape[0], t_in.fmt.hi, dtype=object))
        }
        for op in self.ops:
            out = self.tensors[op.output]
            xlo, xhi = b[op.inputs[0]]
            # A conv may read zero padding, so its input range always includes 0.
            if isinstance(op, ShiftConv):
                w = op.sign.astype(object) * (np.left_shift(1, op.exp_max - op.exp.astype(np.int64))
                                              .astype(object))
                pos = np.where(w > 0, w, 0)
                neg = np.where(w < 0, w, 0)
                lo_c = np.minimum(xlo, 0)[None, :, None, None]
                hi_c = np.maximum(xhi, 0)[None, :, None, None]
                lo = (pos * lo_c + neg * hi_c).reshape(w.shape[0], -1).sum(axis=1)
                hi = (pos * hi_c + neg * lo_c).reshape(w.shape[0], -1).sum(axis=1)
            elif isinstance(op, AdderConv):
                wv = op.weight.astype(object)
                lo_c = np.minimum(xlo, 0)[None, :, None, None]
                hi_c = np.maximum(xhi, 0)[None, :, None, None]
                # |x - w| over x in [lo_c, hi_c]: max at an end, min 0 if w inside the range.
                far = np.maximum(np.abs(lo_c - wv), np.abs(hi_c - wv))
                near = np.where((wv >= lo_c) & (wv <= hi_c), 0,
                                np.minimum(np.abs(lo_c - wv), np.abs(hi_c - wv)))
                lo = -far.reshape(wv.shape[0], -1).sum(axis=1)
                hi = -near.reshape(wv.shape[0], -1).sum(axis=1)
            elif isinstance(op, Requant):
                m = op.mult.astype(object)
                bb = op.bias.astype(object)
                p1, p2 = xlo * m + bb, xhi * m + bb
                plo, phi = np.minimum(p1, p2), np.maximum(p1, p2)
                check_int64(min(plo.min(), 0), max(phi.max(), 0), f"{op.name} product")
                lo = np.array([rshift_round(int(v), op.shift) for v in plo], dtype=object)
                hi = np.array([rshift_round(int(v), op.shift) for v in phi], dtype=object)
                if op.relu:
                    lo, hi = np.maximum(lo, 0), np.maximum(hi, 0)
                lo, hi = np.clip(lo, out.fmt.lo, out.fmt.hi), np.clip(hi, out.fmt.lo, out.fmt.hi)
            elif isinstance(op, Add):
                fa, fb = (self.tensors[t].fmt.frac for t in op.inputs)
                big = max(fa, fb)
                blo, bhi = b[op.inputs[1]]
                lo = xlo * (1 << (big - fa)) + blo * (1 << (big - fb))
                hi = xhi * (1 << (big - fa)) + bhi * (1 << (big - fb))
                check_int64(min(lo.min(), 0), max(hi.max(), 0), f"{op.name} sum")
                s = big - out.fmt.frac
                lo = np.array([rshift_round(int(v), s) for v in lo], dtype=object)
                hi = np.array([rshift_round(int(v), s) for v in hi], dtype=object)
                if op.relu:
                    lo, hi = np.maximum(lo, 0), np.maximum(hi, 0)
                lo, hi = np.clip(lo, out.fmt.lo, out.fmt.hi), np.clip(hi, out.fmt.lo, out.fmt.hi)
            elif isinstance(op, AvgPool):
                n = op.kernel * op.kernel
                s = pool_shift(op.kernel, self.tensors[op.inputs[0]].fmt.frac, out.fmt.frac)
                check_int64(min(xlo.min() * n, 0), max(xhi.max() * n, 0), f"{op.name} sum")
                lo = np.array([rshift_round(int(v) * n, s) for v in xlo], dtype=object)
                hi = np.array([rshift_round(int(v) * n, s) for v in xhi], dtype=object)
                lo, hi = np.clip(lo, out.fmt.lo, out.fmt.hi), np.clip(hi, out.fmt.lo, out.fmt.hi)
            else:  # pragma: no cover - OP_TYPES is closed
                raise IRError(f"unknown op {op!r}")
            lo, hi = np.asarray(lo, dtype=object), np.asarray(hi, dtype=object)
            check_int64(min(lo.min(), 0), max(hi.max(), 0), op.name)
            need = signed_bits(min(lo.min(), 0), max(hi.max(), 0))
            if need > out.fmt.bits:
                raise IRError(f"{op.name}: values in [{lo.min()}, {hi.max()}] need {need} bits but "
                              f"{op.output!r} is {out.fmt.bits} bits wide")
            b[op.output] = (lo, hi)
        return b

    # ----------------------------------------------------------------------------- helpers
    def op(self, name: str) -> Op:
        for op in self.ops:
            if op.name == name:
                return op
        raise KeyError(name)

    def summary(self) -> list[dict]:
        """One row per op: kind, shapes, formats (for reports and ``--json`` output)."""
        rows = []
        for op in self.ops:
            out = self.tensors[op.output]
            rows.append({"name": op.name, "kind": op.kind,
                         "in": [list(self.tensors[t].shape) for t in op.inputs],
                         "out": list(out.shape), "fmt": out.fmt.to_json()})
        return rows

    # ----------------------------------------------------------------------------- io
    def to_json(self) -> dict:
        return {"format": IR_FORMAT, "version": IR_VERSION, "name": self.name,
                "precision": self.precision.value, "input": self.input, "output": self.output,
                "tensors": [t.to_json() for t in self.tensors.values()],
                "ops": [op.to_json() for op in self.ops], "meta": self.meta}

    def save(self, path: str | Path) -> None:
        arrays = {"__ir__": np.frombuffer(json.dumps(self.to_json()).encode(), dtype=np.uint8)}
        for op in self.ops:
            for a in op.arrays:
                arrays[f"{op.name}/{a}"] = getattr(op, a)
        with replaced_whole(path) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> IntegerNetwork:
        path = Path(path)
        try:
            with open(path, "rb") as f, np.load(f, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except FileNotFoundError:
            raise
        except Exception as e:  # zip/npz corruption of any kind
            raise IRError(f"{path}: not a shiftadd integer network ({e})") from None
        if "__ir__" not in data:
            raise IRError(f"{path}: not a shiftadd integer network (no __ir__ record)")
        doc = json.loads(bytes(data["__ir__"]).decode())
        return cls.from_json(doc, data, source=str(path))

    @classmethod
    def from_json(cls, doc: dict, arrays: dict[str, np.ndarray], source: str = "<memory>"
                  ) -> IntegerNetwork:
        if doc.get("format") != IR_FORMAT:
            raise IRError(f"{source}: not a shiftadd integer network")
        if doc.get("version") != IR_VERSION:
            raise IRError(f"{source}: IR version {doc.get('version')} is not supported "
                          f"(this shiftadd reads version {IR_VERSION})")
        try:
            tensors = {t["name"]: TensorSpec.from_json(t) for t in doc["tensors"]}
            ops: list[Op] = []
            for d in doc["ops"]:
                kind = d["kind"]
                if kind not in OP_TYPES:
                    raise IRError(f"{source}: unknown op kind {kind!r}")
                t = OP_TYPES[kind]
                kwargs = {k: v for k, v in d.items() if k not in ("kind", "inputs")}
                kwargs["inputs"] = tuple(d["inputs"])
                for a in t.arrays:
                    key = f"{d['name']}/{a}"
                    if key not in arrays:
                        raise IRError(f"{source}: array {key!r} is missing")
                    kwargs[a] = arrays[key]
                ops.append(t(**kwargs))
            return cls(name=doc["name"], precision=Precision.parse(doc["precision"]),
                       input=doc["input"], output=doc["output"], tensors=tensors, ops=ops,
                       meta=doc.get("meta", {}))
        except (KeyError, TypeError) as e:
            raise IRError(f"{source}: malformed integer network ({e!r})") from None
