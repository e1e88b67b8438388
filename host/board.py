"""The host API: one generated accelerator on a board (or an emulated board) over TCP.

    board = Board("192.168.1.10:7700", token)
    board.deploy("out/digits-fix8")        # manifest + program + weights, checked on the board
    ints, values = board.infer(x)          # floats (numpy or torch) or integers

Inputs are quantized to the manifest's input format with the project's one rule
(``gen.numerics.quantize_real``: NaN and infinity are errors; values beyond the format saturate,
with a warning) and sent in batches; outputs come back as integers and as dequantized floats.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from firmware import protocol as P
from host.client import AgentClient


def prepare_inputs(x, manifest: dict, limit: int | None = None) -> tuple[np.ndarray, int]:
    """Inputs for the design ``manifest`` describes: ``x[N, C, H, W]`` or one ``[C, H, W]``
    (numpy or torch; its first ``limit``). Floats are quantized to the input format (NaN or
    infinity is an error; values beyond the format saturate), integers taken as they are, in
    the format. -> ``(int64 inputs [N, C, H, W], values saturated)``; ValueError if bad."""
    from gen.numerics import Format, quantize_real, saturated_count

    if hasattr(x, "detach"):  # torch
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    shape = manifest["input"]["shape"]
    if x.ndim == len(shape):
        x = x[None]
    if x.ndim != len(shape) + 1 or list(x.shape[1:]) != shape:
        raise ValueError(f"input must be [N, {', '.join(map(str, shape))}], not {list(x.shape)}")
    x = x[:limit]
    fmt = Format.from_json(manifest["input"]["format"])
    if np.issubdtype(x.dtype, np.integer):
        if x.size and (x.min() < fmt.lo or x.max() > fmt.hi):
            raise ValueError(f"integer inputs are taken as they are and must lie in [{fmt.lo}, "
                             f"{fmt.hi}], the input format (floats are quantized)")
        return x.astype(np.int64), 0
    return quantize_real(x, fmt), saturated_count(x, fmt)


def _warn_saturated(n: int, total: int, fmt) -> None:
    from gen.numerics import saturation_note

    if n:
        warnings.warn(saturation_note(n, total, fmt), stacklevel=3)


def parse_address(address: str, default_port: int = 7700) -> tuple[str, int]:
    """``HOST[:PORT]`` -> ``(host, port)``; a port must be 1..65535."""
    if ":" not in address:
        return address or "127.0.0.1", default_port
    host, _, port = address.rpartition(":")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"board address must be HOST[:PORT] with a port 1..65535, not "
                         f"{address!r}")
    return host or "127.0.0.1", int(port)


class Board:
    def __init__(self, address: str, token: str, *, timeout_s: float = 120.0) -> None:
        host, port = parse_address(address)
        self.client = AgentClient(host, port, token, timeout_s=timeout_s)
        self.manifest: dict | None = None
        # the accelerator's cycles (its CYCLES counter) over the last infer's images
        self.device_cycles = 0

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Board:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def deploy(self, out: str | Path) -> dict:
        """Put ``out/``'s design on the board through its running agent: manifest, program and
        weights (verified against the manifest here and again on the board, which also checks
        the accelerator's ID and build id). Returns the manifest. Installing the agent and the
        bitstream is ``shiftadd deploy`` (``host.deploy``), over SSH."""
        from gen.generate import load_outdir

        out = Path(out)
        manifest, _, _ = load_outdir(out)
        blob = (out / "program.bin").read_bytes() + (out / "weights.bin").read_bytes()
        self.client.request(P.Kind.LOAD, {"manifest": manifest}, blob)
        self.manifest = manifest
        return manifest

    def use(self, out: str | Path) -> dict:
        """Adopt ``out/``'s manifest for inputs and outputs without loading it again."""
        self.manifest = json.loads((Path(out) / "manifest.json").read_text())
        return self.manifest

    def quantize(self, x) -> np.ndarray:
        """Floats -> integers in the input format; values beyond it saturate, with a warning
        (many usually mean inputs not normalized as in training)."""
        from gen.numerics import Format, quantize_real, saturated_count

        fmt = Format.from_json(self.manifest["input"]["format"])
        x = np.asarray(x, dtype=np.float64)
        q = quantize_real(x, fmt)
        _warn_saturated(saturated_count(x, fmt), x.size, fmt)
        return q

    def infer(self, x, *, batch: int = 32, progress: Callable[[int, int], None] | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
        """``x[N, C, H, W]`` (floats are quantized; integers must already be in the input format)
        -> ``(integers, dequantized floats)``, both ``[N, C', H', W']``. ``device_cycles``
        then holds the cycles the accelerator counted for them."""
        if self.manifest is None:
            raise RuntimeError("load (or use) an OUT/ directory first")
        from gen.numerics import Format

        q, saturated = prepare_inputs(x, self.manifest)
        _warn_saturated(saturated, q.size, Format.from_json(self.manifest["input"]["format"]))
        precision = self.manifest["model"]["precision"]
        outs, self.device_cycles = [], 0
        for i in range(0, len(q), batch):
            y, cycles = self.client.infer(q[i:i + batch], precision,
                                          self.manifest["build_id_hex"])
            outs.append(np.asarray(y, dtype=np.int64))
            self.device_cycles += cycles
            if progress:
                progress(min(i + batch, len(q)), len(q))
        ints = np.concatenate(outs) if outs else np.zeros((0, *self.manifest["output"]["shape"]),
                                                          np.int64)
        frac = self.manifest["output"]["format"]["frac"]
        return ints, ints * 2.0 ** -frac

    def status(self) -> dict:
        return self.client.status()

    def reset(self) -> None:
        """Pulse the board's fabric reset. The agent forgets the loaded design: deploy it
        again (``shiftadd run`` does, unless ``--no-load``)."""
        self.client.request(P.Kind.RESET)
        self.manifest = None
