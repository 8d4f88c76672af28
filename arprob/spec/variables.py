"""Declared random variables: a name, a shape and a domain. No arrays live here.

A variable of shape ``(H, W, C)`` is one variable with ``H*W*C`` scalar *elements*.
Flattened in declaration order (each variable in C order), the spec has ``D`` elements;
that flat order is the *element layout* every flat data array uses.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

from ..errors import SpecError
from .registry import Registered, kinds


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not name.isidentifier():
        raise SpecError(f"Expected a variable name that is a Python identifier; got {name!r}.")


def _check_shape(name: str, shape: object) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in shape)  # type: ignore[union-attr]
    except (TypeError, ValueError, OverflowError):  # not a sequence; 'a', inf or nan inside
        raise SpecError(f"Variable {name!r}: expected a shape tuple; got {shape!r}.") from None
    if any(s <= 0 for s in shape):
        raise SpecError(f"Variable {name!r}: every dimension must be positive; got {shape}.")
    return shape


@dataclasses.dataclass(frozen=True)
class Variable(Registered):
    """Base class of declared variables.

    Attributes:
        name: identifier used in data mappings, conditionals and errors.
        shape: array shape; ``()`` for a scalar.
    """

    name: str
    shape: tuple[int, ...] = ()
    category: ClassVar[str] = "variable"
    kind: ClassVar[str] = "variable"

    def __post_init__(self) -> None:
        _check_name(self.name)
        object.__setattr__(self, "shape", _check_shape(self.name, self.shape))

    @property
    def size(self) -> int:
        """Number of scalar elements."""
        return math.prod(self.shape)

    @property
    def num_values(self) -> int | None:
        """Number of values of a discrete element (``None`` for a real variable)."""
        return None

    @property
    def is_discrete(self) -> bool:
        return self.num_values is not None


@dataclasses.dataclass(frozen=True)
class Binary(Variable):
    """Elements in {0, 1}."""

    kind: ClassVar[str] = "binary"

    @property
    def num_values(self) -> int:
        return 2


@dataclasses.dataclass(frozen=True)
class Categorical(Variable):
    """Unordered elements in {0, ..., num_categories - 1}; optional ``states`` name the values
    (as a Bayesian-network file does)."""

    num_categories: int = 2
    states: tuple[str, ...] | None = None
    kind: ClassVar[str] = "categorical"

    def __init__(self, name: str, num_categories: int, shape: tuple[int, ...] = (), states=None):
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "num_categories", num_categories)
        object.__setattr__(self, "states", None if states is None else tuple(states))
        self.__post_init__()

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.num_categories, int) or self.num_categories < 2:
            raise SpecError(
                f"Variable {self.name!r}: expected num_categories >= 2; got {self.num_categories!r}."
            )
        s = self.states
        if s is not None and (len(s) != self.num_categories or len(set(s)) != len(s)
                              or not all(isinstance(t, str) and t for t in s)):
            raise SpecError(f"Variable {self.name!r}: expected {self.num_categories} distinct state names; got {s!r}.")

    @property
    def num_values(self) -> int:
        return self.num_categories


@dataclasses.dataclass(frozen=True)
class Ordinal(Variable):
    """Ordered integer levels {0, ..., levels - 1}, e.g. 8-bit pixels (``levels=256``)."""

    levels: int = 2
    kind: ClassVar[str] = "ordinal"

    def __init__(self, name: str, levels: int, shape: tuple[int, ...] = ()):
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "levels", levels)
        self.__post_init__()

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.levels, int) or not 2 <= self.levels <= 65536:
            raise SpecError(f"Variable {self.name!r}: expected 2 <= levels <= 65536; got {self.levels!r}.")

    @property
    def num_values(self) -> int:
        return self.levels


@dataclasses.dataclass(frozen=True)
class Real(Variable):
    """Real-valued elements."""

    kind: ClassVar[str] = "real"


#: Variable kinds (the live registry table).
VARIABLE_KINDS: dict[str, type[Variable]] = kinds("variable")
