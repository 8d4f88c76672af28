"""Declared random variables: a name, a shape and a domain. No arrays live here.

A variable of shape ``(H, W, C)`` is one variable with ``H*W*C`` scalar *elements*.
Flattened in declaration order (each variable in C order), the spec has ``D`` elements;
that flat order is the *element layout* every flat data array uses.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

from . import fields
from .registry import Registered, kinds


def _owner(var: "Variable") -> str:
    name = var.name if isinstance(var.name, str) else None
    return type(var).__name__ + ("" if name is None else f" {name!r}")


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
        fields.identifier(type(self).__name__, "name", self.name)
        object.__setattr__(self, "shape", fields.int_tuple(_owner(self), "shape", self.shape, 1))

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
    (as a Bayesian-network file does).

    Attributes:
        num_categories: ``k >= 2``, the number of values.
        states: ``k`` distinct names of the values, in order (``None``: unnamed).
    """

    num_categories: int = 2
    states: tuple[str, ...] | None = None
    kind: ClassVar[str] = "categorical"

    def __init__(self, name: str, num_categories: int, shape: tuple[int, ...] = (), states=None):
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "num_categories", num_categories)
        object.__setattr__(self, "states", states)
        self.__post_init__()

    def __post_init__(self) -> None:
        super().__post_init__()
        owner = _owner(self)
        k = fields.integer(owner, "num_categories", self.num_categories, 2)
        object.__setattr__(self, "num_categories", k)
        if self.states is not None:
            expected = f"{k} distinct non-empty state names"
            s = fields.str_tuple(owner, "states", self.states, expected)
            if len(s) != k or len(set(s)) != len(s) or not all(s):
                raise fields.FieldError(owner, "states", expected, list(s))
            object.__setattr__(self, "states", s)

    @property
    def num_values(self) -> int:
        return self.num_categories


@dataclasses.dataclass(frozen=True)
class Ordinal(Variable):
    """Ordered integer levels {0, ..., levels - 1}, e.g. 8-bit pixels (``levels=256``).

    Attributes:
        levels: ``L``, the number of levels (``2..65536``).
    """

    levels: int = 2
    kind: ClassVar[str] = "ordinal"

    def __init__(self, name: str, levels: int, shape: tuple[int, ...] = ()):
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "levels", levels)
        self.__post_init__()

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "levels", fields.integer(_owner(self), "levels", self.levels, 2, 65536))

    @property
    def num_values(self) -> int:
        return self.levels


@dataclasses.dataclass(frozen=True)
class Real(Variable):
    """Real-valued elements."""

    kind: ClassVar[str] = "real"


#: Variable kinds (the live registry table).
VARIABLE_KINDS: dict[str, type[Variable]] = kinds("variable")
