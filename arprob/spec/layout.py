"""The element layout and the step vector: the one place orderings and partitions meet.

The autoregressive contract of every arprob model is a single sentence: *the
distribution parameters of element e may depend only on elements whose step is
smaller than ``step[e]``*. ``compute_steps`` is the only function that derives
``step``; the rules derived from it are written once, here:

- ``may_read(reader, read)``: the visibility rule ``step[j] < step[e]`` as a boolean
  matrix (``<=`` with ``same_step=True``, for layers whose inputs already obey it);
- ``schedule_table``: the block schedule, which rows are produced at each step
  (``Steps.blocks``, ``Steps.slot``, ``component_schedule``);
- ``check_parents_precede``: declared parents must come in earlier steps.

Masks, the model's sampling scan, every conditioner and the contract tests call these.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import numpy as np

from ..errors import SpecError
from .orderings import Ordering, check_permutation, variable_offsets
from .partitions import Partition
from .variables import Categorical, Variable

# Element kinds, as small ints so jitted code can branch with jnp.where.
BINARY, CATEGORICAL, ORDINAL, REAL = 0, 1, 2, 3
_KIND_CODE = {"binary": BINARY, "categorical": CATEGORICAL, "ordinal": ORDINAL, "real": REAL}


@dataclasses.dataclass(frozen=True, eq=False)
class Steps:
    """Ordering and partition resolved for a list of variables.

    Attributes:
        perm: ``perm[t]`` is the element at position ``t`` of the ordering.
        position: inverse of ``perm``: the position of each element.
        step: ``step[e]``, the block (autoregressive step) of element ``e``, in ``0..S-1``.
        num_steps: ``S``.
    """

    perm: np.ndarray
    position: np.ndarray
    step: np.ndarray
    num_steps: int

    def elements_of_step(self, s: int) -> np.ndarray:
        """Elements of block ``s`` in ordering position order."""
        return self.perm[self.step[self.perm] == s]

    @functools.cached_property
    def blocks(self) -> np.ndarray:
        """``(S, m)`` elements of each step in ordering position order, padded with ``D``
        (``m`` the largest block)."""
        return schedule_table(self.step, self.num_steps, order=self.perm)

    @functools.cached_property
    def slot(self) -> np.ndarray:
        """``slot[e]``: the place of element ``e`` inside its block (ordering order)."""
        slot = np.zeros(len(self.step), dtype=np.int64)
        for row in self.blocks:
            real = row[row < len(self.step)]
            slot[real] = np.arange(len(real))
        return slot


def may_read(reader_steps, read_steps, *, same_step: bool = False):
    """The visibility rule: ``out[..., i, j]`` is True iff an element at step ``reader_steps[i]``
    may read one at step ``read_steps[j]``, i.e. ``read < reader`` (``<=`` with ``same_step``).

    Works on numpy arrays (build time) and on traced jax arrays; every mask, attention
    pattern and contract check of arprob is this comparison of steps (or of ranks derived
    from them, such as MADE degrees)."""
    reader, read = reader_steps[..., :, None], read_steps[..., None, :]
    return reader >= read if same_step else reader > read


def schedule_table(step_of: np.ndarray, num_steps: int, *, order: np.ndarray | None = None,
                   pad: int | None = None) -> np.ndarray:
    """The block schedule: ``(S, m)`` int32 whose row ``s`` lists the indices ``r`` with
    ``step_of[r] == s`` (in the order of ``order``, default ascending), padded with ``pad``
    (default ``len(step_of)``); ``m`` is the largest block (at least 1). Indices whose
    ``step_of`` lies outside ``0..S-1`` are in no row."""
    step_of = np.asarray(step_of)
    order = np.arange(len(step_of)) if order is None else np.asarray(order)
    pad = len(step_of) if pad is None else pad
    ordered = step_of[order]
    keep = (ordered >= 0) & (ordered < num_steps)
    ordered, order = ordered[keep], order[keep]
    sort = np.argsort(ordered, kind="stable")  # one sort, not S scans of all indices
    ordered, order = ordered[sort], order[sort]
    counts = np.bincount(ordered, minlength=num_steps)
    m = max(1, int(counts.max(initial=0)))
    table = np.full((num_steps, m), pad, dtype=np.int32)
    table[ordered, np.arange(len(ordered)) - (np.cumsum(counts) - counts)[ordered]] = order
    return table


def component_schedule(steps: Steps, elements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, elems)``, both ``(S, m)`` int32: the rows (indices into ``elements``) drawn at
    each step, padded with ``n = len(elements)``, and the same as flat element indices,
    padded with ``D``."""
    d = len(steps.step)
    rows = schedule_table(steps.step[elements], steps.num_steps)
    elems = np.where(rows < len(elements), np.concatenate([elements, [d]])[rows], d).astype(np.int32)
    return rows, elems


def compute_steps(variables: Sequence[Variable], ordering: Ordering, partition: Partition) -> Steps:
    """Resolve an ordering and a partition into the step of every element (validated)."""
    d = int(variable_offsets(variables)[-1])
    perm = check_permutation(ordering.permutation(variables), d)
    blocks = np.asarray(partition.blocks(variables, perm), dtype=np.int64)
    if blocks.shape != (d,):
        raise SpecError(f"{type(partition).__name__} gave {blocks.shape} block ids for {d} elements.")
    if d and (blocks[0] != 0 or np.any(np.diff(blocks) < 0) or np.any(np.diff(blocks) > 1)):
        raise SpecError(f"{type(partition).__name__} must give consecutive blocks 0, 1, ... in ordering order.")
    step = np.empty(d, dtype=np.int64)
    step[perm] = blocks
    position = np.empty(d, dtype=np.int64)
    position[perm] = np.arange(d)
    return Steps(perm=perm, position=position, step=step, num_steps=int(blocks[-1]) + 1 if d else 0)


@dataclasses.dataclass(frozen=True, eq=False)
class ElementLayout:
    """Per-element facts about the flat layout, as numpy arrays of length D.

    Attributes:
        variables: the declared variables.
        offsets: start of each variable in the flat layout (length ``V+1``).
        var_index: the variable owning each element.
        kind: element kind code (``BINARY``, ``CATEGORICAL``, ``ORDINAL``, ``REAL``).
        num_values: number of values of a discrete element, 0 for real.
        coords: ``(D, 3)`` integer (row, column, channel) of each element inside its
            variable (scalars are (0, 0, 0); a vector is one row; trailing axes after
            the third are folded into the channel).
        feature_offset, feature_width: where each element's input features sit in the
            feature vector (categorical elements are one-hot, others one scalar).
    """

    variables: tuple[Variable, ...]
    offsets: np.ndarray
    var_index: np.ndarray
    kind: np.ndarray
    num_values: np.ndarray
    coords: np.ndarray
    feature_offset: np.ndarray
    feature_width: np.ndarray

    @property
    def num_elements(self) -> int:
        return int(self.offsets[-1])

    @property
    def num_features(self) -> int:
        return int(self.feature_offset[-1] + self.feature_width[-1]) if self.num_elements else 0

    @property
    def feature_element(self) -> np.ndarray:
        """The element that owns each input feature (length F)."""
        return np.repeat(np.arange(self.num_elements), self.feature_width)

    def elements_of(self, name: str) -> np.ndarray:
        i = self.index_of(name)
        return np.arange(self.offsets[i], self.offsets[i + 1])

    def index_of(self, name: str) -> int:
        for i, v in enumerate(self.variables):
            if v.name == name:
                return i
        raise SpecError(f"Unknown variable {name!r}; declared: {[v.name for v in self.variables]}.")

    def describe_element(self, e: int) -> str:
        """Human-readable name of element ``e``: ``'img'[2, 3] (element 19)``."""
        i = int(self.var_index[e])
        var = self.variables[i]
        local = int(e - self.offsets[i])
        where = list(np.unravel_index(local, var.shape)) if var.shape else []
        index = f"[{', '.join(str(int(w)) for w in where)}]" if where else ""
        return f"{var.name!r}{index} (element {int(e)})"


def element_layout(variables: Sequence[Variable]) -> ElementLayout:
    """Build the flat element layout of ``variables`` (declaration order, C order inside)."""
    offsets = variable_offsets(variables)
    var_index, kind, num_values, coords, width = [], [], [], [], []
    for i, v in enumerate(variables):
        n = v.size
        var_index.append(np.full(n, i))
        kind.append(np.full(n, _KIND_CODE[v.kind]))
        num_values.append(np.full(n, v.num_values or 0))
        grid = np.indices(v.shape).reshape(len(v.shape), -1).T if v.shape else np.zeros((1, 0), int)
        c = np.zeros((n, 3), dtype=np.int64)
        if grid.shape[1] == 1:
            c[:, 1] = grid[:, 0]
        elif grid.shape[1] >= 2:
            c[:, :2] = grid[:, :2]
            if grid.shape[1] >= 3:
                c[:, 2] = np.ravel_multi_index(grid[:, 2:].T, v.shape[2:])
        coords.append(c)
        w = v.num_values if isinstance(v, Categorical) else 1
        width.append(np.full(n, w))
    cat = lambda xs: np.concatenate(xs).astype(np.int64) if xs else np.zeros(0, np.int64)
    width_arr = cat(width)
    return ElementLayout(
        variables=tuple(variables),
        offsets=offsets,
        var_index=cat(var_index),
        kind=cat(kind),
        num_values=cat(num_values),
        coords=np.concatenate(coords) if coords else np.zeros((0, 3), np.int64),
        feature_offset=np.concatenate([[0], np.cumsum(width_arr)[:-1]]).astype(np.int64),
        feature_width=width_arr,
    )


def check_parent_names(name: str, parents: tuple[str, ...] | None, layout: ElementLayout) -> None:
    """Raise if declared parents name an unknown variable or one twice."""
    if parents is None:
        return
    declared = [v.name for v in layout.variables]
    for p in parents:
        if p not in declared:
            raise SpecError(f"Conditional of {name!r} names unknown parent {p!r}; declared: {declared}.")
    if len(set(parents)) != len(parents):
        raise SpecError(f"Conditional of {name!r} lists a parent twice: {list(parents)}.")


def check_parents_precede(layout: ElementLayout, steps: Steps, child: str, parents: Sequence[str]) -> None:
    """Raise if any element of a declared parent is not in an earlier step than a child element."""
    children = layout.elements_of(child)
    for p in parents:
        if p == child:
            raise SpecError(f"Variable {child!r} lists itself as a parent.")
        for e_parent in layout.elements_of(p):
            late = children[~may_read(steps.step[children], steps.step[e_parent : e_parent + 1])[:, 0]]
            if late.size:
                e = int(late[0])
                raise SpecError(
                    f"Parent {layout.describe_element(int(e_parent))} of variable {child!r} is at step "
                    f"{int(steps.step[e_parent])}, not before its child {layout.describe_element(e)} at step "
                    f"{int(steps.step[e])}; parents must come earlier in the ordering."
                )
