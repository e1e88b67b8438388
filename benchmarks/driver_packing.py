"""The board driver's packing of a request's images into stream frames and of the results
back into tensors (``firmware.tensors.to_words``/``from_words``), one image at a time against
the whole batch in one call: the CPU time per image the agent spends around each start.

    python benchmarks/driver_packing.py [--json] [--images 256] [--repeat 20]

ResNet-20's input (3x32x32, one beat per word at 16 columns) and output (10x1x1) in FIX8 and
FIX32. This machine's CPU is not the board's (a Cortex-A9 is many times slower): the ratio is
the figure that carries over.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from firmware import tensors as T
from gen.report import emit

HEADER = 0x53484149
SHAPES = {"fix8": ((3, 32, 32), 1, (10, 1, 1)), "fix32": ((3, 32, 32), 3, (10, 1, 1))}
COLS = 16


def per_image(fn, images: int, repeat: int) -> float:
    """Microseconds per image of ``fn()`` (which handles ``images`` images), best of
    ``repeat``."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return round(best / images * 1e6, 2)


def measure(precision: str, images: int, repeat: int, rng) -> dict:
    """Microseconds per image, one by one and batched, packing the frames and unpacking the
    results of ``images`` ResNet-20 images in ``precision``."""
    shape, beats, out_shape = SHAPES[precision]
    info = np.iinfo(T.dtype_for(precision))
    x = rng.integers(info.min, info.max, (images, *shape)).astype(T.dtype_for(precision))
    y = rng.integers(info.min, info.max, (images, *out_shape)).astype(x.dtype)
    out = T.to_words(y, COLS, precision)
    out_len = len(out) // images
    head = np.array([HEADER], "<u4").tobytes()

    def one_by_one():
        return b"".join(head + T.to_words(img, COLS, precision, beats) for img in x)

    def batched():
        return T.to_words(x, COLS, precision, beats, header=HEADER)

    def results_one_by_one():
        return [T.from_words(out[j * out_len:(j + 1) * out_len], out_shape, COLS, precision)
                for j in range(images)]

    def results_batched():
        return T.from_words(out, out_shape, COLS, precision, images)

    assert one_by_one() == batched()
    assert np.array_equal(np.stack(results_one_by_one()), results_batched())
    return {"frames_one_by_one_us": per_image(one_by_one, images, repeat),
            "frames_batched_us": per_image(batched, images, repeat),
            "results_one_by_one_us": per_image(results_one_by_one, images, repeat),
            "results_batched_us": per_image(results_batched, images, repeat)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    result: dict = {"images": args.images}
    for precision in SHAPES:
        result[precision] = measure(precision, args.images, args.repeat, rng)
    emit(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
