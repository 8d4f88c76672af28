"""arprob models as NumPyro distributions (``ar.numpyro.as_distribution``).

``as_distribution(model, context=None)`` is a ``numpyro.distributions.Distribution`` over
the model's flat element vector:

- ``event_shape = (D,)`` in the spec's element layout (``model.to_flat`` /
  ``model.to_dict`` convert); ``batch_shape = context.shape[:-1]`` (``()`` without a
  context or with one context vector ``(C,)``).
- ``log_prob(x)`` is the model's exact ``sum_e log p(x_e | x_<e)``, for ``x`` of shape
  ``(*sample, *batch, D)``; gradients flow to ``x`` (real elements) and to the model's
  arrays, so it serves as a NUTS prior and as an SVI likelihood.
- ``sample(key, sample_shape)`` is the model's ancestral sampler;
  ``sample_with_intermediates`` also returns the per-element terms ``log p(x_e | x_<e)``
  of the draw, which ``log_prob(x, intermediates)`` then sums instead of re-running the
  network.
- ``support``: all real -> ``independent(real, 1)``; all discrete ->
  ``independent(integer_interval(0, k_e - 1), 1)`` (``boolean`` when all binary); mixed
  discrete and real -> ``MixedSupport``, an arprob constraint that checks each element
  (integer in range, or finite real) and is neither discrete nor continuous for NumPyro:
  such a site can be observed (``obs=``) but not be a latent site of MCMC or SVI (NumPyro
  raises ``NotImplementedError`` when it looks for a bijection to it).

Inside a NumPyro model wrap the arprob model with ``numpyro.contrib.module.eqx_module``
to learn its arrays with SVI (see ``docs/numpyro.md``).
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from ..model import Model, flat_log_prob, flat_log_prob_terms, flat_sample

if TYPE_CHECKING:
    from numpyro.distributions import Distribution

__all__ = ["ARDistribution", "MixedSupport", "as_distribution"]  # noqa: F822  (the first two: __getattr__)


@functools.cache
def _classes():
    """Define the NumPyro classes on first use, so that ``import arprob`` does not import
    NumPyro (about a second); ``ARDistribution`` and ``MixedSupport`` resolve through
    ``__getattr__``."""
    from numpyro.distributions import Distribution, constraints
    from numpyro.distributions.util import validate_sample

    class MixedSupport(constraints.Constraint):
        """Per-element support of a vector mixing discrete and real elements (``event_dim=1``).

        ``num_values[e]`` is ``k_e`` for a discrete element (values ``0..k_e-1``) and 0 for a
        real one. ``is_discrete`` is False, and no bijection is registered for it.
        """

        event_dim = 1

        def __init__(self, num_values):
            self.num_values = np.asarray(num_values)

        def __call__(self, x):
            k = jnp.asarray(self.num_values)
            discrete = k > 0
            ok_disc = (x == jnp.round(x)) & (x >= 0) & (x < k)
            ok = jnp.where(discrete, ok_disc, jnp.isfinite(x))
            return jnp.all(ok, axis=-1)

        def feasible_like(self, prototype):
            return jnp.zeros_like(prototype)

        def tree_flatten(self):
            return (), ((), {"num_values": self.num_values})

        def __eq__(self, other):
            return isinstance(other, MixedSupport) and np.array_equal(self.num_values, other.num_values)

        def __repr__(self):
            return f"MixedSupport(num_values={self.num_values.tolist()})"


    def _support_of(model: Model):
        k = model.spec.layout.num_values
        if np.all(k == 0):
            return constraints.independent(constraints.real, 1)
        if np.all(k > 0):
            if np.all(k == 2) and all(v.kind == "binary" for v in model.spec.variables):
                return constraints.independent(constraints.boolean, 1)
            upper = int(k[0]) - 1 if np.all(k == k[0]) else jnp.asarray(k - 1)
            return constraints.independent(constraints.integer_interval(0, upper), 1)
        return MixedSupport(k)


    class ARDistribution(Distribution):
        """A compiled arprob ``Model`` as a NumPyro distribution (see the module docstring)."""

        arg_constraints: ClassVar[dict] = {}
        pytree_data_fields = ("model", "context")

        def __init__(self, model: Model, context=None, *, validate_args=None):
            if not isinstance(model, Model):
                raise TypeError(f"as_distribution expects a compiled arprob Model; got {type(model).__name__}.")
            spec = model.spec
            if context is not None:
                context = jnp.asarray(context, jnp.result_type(float))
                if context.ndim == 0 or context.shape[-1] != spec.context_size:
                    raise ValueError(f"context: expected shape (..., {spec.context_size}); got {context.shape}.")
            elif spec.context_size:
                raise ValueError(f"The model takes a context of size {spec.context_size}; pass context=.")
            self.model = model
            self.context = context
            batch_shape = () if context is None else tuple(context.shape[:-1])
            super().__init__(batch_shape=batch_shape, event_shape=(spec.num_elements,), validate_args=validate_args)

        @property
        def support(self):
            return _support_of(self.model)

        @property
        def has_enumerate_support(self) -> bool:
            return False

        def _contexts(self, lead: tuple[int, ...]):
            """Context broadcast to ``(*lead, *batch, C)`` and flattened, or None."""
            if self.context is None:
                return None
            ctx = jnp.broadcast_to(self.context, (*lead, *self.batch_shape, self.context.shape[-1]))
            return ctx.reshape(-1, ctx.shape[-1])

        def sample_with_intermediates(self, key, sample_shape=()):
            shape = tuple(sample_shape) + self.batch_shape
            n = math.prod(shape)
            if n == 0:
                empty = jnp.zeros((*shape, *self.event_shape), jnp.result_type(float))
                return empty, [empty]
            x = flat_sample(self.model, key, n, self._contexts(tuple(sample_shape)), False)
            terms = flat_log_prob_terms(self.model, x, self._contexts(tuple(sample_shape)))
            d = self.event_shape[0]
            return x.reshape(*shape, d), [terms.reshape(*shape, d)]

        def sample(self, key, sample_shape=()):
            shape = tuple(sample_shape) + self.batch_shape
            n = math.prod(shape)
            d = self.event_shape[0]
            if n == 0:
                return jnp.zeros((*shape, d), jnp.result_type(float))
            x = flat_sample(self.model, key, n, self._contexts(tuple(sample_shape)), False)
            return x.reshape(*shape, d)

        @validate_sample
        def log_prob(self, value, intermediates=None):
            if intermediates:
                return jnp.sum(intermediates[0], axis=-1)
            value = jnp.asarray(value, jnp.result_type(float))
            d = self.event_shape[0]
            if value.ndim == 0 or value.shape[-1] != d:
                raise ValueError(f"log_prob: expected values of shape (..., {d}); got {value.shape}.")
            shape = jax.lax.broadcast_shapes(value.shape[:-1], self.batch_shape)
            lead = shape[: len(shape) - len(self.batch_shape)]
            x = jnp.broadcast_to(value, (*shape, d)).reshape(-1, d)
            if x.shape[0] == 0:
                return jnp.zeros(shape, x.dtype)
            return flat_log_prob(self.model, x, self._contexts(lead)).reshape(shape)

        def tree_flatten(self):
            # the model is an equinox Module (a pytree); its static parts ride in the treedef
            return (self.model, self.context), None

        @classmethod
        def tree_unflatten(cls, aux_data, params):
            model, context = params
            d = cls.__new__(cls)
            d.model, d.context = model, context
            batch_shape = () if context is None or getattr(context, "ndim", 0) < 2 else tuple(context.shape[:-1])
            Distribution.__init__(d, batch_shape=batch_shape, event_shape=(model.spec.num_elements,))
            return d

    return ARDistribution, MixedSupport


def __getattr__(name: str):
    if name == "ARDistribution":
        return _classes()[0]
    if name == "MixedSupport":
        return _classes()[1]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def as_distribution(model: Model, context=None, *, validate_args=None) -> Distribution:
    """The model as a ``numpyro.distributions.Distribution`` over flat ``(D,)`` vectors.

    **Arguments:**
        model: a compiled arprob ``Model``.
        context: optional ``(C,)`` or ``(*batch, C)`` conditioning vectors (the batch
            shape of the distribution).
        validate_args: NumPyro's argument/sample validation flag.
    """
    return _classes()[0](model, context, validate_args=validate_args)
