"""Heads: the distribution of one element given its parameter vector.

A head is a frozen, array-free description. It is unbatched over the batch axis but
works on all the elements of a component at once:

- ``log_prob(params: (n, P), values: (n,)) -> (n,)``
- ``sample_uniform(u: (m, U), params: (m, P)) -> (m,)``: one draw per row from ``U =
  num_uniforms`` independent U[0, 1) numbers per row, by inverse CDFs. The rows are the
  elements of one block, so a head may couple them (the channels of a pixel).
  ``sample(key, params)`` draws those uniforms itself; the model's sampler draws all of
  them before its loop (one vectorised call instead of a generator call per step).

``bind(variable)`` returns a copy with sizes filled from the variable and raises if
the head cannot model that variable.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from ..errors import SpecError
from ..spec.registry import Registered
from ..spec.variables import Variable

if TYPE_CHECKING:
    from ..spec.layout import ElementLayout, Steps


@dataclasses.dataclass(frozen=True)
class Head(Registered):
    """Base class of heads; a subclass that sets ``kind`` registers itself (``arprob.spec.registry``)."""

    category: ClassVar[str] = "head"
    kind: ClassVar[str] = "head"
    supports: ClassVar[tuple[str, ...]] = ()
    #: U[0, 1) numbers one draw consumes per row (``sample_uniform``)
    num_uniforms: ClassVar[int] = 1

    def bind(self, variable: Variable) -> "Head":
        if variable.kind not in self.supports:
            raise SpecError(
                f"Variable {variable.name!r} is {variable.kind}; head {type(self).__name__} models "
                f"{' or '.join(self.supports)} variables."
            )
        return self

    def validate(self, variable: Variable, layout: "ElementLayout", steps: "Steps") -> None:
        """Checks against the layout and step vector (e.g. a head coupling the channels of
        a pixel needs each pixel in one block); raise ``SpecError`` naming the culprit."""

    @property
    def num_params(self) -> int:
        raise NotImplementedError

    @property
    def is_discrete(self) -> bool:
        return True

    def log_prob(self, params: Float[Array, "n p"], values: Float[Array, " n"]) -> Float[Array, " n"]:
        raise NotImplementedError

    @property
    def coupled_rows(self) -> int:
        """Rows of a block that depend on each other through the head (the ``C`` channels of
        a pixel): a choice rule picks row ``c`` of each group after rows ``< c``. 1: none."""
        return 1

    @property
    def num_levels(self) -> int:
        """Discrete heads: the number of values ``L`` (levels ``0..L-1``)."""
        raise NotImplementedError(f"{type(self).__name__} is not a discrete head: it has no levels to enumerate.")

    def level_log_probs(
        self,
        params: Float[Array, "n p"],
        values: Float[Array, " n"] | None = None,
        levels: Int[Array, "n w"] | None = None,
    ) -> Float[Array, "n l"]:
        """Discrete heads: ``log p(x = v)`` for every level ``v`` of each row, ``(n, L)``, or
        for the given ``levels`` of each row, ``(n, W)`` (in range). Heads with
        ``coupled_rows > 1`` read the earlier rows of each group from ``values``."""
        raise NotImplementedError(f"{type(self).__name__} is not a discrete head: it has no levels to enumerate.")

    def level_columns(
        self, params: Float[Array, "n p"], values: Float[Array, " n"] | None, levels: Sequence[Array]
    ) -> list[Float[Array, " n"]]:
        """``level_log_probs`` of a few levels per row, one ``(n,)`` column per entry of
        ``levels`` (each ``(n,)``; out-of-range levels give any finite value or ``-inf``, the
        caller masks them). Heads override it where computing column by column is faster
        (``DiscretizedLogisticMixture``)."""
        grid = jnp.stack([jnp.clip(v, 0, self.num_levels - 1).astype(jnp.int32) for v in levels], axis=-1)
        table = self.level_log_probs(params, values, grid)
        return [table[:, w] for w in range(len(levels))]

    def sample(self, key: PRNGKeyArray, params: Float[Array, "m p"]) -> Float[Array, " m"]:
        """One draw per row."""
        u = jax.random.uniform(key, (params.shape[0], self.num_uniforms), params.dtype)
        return self.sample_uniform(u, params)

    def sample_uniform(self, u: Float[Array, "m u"], params: Float[Array, "m p"]) -> Float[Array, " m"]:
        """One draw per row from the uniforms ``u`` (see the module docstring)."""
        raise NotImplementedError

    def split_params(self, params: Float[Array, "n p"]) -> dict[str, Float[Array, "n ..."]]:
        """Named views of the parameter vector (for users and tests)."""
        return {"params": params}


def categorical_from_uniform(u: Float[Array, " m"], logits: Float[Array, "m k"]) -> Int[Array, " m"]:
    """Inverse-CDF categorical draw per row: the number of classes ``j < k - 1`` whose
    cumulative probability is ``<= u * total`` (``total`` the float sum of the
    probabilities, ~1), so ``P(j) = cdf_j - cdf_{j-1}`` and a class of probability 0 is
    never drawn. One uniform per row, where Gumbel-max needs ``k``."""
    cdf = jnp.cumsum(jax.nn.softmax(logits, axis=-1), axis=-1)
    return jnp.sum(cdf[:, :-1] <= u[:, None] * cdf[:, -1:], axis=-1)


def logistic_from_uniform(u: Float[Array, "..."]) -> Float[Array, "..."]:
    """Standard logistic ``log(u / (1 - u))``, ``u`` floored at the smallest normal float
    (as ``jax.random.logistic``)."""
    u = jnp.maximum(u, jnp.finfo(u.dtype).tiny)
    return jnp.log(u) - jnp.log1p(-u)


def normal_from_uniform(u: Float[Array, "..."]) -> Float[Array, "..."]:
    """Standard normal ``sqrt(2) erfinv(2u - 1)`` on ``[nextafter(-1, 0), 1)`` (as ``jax.random.normal``)."""
    lo = np.nextafter(np.array(-1.0, u.dtype), np.array(0.0, u.dtype))
    return np.sqrt(2.0).astype(u.dtype) * jax.lax.erf_inv(lo + (1.0 - lo) * u)
