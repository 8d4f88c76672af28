"""Homoscedastic linear-Gaussian conditionals, fitted in closed form (least squares + ridge).

Element ``e`` of a ``Real`` variable is

    x_e | earlier ~ N(b_e + w_e . f_A(e), sigma_e^2)

where ``f`` is the feature vector of the record (``arprob.features``: real and binary
elements as themselves, ordinal levels rescaled to [-1, 1], categorical ones one-hot) and
``A(e)`` the features ``e`` may read (earlier steps, declared parents). ``sigma_e`` is one
number per element: unlike ``Logistic(head=Gaussian())`` the scale does not depend on the
parents. With every earlier element as parents this is the autoregressive (regression)
form of a full-covariance Gaussian, ``Sigma = (I - B)^-1 D (I - B)^-T``; with discrete
earlier elements it is a conditional linear Gaussian (one mean shift per category).

Fit (``fit`` calls it before any gradient step): from the summed Gram matrix of
``z = [1, f, x_elements]`` over ``N`` records, with means ``m`` and covariances ``C``,

    w_e = (C_AA + lambda diag(C_AA))^-1 C_Ae,   b_e = m_e - w_e . m_A,
    sigma_e^2 = max(C_ee - 2 w_e . C_Ae + w_e' C_AA w_e, min_variance),

``lambda = shrinkage`` (ridge relative to each feature's variance, so it does not depend
on the units; the intercept is not penalised). ``shrinkage = 0`` is maximum likelihood:
the fitted density is then the Gaussian with the sample mean and the ``1/N`` sample
covariance. The conditioner is not trained by gradient (``trainable = False``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from ..errors import SpecError
from ..features import Encoder
from ..heads import Gaussian, Head
from ..spec import fields
from ..spec.layout import REAL, ElementLayout, Steps
from ..spec.variables import Variable
from .base import ConditionalSpec, Conditioner, ConditionerContext


@dataclasses.dataclass(frozen=True)
class LinearGaussian(ConditionalSpec):
    """Linear-Gaussian conditional with one variance per element, fitted in closed form.

    Attributes:
        parents: parent variable names, or ``None`` for every earlier element.
        shrinkage: ridge strength ``lambda >= 0`` relative to each feature's variance
            (0 = maximum likelihood).
        min_variance: floor of each conditional variance (``> 0``).
    """

    parents: tuple[str, ...] | None = None
    shrinkage: float = 0.0
    min_variance: float = 1e-6
    kind: ClassVar[str] = "linear_gaussian"

    def __post_init__(self) -> None:
        if isinstance(self.parents, str):
            object.__setattr__(self, "parents", (self.parents,))
        elif self.parents is not None:
            object.__setattr__(self, "parents", fields.str_tuple("LinearGaussian", "parents", self.parents,
                                                                 "a list of variable names"))
        for name, below in (("shrinkage", False), ("min_variance", True)):
            value = getattr(self, name)
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if not ok or value < 0 or (below and value == 0):
                raise SpecError(f"LinearGaussian {name} must be a finite number {'> 0' if below else '>= 0'}; "
                                f"got {value!r}.")
            object.__setattr__(self, name, float(value))

    def bind_head(self, variable: Variable) -> Head:
        if variable.kind != "real":
            raise SpecError(f"LinearGaussian for {variable.name!r}: it models real variables; {variable.name!r} "
                            f"is {variable.kind} (use Table or Logistic).")
        return Gaussian().bind(variable)

    def validate(self, variable: Variable, layout: ElementLayout, steps: Steps, context_size: int) -> None:
        self.bind_head(variable)
        if context_size:
            raise SpecError(f"LinearGaussian for {variable.name!r}: a context vector is not supported; "
                            "use Logistic(head=Gaussian()).")

    def build(self, ctx: ConditionerContext, *, key=None) -> "LinearGaussianConditioner":
        n, f = ctx.num_outputs, ctx.layout.num_features
        dtype = jnp.result_type(float)
        return LinearGaussianConditioner(
            weight=jnp.zeros((n, f), dtype),
            bias=jnp.zeros((n,), dtype),
            log_scale=jnp.zeros((n,), dtype),
            allowed=jnp.asarray(ctx.feature_allowed),
            elements=jnp.asarray(ctx.elements, dtype=jnp.int32),
            encoder=Encoder.from_layout(ctx.layout),
            shrinkage=self.shrinkage,
            min_variance=self.min_variance,
        )


class LinearGaussianConditioner(Conditioner):
    """Runtime: ``params_e = (b_e + (W * A)_e . f, log sigma_e)`` for the Gaussian head."""

    weight: Float[Array, "n f"]
    bias: Float[Array, " n"]
    log_scale: Float[Array, " n"]
    allowed: Bool[Array, "n f"]
    elements: Int[Array, " n"]
    encoder: Encoder
    shrinkage: float = eqx.field(static=True)
    min_variance: float = eqx.field(static=True)
    trainable: ClassVar[bool] = False

    def _params(self, weight, allowed, bias, log_scale, feats):
        mean = bias + jnp.where(allowed, weight, 0.0) @ feats
        return jnp.stack([mean, log_scale], axis=-1)

    def __call__(self, x, feats, context, key=None):
        return self._params(self.weight, self.allowed, self.bias, self.log_scale, feats)

    def block_params(self, cache, x, feats, context, s, rows):
        def take(a):
            return jnp.take(a, rows, axis=0, mode="clip")

        return self._params(take(self.weight), take(self.allowed), take(self.bias), take(self.log_scale), feats), cache

    # ------------------------------------------------------------ closed-form fit
    def has_closed_form(self) -> bool:
        return True

    def closed_form_stats(self, x: Float[Array, "b d"]) -> Float[Array, "k k"]:
        """Gram matrix ``sum_r z_r z_r'`` of ``z = [1, f, x_elements]`` (``k = 1 + F + n``)."""
        x = jnp.asarray(x, self.weight.dtype)
        z = jnp.concatenate([jnp.ones((x.shape[0], 1), x.dtype), jax.vmap(self.encoder)(x), x[:, self.elements]], 1)
        return z.T @ z

    def with_closed_form(self, stats: Float[Array, "k k"]) -> "LinearGaussianConditioner":
        gram = jnp.asarray(stats, self.weight.dtype)
        f = self.weight.shape[1]
        count = jnp.maximum(gram[0, 0], 1.0)
        mean = gram[0, 1:] / count
        cov = gram[1:, 1:] / count - jnp.outer(mean, mean)
        c_ff, m_f = cov[:f, :f], mean[:f]
        diag = jnp.diagonal(c_ff)

        def solve(allowed, c_fe, c_ee, m_e):
            both = jnp.outer(allowed, allowed)
            # rows/columns of features e may not read become the identity: their weights solve to 0
            a = jnp.where(both, c_ff, 0.0) + jnp.diag(jnp.where(allowed, self.shrinkage * diag, 1.0))
            rhs = jnp.where(allowed, c_fe, 0.0)
            w = jnp.where(allowed, jnp.linalg.lstsq(a, rhs)[0] if f else rhs, 0.0)
            var = c_ee - 2.0 * w @ c_fe + w @ c_ff @ w
            return w, m_e - w @ m_f, 0.5 * jnp.log(jnp.maximum(var, self.min_variance))

        # one (F, F) system at a time (lax.map, not vmap: n systems at once would hold n F^2 floats)
        w, b, log_scale = jax.lax.map(lambda a: solve(*a), (self.allowed, cov[:f, f:].T, jnp.diagonal(cov)[f:],
                                                            mean[f:]))
        return eqx.tree_at(lambda c: (c.weight, c.bias, c.log_scale), self, (w, b, log_scale))


def gaussian_moments(model, x: Float[Array, "b d"] | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Joint Gaussian of the real elements of ``model`` given the other elements of ``x``.

    Every real variable must use ``LinearGaussian`` and every element a real element reads
    must be real or come before all real elements' readers in a way that the discrete
    values of ``x`` fix (discrete elements are read from ``x``; they may not read reals).
    Writing the real block as ``r = B r + c(x_discrete) + e``, ``e ~ N(0, D)``:

        mean = (I - B)^-1 c,   cov = (I - B)^-1 D (I - B)^-T.

    Returns ``(elements (R,), mean (b, R), cov (R, R))``; the exact log-density of any
    subset of observed real entries is the Gaussian marginal over those rows/columns.
    """
    layout = model.spec.layout
    x = np.asarray(x, np.float64)
    real = np.flatnonzero(layout.kind == REAL)
    if real.size == 0:
        raise SpecError("gaussian_moments: the model has no real variable.")
    pos = {int(e): i for i, e in enumerate(real)}
    r = real.size
    feat_of = layout.feature_element
    big_b = np.zeros((r, r))
    resid = np.zeros(r)
    shift = np.zeros((x.shape[0], r))
    feats = np.asarray(jax.vmap(model.encoder)(jnp.asarray(x, jnp.result_type(float))), np.float64)
    for comp in model.components:
        var = layout.variables[layout.index_of(comp.name)]
        cond = comp.conditioner
        if var.kind != "real":
            reads = np.asarray(getattr(cond, "allowed", np.zeros((0, 0), bool)))
            if reads.size and np.any(reads[:, np.isin(feat_of, real)]):
                raise SpecError(f"gaussian_moments: discrete variable {comp.name!r} reads real elements; its "
                                "marginal is not Gaussian.")
            continue
        if not isinstance(cond, LinearGaussianConditioner):
            raise SpecError(f"gaussian_moments: real variable {comp.name!r} does not use LinearGaussian.")
        w = np.where(np.asarray(cond.allowed), np.asarray(cond.weight, np.float64), 0.0)
        rows = [pos[int(e)] for e in np.asarray(comp.elements)]
        from_real = np.isin(feat_of, real)
        for i, row in enumerate(rows):
            big_b[row, [pos[int(e)] for e in feat_of[from_real]]] = w[i, from_real]
        shift[:, rows] = np.asarray(cond.bias, np.float64) + feats[:, ~from_real] @ w[:, ~from_real].T
        resid[rows] = np.exp(2.0 * np.asarray(cond.log_scale, np.float64))
    inv = np.linalg.inv(np.eye(r) - big_b)
    return real, shift @ inv.T, inv @ np.diag(resid) @ inv.T

