"""NumPyro both ways: arprob models as NumPyro distributions, NumPyro distributions as heads."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from exactness import randomize
from numpyro.infer.util import log_density
from scipy import integrate, special, stats

import arprob as ar
from arprob.heads import NumPyroHead
from arprob.interop.numpyro_dist import MixedSupport, as_distribution

DATA = Path(__file__).parent / "data"


# ------------------------------------------------------------------ the distribution
def _model(spec, seed=0, scale=1.0):
    return randomize(ar.compile(spec, jax.random.key(seed)), jax.random.key(seed + 1), scale)


def _constant_scales(model):
    """Zero the weights of every Gaussian log-scale: a linear-Gaussian model (exactly Gaussian)."""
    import equinox as eqx

    for i, comp in enumerate(model.components):
        if isinstance(comp.head, ar.Gaussian):
            w = comp.conditioner.weight
            model = eqx.tree_at(lambda m, i=i: m.components[i].conditioner.weight, model, w.at[:, 1, :].set(0.0))
    return model


# name -> (spec, context batch or None, expected support)
CASES = {
    "fvsbn": (ar.Spec(variables=[ar.Binary("a"), ar.Binary("b", shape=(2,))]), None, "boolean"),
    "tables": (ar.Spec(variables=[ar.Categorical("c", 3), ar.Ordinal("o", 4)],
                       conditionals={"c": ar.Table(), "o": ar.Table(parents=["c"])}), None, "integer"),
    "linear_gaussian": (ar.Spec(variables=[ar.Real("z", shape=(2,))]), None, "real"),
    "mixed": (ar.Spec(variables=[ar.Binary("b"), ar.Real("r")]), None, "mixed"),
    "context": (ar.Spec(variables=[ar.Binary("a"), ar.Binary("b")], context_size=2), (3,), "boolean"),
}
N = 2048  # one row count everywhere, so each case compiles few programs


def _configurations(model, draws, bins: int = 12, sub: int = 8):
    """Every discrete configuration times a fine grid on each real element: ``bins`` cells
    spanning the draws (widened by half their spread), ``sub`` midpoints per cell. Returns
    the points, the volume of a fine cell (1 when discrete), the cell edges, and the coarse
    cell of every point."""
    k = model.spec.layout.num_values
    edges = [None if c > 0 else np.linspace(draws[:, e].min() - 0.5 * draws[:, e].std(),
                                            draws[:, e].max() + 0.5 * draws[:, e].std(), bins + 1)
             for e, c in enumerate(k)]
    fine = [None if ed is None else np.linspace(ed[0], ed[-1], bins * sub + 1) for ed in edges]
    axes = [np.arange(int(c), dtype=np.float64) if c > 0 else (f[:-1] + f[1:]) / 2 for c, f in zip(k, fine)]
    volume = math.prod(float(f[1] - f[0]) for f in fine if f is not None)
    points = np.array(list(itertools.product(*axes)))
    return points, volume, edges, _cells(model, points, edges)


def _cells(model, x, edges):
    """Index of each row of ``x`` among the discrete configurations times the real cells."""
    k = model.spec.layout.num_values
    sizes = [int(c) if c > 0 else len(ed) - 1 for c, ed in zip(k, edges)]
    idx = np.stack([x[:, e].astype(int) if c > 0 else np.clip(np.digitize(x[:, e], ed) - 1, 0, len(ed) - 2)
                    for e, (c, ed) in enumerate(zip(k, edges))], 1)
    return np.ravel_multi_index(idx.T, sizes)


def _padded(a, n):
    return np.concatenate([a, np.repeat(a[:1], n - len(a), 0)]) if len(a) < n else a


@pytest.mark.parametrize("name", list(CASES))
def test_distribution_case_table(name):
    """NumPyro's generic distribution checks on each arprob model: shapes, support, log_prob
    against the model, intermediates, jit, vmap, and sampler against density."""
    spec, batch, support = CASES[name]
    model = _constant_scales(_model(spec, 0, 0.7 if support in ("real", "mixed") else 1.0))
    context = None if batch is None else jnp.asarray(np.random.default_rng(0).normal(size=(*batch, 2)), jnp.float32)
    d = as_distribution(model, context)
    batch = () if context is None else context.shape[:-1]
    dim = model.spec.num_elements
    m = N // math.prod(batch)
    # shapes
    assert d.batch_shape == batch and d.event_shape == (dim,)
    x, (terms,) = d.sample_with_intermediates(jax.random.key(0), (m,))
    assert x.shape == terms.shape == (m, *batch, dim)
    np.testing.assert_array_equal(np.asarray(d.sample(jax.random.key(0), (m,))), np.asarray(x))
    # support
    assert d.support.event_dim == 1 and bool(jnp.all(d.support(x)))
    assert d.support.is_discrete == (support in ("boolean", "integer"))
    if support == "mixed":
        assert isinstance(d.support, MixedSupport)
        assert not bool(d.support(x[0].at[0].set(0.5)))  # a binary element at 0.5
        with pytest.raises(NotImplementedError):
            dist.biject_to(d.support)
    elif support == "real":
        assert dist.biject_to(d.support)(jnp.ones(dim)).shape == (dim,)
    else:
        assert not bool(jnp.any(d.support(x[0].at[..., -1].set(7.0))))
    # log_prob: the model's, with the intermediates' sum, broadcast against the batch
    lp = d.log_prob(x)
    assert lp.shape == (m, *batch)
    flat = x.reshape(-1, dim)
    ctx = None if context is None else jnp.broadcast_to(context, (m, *context.shape)).reshape(-1, 2)
    np.testing.assert_allclose(np.asarray(lp).ravel(), np.asarray(model.log_prob(flat, ctx)), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(d.log_prob(x, [terms])), np.asarray(lp), rtol=1e-5, atol=1e-5)
    if batch:
        assert d.log_prob(x[0, 0]).shape == batch
    # jit (the distribution is a pytree argument) and vmap
    if name in ("fvsbn", "context"):  # each is one compiled program more: two cases suffice
        np.testing.assert_allclose(np.asarray(jax.jit(lambda dd, v: dd.log_prob(v))(d, x)), np.asarray(lp),
                                   rtol=1e-6)
        np.testing.assert_allclose(np.asarray(jax.vmap(d.log_prob)(x)), np.asarray(lp), rtol=1e-6)
    if name == "fvsbn":
        np.testing.assert_array_equal(np.asarray(jax.jit(lambda dd, k: dd.sample(k, (m,)))(d, jax.random.key(0))),
                                      np.asarray(x))
    if batch:  # vmap over the batch: one distribution per context
        per = jax.vmap(lambda c, v: as_distribution(model, c).log_prob(v), in_axes=(0, 1), out_axes=1)(context, x)
        np.testing.assert_allclose(np.asarray(per), np.asarray(lp), rtol=1e-6)
    # sampler against density: mass of every discrete configuration / real grid cell, G-test
    # (the draws above: m per batch member; the first batch member's context)
    single = d if not batch else as_distribution(model, context[0])
    draws = np.asarray(x, np.float64)[:, 0] if batch else np.asarray(x, np.float64)
    points, volume, edges, point_cell = _configurations(model, draws)
    rows = jnp.asarray(_padded(points, N * ((len(points) + N - 1) // N)), jnp.float32)
    mass = np.exp(np.concatenate([np.asarray(single.log_prob(r), np.float64) for r in rows.reshape(-1, N, dim)]))
    probs = np.bincount(point_cell, weights=mass[: len(points)] * volume)
    assert abs(probs.sum() - 1) < (1e-5 if support in ("boolean", "integer") else 1e-2)  # midpoint rule for reals
    observed = np.bincount(_cells(model, draws, edges), minlength=len(probs)).astype(float)
    expected = len(draws) * probs / probs.sum()
    pool = expected < 5
    obs_p, exp_p = np.append(observed[~pool], observed[pool].sum()), np.append(expected[~pool], expected[pool].sum())
    keep = exp_p > 0
    g = 2 * np.sum(special.xlogy(obs_p[keep], obs_p[keep] / exp_p[keep]))
    assert stats.chi2.sf(g, max(int(keep.sum()) - 1, 1)) > 1e-4, f"{name}: G={g:.1f}"


def test_observed_site_inside_a_numpyro_model():
    """An observed site in a NumPyro model (float64: the published sprinkler joint exactly)."""
    with jax.enable_x64(True):
        model = ar.compile(ar.read_bif(DATA / "sprinkler.bif"))
        d = as_distribution(model)
        x = d.sample(jax.random.key(0), (64,))

        def program(data):
            with numpyro.plate("rows", data.shape[0]):
                numpyro.sample("x", as_distribution(model), obs=data)

        value, trace = log_density(program, (x,), {}, {})
        lp = d.log_prob(x)
    assert lp.dtype == jnp.float64 and x.dtype == jnp.float64
    np.testing.assert_allclose(float(value), np.asarray(lp).sum(), rtol=1e-12)
    assert trace["x"]["fn"].batch_shape == (64,)  # the plate expanded the distribution
    # p(cloudy, sprinkler, rain, wet) from the published tables (index 0 = "true")
    cloudy = {0: 0.5, 1: 0.5}
    sprinkler = {0: (0.1, 0.9), 1: (0.5, 0.5)}
    rain = {0: (0.8, 0.2), 1: (0.2, 0.8)}
    wet = {(0, 0): (0.99, 0.01), (0, 1): (0.9, 0.1), (1, 0): (0.9, 0.1), (1, 1): (0.0, 1.0)}
    rows = np.asarray(x).astype(int)
    ref = [np.log(cloudy[c] * sprinkler[c][s] * rain[c][r] * wet[(s, r)][w]) for c, s, r, w in rows]
    np.testing.assert_allclose(np.asarray(lp), ref, rtol=1e-12)
    with pytest.raises(ValueError, match="context"):
        as_distribution(ar.compile(CASES["context"][0]))


def test_example_observe_svi_nuts_and_count_head(capsys):
    """examples/numpyro_interop.py, quick: SVI with an empty guide is maximum likelihood and
    reaches the generating model's NLL; NUTS with the arprob prior matches the closed-form
    Gaussian posterior; the negative-binomial head recovers the generating means."""
    import runpy

    example = runpy.run_path(str(Path(__file__).parent.parent / "examples" / "numpyro_interop.py"))
    results = example["main"](quick=True)
    assert "SVI: NLL" in capsys.readouterr().out
    first, last, true_nll = results["svi"]
    assert first > true_nll + 0.2 and last < true_nll + 0.01
    prior, z, y, noise = results["nuts"]
    d = as_distribution(prior)
    # the prior is exactly Gaussian (constant scales): mean and precision from its log-density
    zero = jnp.zeros(3)
    precision = -np.asarray(jax.hessian(d.log_prob)(zero), np.float64)
    mean = np.linalg.solve(precision, np.asarray(jax.grad(d.log_prob)(zero), np.float64))
    ones = np.ones(3)
    post_precision = precision + np.outer(ones, ones) / noise**2
    post_mean = np.linalg.solve(post_precision, precision @ mean + ones * y / noise**2)
    post_sd = np.sqrt(np.diag(np.linalg.inv(post_precision)))
    assert np.all(np.abs(np.asarray(z, np.float64).mean(0) - post_mean) < 5 * post_sd / math.sqrt(60))  # >= 60 ESS
    fitted, _, _ = results["count"]  # the gradient went through NumPyro's density and biject_to
    np.testing.assert_allclose(np.asarray(fitted["mean"]), [3.0, 12.0], rtol=0.15)


# ------------------------------------------------------------------ the head
def _params(head, rows, seed):
    return np.random.default_rng(seed).normal(0.0, 0.8, size=(rows, head.num_params))


def _first(head, params):
    """The constrained parameters of the first row, as floats."""
    return {k: float(np.asarray(v).reshape(-1)[0]) for k, v in head.constrained(jnp.asarray(params)).items()}


# name -> (head, scipy oracle of the constrained parameters)
COUNT_HEADS = {
    "Poisson": (NumPyroHead("Poisson"), lambda p: stats.poisson(p["rate"])),
    "NegativeBinomial2": (NumPyroHead("NegativeBinomial2"), lambda p: stats.nbinom(
        p["concentration"], p["concentration"] / (p["concentration"] + p["mean"]))),
    "BinomialProbs": (NumPyroHead("BinomialProbs", fixed={"total_count": 7}), lambda p: stats.binom(7, p["probs"])),
}
REAL_HEADS = {
    "StudentT": (NumPyroHead("StudentT", fixed={"df": 3.0}), lambda p: stats.t(3.0, p["loc"], p["scale"])),
    "Beta": (NumPyroHead("Beta"), lambda p: stats.beta(p["concentration1"], p["concentration0"])),
    "Normal": (NumPyroHead("Normal"), lambda p: stats.norm(p["loc"], p["scale"])),
}


@pytest.mark.parametrize("x64", [False, True])
@pytest.mark.parametrize("name", list(COUNT_HEADS))
def test_count_heads_normalised_and_exact(name, x64):
    """Enumeration on a truncated support (0..399: every row's mean + 40 sd) sums to one and
    matches scipy's pmf."""
    head, ref = COUNT_HEADS[name]
    head = head.bind(ar.Real("n"))
    assert head.is_discrete
    params = _params(head, 1, 0)
    support = np.arange(400, dtype=np.float64)
    with jax.enable_x64(x64):
        rows = jnp.repeat(jnp.asarray(params), len(support), 0)
        lp = np.asarray(jax.jit(head.log_prob)(rows, jnp.asarray(support)), np.float64)
        first = _first(head, params)  # in the same precision
    # NumPyro's own negative-binomial density is accurate to ~1e-7 even in float64
    tol = (1e-6 if name == "NegativeBinomial2" else 1e-9) if x64 else 2e-4
    assert abs(special.logsumexp(lp)) < tol
    expected = ref(first).logpmf(support)
    finite = np.isfinite(expected)
    np.testing.assert_allclose(lp[finite], expected[finite], rtol=tol, atol=tol)
    assert np.all(lp[~finite] == -np.inf)


@pytest.mark.parametrize("name", list(REAL_HEADS))
def test_real_heads_match_scipy_and_integrate_to_one(name):
    head, ref = REAL_HEADS[name]
    head = head.bind(ar.Real("r"))
    assert not head.is_discrete
    params = _params(head, 1, 2)
    with jax.enable_x64(True):
        frozen = ref(_first(head, params))
        xs = frozen.ppf(np.linspace(0.01, 0.99, 64))
        rows = jnp.asarray(np.repeat(params, len(xs), 0))
        log_prob = jax.jit(head.log_prob)
        np.testing.assert_allclose(np.asarray(log_prob(rows, jnp.asarray(xs))), frozen.logpdf(xs), rtol=1e-9)
        one = jnp.asarray(params)
        density = lambda t: math.exp(float(log_prob(one, jnp.asarray([t]))[0]))
        lo, hi = frozen.support()
        total, _ = integrate.quad(density, max(lo, frozen.ppf(1e-10)), min(hi, frozen.ppf(1 - 1e-10)),
                                  points=[frozen.median()], limit=500)
    assert abs(total - (1 - 2e-10)) < 1e-7


# name -> (head, how it samples, scipy oracle)
SAMPLED = {
    "Poisson": (NumPyroHead("Poisson"), "cdf", lambda p: stats.poisson(p["rate"])),
    "BernoulliProbs": (NumPyroHead("BernoulliProbs"), "own", lambda p: stats.bernoulli(p["probs"])),
    "StudentT": (NumPyroHead("StudentT", fixed={"df": 3.0}), "cdf", lambda p: stats.t(3.0, p["loc"], p["scale"])),
    "Normal": (NumPyroHead("Normal"), "icdf", lambda p: stats.norm(p["loc"], p["scale"])),
}


@pytest.mark.parametrize("name", list(SAMPLED))
def test_heads_sample_their_distribution(name):
    """Draws from uniforms against scipy (G-test for counts, KS test for reals); an inverse
    CDF gives scipy's quantile of the same uniform; the same uniforms give the same draws."""
    head, how, ref = SAMPLED[name]
    head = head.bind(ar.Binary("x") if name == "BernoulliProbs" else ar.Real("x"))
    assert head.sampler == how and head.num_uniforms == (2 if how == "own" else 1)
    params = jnp.asarray(_params(head, 1, 1), jnp.float32)
    n = 5000
    u = jax.random.uniform(jax.random.key(4), (n, head.num_uniforms))
    draws = np.asarray(jax.jit(head.sample_uniform)(u, jnp.repeat(params, n, 0)), np.float64)
    again = np.asarray(jax.jit(head.sample_uniform)(u, jnp.repeat(params, n, 0)), np.float64)
    np.testing.assert_array_equal(draws, again)
    frozen = ref(_first(head, params))
    if head.is_discrete:
        assert np.all(draws == np.round(draws)) and draws.min() >= 0
        top = int(draws.max()) + 1
        expected = np.append(n * frozen.pmf(np.arange(top)), n * frozen.sf(top - 1))
        observed = np.append(np.bincount(draws.astype(int), minlength=top), 0)
        pool = expected < 5
        obs_p = np.append(observed[~pool], observed[pool].sum())
        exp_p = np.append(expected[~pool], expected[pool].sum())
        keep = exp_p > 0
        g = 2 * np.sum(special.xlogy(obs_p[keep], obs_p[keep] / exp_p[keep]))
        assert stats.chi2.sf(g, max(int(keep.sum()) - 1, 1)) > 1e-4
    else:
        assert stats.kstest(draws, frozen.cdf).pvalue > 1e-4
    if how != "own":  # a function of the one uniform: scipy's quantile of it
        q = frozen.ppf(np.asarray(u[:, 0], np.float64))
        close = np.abs(draws - q) <= 1e-3 * (1 + np.abs(q))
        assert close.mean() > 0.999


def test_heads_inside_a_model_and_spec_files(tmp_path):
    spec = ar.Spec(
        variables=[ar.Binary("flag"), ar.Real("count"), ar.Real("heavy")],
        conditionals={
            "flag": ar.Logistic(head=NumPyroHead("BernoulliProbs")),  # NumPyro's sampler: 2 uniforms
            "count": ar.Logistic(head=NumPyroHead("Poisson")),
            "heavy": ar.Logistic(head=NumPyroHead(dist.Cauchy)),  # inverse CDF
        },
    )
    ar.save_spec(spec, tmp_path / "s.toml")
    assert ar.load_spec(tmp_path / "s.toml") == spec
    model = _model(spec, 7, 0.3)
    rng = np.random.default_rng(1)
    x = np.stack([rng.integers(0, 2, 64), rng.poisson(2.0, 64), rng.standard_cauchy(64)], 1).astype(np.float32)
    lp = np.asarray(model.log_prob(x))
    # the joint is the sum of NumPyro's conditionals at the teacher-forced parameters
    params = model.conditional_params(x)
    manual = sum(np.asarray(c.head.distribution_of(params[c.name][:, 0]).log_prob(x[:, i]))
                 for i, c in enumerate(model.components))
    np.testing.assert_allclose(lp, manual, rtol=1e-5)
    # the model's sampler gives each head its own number of uniforms
    without_counts = ar.Spec(variables=[spec.variables[0], spec.variables[2]],
                             conditionals={"flag": spec.conditional["flag"], "heavy": spec.conditional["heavy"]})
    draws = np.asarray(_model(without_counts, 8, 0.3).sample_flat(jax.random.key(1), 2000))
    assert set(np.unique(draws[:, 0])) == {0.0, 1.0} and np.all(np.isfinite(draws[:, 1]))


def test_head_errors():
    with pytest.raises(ar.SpecError, match="no distribution named 'Nope'"):
        NumPyroHead("Nope")
    with pytest.raises(ar.SpecError, match="unknown parameter 'rat'"):
        NumPyroHead("Poisson", params=("rat",))
    with pytest.raises(ar.SpecError, match="unknown fixed parameter 'df'"):
        NumPyroHead("Normal", fixed={"df": 1.0})
    with pytest.raises(ar.SpecError, match="'c' is categorical"):
        ar.Spec(variables=[ar.Categorical("c", 3)], conditionals={"c": ar.Logistic(head=NumPyroHead("Poisson"))})
    with pytest.raises(ar.SpecError, match="not a scalar"):
        NumPyroHead("MultivariateNormal", params=("loc",))

