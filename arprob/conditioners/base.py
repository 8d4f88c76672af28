"""The conditioner protocol: how distribution parameters are computed from earlier elements.

A *conditional spec* (``Table``, ``Logistic``, later ``MADE``, ...) is frozen, array-free
data in a ``Spec``. At compile time it receives a ``ConditionerContext`` — the elements
it must parametrise, which inputs each may read (derived from the step vector, see
``arprob.masks``), the bound head — and builds a ``Conditioner``: an equinox Module
holding the arrays.

A conditioner is unbatched (the model vmaps it) and implements

- ``__call__(x, feats, context) -> (n, P)``: parameters of all its elements in one
  parallel pass. ``x`` is the flat element vector ``(D,)``, ``feats`` its encoding
  ``(F,)`` (see ``arprob.features``), ``context`` an optional vector ``(C,)``.
- ``init_cache(context)`` and ``step(cache, x, feats, context, s, rows)`` for ancestral
  sampling: parameters of ``rows`` (this conditioner's elements in block ``s``, padded
  with ``n``), given ``x``/``feats`` in which every element of a step ``< s`` is filled.
  The default recomputes the full pass (the *naive* sampler); conditioners override it
  with an incremental cache that must give exactly the same parameters.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray, PyTree

from ..errors import SpecError
from ..heads import Head, default_head
from ..spec.layout import ElementLayout, Steps
from ..spec.variables import Variable


@dataclasses.dataclass(frozen=True, eq=False)
class ConditionerContext:
    """Everything a conditional spec needs to build its conditioner (static numpy data).

    Attributes:
        layout, steps: the spec's element layout and step vector.
        variable: the variable being parametrised.
        elements: its elements ``(n,)`` in the flat layout.
        allowed: ``(n, D)`` element-level connectivity from ``masks.allowed_inputs``.
        head: the bound head; the conditioner outputs ``head.num_params`` per element.
        context_size: length of the optional context vector (0 when none).
        block_rows: ``(S, m)`` rows of ``elements`` in each step, padded with ``n``.
    """

    layout: ElementLayout
    steps: Steps
    variable: Variable
    elements: np.ndarray
    allowed: np.ndarray
    head: Head
    context_size: int
    block_rows: np.ndarray

    @property
    def num_outputs(self) -> int:
        return len(self.elements)

    @property
    def feature_allowed(self) -> np.ndarray:
        """``(n, F)`` connectivity at the level of input features."""
        return self.allowed[:, self.layout.feature_element]

    @property
    def in_steps(self) -> np.ndarray:
        """Step of the element owning each input feature ``(F,)``."""
        return self.steps.step[self.layout.feature_element]

    @property
    def out_steps(self) -> np.ndarray:
        return self.steps.step[self.elements]


class Conditioner(eqx.Module):
    """Base class of runtime conditioners (see the module docstring)."""

    trainable: ClassVar[bool] = True

    def __call__(
        self, x: Float[Array, " d"], feats: Float[Array, " f"], context: Float[Array, " c"] | None
    ) -> Float[Array, "n p"]:
        raise NotImplementedError

    def init_cache(self, context: Float[Array, " c"] | None) -> PyTree:
        return None

    def step(
        self,
        cache: PyTree,
        x: Float[Array, " d"],
        feats: Float[Array, " f"],
        context: Float[Array, " c"] | None,
        s: Int[Array, ""],
        rows: Int[Array, " m"],
    ) -> tuple[Float[Array, "m p"], PyTree]:
        return self.naive_step(cache, x, feats, context, s, rows)

    def naive_step(self, cache, x, feats, context, s, rows):
        """One full parallel pass, keeping the rows of block ``s``."""
        return jnp.take(self(x, feats, context), rows, axis=0, mode="clip"), cache


@dataclasses.dataclass(frozen=True)
class ConditionalSpec:
    """Base class of declared conditional families (frozen, serialisable data)."""

    category: ClassVar[str] = "conditional"
    kind: ClassVar[str] = "conditional"

    @property
    def parent_names(self) -> tuple[str, ...] | None:
        """Declared parents (restricting the earlier elements an element may read), or None."""
        return getattr(self, "parents", None)

    def bind_head(self, variable: Variable) -> Head:
        head = getattr(self, "head", None)
        return default_head(variable) if head is None else head.bind(variable)

    def validate(self, variable: Variable, layout: ElementLayout, steps: Steps, context_size: int) -> None:
        """Family-specific checks at spec construction; raise ``SpecError`` naming the culprit."""

    def build(self, ctx: ConditionerContext, *, key: PRNGKeyArray) -> Conditioner:
        raise NotImplementedError


def check_parent_names(name: str, parents: tuple[str, ...] | None, layout: ElementLayout) -> None:
    if parents is None:
        return
    declared = [v.name for v in layout.variables]
    for p in parents:
        if p not in declared:
            raise SpecError(f"Conditional of {name!r} names unknown parent {p!r}; declared: {declared}.")
    if len(set(parents)) != len(parents):
        raise SpecError(f"Conditional of {name!r} lists a parent twice: {list(parents)}.")
