"""Heads: the distribution of one element given its parameter vector.

A head is a frozen, array-free description. It is unbatched over the batch axis but
works on all the elements of a component at once:

- ``log_prob(params: (n, P), values: (n,)) -> (n,)``
- ``sample(key, params: (m, P)) -> (m,)``

``bind(variable)`` returns a copy with sizes filled from the variable and raises if
the head cannot model that variable.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, ClassVar

import jax
from jaxtyping import Array, Float, PRNGKeyArray

from ..errors import SpecError
from ..spec.variables import Variable

if TYPE_CHECKING:
    from ..spec.layout import ElementLayout, Steps


@dataclasses.dataclass(frozen=True)
class Head:
    """Base class of heads."""

    category: ClassVar[str] = "head"
    kind: ClassVar[str] = "head"
    supports: ClassVar[tuple[str, ...]] = ()
    #: True when rows are drawn independently given their params (the sampler may then
    #: draw a whole batch in one call); False for heads coupling the rows of a block.
    rows_independent: ClassVar[bool] = True

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

    def sample(self, key: PRNGKeyArray, params: Float[Array, "m p"]) -> Float[Array, " m"]:
        raise NotImplementedError

    def split_params(self, params: Float[Array, "n p"]) -> dict[str, Float[Array, "n ..."]]:
        """Named views of the parameter vector (for users and tests)."""
        return {"params": params}


def categorical_draw(key: PRNGKeyArray, logits: Float[Array, "m k"]) -> Float[Array, " m"]:
    """One categorical draw per row (Gumbel-max via ``jax.random.categorical``)."""
    return jax.random.categorical(key, logits, axis=-1).astype(logits.dtype)
