"""The bundled data set: scikit-learn's 8x8 handwritten digits (real data shipped inside the
scikit-learn wheel, so nothing is downloaded).

Splits are fixed: a seeded permutation of the 1,797 images, the last 360 form the test split.
Pixels are 0..16; the normalization ``(p / 16 - mean) / std`` uses the training split's statistics
and is stored in every checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SPLIT_SEED = 20201
TEST_SIZE = 360
CALIBRATION_IMAGES = 512  # inputs the quantizer calibrates on: the training split's first ones


@dataclass(frozen=True)
class Normalization:
    mean: float
    std: float

    def apply(self, pixels: np.ndarray) -> np.ndarray:
        """Raw 0..16 pixels -> float32 network input."""
        return ((np.asarray(pixels, dtype=np.float32) / 16.0 - self.mean) / self.std).astype(
            np.float32)

    def to_json(self) -> dict:
        return {"mean": self.mean, "std": self.std, "pixel_scale": 16.0}


@dataclass(frozen=True)
class Split:
    pixels: np.ndarray   # uint8 [N, 1, 8, 8], 0..16
    labels: np.ndarray   # int64 [N]


def load_digits_splits() -> tuple[Split, Split]:
    """``(train, test)`` splits of the digits data set, always the same images."""
    from sklearn.datasets import load_digits

    d = load_digits()
    pixels = d.images.astype(np.uint8).reshape(-1, 1, 8, 8)
    labels = d.target.astype(np.int64)
    perm = np.random.default_rng(SPLIT_SEED).permutation(len(labels))
    test, train = perm[:TEST_SIZE], perm[TEST_SIZE:]
    return Split(pixels[train], labels[train]), Split(pixels[test], labels[test])


def normalization_for(train: Split) -> Normalization:
    p = train.pixels.astype(np.float64) / 16.0
    return Normalization(mean=float(p.mean()), std=float(p.std()))
