"""Generic exactness properties of core heads x conditioners over random small specs."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import arprob as ar
from exactness import (
    assert_cached_equals_naive,
    assert_contract,
    assert_normalised,
    assert_samples_match,
    randomize,
)

ORDERINGS = [ar.Raster(), ar.Reverse(), ar.Columns(), ar.Snake(), ar.EvenOdd(), ar.RandomOrder(3), ar.Reverse(ar.Columns())]


@st.composite
def discrete_specs(draw, max_configs: int = 256, allow_real: bool = False):
    n_vars = draw(st.integers(1, 3))
    variables, configs = [], 1
    for i in range(n_vars):
        kind = draw(st.sampled_from(["binary", "categorical", "ordinal"] + (["real"] if allow_real else [])))
        shape = draw(st.sampled_from([(), (2,), (2, 2)]))
        if kind == "binary":
            v = ar.Binary(f"v{i}", shape=shape)
        elif kind == "categorical":
            v = ar.Categorical(f"v{i}", draw(st.integers(2, 3)), shape=shape)
        elif kind == "ordinal":
            v = ar.Ordinal(f"v{i}", levels=draw(st.integers(2, 3)), shape=shape)
        else:
            v = ar.Real(f"v{i}", shape=shape)
        configs *= (v.num_values or 1) ** v.size
        variables.append(v)
    if configs > max_configs:
        variables = variables[:1]
        v = variables[0]
        if (v.num_values or 1) ** v.size > max_configs:
            variables = [ar.Binary("v0", shape=(2, 2))]
    ordering = draw(st.sampled_from(ORDERINGS))
    if len(variables) > 1 and draw(st.booleans()):
        names = [v.name for v in variables]
        ordering = ar.ByVariable(tuple(draw(st.permutations(names))), within=draw(st.sampled_from(ORDERINGS[:4])))
    d = sum(v.size for v in variables)
    perm = ordering.permutation(variables)
    kind = draw(st.sampled_from(["singletons", "fixed", "explicit", "per_variable"]))
    if kind == "fixed":
        partition = ar.FixedSize(draw(st.integers(1, 3)))
    elif kind == "explicit":
        cuts = sorted(draw(st.sets(st.integers(1, max(d - 1, 1)), max_size=d)))
        bounds = [0, *[c for c in cuts if c < d], d]
        partition = ar.ExplicitBlocks(tuple(tuple(int(e) for e in perm[a:b]) for a, b in zip(bounds, bounds[1:]) if b > a))
    elif kind == "per_variable" and isinstance(ordering, ar.ByVariable):
        partition = ar.PerVariable()
    else:
        partition = ar.Singletons()
    conditionals = {}
    for v in variables:
        choices = ["logistic"] if not v.is_discrete else ["logistic", "table"]
        conditionals[v.name] = ar.Table() if draw(st.sampled_from(choices)) == "table" else ar.Logistic()
    try:
        return ar.Spec(variables=tuple(variables), ordering=ordering, partition=partition, conditionals=conditionals)
    except ar.SpecError:  # e.g. a table over every earlier element when one is real
        assume(False)


def _random_model(spec, seed):
    return randomize(ar.compile(spec, jax.random.key(seed)), jax.random.key(seed + 1))


@settings(max_examples=10)
@given(discrete_specs(allow_real=True), st.integers(0, 2**16))
def test_generic_exactness(spec, seed):
    """Every drawn spec: contract (perturbation + Jacobian) and cached == naive sampling; fully
    discrete specs also normalise by enumeration and, when small, pass a G-test of the sampler."""
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
    import equinox as eqx

    # out_rank + 1: every element also reads its own step (itself).
    leaky = eqx.tree_at(lambda m: m.components[0].conditioner.out_rank, leaky, cond.out_rank + 1)
    with pytest.raises(AssertionError):
        assert_contract(leaky, np.random.default_rng(0))


class _LeakyBernoulli(ar.Bernoulli):
    def log_prob(self, params, values):
        return super().log_prob(params, values) + 0.01


def test_normalisation_check_catches_unnormalised_head():
    import dataclasses

    import equinox as eqx

    spec = ar.Spec(variables=(ar.Binary("x", shape=(2,)),))
    model = _random_model(spec, 0)
    assert_normalised(model)
    comp = model.components[0]
    broken = eqx.tree_at(lambda m: m.components, model, (dataclasses.replace(comp, head=_LeakyBernoulli()),))
    with pytest.raises(AssertionError):
        assert_normalised(broken)


@pytest.mark.parametrize("ordering", ORDERINGS, ids=lambda o: repr(o))
def test_counted_tables_give_same_likelihood_under_every_ordering(ordering):
    """Chain rule: a fully connected table model fitted by counting (prior 0) reproduces the
    empirical joint, whatever the ordering."""
    variables = (ar.Categorical("a", 3), ar.Binary("b", shape=(2,)), ar.Ordinal("c", levels=3))
    rng = np.random.default_rng(0)
    data = {
        "a": rng.integers(0, 3, 200),
        "b": rng.integers(0, 2, (200, 2)),
        "c": rng.integers(0, 3, 200),
    }
    data["c"] = (data["a"] + data["b"][:, 0]) % 3  # dependence across variables
    spec = ar.Spec(variables=variables, ordering=ordering, conditionals={v.name: ar.Table(prior=0.0) for v in variables})
    model = ar.fit(ar.compile(spec), data, num_steps=0).model
    ll = float(model.log_prob(data).sum())
    flat = model.to_flat(data)
    _, counts = np.unique(flat, axis=0, return_counts=True)
    empirical = float((counts * np.log(counts / counts.sum())).sum())
    np.testing.assert_allclose(ll, empirical, rtol=1e-5)
