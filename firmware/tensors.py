"""Tensor packing for the wire and the DMA: pure functions, numpy only (runs on the board).

A packed tensor is its integers in row-major (NCHW) order, little-endian, ``int8`` for FIX8 and
``int32`` for FIX32 — the layout the manifest declares. Unpacking checks the byte count, the
shape and the dtype, and never reinterprets bad input silently.
"""

from __future__ import annotations

import numpy as np

DTYPES = {"fix8": np.dtype("<i1"), "fix32": np.dtype("<i4")}
BEAT_BYTES = 4  # one 32-bit stream beat (the manifest's stream.beat_bits)


class TensorError(ValueError):
    """A tensor whose shape, dtype, size or values do not match what was declared."""


def dtype_for(precision: str) -> np.dtype:
    try:
        return DTYPES[precision]
    except KeyError:
        raise TensorError(f"precision must be 'fix8' or 'fix32', not {precision!r}") from None


def check_shape(shape) -> tuple[int, ...]:
    if not isinstance(shape, (list, tuple)) or not 1 <= len(shape) <= 8 or not all(
            isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 1 << 24 for d in shape):
        raise TensorError(f"shape must be 1 to 8 non-negative integers, not {shape!r}")
    return tuple(shape)


def pack(values: np.ndarray, precision: str) -> bytes:
    """Integers -> bytes. Values outside the precision's range are an error (no wrap-around)."""
    dt = dtype_for(precision)
    a = np.asarray(values)
    if not np.issubdtype(a.dtype, np.integer):
        raise TensorError(f"pack needs integers, not {a.dtype}")
    if a.dtype == dt:  # already the wire type: every value is in range
        return np.ascontiguousarray(a).tobytes()
    info = np.iinfo(dt)
    if a.size and (a.min() < info.min or a.max() > info.max):
        raise TensorError(f"values outside {precision}'s range [{info.min}, {info.max}]")
    return np.ascontiguousarray(a, dtype=dt).tobytes()


def unpack(data: bytes | memoryview, shape, precision: str) -> np.ndarray:
    """Bytes -> a read-only ``int8``/``int32`` array of ``shape`` viewing ``data`` (no copy; the
    values are exact, widen with ``astype`` before arithmetic). The byte count must match."""
    dt = dtype_for(precision)
    shape = check_shape(shape)
    n = int(np.prod(shape, dtype=np.int64))
    if len(data) != n * dt.itemsize:
        raise TensorError(f"{len(data)} bytes for shape {list(shape)} in {precision} "
                          f"(expected {n * dt.itemsize})")
    return np.frombuffer(data, dtype=dt).reshape(shape)


def word_slot(cols: int, dt: np.dtype) -> int:
    """Bytes one activation word of ``cols`` channels takes on the stream: its bits in whole
    32-bit beats (a FIX8 word of 1-3 channels still takes a beat, its high bytes zero)."""
    return -(-cols * dt.itemsize // BEAT_BYTES) * BEAT_BYTES


def to_words(x: np.ndarray, cols: int, precision: str, word_beats: int | None = None, *,
             header: int | None = None) -> bytes:
    """One tensor ``[C, H, W]``, or a batch ``[N, C, H, W]`` of them one after another -> the
    bytes of its accelerator activation words: HWC, channels zero-padded to a multiple of
    ``cols``, little-endian, each word in whole 32-bit beats (the manifest's tensor layout).
    ``word_beats``: send only each word's first that many 32-bit beats (the manifest's input
    ``beats_per_word``, which always covers the real channels); ``None``: whole words.
    ``header``: a 32-bit beat put before each tensor's words (a frame header). A batch is
    packed in a few numpy operations, not a Python loop per image (the board's CPU is slow)."""
    dt = dtype_for(precision)
    x = np.asarray(x)
    info = np.iinfo(dt)
    if x.ndim not in (3, 4) or not np.issubdtype(x.dtype, np.integer):
        raise TensorError(f"to_words needs integers [C, H, W] or [N, C, H, W], not {x.dtype} "
                          f"{list(x.shape)}")
    if x.size and (x.min() < info.min or x.max() > info.max):
        raise TensorError(f"values outside {precision}'s range [{info.min}, {info.max}]")
    batch = x if x.ndim == 4 else x[None]
    n, c, h, w = batch.shape
    slot = word_slot(cols, dt)
    cut = slot if word_beats is None else word_beats * BEAT_BYTES
    if not 0 < cut <= slot or (cut < slot and c * dt.itemsize > cut):
        raise TensorError(f"{word_beats} beats per word cannot carry {c} channels of {precision} "
                          f"in words of {cols}")
    # each pixel's words: whole (every channel, zero-padded to whole words, each word in whole
    # beats) or cut (one word, every channel in its first beats: only those beats, built
    # directly rather than cut from whole words)
    blocks, used, per = ((-(-c // cols), cols, slot // dt.itemsize) if cut == slot
                         else (1, cut // dt.itemsize, cut // dt.itemsize))
    hwc = np.zeros((n, h, w, blocks, per), dtype=dt)
    chans = np.transpose(batch, (0, 2, 3, 1))
    if used == per:
        hwc.reshape(n, h, w, blocks * per)[..., :c] = chans
    else:  # words narrower than their beats (FIX8 words of fewer than 4 channels a beat)
        flat = np.zeros((n, h, w, blocks * used), dtype=dt)
        flat[..., :c] = chans
        hwc[..., :used] = flat.reshape(n, h, w, blocks, used)
    body = hwc.reshape(n, h * w * blocks * per).view(np.uint8)  # not -1: a batch may be empty
    if header is not None:
        head = np.array([header], dtype="<u4").view(np.uint8)
        body = np.concatenate([np.broadcast_to(head, (n, BEAT_BYTES)), body], axis=1)
    return body.tobytes()


def from_words(data: bytes | memoryview, shape, cols: int, precision: str,
               count: int | None = None) -> np.ndarray:
    """The inverse of :func:`to_words`: activation-word bytes -> ``[C, H, W]``, or with
    ``count`` the words of that many tensors one after another -> ``[count, C, H, W]``."""
    dt = dtype_for(precision)
    c, h, w = check_shape(shape)
    blocks = -(-c // cols)
    slot = word_slot(cols, dt)
    n = 1 if count is None else count
    if len(data) != n * h * w * blocks * slot:
        what = f"a {list(shape)} tensor" if count is None else \
            f"{count} tensors of {list(shape)}"
        raise TensorError(f"{len(data)} bytes are not the words of {what}")
    words = np.frombuffer(data, dtype=dt).reshape(n, h, w, blocks, slot // dt.itemsize)
    hwc = words[..., :cols].reshape(n, h, w, blocks * cols)
    out = np.ascontiguousarray(np.transpose(hwc[..., :c], (0, 3, 1, 2)))
    return out if count is not None else out[0]
