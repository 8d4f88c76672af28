"""Mixture heads: discretized logistic mixture (PixelCNN++ numerics), logistic and Gaussian mixtures.

References are computed independently of the head: a 60-digit ``decimal`` evaluation of the
logistic CDF differences (extreme parameters) and ``scipy.special.expit`` differences in
float64 (moderate parameters).
"""

from __future__ import annotations

import decimal
import math
from decimal import Decimal

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from scipy import integrate, special, stats

import arprob as ar
from arprob.heads.logistic_mixture import component_centres, log1mexp, log1mexp_exp, log_scale_floor
from exactness import (
    assert_cached_equals_naive,
    assert_contract,
    assert_normalised,
    assert_samples_match,
    random_model,
)

LEVELS = [2, 3, 17, 256, 65536]
_CTX = decimal.Context(prec=60, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)


def _head(levels: int, k: int, coupled: bool = False, shape=()) -> ar.DiscretizedLogisticMixture:
    return ar.DiscretizedLogisticMixture(k, coupled=coupled).bind(ar.Ordinal("x", levels=levels, shape=shape))


def _random_params(rng: np.random.Generator, n: int, k: int, extreme: bool) -> np.ndarray:
    """Rows ``[K logits, K mean offsets, K log-scales]``; extreme rows put means far outside
    [-1, 1] and log-scales down to -40 / up to 20. The references below add the documented
    fixed component centres to the offsets themselves."""
    logits = rng.normal(0, 3, (n, k))
    means = rng.uniform(-1.5, 1.5, (n, k))
    log_scales = rng.uniform(-6, 1, (n, k))
    if extreme:
        means = np.where(rng.random((n, k)) < 0.3, rng.choice([-1e6, -30.0, 30.0, 1e6], (n, k)), means)
        extreme_scales = rng.choice([-40.0, -20.0, -12.0, 8.0, 20.0], (n, k))
        log_scales = np.where(rng.random((n, k)) < 0.5, extreme_scales, log_scales)
    return np.concatenate([logits, means, log_scales], axis=1)


# ----------------------------------------------------------------------------- references
def _d_log1mexp(x: Decimal) -> Decimal:
    """``log(1 - exp(-x))`` in decimal, with short series where 60 digits would round."""
    with decimal.localcontext(_CTX):
        if x < Decimal("1e-15"):
            return (x * (1 - x / 2 + x * x / 6)).ln()
        y = (-x).exp()
        return -(y + y * y / 2 + y * y * y / 3) if y < Decimal("1e-15") else (1 - y).ln()


def _d_log_sigmoid(x: Decimal) -> Decimal:
    """``log(1 / (1 + e^-x))`` without exponentiating large positive numbers."""
    return x - (1 + x.exp()).ln() if x < 0 else -(1 + (-x).exp()).ln()


def _ref_log_mass(v: int, mu: float, log_scale: float, levels: int) -> Decimal:
    """Log bin mass from the logistic CDF ``F = sigmoid`` in 60-digit decimal: ``log F(b)``,
    ``log(1 - F(a))`` or ``log(F(b) - F(a))``, the difference taken on the side of the mean
    where it does not cancel (``1 - F`` above the mean)."""
    with decimal.localcontext(_CTX):
        half = Decimal(1) / (levels - 1)
        x = Decimal(2 * v) / (levels - 1) - 1
        s = Decimal(float(log_scale)).exp()
        a = (x - half - Decimal(float(mu))) / s
        b = (x + half - Decimal(float(mu))) / s
        if v == 0:
            return _d_log_sigmoid(b)
        if v == levels - 1:
            return _d_log_sigmoid(-a)
        if a > 0:  # F(b) - F(a) = (1 - F(a)) - (1 - F(b))
            big, small = _d_log_sigmoid(-a), _d_log_sigmoid(-b)
        elif b < 0:
            big, small = _d_log_sigmoid(b), _d_log_sigmoid(a)
        else:
            return (_d_log_sigmoid(b).exp() - _d_log_sigmoid(a).exp()).ln()
        return big + (1 - (small - big).exp()).ln()


def _ref_mixture_log_prob(row: np.ndarray, v: int, levels: int) -> float:
    k = len(row) // 3
    with decimal.localcontext(_CTX):
        logits = [Decimal(float(x)) for x in row[:k]]
        log_norm = max(logits) + sum((lg - max(logits)).exp() for lg in logits).ln()
        means = row[k : 2 * k] + component_centres(k)
        terms = [lg - log_norm + _ref_log_mass(v, means[i], row[2 * k + i], levels) for i, lg in enumerate(logits)]
        top = max(terms)
        return float(top + sum((t - top).exp() for t in terms).ln())


def _scipy_log_mass(v: np.ndarray, mu: np.ndarray, log_scale: np.ndarray, levels: int) -> np.ndarray:
    """float64 expit differences; the complement form is used when both edges are above the mean."""
    half = 1.0 / (levels - 1)
    x = 2.0 * v / (levels - 1) - 1.0
    s = np.exp(log_scale)
    a, b = (x - half - mu) / s, (x + half - mu) / s
    mid = np.where(a > 0, special.expit(-a) - special.expit(-b), special.expit(b) - special.expit(a))
    mass = np.where(v == 0, special.expit(b), np.where(v == levels - 1, special.expit(-a), mid))
    with np.errstate(divide="ignore"):
        return np.log(mass)


# -------------------------------------------------------------------------------- log1mexp
def test_log1mexp_matches_reference_and_has_safe_gradients():
    with jax.enable_x64(True):
        xs = np.array([1e-300, 1e-20, 1e-8, 1e-3, 0.5, math.log(2), 0.7, 3.0, 40.0, 800.0])
        with decimal.localcontext(_CTX):
            ref = [float(_d_log1mexp(Decimal(x))) for x in xs]
        np.testing.assert_allclose(np.asarray(log1mexp(jnp.asarray(xs))), ref, rtol=1e-14)
        ts = np.array([-1e4, -700.0, -25.0, -20.0, -19.9, -5.0, 0.0, 2.0, 6.0, 700.0, 1e4])
        with decimal.localcontext(_CTX):
            ref_t = [float(_d_log1mexp(Decimal(t).exp())) for t in ts]
        np.testing.assert_allclose(np.asarray(log1mexp_exp(jnp.asarray(ts))), ref_t, rtol=1e-13)
        # gradients: finite everywhere, also through an untaken where-branch, and correct
        g = jax.jit(jax.vmap(jax.grad(lambda t: jnp.where(t > 1e3, 0.0, log1mexp_exp(t)))))(jnp.asarray(ts))
        assert np.all(np.isfinite(np.asarray(g)))
        mid = (ts > -30) & (ts <= 6)
        z = np.exp(ts[mid])
        np.testing.assert_allclose(np.asarray(g)[mid], z / np.expm1(z), rtol=1e-12)
        np.testing.assert_allclose(np.asarray(g)[ts <= -30], 1.0, rtol=1e-12)  # d/dt log(z) = 1
        assert np.all(np.asarray(g)[ts > 6] < 1e-150)
        ts_fd = jnp.asarray([-30.0, -19.0, -1.0, 0.5, 3.0])
        check_grads(jax.jit(log1mexp_exp), (ts_fd,), order=2, modes=("rev",))
        check_grads(jax.jit(log1mexp), (jnp.asarray([0.3, 2.0]),), order=1, modes=("fwd", "rev"))
    t32 = jnp.asarray([-1e4, -30.0, 0.0, 200.0, 1e4], jnp.float32)
    assert np.all(np.isfinite(np.asarray(log1mexp_exp(t32))))
    assert np.all(np.isfinite(np.asarray(jax.vmap(jax.grad(log1mexp_exp))(t32))))


# ------------------------------------------------------------------------------ discretized
@pytest.mark.parametrize("levels", LEVELS)
@pytest.mark.parametrize("x64", [False, True], ids=["float32", "float64"])
def test_bins_sum_to_one(levels, x64):
    rng = np.random.default_rng(levels)
    k = 3
    params = _random_params(rng, 24 if levels < 65536 else 6, k, extreme=True)
    params[0, k : 2 * k] = np.array([1.0 / (levels - 1), -1.0, 1.0]) - component_centres(k)  # edge / end centres
    params[0, 2 * k :] = [-1e4, -40.0, 60.0]  # below the float floor, tiny, huge
    tol = 1e-10 if x64 else 1e-5
    with jax.enable_x64(x64):
        head = _head(levels, k)
        dtype = jnp.float64 if x64 else jnp.float32
        lp = jax.jit(head.level_log_probs)(jnp.asarray(params, dtype))
        chex.assert_shape(lp, (params.shape[0], levels))
        chex.assert_type(lp, dtype)
        lp = np.asarray(lp)
    assert np.all(np.isfinite(lp)), "a bin log-probability is not finite"
    total = np.exp(lp.astype(np.float64)).sum(-1)
    assert np.max(np.abs(total - 1.0)) < tol, f"bins sum to {total} (L={levels})"


@pytest.mark.parametrize("levels", LEVELS)
def test_log_prob_matches_decimal_reference_at_extreme_params(levels):
    rng = np.random.default_rng(10 + levels)
    k = 2
    params = _random_params(rng, 12, k, extreme=True)
    params[:3, 2 * k :] = -100.0  # float64 only: far below float32's floor, above float64's
    values = np.concatenate([[0, levels - 1, min(1, levels - 1), levels // 2], rng.integers(0, levels, 8)])
    ref = np.array([_ref_mixture_log_prob(p, int(v), levels) for p, v in zip(params, values)])
    head = _head(levels, k)
    with jax.enable_x64(True):
        got64 = np.asarray(jax.jit(head.log_prob)(jnp.asarray(params), jnp.asarray(values, jnp.float64)))
    np.testing.assert_allclose(got64, ref, rtol=1e-11, atol=1e-11)
    # float32: inputs rounded to float32, reference recomputed from the rounded inputs
    p32 = params[3:].astype(np.float32)
    ref32 = np.array([_ref_mixture_log_prob(p.astype(np.float64), int(v), levels) for p, v in zip(p32, values[3:])])
    got32 = np.asarray(jax.jit(head.log_prob)(jnp.asarray(p32), jnp.asarray(values[3:], jnp.float32)))
    assert np.all(np.isfinite(got32))
    np.testing.assert_allclose(got32, ref32, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("levels", [2, 17, 256])
def test_level_log_probs_match_scipy_expit_differences(levels):
    rng = np.random.default_rng(levels)
    k = 3
    params = _random_params(rng, 16, k, extreme=False)
    grid = np.arange(levels)
    means = params[:, k : 2 * k] + component_centres(k)
    comp = _scipy_log_mass(grid[None, None, :], means[..., None], params[:, 2 * k :, None], levels)
    ref = special.logsumexp(special.log_softmax(params[:, :k], axis=-1)[..., None] + comp, axis=1)
    head = _head(levels, k)
    with jax.enable_x64(True):
        got64 = np.asarray(jax.jit(head.level_log_probs)(jnp.asarray(params)))
    ok = ref > -600  # where float64 expit differences have not underflowed
    np.testing.assert_allclose(got64[ok], ref[ok], rtol=1e-9, atol=1e-9)
    got32 = np.asarray(jax.jit(head.level_log_probs)(jnp.asarray(params, jnp.float32)))
    ok32 = ref > -60
    np.testing.assert_allclose(got32[ok32], ref[ok32], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("levels", [2, 17, 256])
@pytest.mark.parametrize("x64", [False, True], ids=["float32", "float64"])
def test_level_columns_equal_level_log_probs(levels, x64):
    """The column form the box rules score with (its own formula) against the table."""
    rng = np.random.default_rng(20 + levels)
    k, n = 3, 40
    params = _random_params(rng, n, k, extreme=True)
    params[0, 2 * k :] = [-1e4, -44.0, 60.0]
    picks = [np.zeros(n), np.full(n, levels - 1), *rng.integers(0, levels, (4, n))]
    with jax.enable_x64(x64):
        head = _head(levels, k)
        dtype = jnp.float64 if x64 else jnp.float32
        p = jnp.asarray(params, dtype)
        table = np.asarray(jax.jit(head.level_log_probs)(p))
        columns = jax.jit(lambda p, v: head.level_columns(p, None, list(v)))(p, jnp.asarray(np.stack(picks), dtype))
    for v, column in zip(picks, columns):
        want = table[np.arange(n), v.astype(int)]
        got = np.asarray(column)
        assert got.dtype == table.dtype and np.all(np.isfinite(got))
        tol = 1e-12 if x64 else 2e-6
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("x64", [False, True], ids=["float32", "float64"])
def test_gradients_finite_at_every_level_and_extreme_params(x64):
    rng = np.random.default_rng(3)
    levels, k = 256, 3
    params = _random_params(rng, 40, k, extreme=True)
    params[0, 2 * k :] = [-1e4, -44.0, 40.0]
    with jax.enable_x64(x64):
        head = _head(levels, k)
        dtype = jnp.float64 if x64 else jnp.float32

        def loss(p):
            return head.level_log_probs(p).sum()  # every level of every row

        g = np.asarray(jax.jit(jax.grad(loss))(jnp.asarray(params, dtype)))
    assert np.all(np.isfinite(g)), f"non-finite gradient at rows {np.unique(np.nonzero(~np.isfinite(g))[0])}"


def test_gradients_match_finite_differences():
    rng = np.random.default_rng(4)
    with jax.enable_x64(True):
        for levels in (2, 256):
            head = _head(levels, 2)
            params = jnp.asarray(_random_params(rng, 5, 2, extreme=False))
            values = jnp.asarray([0.0, levels - 1.0, levels // 2, 1.0, levels - 2.0])
            check_grads(jax.jit(lambda p: head.log_prob(p, values)), (params,), order=1, modes=("fwd", "rev"))


def _g_test(observed: np.ndarray, probs: np.ndarray) -> float:
    """p-value of a G-test of counts against probabilities (cells with expectation < 5 pooled)."""
    n = observed.sum()
    expected = n * probs / probs.sum()
    small = expected < 5
    if small.any():
        observed = np.append(observed[~small], observed[small].sum())
        expected = np.append(expected[~small], expected[small].sum())
    keep = expected > 0
    o, e = observed[keep], expected[keep]
    g = 2 * np.sum(np.where(o > 0, o * np.log(np.where(o > 0, o, 1) / e), 0.0))
    return float(stats.chi2.sf(g, max(int(keep.sum()) - 1, 1)))


@pytest.mark.parametrize("levels", [2, 7, 256])
def test_sampled_levels_match_probabilities(levels):
    rng = np.random.default_rng(5)
    k = 3
    params = _random_params(rng, 6, k, extreme=False)
    params[1, k : 2 * k] = np.array([-1.2, 1.3, 0.0]) - component_centres(k)  # mass piled on both edge bins
    params[2, 2 * k :] = [-9.0, -9.0, -9.0]  # tiny scales
    head = _head(levels, k)
    probs = np.exp(np.asarray(jax.jit(head.level_log_probs)(jnp.asarray(params, jnp.float32)), np.float64))
    draws = 20000
    tiled = jnp.asarray(np.repeat(params, draws, axis=0), jnp.float32)
    samples = np.asarray(jax.jit(head.sample)(jax.random.key(levels), tiled)).reshape(len(params), draws)
    chex.assert_shape(samples, (len(params), draws))
    assert np.all(samples == np.round(samples)) and samples.min() >= 0 and samples.max() <= levels - 1
    for r in range(len(params)):
        counts = np.bincount(samples[r].astype(int), minlength=levels).astype(float)
        p = _g_test(counts, probs[r])
        assert p > 1e-4, f"row {r}: sampled level frequencies differ from the head's probabilities (p={p:.2e})"


def test_sampler_check_catches_a_wrong_sampler():
    """The frequency check must fail when samples come from a neighbouring mean."""
    levels, k = 7, 1
    params = np.array([[0.0, 0.1, -1.0]])  # K = 1: centre 0
    head = _head(levels, k)
    probs = np.exp(np.asarray(jax.jit(head.level_log_probs)(jnp.asarray(params, jnp.float32)), np.float64))[0]
    shifted = jnp.asarray(np.repeat(params + [[0.0, 0.05, 0.0]], 20000, 0), jnp.float32)
    samples = np.asarray(jax.jit(head.sample)(jax.random.key(0), shifted)).astype(int)
    assert _g_test(np.bincount(samples, minlength=levels).astype(float), probs) < 1e-4


def test_split_params_and_shapes():
    head = _head(17, 4)
    assert head.num_params == 12
    params = jnp.arange(5 * 12, dtype=jnp.float32).reshape(5, 12)
    parts = head.split_params(params)
    chex.assert_shape([parts["logits"], parts["means"], parts["log_scales"]], (5, 4))
    np.testing.assert_allclose(parts["means"], params[:, 4:8] + component_centres(4))
    chex.assert_shape(head.log_prob(params * 0.01, jnp.zeros(5)), (5,))
    chex.assert_shape(head.sample(jax.random.key(0), params * 0.01), (5,))
    coupled = _head(17, 4, coupled=True, shape=(2, 2, 3))
    assert (coupled.channels, coupled.num_params) == (3, 4 * 3 + 4 * 2)
    parts = coupled.split_params(jnp.zeros((12, 20)))
    chex.assert_shape(parts["coefficients"], (12, 2, 4))


def test_spec_errors():
    with pytest.raises(ar.SpecError, match="num_components"):
        ar.DiscretizedLogisticMixture(0)
    with pytest.raises(ar.SpecError, match="real"):
        ar.DiscretizedLogisticMixture(2).bind(ar.Real("r"))
    with pytest.raises(ar.SpecError, match="levels=5"):
        ar.DiscretizedLogisticMixture(2, levels=5).bind(ar.Ordinal("x", levels=4))
    with pytest.raises(ar.SpecError, match="unbound"):
        ar.DiscretizedLogisticMixture(2).num_params
    with pytest.raises(ar.SpecError, match="ordinal"):
        ar.LogisticMixture(2).bind(ar.Ordinal("x", levels=4))
    img = ar.Ordinal("img", levels=4, shape=(2, 2, 3))
    with pytest.raises(ar.SpecError, match=r"pixel \(0, 0\).*steps \[0, 1, 2\]"):
        ar.Spec(variables=(img,), conditionals={"img": ar.Logistic(head=ar.DiscretizedLogisticMixture(2, True))})
    ar.Spec(
        variables=(img,),
        partition=ar.PerPixel(),
        conditionals={"img": ar.Logistic(head=ar.DiscretizedLogisticMixture(2, coupled=True))},
    )


# ------------------------------------------------------------------------------ coupled
def _coupled_reference(params: np.ndarray, values: np.ndarray, levels: int, c: int, k: int) -> np.ndarray:
    """Joint log-prob of each pixel from scipy expit differences, written out directly."""
    p = params.reshape(-1, c, params.shape[-1])
    v = values.reshape(-1, c)
    x = 2.0 * v / (levels - 1) - 1.0
    logw = special.log_softmax(p[:, 0, :k], axis=-1)
    total = logw.copy()
    for ch in range(c):
        mean = p[:, ch, k : 2 * k] + component_centres(k)
        for j in range(ch):
            mean += np.tanh(p[:, ch, 3 * k + j * k : 3 * k + (j + 1) * k]) * x[:, j : j + 1]
        total += _scipy_log_mass(v[:, ch : ch + 1], mean, p[:, ch, 2 * k : 3 * k], levels)
    return special.logsumexp(total, axis=-1)


def test_coupled_log_prob_is_the_pixel_joint_and_conditionals_sum_to_one():
    levels, c, k = 5, 3, 2
    head = _head(levels, k, coupled=True, shape=(4, c))
    rng = np.random.default_rng(6)
    params = np.concatenate([_random_params(rng, 4 * c, k, extreme=False), rng.normal(0, 1.5, (4 * c, (c - 1) * k))], 1)
    values = rng.integers(0, levels, 4 * c).astype(np.float64)
    with jax.enable_x64(True):
        terms = np.asarray(jax.jit(head.log_prob)(jnp.asarray(params), jnp.asarray(values)))
        table = np.asarray(jax.jit(head.level_log_probs)(jnp.asarray(params), jnp.asarray(values)))
    ref = _coupled_reference(params, values, levels, c, k)
    np.testing.assert_allclose(terms.reshape(-1, c).sum(-1), ref, rtol=1e-10, atol=1e-13)
    chex.assert_shape(table, (4 * c, levels))
    np.testing.assert_allclose(np.exp(table).sum(-1), 1.0, atol=1e-10)
    picked = np.take_along_axis(table, values.astype(int)[:, None], 1)[:, 0]
    np.testing.assert_allclose(picked, terms, rtol=1e-10, atol=1e-13)
    # the joint over one pixel's configurations sums to one
    grid = np.stack(np.meshgrid(*[np.arange(levels)] * c, indexing="ij"), -1).reshape(-1, c).astype(np.float64)
    pix = np.tile(params[:c], (len(grid), 1))
    with jax.enable_x64(True):
        joint = np.asarray(jax.jit(head.log_prob)(jnp.asarray(pix), jnp.asarray(grid.reshape(-1))))
    joint = joint.reshape(-1, c).sum(-1)
    assert abs(np.exp(joint).sum() - 1.0) < 1e-10
    with pytest.raises(ValueError, match="needs values"):
        head.level_log_probs(jnp.asarray(params))


def test_coupled_terms_are_exact_with_extreme_components():
    """Per-channel terms telescope to the pixel joint without cancellation, even when one
    component's log-masses are ~-1e9 (tiny scale, far mean); reference in 60-digit decimal."""
    levels, c, k = 17, 3, 2
    head = _head(levels, k, coupled=True, shape=(6, c))
    rng = np.random.default_rng(9)
    params = np.concatenate([_random_params(rng, 6 * c, k, extreme=True), rng.normal(0, 1.5, (6 * c, (c - 1) * k))], 1)
    params[:c, k : 2 * k] = [30.0, 0.0]
    params[:c, 2 * k : 3 * k] = [-20.0, -1.0]
    values = rng.integers(0, levels, 6 * c).astype(np.float64)
    with jax.enable_x64(True):
        terms = np.asarray(jax.jit(head.log_prob)(jnp.asarray(params), jnp.asarray(values)))
    assert np.all(np.isfinite(terms))
    p = params.reshape(-1, c, params.shape[-1])
    v = values.reshape(-1, c).astype(int)
    x = 2.0 * v / (levels - 1) - 1.0
    for i in range(len(p)):
        with decimal.localcontext(_CTX):
            logits = [Decimal(float(t)) for t in p[i, 0, :k]]
            log_norm = max(logits) + sum((t - max(logits)).exp() for t in logits).ln()
            per_comp = []
            for kk in range(k):
                total = logits[kk] - log_norm
                for ch in range(c):
                    mean = p[i, ch, k + kk] + component_centres(k)[kk]
                    mean += sum(np.tanh(p[i, ch, 3 * k + j * k + kk]) * x[i, j] for j in range(ch))
                    total += _ref_log_mass(int(v[i, ch]), mean, p[i, ch, 2 * k + kk], levels)
                per_comp.append(total)
            top = max(per_comp)
            ref = float(top + sum((t - top).exp() for t in per_comp).ln())
        np.testing.assert_allclose(terms.reshape(-1, c)[i].sum(), ref, rtol=1e-10, atol=1e-10)


def test_coupled_samples_match_pixel_joint():
    levels, c, k = 3, 3, 2
    head = _head(levels, k, coupled=True, shape=(1, 1, c))
    rng = np.random.default_rng(7)
    pixel = np.concatenate([_random_params(rng, c, k, extreme=False), rng.normal(0, 2.0, (c, (c - 1) * k))], 1)
    pixel[:, 2 * k : 3 * k] = rng.uniform(-2.5, -0.5, (c, k))
    grid = np.stack(np.meshgrid(*[np.arange(levels)] * c, indexing="ij"), -1).reshape(-1, c)
    joint = _coupled_reference(np.tile(pixel, (len(grid), 1)), grid.reshape(-1).astype(float), levels, c, k)
    draws = 30000
    samples = np.asarray(jax.jit(head.sample)(jax.random.key(1), jnp.asarray(np.tile(pixel, (draws, 1)), jnp.float32)))
    index = (samples.reshape(draws, c).astype(int) * levels ** np.arange(c)[::-1]).sum(-1)
    p = _g_test(np.bincount(index, minlength=len(grid)).astype(float), np.exp(joint))
    assert p > 1e-4, f"coupled samples differ from the pixel joint (p={p:.2e})"


# ------------------------------------------------------------------------------ in a model
_MODEL_SPECS = {
    "dlm": ar.Spec(
        variables=(ar.Ordinal("x", levels=3, shape=(2, 2)),),
        conditionals={"x": ar.Logistic(head=ar.DiscretizedLogisticMixture(2))},
    ),
    "dlm_reverse_blocks": ar.Spec(
        variables=(ar.Binary("b"), ar.Ordinal("x", levels=4, shape=(3,))),
        ordering=ar.Reverse(),
        partition=ar.FixedSize(2),
        conditionals={"x": ar.Logistic(head=ar.DiscretizedLogisticMixture(3))},
    ),
    "dlm_coupled": ar.Spec(
        variables=(ar.Ordinal("img", levels=3, shape=(1, 2, 2)),),
        partition=ar.PerPixel(),
        conditionals={"img": ar.Logistic(head=ar.DiscretizedLogisticMixture(2, coupled=True))},
    ),
}


@pytest.mark.parametrize("name", list(_MODEL_SPECS))
def test_generic_exactness_inside_a_model(name):
    spec = _MODEL_SPECS[name]
    model = random_model(spec, 0)
    assert_normalised(model)
    assert_contract(model, np.random.default_rng(0))
    assert_cached_equals_naive(model, jax.random.key(0), n=8000)  # n as below: one compiled sampler
    assert_samples_match(model, jax.random.key(1), n=8000)
    assert_normalised(random_model(spec, 10))


@pytest.mark.parametrize("head", [ar.LogisticMixture(3), ar.GaussianMixture(2)], ids=lambda h: h.kind)
def test_real_mixture_heads_inside_a_model(head):
    spec = ar.Spec(
        variables=(ar.Binary("b"), ar.Real("r", shape=(3,))),
        conditionals={"r": ar.Logistic(head=head)},
    )
    model = random_model(spec, 0)
    assert_contract(model, np.random.default_rng(0))
    # Real draws: the Logistic conditioner's incremental step and its full pass are different
    # XLA programs whose parameters may differ in the last bit, so compare to float tolerance.
    cached = np.asarray(model.sample_flat(jax.random.key(0), 8))
    naive = np.asarray(model.sample_flat(jax.random.key(0), 8, naive=True))
    np.testing.assert_array_equal(cached[:, 0], naive[:, 0])
    np.testing.assert_allclose(cached, naive, rtol=1e-5, atol=1e-5)
    # normalised: integrate the density of the last element given the others (moderate weights,
    # so that no component is narrower than float64 can resolve)
    model = random_model(spec, 3, scale=0.3)
    flat = np.asarray(model.sample_flat(jax.random.key(2), 1))
    params = np.asarray(model.conditional_params(flat)["r"][0, -1:], np.float64)  # (1, P)
    parts = head.split_params(params)
    mu, s = parts["means"][0], np.exp(parts["log_scales"][0])
    lo, hi = float(np.min(mu - 50 * s)), float(np.max(mu + 50 * s))  # tails beyond: < e^-50
    points = np.sort((mu[:, None] + s[:, None] * np.array([-20.0, -4.0, -1.0, 0.0, 1.0, 4.0, 20.0])).ravel())
    with jax.enable_x64(True):
        log_density = jax.jit(lambda t: head.bind(spec.variables[1]).log_prob(jnp.asarray(params), t[None])[0])
        density = lambda t: float(np.exp(log_density(jnp.float64(t))))
        total, _ = integrate.quad(density, lo, hi, points=points[(points > lo) & (points < hi)], limit=1000)
    assert abs(total - 1.0) < 1e-4, f"density integrates to {total}"


@pytest.mark.parametrize("cls", [ar.LogisticMixture, ar.GaussianMixture])
def test_real_mixtures_match_scipy_and_sample_correctly(cls):
    k = 3
    rng = np.random.default_rng(8)
    params = _random_params(rng, 1, k, extreme=False)
    params[0, 2 * k :] = rng.uniform(-1.5, 0.5, k)
    w = special.softmax(params[0, :k])
    mu, s = params[0, k : 2 * k] + component_centres(k), np.exp(params[0, 2 * k :])
    dist = stats.logistic if cls is ar.LogisticMixture else stats.norm
    head = cls(k).bind(ar.Real("r"))
    assert head.num_params == 3 * k and not head.is_discrete
    xs = np.linspace(-6, 6, 41)
    ref = np.log(sum(w[i] * dist.pdf(xs, mu[i], s[i]) for i in range(k)))
    with jax.enable_x64(True):
        got = np.asarray(jax.jit(head.log_prob)(jnp.asarray(np.repeat(params, len(xs), 0)), jnp.asarray(xs)))
    np.testing.assert_allclose(got, ref, rtol=1e-10)
    samples = np.asarray(jax.jit(head.sample)(jax.random.key(3), jnp.asarray(np.repeat(params, 20000, 0), jnp.float32)))
    chex.assert_shape(samples, (20000,))
    cdf = lambda x: sum(w[i] * dist.cdf(x, mu[i], s[i]) for i in range(k))
    assert stats.kstest(samples, cdf).pvalue > 1e-4
    with jax.enable_x64(False):
        tiny = params.copy()
        tiny[0, 2 * k :] = [-1e4, -40.0, 30.0]
        rows, xs = jnp.asarray(np.repeat(tiny, 3, 0), jnp.float32), jnp.asarray([0.0, 1e3, -1e3])
        lp = jax.jit(head.log_prob)(rows, xs)
        g = jax.jit(jax.grad(lambda p: head.log_prob(p, xs).sum()))(rows)
    assert np.all(np.isfinite(np.asarray(lp))) and np.all(np.isfinite(np.asarray(g)))


def test_log_scale_floor_values():
    assert round(log_scale_floor(jnp.float32), 1) == -44.4
    assert round(log_scale_floor(np.float64), 1) == -354.9


def test_heads_are_registered_and_round_trip_through_spec_files():
    import json

    from arprob.heads import HEAD_KINDS
    from arprob.spec.serialize import spec_from_dict, spec_to_dict

    assert HEAD_KINDS["discretized_logistic_mixture"] is ar.DiscretizedLogisticMixture
    assert HEAD_KINDS["logistic_mixture"] is ar.LogisticMixture
    assert HEAD_KINDS["gaussian_mixture"] is ar.GaussianMixture
    spec = ar.Spec(
        variables=(ar.Ordinal("img", levels=4, shape=(2, 2, 3)), ar.Real("r")),
        partition=ar.PerPixel(),
        conditionals={
            "img": ar.Logistic(head=ar.DiscretizedLogisticMixture(3, coupled=True)),
            "r": ar.Logistic(head=ar.LogisticMixture(2)),
        },
    )
    assert spec_from_dict(json.loads(json.dumps(spec_to_dict(spec)))) == spec
