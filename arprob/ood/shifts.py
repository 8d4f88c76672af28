"""Shifted data sets for level-valued images: noise, inversion, translation, rotation, occlusion.

Every function takes integer images of shape ``(n, H, W)`` or ``(n, H, W, C)`` with values
in ``0..levels-1`` and returns a new integer array of the same shape and dtype, inside the
same range (the input is never modified). The random ones take a ``seed`` and draw from
``numpy.random.default_rng(seed)``, so the same call gives the same set. The background-
model perturbation of Ren et al. is :func:`arprob.ood.perturb`, not here.
"""

from __future__ import annotations

import math

import numpy as np
from jaxtyping import ArrayLike

__all__ = ["blur", "invert", "occlude", "rotate", "shift", "shifted_sets", "uniform_noise"]


def _images(x: ArrayLike, levels: int | None = None, name: str = "x") -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim not in (3, 4):
        raise ValueError(f"{name}: expected images of shape (n, H, W) or (n, H, W, C); got shape {arr.shape}.")
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            idx = np.unravel_index(np.flatnonzero(~np.isfinite(arr) | (arr != np.round(arr)))[0], arr.shape)
            raise ValueError(f"{name}{[int(i) for i in idx]} = {arr[idx].item()!r} is not an integer level.")
        arr = arr.astype(np.int64)
    if levels is not None:
        _levels(levels)
        bad = np.flatnonzero((arr < 0) | (arr >= levels))
        if bad.size:
            idx = np.unravel_index(bad[0], arr.shape)
            raise ValueError(f"{name}{[int(i) for i in idx]} = {arr[idx]} is outside the levels 0..{levels - 1}.")
    return arr


def _levels(levels: int) -> int:
    if int(levels) != levels or levels < 2:
        raise ValueError(f"levels must be an integer >= 2; got {levels!r}.")
    return int(levels)


def uniform_noise(n: int, shape: tuple[int, ...], levels: int, *, seed: int = 0) -> np.ndarray:
    """``n`` images of ``shape`` with independent uniform levels ``0..levels-1`` (int64)."""
    levels = _levels(levels)
    return np.random.default_rng(seed).integers(0, levels, size=(int(n), *shape), dtype=np.int64)


def invert(x: ArrayLike, levels: int) -> np.ndarray:
    """The negative image ``levels - 1 - x``."""
    arr = _images(x, levels)
    return (levels - 1 - arr).astype(arr.dtype)


def blur(x: ArrayLike, sigma: float) -> np.ndarray:
    """Gaussian blur of standard deviation ``sigma`` pixels (separable kernel of radius
    ``ceil(3 sigma)``, edges padded with the nearest pixel), rounded back to whole levels."""
    if not (isinstance(sigma, (int, float)) and sigma > 0 and math.isfinite(sigma)):
        raise ValueError(f"blur: sigma must be a finite number > 0; got {sigma!r}.")
    arr = _images(x)
    r = math.ceil(3 * sigma)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    pad = [(0, 0), (r, r), (r, r)] + [(0, 0)] * (arr.ndim - 3)
    z = np.pad(arr.astype(np.float64), pad, mode="edge")
    h, w = arr.shape[1:3]
    z = sum(k[i] * z[:, i : i + h] for i in range(2 * r + 1))  # rows
    z = sum(k[i] * z[:, :, i : i + w] for i in range(2 * r + 1))  # columns
    return np.rint(z).astype(arr.dtype)  # a convex combination of levels stays inside the range


def shift(x: ArrayLike, dy: int, dx: int, *, fill: int = 0) -> np.ndarray:
    """Translate by ``dy`` rows (down when positive) and ``dx`` columns (right), filling with ``fill``.

    ``np.roll`` followed by blanking the rows and columns that wrapped around, so nothing
    re-enters from the other side.
    """
    arr = _images(x)
    out = np.roll(arr, (int(dy), int(dx)), axis=(1, 2))
    h, w = arr.shape[1:3]
    if dy > 0:
        out[:, : min(dy, h)] = fill
    elif dy < 0:
        out[:, max(h + dy, 0) :] = fill
    if dx > 0:
        out[:, :, : min(dx, w)] = fill
    elif dx < 0:
        out[:, :, max(w + dx, 0) :] = fill
    return out


def rotate(x: ArrayLike, degrees: float, *, fill: int = 0) -> np.ndarray:
    """Rotate counter-clockwise by ``degrees`` about the image centre.

    Multiples of 90 degrees are exact (``np.rot90``; square images only for 90 and 270).
    Other angles use nearest-neighbour resampling: output pixel ``(i, j)`` takes the input
    pixel nearest to its inverse rotation about ``((H-1)/2, (W-1)/2)``, or ``fill`` when that
    falls outside the image.
    """
    arr = _images(x)
    h, w = arr.shape[1:3]
    quarter = float(degrees) / 90.0
    if quarter == round(quarter):
        k = round(quarter) % 4
        if k % 2 and h != w:
            raise ValueError(f"rotate by {degrees} degrees needs square images; got {h}x{w}.")
        return np.ascontiguousarray(np.rot90(arr, k=k, axes=(1, 2)))
    theta = math.radians(float(degrees))
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    ii, jj = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    # Rows grow downwards: the source of (y, x) is its turn by -degrees in (up, right) axes.
    y, xc = ii - cy, jj - cx
    src_i = np.rint(cy + math.cos(theta) * y + math.sin(theta) * xc).astype(np.int64)
    src_j = np.rint(cx + math.cos(theta) * xc - math.sin(theta) * y).astype(np.int64)
    inside = (src_i >= 0) & (src_i < h) & (src_j >= 0) & (src_j < w)
    out = np.full_like(arr, fill)
    out[:, inside] = arr[:, src_i[inside], src_j[inside]]
    return out


def occlude(
    x: ArrayLike, size: int, value: int, *, seed: int = 0, position: tuple[int, int] | None = None
) -> np.ndarray:
    """Set a ``size x size`` square patch of every image to ``value`` (e.g. ``0`` or ``levels - 1``).

    The patch's top-left corner is ``position`` for every image, or drawn per image
    uniformly from the positions where the patch fits (``default_rng(seed)``).
    """
    arr = _images(x)
    n, h, w = arr.shape[:3]
    size = int(size)
    if not 1 <= size <= min(h, w):
        raise ValueError(f"occlude: size must be between 1 and {min(h, w)}; got {size}.")
    if position is None:
        rng = np.random.default_rng(seed)
        tops = rng.integers(0, h - size + 1, size=n)
        lefts = rng.integers(0, w - size + 1, size=n)
    else:
        top, left = position
        if not (0 <= top <= h - size and 0 <= left <= w - size):
            raise ValueError(f"occlude: a {size}x{size} patch at {position} does not fit a {h}x{w} image.")
        tops, lefts = np.full(n, top), np.full(n, left)
    out = arr.copy()
    rows = tops[:, None] + np.arange(size)[None, :]  # (n, size)
    cols = lefts[:, None] + np.arange(size)[None, :]
    out[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]] = value
    return out


def shifted_sets(x: ArrayLike, levels: int, *, seed: int = 0) -> dict[str, np.ndarray]:
    """The standard shifted sets built from ``x`` (named by what was done), all from ``seed``.

    ``noise`` (uniform levels), ``inverted``, ``shifted_1`` / ``shifted_2`` (down-right by 1
    or 2 pixels), ``rotated_90``, ``rotated_180``, ``rotated_15`` (nearest neighbour),
    ``occluded_0`` / ``occluded_max`` (a square of a third of the side, set to 0 or to
    ``levels - 1``, at a random position per image).
    """
    arr = _images(x, levels)
    side = max(1, min(arr.shape[1:3]) // 3 + 1)
    return {
        "noise": uniform_noise(arr.shape[0], arr.shape[1:], levels, seed=seed),
        "inverted": invert(arr, levels),
        "shifted_1": shift(arr, 1, 1),
        "shifted_2": shift(arr, 2, 2),
        "rotated_90": rotate(arr, 90),
        "rotated_180": rotate(arr, 180),
        "rotated_15": rotate(arr, 15),
        "occluded_0": occlude(arr, side, 0, seed=seed + 1),
        "occluded_max": occlude(arr, side, levels - 1, seed=seed + 2),
    }
