"""Logistic conditioner: one masked linear map from earlier elements to parameters.

``params[e] = b[e] + sum_f (W[e] * M[e])_f feats_f (+ V[e] context)``, where
``M[e, f] = 1`` iff feature ``f`` belongs to an allowed input of ``e`` (earlier step,
declared parent). With a Bernoulli head this is FVSBN, with a Categorical head softmax
regression, with a Gaussian head a linear-Gaussian AR model. Each element has its own
weights (the conditioner cannot share them); the mask is applied once per call.

The product skips the all-masked blocks of ``M`` (``masks.row_tiles``): in raster order three
row groups skip a third of the D x D product, which more than pays for the mask.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from ..heads import Head
from ..masks import Tiles, row_tiles, tiled_masked_matmul
from ..spec import fields
from .base import Conditioner, ConditionalSpec, ConditionerContext


@dataclasses.dataclass(frozen=True)
class Logistic(ConditionalSpec):
    """Masked linear conditioner.

    Attributes:
        parents: parent variable names, or ``None`` for every earlier element.
        head: the head; ``None`` picks Bernoulli / Categorical / Gaussian from the variable.
    """

    parents: tuple[str, ...] | None = None
    head: Head | None = None
    kind: ClassVar[str] = "logistic"

    def __post_init__(self) -> None:
        if isinstance(self.parents, str):
            object.__setattr__(self, "parents", (self.parents,))
        elif self.parents is not None:
            object.__setattr__(self, "parents", fields.str_tuple("Logistic", "parents", self.parents,
                                                                 "a list of variable names"))

    def build(self, ctx: ConditionerContext, *, key=None) -> "LogisticConditioner":
        n, p = ctx.num_outputs, ctx.head.num_params
        f = ctx.layout.num_features
        dtype = jnp.result_type(float)
        return LogisticConditioner(
            weight=jnp.zeros((n, p, f), dtype),
            bias=jnp.zeros((n, p), dtype),
            context_weight=jnp.zeros((n, p, ctx.context_size), dtype) if ctx.context_size else None,
            in_rank=jnp.asarray(ctx.in_steps, dtype=jnp.int32),
            out_rank=jnp.asarray(ctx.out_steps, dtype=jnp.int32),
            parent_mask=None if self.parents is None else jnp.asarray(ctx.feature_allowed)[:, None, :],
            tiles=row_tiles(np.repeat(ctx.feature_allowed, p, axis=0)),
        )


class LogisticConditioner(Conditioner):
    """Runtime masked linear map. The mask is the rank comparison ``out_rank[e] > in_rank[f]``
    (``masks.rank_mask`` on the step vector), evaluated inside each tile's product rather than
    read from a stored boolean array (cheaper: the pass is memory-bound on ``W``); declared
    parents add a stored ``parent_mask``. ``tiles`` are the ``masks.row_tiles`` of the
    ``(n * p, F)`` rows of ``weight``."""

    weight: Float[Array, "n p f"]
    bias: Float[Array, "n p"]
    context_weight: Float[Array, "n p c"] | None
    in_rank: Int[Array, " f"]
    out_rank: Int[Array, " n"]
    parent_mask: Bool[Array, "n 1 f"] | None
    tiles: Tiles = eqx.field(static=True)

    def _linear(self, weight, out_rank, parent_mask, bias, context_weight, feats, context, tiles=None):
        n, p, f = weight.shape
        allowed = None if parent_mask is None else jnp.broadcast_to(parent_mask, (n, p, f)).reshape(n * p, f)
        out = tiled_masked_matmul(
            feats, weight.reshape(n * p, f), tiles or ((0, n * p, f),), jnp.repeat(out_rank, p), self.in_rank,
            strict=True, allowed=allowed,
        )
        out = bias + out.reshape(n, p)
        if context_weight is not None:
            out = out + jnp.einsum("npc,c->np", context_weight, context)
        return out

    def __call__(self, x, feats, context):
        return self._linear(
            self.weight, self.out_rank, self.parent_mask, self.bias, self.context_weight, feats, context, self.tiles
        )

    def block_params(self, cache, x, feats, context, s, rows):
        take = lambda a: None if a is None else jnp.take(a, rows, axis=0, mode="clip")
        params = self._linear(
            take(self.weight), take(self.out_rank), take(self.parent_mask), take(self.bias),
            take(self.context_weight), feats, context,
        )
        return params, cache
