"""Orderings: a permutation of the D elements of a spec.

``ordering.permutation(variables)[t]`` is the element visited at position ``t``. Any
permutation is a valid ordering by the chain rule; orderings only decide which one.
Spatial orderings (columns, snake) act on the first two axes of each variable with
``ndim >= 2`` (rows, columns) and keep trailing axes (channels) innermost; scalars and
vectors are visited in raster order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from ..errors import SpecError
from . import fields
from .registry import Registered, kinds
from .variables import Variable


def variable_offsets(variables: Sequence[Variable]) -> np.ndarray:
    """Start index of each variable in the flat element layout (length ``len+1``)."""
    return np.concatenate([[0], np.cumsum([v.size for v in variables])]).astype(np.int64)


def _check_ordering(owner: str, field: str, value: object) -> None:
    if not isinstance(value, Ordering):
        raise fields.FieldError(owner, field, "an ordering (a table with a 'kind')", value)


def _local_raster(var: Variable) -> np.ndarray:
    return np.arange(var.size).reshape(var.shape) if var.shape else np.arange(1)


@dataclasses.dataclass(frozen=True)
class Ordering(Registered):
    """Base class; subclasses give the visiting order of elements."""

    category: ClassVar[str] = "ordering"
    kind: ClassVar[str] = "ordering"

    def permutation(self, variables: Sequence[Variable]) -> np.ndarray:
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class _PerVariable(Ordering):
    """Visit variables in declaration order, each in its own local order."""

    def local(self, var: Variable) -> np.ndarray:
        raise NotImplementedError

    def permutation(self, variables: Sequence[Variable]) -> np.ndarray:
        offsets = variable_offsets(variables)
        return np.concatenate([offsets[i] + self.local(v) for i, v in enumerate(variables)])


@dataclasses.dataclass(frozen=True)
class Raster(_PerVariable):
    """Declaration order, each variable in row-major (C) order. The default."""

    kind: ClassVar[str] = "raster"

    def local(self, var: Variable) -> np.ndarray:
        return np.arange(var.size)


@dataclasses.dataclass(frozen=True)
class Columns(_PerVariable):
    """Column-major over the first two axes: down each column, then the next column."""

    kind: ClassVar[str] = "columns"

    def local(self, var: Variable) -> np.ndarray:
        grid = _local_raster(var)
        if grid.ndim < 2:
            return grid.reshape(-1)
        return np.swapaxes(grid, 0, 1).reshape(-1)


@dataclasses.dataclass(frozen=True)
class Snake(_PerVariable):
    """Boustrophedon ("zigzag"): even rows left to right, odd rows right to left."""

    kind: ClassVar[str] = "snake"

    def local(self, var: Variable) -> np.ndarray:
        grid = _local_raster(var).copy()
        if grid.ndim < 2:
            return grid.reshape(-1)
        grid[1::2] = grid[1::2, ::-1]
        return grid.reshape(-1)


Zigzag = Snake


@dataclasses.dataclass(frozen=True)
class EvenOdd(Ordering):
    """Elements at even flat positions first, then odd ones (each in raster order)."""

    kind: ClassVar[str] = "even_odd"

    def permutation(self, variables: Sequence[Variable]) -> np.ndarray:
        d = int(variable_offsets(variables)[-1])
        return np.concatenate([np.arange(0, d, 2), np.arange(1, d, 2)])


@dataclasses.dataclass(frozen=True)
class Reverse(Ordering):
    """The reverse of another ordering (raster by default).

    Attributes:
        of: the ordering that is reversed.
    """

    of: Ordering = dataclasses.field(default_factory=Raster)
    kind: ClassVar[str] = "reverse"

    def __post_init__(self) -> None:
        _check_ordering("Reverse", "of", self.of)

    def permutation(self, variables: Sequence[Variable]) -> np.ndarray:
        return self.of.permutation(variables)[::-1].copy()


@dataclasses.dataclass(frozen=True)
class RandomOrder(Ordering):
    """A uniformly random permutation drawn from ``numpy.random.default_rng(seed)``.

    Attributes:
        seed: integer ``>= 0``; the same seed gives the same permutation.
    """

    seed: int = 0
    kind: ClassVar[str] = "random"

    def __post_init__(self) -> None:
        object.__setattr__(self, "seed", fields.non_negative_int("RandomOrder", "seed", self.seed))

    def permutation(self, variables: Sequence[Variable]) -> np.ndarray:
        d = int(variable_offsets(variables)[-1])
        return np.random.default_rng(self.seed).permutation(d)


@dataclasses.dataclass(frozen=True)
class Explicit(Ordering):
    """A user-given permutation of element indices (flat layout).

    Attributes:
        order: ``order[t]`` is the element visited at position ``t``; each of the ``D``
            elements exactly once.
    """

    order: tuple[int, ...] = ()
    kind: ClassVar[str] = "explicit"

    def __post_init__(self) -> None:
        object.__setattr__(self, "order", fields.int_tuple("Explicit", "order", self.order, 0))

    def permutation(self, variables: Sequence[Variable]) -> np.ndarray:
        return np.asarray(self.order, dtype=np.int64)


@dataclasses.dataclass(frozen=True)
class ByVariable(Ordering):
    """Variables in the named order; each variable's elements in ``within`` order.

    Attributes:
        names: every variable's name, once, in the order to visit them.
        within: the ordering of each variable's own elements.
    """

    names: tuple[str, ...] = ()
    within: Ordering = dataclasses.field(default_factory=Raster)
    kind: ClassVar[str] = "by_variable"

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", fields.str_tuple("ByVariable", "names", self.names, "a list of variable names"))
        _check_ordering("ByVariable", "within", self.within)

    def permutation(self, variables: Sequence[Variable]) -> np.ndarray:
        declared = [v.name for v in variables]
        for name in self.names:
            if name not in declared:
                raise SpecError(f"ByVariable ordering names unknown variable {name!r}; declared: {declared}.")
        if sorted(self.names) != sorted(declared):
            missing = sorted(set(declared) - set(self.names))
            raise SpecError(
                f"ByVariable ordering must list every variable exactly once; names={list(self.names)}, "
                f"missing={missing}."
            )
        offsets = variable_offsets(variables)
        parts = []
        for name in self.names:
            i = declared.index(name)
            parts.append(offsets[i] + self.within.permutation([variables[i]]))
        return np.concatenate(parts)


def check_permutation(perm: np.ndarray, num_elements: int, what: str = "ordering") -> np.ndarray:
    """Validate that ``perm`` is a permutation of ``0..num_elements-1``, naming the culprit."""
    perm = np.asarray(perm)
    if perm.ndim != 1 or perm.shape[0] != num_elements:
        raise SpecError(f"The {what} must list all {num_elements} elements once; got {perm.shape[0] if perm.ndim == 1 else perm.shape} entries.")
    if not np.issubdtype(perm.dtype, np.integer):
        raise SpecError(f"The {what} must contain integer element indices; got dtype {perm.dtype}.")
    bad = np.flatnonzero((perm < 0) | (perm >= num_elements))
    if bad.size:
        raise SpecError(
            f"The {what} has element index {int(perm[bad[0]])} at position {int(bad[0])}, "
            f"outside 0..{num_elements - 1}."
        )
    seen = np.full(num_elements, -1)
    for t, e in enumerate(perm):
        if seen[e] >= 0:
            raise SpecError(f"The {what} lists element {int(e)} twice (positions {int(seen[e])} and {t}).")
        seen[e] = t
    return perm.astype(np.int64)


#: Ordering kinds (the live registry table).
ORDERING_KINDS: dict[str, type[Ordering]] = kinds("ordering")
