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
        from gen.numerics import Format, quantize_real, saturated_count, saturation_note

        fmt = Format.from_json(self.manifest["input"]["format"])
        x = np.asarray(x, dtype=np.float64)
        q = quantize_real(x, fmt)
        n = saturated_count(x, fmt)
        if n:
            warnings.warn(saturation_note(n, x.size, fmt), stacklevel=2)
        return q

    def infer(self, x, *, batch: int = 32, progress: Callable[[int, int], None] | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
        """``x[N, C, H, W]`` (floats are quantized; integers must already be in the input format)
        -> ``(integers, dequantized floats)``, both ``[N, C', H', W']``."""
        if self.manifest is None:
            raise RuntimeError("load (or use) an OUT/ directory first")
        if hasattr(x, "detach"):  # torch
            x = x.detach().cpu().numpy()
        x = np.asarray(x)
        shape = self.manifest["input"]["shape"]
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or list(x.shape[1:]) != shape:
            raise ValueError(f"input must be [N, {', '.join(map(str, shape))}], "
                             f"not {list(x.shape)}")
        from gen.numerics import Format

        q = x if np.issubdtype(x.dtype, np.integer) else self.quantize(x)
        fmt = Format.from_json(self.manifest["input"]["format"])
        if q.size and (q.min() < fmt.lo or q.max() > fmt.hi):
            raise ValueError(f"integer inputs must lie in [{fmt.lo}, {fmt.hi}]")
        precision = self.manifest["model"]["precision"]
        outs = []
        for i in range(0, len(q), batch):
            y, _ = self.client.infer(q[i:i + batch], precision, self.manifest["build_id_hex"])
            outs.append(np.asarray(y, dtype=np.int64))
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
