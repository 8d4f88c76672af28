"""Mixture heads: discretized logistic mixture (PixelCNN++) for ordinal levels, logistic and
Gaussian mixtures for real variables.

**Discretized logistic mixture.** Level ``v`` in ``0..L-1`` sits at ``x = 2v/(L-1) - 1`` in
``[-1, 1]``; its bin is ``[x - delta, x + delta]`` with half-width ``delta = 1/(L-1)``. For a
component with mean ``mu`` and scale ``s = exp(log_scale)``, with ``sigma`` the logistic
sigmoid, ``a = (x - delta - mu)/s`` and ``b = (x + delta - mu)/s``:

- first bin (``v = 0``) takes all mass below its upper edge: ``P = sigma(b)``;
- last bin (``v = L-1``) takes all mass above its lower edge: ``P = 1 - sigma(a) = sigma(-a)``;
- interior bins take the CDF difference, evaluated exactly in log space as
  ``sigma(b) - sigma(a) = sigma(b) * sigma(-a) * (1 - exp(-(b - a)))``, i.e.
  ``log P = log_sigmoid(b) + log_sigmoid(-a) + log1mexp(2 delta / s)``.

No density-at-the-bin-centre fallback is needed: every term is finite (with a finite
gradient) for every level, every mean and every log-scale. ``log1mexp`` is taken of
``exp(log(2 delta) - log_scale)`` through ``log1mexp_exp``, whose custom JVP
``z / expm1(z)`` is bounded in (0, 1], so huge scales (``z`` underflowing) and ``where``
branches never produce NaN gradients (google/jax#1052). The mixture is
``log p(v) = logsumexp_k(log_softmax(logits)_k + log P_k(v))``.

The only clamp is a floor on log-scales at ``-log(finfo.max) / 2`` (-44.4 in float32,
-354.9 in float64), so that ``1/s`` stays finite with room for ``|x - mu|`` up to
``sqrt(finfo.max)``. It is there for float safety only: at ``s = e^-44`` a bin already
holds all of a component's mass to float32 precision.

**Coupled channels** (``coupled=True``, PixelCNN++): for a variable whose last axis holds
``C`` channels, each pixel is one mixture: ``p(pixel) = sum_k w_k prod_c P_k(x_c)``, where
the mean of channel ``c`` in component ``k`` is shifted by the already-known channels of the
same pixel: ``mu_ck + sum_{j<c} tanh(alpha_cjk) * x_j`` (``x_j`` the rescaled level of
channel ``j``; ``tanh`` as in PixelCNN++). The mixture logits are those of channel 0 (one
mixture per pixel); the logits of channels ``c > 0`` are unused. The channels of a pixel
must be drawn in one block (``ar.PerPixel()``), which ``validate`` checks against the
step vector. ``log_prob`` returns the exact per-channel conditionals
``log p(x_c | x_<c) = LSE_k(log w_k + sum_{j<=c} log P_k(x_j)) - LSE_k(log w_k + sum_{j<c} log P_k(x_j))``,
which sum to the pixel's joint log-probability.

Parameter layout per element (``P`` columns), ``K = num_components``:

- ``[0, K)``: mixture logits;
- ``[K, 2K)``: mean offsets: component ``k``'s mean is ``params[K + k] + centre_k`` with fixed
  ``centre_k = (2k + 1)/K - 1`` (``component_centres``), so that all-zero parameters (the
  default initialisation of the conditioners) give K *distinct* components; with equal
  components the gradients of the K components are equal and a zero-initialised mixture
  never becomes more than one logistic. Means are unconstrained, in the ``[-1, 1]``
  coordinates;
- ``[2K, 3K)``: log-scales;
- coupled only, ``[3K, 3K + (C-1)K)``: coupling coefficients ``alpha[c, j, k]`` at
  ``3K + j*K + k``; channel ``c`` uses ``j < c`` and ignores the rest.

Sampling is exact: the component is drawn by inverse CDF from the mixture weights, then a
logistic ``mu + s * logit(u)`` is rounded to the nearest level and clipped to ``[0, L-1]``,
which gives exactly the bin masses above (the edge bins absorb the tails). Two uniforms per
row: the component's and the logistic's.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from ..errors import SpecError
from ..spec import fields
from ..spec.variables import Variable
from .base import Head, categorical_from_uniform, logistic_from_uniform, normal_from_uniform

_LN2 = math.log(2.0)
_HALF_LOG_TWO_PI = 0.5 * math.log(2 * math.pi)


def component_centres(num_components: int) -> np.ndarray:
    """Fixed mean offsets ``(2k + 1)/K - 1`` of the K components (evenly spread in [-1, 1])."""
    return (2.0 * np.arange(num_components) + 1.0) / num_components - 1.0


def log_scale_floor(dtype) -> float:
    """The float-safety floor on log-scales: ``-log(finfo(dtype).max) / 2``."""
    return -0.5 * math.log(float(jnp.finfo(dtype).max))


# --------------------------------------------------------------------------- log1mexp
@jax.custom_jvp
def log1mexp(x: Float[Array, "..."]) -> Float[Array, "..."]:
    """``log(1 - exp(-x))`` for ``x > 0`` (Maechler 2012): ``log(-expm1(-x))`` for ``x <= ln 2``,
    ``log1p(-exp(-x))`` above. The JVP is ``1 / expm1(x)`` (custom, so the untaken branch of the
    internal ``where`` cannot poison gradients)."""
    small = x <= _LN2
    return jnp.where(
        small,
        jnp.log(-jnp.expm1(-jnp.where(small, x, _LN2))),
        jnp.log1p(-jnp.exp(-jnp.where(small, _LN2, x))),
    )


@log1mexp.defjvp
def _log1mexp_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return log1mexp(x), t / jnp.expm1(x)


_TINY_LOG = -20.0  # below: z = exp(t) < 2.1e-9 and log1mexp(z) = t - z/2 to relative 1e-19


@jax.custom_jvp
def log1mexp_exp(t: Float[Array, "..."]) -> Float[Array, "..."]:
    """``log(1 - exp(-exp(t)))``: ``log1mexp`` of a width given by its logarithm.

    Exact for every finite ``t``: when ``z = exp(t)`` is tiny (or underflows) it uses
    ``log(1 - e^-z) = t + log((1 - e^-z)/z) = t - z/2 + O(z^2)``. The derivative
    ``z / expm1(z)`` lies in (0, 1] (custom JVP, safe under ``where``).
    """
    z = jnp.exp(t)
    tiny = t < _TINY_LOG
    return jnp.where(tiny, t - 0.5 * z, log1mexp(jnp.where(tiny, 1.0, z)))


@log1mexp_exp.defjvp
def _log1mexp_exp_jvp(primals, tangents):
    (t,), (dt,) = primals, tangents
    z = jnp.exp(t)
    tiny = t < _TINY_LOG
    zc = jnp.where(tiny, 1.0, jnp.minimum(z, 1e4))
    ratio = zc * jnp.exp(-zc) / -jnp.expm1(-zc)  # z / expm1(z), stable for large z
    return log1mexp_exp(t), dt * jnp.where(tiny, 1.0 - 0.5 * z, ratio)


# ------------------------------------------------------------------ discretized logistic
def level_to_unit(levels: Float[Array, "..."], num_levels: int) -> Float[Array, "..."]:
    """``x = 2 v / (L - 1) - 1``: levels ``0..L-1`` to bin centres in ``[-1, 1]``."""
    return 2.0 * levels / (num_levels - 1) - 1.0


def discretized_logistic_log_mass(
    levels: Float[Array, "..."], mean: Float[Array, "..."], log_scale: Float[Array, "..."], num_levels: int
) -> Float[Array, "..."]:
    """``log P(v | mean, log_scale)`` of one discretized logistic over ``num_levels`` levels
    (arrays broadcast; see the module docstring for the formula).

    Computed in *level units*: ``u = v - m`` with ``m = (mean + 1)(L - 1)/2`` the mean on the
    level axis, ``a = (u - 1/2)/s'``, ``b = (u + 1/2)/s'``, ``s' = s (L - 1)/2``. Near the mean
    ``v - m`` is exact, so adjacent bins share their edges to rounding of ``u`` alone (the
    ``[-1, 1]`` coordinates in float32 resolve only ~1e-3 of a bin at L = 65536).
    """
    centre, inv_s, log_gap = _component_terms(mean, log_scale, num_levels)
    u = levels - centre
    a = (u - 0.5) * inv_s
    b = (u + 0.5) * inv_s
    below = jax.nn.log_sigmoid(b)  # first bin: sigma(b)
    above = jax.nn.log_sigmoid(-a)  # last bin: 1 - sigma(a)
    interior = below + above + log_gap
    return jnp.where(levels <= 0, below, jnp.where(levels >= num_levels - 1, above, interior))


def _component_terms(mean, log_scale, num_levels: int):
    """The level-independent parts of ``discretized_logistic_log_mass``: the mean on the level
    axis ``m``, ``1/s'`` and ``log1mexp(1/s')`` (the interior bins' ``log(1 - e^-(b - a))``)."""
    dtype = jnp.result_type(mean, log_scale)
    half_levels = 0.5 * (num_levels - 1)
    log_width = -jnp.maximum(log_scale, log_scale_floor(dtype)) - math.log(half_levels)  # log(b - a)
    return (mean + 1.0) * half_levels, jnp.exp(log_width), log1mexp_exp(log_width)


def _logsumexp_of(terms: list[Array]) -> Array:
    """``logsumexp`` over a short list of equal-shape arrays, elementwise (as ``jax.nn.logsumexp``,
    an all ``-inf`` entry gives ``-inf``)."""
    top = functools.reduce(jnp.maximum, terms)
    shift = jax.lax.stop_gradient(jnp.where(jnp.isfinite(top), top, 0.0))
    return shift + jnp.log(sum(jnp.exp(t - shift) for t in terms))


def _means(params: Float[Array, "... p"], k: int) -> Float[Array, "... k"]:
    """Component means: the offsets in ``params[..., K:2K]`` plus the fixed centres."""
    return params[..., k : 2 * k] + component_centres(k).astype(params.dtype)


def _take_component(a: Float[Array, "m k"], comp) -> Float[Array, " m"]:
    return jnp.take_along_axis(a, comp[:, None], axis=-1)[:, 0]


def _draw_levels(u, mean, log_scale, num_levels: int):
    """Exact draw: a logistic ``mean + s * logit(u)`` rounded to the nearest level and clipped
    (in level units, as ``discretized_logistic_log_mass``)."""
    half_levels = 0.5 * (num_levels - 1)
    s = jnp.exp(jnp.maximum(log_scale, log_scale_floor(mean.dtype)) + math.log(half_levels))
    v = (mean + 1.0) * half_levels + s * logistic_from_uniform(u)
    return jnp.clip(jnp.round(v), 0, num_levels - 1)


def _check_components(head: Head) -> None:
    k = fields.positive_int(type(head).__name__, "num_components", head.num_components)
    object.__setattr__(head, "num_components", k)


@dataclasses.dataclass(frozen=True)
class DiscretizedLogisticMixture(Head):
    """Mixture of ``num_components`` discretized logistics over the ``L`` levels of an ordinal
    variable (PixelCNN++), computed exactly in log space. See the module docstring for the
    maths and the parameter layout.

    Attributes:
        num_components: ``K``.
        coupled: PixelCNN++ channel coupling inside a pixel (last axis = channels; each pixel
            must be one block, e.g. ``ar.PerPixel()``).
        levels: ``L``, filled from the variable by ``bind``.
        channels: ``C`` (last axis of the variable; 1 for a scalar), filled by ``bind``.

    !!! Example
        ```python
        spec = ar.Spec(
            variables=[ar.Ordinal("img", levels=256, shape=(8, 8, 3))],
            partition=ar.PerPixel(),
            conditionals={"img": ar.Logistic(head=ar.DiscretizedLogisticMixture(5, coupled=True))},
        )
        ```
    """

    num_components: int = 5
    coupled: bool = False
    levels: int | None = None
    channels: int | None = None
    kind: ClassVar[str] = "discretized_logistic_mixture"
    supports: ClassVar[tuple[str, ...]] = ("ordinal",)

    def __post_init__(self) -> None:
        _check_components(self)
        fields.boolean("DiscretizedLogisticMixture", "coupled", self.coupled)
        for name in ("levels", "channels"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, fields.positive_int("DiscretizedLogisticMixture", name, getattr(self, name)))

    num_uniforms: ClassVar[int] = 2

    def bind(self, variable: Variable) -> "DiscretizedLogisticMixture":
        super().bind(variable)
        if self.levels is not None and self.levels != variable.num_values:
            raise SpecError(
                f"Variable {variable.name!r} has {variable.num_values} levels; the DiscretizedLogisticMixture head "
                f"was declared with levels={self.levels}."
            )
        channels = int(variable.shape[-1]) if variable.shape else 1
        return dataclasses.replace(self, levels=variable.num_values, channels=channels)

    def validate(self, variable, layout, steps) -> None:
        if not self.coupled or self.channels in (None, 1):
            return
        c = self.channels
        elements = layout.elements_of(variable.name).reshape(-1, c)
        pixel_steps = steps.step[elements]
        split = np.flatnonzero(np.any(pixel_steps != pixel_steps[:, :1], axis=1))
        if split.size:
            p = int(split[0])
            where = tuple(int(i) for i in np.unravel_index(p, variable.shape[:-1]))
            raise SpecError(
                f"DiscretizedLogisticMixture(coupled=True) on {variable.name!r}: the {c} channels of pixel {where} "
                f"(elements {elements[p].tolist()}) are in steps {pixel_steps[p].tolist()}; coupled channels must be "
                "drawn together in one block. Use partition=ar.PerPixel() with an ordering that keeps each pixel's "
                "channels consecutive, or coupled=False."
            )

    # ------------------------------------------------------------------ sizes
    def _bound(self) -> tuple[int, int]:
        if self.levels is None or self.channels is None:
            raise SpecError(
                "DiscretizedLogisticMixture head is unbound: its number of levels comes from the variable (bind it)."
            )
        return self.levels, self.channels

    @property
    def num_params(self) -> int:
        _, c = self._bound()
        k = self.num_components
        return 3 * k + (k * (c - 1) if self.coupled else 0)

    def split_params(self, params: Float[Array, "n p"]) -> dict[str, Float[Array, "n ..."]]:
        """``logits, means, log_scales`` ``(n, K)`` (+ ``coefficients`` ``(n, C-1, K)`` when coupled);
        ``means`` include the fixed component centres (before any channel coupling)."""
        k = self.num_components
        out = {"logits": params[:, :k], "means": _means(params, k), "log_scales": params[:, 2 * k : 3 * k]}
        if self.coupled:
            _, c = self._bound()
            out["coefficients"] = params[:, 3 * k :].reshape(params.shape[0], c - 1, k)
        return out

    @property
    def coupled_rows(self) -> int:
        _, c = self._bound()
        return c if self.coupled else 1

    # ------------------------------------------------------------------ coupled helpers
    def _pixels(self, params, values):
        """Reshape to pixels: logits ``(N, K)`` (channel 0), shifted means and log-scales
        ``(N, C, K)``, values ``(N, C)``."""
        _, c = self._bound()
        k = self.num_components
        p = params.reshape(-1, c, params.shape[-1])
        v = values.reshape(-1, c)
        means, log_scales = _means(p, k), p[:, :, 2 * k : 3 * k]
        if c > 1:
            coef = jnp.tanh(p[:, :, 3 * k :].reshape(p.shape[0], c, c - 1, k))
            lower = jnp.asarray(np.tril(np.ones((c, c - 1)), -1) > 0)  # [c, j] = j < c
            x = level_to_unit(v[:, : c - 1], self.levels)
            means = means + jnp.einsum("ncjk,nj->nck", jnp.where(lower[None, :, :, None], coef, 0.0), x)
        return p[:, 0, :k], means, log_scales, v

    def _pixel_prefix(self, logits, comp_logp):
        """``log w_k + sum_{j<c} log P_k(x_j)`` for each channel ``c``: ``(N, C, K)``."""
        logw = jax.nn.log_softmax(logits, axis=-1)[:, None, :]
        inclusive = jnp.cumsum(comp_logp, axis=1)  # exclusive sum by shifting, not subtracting (no cancellation)
        before = jnp.concatenate([jnp.zeros_like(inclusive[:, :1]), inclusive[:, :-1]], axis=1)
        return logw + before

    # ------------------------------------------------------------------ density
    def log_prob(self, params, values):
        levels, _ = self._bound()
        if not self.coupled:
            s = self.split_params(params)
            comp = discretized_logistic_log_mass(values[:, None], s["means"], s["log_scales"], levels)
            return jax.nn.logsumexp(jax.nn.log_softmax(s["logits"], axis=-1) + comp, axis=-1)
        logits, means, log_scales, v = self._pixels(params, values)
        comp = discretized_logistic_log_mass(v[:, :, None], means, log_scales, levels)  # (N, C, K)
        prefix = self._pixel_prefix(logits, comp)
        terms = jax.nn.logsumexp(prefix + comp, axis=-1) - jax.nn.logsumexp(prefix, axis=-1)
        return terms.reshape(-1)

    @property
    def num_levels(self) -> int:
        return self._bound()[0]

    def level_log_probs(
        self,
        params: Float[Array, "n p"],
        values: Float[Array, " n"] | None = None,
        levels: Int[Array, "n w"] | None = None,
    ) -> Float[Array, "n l"]:
        """Bin log-probabilities of each element: all ``L`` (``(n, L)``, rows sum to one in
        probability) or the given ``levels`` (``(n, W)``; the cost is ``K W`` log-masses).

        Coupled heads give ``log p(x_c = v | x_<c)`` and need ``values`` (only the earlier
        channels of each pixel are read); uncoupled heads ignore ``values``.
        """
        num, c = self._bound()
        grid = jnp.arange(num, dtype=params.dtype) if levels is None else levels.astype(params.dtype)
        if not self.coupled or c == 1:
            s = self.split_params(params)
            logw = jax.nn.log_softmax(s["logits"], axis=-1)
            means, log_scales = s["means"][..., None], s["log_scales"][..., None]
            at = grid[None, None, :] if levels is None else grid[:, None, :]
            comp = discretized_logistic_log_mass(at, means, log_scales, num)  # (n, K, W)
            return jax.nn.logsumexp(logw[..., None] + comp, axis=-2)
        if values is None:
            raise ValueError(
                "DiscretizedLogisticMixture(coupled=True).level_log_probs needs values: channel c depends on the "
                "earlier channels of its pixel."
            )
        logits, means, log_scales, v = self._pixels(params, values)
        comp = discretized_logistic_log_mass(v[:, :, None], means, log_scales, num)
        posterior = jax.nn.log_softmax(self._pixel_prefix(logits, comp), axis=-1)  # (N, C, K)
        at = grid if levels is None else grid.reshape(-1, c, 1, grid.shape[-1])  # (N, C, 1, W)
        table = discretized_logistic_log_mass(at, means[..., None], log_scales[..., None], num)  # (N, C, K, W)
        return jax.nn.logsumexp(posterior[..., None] + table, axis=-2).reshape(-1, table.shape[-1])

    def level_columns(self, params, values, levels):
        """Uncoupled: each column ``log p(v) = log sum_k w_k P_k(v)`` as one elementwise
        expression over ``(n,)`` arrays, with every transcendental used once.

        With ``log sigma(x) = -relu(-x) - log(1 + e^-|x|)``, an interior bin's log-mass is
        ``g - log f`` where ``g = -relu(a) - relu(-b) + log1mexp(b - a)`` needs no
        transcendental per level and ``f = (1 + e^-|a|)(1 + e^-|b|)`` lies in [1, 4] (edge
        bins keep one factor). So ``log p(v) = G + log sum_k e^(log w_k + g_k - G) / f_k``
        with ``G = max_k (log w_k + g_k)``: the largest term is at least 1/4, nothing under-
        or overflows, and a level costs 3 exponentials and a division per component plus one
        log. The same values as ``level_log_probs`` to rounding.

        Why columns: XLA's CPU backend emits slow loops for broadcasts into a small trailing
        axis. Purifying a D = 784 MADE with a 3-component head (batch 16, 5 levels, 2 CPU
        cores) took 20 ms through the ``(n, K, W)`` form of ``level_log_probs``. With the step
        parameters in their own buffer (``choice._own_buffer``) it takes 15.6 ms with columns
        written as ``discretized_logistic_log_mass`` and 11.1 ms in this form; the scan without
        any scoring takes 9 ms."""
        if self.coupled and self.channels != 1:
            return super().level_columns(params, values, levels)
        k, num = self.num_components, self.num_levels
        logits = [params[:, j] for j in range(k)]
        norm = _logsumexp_of(logits)
        n = params.shape[0]
        # the K components' level-independent terms, computed as one flat (n K,) array each
        means, log_scales = _means(params, k).reshape(-1), params[:, 2 * k : 3 * k].reshape(-1)
        centre, inv_s, log_gap = (t.reshape(n, k) for t in _component_terms(means, log_scales, num))
        terms = [(centre[:, j], inv_s[:, j], log_gap[:, j]) for j in range(k)]
        columns = []
        for v in levels:
            first, last = v <= 0, v >= num - 1
            g, f = [], []
            for j, (m, inv, gap) in enumerate(terms):  # component j's m, 1/s', log1mexp(1/s')
                u = v - m
                a, b = (u - 0.5) * inv, (u + 0.5) * inv
                fa = jnp.where(first, 1.0, 1.0 + jnp.exp(-jnp.abs(a)))  # sigma(-a): all bins but the first
                fb = jnp.where(last, 1.0, 1.0 + jnp.exp(-jnp.abs(b)))  # sigma(b): all bins but the last
                ga = jnp.where(first, 0.0, -jax.nn.relu(a))
                gb = jnp.where(last, 0.0, -jax.nn.relu(-b))
                g.append(logits[j] - norm + ga + gb + jnp.where(first | last, 0.0, gap))
                f.append(fa * fb)
            top = jax.lax.stop_gradient(functools.reduce(jnp.maximum, g))
            columns.append(top + jnp.log(sum(jnp.exp(gj - top) / fj for gj, fj in zip(g, f))))
        return columns

    # ------------------------------------------------------------------ sampling
    def sample_uniform(self, u, params):
        """``u[:, 0]`` picks the component, ``u[:, 1]`` the level. Coupled: the rows are the
        pixels' channels (``C`` consecutive rows each, as the sampler hands over a block);
        channel 0's ``u[:, 0]`` picks the pixel's component, then channels are drawn in turn."""
        levels, c = self._bound()
        if not self.coupled or c == 1:
            s = self.split_params(params)
            comp = categorical_from_uniform(u[:, 0], s["logits"])
            mean, log_scale = _take_component(s["means"], comp), _take_component(s["log_scales"], comp)
            return _draw_levels(u[:, 1], mean, log_scale, levels)
        k = self.num_components
        p = params.reshape(-1, c, params.shape[-1])
        u = u.reshape(-1, c, 2)
        comp = categorical_from_uniform(u[:, 0, 0], p[:, 0, :k])  # one component per pixel
        drawn: list[Array] = []
        for ch in range(c):
            mean = _take_component(_means(p[:, ch], k), comp)
            for j, x_j in enumerate(drawn):
                alpha = _take_component(p[:, ch, 3 * k + j * k : 3 * k + (j + 1) * k], comp)
                mean = mean + jnp.tanh(alpha) * level_to_unit(x_j, levels)
            log_scale = _take_component(p[:, ch, 2 * k : 3 * k], comp)
            drawn.append(_draw_levels(u[:, ch, 1], mean, log_scale, levels))
        return jnp.stack(drawn, axis=1).reshape(-1)


# ----------------------------------------------------------------------- continuous mixtures
@dataclasses.dataclass(frozen=True)
class _RealMixture(Head):
    """Shared parts of the continuous mixtures: parameters ``[K logits, K means, K log-scales]``.

    Attributes:
        num_components: ``K``.
    """

    num_components: int = 5
    supports: ClassVar[tuple[str, ...]] = ("real",)
    num_uniforms: ClassVar[int] = 2

    def __post_init__(self) -> None:
        _check_components(self)

    @property
    def num_params(self) -> int:
        return 3 * self.num_components

    @property
    def is_discrete(self) -> bool:
        return False

    def split_params(self, params):
        """``logits, means, log_scales``, each ``(n, K)`` (means include the component centres)."""
        k = self.num_components
        return {"logits": params[:, :k], "means": _means(params, k), "log_scales": params[:, 2 * k : 3 * k]}

    def _component_log_density(self, z):
        raise NotImplementedError

    def _standard_from_uniform(self, u):
        raise NotImplementedError

    def log_prob(self, params, values):
        s = self.split_params(params)
        log_scale = jnp.maximum(s["log_scales"], log_scale_floor(params.dtype))
        z = (values[:, None] - s["means"]) * jnp.exp(-log_scale)
        comp = self._component_log_density(z) - log_scale
        return jax.nn.logsumexp(jax.nn.log_softmax(s["logits"], axis=-1) + comp, axis=-1)

    def sample_uniform(self, u, params):
        """``u[:, 0]`` picks the component, ``u[:, 1]`` the standard draw."""
        s = self.split_params(params)
        comp = categorical_from_uniform(u[:, 0], s["logits"])
        mean = _take_component(s["means"], comp)
        scale = jnp.exp(jnp.maximum(_take_component(s["log_scales"], comp), log_scale_floor(params.dtype)))
        return mean + scale * self._standard_from_uniform(u[:, 1])


@dataclasses.dataclass(frozen=True)
class LogisticMixture(_RealMixture):
    """Mixture of ``K`` logistics for a real variable (a density).

    ``log p(x) = LSE_k(log_softmax(logits)_k - softplus(z_k) - softplus(-z_k) - log s_k)``,
    ``z_k = (x - mu_k)/s_k``. Parameters per element: ``[K logits, K mean offsets, K log-scales]``,
    ``mu_k = offset_k + (2k + 1)/K - 1`` (fixed centres break the symmetry of a zero init);
    log-scales floored at ``-log(finfo.max)/2`` for float safety only.
    """

    kind: ClassVar[str] = "logistic_mixture"

    def _component_log_density(self, z):
        return -jax.nn.softplus(z) - jax.nn.softplus(-z)

    def _standard_from_uniform(self, u):
        return logistic_from_uniform(u)


@dataclasses.dataclass(frozen=True)
class GaussianMixture(_RealMixture):
    """Mixture of ``K`` normals for a real variable (a density).

    ``log p(x) = LSE_k(log_softmax(logits)_k - z_k^2/2 - log s_k - log(2 pi)/2)``,
    ``z_k = (x - mu_k)/s_k``. Parameters per element: ``[K logits, K mean offsets, K log-scales]``,
    ``mu_k = offset_k + (2k + 1)/K - 1``.
    """

    kind: ClassVar[str] = "gaussian_mixture"

    def _component_log_density(self, z):
        return -0.5 * z * z - _HALF_LOG_TWO_PI

    def _standard_from_uniform(self, u):
        return normal_from_uniform(u)
