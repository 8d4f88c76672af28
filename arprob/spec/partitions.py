"""Partitions: cut the ordered elements into S consecutive blocks (autoregressive steps).

``partition.blocks(variables, perm)[t]`` is the block of the element at position ``t``:
non-decreasing, starting at 0, increasing by at most 1. Elements of one block are drawn
together and may not condition on each other.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from ..errors import SpecError
from . import fields
from .orderings import variable_offsets
from .registry import Registered, kinds
from .variables import Variable


def _element_keys(variables: Sequence[Variable], key_fn) -> list:
    keys = []
    for i, v in enumerate(variables):
        for j, idx in enumerate(np.ndindex(*v.shape) if v.shape else [()]):
            keys.append(key_fn(i, v, j, idx))
    return keys


@dataclasses.dataclass(frozen=True)
class Partition(Registered):
    """Base class of partitions."""

    category: ClassVar[str] = "partition"
    kind: ClassVar[str] = "partition"

    def blocks(self, variables: Sequence[Variable], perm: np.ndarray) -> np.ndarray:
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class Singletons(Partition):
    """One element per step (the default)."""

    kind: ClassVar[str] = "singletons"

    def blocks(self, variables, perm):
        return np.arange(len(perm))


@dataclasses.dataclass(frozen=True)
class FixedSize(Partition):
    """Consecutive blocks of ``size`` elements (the last may be shorter).

    Attributes:
        size: elements per block (a positive integer).
    """

    size: int = 1
    kind: ClassVar[str] = "fixed_size"

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", fields.positive_int("FixedSize", "size", self.size))

    def blocks(self, variables, perm):
        return np.arange(len(perm)) // self.size


@dataclasses.dataclass(frozen=True)
class _Grouped(Partition):
    """Elements that share a key form one block; the ordering must keep them together."""

    def key(self, var_index: int, var: Variable, local: int, index: tuple[int, ...]):
        raise NotImplementedError

    def blocks(self, variables, perm):
        keys = _element_keys(variables, self.key)
        out = np.zeros(len(perm), dtype=np.int64)
        first_position: dict = {}
        block = -1
        for t, e in enumerate(perm):
            k = keys[e]
            if t == 0 or k != keys[perm[t - 1]]:
                if k in first_position:
                    raise SpecError(
                        f"{type(self).__name__} partition: the group {self.describe(variables, k)} is split by "
                        f"the ordering (positions {first_position[k]} and {t}, element {int(e)}); use an "
                        "ordering that keeps each group consecutive."
                    )
                first_position[k] = t
                block += 1
            out[t] = block
        return out

    def describe(self, variables, key) -> str:
        return f"{variables[key[0]].name!r}{list(key[1:])}"


@dataclasses.dataclass(frozen=True)
class PerPixel(_Grouped):
    """One block per pixel: the channels (last axis) of a variable with ``ndim >= 3``."""

    kind: ClassVar[str] = "per_pixel"

    def key(self, var_index, var, local, index):
        return (var_index, *index[:-1]) if len(index) >= 3 else (var_index, local)


@dataclasses.dataclass(frozen=True)
class PerRow(_Grouped):
    """One block per row (first axis) of each variable with ``ndim >= 2``; a vector is one row."""

    kind: ClassVar[str] = "per_row"

    def key(self, var_index, var, local, index):
        if len(index) >= 2:
            return (var_index, index[0])
        return (var_index,) if len(index) == 1 else (var_index, local)


@dataclasses.dataclass(frozen=True)
class PerVariable(_Grouped):
    """One block per variable."""

    kind: ClassVar[str] = "per_variable"

    def key(self, var_index, var, local, index):
        return (var_index,)


@dataclasses.dataclass(frozen=True)
class ExplicitBlocks(Partition):
    """User-given blocks of element indices; each must be consecutive in the ordering.

    Attributes:
        groups: one list of element indices (flat layout) per block; every element in
            exactly one block.
    """

    groups: tuple[tuple[int, ...], ...] = ()
    kind: ClassVar[str] = "explicit_blocks"

    def __post_init__(self) -> None:
        groups = fields.sequence("ExplicitBlocks", "groups", self.groups, "a list of lists of element indices")
        object.__setattr__(self, "groups", tuple(fields.int_tuple("ExplicitBlocks", f"groups[{b}]", g, 0)
                                                 for b, g in enumerate(groups)))

    def blocks(self, variables, perm):
        d = int(variable_offsets(variables)[-1])
        owner = np.full(d, -1, dtype=np.int64)
        for b, group in enumerate(self.groups):
            if not group:
                raise SpecError(f"ExplicitBlocks: block {b} is empty.")
            for e in group:
                if not 0 <= e < d:
                    raise SpecError(f"ExplicitBlocks: block {b} has element {e}, outside 0..{d - 1}.")
                if owner[e] >= 0:
                    raise SpecError(f"ExplicitBlocks: element {e} is in block {owner[e]} and block {b}.")
                owner[e] = b
        missing = np.flatnonzero(owner < 0)
        if missing.size:
            raise SpecError(f"ExplicitBlocks: element {int(missing[0])} is in no block ({missing.size} missing).")
        by_position = owner[perm]
        out = np.zeros(len(perm), dtype=np.int64)
        done: set[int] = set()
        block = -1
        for t, b in enumerate(by_position):
            if t == 0 or b != by_position[t - 1]:
                if b in done:
                    raise SpecError(
                        f"ExplicitBlocks: block {int(b)} is not consecutive in the ordering "
                        f"(element {int(perm[t])} at position {t}); reorder or change the blocks."
                    )
                done.add(int(b))
                block += 1
            out[t] = block
        return out


#: Partition kinds (the live registry table).
PARTITION_KINDS: dict[str, type[Partition]] = kinds("partition")
