"""``Spec``: variables + ordering + partition + a conditional family per variable.

A ``Spec`` is frozen, hashable, array-free data, validated when built. Its element
layout and step vector are derived once (``spec.layout``, ``spec.steps``).
"""

from __future__ import annotations

import collections
import dataclasses
import functools
from collections.abc import Mapping

from ..errors import SpecError
from . import fields
from .conditional import ConditionalSpec, default_conditional
from .layout import ElementLayout, Steps, compute_steps, element_layout
from .orderings import Ordering, Raster
from .partitions import Partition, Singletons
from .variables import Variable


@dataclasses.dataclass(frozen=True)
class Spec:
    """A declared autoregressive model.

    Attributes:
        variables: the variables, in the order that defines the flat element layout.
        ordering: the order in which elements are generated (default raster).
        partition: how ordered elements are grouped into steps (default one per step).
        conditionals: variable name -> conditional family; variables not named get
            ``Logistic()`` (FVSBN / softmax regression / linear-Gaussian).
        context_size: length of an optional conditioning vector given to every
            conditional (0 for an unconditional model).

    !!! Example
        ```python
        spec = ar.Spec(
            variables=[ar.Categorical("weather", 3), ar.Binary("sprinkler"), ar.Real("temp")],
            conditionals={"weather": ar.Table(), "sprinkler": ar.Table(parents=["weather"])},
        )
        ```
    """

    variables: tuple[Variable, ...]
    ordering: Ordering = dataclasses.field(default_factory=Raster)
    partition: Partition = dataclasses.field(default_factory=Singletons)
    conditionals: tuple[tuple[str, ConditionalSpec], ...] = ()
    context_size: int = 0

    def __post_init__(self) -> None:
        variables = tuple(self.variables)
        if not variables:
            raise SpecError("A spec needs at least one variable.")
        for i, v in enumerate(variables):
            if not isinstance(v, Variable):
                raise SpecError(f"variables[{i}] is {v!r}; expected an arprob variable (Binary, Categorical, ...).")
        names = [v.name for v in variables]
        if len(set(names)) != len(names):  # one pass: a crafted file may declare 100,000 variables
            counts = collections.Counter(names)
            name = next(n for n in names if counts[n] > 1)
            raise SpecError(f"Variable name {name!r} is declared {counts[name]} times.")
        from .limits import check_num_elements  # any shape can be declared: refuse before the layout exists

        check_num_elements(sum(v.size for v in variables))
        if not isinstance(self.ordering, Ordering):
            raise SpecError(f"ordering must be an arprob Ordering; got {self.ordering!r}.")
        if not isinstance(self.partition, Partition):
            raise SpecError(f"partition must be an arprob Partition; got {self.partition!r}.")
        object.__setattr__(self, "context_size", fields.non_negative_int("Spec", "context_size", self.context_size))
        given = dict(self.conditionals.items() if isinstance(self.conditionals, Mapping) else self.conditionals)
        known = set(names)
        for name, cond in given.items():
            if name not in known:
                raise SpecError(f"conditionals names unknown variable {name!r}; declared: {names}.")
            if not isinstance(cond, ConditionalSpec):
                raise SpecError(f"conditionals[{name!r}] is {cond!r}; expected e.g. ar.Table() or ar.Logistic().")
        conditionals = tuple((name, given[name] if name in given else default_conditional()) for name in names)
        object.__setattr__(self, "variables", variables)
        object.__setattr__(self, "conditionals", conditionals)
        self._validate_conditionals()

    def _validate_conditionals(self) -> None:
        layout, steps = self.layout, self.steps
        for var, (name, cond) in zip(self.variables, self.conditionals):
            cond.check(name, var, layout, steps, self.context_size)

    @functools.cached_property
    def layout(self) -> ElementLayout:
        return element_layout(self.variables)

    @functools.cached_property
    def steps(self) -> Steps:
        return compute_steps(self.variables, self.ordering, self.partition)

    @property
    def num_elements(self) -> int:
        return self.layout.num_elements

    @property
    def conditional(self) -> dict[str, ConditionalSpec]:
        return dict(self.conditionals)

    def variable(self, name: str) -> Variable:
        return self.variables[self.layout.index_of(name)]

    def replace(self, **changes) -> "Spec":
        """A copy with fields replaced (e.g. another ordering), validated anew."""
        if "conditionals" not in changes:
            changes["conditionals"] = self.conditionals
        return dataclasses.replace(self, **changes)

