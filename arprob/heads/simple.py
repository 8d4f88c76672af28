"""Bernoulli, categorical (softmax) and Gaussian heads.

The categorical head is ``CategoricalHead`` (``ar.CategoricalHead``): ``ar.Categorical`` is the
*variable* with k unordered values. ``arprob.heads.Categorical`` is a deprecated alias of
the head, kept for one release.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import jax
import jax.numpy as jnp

from ..errors import SpecError
from ..spec import fields
from ..spec.conditional import default_head as default_head
from ..spec.variables import Variable
from .base import Head, categorical_from_uniform, normal_from_uniform


@dataclasses.dataclass(frozen=True)
class Bernoulli(Head):
    """``p(x=1) = sigmoid(logit)``; one parameter. ``log p(x) = x*l - softplus(l)``."""

    kind: ClassVar[str] = "bernoulli"
    supports: ClassVar[tuple[str, ...]] = ("binary",)

    @property
    def num_params(self) -> int:
        return 1

    def log_prob(self, params, values):
        logit = params[:, 0]
        return values * logit - jax.nn.softplus(logit)

    def sample_uniform(self, u, params):
        return (u[:, 0] < jax.nn.sigmoid(params[:, 0])).astype(params.dtype)

    @property
    def num_levels(self) -> int:
        return 2

    def level_log_probs(self, params, values=None, levels=None):
        logit = params[:, :1]
        table = jnp.concatenate([-jax.nn.softplus(logit), logit - jax.nn.softplus(logit)], axis=-1)
        return table if levels is None else jnp.take_along_axis(table, levels, axis=-1)

    def split_params(self, params):
        return {"logit": params[:, 0]}


@dataclasses.dataclass(frozen=True)
class CategoricalHead(Head):
    """``p(x=j) = softmax(logits)_j`` over ``num_classes`` values (spec kind ``categorical``).

    Attributes:
        num_classes: the number of values; filled from the variable by ``bind`` (give it
            only to check it).
    """

    num_classes: int | None = None
    kind: ClassVar[str] = "categorical"
    supports: ClassVar[tuple[str, ...]] = ("binary", "categorical", "ordinal")

    def __post_init__(self) -> None:
        if self.num_classes is not None:
            object.__setattr__(self, "num_classes", fields.integer("CategoricalHead", "num_classes", self.num_classes, 2))

    def bind(self, variable: Variable) -> "CategoricalHead":
        super().bind(variable)
        if self.num_classes is not None and self.num_classes != variable.num_values:
            raise SpecError(
                f"Variable {variable.name!r} has {variable.num_values} values; the Categorical head "
                f"was declared with num_classes={self.num_classes}."
            )
        return dataclasses.replace(self, num_classes=variable.num_values)

    @property
    def num_params(self) -> int:
        if self.num_classes is None:
            raise SpecError("Categorical head is unbound: its number of classes comes from the variable.")
        return self.num_classes

    def log_prob(self, params, values):
        logp = jax.nn.log_softmax(params, axis=-1)
        return jnp.take_along_axis(logp, values.astype(jnp.int32)[:, None], axis=-1)[:, 0]

    def sample_uniform(self, u, params):
        return categorical_from_uniform(u[:, 0], params).astype(params.dtype)

    @property
    def num_levels(self) -> int:
        return self.num_params

    def level_log_probs(self, params, values=None, levels=None):
        table = jax.nn.log_softmax(params, axis=-1)
        return table if levels is None else jnp.take_along_axis(table, levels, axis=-1)

    def split_params(self, params):
        return {"logits": params}


#: deprecated alias (one release): the head used to share its name with the variable ``ar.Categorical``
Categorical = CategoricalHead

_HALF_LOG_TWO_PI = 0.5 * math.log(2 * math.pi)


@dataclasses.dataclass(frozen=True)
class Gaussian(Head):
    """Normal with parameters (mean, log-scale):
    ``log p(x) = -((x - m) / s)^2 / 2 - log s - log(2 pi) / 2``, ``s = exp(log_scale)``."""

    kind: ClassVar[str] = "gaussian"
    supports: ClassVar[tuple[str, ...]] = ("real",)

    @property
    def num_params(self) -> int:
        return 2

    @property
    def is_discrete(self) -> bool:
        return False

    def log_prob(self, params, values):
        mean, log_scale = params[:, 0], params[:, 1]
        z = (values - mean) * jnp.exp(-log_scale)
        return -0.5 * z * z - log_scale - _HALF_LOG_TWO_PI

    def sample_uniform(self, u, params):
        return params[:, 0] + jnp.exp(params[:, 1]) * normal_from_uniform(u[:, 0])

    def split_params(self, params):
        return {"mean": params[:, 0], "log_scale": params[:, 1]}
