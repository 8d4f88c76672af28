"""Masks from ranks: pure functions from step vectors to boolean connectivity.

Every mask in arprob is a comparison of ranks (flowjax's ``rank_based_mask``):
output ``i`` may see input ``j`` iff ``out_rank[i] > in_rank[j]`` (strict) or ``>=``.
With ranks taken from the step vector this *is* the autoregressive contract.

Masked products ``x @ (W * M).T`` skip the all-masked blocks of ``M``: ``row_tiles`` cuts
the rows into groups, each reading only the column prefix up to its last allowed column
(exact: every skipped entry is masked), and ``tiled_masked_matmul`` evaluates the mask
inside each group's product. With ranks sorted (raster order) ``M`` is a staircase and G
groups do about ``(G + 1) / 2G`` of the dense work.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from .spec.layout import ElementLayout, Steps, may_read
from .spec.layout import check_parents_precede as check_parents_precede


def rank_mask(in_ranks, out_ranks, *, strict: bool):
    """``mask[i, j] = out_ranks[i] > in_ranks[j]`` (``>=`` when not strict); shape (out, in).

    Works on numpy arrays (build time) and on (traced) jax arrays (inside products).
    """
    return may_read(out_ranks, in_ranks, same_step=not strict)


Tiles = tuple[tuple[int, int, int], ...]


def row_tiles(allowed: np.ndarray, groups: int = 3, *, align: int = 16, min_saving: float = 0.2) -> Tiles:
    """Row groups ``(r0, r1, k)`` of an ``(R, C)`` connectivity: rows ``r0:r1`` read only the
    columns ``:k``, one past the group's last allowed column. Group bounds and ``k`` are
    rounded to multiples of ``align`` (aligned products are faster on CPU). One full tile
    ``((0, R, C),)`` when the groups would skip less than ``min_saving`` of the product
    (e.g. a mask whose ranks are not sorted).

    ``groups=3`` for every layer measured as fast as any choice of 1 to 8 groups on CPU
    (FVSBN and MADE layers of 500 to 784 rows, D = 784, batch 256, interleaved runs);
    the speed of XLA's CPU products depends on their shapes more than on their size."""
    r, c = allowed.shape
    bounds = np.unique(np.r_[(np.linspace(0, r, min(groups, r) + 1)[:-1] / align).round().astype(int) * align, r])
    tiles = []
    for r0, r1 in zip(bounds[:-1], bounds[1:]):
        cols = np.flatnonzero(allowed[r0:r1].any(axis=0))
        k = min(c, -(-(int(cols[-1]) + 1) // align) * align) if cols.size else 0
        tiles.append((int(r0), int(r1), k))
    if sum((r1 - r0) * k for r0, r1, k in tiles) > (1 - min_saving) * r * c:
        return ((0, r, c),)
    return tuple(tiles)


def tiled_masked_matmul(
    x: Float[Array, " c"], w: Float[Array, "r c"], tiles: Tiles, row_ranks, col_ranks, *, strict: bool,
    allowed: Bool[Array, "r c"] | None = None,
) -> Float[Array, " r"]:
    """``(W * M) @ x`` with ``M = rank_mask(col_ranks, row_ranks) & allowed``, group by group
    (``x @ W.T`` per example: the layout XLA batches without a transpose under vmap)."""
    outs = []
    for r0, r1, k in tiles:
        if k == 0:
            outs.append(jnp.zeros(r1 - r0, w.dtype))
            continue
        mask = rank_mask(col_ranks[:k], row_ranks[r0:r1], strict=strict)
        if allowed is not None:
            mask = mask & allowed[r0:r1, :k]
        outs.append(x[:k] @ jnp.where(mask, w[r0:r1, :k], 0.0).T)
    return jnp.concatenate(outs) if len(outs) > 1 else outs[0]


def parent_elements(layout: ElementLayout, parents: Sequence[str]) -> np.ndarray:
    """Elements of the named parent variables, in the order listed (C order inside each)."""
    return np.concatenate([layout.elements_of(p) for p in parents]) if parents else np.zeros(0, np.int64)


def allowed_inputs(
    layout: ElementLayout, steps: Steps, elements: np.ndarray, parents: Sequence[str] | None
) -> np.ndarray:
    """Element-level connectivity ``(n, D)``: output element ``elements[i]`` may read element ``j``.

    ``j`` must be in an earlier step and, when ``parents`` is given, belong to a parent.
    """
    allowed = may_read(steps.step[elements], steps.step)
    if parents is not None:
        is_parent = np.zeros(layout.num_elements, dtype=bool)
        is_parent[parent_elements(layout, parents)] = True
        allowed &= is_parent[None, :]
    return allowed
