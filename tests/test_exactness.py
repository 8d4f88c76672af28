"""One exactness suite: every row of ``exactness.CASES`` in float32 and float64, plus
hypothesis-drawn specs (tables, logistic maps and small neural families)."""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import arprob as ar
from arprob.spec.registry import REGISTRY
from exactness import (
    CASES,
    assert_cached_equals_naive,
    assert_contract,
    assert_normalised,
    assert_samples_match,
    case_model,
    check_model,
    ORDERINGS,
    discrete_specs,
    randomize,
)

PRECISIONS = ("float32", "float64")


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("name", list(CASES))
def test_case(name, precision):
    """Contract (perturbation + Jacobian zeros), cached == naive (samples and per-step
    parameters), finite gradients, normalisation by enumeration and a G-test where small."""
    case = CASES[name]
    with jax.enable_x64(precision == "float64"):
        model = case_model(case)
        leaf = next(x for x in jax.tree_util.tree_leaves(model) if eqx.is_inexact_array(x))
        assert leaf.dtype == np.dtype(precision)
        context = np.linspace(-1.0, 1.0, case.context_size) if case.context_size else None
        # per-step cached == naive parameters in float32; sampled cached == naive in both
        check_model(model, jax.random.key(7), context, step_params=precision == "float32")


def test_every_registered_kind_has_a_row():
    """A new conditional family or head of the package (a class in ``arprob`` that registers a
    ``kind``) needs a row in ``exactness.CASES``."""
    covered = set().union(*(case.kinds() for case in CASES.values()))
    for category in ("conditional", "head"):
        ours = {k for k, cls in REGISTRY[category].items() if cls.__module__.startswith("arprob.")}
        missing = sorted(ours - {k for c, k in covered if c == category})
        assert not missing, f"{category} kinds without a row in tests/exactness.py CASES: {missing}"


def _random_model(spec, seed):
    return randomize(ar.compile(spec, jax.random.key(seed)), jax.random.key(seed + 1))


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
    model = _random_model(spec, seed)
    assert_contract(model, np.random.default_rng(seed))
    assert_cached_equals_naive(model, jax.random.key(seed))
    if all(v.is_discrete for v in spec.variables):
        assert_normalised(model)
        if np.prod(spec.layout.num_values.astype(float)) <= 32:
            assert_samples_match(model, jax.random.key(seed), n=8000)


@settings(max_examples=8)
@given(discrete_specs(max_configs=32), st.integers(0, 2**16))
def test_sampler_matches_likelihood(spec, seed):
    model = _random_model(spec, seed)
    assert_normalised(model)
    assert_samples_match(model, jax.random.key(seed), n=8000)


def test_contract_check_catches_a_leak():
    """The contract checker must fail on a model whose mask lets an element see itself."""
    spec = ar.Spec(variables=(ar.Binary("x", shape=(3,)),))
    model = _random_model(spec, 0)
    cond = model.components[0].conditioner
    leaky = jax.tree_util.tree_map(lambda a: a, model)
    # out_rank + 1: every element also reads its own step (itself).
    leaky = eqx.tree_at(lambda m: m.components[0].conditioner.out_rank, leaky, cond.out_rank + 1)
    with pytest.raises(AssertionError):
        assert_contract(leaky, np.random.default_rng(0))


class _LeakyBernoulli(ar.Bernoulli):
    def log_prob(self, params, values):
        return super().log_prob(params, values) + 0.01


def test_normalisation_check_catches_unnormalised_head():
    spec = ar.Spec(variables=(ar.Binary("x", shape=(2,)),))
    model = _random_model(spec, 0)
    assert_normalised(model)
    comp = model.components[0]
    broken = eqx.tree_at(lambda m: m.components, model, (dataclasses.replace(comp, head=_LeakyBernoulli()),))
    with pytest.raises(AssertionError):
        assert_normalised(broken)


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
