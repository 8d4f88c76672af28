"""Pieces shared by the sequence conditioners (WaveNet, RNN, PixelCNN, Transformer).

- ``sequence_plan`` / ``SequenceInputs``: the spec's elements in ordering order, grouped by
  step (the block schedule ``Steps.blocks`` of ``arprob.spec.layout``), as a sequence of
  S positions with ``m`` slots; position ``s`` reads

      u_s = [ feats of the elements of step s-1 (zeros at s=0) , coords of the elements of step s ]

  (``coords``: present flag, row, column, channel scaled to [-1, 1], variable one-hot), so
  an output at position ``s`` that depends on ``u_{<=s}`` depends only on steps ``< s``.
- ``normal_fan_in`` / ``normal_std``: weight initialisers.
- ``output_mlp``: the two-layer read-out ``dropout(relu(h W_1 + b_1 + c V)) W_2 + b_2``.
- ``check_positive_int``: the hyper-parameter check with the error every family raises.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from ..spec import fields
from ..spec.layout import ElementLayout, Steps
from .base import dropout

@dataclasses.dataclass(frozen=True, eq=False)
class SequencePlan:
    """Static arrangement of the spec's elements as a sequence of steps (numpy).

    Attributes:
        block_elements: ``(S, m)`` elements of each step in ordering order, padded with ``D``.
        feat_index: ``(S, m * w)`` indices into the padded feature vector ``(F + 1,)``.
        coords: ``(S, m, K)`` integer coordinate code of each slot; ``scale`` ``(S, m, K)``
            its divisor (``K = 4 + V``: present, row, column, channel, variable one-hot).
        out_index: ``(n,)`` flat ``step * m + slot`` of each element of the component.
        row_slot: ``(n + 1,)`` slot of each component row (padding row ``n`` -> 0).
    """

    block_elements: np.ndarray
    feat_index: np.ndarray
    coords: np.ndarray
    scale: np.ndarray
    out_index: np.ndarray
    row_slot: np.ndarray

    @property
    def num_steps(self) -> int:
        return self.block_elements.shape[0]

    @property
    def slots(self) -> int:
        return self.block_elements.shape[1]

    @property
    def input_size(self) -> int:
        return self.feat_index.shape[1] + self.coords.shape[1] * self.coords.shape[2]


def sequence_plan(layout: ElementLayout, steps: Steps, elements: np.ndarray) -> SequencePlan:
    """Arrange the elements by step (see ``SequencePlan``); ``elements`` are the outputs."""
    d, s_total = layout.num_elements, steps.num_steps
    block, slot = steps.blocks, steps.slot  # the block schedule, in ordering order (padded with D)
    m = block.shape[1]
    w = int(layout.feature_width.max())
    nvar = len(layout.variables)
    k = 4 + (nvar if nvar > 1 else 0)
    f = layout.num_features
    feat_index = np.full((s_total, m, w), f, dtype=np.int32)
    coords = np.zeros((s_total, m, k), dtype=np.int32)
    scale = np.ones((s_total, m, k), dtype=np.int32)
    # per-variable coordinate ranges, so every coordinate is coded into [-1, 1]
    span = np.ones((nvar, 3), dtype=np.int64)
    for i in range(nvar):
        c = layout.coords[layout.offsets[i] : layout.offsets[i + 1]]
        span[i] = np.maximum(c.max(0), 1)
    for s in range(s_total):
        for j, e in enumerate(block[s]):
            if e == d:
                continue
            width = int(layout.feature_width[e])
            feat_index[s, j, :width] = layout.feature_offset[e] + np.arange(width)
            v = int(layout.var_index[e])
            coords[s, j, 0] = 1
            coords[s, j, 1:4] = layout.coords[e]
            scale[s, j, 1:4] = span[v]
            if k > 4:
                coords[s, j, 4 + v] = 1
    out_index = steps.step[elements] * m + slot[elements]
    row_slot = np.concatenate([slot[elements], [0]])
    return SequencePlan(
        block_elements=block,
        feat_index=feat_index.reshape(s_total, m * w),
        coords=coords,
        scale=scale,
        out_index=out_index.astype(np.int32),
        row_slot=row_slot.astype(np.int32),
    )


class SequenceInputs(eqx.Module):
    """Builds the inputs ``u_s`` (see the module docstring) from the feature vector."""

    feat_index: Int[Array, "s mw"]
    coords: Int[Array, "s mk"]
    scale: Int[Array, "s mk"]

    @classmethod
    def from_plan(cls, plan: SequencePlan) -> "SequenceInputs":
        s = plan.num_steps
        return cls(
            feat_index=jnp.asarray(plan.feat_index),
            coords=jnp.asarray(plan.coords.reshape(s, -1)),
            scale=jnp.asarray(plan.scale.reshape(s, -1)),
        )

    def coding(self, dtype) -> Float[Array, "s mk"]:
        """Coordinate code in [-1, 1]: flags and one-hots become +-1, coordinates ``2 c / span - 1``."""
        return 2.0 * self.coords.astype(dtype) / self.scale.astype(dtype) - 1.0

    def all(self, feats: Float[Array, " f"]) -> Float[Array, "s i"]:
        """Inputs of every position ``(S, input_size)`` (teacher forcing)."""
        padded = jnp.concatenate([feats, jnp.zeros((1,), feats.dtype)])
        vals = padded[self.feat_index]
        prev = jnp.concatenate([jnp.zeros_like(vals[:1]), vals[:-1]], axis=0)
        return jnp.concatenate([prev, self.coding(feats.dtype)], axis=-1)

    def at(self, feats: Float[Array, " f"], s: Int[Array, ""]) -> Float[Array, " i"]:
        """Input of position ``s`` (every element of a step ``< s`` must be in ``feats``)."""
        padded = jnp.concatenate([feats, jnp.zeros((1,), feats.dtype)])
        vals = padded[self.feat_index[jnp.maximum(s - 1, 0)]]
        prev = jnp.where(s > 0, vals, jnp.zeros_like(vals))
        return jnp.concatenate([prev, self.coding(feats.dtype)[s]], axis=-1)


def normal_fan_in(key: PRNGKeyArray, shape: tuple[int, ...], fan_in: int, dtype) -> Array:
    """``N(0, 1 / fan_in)`` weights (LeCun normal; ``fan_in`` floored at 1)."""
    return jax.random.normal(key, shape, dtype) / np.sqrt(max(fan_in, 1))


def normal_std(key: PRNGKeyArray, shape: tuple[int, ...], std: float, dtype) -> Array:
    """``N(0, std^2)`` weights."""
    return jax.random.normal(key, shape, dtype) * std


def output_mlp(h, context, w1, b1, w1_context, w2, b2, rate: float = 0.0, key: PRNGKeyArray | None = None):
    """The read-out every sequence conditioner ends with:
    ``dropout(relu(h W_1 + b_1 (+ c V))) W_2 + b_2`` (``w1_context`` None: no context term;
    dropout only while training, when ``key`` is given)."""
    o = h @ w1 + b1
    if w1_context is not None:
        o = o + context @ w1_context
    return dropout(jax.nn.relu(o), rate, key) @ w2 + b2


def check_positive_int(owner: str, name: str, value: object, minimum: int = 1) -> None:
    fields.integer(owner, name, value, minimum)
