"""The conditioner protocol: how distribution parameters are computed from earlier elements.

A *conditional spec* (``Table``, ``Logistic``, ``MADE``, ...) is frozen, array-free data
in a ``Spec`` (``arprob.spec.conditional.ConditionalSpec``; a subclass that sets ``kind``
registers itself, so a new family needs no central table). At compile time it receives a ``ConditionerContext`` — the elements
it must parametrise, which inputs each may read (derived from the step vector, see
``arprob.masks``), the bound head — and builds a ``Conditioner``: an equinox Module
holding the arrays.

A conditioner is unbatched (the model vmaps it) and implements

- ``__call__(x, feats, context, key=None) -> (n, P)``: parameters of all its elements in
  one parallel pass. ``x`` is the flat element vector ``(D,)``, ``feats`` its encoding
  ``(F,)`` (see ``arprob.features``), ``context`` an optional vector ``(C,)``; ``key`` is
  given only while training, for dropout (``dropout``; scoring and sampling pass none).
- ``init_cache(context)`` and ``block_params(cache, x, feats, context, s, rows)`` for
  ancestral sampling (``step`` is its deprecated name): parameters of ``rows`` (this
  conditioner's elements in block ``s``, padded with ``n``), given ``x``/``feats`` in which every element of a step ``< s`` is filled.
  The default recomputes the full pass (the *naive* sampler); conditioners override it
  with an incremental cache that must give exactly the same parameters.
- optionally ``has_closed_form`` / ``closed_form_stats`` / ``with_closed_form``: a fit in
  closed form from summed sufficient statistics, which ``fit`` uses before any gradient
  step (tables: counts; ``trainable = False`` keeps the gradient off such a conditioner).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray, PyTree

from ..heads import Head
from ..masks import allowed_inputs
from ..spec import fields
from ..spec.conditional import ConditionalSpec as ConditionalSpec
from ..spec.layout import ElementLayout, Steps
from ..spec.layout import check_parent_names as check_parent_names
from ..spec.variables import Variable


@dataclasses.dataclass(frozen=True, eq=False)
class ConditionerContext:
    """Everything a conditional spec needs to build its conditioner (static numpy data).

    Attributes:
        layout, steps: the spec's element layout and step vector.
        variable: the variable being parametrised.
        elements: its elements ``(n,)`` in the flat layout.
        parents: the declared parent variables (``None``: every earlier element).
        head: the bound head; the conditioner outputs ``head.num_params`` per element.
        context_size: length of the optional context vector (0 when none).
        block_rows: ``(S, m)`` rows of ``elements`` in each step, padded with ``n``.
    """

    layout: ElementLayout
    steps: Steps
    variable: Variable
    elements: np.ndarray
    parents: Sequence[str] | None
    head: Head
    context_size: int
    block_rows: np.ndarray

    @property
    def num_outputs(self) -> int:
        return len(self.elements)

    @functools.cached_property
    def allowed(self) -> np.ndarray:
        """``(n, D)`` element-level connectivity (``masks.allowed_inputs``), built on first use:
        only conditioners with dense connectivity ask for it (at D = 90,000 it is 8 GB)."""
        return allowed_inputs(self.layout, self.steps, self.elements, self.parents)

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


def check_dropout(owner: str, rate: object) -> None:
    """A dropout rate must be a number in ``[0, 1)``."""
    fields.number(owner, "dropout", rate, minimum=0.0, below=1.0, expected="a number in [0, 1)")


def dropout(h: Array, rate: float, key: PRNGKeyArray | None) -> Array:
    """Inverted dropout: each unit kept with probability ``1 - rate`` and scaled by
    ``1 / (1 - rate)``, so ``E[dropout(h)] = h``. The identity without a key (scoring,
    sampling) or at ``rate = 0``: nothing changes where dropout is off."""
    if key is None or rate == 0.0:
        return h
    keep = jax.random.bernoulli(key, 1.0 - rate, h.shape)
    return jnp.where(keep, h / (1.0 - rate), jnp.zeros_like(h))


class Conditioner(eqx.Module):
    """Base class of runtime conditioners (see the module docstring)."""

    trainable: ClassVar[bool] = True

    def __call__(
        self,
        x: Float[Array, " d"],
        feats: Float[Array, " f"],
        context: Float[Array, " c"] | None,
        key: PRNGKeyArray | None = None,
    ) -> Float[Array, "n p"]:
        raise NotImplementedError

    @property
    def uses_dropout(self) -> bool:
        """True when training should pass ``key`` (a conditioner with ``dropout > 0``)."""
        return getattr(self, "dropout_rate", 0.0) > 0.0

    def init_cache(self, context: Float[Array, " c"] | None) -> PyTree:
        return None

    def block_params(
        self,
        cache: PyTree,
        x: Float[Array, " d"],
        feats: Float[Array, " f"],
        context: Float[Array, " c"] | None,
        s: Int[Array, ""],
        rows: Int[Array, " m"],
    ) -> tuple[Float[Array, "m p"], PyTree]:
        """Parameters of ``rows`` (this conditioner's elements in block ``s``) from the cache,
        given ``x``/``feats`` filled for every step ``< s``; returns them and the new cache."""
        return self.naive_block_params(cache, x, feats, context, s, rows)

    def naive_block_params(self, cache, x, feats, context, s, rows):
        """One full parallel pass, keeping the rows of block ``s`` (the reference)."""
        return jnp.take(self(x, feats, context), rows, axis=0, mode="clip"), cache

    # deprecated names (one release): "step" also meant an autoregressive step and a gradient update
    def step(self, cache, x, feats, context, s, rows):
        """Deprecated alias of ``block_params`` (what the sampler calls)."""
        return self.block_params(cache, x, feats, context, s, rows)

    def naive_step(self, cache, x, feats, context, s, rows):
        """Deprecated alias of ``naive_block_params``."""
        return self.naive_block_params(cache, x, feats, context, s, rows)

    # -------------------------------------------------- closed-form fitting (optional)
    def has_closed_form(self) -> bool:
        """True when ``fit`` should fit this conditioner in closed form (``closed_form_stats``
        summed over the data, then ``with_closed_form``) instead of by gradient."""
        return False

    def closed_form_stats(self, x: Float[Array, "b d"]) -> PyTree:
        """Sufficient statistics of a batch of flat data (summed over batches by ``fit``)."""
        raise NotImplementedError

    def with_closed_form(self, stats: PyTree) -> "Conditioner":
        """The fitted conditioner from the summed statistics."""
        raise NotImplementedError
