"""Bundled data: scikit-learn's digits (8x8, values 0..16), shipped offline with scikit-learn.

The fixed split used throughout the docs: ``perm = RandomState(0).permutation(1797)``,
train = ``perm[:1400]``, test = ``perm[1400:]``.
"""

from __future__ import annotations

import numpy as np

DIGITS_SPLIT_SEED = 0
DIGITS_TRAIN_SIZE = 1400


def load_digits(binarize: bool = True, threshold: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Digits images as ``(train, test)`` arrays of shape ``(N, 8, 8)``, integer-valued.

    **Arguments:**
        binarize: map values to ``x >= threshold`` (0/1); otherwise keep the 17 levels 0..16.
        threshold: binarisation threshold (default 8).
    """
    from sklearn.datasets import load_digits as _load

    images = _load().images.astype(np.int64)  # (1797, 8, 8), values 0..16
    if binarize:
        images = (images >= threshold).astype(np.int64)
    perm = np.random.RandomState(DIGITS_SPLIT_SEED).permutation(len(images))
    return images[perm[:DIGITS_TRAIN_SIZE]], images[perm[DIGITS_TRAIN_SIZE:]]
