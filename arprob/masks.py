"""Masks from ranks: pure functions from step vectors to boolean connectivity.

Every mask in arprob is a comparison of ranks (flowjax's ``rank_based_mask``):
output ``i`` may see input ``j`` iff ``out_rank[i] > in_rank[j]`` (strict) or ``>=``.
With ranks taken from the step vector this *is* the autoregressive contract.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import SpecError
from .spec.layout import ElementLayout, Steps


def rank_mask(in_ranks: np.ndarray, out_ranks: np.ndarray, *, strict: bool) -> np.ndarray:
    """``mask[i, j] = out_ranks[i] > in_ranks[j]`` (``>=`` when not strict); shape (out, in)."""
    out_ranks = np.asarray(out_ranks)[:, None]
    in_ranks = np.asarray(in_ranks)[None, :]
    return out_ranks > in_ranks if strict else out_ranks >= in_ranks


def parent_elements(layout: ElementLayout, parents: Sequence[str]) -> np.ndarray:
    """Elements of the named parent variables, in the order listed (C order inside each)."""
    return np.concatenate([layout.elements_of(p) for p in parents]) if parents else np.zeros(0, np.int64)


def check_parents_precede(layout: ElementLayout, steps: Steps, child: str, parents: Sequence[str]) -> None:
    """Raise if any element of a declared parent is not in an earlier step than a child element."""
    children = layout.elements_of(child)
    for p in parents:
        if p == child:
            raise SpecError(f"Variable {child!r} lists itself as a parent.")
        for e_parent in layout.elements_of(p):
            late = children[steps.step[children] <= steps.step[e_parent]]
            if late.size:
                e = int(late[0])
                raise SpecError(
                    f"Parent {layout.describe_element(int(e_parent))} of variable {child!r} is at step "
                    f"{int(steps.step[e_parent])}, not before its child {layout.describe_element(e)} at step "
                    f"{int(steps.step[e])}; parents must come earlier in the ordering."
                )


def allowed_inputs(
    layout: ElementLayout, steps: Steps, elements: np.ndarray, parents: Sequence[str] | None
) -> np.ndarray:
    """Element-level connectivity ``(n, D)``: output element ``elements[i]`` may read element ``j``.

    ``j`` must be in an earlier step and, when ``parents`` is given, belong to a parent.
    """
    allowed = rank_mask(steps.step, steps.step[elements], strict=True)
    if parents is not None:
        is_parent = np.zeros(layout.num_elements, dtype=bool)
        is_parent[parent_elements(layout, parents)] = True
        allowed &= is_parent[None, :]
    return allowed
