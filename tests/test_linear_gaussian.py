"""LinearGaussian: the closed-form fit is the full-covariance Gaussian MLE (both precisions),
shrinkage, discrete parents, the joint moments, and bad declarations."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from scipy.stats import multivariate_normal

import arprob as ar
from arprob.conditioners import gaussian_moments


def _correlated(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(d, d))
    return rng.normal(size=(n, d)) @ a.T + np.arange(1.0, d + 1)


def _fitted(spec: ar.Spec, data) -> ar.Model:
    return ar.fit(ar.compile(spec), data, num_updates=0).model


@pytest.mark.parametrize("x64", [False, True])
@pytest.mark.parametrize("ordering", [ar.Raster(), ar.Reverse(), ar.RandomOrder(2)])
def test_unshrunk_fit_is_the_full_covariance_gaussian_mle(x64, ordering):
    x = _correlated(1500, 4)
    with jax.enable_x64(x64):
        spec = ar.Spec(variables=(ar.Real("x", shape=(4,)),), ordering=ordering,
                       conditionals={"x": ar.LinearGaussian()})
        model = _fitted(spec, {"x": x})
        lp = np.asarray(model.log_prob({"x": x}), np.float64)
        assert model.components[0].conditioner.weight.dtype == (np.float64 if x64 else np.float32)
    ref = multivariate_normal(x.mean(0), np.cov(x.T, ddof=0)).logpdf(x)
    np.testing.assert_allclose(lp, ref, atol=1e-8 if x64 else 2e-3, rtol=0)


def test_shrinkage_helps_on_few_records_and_zero_is_mle():
    train, test = _correlated(12, 8, seed=1), _correlated(2000, 8, seed=1)
    heldout = {}
    for lam in (0.0, 0.3):
        spec = ar.Spec(variables=(ar.Real("x", shape=(8,)),), conditionals={"x": ar.LinearGaussian(shrinkage=lam)})
        heldout[lam] = float(np.mean(_fitted(spec, {"x": train}).log_prob({"x": test})))
    assert heldout[0.3] > heldout[0.0] + 1.0


def test_discrete_parent_shifts_the_mean_and_moments_match_log_prob():
    rng = np.random.default_rng(3)
    c = rng.integers(0, 3, 3000)
    r = np.stack([np.array([-2.0, 0.0, 3.0])[c], np.zeros(3000)], 1) + rng.normal(size=(3000, 2)) @ [[1, 0.5], [0, 1]]
    spec = ar.Spec(variables=(ar.Categorical("c", 3), ar.Real("r", shape=(2,))),
                   conditionals={"c": ar.Table(), "r": ar.LinearGaussian()})
    model = _fitted(spec, {"c": c, "r": r})
    data = {"c": c[:50], "r": r[:50]}
    elements, mean, cov = gaussian_moments(model, np.concatenate([c[:50, None], r[:50]], 1))
    assert list(elements) == [1, 2]
    np.testing.assert_allclose(mean[:, 0], np.array([-2.0, 0.0, 3.0])[c[:50]], atol=0.15)
    by_var = model.log_prob_by_variable(data)
    ref = [multivariate_normal(m, cov).logpdf(v) for m, v in zip(mean, r[:50])]
    np.testing.assert_allclose(np.asarray(by_var["r"]), ref, atol=2e-3)


def test_mixed_spec_fits_with_gradient_families_and_round_trips():
    spec = ar.Spec(variables=(ar.Binary("b", shape=(2,)), ar.Real("r", shape=(2,))),
                   conditionals={"r": ar.LinearGaussian(shrinkage=0.5, min_variance=1e-4)})
    assert ar.spec_from_dict(ar.spec_to_dict(spec)) == spec
    rng = np.random.default_rng(0)
    data = {"b": rng.integers(0, 2, (64, 2)), "r": rng.normal(size=(64, 2))}
    result = ar.fit(ar.compile(spec), data, num_updates=3)
    assert np.all(np.isfinite(np.asarray(result.model.log_prob(data))))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"shrinkage": -1.0}, "shrinkage"), ({"shrinkage": float("nan")}, "shrinkage"), ({"min_variance": 0.0}, "min_variance"),
     ({"parents": [1]}, "parents")],
)
def test_bad_arguments_name_the_field(kwargs, field):
    with pytest.raises(ar.SpecError, match=field):
        ar.LinearGaussian(**kwargs)


def test_refuses_discrete_variables_and_context():
    with pytest.raises(ar.SpecError, match="'c'.*real"):
        ar.Spec(variables=(ar.Categorical("c", 3),), conditionals={"c": ar.LinearGaussian()})
    with pytest.raises(ar.SpecError, match="context"):
        ar.Spec(variables=(ar.Real("r"),), conditionals={"r": ar.LinearGaussian()}, context_size=2)
