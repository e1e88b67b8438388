"""Packing numpy integer arrays into flat bit vectors (Python ints) and back.

Amaranth lays out ``StructLayout`` fields and ``ArrayLayout`` elements consecutively from bit 0,
in declaration order, without gaps; a flattened port (``i__payload``) is exactly that vector. A
payload is described here as a list of chunks ``(values, width)`` in layout order, each chunk an
array of equal-width fields. Everything is vectorised (numpy bit arrays), so a 16x16x8 step packs
in microseconds.
"""

from __future__ import annotations

import numpy as np


def to_bits(values, width: int) -> np.ndarray:
    """Two's-complement bits (LSB first) of each value, concatenated: ``uint8[len * width]``."""
    v = np.asarray(values, dtype=np.int64).ravel()
    if width > 63:
        raise ValueError("fields wider than 63 bits are not supported")
    lo, hi = -(1 << (width - 1)), (1 << width) - 1
    if v.size and (v.min() < lo or v.max() > hi):
        raise ValueError(f"value out of range for a {width}-bit field")
    bits = (v[:, None] >> np.arange(width, dtype=np.int64)) & 1
    return bits.astype(np.uint8).ravel()


def pack(chunks: list[tuple[object, int]]) -> int:
    """Concatenate chunks ``(values, width)`` (first chunk at bit 0) into one integer."""
    bits = np.concatenate([to_bits(v, w) for v, w in chunks]) if chunks else np.zeros(0, np.uint8)
    return int.from_bytes(np.packbits(bits, bitorder="little").tobytes(), "little")


def unpack(value: int, fields: list[tuple[int, int, bool]]) -> list[np.ndarray]:
    """Split ``value`` into chunks ``(count, width, signed)``; returns one int64 array per chunk."""
    total = sum(c * w for c, w, _ in fields)
    raw = np.frombuffer(int(value).to_bytes((total + 7) // 8 or 1, "little"), dtype=np.uint8)
    bits = np.unpackbits(raw, bitorder="little")[:total].astype(np.int64)
    out, pos = [], 0
    for count, width, signed in fields:
        b = bits[pos:pos + count * width].reshape(count, width)
        v = (b << np.arange(width, dtype=np.int64)).sum(axis=1)
        if signed:
            v = np.where(v >= (1 << (width - 1)), v - (1 << width), v)
        out.append(v)
        pos += count * width
    return out


def shift_weight(sign, shift) -> np.ndarray:
    """Encode shift weights as ``hw.lanes.shift_weight_layout``: ``sign`` (2-bit signed) at
    bit 0, then the left-shift amount."""
    return (np.asarray(sign, np.int64) & 3) | (np.asarray(shift, np.int64) << 2)
