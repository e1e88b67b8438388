"""The accelerator's hardware, in Amaranth 0.5."""

from __future__ import annotations

import hashlib
import importlib.metadata
from pathlib import Path


def source_sha256() -> str:
    """A hash of everything that decides the Verilog this package emits for a configuration:
    its sources and the Amaranth that converts them. A generated design's build id includes
    it, so the same network on changed hardware (a register added, say) is another build."""
    h = hashlib.sha256()
    root = Path(__file__).resolve().parent
    for p in sorted(root.rglob("*.py")):
        h.update(p.relative_to(root.parent).as_posix().encode())
        h.update(p.read_bytes())
    h.update(f"amaranth={importlib.metadata.version('amaranth')}".encode())
    return h.hexdigest()
