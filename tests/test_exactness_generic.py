"""Exactness on hypothesis-drawn specs (tables, logistic maps and small neural families),
and the chain-rule check that count-fitted tables give one likelihood under every ordering."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import arprob as ar
from exactness import (
    ORDERINGS,
    assert_cached_equals_naive,
    assert_contract,
    assert_normalised,
    assert_samples_match,
    discrete_specs,
    random_model,
)


@settings(max_examples=10)
@given(discrete_specs(allow_real=True), st.integers(0, 2**16))
def test_generic_exactness(spec, seed):
    """Every drawn spec: contract (perturbation + Jacobian) and cached == naive sampling; fully
    discrete specs also normalise by enumeration and, when small, pass a G-test of the sampler."""
    _generic(spec, seed)


@settings(max_examples=3)
@given(discrete_specs(max_configs=64, allow_real=True, neural=True), st.integers(0, 2**16))
def test_generic_exactness_neural(spec, seed):
    """The same on drawn specs whose conditionals also include small MADE / transformer /
    WaveNet / RNN families."""
    _generic(spec, seed)


def _generic(spec, seed):
    model = random_model(spec, seed)
    assert_contract(model, np.random.default_rng(seed))
    assert_cached_equals_naive(model, jax.random.key(seed))
    if all(v.is_discrete for v in spec.variables):
        assert_normalised(model)
        if np.prod(spec.layout.num_values.astype(float)) <= 32:
            assert_samples_match(model, jax.random.key(seed), n=8000)


@settings(max_examples=8)
@given(discrete_specs(max_configs=32), st.integers(0, 2**16))
def test_sampler_matches_likelihood(spec, seed):
    model = random_model(spec, seed)
    assert_normalised(model)
    assert_samples_match(model, jax.random.key(seed), n=8000)


@pytest.mark.parametrize("ordering", ORDERINGS, ids=lambda o: repr(o))
def test_counted_tables_give_same_likelihood_under_every_ordering(ordering):
    """Chain rule: a fully connected table model (``parents="all"``) fitted by counting
    (prior 0) reproduces the empirical joint, whatever the ordering."""
    variables = (ar.Categorical("a", 3), ar.Binary("b", shape=(2,)), ar.Ordinal("c", levels=3))
    rng = np.random.default_rng(0)
    data = {
        "a": rng.integers(0, 3, 200),
        "b": rng.integers(0, 2, (200, 2)),
        "c": rng.integers(0, 3, 200),
    }
    data["c"] = (data["a"] + data["b"][:, 0]) % 3  # dependence across variables
    spec = ar.Spec(variables=variables, ordering=ordering, conditionals={v.name: ar.Table(parents="all", prior=0.0) for v in variables})
    model = ar.fit(ar.compile(spec), data, num_steps=0).model
    ll = float(model.log_prob(data).sum())
    flat = model.to_flat(data)
    _, counts = np.unique(flat, axis=0, return_counts=True)
    empirical = float((counts * np.log(counts / counts.sum())).sum())
    np.testing.assert_allclose(ll, empirical, rtol=1e-5)


def _counted_ll(*columns) -> float:
    """``sum n log(n / N)`` over the joint configurations of ``columns`` (empirical log-likelihood)."""
    _, counts = np.unique(np.stack(columns, axis=1), axis=0, return_counts=True)
    return float((counts * np.log(counts / counts.sum())).sum())


def test_counted_tables_without_parents_are_marginals_and_listed_parents_conditionals():
    """``Table()`` has no parents: counting gives each element its empirical marginal, even
    for an element declared after others; ``parents=["a"]`` gives the empirical ``p(c | a)``."""
    rng = np.random.default_rng(1)
    data = {"a": rng.integers(0, 3, 300), "b": rng.integers(0, 2, (300, 2))}
    data["c"] = (data["a"] + data["b"][:, 0]) % 3
    spec = ar.Spec(variables=(ar.Categorical("a", 3), ar.Binary("b", shape=(2,)), ar.Ordinal("c", levels=3)),
                   conditionals={"a": ar.Table(prior=0.0), "b": ar.Table(prior=0.0),
                                 "c": ar.Table(parents=["a"], prior=0.0)})
    model = ar.fit(ar.compile(spec), data, num_steps=0).model
    a, b, c = data["a"], data["b"], data["c"]
    expected = _counted_ll(a) + _counted_ll(b[:, 0]) + _counted_ll(b[:, 1]) + _counted_ll(a, c) - _counted_ll(a)
    np.testing.assert_allclose(float(model.log_prob(data).sum()), expected, rtol=1e-5)
