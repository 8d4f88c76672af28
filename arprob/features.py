"""Input encoding: the feature vector conditioners read.

Each element owns ``feature_width[e]`` consecutive features: a categorical element is
one-hot (width k); a binary or real element is its value; an ordinal element with L
levels is rescaled to ``2 v / (L - 1) - 1`` in [-1, 1]. One function encodes any set of
elements, so the parallel pass and the sampler's incremental writes agree exactly.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from .spec.layout import CATEGORICAL, ORDINAL, ElementLayout


class Encoder(eqx.Module):
    kind: Int[Array, " d1"]
    num_values: Int[Array, " d1"]
    feature_index: Int[Array, "d1 w"]
    num_features: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    has_ordinal: bool = eqx.field(static=True)

    @property
    def is_identity(self) -> bool:
        """True when every element is its own single feature (binary and real only)."""
        return self.width == 1 and not self.has_ordinal

    @classmethod
    def from_layout(cls, layout: ElementLayout) -> "Encoder":
        d, width = layout.num_elements, int(layout.feature_width.max())
        index = np.full((d + 1, width), layout.num_features, dtype=np.int32)  # row d: padding
        for j in range(width):
            has = layout.feature_width > j
            index[:d][has, j] = layout.feature_offset[has] + j
        pad = lambda a, v: jnp.asarray(np.concatenate([a, [v]]), dtype=jnp.int32)
        return cls(
            kind=pad(layout.kind, 0),
            num_values=pad(np.maximum(layout.num_values, 2), 2),
            feature_index=jnp.asarray(index),
            num_features=layout.num_features,
            width=width,
            has_ordinal=bool(np.any(layout.kind == ORDINAL)),
        )

    def encode_elements(self, values: Float[Array, " m"], elements: Int[Array, " m"]) -> Float[Array, "m w"]:
        """Features of ``values`` taken by ``elements`` (element index ``D`` is padding)."""
        if self.is_identity:
            return values[:, None]
        kind, levels = self.kind[elements], self.num_values[elements]
        scalar = jnp.where(kind == ORDINAL, 2.0 * values / (levels - 1) - 1.0, values)
        if self.width == 1:
            return scalar[:, None]
        onehot = (values[:, None] == jnp.arange(self.width, dtype=values.dtype)).astype(values.dtype)
        padded = jnp.zeros_like(onehot).at[:, 0].set(scalar)
        return jnp.where((kind == CATEGORICAL)[:, None], onehot, padded)

    def __call__(self, x: Float[Array, " d"]) -> Float[Array, " f"]:
        if self.is_identity:
            return x
        d = x.shape[0]
        encoded = self.encode_elements(x, jnp.arange(d))
        if self.width == 1:
            return encoded[:, 0]
        out = jnp.zeros(self.num_features + 1, x.dtype).at[self.feature_index[:d]].set(encoded)
        return out[: self.num_features]

    def write(
        self, feats: Float[Array, " f"], values: Float[Array, " m"], elements: Int[Array, " m"]
    ) -> Float[Array, " f"]:
        """Write the features of newly drawn ``values`` (element ``D`` = padding, dropped)."""
        return feats.at[self.feature_index[elements]].set(self.encode_elements(values, elements), mode="drop")
